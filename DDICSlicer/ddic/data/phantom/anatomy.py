"""Parametric fetal-head anatomy of the transthalamic (TT) plane, 21–38 weeks, as a label map.

Why: both renderers (ultrasound and T2 MRI) and every paired metric need one ground truth with known sizes.
:func:`sample_anatomy` draws one fetus (all sizes, positions and boundary-noise settings, anatomy.md §6.2) from
the laws in :mod:`.biometry`; :func:`render_labels` rasterises it, deterministically, into a :class:`Label` map
in the *canonical orientation* (``ddic.geometry.canonical``): head centre at the image centre, midline
horizontal, occiput at the left, frontal at the right.

Conventions [decision]:
- Head frame in mm: ``u`` along the midline (posterior → anterior = image x), ``v`` across it (= image y,
  downwards). The **fetal left hemisphere is the lower image half** (v > 0), the right the upper half —
  the radiological axial view rotated so that anterior points right.
- ``slice_offset_mm`` moves the plane along the head's superior axis (+ = up, towards the vertex / TV
  plane). The skull is an ellipsoid; each inner structure has its own vertical centre and half-height
  (``Z_LAYOUT``), so structures shrink, grow and appear smoothly and differently with the offset. Every
  sampled size (atrium width, CSP width, …) is the size *at offset 0*, the plane the phantom "measures" in.
- Boundaries carry low-order Fourier noise (harmonics 2–8); shapes are rasterised on a ``supersample``×
  finer grid and mode-downsampled, so label edges are clean and the areas unbiased.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from ...errors import DDICInputError
from ...geometry.canonical import CANONICAL_SIZE_PX, CANONICAL_SPACING_MM
from ..labels import Label
from . import biometry as bio
from .painting import paint_section, sylvian_half_width  # noqa: F401  (sylvian_half_width re-exported)
from .section_geometry import (  # noqa: F401  (re-exported: the section geometry is part of the anatomy API)
    SIDE_SIGN, SIDES, Z_LAYOUT, AtriumGeometry, Section, atrium_geometry, atrium_mantle_mm, head_section,
    medial_clearance_mm, midline_offset, structure_profile,
)
from .shapes import Canvas, mode_downsample, pixel_axes, spacing_pair  # noqa: F401  (pixel_axes re-exported)

PATHOLOGIES = (None, "ventriculomegaly")


# --------------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sulcus:
    """One convexity sulcus slot (§2.5): where it is, when it appears, how deep it gets."""

    position: float  # 0 = frontal end … 1 = occipital end of the convexity range (Sylvian region excluded)
    onset_ga_weeks: float
    max_depth_mm: float
    cleft_mm: float  # width of the CSF cleft
    tilt_deg: float  # deviation from the surface normal
    branch_deg: float  # 0: no branch; else the angle of a side branch (deep sulci only)


@dataclass(frozen=True)
class Hemisphere:
    """Per-side sizes, independent left/right (§6.2 step 6)."""

    atrium_width_mm: float
    atrium_length_frac: float  # straight part of the atrium, × inner semi-OFD
    atrium_u_frac: float  # centre behind the head centre, × inner semi-OFD
    atrium_v_frac: float  # centre off the midline, × inner semi-BPD
    atrium_axis_deg: float  # ventricle axis vs the midline (diverges posteriorly)
    choroid_fill: float  # glomus width / atrium width (60–90 % normal, §2.3)
    choroid_dangling: bool
    frontal_horn_width_mm: float
    frontal_horn_length_frac: float
    frontal_horn_angle_deg: float
    ecsf_mm: float
    sylvian_stage: float
    sylvian_u_frac: float
    insula_half_length_frac: float
    basal_ganglia_scale: float
    ambient_arm_deg: float
    pof_scale: float
    sulci: tuple[Sulcus, ...]


@dataclass(frozen=True)
class BoundaryNoise:
    """Fourier boundary noise (§6.2 step 7): relative RMS radius perturbation per boundary family; the
    coefficients follow deterministically from ``seed`` and the structure."""

    seed: int
    head_rms: float
    brain_rms: float
    structure_rms: float
    ventricle_rms: float
    min_harmonic: int = 2
    max_harmonic: int = 8


@dataclass(frozen=True)
class AnatomyParams:
    """Everything :func:`render_labels` needs: one fetus, all sizes in mm at the TT plane (offset 0)."""

    seed: int
    ga_weeks: float
    maturation_offset_weeks: float
    pathology: str | None
    hc_mm: float
    hc_z: float
    cephalic_index: float  # BPD (outer-inner) / OFD, the IG convention
    skull_a_mm: float  # outer skull semi-axis along the midline (OFD / 2)
    skull_b_mm: float  # outer skull semi-axis across (BPD outer-outer / 2)
    head_height_mm: float  # outer vertical semi-axis (slice-offset range)
    skull_thickness_mm: float
    scalp_thickness_mm: float
    cortex_thickness_mm: float
    germinal_matrix_mm: float
    csp_present: bool
    csp_width_mm: float
    csp_length_mm: float
    csp_position_frac: float  # CSP centre from the frontal inner table, × inner OFD (§2.3: 0.30–0.35)
    genu_mm: float
    third_ventricle_mm: float
    falx_mm: float
    interhemispheric_csf_mm: float
    midline_bend_frac: float
    thalamus_ap_frac: float  # thalamic semi-axis along the midline, × inner OFD (§2.3: 0.10–0.12)
    thalamus_lr_frac: float  # transverse semi-axis, × inner BPD (§2.3: 0.08–0.09)
    thalamus_u_frac: float  # centre behind the head centre, × inner semi-OFD
    ambient_cistern_mm: float
    hippocampus_mm: float
    left: Hemisphere
    right: Hemisphere
    noise: BoundaryNoise

    @property
    def ga_effective_weeks(self) -> float:
        """GA shifted by the maturation offset: drives sulci, operculisation, GM, subplate, WM T2 (§6.2 step 5)."""
        return float(self.ga_weeks + self.maturation_offset_weeks)

    @property
    def ofd_mm(self) -> float:
        return 2.0 * self.skull_a_mm

    @property
    def bpd_outer_mm(self) -> float:
        return 2.0 * self.skull_b_mm

    @property
    def bpd_mm(self) -> float:
        """Outer-to-inner BPD (the IG convention, §1.1)."""
        return 2.0 * self.skull_b_mm - self.skull_thickness_mm

    def hemisphere(self, side: str) -> Hemisphere:
        if side not in SIDES:
            raise DDICInputError(f"side must be one of {SIDES}, not {side!r}")
        return self.left if side == "left" else self.right

    def to_dict(self) -> dict:
        return _plain(asdict(self))


@dataclass(frozen=True)
class AnatomyConfig:
    """Sampling ranges of :func:`sample_anatomy` that are not GA laws (those live in :mod:`.biometry`)."""

    hc_z_limit: float = 2.5  # §6.2 step 2
    maturation_limit_weeks: float = 2.5
    head_noise_rms: tuple[float, float] = (0.002, 0.006)  # the skull contour is smooth (§2.1)
    brain_noise_rms: tuple[float, float] = (0.01, 0.02)  # 1–3 % of the radius (§6.2 step 7)
    structure_noise_rms: tuple[float, float] = (0.015, 0.03)
    ventricle_noise_rms: float = 0.01  # small: the atrium width is a measured ground truth
    head_height_ratio: tuple[float, float] = (0.90, 1.05)  # vertical / transverse outer semi-axis [D]


# --------------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------------


def _tn(rng: np.random.Generator, lo: float, hi: float) -> float:
    """Standard normal truncated to [lo, hi] by rejection (deterministic for a given generator)."""
    for _ in range(1000):
        x = rng.standard_normal()
        if lo <= x <= hi:
            return float(x)
    return float(np.clip(rng.standard_normal(), lo, hi))


def _tn_value(rng, mean, sd, low, high) -> float:
    return float(mean + sd * _tn(rng, (low - mean) / sd, (high - mean) / sd))


def solve_skull_semi_axes(hc_mm: float, cephalic_index: float, skull_thickness_mm: float) -> tuple[float, float]:
    """Outer semi-axes (a, b) with Ramanujan(a, b) = HC and (2b − skull)/(2a) = CI (outer-inner BPD, §6.2
    step 3). Bisection: the perimeter grows monotonically with a."""
    lo, hi = hc_mm / 12.0, hc_mm / 3.0
    for _ in range(80):
        a = 0.5 * (lo + hi)
        b = (cephalic_index * 2.0 * a + skull_thickness_mm) / 2.0
        if bio.ramanujan_perimeter(a, b) < hc_mm:
            lo = a
        else:
            hi = a
    a = 0.5 * (lo + hi)
    return float(a), float((cephalic_index * 2.0 * a + skull_thickness_mm) / 2.0)


def _largest_fitting_atrium(A: float, B: float, ecsf: float, cortex: float, u_frac: float, v_frac: float,
                            medial: float) -> float:
    """Widest ventriculomegalic atrium (10–20 mm, 0.25-mm steps) whose lumen fits inside the WM at this
    position, clear of the midline structures and of the cortex; 10 mm where even that does not fit."""
    lo_w, hi_w = bio.VENTRICULOMEGALY_ATRIUM_RANGE_MM
    A_b, B_b = A - ecsf, B - ecsf
    u = -u_frac * A
    for width in np.arange(hi_w, lo_w, -0.25):
        v_lim = B_b * math.sqrt(max(0.0, 1.0 - (u / A_b) ** 2))
        mantle = atrium_mantle_mm(width)
        lo, hi = width / 2.0 + medial, v_lim - width / 2.0 - cortex - mantle
        if lo > hi:
            continue
        v = float(np.clip(v_frac * B, lo, hi))
        a_in, b_in = A_b - cortex - mantle - width / 2.0, B_b - cortex - mantle - width / 2.0
        if a_in > 0 and b_in > 0 and (u / a_in) ** 2 + (v / b_in) ** 2 <= 1.0:
            return float(width)
    return float(lo_w)


def sample_anatomy(seed: int, ga_weeks: float | None = None, ga_range: tuple[float, float] = (21.0, 38.0),
                   pathology: str | None = None, config: AnatomyConfig | None = None) -> AnatomyParams:
    """Draw one fetus (anatomy.md §6.2). Deterministic per ``(seed, ga_weeks, ga_range, pathology, config)``.

    ``pathology="ventriculomegaly"`` gives atria of 10–20 mm (bilateral, sides independent; capped where a
    small head cannot hold 20 mm), enlarged frontal horns and a dangling choroid (§2.3).
    """
    if pathology not in PATHOLOGIES:
        raise DDICInputError(f"pathology must be one of {PATHOLOGIES}, not {pathology!r}")
    lo_ga, hi_ga = bio.IG_VALID_GA_WEEKS
    if ga_weeks is not None and not lo_ga <= ga_weeks <= hi_ga:
        raise DDICInputError(f"ga_weeks={ga_weeks} is outside the INTERGROWTH range {lo_ga}–{hi_ga} weeks")
    if not (lo_ga <= ga_range[0] <= ga_range[1] <= hi_ga):
        raise DDICInputError(f"ga_range={ga_range} must lie within {lo_ga}–{hi_ga} weeks, low ≤ high")
    cfg = config or AnatomyConfig()
    rng = np.random.default_rng(int(seed))

    ga = float(ga_weeks) if ga_weeks is not None else float(rng.uniform(*ga_range))
    maturation = bio.MATURATION_OFFSET_SD_WEEKS * _tn(rng, -cfg.maturation_limit_weeks, cfg.maturation_limit_weeks)
    ga_eff = float(np.clip(ga + maturation, 18.0, 40.0))

    # head size and shape (§6.2 steps 2–3)
    hc_z = _tn(rng, -cfg.hc_z_limit, cfg.hc_z_limit)
    hc = float(bio.hc_mean_mm(ga) + hc_z * bio.hc_sd_mm(ga))
    ci = _tn_value(rng, float(bio.cephalic_index_mean(ga)), bio.CEPHALIC_INDEX_SD, *bio.CEPHALIC_INDEX_RANGE)
    skull = float(bio.skull_thickness_mm(ga) * (1.0 + bio.SKULL_THICKNESS_REL_SD * _tn(rng, -2.0, 2.0)))
    a, b = solve_skull_semi_axes(hc, ci, skull)
    height = float(b * rng.uniform(*cfg.head_height_ratio))
    scalp = float(np.clip(bio.scalp_thickness_mm(ga) * rng.uniform(0.8, 1.2), 1.5, 3.0))
    cortex = float(bio.cortex_thickness_mm(ga_eff) * rng.uniform(0.9, 1.1))
    gm = float(bio.germinal_matrix_width_mm(ga_eff) * rng.uniform(0.85, 1.15))
    gm = gm if gm >= 0.3 else 0.0

    # midline structures (§2.3)
    csp_present = bool(rng.random() >= bio.csp_absent_probability(ga))
    csp_width = _tn_value(rng, float(bio.csp_width_mean_mm(ga)), bio.CSP_WIDTH_SD_MM, *bio.CSP_WIDTH_RANGE_MM)
    csp_length = csp_width * float(rng.uniform(*bio.CSP_LENGTH_TO_WIDTH))
    csp_pos = float(rng.uniform(0.30, 0.35))
    genu = float(rng.uniform(2.5, 4.0) * a / 50.0)
    third = float(rng.uniform(1.0, 2.0))
    falx = float(rng.uniform(0.6, 1.0))
    ihf = float(rng.uniform(0.4, 1.0))
    bend = float(0.01 * _tn(rng, -2.5, 2.5))
    th_ap, th_lr, th_u = (float(rng.uniform(0.10, 0.12)), float(rng.uniform(0.08, 0.09)),
                          float(rng.uniform(0.0, 0.08)))
    ambient = float(rng.uniform(1.5, 2.5))
    hippocampus = float(rng.uniform(2.0, 3.0))

    # per-fetus atrium and eCSF levels, then independent sides (§6.2 steps 5–6)
    atrium_fetus = _tn_value(rng, float(bio.atrium_mean_mm(ga)), float(bio.atrium_sd_mm(ga)),
                             *bio.ATRIUM_NORMAL_RANGE_MM)
    ecsf_fetus = float(bio.ecsf_width_mm(ga_eff) * (1.0 + bio.ECSF_REL_SD * _tn(rng, -2.0, 2.0)))
    sylvian_jitter = 0.75 * _tn(rng, -2.0, 2.0)
    A, B = a - skull, b - skull
    sides = {}
    for side in SIDES:
        ecsf = ecsf_fetus * float(rng.uniform(*bio.ECSF_SIDE_RANGE))
        atrium_u, atrium_v = float(rng.uniform(0.45, 0.55)), float(rng.uniform(0.38, 0.44))
        if pathology == "ventriculomegaly":
            atrium_u -= 0.07  # the enlarged trigone reaches forward, where the hemisphere is wider
            medial = 0.5 * falx + ihf + cortex + 1.0
            hi_w = _largest_fitting_atrium(A, B, ecsf, cortex, atrium_u, atrium_v, medial)
            width = float(rng.uniform(bio.VENTRICULOMEGALY_ATRIUM_RANGE_MM[0], hi_w))
            horn = float(rng.uniform(2.0, 4.0) * rng.uniform(1.3, 1.8))
            fill, dangling = float(rng.uniform(0.3, 0.55)), True
        else:
            width = float(np.clip(atrium_fetus * (1.0 + bio.ATRIUM_SIDE_CV * rng.standard_normal()),
                                  *bio.ATRIUM_NORMAL_RANGE_MM))
            horn = float(rng.uniform(2.0, 4.0))
            fill, dangling = float(rng.uniform(0.6, 0.9)), False
        stage = float(bio.sylvian_stage(ga_eff + sylvian_jitter + 0.3 * _tn(rng, -2.0, 2.0)))
        sides[side] = Hemisphere(
            atrium_width_mm=width, atrium_length_frac=float(rng.uniform(0.22, 0.32)), atrium_u_frac=atrium_u,
            atrium_v_frac=atrium_v, atrium_axis_deg=float(rng.uniform(15.0, 30.0)),
            choroid_fill=fill, choroid_dangling=dangling, frontal_horn_width_mm=horn,
            frontal_horn_length_frac=float(rng.uniform(0.16, 0.24)),
            frontal_horn_angle_deg=float(rng.uniform(10.0, 25.0)), ecsf_mm=ecsf, sylvian_stage=stage,
            sylvian_u_frac=float(rng.uniform(-0.02, 0.12)),
            insula_half_length_frac=float(np.clip(rng.normal(0.20, 0.02), 0.15, 0.25)),
            basal_ganglia_scale=float(rng.uniform(0.9, 1.1)), ambient_arm_deg=float(rng.uniform(40.0, 55.0)),
            pof_scale=float(np.clip(rng.normal(1.0, 0.15), 0.6, 1.4)), sulci=_sample_sulci(rng),
        )
    noise = BoundaryNoise(seed=int(rng.integers(0, 2**31 - 1)), head_rms=float(rng.uniform(*cfg.head_noise_rms)),
                          brain_rms=float(rng.uniform(*cfg.brain_noise_rms)),
                          structure_rms=float(rng.uniform(*cfg.structure_noise_rms)),
                          ventricle_rms=cfg.ventricle_noise_rms)
    return AnatomyParams(
        seed=int(seed), ga_weeks=ga, maturation_offset_weeks=float(maturation), pathology=pathology, hc_mm=hc,
        hc_z=hc_z, cephalic_index=ci, skull_a_mm=a, skull_b_mm=b, head_height_mm=height,
        skull_thickness_mm=skull, scalp_thickness_mm=scalp, cortex_thickness_mm=cortex, germinal_matrix_mm=gm,
        csp_present=csp_present, csp_width_mm=csp_width, csp_length_mm=csp_length, csp_position_frac=csp_pos,
        genu_mm=genu, third_ventricle_mm=third, falx_mm=falx, interhemispheric_csf_mm=ihf,
        midline_bend_frac=bend, thalamus_ap_frac=th_ap, thalamus_lr_frac=th_lr, thalamus_u_frac=th_u,
        ambient_cistern_mm=ambient, hippocampus_mm=hippocampus, left=sides["left"], right=sides["right"],
        noise=noise,
    )


def _sample_sulci(rng: np.random.Generator, law: bio.SulcationLaw = bio.SULCATION) -> tuple[Sulcus, ...]:
    """Sulcus slots spread evenly over the convexity (stratified), with independent onsets (§2.5)."""
    order = rng.permutation(law.slots)
    sulci = []
    for i in range(law.slots):
        position = (order[i] + rng.uniform(0.2, 0.8)) / law.slots
        onset = rng.uniform(*law.onset_window_weeks)
        depth = rng.uniform(*law.max_depth_mm)
        cleft = rng.uniform(*law.cleft_width_mm)
        tilt = rng.normal(0.0, 8.0)
        branch = (rng.choice([-1.0, 1.0]) * rng.uniform(25.0, 50.0)) if rng.random() < law.branch_probability else 0.0
        sulci.append(Sulcus(float(position), float(onset), float(depth), float(cleft), float(tilt), float(branch)))
    return tuple(sulci)


def with_atrium_widths(params: AnatomyParams, left_mm: float | None = None,
                       right_mm: float | None = None) -> AnatomyParams:
    """A copy with set atrium widths (e.g. to render a chosen ventriculomegaly grade)."""
    left = params.left if left_mm is None else replace(params.left, atrium_width_mm=float(left_mm))
    right = params.right if right_mm is None else replace(params.right, atrium_width_mm=float(right_mm))
    return replace(params, left=left, right=right)


def _plain(value):
    """asdict output → JSON-ready plain Python (numpy scalars and tuples converted)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


# --------------------------------------------------------------------------------------------------
# Public rendering
# --------------------------------------------------------------------------------------------------


def render_labels(params: AnatomyParams, spacing_mm=CANONICAL_SPACING_MM,
                  shape: tuple[int, int] = (CANONICAL_SIZE_PX, CANONICAL_SIZE_PX), slice_offset_mm: float = 0.0,
                  supersample: int = 4) -> np.ndarray:
    """Label map (uint8, :class:`Label` ids) of the axial plane at ``slice_offset_mm`` from the TT plane.

    ``spacing_mm``: a float or (row, column) spacing. Canonical orientation: head centre at the image
    centre, midline horizontal, occiput left, frontal right, fetal left hemisphere in the lower half.
    Shapes are drawn at ``supersample``× resolution and mode-downsampled.
    """
    ss = int(supersample)
    if ss < 1:
        raise DDICInputError(f"supersample must be ≥ 1, not {supersample}")
    sy, sx = spacing_pair(spacing_mm)
    if sy <= 0 or sx <= 0 or shape[0] < 1 or shape[1] < 1:
        raise DDICInputError(f"spacing {spacing_mm} and shape {shape} must be positive")
    x, y = pixel_axes((sy / ss, sx / ss), (shape[0] * ss, shape[1] * ss))
    canvas = Canvas(x, y, Label.AMNIOTIC_FLUID)
    sec = head_section(params, slice_offset_mm)
    if sec is not None:
        paint_section(canvas, params, sec)
    return mode_downsample(canvas.labels, ss)


# --------------------------------------------------------------------------------------------------
# Metadata
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhantomMetadata:
    """What a rendered phantom image is known to show (ground truth for biometry and paired metrics).

    Biometry (HC, BPD, OFD, CI, atrium widths) describes the fetus at the TT plane. The skull ellipse
    describes the *rendered section* in HC18 convention: centre in mm from the first pixel centre
    (x = column × spacing, y = row × spacing), semi-axes a (along x) and b, angle in rad (0: midline
    horizontal). Atrium centres are given the same way.
    """

    seed: int
    ga_weeks: float
    pathology: str | None
    hc_mm: float
    bpd_mm: float  # outer-to-inner (IG convention)
    bpd_outer_mm: float
    ofd_mm: float
    cephalic_index: float
    atrium_width_left_mm: float
    atrium_width_right_mm: float
    skull_center_x_mm: float
    skull_center_y_mm: float
    skull_semi_axis_a_mm: float
    skull_semi_axis_b_mm: float
    skull_angle_rad: float
    spacing_mm: float | tuple[float, float]
    shape: tuple[int, int]
    slice_offset_mm: float
    csp_present: bool
    csp_width_mm: float
    sylvian_stage_left: float
    sylvian_stage_right: float
    atrium_center_left_mm: tuple[float, float] | None = None
    atrium_center_right_mm: tuple[float, float] | None = None
    atrium_axis_angle_left_rad: float | None = None
    atrium_axis_angle_right_rad: float | None = None
    maturation_offset_weeks: float = 0.0
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return _plain(asdict(self))

    def to_csv_row(self) -> dict:
        """Flat ``{column: value}`` for a CSV writer (tuples split into _x/_y columns)."""
        row = {}
        for key, value in self.to_dict().items():
            if key == "extra":
                row.update({f"extra_{k}": v for k, v in value.items()})
            elif isinstance(value, list) and len(value) == 2:
                names = ("row", "col") if key in ("shape", "spacing_mm") else ("x", "y")
                row[f"{key}_{names[0]}"], row[f"{key}_{names[1]}"] = value
            else:
                row[key] = "" if value is None else value
        return row


def phantom_metadata(params: AnatomyParams, spacing_mm=CANONICAL_SPACING_MM,
                     shape: tuple[int, int] = (CANONICAL_SIZE_PX, CANONICAL_SIZE_PX),
                     slice_offset_mm: float = 0.0) -> PhantomMetadata:
    sy, sx = spacing_pair(spacing_mm)
    cx, cy = (shape[1] - 1) / 2.0 * sx, (shape[0] - 1) / 2.0 * sy
    sec = head_section(params, slice_offset_mm)
    centres, angles = {}, {}
    for side in SIDES:
        geo = atrium_geometry(params, side, slice_offset_mm)
        centres[side] = None if geo is None else (cx + geo.centre_u, cy + geo.centre_v)
        angles[side] = None if geo is None else math.atan2(geo.axis_v, geo.axis_u)
    return PhantomMetadata(
        seed=params.seed, ga_weeks=params.ga_weeks, pathology=params.pathology, hc_mm=params.hc_mm,
        bpd_mm=params.bpd_mm, bpd_outer_mm=params.bpd_outer_mm, ofd_mm=params.ofd_mm,
        cephalic_index=params.cephalic_index, atrium_width_left_mm=params.left.atrium_width_mm,
        atrium_width_right_mm=params.right.atrium_width_mm, skull_center_x_mm=cx, skull_center_y_mm=cy,
        skull_semi_axis_a_mm=0.0 if sec is None else sec.a, skull_semi_axis_b_mm=0.0 if sec is None else sec.b,
        skull_angle_rad=0.0, spacing_mm=spacing_mm if np.ndim(spacing_mm) == 0 else (sy, sx),
        shape=(int(shape[0]), int(shape[1])), slice_offset_mm=float(slice_offset_mm),
        csp_present=params.csp_present, csp_width_mm=params.csp_width_mm,
        sylvian_stage_left=params.left.sylvian_stage, sylvian_stage_right=params.right.sylvian_stage,
        atrium_center_left_mm=centres["left"], atrium_center_right_mm=centres["right"],
        atrium_axis_angle_left_rad=angles["left"], atrium_axis_angle_right_rad=angles["right"],
        maturation_offset_weeks=params.maturation_offset_weeks,
    )
