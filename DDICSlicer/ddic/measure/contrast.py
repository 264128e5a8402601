"""Contrast of an ROI against a background: CNR (method.md eq. 14) and the generalised CNR.

Why both: the paper reports CNR = |Ī_ROI − Ī_bg| / √(σ²_ROI + σ²_bg) (the ultrasound form, sam-metrics.md §6.1),
but a network that remaps intensities non-linearly can inflate CNR without making anything easier to see; gCNR
(Rodriguez-Molares et al., IEEE TUFFC 2020) is 1 − the overlap of the two intensity distributions, invariant to
monotone intensity transforms, so it tells whether a CNR gain is real.

Definitions (one source of truth; the CLI, the evaluation and the Slicer panel all call these):

- σ is the **sample** standard deviation (ddof = 1), as Slicer's Segment Statistics (vtkImageAccumulate)
  reports it, so numbers match what a user reads there.
- CNR with a zero denominator (both regions constant) is ``inf`` when the means differ and ``nan`` when
  they are equal; :meth:`ContrastMeasurement.to_dict` writes both as ``None`` (valid JSON).
- gCNR: both regions' values are binned into the same ``k`` equal-width bins spanning the joint range
  [min, max] of the two regions together (the last bin closed, as ``numpy.histogram``); each histogram is
  normalised to sum 1; gCNR = 1 − Σ min(h_roi, h_bg). ``k`` defaults to :func:`gcnr_bins`, a function of the
  pixel counts only, so the same boxes give the same binning on the US and the pseudo-MRI image.
  Two regions with one identical constant value give 0 (complete overlap).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import DDICInputError
from .regions import MIN_REGION_PIXELS, Region, region_mask, region_values

GCNR_BIN_RULE = "k = ceil(2 * N**0.4) equal-width bins over the joint [min, max], N = n_roi + n_background"
"""The default gCNR binning in words (written into JSON reports next to the numbers)."""


@dataclass(frozen=True)
class RegionStats:
    """Mean, sample SD (ddof = 1) and pixel count of one region."""

    mean: float
    sd: float
    n: int


@dataclass(frozen=True)
class ContrastMeasurement:
    """CNR (eq. 14) of an ROI against a background, with each region's statistics; gCNR where computed."""

    roi: RegionStats
    background: RegionStats
    cnr: float
    gcnr: float | None = None
    gcnr_bins: int | None = None

    def to_dict(self) -> dict:
        """JSON-ready: non-finite numbers become ``None``."""
        def clean(value):
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            if isinstance(value, float) and not math.isfinite(value):
                return None
            return value

        return clean(asdict(self))


@dataclass(frozen=True)
class PairedContrast:
    """The same ROI and background measured on an ultrasound frame and its pseudo-MRI."""

    us: ContrastMeasurement
    pseudo_mri: ContrastMeasurement

    def to_dict(self) -> dict:
        return {"us": self.us.to_dict(), "pseudo_mri": self.pseudo_mri.to_dict()}


# --------------------------------------------------------------------------------------------------------------
# From values
# --------------------------------------------------------------------------------------------------------------


def _values(values, name: str) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size < MIN_REGION_PIXELS:
        raise DDICInputError(
            f"The {name} holds {v.size} value{'s' if v.size != 1 else ''}; at least {MIN_REGION_PIXELS} are "
            "needed for a standard deviation."
        )
    if not np.all(np.isfinite(v)):
        raise DDICInputError(f"The {name} contains non-finite values (NaN or infinity).")
    return v


def region_stats(values, name: str = "region") -> RegionStats:
    """Mean, sample SD (ddof = 1) and count of a region's pixel values."""
    v = _values(values, name)
    return RegionStats(mean=float(v.mean()), sd=float(v.std(ddof=1)), n=int(v.size))


def _cnr(roi: RegionStats, bg: RegionStats) -> float:
    diff = abs(roi.mean - bg.mean)
    denom = math.sqrt(roi.sd**2 + bg.sd**2)
    if denom == 0.0:
        return math.inf if diff > 0 else math.nan
    return diff / denom


def cnr_from_values(roi_values, background_values) -> ContrastMeasurement:
    """CNR = |mean_roi − mean_bg| / √(sd_roi² + sd_bg²), sample SDs (method.md eq. 14)."""
    roi, bg = region_stats(roi_values, "ROI"), region_stats(background_values, "background")
    return ContrastMeasurement(roi=roi, background=bg, cnr=_cnr(roi, bg))


def gcnr_bins(n_total: int) -> int:
    """Default number of gCNR histogram bins for ``n_total`` = n_roi + n_background pixels.

    ``ceil(2·N^0.4)``, after the 2·N^(2/5) rule of Schlunk & Byram's gCNR solver: few enough bins that small
    boxes (tens of pixels) do not leave the histograms so sparse that the overlap vanishes (which would push
    gCNR towards 1), enough that large regions resolve their distributions (N = 128 → 14, 2000 → 42 bins).
    """
    n = int(n_total)
    if n < 1:
        raise DDICInputError(f"gCNR needs pixels to bin, got {n}.")
    return max(1, math.ceil(2.0 * n**0.4))


def gcnr_from_values(roi_values, background_values, bins: int | None = None) -> tuple[float, int]:
    """(gCNR, bins used): 1 − overlap of the two normalised histograms on shared bins over the joint range."""
    a, b = _values(roi_values, "ROI"), _values(background_values, "background")
    k = gcnr_bins(a.size + b.size) if bins is None else int(bins)
    if k < 1:
        raise DDICInputError(f"gCNR needs at least one histogram bin, not {bins}.")
    lo, hi = float(min(a.min(), b.min())), float(max(a.max(), b.max()))
    if hi <= lo:  # one constant value everywhere: identical distributions
        return 0.0, k
    edges = np.linspace(lo, hi, k + 1)
    ha = np.histogram(a, edges)[0] / a.size
    hb = np.histogram(b, edges)[0] / b.size
    overlap = float(np.minimum(ha, hb).sum())
    return float(min(1.0, max(0.0, 1.0 - overlap))), k


# --------------------------------------------------------------------------------------------------------------
# On images
# --------------------------------------------------------------------------------------------------------------


def cnr(image: np.ndarray, roi: Region, background: Region) -> ContrastMeasurement:
    """CNR (eq. 14) of ``roi`` against ``background`` on a 2D image; regions are boxes or boolean masks."""
    return cnr_from_values(region_values(image, roi, "ROI"), region_values(image, background, "background"))


def gcnr(image: np.ndarray, roi: Region, background: Region, bins: int | None = None) -> float:
    """gCNR of ``roi`` against ``background`` on a 2D image (binning: module docstring)."""
    return gcnr_from_values(region_values(image, roi, "ROI"), region_values(image, background, "background"),
                            bins)[0]


def measure_contrast(image: np.ndarray, roi: Region, background: Region,
                     bins: int | None = None) -> ContrastMeasurement:
    """CNR and gCNR together, with both regions' statistics."""
    a, b = region_values(image, roi, "ROI"), region_values(image, background, "background")
    base = cnr_from_values(a, b)
    value, k = gcnr_from_values(a, b, bins)
    return ContrastMeasurement(roi=base.roi, background=base.background, cnr=base.cnr, gcnr=value, gcnr_bins=k)


def measure_images(images: Mapping[str, np.ndarray] | Sequence[np.ndarray], roi: Region, background: Region,
                   bins: int | None = None) -> dict[str, ContrastMeasurement]:
    """The same ROI and background on several images of one shape (e.g. US and pseudo-MRI).

    Images of different shapes are refused: the same pixel boxes would cover different anatomy. Boxes are
    clipped once, so every image is measured on exactly the same pixels. A sequence is named ``image1``, ….
    """
    named = dict(images) if isinstance(images, Mapping) else {f"image{i + 1}": im for i, im in enumerate(images)}
    if not named:
        raise DDICInputError("No images to measure.")
    arrays = {name: np.asarray(im) for name, im in named.items()}
    shapes = {name: a.shape for name, a in arrays.items()}
    first = next(iter(arrays.values()))
    if any(s != first.shape for s in shapes.values()):
        listed = ", ".join(f"{n} {s}" for n, s in shapes.items())
        raise DDICInputError(
            f"The images to compare have different shapes ({listed}); the same ROI and background must cover "
            "the same pixels. Resample them onto one grid first (e.g. the pseudo-MRI on the US frame's grid)."
        )
    if first.ndim != 2:
        raise DDICInputError(f"Measurements need 2D grayscale images, got shape {first.shape}.")
    roi_mask = region_mask(roi, first.shape, "ROI")
    bg_mask = region_mask(background, first.shape, "background")
    return {name: measure_contrast(a, roi_mask, bg_mask, bins) for name, a in arrays.items()}


def measure_pair(us: np.ndarray, pseudo_mri: np.ndarray, roi: Region, background: Region,
                 bins: int | None = None) -> PairedContrast:
    """CNR and gCNR of the same regions on an ultrasound frame and its pseudo-MRI (same shape required)."""
    result = measure_images({"us": us, "pseudo_mri": pseudo_mri}, roi, background, bins)
    return PairedContrast(us=result["us"], pseudo_mri=result["pseudo_mri"])
