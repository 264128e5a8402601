"""Offline segmentation from the same prompts, with SimpleITK region growing: the no-weights fallback.

Steps (each a documented, testable rule rather than a learned one):

1. **Speckle smoothing** — a 3×3 median by default (removes speckle grains but keeps edges), or a few
   curvature-flow iterations, or none.
2. **Region growing from the positive points.**
   * With a box: the box is the region of interest. Otsu's threshold over the box splits it into a dark
     and a bright class; the class of the seeds (the majority class around them, over up to 7×7
     pixels, 3×3 in a box narrower than 24 px) is grown from them with ``ConnectedThreshold``. A box
     drawn snugly around an object is mostly object and a little background, which is exactly the
     two-class situation Otsu assumes.
   * Without a box: ``ConfidenceConnected`` over the whole image (mean ± k·SD of the seeds'
     neighbourhood) for each tolerance k in ``multipliers``; regions over ``max_area_fraction`` of the
     image are leaks and dropped, and of the rest the one with the highest gCNR against the ring
     around it wins — the tolerance at which the region stops at the object's edge.
   * A box alone: the class that is more frequent in the box's centre than on its rim is the object;
     every pixel of it is a seed.
3. **Negative points cut their part away**: every pixel nearer (Euclidean) to a negative point than to
   any positive point is removed, so a click on a wrongly included neighbour cuts it off at the midline
   between the clicks.
4. **Clean-up** shared with SAM (:mod:`ddic.segment.cleanup`): holes filled, then the largest connected
   component touching a positive point (box only: the largest inside the box).

The score is the gCNR between the mask and a ring around it on the smoothed image (1 − overlap of the
two intensity histograms): 1 means the object is perfectly separable from its surroundings, 0 means
the mask is indistinguishable from them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..errors import DDICInputError
from .cleanup import CONNECTIVITY, clean_mask
from .imaging import as_grayscale, content_key
from .prompts import Prompts
from .result import ImageInfo, SegmentationResult

SMOOTHINGS = ("median", "curvature", "none")


@dataclass(frozen=True)
class ClassicalOptions:
    """Parameters of the classical backend (module docstring); defaults tuned on phantom US/MRI."""

    smoothing: str = "median"
    median_radius: int = 1
    curvature_iterations: int = 5
    curvature_time_step: float = 0.125
    seed_radius: int = 3  # the seeds' class: majority over (2r+1)² pixels, r ≤ this and ≤ box side / 16
    multipliers: tuple[float, ...] = (1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 3.0)
    confidence_iterations: int = 0  # re-estimating mean/SD makes the result jump erratically on speckle
    confidence_radius: int = 3  # seed statistics over 7×7 pixels: stable under speckle
    max_area_fraction: float = 0.25
    ring_px: int = 2  # width of the ring the score compares the mask with

    def __post_init__(self):
        if self.smoothing not in SMOOTHINGS:
            raise DDICInputError(f"Unknown smoothing {self.smoothing!r}; use one of {', '.join(SMOOTHINGS)}.")


def smooth(pixels: np.ndarray, options: ClassicalOptions) -> np.ndarray:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.asarray(pixels, dtype=np.float32))
    if options.smoothing == "median" and options.median_radius > 0:
        image = sitk.Median(image, [options.median_radius] * 2)
    elif options.smoothing == "curvature" and options.curvature_iterations > 0:
        image = sitk.CurvatureFlow(image, options.curvature_time_step, options.curvature_iterations)
    return sitk.GetArrayFromImage(image).astype(np.float32)


def otsu_threshold(values: np.ndarray) -> float:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.asarray(values, dtype=np.float32).reshape(1, -1))
    otsu = sitk.OtsuThresholdImageFilter()
    otsu.SetInsideValue(0)
    otsu.SetOutsideValue(1)
    otsu.Execute(image)
    return float(otsu.GetThreshold())


def gcnr(inside: np.ndarray, outside: np.ndarray, bins: int = 32) -> float:
    """Generalised CNR: 1 − overlap of the two normalised histograms over their common range."""
    if inside.size == 0 or outside.size == 0:
        return 0.0
    lo, hi = float(min(inside.min(), outside.min())), float(max(inside.max(), outside.max()))
    if hi <= lo:
        return 0.0
    p, _ = np.histogram(inside, bins=bins, range=(lo, hi))
    q, _ = np.histogram(outside, bins=bins, range=(lo, hi))
    return float(1.0 - np.minimum(p / p.sum(), q / q.sum()).sum())


class ClassicalSegmenter:
    """Region-growing segmentation with the interface of :class:`ddic.segment.sam.SamSegmenter`."""

    backend = "classical"

    def __init__(self, options: ClassicalOptions | None = None):
        self.options = options or ClassicalOptions()
        self.description = f"classical region growing (SimpleITK, {self.options.smoothing} smoothing)"
        self.device = "cpu"
        self._smoothed: np.ndarray | None = None
        self._key: str | None = None

    def set_image(self, pixels):
        """Smooth and keep ``pixels`` (2D, any dtype); returns the same record as SAM's set_image."""
        start = time.perf_counter()
        array = as_grayscale(pixels)
        key = content_key(array.astype(np.float32))
        if key == self._key:
            return ImageInfo(key, array.shape, False, 0.0)
        self._smoothed, self._key = smooth(array, self.options), key
        return ImageInfo(key, array.shape, True, time.perf_counter() - start)

    def predict(self, prompts: Prompts, multimask: bool = True) -> SegmentationResult:
        """Segment the prompted object (``multimask`` is accepted for interface parity and ignored)."""
        if self._smoothed is None:
            raise DDICInputError("No image is set: call set_image(frame) before predict(prompts).")
        image = self._smoothed
        prompts = prompts.validated(image.shape)
        if prompts.box is not None:
            region, how = self._grow_in_box(image, prompts)
        else:
            region, how = self._grow_confidence(image, prompts)
        region = cut_negatives(region, prompts)
        mask = clean_mask(region, prompts)
        if not mask.any():
            how += "; no region touches the positive point: move it onto the structure or draw a box"
        ring = ndimage.binary_dilation(mask, CONNECTIVITY, iterations=self.options.ring_px) & ~mask
        score = gcnr(image[mask], image[ring]) if mask.any() else 0.0
        return SegmentationResult(mask=mask, score=score, backend=self.backend, scores=(score,), chosen=0,
                                  reason=how, details={"raw_area_px": int(region.sum())})

    # --- region growing -------------------------------------------------------------------------
    @staticmethod
    def _seed_neighbourhood(values: np.ndarray, points, r: int) -> np.ndarray:
        """The values of the (2r+1)² neighbourhoods of ``points``, flattened."""
        return np.concatenate([values[max(y - r, 0):y + r + 1, max(x - r, 0):x + r + 1].ravel()
                               for x, y in points])

    def _grow_in_box(self, image: np.ndarray, prompts: Prompts) -> tuple[np.ndarray, str]:
        import SimpleITK as sitk

        rows, cols = prompts.box_slices()
        roi = image[rows, cols]
        threshold = otsu_threshold(roi)
        bright = roi > threshold
        seeds = [(x - cols.start, y - rows.start) for x, y in prompts.pixel_points("positive")
                 if rows.start <= y < rows.stop and cols.start <= x < cols.stop]
        if prompts.positive and not seeds:
            raise DDICInputError("No positive point lies inside the box; put the point on the object in the box.")
        if seeds:
            # the class of the seeds is the majority class around them, so one speckle grain under the
            # click does not decide it; the neighbourhood grows with the box (a thin structure's box is
            # narrow, and a wide neighbourhood would be mostly background there)
            radius = int(np.clip(round(min(roi.shape) / 16), 1, self.options.seed_radius))
            want_bright = self._seed_neighbourhood(bright, seeds, radius).mean() >= 0.5
            lower, upper = ((threshold, float(roi.max()) + 1.0) if want_bright
                            else (float(roi.min()) - 1.0, threshold))
            # grow from the seeds' neighbourhoods: a speckle grain right under a click must not leave
            # the seed outside the intensity interval (and the region empty)
            starts = [(int(i), int(j)) for x, y in seeds
                      for j in range(max(y - radius, 0), min(y + radius + 1, roi.shape[0]))
                      for i in range(max(x - radius, 0), min(x + radius + 1, roi.shape[1]))
                      if lower <= roi[j, i] <= upper]
            grown = sitk.ConnectedThreshold(sitk.GetImageFromArray(roi), seedList=starts or seeds, lower=lower,
                                            upper=upper, replaceValue=1,
                                            connectivity=sitk.ConnectedThresholdImageFilter.FullConnectivity)
            local = sitk.GetArrayFromImage(grown) > 0
            how = (f"Otsu threshold {threshold:.1f} in the box; grew the {'bright' if want_bright else 'dark'} "
                   "class from the positive points")
        else:
            rim = np.ones(roi.shape, dtype=bool)
            rim[1:-1, 1:-1] = False
            centre = ndimage.binary_erosion(~rim, iterations=max(1, min(roi.shape) // 4))
            centre = centre if centre.any() else ~rim
            want_bright = bright[centre].mean() - bright[rim].mean() >= (~bright)[centre].mean() - (~bright)[rim].mean()
            local = bright if want_bright else ~bright
            how = (f"Otsu threshold {threshold:.1f} in the box; the {'bright' if want_bright else 'dark'} class "
                   "is more frequent in the box centre than on its rim")
        region = np.zeros(image.shape, dtype=bool)
        region[rows, cols] = local
        return region, how

    def _grow_confidence(self, image: np.ndarray, prompts: Prompts) -> tuple[np.ndarray, str]:
        import SimpleITK as sitk

        o = self.options
        sitk_image = sitk.GetImageFromArray(image)
        seeds = prompts.pixel_points("positive")
        limit = o.max_area_fraction * image.size
        best = None
        for k in o.multipliers:
            grown = sitk.ConfidenceConnected(sitk_image, seedList=seeds, numberOfIterations=o.confidence_iterations,
                                             multiplier=k, initialNeighborhoodRadius=o.confidence_radius,
                                             replaceValue=1)
            region = sitk.GetArrayFromImage(grown) > 0
            if not region.any() or region.sum() > limit:
                continue
            filled = ndimage.binary_fill_holes(region)
            ring = ndimage.binary_dilation(filled, CONNECTIVITY, iterations=o.ring_px) & ~filled
            contrast = gcnr(image[filled], image[ring])
            if best is None or contrast > best[0]:
                best = (contrast, k, region)
        if best is None:
            return np.zeros(image.shape, dtype=bool), (
                f"confidence-connected region growing leaked over {o.max_area_fraction:.0%} of the image at "
                "every tolerance: draw a box around the structure")
        contrast, k, region = best
        return region, (f"confidence-connected region growing from the positive points; tolerance k = {k:g} SD "
                        f"gave the highest contrast to its surroundings (gCNR {contrast:.2f})")


def cut_negatives(region: np.ndarray, prompts: Prompts) -> np.ndarray:
    """Remove every pixel nearer to a negative point than to all positive points (Euclidean)."""
    if not prompts.negative or not region.any():
        return region
    rows, cols = np.indices(region.shape)

    def nearest(points) -> np.ndarray:
        d = np.full(region.shape, np.inf)
        for x, y in points:
            d = np.minimum(d, (cols - x) ** 2 + (rows - y) ** 2)
        return d

    if prompts.positive:
        keep = nearest(prompts.positive) <= nearest(prompts.negative)
    else:  # box only: a negative point removes its own connected piece
        labels, _ = ndimage.label(region, CONNECTIVITY)
        hit = {int(labels[y, x]) for x, y in prompts.pixel_points("negative")} - {0}
        keep = ~np.isin(labels, sorted(hit))
    return region & keep
