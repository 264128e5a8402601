"""Width of the lateral-ventricle atrium from a binary mask, in mm, as the clinical caliper measures it.

Why: ventriculomegaly is graded by the atrium width (≥ 10 mm abnormal, anatomy.md §2.3), measured inner edge to
inner edge, perpendicular to the ventricle's long axis, at the glomus of the choroid plexus (anatomy.md §2.1).
A translation that makes the ventricle easier to segment is only useful if the width measured on it is right,
so the phantom (whose atria have known widths) and segmentations of US / pseudo-MRI are measured the same way.

How (all in mm, so anisotropic pixels are handled):

1. The lumen is the mask (plus the glomus mask, if given: the choroid plexus lies *inside* the lumen); one
   8-connected component is kept: the largest, or with ``posterior`` (a direction in image axes towards the
   occiput, e.g. ``(-1, 0)`` in the canonical orientation) the most posterior component of at least
   ``MIN_COMPONENT_FRACTION`` of the largest's size — the atrium rather than the frontal horn of a TT-plane
   segmentation, whose two parts are not connected.
2. The long axis is the principal axis of the component's pixel centres (PCA in mm). With ``posterior`` the
   widest part is searched only behind the centroid (the posterior portion, where the atrium is); the axis
   stays that of the whole component (re-estimating it on half a short atrium made it unstable on phantoms).
3. Along the axis, every ``min(spacing)/2`` mm, the chord perpendicular to the axis through the lumen is found
   on the bilinearly interpolated mask: its ends are where the interpolated mask crosses 0.5 (sub-pixel inner
   edges); the chord is the run of lumen nearest to the axis.
4. The width profile is averaged over a sliding window of ``window_mm`` (default: two pixels), which cancels most
   of the pixel staircase of the edges; the atrium width is the *widest* window (the clinical "widest part of
   the atrium"), or, with a ``glomus`` mask, the window at the glomus centroid's level (the clinical landmark).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ..errors import DDICInputError

MIN_MASK_PIXELS = 3
"""A principal axis needs at least three pixels (two define a line but not a width)."""

MIN_COMPONENT_FRACTION = 0.1
"""Components under this fraction of the largest one are islands of a segmentation, never the atrium."""


@dataclass(frozen=True)
class WidthMeasurement:
    """An atrium width and the caliper that gave it.

    Coordinates: ``caliper_xy`` are the two inner-edge points in *pixel index* coordinates (x = column,
    y = row, pixel centres at whole numbers), ready to draw as a line; ``axis_xy`` is the unit long-axis
    direction in physical image axes (mm along x, mm along y), pointing posterior when ``posterior`` was
    given; ``elongation`` = √(λ₁/λ₂) of the lumen (near 1: the axis is ill-defined, the width unreliable).
    ``profile_t_mm`` / ``profile_width_mm``: the raw chord widths along the axis (NaN where no chord).
    """

    width_mm: float
    caliper_xy: tuple[tuple[float, float], tuple[float, float]]
    axis_xy: tuple[float, float]
    elongation: float
    level: str  # "widest" or "glomus"
    n_pixels: int
    profile_t_mm: np.ndarray = field(repr=False, compare=False)
    profile_width_mm: np.ndarray = field(repr=False, compare=False)

    def to_dict(self) -> dict:
        return {"width_mm": self.width_mm, "caliper_xy": [list(p) for p in self.caliper_xy],
                "axis_xy": list(self.axis_xy), "elongation": self.elongation, "level": self.level,
                "n_pixels": self.n_pixels}


def _spacing(spacing_xy) -> tuple[float, float]:
    s = np.asarray(spacing_xy, dtype=np.float64).ravel()
    if s.size == 1:
        s = np.repeat(s, 2)
    if s.size != 2 or np.any(~np.isfinite(s)) or np.any(s <= 0):
        raise DDICInputError(f"Pixel spacing must be one or two positive numbers (x, y) in mm, got {spacing_xy!r}.")
    return float(s[0]), float(s[1])


def _lumen(mask, glomus, name: str) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim != 2:
        raise DDICInputError(f"The {name} must be a 2D mask, got shape {m.shape}.")
    m = m.astype(bool) if m.dtype == bool else m != 0
    if glomus is not None:
        g = np.asarray(glomus)
        if g.shape != m.shape:
            raise DDICInputError(f"The glomus mask has shape {g.shape}, the {name} {m.shape}; they must match.")
        m = m | (g.astype(bool) if g.dtype == bool else g != 0)
    if not m.any():
        raise DDICInputError(
            f"The {name} is empty: no ventricle pixels to measure. Check the label value or the segmentation."
        )
    return m


def _component(m: np.ndarray, posterior_mm: np.ndarray | None, sx: float, sy: float) -> np.ndarray:
    """The largest 8-connected component, or with a posterior direction the most posterior of the components
    holding at least ``MIN_COMPONENT_FRACTION`` of the largest's pixels (the atrium, not the frontal horn)."""
    labels, n = ndimage.label(m, structure=np.ones((3, 3), dtype=bool))
    if n <= 1:
        return m
    sizes = np.bincount(labels.ravel())[1:]
    if posterior_mm is None:
        return labels == (int(np.argmax(sizes)) + 1)
    keep = np.flatnonzero(sizes >= MIN_COMPONENT_FRACTION * sizes.max()) + 1
    rows, cols = np.nonzero(labels)
    ids = labels[rows, cols]
    proj = cols * sx * posterior_mm[0] + rows * sy * posterior_mm[1]
    depth = [proj[ids == k].mean() for k in keep]
    return labels == int(keep[int(np.argmax(depth))])


def _check_size(m: np.ndarray, name: str) -> np.ndarray:
    if np.count_nonzero(m) < MIN_MASK_PIXELS:
        raise DDICInputError(
            f"The {name} has only {np.count_nonzero(m)} pixel(s); at least {MIN_MASK_PIXELS} are needed to find "
            "a ventricle axis."
        )
    return m


def _pca(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    centre = points.mean(axis=0)
    cov = np.cov((points - centre).T)
    evals, evecs = np.linalg.eigh(cov)  # ascending
    axis = evecs[:, 1]
    elongation = float(np.sqrt(evals[1] / evals[0])) if evals[0] > 1e-12 else float("inf")
    return centre, axis / np.linalg.norm(axis), elongation


def principal_axis(mask, spacing_xy=(1.0, 1.0)) -> tuple[tuple[float, float], tuple[float, float], float]:
    """(centroid in pixel index coordinates (x, y), unit long axis in physical image axes, elongation) of a mask's
    largest component; the axis sign is arbitrary."""
    sx, sy = _spacing(spacing_xy)
    m = _check_size(_component(_lumen(mask, None, "mask"), None, sx, sy), "mask")
    rows, cols = np.nonzero(m)
    centre, axis, elongation = _pca(np.column_stack([cols * sx, rows * sy]))
    return (float(centre[0] / sx), float(centre[1] / sy)), (float(axis[0]), float(axis[1])), elongation


def _chords(maskf: np.ndarray, sx: float, sy: float, centre: np.ndarray, axis: np.ndarray, t: np.ndarray,
            half_span: float) -> tuple[np.ndarray, np.ndarray]:
    """Chord width and chord centre offset (along the normal) at each axis position ``t`` (mm)."""
    normal = np.array([-axis[1], axis[0]])
    ds = min(sx, sy) / 8.0
    s = np.arange(-half_span, half_span + ds / 2, ds)
    px = centre[0] + t[:, None] * axis[0] + s[None, :] * normal[0]
    py = centre[1] + t[:, None] * axis[1] + s[None, :] * normal[1]
    values = ndimage.map_coordinates(maskf, [py / sy, px / sx], order=1, mode="constant", cval=0.0)
    widths = np.full(t.size, np.nan)
    offsets = np.full(t.size, np.nan)
    for i, v in enumerate(values):
        inside = v >= 0.5
        if not inside.any():
            continue
        idx = np.flatnonzero(inside)
        start = stop = idx[np.argmin(np.abs(s[idx]))]  # the lumen run nearest the axis
        while start > 0 and inside[start - 1]:
            start -= 1
        while stop < s.size - 1 and inside[stop + 1]:
            stop += 1
        left = _crossing(s, v, start - 1, start) if start > 0 else s[start]
        right = _crossing(s, v, stop + 1, stop) if stop < s.size - 1 else s[stop]
        widths[i], offsets[i] = right - left, 0.5 * (left + right)
    return widths, offsets


def _crossing(s: np.ndarray, v: np.ndarray, outside: int, inside: int) -> float:
    """Where the linearly interpolated profile crosses 0.5 between an outside and an inside sample."""
    vo, vi = float(v[outside]), float(v[inside])
    f = (0.5 - vo) / (vi - vo) if vi != vo else 0.5
    return float(s[outside] + f * (s[inside] - s[outside]))


def _window_mean(values: np.ndarray, n: int) -> np.ndarray:
    """Sliding mean over ``n`` samples (odd), NaN where the window holds any NaN (the chord left the lumen)."""
    if n <= 1:
        return values.copy()
    half = n // 2
    out = np.full(values.size, np.nan)
    for i in range(half, values.size - half):
        window = values[i - half:i + half + 1]
        if np.all(np.isfinite(window)):
            out[i] = float(window.mean())
    return out


def atrium_width(mask, spacing_xy=(1.0, 1.0), *, posterior=None, glomus=None,
                 window_mm: float | None = None, name: str = "ventricle mask") -> WidthMeasurement:
    """Inner width (mm) of a lateral-ventricle atrium, perpendicular to the ventricle's long axis.

    ``mask``: (H, W) boolean/label-nonzero mask of one lateral ventricle (its lumen; the choroid plexus counts
    as lumen). ``spacing_xy``: pixel spacing (x = column, y = row) in mm, or one number. ``posterior``: optional
    (dx, dy) direction in image axes towards the occiput: measure the most posterior component (the atrium,
    not the frontal horn) and only its part behind the centroid. ``glomus``: optional choroid-plexus mask: measure at its level instead of at the
    widest part. ``window_mm``: averaging length along the axis (default two pixels). Method: module docstring.
    """
    sx, sy = _spacing(spacing_xy)
    p = None
    if posterior is not None:
        p = np.asarray(posterior, dtype=np.float64).ravel()
        if p.size != 2 or not np.all(np.isfinite(p)) or not np.any(p):
            raise DDICInputError(f"posterior must be a direction (dx, dy) in image axes, got {posterior!r}.")
        p = np.array([p[0] * sx, p[1] * sy])
    lumen = _check_size(_component(_lumen(mask, glomus, name), p, sx, sy), name)
    rows, cols = np.nonzero(lumen)
    pts = np.column_stack([cols * sx, rows * sy])
    centre, axis, elongation = _pca(pts)
    if p is not None:  # orient the axis towards the occiput and search only behind the centroid
        axis = axis if axis @ p >= 0 else -axis
        back = pts[(pts - centre) @ axis >= 0]
        pts = back if back.shape[0] >= MIN_MASK_PIXELS else pts
    t_proj = (pts - centre) @ axis
    s_proj = (pts - centre) @ np.array([-axis[1], axis[0]])
    pad = max(sx, sy)
    dt = min(sx, sy) / 2.0
    t = np.arange(t_proj.min() - pad / 2, t_proj.max() + pad / 2 + dt / 2, dt)
    half_span = float(np.abs(s_proj).max()) + 2.0 * pad
    widths, offsets = _chords(lumen.astype(np.float64), sx, sy, centre, axis, t, half_span)
    if not np.any(np.isfinite(widths)):
        raise DDICInputError(f"No chord across the {name} was found; is it a ventricle-shaped mask?")

    window = 2.0 * max(sx, sy) if window_mm is None else float(window_mm)
    if window < 0:
        raise DDICInputError(f"window_mm must be ≥ 0, not {window_mm}.")
    n = max(1, round(window / dt))
    n += (n + 1) % 2  # odd, centred
    smooth = _window_mean(widths, n)
    if not np.any(np.isfinite(smooth)):  # a lumen shorter than the window: fall back to single chords
        smooth = widths
    if glomus is not None:
        g = np.asarray(glomus)
        g = g.astype(bool) if g.dtype == bool else g != 0
        if not g.any():
            raise DDICInputError("The glomus (choroid plexus) mask is empty; leave it out to measure the widest part.")
        gr, gc = np.nonzero(g)
        t_g = (np.array([gc.mean() * sx, gr.mean() * sy]) - centre) @ axis
        candidates = np.flatnonzero(np.isfinite(smooth))
        i = int(candidates[np.argmin(np.abs(t[candidates] - t_g))])
        level = "glomus"
    else:
        i = int(np.nanargmax(smooth))
        level = "widest"
    width = float(smooth[i])
    normal = np.array([-axis[1], axis[0]])
    mid = centre + t[i] * axis + (offsets[i] if np.isfinite(offsets[i]) else 0.0) * normal
    ends = [mid - 0.5 * width * normal, mid + 0.5 * width * normal]
    caliper = tuple((float(e[0] / sx), float(e[1] / sy)) for e in ends)
    return WidthMeasurement(width_mm=width, caliper_xy=caliper, axis_xy=(float(axis[0]), float(axis[1])),
                            elongation=elongation, level=level, n_pixels=int(lumen.sum()),
                            profile_t_mm=t, profile_width_mm=widths)
