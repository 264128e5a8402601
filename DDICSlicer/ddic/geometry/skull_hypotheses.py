"""Candidate head ellipses from skull-echo ridge points: RANSAC, centre votes and the plausibility test.

Step 3 and 4 of :func:`ddic.geometry.skull_detection.detect_skull_ellipse`, kept apart because they are the
part that decides *which* bright curve is the skull: everything here works on a cloud of ridge points
(working pixels, with a strength and a ridge normal each) and knows nothing of images. Why two searches:
RANSAC over all points finds the skull when it dominates the frame; voting for centres first, then
running RANSAC on the points that face a likely centre, finds it among maternal-wall and placenta echoes
whose points outnumber the skull's but do not agree on a centre.
"""

from __future__ import annotations

import math

import numpy as np

from .ellipse import Ellipse, conics_to_ellipses, ramanujan_perimeter, semi_axes_for_circumference
from .image_filters import convolve_axis, gaussian_kernels

DETECTION_HC_RANGE_MM = (100.0, 400.0)
DETECTION_AXIS_RATIO_RANGE = (0.6, 0.95)
"""A plausible head: HC (mm) and axis ratio b/a within these deliberately wide ranges."""
RANSAC_HYPOTHESES = 2400
RANSAC_KEEP = 8
"""The best distinct RANSAC ellipses (by inlier weight) that are refined and ranked by echo evidence."""
CENTRE_PEAKS = 2
"""Head-centre candidates from normal voting; each gets its own RANSAC on the ridge points facing it."""


def plausible_head(hc_mm, ratio):
    """Whether an ellipse of head circumference ``hc_mm`` and axis ratio ``ratio`` can be a fetal head
    (:data:`DETECTION_HC_RANGE_MM`, :data:`DETECTION_AXIS_RATIO_RANGE`); scalars or arrays."""
    lo, hi = DETECTION_HC_RANGE_MM
    rlo, rhi = DETECTION_AXIS_RATIO_RANGE
    return (hc_mm >= lo) & (hc_mm <= hi) & (ratio >= rlo) & (ratio <= rhi)

def _five_point_conics(samples: np.ndarray) -> np.ndarray:
    """(K, 5, 2) point sets → (K, 6) conics through them (null vector of the 5×6 design matrix)."""
    x, y = samples[..., 0], samples[..., 1]
    design = np.stack([x * x, x * y, y * y, x, y, np.ones_like(x)], axis=-1)
    _, _, vt = np.linalg.svd(design, full_matrices=True)
    return vt[:, -1, :]


def ransac_ellipses(pts, wts, tol, spacing, frame_wh, rng, keep: int = RANSAC_KEEP, all_points=None
            ) -> list[Ellipse]:
    """Plausible ellipses through random 5-point samples of ``pts``, the ``keep`` best distinct ones by
    the summed weight of their inlier points (among ``all_points`` = (points, weights) if given), best
    first."""
    score_pts, score_wts = all_points if all_points is not None else (pts, wts)
    mean = pts.mean(axis=0)
    scale = float(np.sqrt(np.mean(np.sum((pts - mean) ** 2, axis=1)))) or 1.0
    q = (pts - mean) / scale
    prob = wts / wts.sum()
    w, h = frame_wh
    chunk = 400
    found_scores, found_params = [], []
    for start in range(0, RANSAC_HYPOTHESES, chunk):
        k = min(chunk, RANSAC_HYPOTHESES - start)
        idx = rng.choice(len(q), size=(k, 5), p=prob)  # a repeated point only wastes the hypothesis
        conics = _five_point_conics(q[idx])
        cx, cy, a, b, angle, valid = conics_to_ellipses(conics)
        cx, cy, a, b = cx * scale + mean[0], cy * scale + mean[1], a * scale, b * scale
        with np.errstate(invalid="ignore"):
            hc = ramanujan_perimeter(a, b) * spacing
            valid &= plausible_head(hc, b / a)
            valid &= (cx >= 0) & (cx <= w - 1) & (cy >= 0) & (cy <= h - 1)
        sel = np.flatnonzero(valid)
        if sel.size == 0:
            continue
        found_scores.append(_inlier_scores(score_pts, score_wts, cx[sel], cy[sel], a[sel], b[sel], angle[sel],
                                           tol))
        found_params.append(np.stack([cx[sel], cy[sel], a[sel], b[sel], angle[sel]], axis=1))
    if not found_scores:
        return []
    scores, params = np.concatenate(found_scores), np.concatenate(found_params)
    chosen: list[np.ndarray] = []
    for i in np.argsort(scores)[::-1]:  # the best first, skipping repeats of an ellipse already chosen
        p = params[i]
        if all(math.hypot(p[0] - c[0], p[1] - c[1]) >= 3 * tol or abs(p[2] - c[2]) >= 3 * tol
               or abs(p[3] - c[3]) >= 3 * tol for c in chosen):
            chosen.append(p)
            if len(chosen) >= keep:
                break
    return [Ellipse(*p) for p in chosen]


def _head_radius_range_px(spacing: float) -> tuple[float, float]:
    """Smallest semi-minor and largest semi-major axis (working pixels) of a plausible head ellipse."""
    lo, hi = DETECTION_HC_RANGE_MM
    rlo, rhi = DETECTION_AXIS_RATIO_RANGE
    b_min = semi_axes_for_circumference(lo, rlo)[1]
    a_max = semi_axes_for_circumference(hi, rhi)[0]
    return b_min / spacing, a_max / spacing


def centre_votes(pts, normals, wts, spacing, shape, peaks: int = CENTRE_PEAKS) -> list[np.ndarray]:
    """Likely head centres: every ridge point votes (∝ its strength) along its normal, both ways, at the
    distances a head's semi-axes allow; the ``peaks`` strongest maxima of the smoothed vote map (at least
    15 mm apart). Skull points face the centre (exactly at the ends of the axes, roughly elsewhere), so
    their votes pile up there while clutter's spread out."""
    h, w = shape
    r_min, r_max = _head_radius_range_px(spacing)
    radii = np.arange(r_min, r_max, 1.0)
    acc = np.zeros(h * w)
    for sign in (1.0, -1.0):
        vx = np.rint(pts[:, 0, None] + sign * radii[None, :] * normals[:, 0, None]).astype(int)
        vy = np.rint(pts[:, 1, None] + sign * radii[None, :] * normals[:, 1, None]).astype(int)
        ok = (vx >= 0) & (vx < w) & (vy >= 0) & (vy < h)
        weights = np.broadcast_to(wts[:, None], vx.shape)[ok]
        acc += np.bincount((vy * w + vx)[ok], weights=weights, minlength=h * w)
    g, _, _ = gaussian_kernels(max(3.0 / spacing, 1.0))
    acc = convolve_axis(convolve_axis(acc.reshape(h, w), g, 1), g, 0)
    centres: list[np.ndarray] = []
    separation = 15.0 / spacing
    for index in np.argsort(acc.ravel())[::-1][: 50 * peaks * peaks]:
        c = np.array([index % w, index // w], dtype=np.float64)
        if all(np.hypot(*(c - other)) >= separation for other in centres):
            centres.append(c)
            if len(centres) >= peaks:
                break
    return centres


def facing_centre(pts, normals, centre, spacing, max_angle_deg: float = 35.0) -> np.ndarray:
    """Points at a head-like distance from ``centre`` whose ridge normal points at it (± max_angle)."""
    r_min, r_max = _head_radius_range_px(spacing)
    d = centre - pts
    r = np.hypot(d[:, 0], d[:, 1])
    cos = np.abs(np.sum(d * normals, axis=1)) / np.maximum(r, 1e-9)
    return (r >= r_min) & (r <= r_max) & (cos >= math.cos(math.radians(max_angle_deg)))


def _inlier_scores(pts, wts, cx, cy, a, b, angle_deg, tol) -> np.ndarray:
    """Summed weight of the points within ``tol`` (Sampson distance) of each of K ellipses → (K,)."""
    t = np.radians(angle_deg)[:, None]
    dx, dy = pts[None, :, 0] - cx[:, None], pts[None, :, 1] - cy[:, None]
    u = (dx * np.cos(t) + dy * np.sin(t)) / a[:, None]
    v = (-dx * np.sin(t) + dy * np.cos(t)) / b[:, None]
    f = u * u + v * v - 1.0
    grad = 2.0 * np.hypot(u / a[:, None], v / b[:, None])
    near = np.abs(f) < tol * np.maximum(grad, 1e-12)
    return near.astype(np.float64) @ wts

