"""The geometry of one axial section of the phantom head (anatomy.md §2, §6.1): the skull ellipsoid cut at a slice
offset, the vertical extent of every inner structure and where each atrium lies.

Why a module of its own: the renderer (:mod:`.painting`) and the metadata / ground truth (:mod:`.anatomy`) both
need the same geometry, and it is the part a reader checks against the anatomy; the painting is the rest.
Conventions (head frame, left hemisphere in the lower image half, offsets) are those of :mod:`.anatomy`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .anatomy import AnatomyParams

SIDES = ("left", "right")
SIDE_SIGN = {"left": 1.0, "right": -1.0}
"""v sign of each hemisphere in the head frame (left = lower image half)."""

Z_LAYOUT = {
    # name: (centre, half-height) as fractions of the outer vertical head semi-axis [D]; the TT plane is 0
    "csp": (0.05, 0.25),
    "frontal_horn": (0.12, 0.30),
    "ventricle_body": (0.32, 0.20),  # bodies join horns and atria above the TT plane (TV level)
    "atrium": (0.0, 0.25),
    "choroid": (0.02, 0.20),
    "thalamus": (-0.08, 0.30),
    "third_ventricle": (-0.08, 0.25),
    "basal_ganglia": (0.0, 0.30),
    "ambient": (-0.15, 0.22),
    "sylvian": (0.0, 0.45),
    "pof": (0.10, 0.35),
}
"""Vertical extent of each inner structure (anatomy.md §2.1: TV slightly above TT; thalami and ambient cistern
lower). [D] check against CRL atlas slices (anatomy.md §9 open item 1)."""

ATRIUM_WM_MANTLE_MM = 1.5
"""[D] WM kept between the atrium and the cortex; half of it for ventriculomegaly (≥ 10 mm), whose mantle thins."""


def atrium_mantle_mm(width_mm: float) -> float:
    return ATRIUM_WM_MANTLE_MM if width_mm < 10.0 else 0.5 * ATRIUM_WM_MANTLE_MM


# --------------------------------------------------------------------------------------------------
# Geometry of one section (slice offset)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """The head at one slice offset: outer (a, b) and inner-skull (A, B) semi-axes in mm."""

    z_mm: float
    scale: float
    a: float
    b: float
    A: float
    B: float


def head_section(params: AnatomyParams, slice_offset_mm: float = 0.0) -> Section | None:
    """Ellipsoidal skull cut at ``slice_offset_mm``; None above the vertex / below the skull base."""
    r = 1.0 - (slice_offset_mm / params.head_height_mm) ** 2
    if r <= 0.0:
        return None
    s = math.sqrt(r)
    a, b = params.skull_a_mm * s, params.skull_b_mm * s
    A, B = a - params.skull_thickness_mm, b - params.skull_thickness_mm
    if B <= 2.0 * params.cortex_thickness_mm:
        return None
    return Section(float(slice_offset_mm), s, a, b, A, B)


def structure_profile(params: AnatomyParams, name: str, slice_offset_mm: float) -> float:
    """Size factor of an inner structure at this offset: 1 at offset 0 (at its own centre for structures
    absent from the TT plane, e.g. the ventricular bodies), 0 outside its vertical extent."""
    zc_frac, h_frac = Z_LAYOUT[name]
    c = params.head_height_mm
    zc, h = zc_frac * c, h_frac * c
    val = 1.0 - ((slice_offset_mm - zc) / h) ** 2
    if val <= 0.0:
        return 0.0
    at_zero = 1.0 - (zc / h) ** 2
    return math.sqrt(val / at_zero) if at_zero > 0.05 else math.sqrt(val)  # structures above TT: 1 at peak


def midline_offset(params: AnatomyParams, sec: Section, u):
    """Bend of the midline (falx) at ``u`` (mm): ≤ 2.5 % of the semi-OFD, zero at the poles (§2.3)."""
    t = np.clip(np.asarray(u, dtype=np.float64) / sec.A, -1.0, 1.0)
    return params.midline_bend_frac * sec.A * (1.0 - t**2)


@dataclass(frozen=True)
class AtriumGeometry:
    """Where an atrium lies (head frame, mm): centre of its straight part, unit axis pointing posterior-
    lateral, width (inner edge to inner edge ⟂ the axis), half-length of the straight part."""

    centre_u: float
    centre_v: float  # image frame (the midline bend included)
    axis_u: float
    axis_v: float
    width_mm: float
    half_length_mm: float


def medial_clearance_mm(params: AnatomyParams) -> float:
    """Closest approach of an atrium to the midline: falx, interhemispheric CSF, medial cortex and 1 mm WM."""
    return 0.5 * params.falx_mm + params.interhemispheric_csf_mm + params.cortex_thickness_mm + 1.0


def atrium_placement(params: AnatomyParams, side: str, sec: Section, width: float) -> AtriumGeometry:
    """Centre and axis of the atrium for a lumen of ``width`` mm in this section (clamped so that it fits
    between the midline and the cortex)."""
    hemi = params.hemisphere(side)
    sign = SIDE_SIGN[side]
    u = -hemi.atrium_u_frac * sec.A
    A_b, B_b = sec.A - hemi.ecsf_mm, sec.B - hemi.ecsf_mm
    v_lim = B_b * math.sqrt(max(0.0, 1.0 - (u / A_b) ** 2))
    medial = medial_clearance_mm(params)
    mantle = atrium_mantle_mm(hemi.atrium_width_mm)
    lo, hi = width / 2.0 + medial, v_lim - width / 2.0 - params.cortex_thickness_mm - mantle
    v = float(np.clip(hemi.atrium_v_frac * sec.B, lo, hi)) if lo <= hi else 0.5 * (lo + hi)
    psi = math.radians(hemi.atrium_axis_deg)
    half = 0.5 * hemi.atrium_length_frac * sec.A * (1.0 + 0.5 * max(0.0, hemi.atrium_width_mm - 7.0) / 10.0)
    # the posterior (occipital) end must stay inside the WM, clear of the cortex, and the anterior end clear of
    # the interhemispheric fissure: shorten the straight part if needed
    margin = width / 2.0 + params.cortex_thickness_mm + mantle
    a_lim, b_lim = A_b - margin, B_b - margin
    def medial_ok(v_c, h):
        return v_c - h * math.sin(psi) - width / 2.0 >= min(medial, v_c - width / 2.0)

    for _ in range(80):
        pu, pv = u - half * math.cos(psi), v + half * math.sin(psi)
        inside = a_lim <= 0 or b_lim <= 0 or (pu / a_lim) ** 2 + (pv / b_lim) ** 2 <= 1.0
        if (inside and medial_ok(v, half)) or half < 0.5:
            break
        if not inside and v - 0.25 >= lo and medial_ok(v - 0.25, half):
            v -= 0.25  # first move it medially,
        else:
            half *= 0.9  # then shorten the straight part
    v_img = sign * v + float(midline_offset(params, sec, u))
    return AtriumGeometry(u, v_img, -math.cos(psi), sign * math.sin(psi), width, half)


def atrium_geometry(params: AnatomyParams, side: str, slice_offset_mm: float = 0.0) -> AtriumGeometry | None:
    """Atrium placement shared by the renderer and the metadata (None where this section misses it)."""
    sec = head_section(params, slice_offset_mm)
    q = structure_profile(params, "atrium", slice_offset_mm)
    if sec is None or q <= 0.0:
        return None
    geo = atrium_placement(params, side, sec, params.hemisphere(side).atrium_width_mm * q)
    return replace(geo, half_length_mm=geo.half_length_mm * q)
