"""From the beam lines to the 800 × 540 frame: scan conversion of the grey levels and labels, the annotation.

Why apart: this is the one step on the frame's pixel grid instead of the beam grid, and everything that
comes out of the renderer as an image is made here, on the same grid, so that the frame, its
ground-truth labels and its HC18 annotation line up pixel for pixel: the grey levels are resampled
(bilinear, anti-aliased along depth when the pixels are coarser than the samples) inside the sector and
black outside it, the labels are sampled at the same pixel centres, the skull outline is drawn from the
frame's ellipse.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from ..labels import Label
from .acquisition import Acquisition
from .beams import BeamData
from .scan_geometry import FRAME_HEIGHT_PX, FRAME_WIDTH_PX, HeadPlacement, world_labels


def scan_convert(acq: Acquisition, placement: HeadPlacement, labels: np.ndarray, spacing: float, beam: BeamData
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The frame (uint8), its labels (uint8, background outside the sector) and the sector mask (bool)."""
    x, z = _frame_world(acq)
    radius = acq.probe_radius_mm
    r = np.hypot(x, z)
    theta = np.arctan2(x, z)
    depth = r - np.float32(radius)
    half = math.radians(acq.sector_angle_deg) / 2
    max_depth = float(beam.depth_mm[-1])
    sector = (np.abs(theta) <= half) & (depth >= 0) & (depth <= max_depth)
    dtheta = math.radians(acq.sector_angle_deg) / acq.n_lines
    rows = depth / np.float32(acq.dr_mm)
    cols = (theta + np.float32(half)) / np.float32(dtheta) - np.float32(0.5)
    display = beam.display
    samples_per_pixel = acq.pixel_size_mm / acq.dr_mm
    if samples_per_pixel > 2.0:  # anti-alias along depth before decimating to the pixel grid
        display = ndimage.gaussian_filter1d(display, 0.35 * samples_per_pixel, axis=0)
    image = ndimage.map_coordinates(display, [rows, cols], order=1, mode="nearest", prefilter=False)
    if acq.smoothing_px > 0:
        image = ndimage.gaussian_filter(image, acq.smoothing_px)
    image = np.where(sector, np.clip(np.rint(image), 0, 255), 0).astype(np.uint8)
    lab, _ = world_labels(acq, placement, labels, None, spacing, x, z, depth, theta)
    lab = np.where(sector, lab, np.uint8(Label.BACKGROUND)).astype(np.uint8)
    return image, lab, sector


def _frame_world(acq: Acquisition) -> tuple[np.ndarray, np.ndarray]:
    """World (x, z) of every frame pixel centre, (540, 800) each."""
    left, top = acq.window_origin_mm
    p = acq.pixel_size_mm
    xs = (left + (np.arange(FRAME_WIDTH_PX) + 0.5) * p).astype(np.float32)
    zs = (top + (np.arange(FRAME_HEIGHT_PX) + 0.5) * p).astype(np.float32)
    return np.broadcast_to(xs[None, :], (FRAME_HEIGHT_PX, FRAME_WIDTH_PX)), \
        np.broadcast_to(zs[:, None], (FRAME_HEIGHT_PX, FRAME_WIDTH_PX))


def draw_ellipse_outline(shape: tuple[int, int], cx: float, cy: float, a: float, b: float, angle_deg: float,
                         width_px: float = 1.6) -> np.ndarray:
    """An HC18-style annotation: the ellipse outline, ``width_px`` wide, 255 on 0 (uint8)."""
    h, w = int(shape[0]), int(shape[1])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    t = math.radians(angle_deg)
    dx, dy = xx - cx, yy - cy
    u = (dx * math.cos(t) + dy * math.sin(t)) / a
    v = (-dx * math.sin(t) + dy * math.cos(t)) / b
    f = u * u + v * v - 1.0
    grad = 2.0 * np.hypot(u / a, v / b)
    distance = f / np.maximum(grad, 1e-12)
    return np.where(np.abs(distance) <= width_px / 2.0, 255, 0).astype(np.uint8)
