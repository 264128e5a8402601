"""Automatic prompts for the distal lateral ventricle, from a phantom-anatomy atlas fitted to the head.

The demo (and any caller without user clicks) needs a positive point inside the distal lateral-ventricle
atrium, a box around it, and the paper's two square CNR regions — the ventricle and the *adjacent
parenchyma* (method.md §6, eq. 14). They come from an atlas, not from the image, so the same regions are
measured on the ultrasound and on the pseudo-MRI whatever either looks like:

1. The head's gestational age is estimated from its HC (INTERGROWTH-21st dating).
2. :data:`ATLAS_ANATOMIES` phantom anatomies of that age are rendered as canonical label maps and
   each is stretched so that its outer skull ellipse matches the frame's (canonical grid: head centred,
   midline horizontal, occiput left); averaging gives per-pixel probabilities of "lateral ventricle"
   and "parenchyma" (white matter, thalamus, basal ganglia).
3. The distal hemisphere is the one away from the transducer (:meth:`near_field_side`); its posterior
   ventricle probability ≥ ½ is the atrium; the point is its most interior pixel, the box its bounding
   box grown by :data:`BOX_MARGIN_MM`.
4. The ROI square (side :data:`ROI_SIDE_MM`) sits on that point; the background square, of the same
   size, is the nearest square whose pixels are all ≥ :data:`PARENCHYMA_MIN_PROBABILITY` parenchyma.

Everything is in canonical pixels of a :data:`ATLAS_SIZE_PX` grid (1.094 mm); :func:`to_frame` maps the
result onto the frame for segmentation and measurement.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from .labels import Label
from .phantom import biometry
from .phantom.anatomy import render_labels, sample_anatomy
from ..errors import DDICInputError
from ..geometry.canonical import CANONICAL_SIZE_PX, spacing_for_size

ATLAS_SIZE_PX = CANONICAL_SIZE_PX
ATLAS_ANATOMIES = 8
"""Phantom anatomies averaged per atlas (fixed seeds 0…7: the atlas is deterministic)."""
ATLAS_GA_RANGE_WEEKS = (21.0, 38.0)
BOX_MARGIN_MM = 3.0
ROI_SIDE_MM = 3.0
"""Side of the square CNR regions: inside a normal atrium (≥ 3.5 mm wide, anatomy.md) at 1.094 mm/px."""
PARENCHYMA_MIN_PROBABILITY = 0.75
VENTRICLE_LABELS = (Label.LATERAL_VENTRICLE, Label.CHOROID_PLEXUS)
PARENCHYMA_LABELS = (Label.WHITE_MATTER, Label.THALAMUS, Label.BASAL_GANGLIA)


@dataclass(frozen=True)
class Square:
    """An axis-aligned square on some pixel grid: centre (x, y) and side, in that grid's pixels."""

    cx: float
    cy: float
    side: float

    def box(self) -> tuple[float, float, float, float]:
        h = self.side / 2.0
        return (self.cx - h, self.cy - h, self.cx + h, self.cy + h)


@dataclass(frozen=True)
class VentriclePrompts:
    """Prompts and CNR regions for the distal lateral ventricle on the canonical atlas grid."""

    point: tuple[float, float]  # (x, y) canonical pixels, inside the atrium
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 canonical pixels
    roi: Square
    background: Square
    side: str  # "top" or "bottom" half of the canonical image (the distal hemisphere)
    ga_weeks: float  # the age the atlas was built for

    def to_dict(self) -> dict:
        return {"point": list(self.point), "box": list(self.box), "roi": self.roi.box(),
                "background": self.background.box(), "side": self.side, "ga_weeks": round(self.ga_weeks, 2)}


def atlas_probabilities(ga_weeks: float, a_px: float, b_px: float, size: int = ATLAS_SIZE_PX,
                        anatomies: int = ATLAS_ANATOMIES) -> tuple[np.ndarray, np.ndarray]:
    """(P(ventricle), P(parenchyma)) on an S×S canonical grid for a head of outer semi-axes (a, b) px."""
    if not (a_px > 0 and b_px > 0):
        raise DDICInputError(f"The head ellipse must have positive semi-axes, got a = {a_px}, b = {b_px}.")
    lo, hi = ATLAS_GA_RANGE_WEEKS
    ga = float(np.clip(ga_weeks, lo, hi))
    spacing = spacing_for_size(size)
    centre = (size - 1) / 2.0
    ventricle = np.zeros((size, size))
    parenchyma = np.zeros((size, size))
    for seed in range(anatomies):
        params, labels = _atlas_anatomy(seed, ga, size)
        # stretch this anatomy's skull onto the frame's: output (row, col) → input (row, col)
        sy = (params.skull_b_mm / spacing) / b_px
        sx = (params.skull_a_mm / spacing) / a_px
        matrix = np.diag([sy, sx])
        offset = centre - matrix @ np.array([centre, centre])
        for target, ids in ((ventricle, VENTRICLE_LABELS), (parenchyma, PARENCHYMA_LABELS)):
            member = np.isin(labels, [int(i) for i in ids]).astype(np.float64)
            target += ndimage.affine_transform(member, matrix, offset=offset, order=1, mode="constant")
    return ventricle / anatomies, parenchyma / anatomies


@lru_cache(maxsize=32)
def _atlas_anatomy(seed: int, ga_weeks: float, size: int):
    """One atlas anatomy and its canonical label map (cached: a frame's prompts, their checks and a second
    orientation all need the same few)."""
    params = sample_anatomy(seed, ga_weeks=ga_weeks)
    labels = render_labels(params, spacing_mm=spacing_for_size(size), shape=(size, size), supersample=2)
    labels.setflags(write=False)
    return params, labels


def distal_ventricle_prompts(hc_mm: float, a_px: float, b_px: float, near_field_side: str,
                             size: int = ATLAS_SIZE_PX) -> VentriclePrompts:
    """Prompts for the distal lateral ventricle of a head (see the module docstring).

    ``a_px``, ``b_px``: the head's outer semi-axes on the canonical S×S grid; ``near_field_side``: where
    the transducer side lies on that grid ("top" or "bottom").
    """
    if near_field_side not in ("top", "bottom"):
        raise DDICInputError(f"near_field_side must be 'top' or 'bottom', not {near_field_side!r}.")
    ga = float(biometry.ga_from_hc_weeks(hc_mm))
    p_vent, p_par = atlas_probabilities(ga, a_px, b_px, size)
    centre = (size - 1) / 2.0
    rows, cols = np.mgrid[0:size, 0:size]
    distal = rows > centre if near_field_side == "top" else rows < centre
    atrium = (p_vent >= 0.5) & distal & (cols < centre)  # posterior half: occiput is on the left
    if not atrium.any():
        raise DDICInputError("The ventricle atlas has no atrium for this head (is the HC plausible?); "
                             "place the ventricle prompts by hand.")
    depth = ndimage.distance_transform_edt(atrium)
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    spacing = spacing_for_size(size)
    ys, xs = np.nonzero(ndimage.binary_dilation(atrium, iterations=1) & (p_vent > 0.25) & distal & (cols < centre))
    margin = BOX_MARGIN_MM / spacing
    box = (float(xs.min() - margin), float(ys.min() - margin), float(xs.max() + margin), float(ys.max() + margin))
    side_px = ROI_SIDE_MM / spacing
    roi = Square(float(x), float(y), side_px)
    background = _nearest_parenchyma_square(p_par, p_vent, (x, y), side_px)
    return VentriclePrompts(point=(float(x), float(y)), box=box, roi=roi, background=background,
                            side="bottom" if near_field_side == "top" else "top", ga_weeks=ga)


def _nearest_parenchyma_square(p_par: np.ndarray, p_vent: np.ndarray, point, side_px: float) -> Square:
    """The square of ``side_px`` nearest to ``point`` that lies wholly in likely parenchyma."""
    k = max(int(round(side_px)), 1)
    smallest = ndimage.minimum_filter(p_par, size=k, mode="constant", cval=0.0)
    no_ventricle = ndimage.maximum_filter(p_vent, size=k + 2, mode="constant", cval=0.0) < 0.25
    ok = (smallest >= PARENCHYMA_MIN_PROBABILITY) & no_ventricle
    if not ok.any():
        raise DDICInputError("No parenchyma region for the CNR background in the atlas; place it by hand.")
    ys, xs = np.nonzero(ok)
    d = (xs - point[0]) ** 2 + (ys - point[1]) ** 2
    i = int(np.argmin(d))
    # minimum_filter with an even k is centred half a pixel up-left of the window's middle
    shift = 0.0 if k % 2 else -0.5
    return Square(float(xs[i] + shift), float(ys[i] + shift), side_px)


def prompts_for_transform(transform) -> VentriclePrompts:
    """The atlas prompts of a :class:`ddic.geometry.head.CanonicalHeadTransform` (canonical 128 grid)."""
    ellipse = transform.canonical_ellipse(ATLAS_SIZE_PX)
    hc = transform.ellipse.hc_mm(transform.geometry.pixel_size_mm)
    return distal_ventricle_prompts(hc, ellipse.a, ellipse.b, transform.near_field_side(), ATLAS_SIZE_PX)


@dataclass(frozen=True)
class FramePrompts:
    """The same prompts on the frame's pixel grid (x = column, y = row): what segmentation and CNR use."""

    point: tuple[float, float]
    box: tuple[float, float, float, float]
    roi: tuple[float, float, float, float]
    background: tuple[float, float, float, float]

    def to_dict(self) -> dict:
        return {"point": [round(v, 2) for v in self.point], "box": [round(v, 2) for v in self.box],
                "roi": [round(v, 2) for v in self.roi], "background": [round(v, 2) for v in self.background]}


def to_frame(prompts: VentriclePrompts, transform) -> FramePrompts:
    """Map canonical prompts onto the frame: points exactly, boxes as the bounding box of their mapped
    corners, squares as frame-axis squares of the same physical side around the mapped centre."""
    def corners(box):
        x0, y0, x1, y1 = box
        return np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], dtype=np.float64)

    point = transform.point_to_frame(np.array(prompts.point), size=ATLAS_SIZE_PX)
    mapped = transform.point_to_frame(corners(prompts.box), size=ATLAS_SIZE_PX)
    box = (float(mapped[:, 0].min()), float(mapped[:, 1].min()), float(mapped[:, 0].max()), float(mapped[:, 1].max()))
    scale = spacing_for_size(ATLAS_SIZE_PX) / transform.geometry.pixel_size_mm

    def square(sq: Square):
        c = transform.point_to_frame(np.array([sq.cx, sq.cy]), size=ATLAS_SIZE_PX)
        return Square(float(c[0]), float(c[1]), sq.side * scale).box()

    return FramePrompts(point=(float(point[0]), float(point[1])), box=box, roi=square(prompts.roi),
                        background=square(prompts.background))


def head_axes(transform, side: str, orientation_decided: bool = True):
    """The :class:`ddic.measure.plausibility.HeadAxes` of a head transform: centre, frontal and distal
    directions in frame pixels (``side``: where the distal hemisphere lies on the canonical grid, "top" or
    "bottom", as :attr:`VentriclePrompts.side`), inner semi-axes (outer minus one Wong-law bone)."""
    from ..geometry.skull import skull_thickness_from_bpd_mm
    from ..measure.plausibility import HeadAxes

    if side not in ("top", "bottom"):
        raise DDICInputError(f"side must be 'top' or 'bottom', not {side!r}.")
    c = (transform.size - 1) / 2.0
    centre, front, distal = transform.point_to_frame(
        np.array([[c, c], [c + 1.0, c], [c, c + (1.0 if side == "bottom" else -1.0)]]))
    ps = transform.geometry.pixel_size_mm
    a_mm, b_mm = transform.ellipse.a * ps, transform.ellipse.b * ps
    bone = float(skull_thickness_from_bpd_mm(2.0 * b_mm))
    unit = lambda v: tuple(float(x) for x in v / np.linalg.norm(v))  # noqa: E731
    return HeadAxes(centre_xy=(float(centre[0]), float(centre[1])), anterior_xy=unit(front - centre),
                    distal_xy=unit(distal - centre), inner_a_mm=a_mm - bone, inner_b_mm=b_mm - bone,
                    pixel_size_mm=ps, orientation_decided=bool(orientation_decided))
