"""Automatic skull detection: the head ellipse of a transthalamic ultrasound frame, with no annotation.

Why it exists: placing a head on the canonical grid the models were trained on needs its skull ellipse,
and most frames come without one; the detector finds that ellipse (and a confidence the panel shows) from
the skull's own echo. :func:`detect_skull_ellipse` is the whole pipeline and the only entry point; the steps
live beside it: the image filters in :mod:`ddic.geometry.image_filters`, the candidate search (RANSAC and
centre votes) in :mod:`ddic.geometry.skull_hypotheses`, the step from the echo's centre line to the outer
bone surface in :mod:`ddic.geometry.skull_outer_surface`. Ellipses follow the :mod:`ddic.geometry.ellipse`
conventions (frame pixels, x = column, y = row).

Only numpy and SimpleITK (smoothing and resampling the frame) are used at run time, so the Slicer
module can call it in its own process.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..errors import DDICInputError
from .ellipse import Ellipse, fit_ellipse, positive_pixel_size
from .image_filters import box_mean, convolve_axis, gaussian_kernels, non_max_suppression, ridges, sample_bilinear
from .skull_hypotheses import centre_votes, facing_centre, plausible_head, ransac_ellipses
from .skull_outer_surface import outer_skull_ellipse

DETECTION_SPACING_MM = 0.5
"""Working pixel size of the detector: finer frames are smoothed and resampled to it (a skull echo is
2–5 mm thick, so 0.5 mm keeps it 4–10 px wide while an 800×540 frame shrinks to a few hundred pixels)."""
RIDGE_SIGMA_MM = 1.0
"""Scale of the Hessian ridge filter (≈ the half-thickness of the skull echo)."""
INLIER_TOLERANCE_MM = 1.5
MIN_COVERAGE = 0.4
"""A detection needs a bright echo along at least this fraction of the 36 ten-degree sectors of the
ellipse (skull echoes drop out where the beam runs along them, so full coverage is not required)."""
ECHO_OFFSET_MM = 4.0
ECHO_CONTRAST = 0.1
MAX_CANDIDATES = 2500
"""The strongest ridge centre-line pixels kept as candidate skull points."""

_FAIL_ADVICE = ("Fit from ≥ 5 points on the skull instead (e.g. mark points on the outer skull outline "
                "and use fit_ellipse), or give the HC18 annotation.")


class SkullDetection(NamedTuple):
    """An automatic skull fit: the ellipse (frame pixels), a confidence in [0, 1] and its diagnostics."""

    ellipse: Ellipse
    confidence: float
    coverage: float  # fraction of the 36 ten-degree sectors of the ellipse that are a bright echo
    residual_mm: float  # RMS distance of the inlier points to the ellipse
    n_points: int  # inlier ridge points
    hc_mm: float


def detect_skull_ellipse(frame_pixels, pixel_size_mm: float, *, boundary: str = "outer",
                         seed: int = 0) -> SkullDetection:
    """Find the skull echo of a transthalamic US frame and fit an ellipse to it (no annotation needed).

    1. The frame is smoothed and resampled to :data:`DETECTION_SPACING_MM` and scaled to its 1–99.5 %
       intensity percentiles; pixels near the edge of the imaged sector (or of the frame) are ignored.
    2. **Bright ridges**: the Hessian at :data:`RIDGE_SIGMA_MM` gives ridge strength max(0, −λ₁ − |λ₂|)
       (bright lines, not blobs); non-maximum suppression across the ridge keeps one-pixel centre lines;
       the strongest :data:`MAX_CANDIDATES` centre-line pixels are the candidate skull points.
    3. **Centre votes**: each candidate votes, ∝ its strength, along its ridge normal at the distances a
       head's semi-axes allow; the strongest :data:`~ddic.geometry.skull_hypotheses.CENTRE_PEAKS` maxima
       of the smoothed vote map are likely head centres (skull points face the centre, clutter does not
       agree on one; :func:`~ddic.geometry.skull_hypotheses.centre_votes`).
    4. **RANSAC**: exact conics through random 5-point samples (drawn ∝ ridge strength) of all
       candidates, and separately of the candidates facing each likely centre (a much cleaner set), kept
       only when plausible as a head (:func:`~ddic.geometry.skull_hypotheses.plausible_head`, centre
       inside the frame) and scored by the summed strength of all candidates within
       :data:`INLIER_TOLERANCE_MM`; the :data:`~ddic.geometry.skull_hypotheses.RANSAC_KEEP` best distinct
       ellipses of each run are refitted on their inliers
       (:func:`~ddic.geometry.skull_hypotheses.ransac_ellipses`).
    5. **Echo evidence** ranks them: along 36 sectors the ellipse must be brighter than the curves
       :data:`ECHO_OFFSET_MM` inside and outside it (see :func:`_echo_evidence`); the winner is refitted
       with geometric refinement (:func:`fit_ellipse`).
    6. **Checks**: plausibility again, and echo coverage ≥ :data:`MIN_COVERAGE` (skull echoes drop out
       where the beam runs along them, so full coverage is not required; random speckle ridges never
       reach it).
    7. **Outer surface** (``boundary="outer"``): per sector, the brightest point of the skull echo is
       the first bone surface along the beam — outer on the near side, inner on the far side, where one
       Wong-law bone thickness is added; a robust fit of a growth plus a centre shift to these offsets
       moves the centre line onto the outer skull
       (:func:`~ddic.geometry.skull_outer_surface.outer_skull_ellipse`). Assumes the probe at the top of
       the frame (HC18 and the phantom).

    ``boundary="outer"`` (the default) returns the outer skull surface — the HC18 / INTERGROWTH HC
    convention and the ellipse :class:`ddic.geometry.head.CanonicalHeadTransform` expects — located from
    the bone's specular echo on the near and far side and the bone thickness (step 7);
    ``"centre"`` returns the centre line of the skull echo (whose depth in the bone differs between the
    near and the far side: ≈ 2–5 % below the outer HC on the phantom).
    *[?]* That HC18's annotations follow the outer surface is to be confirmed on real frames.

    ``confidence`` = coverage × exp(−½ (rms / tolerance)²). Raises :class:`DDICInputError` with advice when
    no plausible skull ellipse is found.
    """
    if boundary not in ("centre", "outer"):
        raise DDICInputError(f"boundary must be 'centre' or 'outer', got {boundary!r}.")
    pixel_size = positive_pixel_size(pixel_size_mm)
    frame = _grayscale(frame_pixels)
    work, spacing = _working_image(frame, pixel_size)
    scale = spacing / pixel_size  # working pixel → frame pixel
    lo, hi = np.percentile(work, [1.0, 99.5])
    if not hi > lo:
        raise DDICInputError("The frame is blank (no intensity variation); no skull can be detected. "
                             + _FAIL_ADVICE)
    image = np.clip((work - lo) / (hi - lo), 0.0, 1.0)
    valid = _interior_of_sector(work, lo, margin_px=math.ceil(3.0 * RIDGE_SIGMA_MM / spacing) + 1)

    sigma = max(RIDGE_SIGMA_MM / spacing, 1.0)
    strength, normal = ridges(image, sigma)
    strength[~valid] = 0.0
    centre_line = non_max_suppression(strength, normal) & (strength > 0)
    ys, xs = np.nonzero(centre_line)
    values = strength[ys, xs]
    if values.size < 5:
        raise DDICInputError("No bright skull echo found in the frame. " + _FAIL_ADVICE)
    order = np.argsort(values)[::-1][:MAX_CANDIDATES]
    pts = np.stack([xs[order], ys[order]], axis=1).astype(np.float64)
    wts = values[order] / values[order].max()
    normals = normal[ys[order], xs[order]]

    tol = INLIER_TOLERANCE_MM / spacing
    h, w = image.shape
    rng = np.random.default_rng(seed)
    hypotheses = ransac_ellipses(pts, wts, tol, spacing, (w, h), rng)
    for centre in centre_votes(pts, normals, wts, spacing, image.shape):
        near = facing_centre(pts, normals, centre, spacing)
        if near.sum() >= 10:
            hypotheses += ransac_ellipses(pts[near], wts[near], tol, spacing, (w, h), rng, all_points=(pts, wts))
    if not hypotheses:
        raise DDICInputError("No plausible head ellipse (HC 100–400 mm, axis ratio 0.6–0.95) among the "
                             "bright echoes of the frame. " + _FAIL_ADVICE)
    g, _, _ = gaussian_kernels(max(0.5 / spacing, 0.5))  # 0.5 mm: tames speckle, barely widens the echo
    smooth = convolve_axis(convolve_axis(image, g, 1), g, 0)
    best = None
    for hypothesis in hypotheses:
        ellipse = _refit(hypothesis, pts, wts, tol, refine=False)  # algebraic refits rank well enough
        if not plausible_head(ellipse.hc_mm(spacing), ellipse.axis_ratio):
            continue
        evidence, _ = _echo_evidence(smooth, ellipse, spacing)
        if best is None or evidence > best[0]:
            best = (evidence, ellipse)
    if best is not None:  # the winner gets the geometric refinement
        ellipse = _refit(best[1], pts, wts, tol)
        if not plausible_head(ellipse.hc_mm(spacing), ellipse.axis_ratio):
            ellipse = best[1]
    else:
        e = _refit(hypotheses[0], pts, wts, tol)
        raise DDICInputError(
            f"The best skull candidate is implausible as a head (HC {e.hc_mm(spacing):.0f} mm, axis ratio "
            f"{e.axis_ratio:.2f}). " + _FAIL_ADVICE)
    _, coverage = _echo_evidence(smooth, ellipse, spacing)
    inliers = np.abs(ellipse.distance(pts)) < tol
    residual_px = float(np.sqrt(np.mean(ellipse.distance(pts[inliers]) ** 2))) if inliers.any() else tol
    residual_mm = residual_px * spacing
    if coverage < MIN_COVERAGE:
        raise DDICInputError(
            f"The skull echo found covers only {coverage:.0%} of the head outline (need "
            f"{MIN_COVERAGE:.0%}). " + _FAIL_ADVICE)
    confidence = coverage * math.exp(-0.5 * (residual_mm / INLIER_TOLERANCE_MM) ** 2)
    in_frame = ellipse.scaled(scale)
    if boundary == "outer":
        in_frame = outer_skull_ellipse(frame, in_frame, pixel_size, valid, scale)
    return SkullDetection(ellipse=in_frame, confidence=float(confidence), coverage=float(coverage),
                          residual_mm=residual_mm, n_points=int(inliers.sum()),
                          hc_mm=in_frame.hc_mm(pixel_size))


def _refit(ellipse: Ellipse, pts: np.ndarray, wts: np.ndarray, tol: float, rounds: int = 3,
           refine: bool = True) -> Ellipse:
    """Refit (weighted least squares, see :func:`fit_ellipse`) on the points within ``tol``, ``rounds``
    times."""
    for _ in range(rounds):
        inliers = np.abs(ellipse.distance(pts)) < tol
        if inliers.sum() < 6:
            break
        try:
            ellipse = fit_ellipse(pts[inliers], wts[inliers], refine=refine)
        except DDICInputError:
            break
    return ellipse


def _echo_evidence(smooth: np.ndarray, ellipse: Ellipse, spacing: float) -> tuple[float, float]:
    """How much of ``ellipse`` is a bright echo in the (lightly smoothed, normalised) image.

    Along 36 ten-degree sectors (parametric angle) the contrast is the mean of the image on the ellipse
    minus the mean on the parallel curves :data:`ECHO_OFFSET_MM` inside and outside. Returns
    (evidence, coverage): evidence = mean over sectors of the contrast clipped to [0, 2·ECHO_CONTRAST]
    (so a few very bright echoes, e.g. a maternal wall, cannot outweigh a whole skull), used to rank
    candidates; coverage = fraction of sectors with contrast ≥ :data:`ECHO_CONTRAST` (random speckle
    ridges never give that).
    """
    offset = ECHO_OFFSET_MM / spacing
    if ellipse.b <= offset:
        return 0.0, 0.0
    n = 36 * 20
    on = sample_bilinear(smooth, *ellipse.points(n).T)
    inner = sample_bilinear(smooth, *ellipse.offset(-offset).points(n).T)
    outer_pts = ellipse.offset(offset).points(n)
    outer = sample_bilinear(smooth, *outer_pts.T)
    h, w = smooth.shape
    seen = (outer_pts[:, 0] >= 0) & (outer_pts[:, 0] <= w - 1) & (outer_pts[:, 1] >= 0) & \
        (outer_pts[:, 1] <= h - 1)
    contrast = np.where(seen, on - 0.5 * (inner + outer), 0.0).reshape(36, 20).mean(axis=1)
    evidence = float(np.mean(np.clip(contrast, 0.0, 2.0 * ECHO_CONTRAST)))
    return evidence, float(np.mean(contrast >= ECHO_CONTRAST))


def _grayscale(frame_pixels) -> np.ndarray:
    array = np.asarray(frame_pixels, dtype=np.float64)
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        array = array[..., :3] @ np.array([0.299, 0.587, 0.114])
    if array.ndim != 2:
        raise DDICInputError(f"Skull detection needs a 2D grayscale frame, got shape {array.shape}.")
    if min(array.shape) < 16:
        raise DDICInputError(f"The frame ({array.shape[1]}×{array.shape[0]} px) is too small for skull "
                             "detection.")
    return np.nan_to_num(array)


def _working_image(frame: np.ndarray, pixel_size: float) -> tuple[np.ndarray, float]:
    """The frame smoothed and resampled to the detector's working spacing (never upsampled).

    Working pixel (i, j) sits at frame pixel (i, j)·spacing/pixel_size, so coordinates scale exactly.
    """
    if pixel_size >= DETECTION_SPACING_MM * 0.95:
        return frame, pixel_size
    import SimpleITK as sitk

    spacing = DETECTION_SPACING_MM
    image = sitk.GetImageFromArray(frame.astype(np.float32))
    image.SetSpacing((pixel_size, pixel_size))
    image = sitk.SmoothingRecursiveGaussian(image, 0.5 * spacing)  # anti-aliasing
    h, w = frame.shape
    size = [int((w - 1) * pixel_size / spacing) + 1, int((h - 1) * pixel_size / spacing) + 1]
    out = sitk.Resample(image, size, sitk.Transform(), sitk.sitkLinear, (0.0, 0.0), (spacing, spacing),
                        (1.0, 0.0, 0.0, 1.0), 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out).astype(np.float64), spacing


def _interior_of_sector(work: np.ndarray, low: float, margin_px: int) -> np.ndarray:
    """Pixels at least ``margin_px`` inside the imaged area (the sector of a B-mode capture, whose
    outside is uniform black) and inside the frame: ridge responses at those borders are not skull."""
    imaged = work > max(low, float(work.min())) + 1e-6
    # close small speckle holes inside the sector before measuring the distance to its border
    imaged = box_mean(imaged, 2) > 0.3
    return box_mean(imaged, margin_px) > 0.999
