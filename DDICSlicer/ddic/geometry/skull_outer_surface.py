"""From the skull echo's centre line to the outer skull surface (``boundary="outer"`` of the detector).

Why a separate step: the centre line of a skull echo is not a surface of the bone. The echo is brightest
at the *first* bone surface the beam meets — outer on the side near the probe, inner on the far side — so
the centre line sits at a different depth in the bone on each side, ≈ 2–5 % below the outer HC that HC18 and
INTERGROWTH measure. This module moves it onto the outer surface with the bone-thickness law of
:mod:`ddic.geometry.skull` (the one the phantom draws its skull from) and the frame's own profiles.
"""

from __future__ import annotations

import numpy as np

from .ellipse import Ellipse
from .image_filters import gaussian_kernels, sample_bilinear
from .skull import skull_thickness_from_bpd_mm

OUTER_SECTORS = 72
"""The centre-line ellipse is cut into this many sectors (5°, parametric angle) whose mean intensity
profiles locate the skull's specular echo (see :func:`outer_skull_ellipse`)."""
OUTER_SEARCH_MM = 4.0
"""Profiles reach this far in and out of the centre line (the bone and scalp band is ≈ 5 mm thick)."""
OUTER_PROFILE_SMOOTHING_MM = 0.2
OUTER_MIN_BEAM_COS = 0.5
"""Sectors whose normal is within 60° of the beam (vertical) show the specular bone echo; the others
(the beam runs along the skull) are left out."""
OUTER_MIN_SECTORS = 4
"""Sectors needed on each side (near and far); with fewer the outer boundary is the centre line grown
by half the bone thickness."""
OUTER_RESIDUAL_MM = 1.0


def outer_skull_ellipse(frame: np.ndarray, ellipse: Ellipse, pixel_size: float, valid: np.ndarray,
                        scale: float) -> Ellipse:
    """The outer skull surface, from the centre-line ellipse (frame pixels) of the skull echo.

    Physics (``shared/docs/anatomy.md`` §3.1, §4; the phantom's renderer does the same): the brightest part of
    a skull echo is the specular reflection of the *first* bone surface the beam meets — the outer
    surface on the side near the probe, the inner surface on the far side; the second surface is
    weaker (bone attenuation) and the scalp above the near-side bone is echogenic too, so the echo's
    centre line sits at a different depth in the bone on each side and its half-height edges include
    the scalp. Here, along the ellipse normals of :data:`OUTER_SECTORS` sectors, the mean profile of the
    frame (± :data:`OUTER_SEARCH_MM`) gives the brightest point of each sector; sectors facing the probe
    (normal within 60° of the beam, the probe at the top of the frame as in HC18) put the outer surface
    there, sectors facing away put it one bone thickness further out (Wong 2018 law,
    :func:`ddic.geometry.skull.skull_thickness_from_bpd_mm`, with BPD(outer–inner) ≈ 2·b of the centre
    line). Sectors along the beam (no specular echo) are left out. A robust least-squares fit of
    offset = δ + n·s (a uniform growth δ and a centre shift s) to the sector offsets gives the outer
    ellipse. With too few sectors on either side it falls back to the centre line grown by half the
    bone thickness.

    ``frame`` and ``ellipse`` are in frame pixels of ``pixel_size`` mm; ``valid`` is the detector's mask of
    the imaged sector on its working grid, whose pixel is ``scale`` frame pixels (profiles that leave it
    are not used).
    """
    thickness_mm = float(skull_thickness_from_bpd_mm(2.0 * ellipse.b * pixel_size))
    fallback = ellipse.offset(0.5 * thickness_mm / pixel_size)
    per_sector = 10
    n = OUTER_SECTORS * per_sector
    points = ellipse.points(n)
    local = ellipse.to_local(points)
    n_local = np.stack([local[:, 0] / ellipse.a**2, local[:, 1] / ellipse.b**2], axis=1)
    n_local /= np.maximum(np.linalg.norm(n_local, axis=1, keepdims=True), 1e-12)
    normals = n_local @ np.stack([ellipse.major_axis, ellipse.minor_axis])  # outward, frame axes
    step_mm = 0.1
    steps_mm = np.arange(-OUTER_SEARCH_MM, OUTER_SEARCH_MM + 0.5 * step_mm, step_mm)
    xs = points[:, 0, None] + normals[:, 0, None] * steps_mm[None, :] / pixel_size
    ys = points[:, 1, None] + normals[:, 1, None] * steps_mm[None, :] / pixel_size
    h, w = frame.shape
    inside = np.all((xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1), axis=1)
    vh, vw = valid.shape
    vi = np.clip(np.rint(ys / scale).astype(int), 0, vh - 1)
    vj = np.clip(np.rint(xs / scale).astype(int), 0, vw - 1)
    inside &= np.all(valid[vi, vj], axis=1)  # the whole profile inside the imaged sector
    profiles = sample_bilinear(frame, xs.ravel(), ys.ravel()).reshape(xs.shape)
    g, _, _ = gaussian_kernels(OUTER_PROFILE_SMOOTHING_MM / step_mm)
    r = len(g) // 2
    rows = []
    for k in range(OUTER_SECTORS):
        sel = slice(k * per_sector, (k + 1) * per_sector)
        if inside[sel].sum() < per_sector // 2:
            continue
        normal = normals[sel][inside[sel]].mean(axis=0)
        normal /= max(float(np.linalg.norm(normal)), 1e-12)
        facing = float(normal[1])  # beam direction ≈ +y: < 0 faces the probe (near side), > 0 away
        if abs(facing) < OUTER_MIN_BEAM_COS:
            continue
        profile = np.convolve(profiles[sel][inside[sel]].mean(axis=0), g, mode="same")
        i = r + int(np.argmax(profile[r:len(profile) - r]))  # ignore the zero-padded ends
        peak = steps_mm[i]
        if 0 < i < len(profile) - 1:  # parabolic sub-sample peak
            curvature = profile[i - 1] - 2.0 * profile[i] + profile[i + 1]
            if curvature < 0:
                peak += 0.5 * (profile[i - 1] - profile[i + 1]) / curvature * step_mm
        rows.append((normal[0], normal[1], peak + (thickness_mm if facing > 0 else 0.0)))
    table = np.array(rows).reshape(-1, 3)

    def both_sides(keep: np.ndarray) -> bool:  # near and far sectors: growth and shift separable
        facing = table[keep, 1]
        return bool(np.sum(facing < 0) >= OUTER_MIN_SECTORS and np.sum(facing > 0) >= OUTER_MIN_SECTORS)

    keep = np.ones(len(table), dtype=bool)
    if not both_sides(keep):
        return fallback
    design = np.stack([np.ones(len(table)), table[:, 0], table[:, 1]], axis=1)
    for _ in range(4):  # drop sectors whose peak is another echo (residual beyond the skull's own scale)
        solution = np.linalg.lstsq(design[keep], table[keep, 2], rcond=None)[0]
        residual = np.abs(table[:, 2] - design @ solution)
        keep = residual <= max(OUTER_RESIDUAL_MM, 2.5 * float(np.median(residual)))
        if not both_sides(keep):
            return fallback
    delta, sx, sy = np.linalg.lstsq(design[keep], table[keep, 2], rcond=None)[0] / pixel_size
    return Ellipse(ellipse.cx + sx, ellipse.cy + sy, ellipse.a + delta, ellipse.b + delta, ellipse.angle_deg)


