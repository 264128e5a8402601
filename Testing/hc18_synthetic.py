"""Synthetic HC18-like data for the geometry and preparer tests.

* :func:`random_head`: a head ellipse (frame pixels) and pixel size with HC in the HC18 range, placed
  inside an 800×540 frame and inside the imaged sector.
* :func:`skull_frame`: an 8-bit B-mode-like frame: a bright skull ring (Gaussian profile centred on the
  ellipse, brighter where the beam from the transducer at the top meets it perpendicularly), a midline
  echo, optionally a dark CSP box on one side of the midline, brain/tissue/fluid levels, multiplicative
  speckle and the black outside of a sector.
* :func:`outline`: the annotation image — the ellipse outline, 1–2 px wide, 0/255.
* :func:`write_hc18`: a ROOT folder in HC18's layout (nested training_set/, the CSV).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ddic.geometry.ellipse import Ellipse, semi_axes_for_circumference

H, W = 540, 800
APEX = (W / 2.0, -0.35 * H)  # the sector apex (transducer), above the frame
HALF_ANGLE_DEG = 48.0


def in_sector(points: np.ndarray, margin_px: float = 12.0) -> np.ndarray:
    dx, dy = points[:, 0] - APEX[0], points[:, 1] - APEX[1]
    angle = np.degrees(np.arctan2(dx, dy))
    radius = np.hypot(dx, dy)
    max_radius = H - APEX[1] + 0.15 * H
    return (np.abs(angle) < HALF_ANGLE_DEG - np.degrees(margin_px / np.maximum(radius, 1.0))) & \
        (radius < max_radius - margin_px)


def random_head(rng: np.random.Generator, hc_range=(180.0, 340.0), ratio_range=(0.75, 0.9),
                angle_deg: float | None = None, span=(0.55, 0.8)) -> tuple[Ellipse, float, float]:
    """(ellipse in pixels, pixel size mm, HC mm): OFD spans ``span`` of the frame height."""
    hc = rng.uniform(*hc_range)
    ratio = rng.uniform(*ratio_range)
    a_mm, b_mm = semi_axes_for_circumference(hc, ratio)
    ps = 2.0 * a_mm / (rng.uniform(*span) * H)
    a, b = a_mm / ps, b_mm / ps
    angle = rng.uniform(-90.0, 90.0) if angle_deg is None else angle_deg
    t = math.radians(angle)
    hx = math.sqrt((a * math.cos(t)) ** 2 + (b * math.sin(t)) ** 2)
    hy = math.sqrt((a * math.sin(t)) ** 2 + (b * math.cos(t)) ** 2)
    for _ in range(200):
        e = Ellipse(rng.uniform(hx + 12, W - hx - 12), rng.uniform(hy + 12, H - hy - 12), a, b, angle)
        if in_sector(e.points(180)).all():
            return e, ps, e.hc_mm(ps)
    e = Ellipse(W / 2.0, H / 2.0 + 20, a, b, angle)
    return e, ps, e.hc_mm(ps)


def skull_frame(rng: np.random.Generator, ellipse: Ellipse, pixel_size_mm: float, *, thickness_mm=3.0,
                csp_side: float | None = None, speckle: bool = True, sector: bool = True,
                midline: bool = True, hard: bool = False) -> np.ndarray:
    """(H, W) uint8 frame with the skull ring centred on ``ellipse``.

    ``hard``: a fainter skull with deep lateral drop-out, a bright maternal-wall band above the head and
    bright choroid-plexus-like blobs inside it (clutter for the detector)."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    pts = np.stack([xx.ravel(), yy.ravel()], axis=1)
    d_mm = (ellipse.distance(pts) * pixel_size_mm).reshape(H, W)
    local = ellipse.to_local(pts)
    t_rel = (local[:, 0] / ellipse.a).reshape(H, W)
    s_mm = (local[:, 1] * pixel_size_mm).reshape(H, W)

    image = np.where(d_mm < 0, 0.22, 0.14)
    image = np.where((d_mm > 1.5 * thickness_mm) & (d_mm < 6.0), 0.05, image)  # fluid around the head
    if midline:
        falx = (np.abs(s_mm) < 0.7) & (np.abs(t_rel) < 0.85) & (d_mm < -3.0)
        image = np.where(falx, 0.55, image)
    if csp_side is not None:
        csp = (np.abs(s_mm) < 0.09 * ellipse.b * pixel_size_mm) & (t_rel * csp_side > 0.25) & \
            (t_rel * csp_side < 0.5)
        image = np.where(csp, 0.02, image)

    # skull: Gaussian ring, brighter where the beam hits it perpendicularly
    sigma = thickness_mm / 2.355
    ring = np.exp(-0.5 * (d_mm / sigma) ** 2)
    n_local = np.stack([local[:, 0] / ellipse.a ** 2, local[:, 1] / ellipse.b ** 2], axis=1)
    normal = n_local @ np.stack([ellipse.major_axis, ellipse.minor_axis])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    beam = pts - APEX
    beam /= np.linalg.norm(beam, axis=1, keepdims=True)
    incidence = np.abs(np.sum(normal * beam, axis=1)).reshape(H, W)
    if hard:
        image = np.maximum(image, 0.75 * ring * (0.1 + 0.9 * incidence ** 4))
        # maternal wall: a 5 mm bright band on a wide arc above the head
        top = ellipse.cy - math.hypot(ellipse.a, ellipse.b) - rng.uniform(5, 40)
        radius_px = rng.uniform(1.5, 3.0) * W
        wall = np.abs(np.hypot(xx - W / 2.0, yy - (top + radius_px)) - radius_px) * pixel_size_mm < 2.5
        image = np.where(wall, np.maximum(image, 0.7), image)
        for _ in range(3):  # bright blobs inside the head
            c = ellipse.center + (rng.uniform(-0.5, 0.5) * ellipse.a * ellipse.major_axis
                                  + rng.uniform(-0.5, 0.5) * ellipse.b * ellipse.minor_axis)
            r_px = rng.uniform(2.0, 4.0) / pixel_size_mm
            image = np.where(np.hypot(xx - c[0], yy - c[1]) < r_px, np.maximum(image, 0.6), image)
    else:
        image = np.maximum(image, ring * (0.3 + 0.7 * incidence ** 2))

    if speckle:
        field = rng.normal(size=(H, W)) + 1j * rng.normal(size=(H, W))
        field = ndimage.gaussian_filter(field.real, 1.2) + 1j * ndimage.gaussian_filter(field.imag, 1.2)
        envelope = np.abs(field)
        image = image * envelope / envelope.mean()
        image += rng.normal(scale=0.01, size=image.shape)
    if sector:
        image[~in_sector(pts, margin_px=0.0).reshape(H, W)] = 0.0
    return np.clip(image * 255.0 * 1.1, 0, 255).astype(np.uint8)


def outline(ellipse: Ellipse, width: int = 1, shape=(H, W)) -> np.ndarray:
    """The annotation: the ellipse outline drawn 0/255, ``width`` (1 or 2) pixels wide."""
    n = int(8 * ellipse.circumference) + 16
    pts = np.rint(ellipse.points(n)).astype(int)
    image = np.zeros(shape, dtype=np.uint8)
    for dx in range(width):
        x = np.clip(pts[:, 0] + dx, 0, shape[1] - 1)
        y = np.clip(pts[:, 1], 0, shape[0] - 1)
        image[y, x] = 255
    return image


def write_png(array: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(array, isVector=array.ndim == 3), str(path))
    return path


def write_hc18(root: Path, entries, nested: bool = True) -> Path:
    """entries: (filename, pixel size, HC, frame uint8 or None, annotation uint8 or None) → ROOT with
    ``training_set[/training_set]/`` images and the CSV at ROOT. Returns the CSV path."""
    folder = root / "training_set" / "training_set" if nested else root / "training_set"
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["filename,pixel size(mm),head circumference (mm)"]
    for name, ps, hc, frame, annotation in entries:
        lines.append(f"{name},{ps:.9f},{hc:.2f}")
        stem = name[: -len(".png")]
        if frame is not None:
            write_png(frame, folder / name)
        if annotation is not None:
            write_png(annotation, folder / f"{stem}_Annotation.png")
    csv = root / "training_set_pixel_size_and_HC.csv"
    csv.write_text("\n".join(lines) + "\n")
    return csv
