"""B-mode ultrasound renderer of the digital fetal-head phantom (``shared/docs/anatomy.md`` §3.1, §4, §7.1).

:func:`render_ultrasound` turns any phantom label map (2D, :class:`~ddic.data.labels.Label` ids, isotropic
spacing) plus its outer-skull ellipse into an HC18-like frame: 800 × 540 px, a curvilinear sector with its
apex at the top, black outside the sector, a pixel size in HC18's range (0.052–0.326 mm). It also returns
the scan-converted label map (the US ground truth), the HC18 annotation image (the skull ellipse outline),
and the frame ↔ label-map geometry, so that a paired canonical image can be made from the same labels.
:func:`write_hc18_case` / :func:`write_hc18_csv` write a case in the HC18 layout.

Pipeline (all in the polar beam domain, depth × line, then scan conversion; anatomy.md §4.2):

1. *Geometry.* A convex probe of radius R with a sector of 60–80°; the head (random in-plane rotation of
   ±25°, a 180° turn, a mirror — the plane seen from either side —, lateral offset, depth) lies below a
   layered maternal wall and a gap of amniotic fluid. The label map is sampled along the beams.
2. *Scatterers.* One Gaussian amplitude per sample, scaled by the tissue's backscatter
   (:mod:`ddic.data.phantom.echogenicity`), with a low-frequency multiplicative texture in soft tissue.
3. *Specular interfaces* at impedance changes along each beam, R·|cos θ_inc|^n (bright skull where it is
   perpendicular to the beam, faint where tangent), coherent so lines stay crisp.
4. *Propagation losses.* Two-way attenuation (2·Σα·f0·dr) and the transmission loss of every interface
   (1 − R²): posterior shadowing behind the bone, darker far field, enhancement behind fluid.
5. *Near-field artefacts.* Ring-down copies of the proximal skull echo; haze inside the head from the
   *first* skull crossing to the midline — extra scatterers under a blotchy envelope (≈ 3 mm × 1–2 beam
   widths), +3…+8 dB over parenchyma at the bone, decaying onto a floor and fading out at the midline — so
   the proximal hemisphere is obscured (anechoic structures filled in, lower contrast); maternal-wall
   reverberation at 2× and 3× depth, only in fluid; side-lobe clutter (a wide, weak lateral PSF tail);
   electronic noise ≈ 90 dB below the skull echo as received, amplified by the TGC with depth.
6. *PSF and envelope* (:mod:`ddic.data.phantom.speckle`): lateral Gaussian growing away from the focus,
   axial Gaussian-modulated cosine at f0, envelope of the analytic signal along depth.
7. *TGC, auto-gain, log compression* to 8 bits over a 45–65 dB dynamic range, gamma.
8. *Scan conversion* (bilinear) to 800 × 540 px; optional light smoothing.

Coordinates. Label map: ``x`` = column·spacing, ``y`` = row·spacing in mm (the centre of pixel (0, 0) at
(0, 0), y down). Probe ("world"): ``x`` lateral, ``z`` down from the sector apex, in mm. Frame: continuous
pixel indices, the centre of pixel (row i, column j) at (x=j, y=i). Ellipse angles follow
:mod:`ddic.geometry.ellipse`: the major axis' direction from +x towards +y (clockwise as displayed),
normalised to (−90°, 90°], taken as HC18's ``angle_rad`` in degrees ([?] anatomy.md §9 item 4).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from ...errors import DDICInputError
from ...geometry.ellipse import normalise_angle_deg as _fold_angle_deg
from ...geometry.ellipse import ramanujan_circumference
from ..labels import BRAIN_LABELS, Label
from . import echogenicity as eg
from .speckle import BeamPsf, Psf, wavelength_mm

FRAME_WIDTH_PX = 800
FRAME_HEIGHT_PX = 540
HC18_PIXEL_SIZE_RANGE_MM = (0.052, 0.326)
HC18_CSV_HEADER = "filename,pixel size(mm),head circumference (mm)"

Range = tuple[float, float]
_SCALP_MARGIN_MM = 5.0  # room kept around the outer-skull ellipse for the scalp
_HAZE_FADE_MM = 6.0  # the haze fades out over this distance before the midline
_HEAD_INTERIOR = tuple(sorted(int(v) for v in BRAIN_LABELS))


# ---------------------------------------------------------------------------------------------------------
# Inputs and settings


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
class UltrasoundSettings:
    """Ranges from which each frame draws its acquisition (uniform; ``(v, v)`` fixes a value).

    Defaults follow anatomy.md §4.2–4.3 ([D] design values unless sourced there). Probabilities are in
    [0, 1]. ``keep_beam_data`` keeps the polar-domain envelope and labels on the frame (tests, tuning).
    """

    # probe and PSF
    frequency_mhz: Range = (2.0, 5.0)
    axial_fwhm_wavelengths: Range = (1.1, 1.4)  # pulse-echo envelope FWHM ≈ 0.45–0.6 mm at 3.5 MHz
    f_number: Range = (2.0, 3.0)  # lateral FWHM at the focus = λ·F#
    focus_depth_mm: Range = (50.0, 110.0)
    rayleigh_length_mm: Range = (20.0, 40.0)
    harmonic_probability: float = 0.5  # harmonic imaging: lateral PSF 1.4× narrower, less near-field clutter
    sidelobe_db: Range = (-40.0, -30.0)
    probe_radius_mm: Range = (40.0, 60.0)
    sector_angle_deg: Range = (60.0, 80.0)
    scan_depth_mm: Range = (120.0, 200.0)
    min_lines: int = 192
    max_lines: int = 512
    # placement
    wall_thickness_mm: Range = (10.0, 40.0)
    amniotic_gap_mm: Range = (3.0, 25.0)
    min_head_depth_mm: float = 20.0
    far_wall_probability: float = 0.5
    far_wall_gap_mm: Range = (5.0, 40.0)
    rotation_deg: Range = (-25.0, 25.0)  # midline tilt from horizontal
    turn_probability: float = 0.5  # 180° turn: occiput on the other side
    mirror_probability: float = 0.5  # the plane seen from the other side: the other hemisphere proximal
    lateral_offset_fraction: Range = (-0.15, 0.15)  # head centre, of the sector width at its depth
    head_width_fraction: Range = (0.45, 0.85)  # OFD / frame width (sets the pixel size)
    # tissue
    backscatter_jitter_db: float = 3.0  # per tissue, per frame, ± uniform
    skull_attenuation_scale: Range = (0.7, 1.3)
    skull_impedance_mrayl: Range = (2.5, 4.0)
    specular_exponent: Range = (1.0, 2.0)
    texture_db: Range = (1.0, 3.0)  # non-Rayleigh texture: SD of a smooth multiplicative field
    texture_correlation_mm: Range = (2.0, 5.0)
    # artefacts
    haze_db: Range = (3.0, 8.0)
    haze_decay_mm: Range = (10.0, 15.0)
    haze_floor: Range = (0.3, 0.5)  # haze kept (amplitude fraction) through the proximal hemisphere
    haze_width_beams: Range = (1.0, 2.0)  # lateral size of the haze blotches, in focal beam widths
    ringdown_probability: float = 0.6
    ringdown_spacing_mm: Range = (1.0, 3.0)
    ringdown_factor: Range = (0.2, 0.45)
    wall_reverberation_db: Range = (-30.0, -20.0)
    noise_floor_db: Range = (-120.0, -110.0)  # re the unattenuated skull echo: ≈ 90 dB below it as received
    # display
    tgc_alpha_db_cm_mhz: Range = (0.4, 0.6)
    tgc_jitter: Range = (0.8, 1.2)
    tgc_knot_sd_db: float = 1.5
    dynamic_range_db: Range = (45.0, 65.0)
    parenchyma_grey: Range = (60.0, 110.0)  # auto-gain target for the median brain-tissue grey
    gamma: Range = (0.8, 1.2)
    smoothing_probability: float = 0.5
    smoothing_px: Range = (0.4, 0.9)
    keep_beam_data: bool = False

    def validate(self) -> "UltrasoundSettings":
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                if len(value) != 2 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in value):
                    raise DDICInputError(f"Ultrasound setting {f.name} must be a (low, high) pair of numbers, "
                                         f"got {value!r}.")
                if value[0] > value[1]:
                    raise DDICInputError(f"Ultrasound setting {f.name}: low {value[0]} > high {value[1]}.")
            elif f.name.endswith("_probability") and not 0.0 <= float(value) <= 1.0:
                raise DDICInputError(f"Ultrasound setting {f.name} must be in [0, 1], got {value!r}.")
        positive = ("frequency_mhz", "axial_fwhm_wavelengths", "f_number", "focus_depth_mm", "rayleigh_length_mm",
                    "probe_radius_mm", "scan_depth_mm", "dynamic_range_db", "gamma", "texture_correlation_mm",
                    "haze_decay_mm", "haze_width_beams", "ringdown_spacing_mm", "skull_impedance_mrayl",
                    "head_width_fraction")
        for name in positive:
            if getattr(self, name)[0] <= 0:
                raise DDICInputError(f"Ultrasound setting {name} must be positive, got {getattr(self, name)!r}.")
        if not 10.0 <= self.sector_angle_deg[0] <= self.sector_angle_deg[1] <= 120.0:
            raise DDICInputError(f"sector_angle_deg must lie in [10, 120] degrees, got {self.sector_angle_deg}.")
        if not 0 < self.min_lines <= self.max_lines:
            raise DDICInputError(f"Need 0 < min_lines ≤ max_lines, got {self.min_lines}, {self.max_lines}.")
        if not (0.0 <= self.parenchyma_grey[0] and self.parenchyma_grey[1] < 255.0):
            raise DDICInputError(f"parenchyma_grey must lie in [0, 255), got {self.parenchyma_grey}.")
        return self


@dataclass(frozen=True)
class Acquisition:
    """Everything one frame drew from :class:`UltrasoundSettings` (JSON-able through :meth:`to_dict`)."""

    frequency_mhz: float
    harmonic: bool
    axial_fwhm_mm: float
    f_number: float
    lateral_fwhm_focus_mm: float
    focus_depth_mm: float
    rayleigh_length_mm: float
    sidelobe_db: float
    probe_radius_mm: float
    sector_angle_deg: float
    n_lines: int
    scan_depth_mm: float
    simulated_depth_mm: float
    dr_mm: float
    wall_thickness_mm: float
    wall_wave: tuple[float, float, float]  # amplitude mm, angular frequency per rad, phase
    wall_layers: tuple[float, float, float]  # skin mm, fat and muscle fractions of the rest
    amniotic_gap_mm: float
    far_wall_depth_mm: float | None
    rotation_deg: float  # in-plane rotation label map → probe (after the mirror), clockwise as displayed
    mirrored: bool
    head_center_world_mm: tuple[float, float]  # (x lateral, z below the sector apex)
    head_axis_world_deg: float  # direction of the ellipse's major axis (the midline) in the world
    pixel_size_mm: float
    window_origin_mm: tuple[float, float]  # world (x, z) of the frame's top-left corner
    backscatter_jitter_db: tuple[float, ...]  # per id 0…max render id
    skull_attenuation_scale: float
    skull_impedance_mrayl: float
    specular_exponent: float
    texture_db: float
    texture_correlation_mm: float
    haze_db: float
    haze_decay_mm: float
    haze_floor: float
    haze_width_beams: float
    ringdown: bool
    ringdown_spacing_mm: float
    ringdown_factor: float
    wall_reverberation_db: float
    noise_floor_db: float
    tgc_alpha_db_cm_mhz: float
    tgc_knots_db: tuple[float, ...]
    dynamic_range_db: float
    parenchyma_grey: float
    gamma: float
    smoothing_px: float  # 0: none

    def psf(self) -> Psf:
        return Psf(self.frequency_mhz, self.axial_fwhm_mm, self.lateral_fwhm_focus_mm, self.focus_depth_mm,
                   self.rayleigh_length_mm, self.sidelobe_db)

    def to_dict(self) -> dict:
        return asdict(self)


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


@dataclass
class BeamData:
    """The polar (depth × line) domain of one frame, sector lines only (kept with ``keep_beam_data``)."""

    envelope: np.ndarray  # float32, after propagation losses, before TGC and log compression
    labels: np.ndarray  # uint8 ground-truth labels along the beams
    render_ids: np.ndarray  # uint8 tissue ids (labels + render-only ids)
    depth_mm: np.ndarray  # (n_depth,) below the transducer face
    theta_rad: np.ndarray  # (n_lines,) line angles from the central line
    tgc_db: np.ndarray  # (n_depth,)
    gain_db: float
    display: np.ndarray  # float32 0…255, log-compressed, before scan conversion
    haze_mask: np.ndarray  # bool: where near-field haze was added
    psf: Psf
    probe_radius_mm: float

    @property
    def line_spacing_mm(self) -> np.ndarray:
        """Arc length between neighbouring lines at each depth."""
        dtheta = float(self.theta_rad[1] - self.theta_rad[0])
        return (self.probe_radius_mm + self.depth_mm) * dtheta


@dataclass
class UltrasoundFrame:
    """One rendered HC18-like frame and its ground truth."""

    image: np.ndarray  # (540, 800) uint8, 0 outside the sector
    labels: np.ndarray  # (540, 800) uint8 Label ids, 0 outside the sector
    annotation: np.ndarray  # (540, 800) uint8, the skull ellipse outline 0/255 (HC18 *_Annotation.png)
    sector_mask: np.ndarray  # (540, 800) bool
    geometry: FrameGeometry
    acquisition: Acquisition
    seed: int | None = None
    beam: BeamData | None = field(default=None, repr=False)

    @property
    def pixel_size_mm(self) -> float:
        return self.geometry.pixel_size_mm

    @property
    def head_circumference_mm(self) -> float:
        return self.geometry.head_circumference_mm


# ---------------------------------------------------------------------------------------------------------
# Input checks


def _check_labels(labels) -> np.ndarray:
    if not isinstance(labels, np.ndarray):
        try:
            labels = np.asarray(labels)
        except Exception as exc:  # noqa: BLE001 - anything unconvertible is a user input problem
            raise DDICInputError(f"The label map must be a 2D array, got {type(labels).__name__}.") from exc
    if labels.ndim != 2:
        raise DDICInputError(f"The label map must be 2D (rows, cols), got shape {labels.shape}. Render one "
                             "slice at a time.")
    if min(labels.shape) < 2:
        raise DDICInputError(f"The label map is too small: shape {labels.shape}.")
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
        raise DDICInputError(f"The label map must hold integer Label ids (uint8), got dtype {labels.dtype}.")
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi > max(int(v) for v in Label):
        raise DDICInputError(f"Label ids must lie in 0…{max(int(v) for v in Label)} (ddic.data.labels.Label), "
                             f"got {lo}…{hi}.")
    return np.ascontiguousarray(labels, dtype=np.uint8)


def _check_spacing(spacing_mm) -> float:
    values = np.atleast_1d(np.asarray(spacing_mm, dtype=object))
    try:
        values = np.asarray([float(v) for v in values.ravel()])
    except (TypeError, ValueError) as exc:
        raise DDICInputError(f"The label spacing must be a positive number of mm, got {spacing_mm!r}.") from exc
    if values.size not in (1, 2) or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise DDICInputError(f"The label spacing must be a positive number of mm, got {spacing_mm!r}.")
    if values.size == 2 and abs(values[0] - values[1]) > 1e-6 * values.max():
        raise DDICInputError(f"The label spacing must be isotropic, got {tuple(values)}; resample first.")
    return float(values[0])


def _check_seed(seed) -> np.random.Generator:
    if isinstance(seed, bool):
        raise DDICInputError(f"The seed must be a non-negative integer, got {seed!r}.")
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as exc:
        raise DDICInputError(f"The seed must be a non-negative integer, got {seed!r}.") from exc


# ---------------------------------------------------------------------------------------------------------
# Placement: label map ↔ probe ("world") ↔ frame


@dataclass(frozen=True)
class _Placement:
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


def _ellipse_points(cx, cz, a, b, angle, n=96) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    ca, sa = math.cos(angle), math.sin(angle)
    x = cx + a * np.cos(t) * ca - b * np.sin(t) * sa
    z = cz + a * np.cos(t) * sa + b * np.sin(t) * ca
    return x, z


def _draw(rng: np.random.Generator, bounds: Range) -> float:
    lo, hi = float(bounds[0]), float(bounds[1])
    return lo if lo == hi else float(rng.uniform(lo, hi))


def _sample_acquisition(settings: UltrasoundSettings, rng: np.random.Generator, ellipse: HeadEllipse,
                        n_ids: int) -> Acquisition:
    s = settings
    f0 = _draw(rng, s.frequency_mhz)
    harmonic = bool(rng.random() < s.harmonic_probability)
    lam = wavelength_mm(f0)
    axial = _draw(rng, s.axial_fwhm_wavelengths) * lam
    f_number = _draw(rng, s.f_number)
    lateral = lam * f_number / (1.4 if harmonic else 1.0)
    focus = _draw(rng, s.focus_depth_mm)
    z_r = _draw(rng, s.rayleigh_length_mm)
    sidelobe = _draw(rng, s.sidelobe_db) - (5.0 if harmonic else 0.0)
    radius = _draw(rng, s.probe_radius_mm)
    sector = math.radians(_draw(rng, s.sector_angle_deg))
    # head pose
    rotation = math.radians(_draw(rng, s.rotation_deg))
    if rng.random() < s.turn_probability:
        rotation += math.pi
    mirrored = bool(rng.random() < s.mirror_probability)
    beta = (-ellipse.angle_rad if mirrored else ellipse.angle_rad) + rotation  # world angle of the major axis
    a, b = ellipse.semi_axis_a_mm, ellipse.semi_axis_b_mm
    half_x = math.sqrt((a * math.cos(beta)) ** 2 + (b * math.sin(beta)) ** 2)
    half_z = math.sqrt((a * math.sin(beta)) ** 2 + (b * math.cos(beta)) ** 2)
    wall = _draw(rng, s.wall_thickness_mm)
    wall_wave = (_draw(rng, (0.0, 2.0)), _draw(rng, (1.0, 5.0)), _draw(rng, (0.0, 2 * math.pi)))
    skin = _draw(rng, (1.5, 2.5))
    wall_layers = (min(skin, 0.3 * wall), _draw(rng, (0.15, 0.4)), _draw(rng, (0.25, 0.45)))
    gap = _draw(rng, s.amniotic_gap_mm)
    d_top = max(wall + gap, s.min_head_depth_mm)
    offset = _draw(rng, s.lateral_offset_fraction)
    margin_angle = math.radians(2.0)
    grown_a, grown_b = a + _SCALP_MARGIN_MM, b + _SCALP_MARGIN_MM
    for _ in range(200):
        zc = radius + d_top + half_z
        xc = offset * 2.0 * zc * math.tan(sector / 2)
        px, pz = _ellipse_points(xc, zc, grown_a, grown_b, beta)
        theta_ok = np.max(np.abs(np.arctan2(px, pz))) <= sector / 2 - margin_angle
        depth_ok = np.min(np.hypot(px, pz)) - radius >= wall + wall_wave[0] + 1.0
        if theta_ok and depth_ok:
            break
        if not theta_ok:
            offset *= 0.7
            if abs(offset) < 0.01:
                d_top += 3.0
        if not depth_ok:
            d_top += 2.0
    else:  # pragma: no cover - only for absurd sector/head combinations
        raise DDICInputError(f"Cannot fit a head of semi-axes {a:.1f} × {b:.1f} mm into the ultrasound sector.")
    head_bottom = float(np.max(np.hypot(px, pz)) - radius)
    # pixel size: OFD spans a random fraction of the frame width, the whole head fits
    width_fraction = _draw(rng, s.head_width_fraction)
    pixel = 2.0 * a / (FRAME_WIDTH_PX * width_fraction)
    fit = max(2.0 * (half_x + _SCALP_MARGIN_MM) / (0.96 * FRAME_WIDTH_PX),
              2.0 * (half_z + _SCALP_MARGIN_MM) / (0.92 * FRAME_HEIGHT_PX))
    pixel = float(np.clip(max(pixel, fit), *HC18_PIXEL_SIZE_RANGE_MM))
    if fit > HC18_PIXEL_SIZE_RANGE_MM[1] * 1.02:
        raise DDICInputError(f"The head ellipse ({2 * a:.0f} × {2 * b:.0f} mm) does not fit an 800 × 540 frame "
                             f"at HC18's largest pixel size ({HC18_PIXEL_SIZE_RANGE_MM[1]} mm); check its units.")
    width_mm, height_mm = FRAME_WIDTH_PX * pixel, FRAME_HEIGHT_PX * pixel
    slack_x = max(0.0, width_mm / 2 - half_x - _SCALP_MARGIN_MM)
    left = xc - width_mm / 2 + rng.uniform(-0.7, 0.7) * slack_x
    top_low = zc + half_z + _SCALP_MARGIN_MM - height_mm  # lowest allowed top (head bottom still in view)
    top_high = zc - half_z - _SCALP_MARGIN_MM
    show_face = rng.random() < 0.6
    jitter = rng.random()
    if top_low > top_high:
        top = 0.5 * (top_low + top_high)
    elif show_face:
        top = float(np.clip(radius - 0.04 * jitter * height_mm, top_low, top_high))
    else:
        top = top_low + jitter * (top_high - top_low)
    scan_depth = max(_draw(rng, s.scan_depth_mm), head_bottom + 10.0)
    corners = [(left, top + height_mm), (left + width_mm, top + height_mm)]
    window_depth = max(math.hypot(x, z) for x, z in corners) - radius
    simulated = float(min(scan_depth, window_depth))
    far_wall = None
    if rng.random() < s.far_wall_probability:
        far_wall = head_bottom + _draw(rng, s.far_wall_gap_mm)
    # beam grid: lines so that the focal beam width spans ≳ 2 lines at the head's depth
    n_lines = int(np.clip(math.ceil(sector * (radius + head_bottom) / (lateral / 2.2)), s.min_lines, s.max_lines))
    dr = lam / 8.0
    jitter_db = tuple(float(v) for v in rng.uniform(-s.backscatter_jitter_db, s.backscatter_jitter_db, n_ids))
    return Acquisition(
        frequency_mhz=f0, harmonic=harmonic, axial_fwhm_mm=axial, f_number=f_number,
        lateral_fwhm_focus_mm=lateral, focus_depth_mm=focus, rayleigh_length_mm=z_r, sidelobe_db=sidelobe,
        probe_radius_mm=radius, sector_angle_deg=math.degrees(sector), n_lines=n_lines, scan_depth_mm=scan_depth,
        simulated_depth_mm=simulated, dr_mm=dr, wall_thickness_mm=wall, wall_wave=wall_wave,
        wall_layers=wall_layers, amniotic_gap_mm=gap, far_wall_depth_mm=far_wall,
        rotation_deg=math.degrees(rotation), mirrored=mirrored, head_center_world_mm=(xc, zc),
        head_axis_world_deg=math.degrees(beta), pixel_size_mm=pixel,
        window_origin_mm=(left, top), backscatter_jitter_db=jitter_db,
        skull_attenuation_scale=_draw(rng, s.skull_attenuation_scale),
        skull_impedance_mrayl=_draw(rng, s.skull_impedance_mrayl), specular_exponent=_draw(rng, s.specular_exponent),
        texture_db=_draw(rng, s.texture_db), texture_correlation_mm=_draw(rng, s.texture_correlation_mm),
        haze_db=_draw(rng, s.haze_db) - (3.0 if harmonic else 0.0), haze_decay_mm=_draw(rng, s.haze_decay_mm),
        haze_floor=_draw(rng, s.haze_floor),
        haze_width_beams=_draw(rng, s.haze_width_beams), ringdown=bool(rng.random() < s.ringdown_probability),
        ringdown_spacing_mm=_draw(rng, s.ringdown_spacing_mm),
        ringdown_factor=_draw(rng, s.ringdown_factor) * (0.7 if harmonic else 1.0),
        wall_reverberation_db=_draw(rng, s.wall_reverberation_db), noise_floor_db=_draw(rng, s.noise_floor_db),
        tgc_alpha_db_cm_mhz=_draw(rng, s.tgc_alpha_db_cm_mhz) * _draw(rng, s.tgc_jitter),
        tgc_knots_db=tuple(float(v) for v in rng.normal(0.0, s.tgc_knot_sd_db, 6)) if s.tgc_knot_sd_db > 0
        else (0.0,) * 6,
        dynamic_range_db=_draw(rng, s.dynamic_range_db), parenchyma_grey=_draw(rng, s.parenchyma_grey),
        gamma=_draw(rng, s.gamma),
        smoothing_px=_draw(rng, s.smoothing_px) if rng.random() < s.smoothing_probability else 0.0,
    )


# ---------------------------------------------------------------------------------------------------------
# Label sampling


def _render_ids(labels: np.ndarray, spacing: float) -> np.ndarray:
    """Labels plus the render-only ids: echogenic fissure/cistern borders, periventricular halo."""
    ids = labels.copy()
    border_px = max(1, int(round(0.6 / spacing)))
    for label in (Label.SYLVIAN_FISSURE, Label.AMBIENT_CISTERN):
        mask = labels == label
        if mask.any():
            box = _bbox(mask, border_px + 1)
            inner = ndimage.binary_erosion(mask[box], iterations=border_px, border_value=1)
            ids[box][mask[box] & ~inner] = eg.ECHOGENIC_BORDER
    ventricles = labels == Label.LATERAL_VENTRICLE
    if ventricles.any():
        halo_px = 2.0 / spacing
        box = _bbox(ventricles, int(math.ceil(halo_px)) + 1)
        distance = ndimage.distance_transform_edt(~ventricles[box])
        sub = ids[box]
        sub[(distance <= halo_px) & (labels[box] == Label.WHITE_MATTER)] = eg.PERIVENTRICULAR_HALO
    return ids


def _bbox(mask: np.ndarray, pad: int) -> tuple[slice, slice]:
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    return (slice(max(0, rows[0] - pad), min(mask.shape[0], rows[-1] + pad + 1)),
            slice(max(0, cols[0] - pad), min(mask.shape[1], cols[-1] + pad + 1)))


def _world_labels(acq: Acquisition, placement: _Placement, labels: np.ndarray, ids: np.ndarray | None,
                  spacing: float, x: np.ndarray, z: np.ndarray, depth: np.ndarray, theta: np.ndarray):
    """Ground-truth labels (and render ids) at world points: the label map, the maternal wall(s), fluid."""
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


# ---------------------------------------------------------------------------------------------------------
# Noise fields


def _upsample_linear(coarse: np.ndarray, shape: tuple[int, int], step: tuple[float, float]) -> np.ndarray:
    """Separable linear interpolation of a coarse grid (node k at k·step) onto a full grid."""
    out = coarse
    for axis, (n, st) in enumerate(zip(shape, step)):
        pos = np.arange(n) / st
        i0 = np.minimum(pos.astype(np.int64), out.shape[axis] - 2)
        w = (pos - i0).astype(np.float32)
        a = np.take(out, i0, axis=axis)
        b = np.take(out, i0 + 1, axis=axis)
        w = w[:, None] if axis == 0 else w[None, :]
        out = a + (b - a) * w
    return out.astype(np.float32, copy=False)


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], step: tuple[float, float],
                  sigma: tuple[float, float], complex_valued: bool = False) -> np.ndarray:
    """Unit-RMS Gaussian random field, smoothed with ``sigma`` (coarse units) on a grid of ``step`` samples."""
    coarse_shape = (int(math.ceil(shape[0] / step[0])) + 2, int(math.ceil(shape[1] / step[1])) + 2)
    parts = []
    for _ in range(2 if complex_valued else 1):
        noise = rng.standard_normal(coarse_shape, dtype=np.float32)
        noise = ndimage.gaussian_filter(noise, sigma, mode="wrap")
        noise /= max(float(noise.std()), 1e-12)
        parts.append(noise)
    if complex_valued:
        coarse = (parts[0] + 1j * parts[1]).astype(np.complex64) / np.float32(math.sqrt(2.0))
        return (_upsample_linear(coarse.real.copy(), shape, step)
                + 1j * _upsample_linear(coarse.imag.copy(), shape, step)).astype(np.complex64)
    return _upsample_linear(parts[0], shape, step)


# ---------------------------------------------------------------------------------------------------------
# Rendering


def render_ultrasound(labels, spacing_mm, ellipse, seed, settings: UltrasoundSettings | None = None
                      ) -> UltrasoundFrame:
    """Render one HC18-like B-mode frame of a phantom label map (see the module docstring).

    ``labels``: 2D integer array of :class:`~ddic.data.labels.Label` ids; ``spacing_mm``: its isotropic
    pixel spacing; ``ellipse``: its outer-skull :class:`HeadEllipse` (mm of the label map, or a mapping /
    5-sequence of the same fields); ``seed``: the frame is a deterministic function of the inputs and the seed.
    """
    labels = _check_labels(labels)
    spacing = _check_spacing(spacing_mm)
    ellipse = HeadEllipse.coerce(ellipse)
    settings = (settings or UltrasoundSettings()).validate()
    rng = _check_seed(seed)
    n_ids = max(eg.RENDER_ONLY_IDS) + 1
    acq = _sample_acquisition(settings, rng, ellipse, n_ids)
    placement = _Placement((ellipse.center_x_mm, ellipse.center_y_mm), acq.head_center_world_mm,
                           math.radians(acq.rotation_deg), acq.mirrored)
    ids = _render_ids(labels, spacing)
    beam = _simulate_beams(acq, placement, labels, ids, spacing, rng)
    image, frame_labels, sector = _scan_convert(acq, placement, labels, spacing, beam)
    geometry = _frame_geometry(acq, placement, ellipse, spacing)
    annotation = draw_ellipse_outline((FRAME_HEIGHT_PX, FRAME_WIDTH_PX), geometry.center_x_px,
                                      geometry.center_y_px, geometry.semi_axis_a_px, geometry.semi_axis_b_px,
                                      geometry.angle_deg)
    return UltrasoundFrame(image=image, labels=frame_labels, annotation=annotation, sector_mask=sector,
                           geometry=geometry, acquisition=acq, seed=seed if isinstance(seed, int) else None,
                           beam=beam if settings.keep_beam_data else None)


def _simulate_beams(acq: Acquisition, placement: _Placement, labels: np.ndarray, ids: np.ndarray,
                    spacing: float, rng: np.random.Generator) -> BeamData:
    f0, dr, radius = acq.frequency_mhz, acq.dr_mm, acq.probe_radius_mm
    psf = acq.psf()
    sector = math.radians(acq.sector_angle_deg)
    dtheta = sector / acq.n_lines
    n_depth = int(acq.simulated_depth_mm / dr) + 1
    depth = (np.arange(n_depth) * dr).astype(np.float32)
    r = depth + np.float32(radius)
    # extra lines beyond the sector edges so that the lateral convolution sees scatterers there too
    sigma_lines = psf.lateral_fwhm_mm(depth) / 2.3548 / (r * dtheta)
    margin = int(min(64, math.ceil(3.0 * float(sigma_lines.max()))))
    n_total = acq.n_lines + 2 * margin
    theta = ((np.arange(n_total) - margin + 0.5) * dtheta - sector / 2).astype(np.float32)
    x = r[:, None] * np.sin(theta)[None, :]
    z = r[:, None] * np.cos(theta)[None, :]
    lab, rid = _world_labels(acq, placement, labels, ids, spacing, x, z, depth[:, None], theta[None, :])
    del x, z
    shape = lab.shape
    jitter = {i: v for i, v in enumerate(acq.backscatter_jitter_db)}
    tables = eg.TissueTables.build(jitter, acq.skull_attenuation_scale, acq.skull_impedance_mrayl)

    # specular reflection at impedance changes along the beam, weighted by the incidence angle
    imp = tables.impedance[rid]
    refl = np.zeros(shape, np.float32)
    refl[1:] = (imp[1:] - imp[:-1]) / (imp[1:] + imp[:-1])
    smooth = ndimage.gaussian_filter(imp, (max(0.3 / dr, 1.0), 1.0))
    del imp
    g_r = np.gradient(smooth, axis=0) / np.float32(dr)
    g_t = np.gradient(smooth, axis=1) / (r[:, None] * np.float32(dtheta))
    del smooth
    cos_inc = np.abs(g_r) / np.sqrt(g_r * g_r + g_t * g_t + np.float32(1e-12))
    del g_r, g_t
    specular = refl / np.float32(eg.SKULL_REFLECTION) * cos_inc ** np.float32(acq.specular_exponent)
    del cos_inc
    # propagation losses: two-way attenuation and interface transmission, accumulated before each sample
    step_db = (tables.attenuation[rid] * np.float32(2.0 * f0 * dr / 10.0)
               - np.float32(20.0) * np.log10(np.float32(1.0) - refl * refl))
    del refl
    loss_db = np.cumsum(step_db, axis=0, dtype=np.float32) - step_db
    del step_db
    transmission = np.power(np.float32(10.0), -loss_db / np.float32(20.0))
    del loss_db

    beam_psf = BeamPsf(psf, dr, depth, r * dtheta, n_total)
    std = beam_psf.diffuse_std()[:, None]
    amplitude = np.power(np.float32(10.0), tables.backscatter_db[rid] / np.float32(20.0))
    if acq.texture_db > 0:
        step = (max(1.0, 1.0 / dr), max(1.0, 1.0 / (float(r[len(r) // 2]) * dtheta)))
        field_ = _smooth_field(rng, shape, step, (acq.texture_correlation_mm / 2.0,) * 2)
        texture = np.power(np.float32(10.0), field_ * np.float32(acq.texture_db / 20.0))
        amplitude = np.where(tables.textured[rid], amplitude * texture, amplitude)
        del field_, texture
    scatter = rng.standard_normal(shape, dtype=np.float32)
    scatter *= amplitude * std
    del amplitude
    scatter += specular
    scatter *= transmission

    # first skull crossing per line: ring-down copies below it, haze after it
    rows = np.arange(shape[0])[:, None]
    is_skull = lab == Label.SKULL
    has_skull = is_skull.any(axis=0)
    first = np.argmax(is_skull, axis=0)
    exit_ = np.argmax(~(is_skull | (rows < first)), axis=0)
    exit_ = np.where(has_skull, exit_, shape[0])
    head = np.isin(lab, _HEAD_INTERIOR)
    if acq.ringdown and has_skull.any():
        first_crossing = (rows >= first) & (rows <= exit_) & has_skull[None, :]
        source = np.where(first_crossing, specular * transmission, np.float32(0))
        del first_crossing
        shift = max(1, int(round(acq.ringdown_spacing_mm / dr)))
        target = head | is_skull
        for k in range(1, 4):
            if k * shift >= shape[0]:
                break
            copy = np.zeros(shape, np.float32)
            copy[k * shift:] = source[:-k * shift]
            scatter += np.where(target, copy * np.float32(acq.ringdown_factor ** k), np.float32(0))
        del source, copy, target
    del specular
    # maternal-wall reverberation: stretched copies of the wall echoes at 2× and 3× depth, only in fluid
    in_wall = np.isin(rid, eg.WALL_IDS) & (depth[:, None] < acq.wall_thickness_mm + acq.wall_wave[0] + 1.0)
    if in_wall.any():
        wall_echo = np.where(in_wall, scatter, np.float32(0))
        gain2 = np.float32(10.0 ** (acq.wall_reverberation_db / 20.0))
        reverb = gain2 * wall_echo[np.arange(shape[0]) // 2] + gain2 * np.float32(0.5) * wall_echo[
            np.arange(shape[0]) // 3]
        scatter += np.where(lab == Label.AMNIOTIC_FLUID, reverb, np.float32(0))
        del wall_echo, reverb
    del in_wall
    # near-field haze inside the head, from the first skull crossing to the midline (proximal hemisphere):
    # extra scatterers under a blotchy envelope (≈ 3 mm along the beam × 1–2 beam widths), decaying from the
    # bone onto a floor and faded out over the last few mm before the midline
    midline = _midline_depth(acq, theta)
    haze_mask = head & (rows >= exit_) & (depth[:, None] < midline[None, :])
    if haze_mask.any():
        width_lines = acq.haze_width_beams * acq.lateral_fwhm_focus_mm / (float(np.median(r)) * dtheta)
        step = (max(1.0, 0.25 / dr), max(1.0, width_lines / 3.0))
        sigma = (3.0 / 2.3548 / 0.25, width_lines / 2.3548 / step[1])
        blotches = np.abs(_smooth_field(rng, shape, step, sigma, complex_valued=True))
        blotches /= np.float32(max(float(np.sqrt(np.mean(blotches ** 2))), 1e-12))
        level = 10.0 ** ((tables.backscatter_db[Label.WHITE_MATTER] + acq.haze_db) / 20.0)
        exit_depth = (np.where(has_skull, exit_, 0) * dr)[None, :]
        below_bone = np.maximum(depth[:, None] - exit_depth, 0)
        profile = acq.haze_floor + (1 - acq.haze_floor) * np.exp(-below_bone / acq.haze_decay_mm)
        fade = np.clip((midline[None, :] - depth[:, None]) / _HAZE_FADE_MM, 0.0, 1.0)
        profile = (profile * (0.5 - 0.5 * np.cos(np.pi * fade))).astype(np.float32)
        haze = rng.standard_normal(shape, dtype=np.float32)
        haze *= blotches * profile * transmission * (std * np.float32(level))
        scatter += np.where(haze_mask, haze, np.float32(0))
        del haze, profile, fade, below_bone, blotches
    del transmission
    # electronic noise (before TGC, so TGC amplifies it with depth)
    scatter += rng.standard_normal(shape, dtype=np.float32) * (std * np.float32(10.0 ** (acq.noise_floor_db / 20)))

    analytic = beam_psf(scatter)
    del scatter

    envelope = np.abs(analytic).astype(np.float32)
    del analytic

    # crop to the sector's lines, TGC, auto-gain, log compression
    cut = slice(margin, margin + acq.n_lines)
    envelope, lab, rid, haze_mask = envelope[:, cut], lab[:, cut], rid[:, cut], haze_mask[:, cut]
    knots = np.linspace(0.0, float(depth[-1]), len(acq.tgc_knots_db))
    tgc_db = (2.0 * acq.tgc_alpha_db_cm_mhz * f0 * depth / 10.0
              + np.interp(depth, knots, acq.tgc_knots_db)).astype(np.float32)
    level_db = np.float32(20.0) * np.log10(envelope + np.float32(1e-12)) + tgc_db[:, None]
    dyn = acq.dynamic_range_db
    target_db = -dyn + dyn * (acq.parenchyma_grey / 255.0) ** (1.0 / acq.gamma)
    tissue = np.isin(rid, eg.PARENCHYMA_IDS)
    if tissue.sum() < 100:
        tissue = ~np.isin(rid, eg.FLUID_IDS + (int(Label.SKULL),))
    if tissue.sum() >= 100:
        gain_db = float(target_db - np.median(level_db[tissue]))
    else:  # nothing but fluid: put nominal white matter at the target
        gain_db = float(target_db - tables.backscatter_db[Label.WHITE_MATTER])
    display = np.clip((level_db + np.float32(gain_db + dyn)) / np.float32(dyn), 0.0, 1.0)
    display = (display ** np.float32(acq.gamma)) * np.float32(255.0)
    return BeamData(envelope=envelope, labels=lab, render_ids=rid, depth_mm=depth,
                    theta_rad=theta[cut].copy(), tgc_db=tgc_db, gain_db=gain_db, display=display.astype(np.float32),
                    haze_mask=haze_mask, psf=psf, probe_radius_mm=radius)


def _midline_depth(acq: Acquisition, theta: np.ndarray) -> np.ndarray:
    """Depth below the face at which each line crosses the head's major axis (inf if it never does)."""
    cx, cz = acq.head_center_world_mm
    beta = math.radians(acq.head_axis_world_deg)
    theta = np.asarray(theta, dtype=np.float64)
    det = np.cos(theta + beta)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (-cx * math.sin(beta) + cz * math.cos(beta)) / det
    r = np.where((np.abs(det) > 1e-6) & (r > 0), r, np.inf)
    return (r - acq.probe_radius_mm).astype(np.float32)


def _frame_world(acq: Acquisition) -> tuple[np.ndarray, np.ndarray]:
    left, top = acq.window_origin_mm
    p = acq.pixel_size_mm
    xs = (left + (np.arange(FRAME_WIDTH_PX) + 0.5) * p).astype(np.float32)
    zs = (top + (np.arange(FRAME_HEIGHT_PX) + 0.5) * p).astype(np.float32)
    return np.broadcast_to(xs[None, :], (FRAME_HEIGHT_PX, FRAME_WIDTH_PX)), \
        np.broadcast_to(zs[:, None], (FRAME_HEIGHT_PX, FRAME_WIDTH_PX))


def _scan_convert(acq: Acquisition, placement: _Placement, labels: np.ndarray, spacing: float, beam: BeamData):
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
    lab, _ = _world_labels(acq, placement, labels, None, spacing, x, z, depth, theta)
    lab = np.where(sector, lab, np.uint8(Label.BACKGROUND)).astype(np.uint8)
    return image, lab, sector


def _frame_geometry(acq: Acquisition, placement: _Placement, ellipse: HeadEllipse, spacing: float) -> FrameGeometry:
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


# ---------------------------------------------------------------------------------------------------------
# HC18 writing


class Hc18Row(NamedTuple):
    """One row of HC18's ``training_set_pixel_size_and_HC.csv``."""

    filename: str
    pixel_size_mm: float
    head_circumference_mm: float

    def to_csv(self) -> str:
        return f"{self.filename},{self.pixel_size_mm:.12g},{self.head_circumference_mm:.2f}"


def write_hc18_case(folder: str | os.PathLike, name: str, frame: UltrasoundFrame) -> Hc18Row:
    """Write ``NAME.png`` (the frame) and ``NAME_Annotation.png`` (the skull outline) atomically in
    ``folder``; return the CSV row. HC18 names look like ``012_HC`` or ``012_2HC``."""
    from ...io.images import write_png

    name = str(name)
    if name.lower().endswith(".png"):
        name = name[:-4]
    if not name or "/" in name or "\\" in name or name in (".", "..") or name.startswith("."):
        raise DDICInputError(f"Case name {name!r} must be a plain file stem such as 012_HC (no folders).")
    if not isinstance(frame, UltrasoundFrame):
        raise DDICInputError(f"write_hc18_case needs an UltrasoundFrame, got {type(frame).__name__}.")
    folder = Path(folder)
    write_png(frame.image, folder / f"{name}.png")
    write_png(frame.annotation, folder / f"{name}_Annotation.png")
    return Hc18Row(f"{name}.png", float(frame.pixel_size_mm), float(frame.head_circumference_mm))


def write_hc18_csv(path: str | os.PathLike, rows: Iterable[Hc18Row | Sequence]) -> Path:
    """Write the HC18 CSV (``filename,pixel size(mm),head circumference (mm)``) atomically."""
    from ...io.atomic import write_text_atomic

    lines = [HC18_CSV_HEADER]
    for row in rows:
        try:
            row = Hc18Row(str(row[0]), float(row[1]), float(row[2]))
        except (TypeError, ValueError, IndexError) as exc:
            raise DDICInputError(f"Not an HC18 row (filename, pixel size, HC): {row!r}.") from exc
        lines.append(row.to_csv())
    path = Path(path)
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path
