"""How each structure of the phantom is drawn in one axial section (anatomy.md §2, §6.1).

Why a module of its own: :mod:`.anatomy` decides *which* fetus (sizes, positions, noise) and exposes the
public API; :mod:`.section_geometry` holds the geometry of a section (skull ellipsoid cut, the vertical extent
of every inner structure, atrium placement); this module paints the labels in order, outermost first, on a fine
:class:`~.shapes.Canvas`. Conventions (head frame, left hemisphere in the lower image half, offsets) are
those documented in :mod:`.anatomy`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from ..labels import Label
from . import biometry as bio
from .section_geometry import (
    SIDE_SIGN, SIDES, AtriumGeometry, Section, atrium_geometry, atrium_placement, midline_offset, structure_profile,
)
from .shapes import Canvas, Contour, capsule, ellipse, noise_key, superellipse

if TYPE_CHECKING:
    from .anatomy import AnatomyParams, BoundaryNoise

SYLVIAN_DEPTHS = np.array([0.0, 0.3, 0.6, 0.82, 0.88, 1.0])
SYLVIAN_TEMPLATES = np.array([
    # fissure half-width / insula half-length at the depth fractions above, per operculisation stage (§2.4)
    [2.6, 2.1, 1.6, 1.25, 1.15, 1.0],  # 0 smooth: shallow, wide concavity
    [1.7, 1.5, 1.3, 1.15, 1.1, 1.0],   # 1 obtuse: insular plateau, obtuse angles
    [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],    # 2 box: right angles
    [0.35, 0.5, 0.75, 0.95, 1.0, 1.0],  # 3 narrowing: opercula overhang the insula
    [0.0, 0.0, 0.0, 0.0, 1.0, 1.0],    # 4 closed: thin T-shaped cleft over the covered insula
])
SYLVIAN_MIN_HALF_CLEFT_MM = 0.4
"""[D] A closed fissure stays a ≈ 0.8-mm CSF line (§2.4 stage 4)."""

# --------------------------------------------------------------------------------------------------
# Drawing helpers in the head frame
# --------------------------------------------------------------------------------------------------


def _contour(noise: BoundaryNoise, key: int, rms: float) -> Contour:
    return Contour(noise.seed, key, rms, noise.min_harmonic, noise.max_harmonic)


def _bent(params, sec, fn):
    """Evaluate a shape in midline-following coordinates v' = v − bend(u)."""
    return lambda u, v: fn(u, v - midline_offset(params, sec, u))


def _bent_bbox(params, sec, bbox):
    pad = abs(params.midline_bend_frac) * sec.A + 0.1
    return bbox[0], bbox[1], bbox[2] - pad, bbox[3] + pad


def _paint_bent(canvas, params, sec, label, shape, within=None):
    bbox, fn = shape
    canvas.paint_shape(label, _bent_bbox(params, sec, bbox), _bent(params, sec, fn), within)


L = Label
PARENCHYMA = (L.WHITE_MATTER, L.CORTEX)
DEEP = (L.WHITE_MATTER, L.BASAL_GANGLIA)


# --------------------------------------------------------------------------------------------------
# Painting, outermost first
# --------------------------------------------------------------------------------------------------


def _paint_head_layers(canvas: Canvas, params: AnatomyParams, sec: Section) -> None:
    """Scalp, skull, eCSF, cortical ribbon and WM as concentric noisy ellipses (depths measured radially)."""
    noise = params.noise
    n_head = _contour(noise, noise_key("head"), noise.head_rms)
    n_brain = _contour(noise, noise_key("brain"), noise.brain_rms)
    n_ecsf = _contour(noise, noise_key("ecsf"), 0.2)
    a, b = sec.a, sec.b
    r = max(a, b) + params.scalp_thickness_mm + 0.05 * max(a, b) + 1.0
    win = canvas.window(-r, r, -r, r)
    if win is None:
        return
    u, v = win[2], win[3]
    p, q = u / a, v / b
    rho = np.hypot(p, q)
    safe = np.maximum(rho, 1e-12)
    cos_t, sin_t = np.where(rho > 0, p / safe, 1.0), q / safe  # the exact centre: any angle
    unit = cos_t + 1j * sin_t
    radius = np.sqrt((a * cos_t) ** 2 + (b * sin_t) ** 2)
    outer = n_head.on_unit(unit)
    e_left, e_right = params.left.ecsf_mm, params.right.ecsf_mm
    e_side = 0.5 * (e_left + e_right) + 0.5 * (e_left - e_right) * np.tanh(sin_t / 0.15)
    brain_depth = params.skull_thickness_mm + np.maximum(
        0.3, e_side * n_ecsf.on_unit(unit) + radius * (n_brain.on_unit(unit) - 1.0))

    def inside(depth):
        return rho < outer - depth / radius

    canvas.paint(L.SCALP, win, inside(-params.scalp_thickness_mm))
    canvas.paint(L.SKULL, win, inside(0.0))
    canvas.paint(L.EXTRA_AXIAL_CSF, win, inside(params.skull_thickness_mm))
    canvas.paint(L.CORTEX, win, inside(brain_depth))
    canvas.paint(L.WHITE_MATTER, win, inside(brain_depth + params.cortex_thickness_mm))


def _sylvian_exclusion(params, sec, side):
    """Param-angle interval of the convexity occupied by the Sylvian fissure (no convexity sulci there)."""
    hemi = params.hemisphere(side)
    A_b = sec.A - hemi.ecsf_mm
    u_sf = hemi.sylvian_u_frac * sec.A
    phi = math.acos(float(np.clip(u_sf / A_b, -1.0, 1.0)))
    half = (2.6 * hemi.insula_half_length_frac * sec.A + 3.0) / max(sec.B, 1.0)
    return phi - half, phi + half


SULCUS_VENTRICLE_CLEARANCE_MM = 3.0
"""[D] WM mantle kept between a sulcal fundus and the ventricular wall."""


def _ventricle_segments(params: AnatomyParams, sec: Section) -> list:
    """(p0, p1, radius) of the atria and frontal horns in this section (head frame, midline bend ignored)."""
    segments = []
    q_fh = structure_profile(params, "frontal_horn", sec.z_mm)
    mid = _midline_layout(params, sec)
    for side in SIDES:
        geo = atrium_geometry(params, side, sec.z_mm)
        if geo is not None:
            du, dv = geo.half_length_mm * geo.axis_u, geo.half_length_mm * geo.axis_v
            segments.append(((geo.centre_u - du, geo.centre_v - dv), (geo.centre_u + du, geo.centre_v + dv),
                             0.5 * geo.width_mm))
        if q_fh > 0:
            segments.append(_horn_segment(params, sec, mid, side, q_fh))
    return segments


def _clearance(point, segments) -> float:
    best = math.inf
    for (u0, v0), (u1, v1), r in segments:
        du, dv = u1 - u0, v1 - v0
        length2 = du * du + dv * dv
        t = 0.0 if length2 == 0 else min(1.0, max(0.0, ((point[0] - u0) * du + (point[1] - v0) * dv) / length2))
        best = min(best, math.hypot(point[0] - u0 - t * du, point[1] - v0 - t * dv) - r)
    return best


def _paint_sulci(canvas: Canvas, params: AnatomyParams, sec: Section) -> None:
    """Convexity sulci (§2.5) as cortex-lined CSF clefts plus the medial parieto-occipital fissure; a sulcus
    stops short of the ventricles (``SULCUS_VENTRICLE_CLEARANCE_MM`` of WM plus its cortex lining)."""
    ga_eff = params.ga_effective_weeks
    law = bio.SULCATION
    linings, clefts = [], []
    ventricles = _ventricle_segments(params, sec)
    for side in SIDES:
        hemi, sign = params.hemisphere(side), SIDE_SIGN[side]
        A_b, B_b = sec.A - hemi.ecsf_mm, sec.B - hemi.ecsf_mm
        lo, hi = 0.07 * math.pi, 0.93 * math.pi
        ex0, ex1 = _sylvian_exclusion(params, sec, side)
        ex0, ex1 = max(ex0, lo), min(ex1, hi)
        usable = (hi - lo) - max(0.0, ex1 - ex0)
        for sulcus in hemi.sulci:
            depth = float(bio.sulcus_depth_mm(ga_eff, sulcus.onset_ga_weeks, sulcus.max_depth_mm, law))
            if depth < law.visible_depth_mm:
                continue
            phi = lo + sulcus.position * usable
            if ex1 > ex0 and phi > ex0:
                phi += ex1 - ex0
            c, s = math.cos(phi), math.sin(phi)
            su, sv = A_b * c, sign * B_b * s
            nu, nv = c / A_b, sign * s / B_b
            norm = math.hypot(nu, nv)
            nu, nv = nu / norm, nv / norm  # outward normal
            tilt = math.radians(sulcus.tilt_deg)
            du = -(nu * math.cos(tilt) - nv * math.sin(tilt))
            dv = -(nu * math.sin(tilt) + nv * math.cos(tilt))
            half = 0.5 * sulcus.cleft_mm
            keep_out = SULCUS_VENTRICLE_CLEARANCE_MM + params.cortex_thickness_mm + half
            ang = math.radians(sulcus.branch_deg)
            bu, bv = du * math.cos(ang) - dv * math.sin(ang), du * math.sin(ang) + dv * math.cos(ang)
            branch = bool(sulcus.branch_deg) and depth >= law.branch_min_depth_mm

            def tips(d):
                out = [(su + d * du, sv + d * dv)]
                if branch:
                    out.append((su + 0.6 * d * du + 0.45 * d * bu, sv + 0.6 * d * dv + 0.45 * d * bv))
                return out

            while depth >= law.visible_depth_mm and min(_clearance(t, ventricles) for t in tips(depth)) < keep_out:
                depth *= 0.85
            if depth < law.visible_depth_mm:
                continue
            start = (su + 1.5 * nu, sv + 1.5 * nv)
            segments = [(start, (su + depth * du, sv + depth * dv))]
            if branch:
                mid = (su + 0.6 * depth * du, sv + 0.6 * depth * dv)
                segments.append((mid, (mid[0] + 0.45 * depth * bu, mid[1] + 0.45 * depth * bv)))
            for p0, p1 in segments:
                linings.append(capsule(p0, p1, half + params.cortex_thickness_mm, half * 0.8
                                        + params.cortex_thickness_mm))
                clefts.append(capsule(p0, p1, half, 0.8 * half))
        # parieto-occipital fissure: medial, off the posterior interhemispheric fissure (IG POF depth, §1.1)
        q = structure_profile(params, "pof", sec.z_mm)
        if q > 0.0:
            depth = float(bio.pof_mean_mm(ga_eff)) * hemi.pof_scale * q
            p0 = (-0.62 * sec.A, 0.0)
            keep_out = SULCUS_VENTRICLE_CLEARANCE_MM + params.cortex_thickness_mm + 0.4
            while depth >= law.visible_depth_mm and _clearance(
                    (p0[0] - 0.5 * depth, sign * 0.87 * depth), ventricles) < keep_out:
                depth *= 0.85
            p1 = (p0[0] - 0.5 * depth, sign * 0.87 * depth)
            linings.append(capsule(p0, p1, 0.4 + params.cortex_thickness_mm, 0.3 + params.cortex_thickness_mm))
            clefts.append(capsule(p0, p1, 0.4, 0.3))
    for shape in linings:
        canvas.paint_shape(L.CORTEX, *shape, within=(L.WHITE_MATTER,))
    for shape in clefts:
        canvas.paint_shape(L.EXTRA_AXIAL_CSF, *shape, within=PARENCHYMA)


def sylvian_half_width(stage: float, depth_frac):
    """Fissure half-width / insula half-length at relative depth (0 = surface, 1 = insula), §2.4 stages."""
    s = float(np.clip(stage, 0.0, 4.0))
    i = min(int(s), 3)
    profile = (1.0 - (s - i)) * SYLVIAN_TEMPLATES[i] + (s - i) * SYLVIAN_TEMPLATES[i + 1]
    return np.interp(depth_frac, SYLVIAN_DEPTHS, profile)


def _paint_sylvian(canvas: Canvas, params: AnatomyParams, sec: Section) -> None:
    """Sylvian fissure (CSF) over the insula, lined by opercular/insular cortex, shaped by the stage (§2.4).

    Depth: the insula lies SPB (Mittal 2007) below the inner table; AP length of the insula ∝ the head."""
    q = structure_profile(params, "sylvian", sec.z_mm)
    if q <= 0.0:
        return
    cortex = params.cortex_thickness_mm
    spb = float(bio.spb_mm(params.ga_effective_weeks))
    for side in SIDES:
        hemi, sign = params.hemisphere(side), SIDE_SIGN[side]
        A_b, B_b = sec.A - hemi.ecsf_mm, sec.B - hemi.ecsf_mm
        u_sf = hemi.sylvian_u_frac * sec.A
        v_s = B_b * math.sqrt(max(0.0, 1.0 - (u_sf / A_b) ** 2))
        depth = float(np.clip(spb - hemi.ecsf_mm, 1.0, 0.4 * v_s))
        half_len = hemi.insula_half_length_frac * sec.A * q
        reach = 2.7 * half_len + cortex + 1.0
        v_lo, v_hi = v_s - depth - cortex - 1.0, v_s + 3.0
        bbox = (u_sf - reach, u_sf + reach) + ((v_lo, v_hi) if sign > 0 else (-v_hi, -v_lo))
        win = canvas.window(*bbox)
        if win is None:
            continue
        u, v = win[2], win[3]
        d = v_s - sign * v
        t = np.abs(u - u_sf)
        hw = np.maximum(half_len * sylvian_half_width(hemi.sylvian_stage, np.clip(d / depth, 0.0, 1.0)),
                        SYLVIAN_MIN_HALF_CLEFT_MM)
        fissure = (d >= -3.0) & (d <= depth) & (t <= hw)
        if not fissure.any():
            continue
        dist = ndimage.distance_transform_edt(~fissure, sampling=(canvas.sy, canvas.sx))
        canvas.paint(L.CORTEX, win, dist <= cortex, within=PARENCHYMA)
        canvas.paint(L.SYLVIAN_FISSURE, win, fissure, within=PARENCHYMA)


def _midline_layout(params: AnatomyParams, sec: Section) -> dict:
    """Positions along the midline (mm, head frame) shared by the CSP, horns, thalami, cistern and falx."""
    A, B = sec.A, sec.B
    q_csp = structure_profile(params, "csp", sec.z_mm)
    q_th = structure_profile(params, "thalamus", sec.z_mm)
    csp_u = A * (1.0 - 2.0 * params.csp_position_frac)
    csp_len = params.csp_length_mm * q_csp
    csp_w = params.csp_width_mm * q_csp if params.csp_present else 0.0
    th_a = params.thalamus_ap_frac * 2.0 * A * q_th
    th_b = params.thalamus_lr_frac * 2.0 * B * q_th
    th_u = -params.thalamus_u_frac * A
    th_v = 0.5 * params.third_ventricle_mm + 0.95 * th_b
    vertex_u = th_u - (0.9 * th_a if th_a > 0 else 0.1 * A) - 1.0
    return dict(csp_u=csp_u, csp_len=csp_len, csp_w=csp_w, q_csp=q_csp, th_a=th_a, th_b=th_b, th_u=th_u,
                th_v=th_v, q_th=q_th, vertex_u=vertex_u,
                anterior_ihf_u=csp_u + 0.5 * max(csp_len, 0.4 * params.csp_length_mm) + params.genu_mm)


def _paint_interhemispheric(canvas: Canvas, params: AnatomyParams, sec: Section, mid: dict) -> None:
    """Interhemispheric fissure (cortex-lined CSF) with the falx, broken by the CSP and thalami (§2.3)."""
    f_half = 0.5 * params.falx_mm
    csf_half = f_half + params.interhemispheric_csf_mm
    cortex = params.cortex_thickness_mm
    A = sec.A
    segments = [(mid["anterior_ihf_u"], A + 2.0), (-A - 2.0, mid["vertex_u"])]
    for u0, u1 in segments:
        if u1 <= u0:
            continue

        def band(half, u0=u0, u1=u1):
            def fn(u, v):
                pole = np.clip((np.abs(u) - 0.8 * A) / (0.2 * A), 0.0, 1.0)  # wider towards the poles
                return (u >= u0) & (u <= u1) & (np.abs(v) < half + pole * (half > f_half))
            return fn

        bbox = (u0, u1, -(csf_half + cortex + 2.0), csf_half + cortex + 2.0)
        _paint_bent(canvas, params, sec, L.CORTEX, (bbox, band(csf_half + cortex)), within=(L.WHITE_MATTER,))
        _paint_bent(canvas, params, sec, L.EXTRA_AXIAL_CSF, (bbox, band(csf_half)), within=PARENCHYMA)
        _paint_bent(canvas, params, sec, L.FALX, (bbox, band(f_half)),
                    within=PARENCHYMA + (L.EXTRA_AXIAL_CSF,))


def _horn_segment(params, sec, mid, side, q):
    hemi, sign = params.hemisphere(side), SIDE_SIGN[side]
    r = 0.5 * hemi.frontal_horn_width_mm * q
    length = hemi.frontal_horn_length_frac * sec.A * q
    ang = math.radians(hemi.frontal_horn_angle_deg)
    u0 = mid["csp_u"] - 0.5 * max(mid["csp_len"], 0.5 * params.csp_length_mm)
    v0 = 0.5 * max(mid["csp_w"], 1.0) + 0.8 + r  # septal leaflet between CSP and horn
    return (u0, sign * v0), (u0 + length * math.cos(ang), sign * (v0 + length * math.sin(ang))), r


def _paint_deep(canvas: Canvas, params: AnatomyParams, sec: Section, mid: dict) -> None:
    """Basal ganglia, thalami and third ventricle, hippocampi and ambient cistern, germinal matrix,
    lateral ventricles with choroid, CSP — in that order (later wins)."""
    z, noise, A, B = sec.z_mm, params.noise, sec.A, sec.B
    q_bg = structure_profile(params, "basal_ganglia", z)
    q_fh = structure_profile(params, "frontal_horn", z)
    q_body = structure_profile(params, "ventricle_body", z)
    q_ch = structure_profile(params, "choroid", z)
    q_amb = structure_profile(params, "ambient", z)
    q_3v = structure_profile(params, "third_ventricle", z)
    gm = params.germinal_matrix_mm

    def contour(name, side=None, rms=None):
        return _contour(noise, noise_key(name, side), noise.structure_rms if rms is None else rms)

    for side in SIDES:  # basal ganglia (caudate + lentiform), converging anteriorly
        hemi, sign = params.hemisphere(side), SIDE_SIGN[side]
        if q_bg > 0:
            shape = ellipse(0.22 * A, sign * 0.34 * B, 0.17 * A * hemi.basal_ganglia_scale * q_bg,
                             0.13 * B * hemi.basal_ganglia_scale * q_bg, -sign * math.radians(20.0),
                             contour("bg", side))
            _paint_bent(canvas, params, sec, L.BASAL_GANGLIA, shape, within=(L.WHITE_MATTER,))
    if mid["th_a"] > 0:
        for side in SIDES:
            sign = SIDE_SIGN[side]
            shape = ellipse(mid["th_u"], sign * mid["th_v"], mid["th_a"], mid["th_b"],
                             -sign * math.radians(10.0), contour("thalamus", side))
            _paint_bent(canvas, params, sec, L.THALAMUS, shape, within=DEEP)
    if q_amb > 0:  # V-shaped ambient cistern behind the thalami, hippocampal gyri along its arms
        vertex = (mid["vertex_u"], 0.0)
        for side in SIDES:
            hemi, sign = params.hemisphere(side), SIDE_SIGN[side]
            beta = math.radians(hemi.ambient_arm_deg)
            du, dv = -math.cos(beta), sign * math.sin(beta)
            length = 0.22 * A * q_amb
            end = (vertex[0] + length * du, vertex[1] + length * dv)
            off = 0.5 * params.ambient_cistern_mm + 0.5 * params.hippocampus_mm
            nu, nv = math.sin(beta), sign * math.cos(beta)  # lateral normal of the arm
            hip0 = (vertex[0] + 0.35 * length * du + off * nu, vertex[1] + 0.35 * length * dv + off * nv)
            hip1 = (end[0] + off * nu, end[1] + off * nv)
            _paint_bent(canvas, params, sec, L.CORTEX, capsule(hip0, hip1, 0.5 * params.hippocampus_mm * q_amb),
                        within=DEEP + (L.THALAMUS,))
            _paint_bent(canvas, params, sec, L.AMBIENT_CISTERN,
                        capsule(vertex, end, 0.5 * params.ambient_cistern_mm * q_amb),
                        within=DEEP + (L.THALAMUS, L.CORTEX))
        _paint_bent(canvas, params, sec, L.AMBIENT_CISTERN,
                    ellipse(vertex[0], 0.0, 0.8 * params.ambient_cistern_mm * q_amb,
                             0.8 * params.ambient_cistern_mm * q_amb, 0.0), within=DEEP + (L.THALAMUS,))
    if gm > 0:  # germinal matrix: caudate head lateral to the horns, caudothalamic groove, atrial walls
        for side in SIDES:
            sign = SIDE_SIGN[side]
            if q_fh > 0:
                p0, p1, r = _horn_segment(params, sec, mid, side, q_fh)
                bbox, fn = capsule(p0, p1, r + gm)
                axis_v0, slope = p0[1], (p1[1] - p0[1]) / (p1[0] - p0[0])

                def lateral(u, v, fn=fn, axis_v0=axis_v0, slope=slope, u0=p0[0], sign=sign):
                    return fn(u, v) & (sign * (v - (axis_v0 + slope * (u - u0))) > -0.3 * r)

                _paint_bent(canvas, params, sec, L.GERMINAL_MATRIX, (bbox, lateral), within=DEEP)
            if mid["th_a"] > 0:
                shape = ellipse(mid["th_u"] + 0.85 * mid["th_a"], sign * (mid["th_v"] + 0.35 * mid["th_b"]),
                                 1.2 * gm, 1.2 * gm, 0.0)
                _paint_bent(canvas, params, sec, L.GERMINAL_MATRIX, shape, within=DEEP + (L.THALAMUS,))
            geo = atrium_geometry(params, side, z)
            if geo is not None:
                shape = _atrium_shape(params, geo, side, extra=0.5 * gm)
                canvas.paint_shape(L.GERMINAL_MATRIX, *shape, within=DEEP)
    for side in SIDES:  # lateral ventricles
        sign = SIDE_SIGN[side]
        vent_within = DEEP + (L.GERMINAL_MATRIX, L.THALAMUS, L.CORTEX, L.AMBIENT_CISTERN)
        hemi = params.hemisphere(side)
        if q_fh > 0:
            p0, p1, r = _horn_segment(params, sec, mid, side, q_fh)
            _paint_bent(canvas, params, sec, L.LATERAL_VENTRICLE,
                        capsule(p0, p1, r, 0.6 * r, contour("horn", side)), within=vent_within)
        geo = atrium_geometry(params, side, z)
        if q_body > 0:  # ventricular body (above the TT plane), from the horn to the atrium position
            r = 0.35 * max(hemi.atrium_width_mm, 2.0 * hemi.frontal_horn_width_mm) * q_body
            p_front = _horn_segment(params, sec, mid, side, max(q_fh, 0.3))[0]
            place = atrium_placement(params, side, sec, 2.0 * r)
            back = (place.centre_u, place.centre_v - float(midline_offset(params, sec, place.centre_u)))
            _paint_bent(canvas, params, sec, L.LATERAL_VENTRICLE, capsule(p_front, back, r), within=vent_within)
        if geo is not None:
            canvas.paint_shape(L.LATERAL_VENTRICLE, *_atrium_shape(params, geo, side), within=vent_within)
            if q_ch > 0:
                fill = hemi.choroid_fill
                half_w = 0.5 * geo.width_mm * fill * q_ch
                lateral_shift = (0.5 * geo.width_mm - half_w) * 0.85 if hemi.choroid_dangling else 0.0
                nu, nv = -geo.axis_v * sign, geo.axis_u * sign  # normal pointing laterally
                nu, nv = (nu, nv) if sign * nv > 0 else (-nu, -nv)
                cu = geo.centre_u + 0.25 * geo.half_length_mm * geo.axis_u + lateral_shift * nu
                cv = geo.centre_v + 0.25 * geo.half_length_mm * geo.axis_v + lateral_shift * nv
                half_l = (geo.half_length_mm + 0.3 * geo.width_mm) * q_ch
                shape = ellipse(cu, cv, half_l, half_w, math.atan2(geo.axis_v, geo.axis_u),
                                 contour("choroid", side))
                canvas.paint_shape(L.CHOROID_PLEXUS, *shape, within=(L.LATERAL_VENTRICLE,))
    if params.csp_present and mid["csp_w"] > 0:
        shape = superellipse(mid["csp_u"], 0.0, 0.5 * mid["csp_len"], 0.5 * mid["csp_w"], 4.0,
                              contour("csp", rms=0.5 * noise.structure_rms))
        _paint_bent(canvas, params, sec, L.CAVUM_SEPTUM_PELLUCIDUM, shape,
                    within=DEEP + (L.GERMINAL_MATRIX, L.CORTEX, L.EXTRA_AXIAL_CSF, L.FALX))
    if q_3v > 0 and mid["th_a"] > 0:
        shape = superellipse(mid["th_u"], 0.0, 0.85 * mid["th_a"], 0.5 * params.third_ventricle_mm * q_3v, 4.0)
        _paint_bent(canvas, params, sec, L.THIRD_VENTRICLE, shape, within=DEEP + (L.THALAMUS, L.GERMINAL_MATRIX))


def _atrium_shape(params: AnatomyParams, geo: AtriumGeometry, side: str, extra: float = 0.0):
    """The atrium lumen: a capsule of constant width along the ventricle axis (so the inner width ⟂ the axis
    equals the sampled width), optionally grown by ``extra`` mm (the germinal-matrix wall)."""
    p0 = (geo.centre_u - geo.half_length_mm * geo.axis_u, geo.centre_v - geo.half_length_mm * geo.axis_v)
    p1 = (geo.centre_u + geo.half_length_mm * geo.axis_u, geo.centre_v + geo.half_length_mm * geo.axis_v)
    contour = _contour(params.noise, noise_key("atrium", side), params.noise.ventricle_rms)
    return capsule(p0, p1, 0.5 * geo.width_mm + extra, contour=contour)


def paint_section(canvas: Canvas, params: AnatomyParams, sec: Section) -> None:
    """Paint every structure of this section, outermost first (later layers win where allowed)."""
    _paint_head_layers(canvas, params, sec)
    _paint_sulci(canvas, params, sec)
    _paint_sylvian(canvas, params, sec)
    mid = _midline_layout(params, sec)
    _paint_interhemispheric(canvas, params, sec, mid)
    _paint_deep(canvas, params, sec, mid)
