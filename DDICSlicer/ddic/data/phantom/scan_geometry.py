"""Scan geometry of the phantom's B-mode frames: probe, sector, head placement, beam grid and frame grid.

Why one module: four coordinate systems meet in the renderer and every stage needs the same maps between
them. Label map: ``x`` = column·spacing, ``y`` = row·spacing in mm (the centre of pixel (0, 0) at (0, 0),
y down). Probe ("world"): ``x`` lateral, ``z`` down from the sector apex, in mm. Beam grid: depth samples
× beam lines (:class:`BeamGrid`). Frame: continuous pixel indices, the centre of pixel (row i, column j)
at (x=j, y=i), 800 × 540 px. Ellipse angles follow :mod:`ddic.geometry.ellipse`: the major axis' direction
from +x towards +y (clockwise as displayed), normalised to (−90°, 90°], taken as HC18's ``angle_rad`` in
degrees ([?] anatomy.md §9 item 4).

The random draw of a frame's pose and window is :func:`ddic.data.phantom.acquisition.sample_acquisition`;
this module holds what is fixed once those numbers are drawn.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING

import numpy as np

from ...errors import DDICInputError
from ...geometry.ellipse import normalise_angle_deg as _fold_angle_deg
from ...geometry.ellipse import ramanujan_circumference
from ..labels import Label
from . import echogenicity as eg

if TYPE_CHECKING:  # the acquisition record is drawn with this module's helpers: a type-only import
    from .acquisition import Acquisition
    from .speckle import Psf

FRAME_WIDTH_PX = 800
FRAME_HEIGHT_PX = 540
HC18_PIXEL_SIZE_RANGE_MM = (0.052, 0.326)
"""HC18's frame size and range of pixel sizes: every rendered frame is one HC18 could hold."""


@dataclass(frozen=True)
class HeadEllipse:
    """The outer-skull ellipse of a label map, in mm of the label map (see the module docstring).

    ``semi_axis_a_mm`` ≥ ``semi_axis_b_mm`` (half the OFD and half the outer BPD); ``angle_rad`` is the
    direction of the major axis from +x towards +y (0 for a canonical map: midline horizontal).
    """

    center_x_mm: float
    center_y_mm: float
    semi_axis_a_mm: float
    semi_axis_b_mm: float
    angle_rad: float = 0.0

    def __post_init__(self) -> None:
        values = [self.center_x_mm, self.center_y_mm, self.semi_axis_a_mm, self.semi_axis_b_mm, self.angle_rad]
        try:
            values = [float(v) for v in values]
        except (TypeError, ValueError) as exc:
            raise DDICInputError(f"Head ellipse parameters must be numbers, got {values!r}.") from exc
        if not all(math.isfinite(v) for v in values):
            raise DDICInputError(f"Head ellipse parameters must be finite, got {values}.")
        cx, cy, a, b, angle = values
        if a <= 0 or b <= 0:
            raise DDICInputError(f"Head ellipse semi-axes must be positive mm, got a={a}, b={b}.")
        if b > a:
            a, b, angle = b, a, angle + math.pi / 2
        angle = math.radians(_fold_angle_deg(math.degrees(angle)))  # an axis: fold into (−π/2, π/2]
        for name, value in zip(("center_x_mm", "center_y_mm", "semi_axis_a_mm", "semi_axis_b_mm", "angle_rad"),
                               (cx, cy, a, b, angle)):
            object.__setattr__(self, name, value)

    @classmethod
    def centred(cls, shape: Sequence[int], spacing_mm: float, a_mm: float, b_mm: float,
                angle_rad: float = 0.0) -> "HeadEllipse":
        """The ellipse centred on a label map of ``shape`` (rows, cols): the canonical placement."""
        rows, cols = int(shape[0]), int(shape[1])
        return cls((cols - 1) / 2 * spacing_mm, (rows - 1) / 2 * spacing_mm, a_mm, b_mm, angle_rad)

    @classmethod
    def coerce(cls, value) -> "HeadEllipse":
        """A :class:`HeadEllipse` from itself, a mapping with its field names, or a 5-sequence."""
        if isinstance(value, HeadEllipse):
            return value
        if isinstance(value, Mapping):
            try:
                return cls(**{f.name: value[f.name] for f in fields(cls) if f.name in value})
            except TypeError as exc:
                raise DDICInputError(
                    f"Head ellipse mapping {dict(value)!r} lacks fields; need center_x_mm, center_y_mm, "
                    "semi_axis_a_mm, semi_axis_b_mm and optionally angle_rad.") from exc
        if isinstance(value, Sequence) and not isinstance(value, str) and len(value) in (4, 5):
            return cls(*value)
        raise DDICInputError(
            f"Cannot use {value!r} as the head ellipse: give a HeadEllipse, a mapping with center_x_mm, "
            "center_y_mm, semi_axis_a_mm, semi_axis_b_mm, angle_rad, or those five numbers.")

    @property
    def circumference_mm(self) -> float:
        return ramanujan_circumference(self.semi_axis_a_mm, self.semi_axis_b_mm)


@dataclass(frozen=True)
class FrameGeometry:
    """Where the head is in the frame and how the frame maps onto the label map.

    The ellipse (pixels, :mod:`ddic.geometry.ellipse` conventions) is the input outer-skull ellipse.
    ``proximal_hemisphere``: which half of the label map (``"canonical_top"``: rows above the ellipse's
    major axis, ``"canonical_bottom"``: below) faced the probe — the degraded, hazy one.
    ``frame_from_labels``: 2×3 affine, label-map pixel (col, row, 1) → frame pixel (x, y).
    """

    pixel_size_mm: float
    center_x_px: float
    center_y_px: float
    semi_axis_a_px: float
    semi_axis_b_px: float
    angle_deg: float
    proximal_hemisphere: str
    rotation_deg: float
    mirrored: bool
    label_spacing_mm: float
    frame_from_labels: tuple[tuple[float, float, float], tuple[float, float, float]]

    @property
    def angle_rad(self) -> float:
        return math.radians(self.angle_deg)

    @property
    def head_circumference_mm(self) -> float:
        return ramanujan_circumference(self.semi_axis_a_px, self.semi_axis_b_px) * self.pixel_size_mm

    def hc18_ellipse(self) -> dict[str, float]:
        """The HC18 submission columns (mm from the centre of pixel (0, 0), radians)."""
        p = self.pixel_size_mm
        return {"center_x_mm": self.center_x_px * p, "center_y_mm": self.center_y_px * p,
                "semi_axes_a_mm": self.semi_axis_a_px * p, "semi_axes_b_mm": self.semi_axis_b_px * p,
                "angle_rad": self.angle_rad}

    def labels_from_frame(self) -> np.ndarray:
        """2×3 affine, frame pixel (x, y, 1) → label-map pixel (col, row)."""
        m = np.asarray(self.frame_from_labels, dtype=np.float64)
        inv = np.linalg.inv(m[:, :2])
        return np.concatenate([inv, -inv @ m[:, 2:]], axis=1)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["frame_from_labels"] = [list(r) for r in self.frame_from_labels]
        out["head_circumference_mm"] = self.head_circumference_mm
        return out


# ---------------------------------------------------------------------------------------------------------
# Label map ↔ probe ("world") ↔ beams ↔ frame


@dataclass(frozen=True)
class HeadPlacement:
    """Where the label map's head sits in the world: its centre in both, the in-plane rotation and the mirror."""

    center_map: tuple[float, float]  # mm, label map
    center_world: tuple[float, float]  # mm, world
    rotation_rad: float
    mirrored: bool

    def linear(self) -> np.ndarray:
        """2×2 map → world linear part: rotation after the mirror (y ↦ −y about the centre)."""
        c, s = math.cos(self.rotation_rad), math.sin(self.rotation_rad)
        rot = np.array([[c, -s], [s, c]])
        mirror = np.diag([1.0, -1.0 if self.mirrored else 1.0])
        return rot @ mirror

    def world_to_map(self, x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        inv = np.linalg.inv(self.linear())
        dx = x - np.float32(self.center_world[0])
        dz = z - np.float32(self.center_world[1])
        u = np.float32(inv[0, 0]) * dx + np.float32(inv[0, 1]) * dz + np.float32(self.center_map[0])
        v = np.float32(inv[1, 0]) * dx + np.float32(inv[1, 1]) * dz + np.float32(self.center_map[1])
        return u, v


def ellipse_points(cx, cz, a, b, angle, n=96) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points (x, z) on an ellipse of centre (cx, cz), semi-axes a, b, major axis at ``angle`` rad."""
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    ca, sa = math.cos(angle), math.sin(angle)
    x = cx + a * np.cos(t) * ca - b * np.sin(t) * sa
    z = cz + a * np.cos(t) * sa + b * np.sin(t) * ca
    return x, z


@dataclass(frozen=True)
class BeamGrid:
    """The polar sampling of one frame: depth samples ``dr`` mm apart × beam lines ``dtheta`` rad apart.

    ``margin`` extra lines lie beyond each sector edge so that the lateral convolution sees scatterers
    there too; :attr:`sector_lines` selects the sector's own ``n_lines``. ``depth``: mm below the
    transducer face, ``r``: mm from the sector apex (both float32, per depth sample); ``theta``: each
    line's angle from the central line (float32).
    """

    dr: float
    dtheta: float
    margin: int
    n_lines: int
    depth: np.ndarray
    r: np.ndarray
    theta: np.ndarray

    @classmethod
    def of(cls, acq: Acquisition, psf: Psf) -> BeamGrid:
        dr, radius = acq.dr_mm, acq.probe_radius_mm
        sector = math.radians(acq.sector_angle_deg)
        dtheta = sector / acq.n_lines
        n_depth = int(acq.simulated_depth_mm / dr) + 1
        depth = (np.arange(n_depth) * dr).astype(np.float32)
        r = depth + np.float32(radius)
        # extra lines beyond the sector edges: three lateral PSF sigmas (in lines) at the widest, ≤ 64
        sigma_lines = psf.lateral_fwhm_mm(depth) / 2.3548 / (r * dtheta)
        margin = int(min(64, math.ceil(3.0 * float(sigma_lines.max()))))
        n_total = acq.n_lines + 2 * margin
        theta = ((np.arange(n_total) - margin + 0.5) * dtheta - sector / 2).astype(np.float32)
        return cls(dr, dtheta, margin, acq.n_lines, depth, r, theta)

    @property
    def n_total(self) -> int:
        """Lines simulated, margins included."""
        return len(self.theta)

    @property
    def sector_lines(self) -> slice:
        return slice(self.margin, self.margin + self.n_lines)

    def world_points(self) -> tuple[np.ndarray, np.ndarray]:
        """World (x, z) of every grid sample, (n_depth, n_total) each."""
        x = self.r[:, None] * np.sin(self.theta)[None, :]
        z = self.r[:, None] * np.cos(self.theta)[None, :]
        return x, z


def world_labels(acq: Acquisition, placement: HeadPlacement, labels: np.ndarray, ids: np.ndarray | None,
                 spacing: float, x: np.ndarray, z: np.ndarray, depth: np.ndarray, theta: np.ndarray):
    """Ground-truth labels (and render ids) at world points: the label map, the maternal wall(s), fluid.

    The walls are drawn here rather than in the label map because they follow the probe (a band below
    the transducer face, wavy, with skin, fat, muscle and myometrium layers as render ids), not the head.
    """
    u, v = placement.world_to_map(x, z)
    col = np.rint(u / np.float32(spacing)).astype(np.int32)
    row = np.rint(v / np.float32(spacing)).astype(np.int32)
    inside = (col >= 0) & (col < labels.shape[1]) & (row >= 0) & (row < labels.shape[0])
    np.clip(col, 0, labels.shape[1] - 1, out=col)
    np.clip(row, 0, labels.shape[0] - 1, out=row)
    lab = np.where(inside, labels[row, col], np.uint8(Label.AMNIOTIC_FLUID))
    rid = np.where(inside, ids[row, col], np.uint8(Label.AMNIOTIC_FLUID)) if ids is not None else None
    del col, row, inside, u, v
    background = lab == Label.BACKGROUND
    lab[background] = Label.AMNIOTIC_FLUID
    if rid is not None:
        rid[background] = Label.AMNIOTIC_FLUID
    amplitude, frequency, phase = acq.wall_wave
    wall_edge = acq.wall_thickness_mm + amplitude * np.sin(frequency * theta + phase)
    fluid = lab == Label.AMNIOTIC_FLUID
    near = fluid & (depth < wall_edge)
    lab[near] = Label.MATERNAL_WALL
    if rid is not None:
        skin, fat, muscle = acq.wall_layers
        q = depth / wall_edge  # 0 at the face, 1 at the wall's inner edge
        q_skin = skin / acq.wall_thickness_mm
        q_fat = q_skin + fat * (1 - q_skin)
        q_muscle = q_fat + muscle * (1 - q_skin)
        layer = np.select([q < q_skin, q < q_fat, q < q_muscle],
                          [eg.WALL_SKIN, eg.WALL_FAT, eg.WALL_MUSCLE], eg.WALL_MYOMETRIUM).astype(np.uint8)
        rid[near] = layer[near]
    if acq.far_wall_depth_mm is not None:
        far = fluid & (depth > acq.far_wall_depth_mm + amplitude * np.sin(frequency * theta + phase + 1.0))
        lab[far] = Label.MATERNAL_WALL
        if rid is not None:
            rid[far] = eg.WALL_MYOMETRIUM
    return lab, rid


def midline_depth(acq: Acquisition, theta: np.ndarray) -> np.ndarray:
    """Depth below the face at which each line crosses the head's major axis (inf if it never does)."""
    cx, cz = acq.head_center_world_mm
    beta = math.radians(acq.head_axis_world_deg)
    theta = np.asarray(theta, dtype=np.float64)
    det = np.cos(theta + beta)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (-cx * math.sin(beta) + cz * math.cos(beta)) / det
    r = np.where((np.abs(det) > 1e-6) & (r > 0), r, np.inf)
    return (r - acq.probe_radius_mm).astype(np.float32)


def frame_geometry(acq: Acquisition, placement: HeadPlacement, ellipse: HeadEllipse, spacing: float
                   ) -> FrameGeometry:
    """The frame ↔ label-map geometry of a rendered frame (see :class:`FrameGeometry`)."""
    p = acq.pixel_size_mm
    left, top = acq.window_origin_mm
    linear = placement.linear()
    cw = np.asarray(placement.center_world)
    cm = np.asarray(placement.center_map)
    # label pixel (col, row) → map mm (·spacing) → world → frame continuous index
    a_lin = linear * spacing / p
    offset = (cw - linear @ cm - np.array([left, top])) / p - 0.5
    matrix = tuple(tuple(float(v) for v in row) for row in np.concatenate([a_lin, offset[:, None]], axis=1))
    center = (cw - np.array([left, top])) / p - 0.5
    angle = (-ellipse.angle_rad if acq.mirrored else ellipse.angle_rad) + placement.rotation_rad
    # which label-map half faced the probe: compare its outward direction with the direction to the apex
    to_apex = -cw / np.linalg.norm(cw)
    # the canonical "top" half is the side of the major axis towards −y *in the ellipse's own frame*
    ca, sa = math.cos(ellipse.angle_rad), math.sin(ellipse.angle_rad)
    minor_up_map = np.array([sa, -ca])  # the minor-axis direction with a negative y component (for |angle|<90°)
    up_world = linear @ minor_up_map
    proximal = "canonical_top" if float(up_world @ to_apex) > 0 else "canonical_bottom"
    return FrameGeometry(pixel_size_mm=p, center_x_px=float(center[0]), center_y_px=float(center[1]),
                         semi_axis_a_px=ellipse.semi_axis_a_mm / p, semi_axis_b_px=ellipse.semi_axis_b_mm / p,
                         angle_deg=_fold_angle_deg(math.degrees(angle)), proximal_hemisphere=proximal,
                         rotation_deg=acq.rotation_deg, mirrored=acq.mirrored, label_spacing_mm=spacing,
                         frame_from_labels=matrix)
