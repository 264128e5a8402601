"""Mutual information between two co-registered images, in nats: the Kraskov (KSG) estimator and a fixed-bin
histogram estimator as a cross-check.

Why KSG: the paper scores structure preservation as the MI between the source US and its pseudo-MRI (method.md
eq. 12) and cites Kraskov et al. (Phys. Rev. E 69, 066138, 2004). A plug-in histogram estimate depends strongly
on the number of bins (with 256 bins on 128×128 pixels, two *independent* images score ~1.5 nats,
sam-metrics.md §5.2); KSG needs no binning and is ~0 for independent images. The histogram estimate is kept
as a transparent cross-check with a documented, fixed binning.

KSG, algorithm 1 (one source of truth for every MI the project reports):

- the N samples are the paired pixel intensities (x_i, y_i) — the same pixel of both images — as float64;
- each variable is scaled to unit variance (MI is invariant to it; it makes the jitter below scale-free);
- ties: 8-bit images have many identical values, and KSG assumes continuous data (distances of 0 make the
  neighbour counts ill-defined). A tiny Gaussian jitter of ``JITTER`` (1e-10 in unit-variance units: ~1e-8
  of a grey level for an image SD of ~50 grey levels) breaks the ties, from a fixed seed, so results are bit-reproducible
  (the recipe Kraskov et al. advise and scikit-learn's ``mutual_info_regression`` follows);
- ε_i = distance to the k-th nearest neighbour of sample i in the joint space, max-norm (Chebyshev), found with
  ``scipy.spatial.cKDTree(p=∞)``; n_x(i), n_y(i) = number of other samples strictly closer than ε_i in x alone
  (in y alone), counted exactly on the sorted marginals;
- I = ψ(k) + ψ(N) − ⟨ψ(n_x + 1) + ψ(n_y + 1)⟩, ψ = digamma, k = ``KSG_K`` = 3.
- The raw estimate is returned, **not** clipped at 0: a clipped value is biased upwards when averaged over
  images, and a slightly negative MI is the honest answer for independent images.

Subsampling (``max_pixels``, default ``DEFAULT_MAX_PIXELS`` = 128² = 16384): the canonical 128-px images are
used in full, and larger frames (a full-resolution US frame has ~400 000 pixels) are subsampled to the same
number of pixel pairs, drawn without replacement from a fixed seed. Why: KSG costs O(N log N) (~0.1–0.2 s at
16k pairs, many seconds at 400k), and the estimator's small-sample bias depends on N, so a fixed N keeps MI
comparable between frames of different sizes. Neighbouring pixels are strongly correlated, so 16k pairs carry
nearly all the information of the full frame.

Histogram MI: plug-in estimate Σ p·ln(p/(p_x·p_y)) on ``HISTOGRAM_BINS`` = 32 equal bins per axis over the
fixed range ``HISTOGRAM_RANGE`` = [0, 256) (the 8-bit display scale; 8 grey levels a bin), natural log, no bias
correction — expected upward bias (B − 1)²/(2N) ≈ 0.03 nats at N = 16384 (Miller–Madow).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import DDICInputError
from .datarange import check_pair

KSG_K = 3
"""Neighbours of the KSG estimator (Kraskov et al.'s recommended small k; the project's fixed choice)."""
MI_SEED = 0
"""Seed of the tie-breaking jitter and of the pixel subsample."""
JITTER = 1e-10
"""SD of the tie-breaking Gaussian jitter, in units of each variable's SD."""
DEFAULT_MAX_PIXELS = 128 * 128
"""Pixel pairs used per image pair (the canonical grid's size): larger images are subsampled to this."""
HISTOGRAM_BINS = 32
HISTOGRAM_RANGE = (0.0, 256.0)
"""Bins and value range of the histogram cross-check (0…255 display scale, right edge open)."""
MI_UNIT = "nats"


def _paired(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.size != y.size:
        raise DDICInputError(f"Mutual information needs paired samples; got {x.size} and {y.size} values.")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise DDICInputError("Mutual information needs finite values; the data contain NaN or infinity.")
    return x, y


def _strict_counts(values: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """For each i, the number of j ≠ i with |values_j − values_i| < radius_i (exact, on the sorted values)."""
    ordered = np.sort(values)
    lo = np.searchsorted(ordered, values - radius, side="right")
    hi = np.searchsorted(ordered, values + radius, side="left")
    return np.maximum(hi - lo - 1, 0)  # minus the sample itself (inside every positive radius)


def ksg_mutual_information(x, y, k: int = KSG_K, seed: int = MI_SEED, jitter: float = JITTER) -> float:
    """KSG estimator 1 of I(X; Y) in nats from paired samples (module docstring); not clipped at 0.

    A constant variable carries no information: the result is then exactly 0.
    """
    from scipy.spatial import cKDTree
    from scipy.special import digamma

    x, y = _paired(x, y)
    k = int(k)
    n = x.size
    if k < 1:
        raise DDICInputError(f"The KSG estimator needs k ≥ 1 neighbours, not {k}.")
    if n <= k:
        raise DDICInputError(f"The KSG estimator with k = {k} needs more than {k} samples, got {n}.")
    sx, sy = x.std(), y.std()
    if sx == 0.0 or sy == 0.0:
        return 0.0
    rng = np.random.default_rng(seed)
    x = (x - x.mean()) / sx + jitter * rng.standard_normal(n)
    y = (y - y.mean()) / sy + jitter * rng.standard_normal(n)
    joint = np.column_stack([x, y])
    distances, _ = cKDTree(joint).query(joint, k=k + 1, p=np.inf)  # column 0 is the sample itself
    eps = distances[:, k]
    nx = _strict_counts(x, eps)
    ny = _strict_counts(y, eps)
    return float(digamma(k) + digamma(n) - np.mean(digamma(nx + 1) + digamma(ny + 1)))


def histogram_mutual_information(x, y, bins: int = HISTOGRAM_BINS,
                                 value_range: tuple[float, float] = HISTOGRAM_RANGE) -> float:
    """Plug-in MI in nats on ``bins`` × ``bins`` equal bins over ``value_range`` for both variables.

    Values outside ``value_range`` are refused (``numpy.histogram2d`` would drop them silently).
    """
    x, y = _paired(x, y)
    bins = int(bins)
    lo, hi = float(value_range[0]), float(value_range[1])
    if bins < 1 or not hi > lo:
        raise DDICInputError(f"Histogram MI needs bins ≥ 1 and a range low < high, got {bins} and {value_range}.")
    for values, name in ((x, "first"), (y, "second")):
        if values.size and (values.min() < lo or values.max() > hi):
            raise DDICInputError(
                f"The {name} image has values outside the histogram range [{lo:g}, {hi:g}] "
                f"(min {values.min():g}, max {values.max():g}); pass value_range matching the data's scale."
            )
    if x.size == 0:
        raise DDICInputError("Histogram MI needs at least one pixel pair.")
    counts, _, _ = np.histogram2d(x, y, bins=bins, range=[[lo, hi], [lo, hi]])
    p = counts / counts.sum()
    px, py = p.sum(axis=1), p.sum(axis=0)
    nz = p > 0
    return float(np.sum(p[nz] * np.log(p[nz] / np.outer(px, py)[nz])))


def paired_pixels(reference, test, mask=None, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                  seed: int = MI_SEED) -> tuple[np.ndarray, np.ndarray]:
    """The (x, y) intensity pairs MI is computed on: same pixel of both images, within ``mask`` (optional,
    boolean, same shape), subsampled without replacement to ``max_pixels`` from ``seed`` (module docstring).
    ``max_pixels=None`` uses every pixel."""
    a, b = check_pair(reference, test)
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != a.shape:
            raise DDICInputError(f"The MI mask has shape {m.shape}, the images {a.shape}; draw it on their grid.")
        m = m.astype(bool)
        a, b = a[m], b[m]
    a = a.astype(np.float64).ravel()
    b = b.astype(np.float64).ravel()
    if max_pixels is not None:
        max_pixels = int(max_pixels)
        if max_pixels < 2:
            raise DDICInputError(f"max_pixels must be at least 2, not {max_pixels}.")
        if a.size > max_pixels:
            keep = np.sort(np.random.default_rng(seed).choice(a.size, size=max_pixels, replace=False))
            a, b = a[keep], b[keep]
    return a, b


def image_mutual_information(reference, test, *, estimator: str = "ksg", k: int = KSG_K, seed: int = MI_SEED,
                             max_pixels: int | None = DEFAULT_MAX_PIXELS, mask=None,
                             bins: int = HISTOGRAM_BINS,
                             value_range: tuple[float, float] = HISTOGRAM_RANGE) -> float:
    """MI (nats) between two images of one shape as paired pixel intensities.

    ``estimator``: ``"ksg"`` (primary; ``k``, ``seed``) or ``"histogram"`` (cross-check; ``bins``,
    ``value_range``). Pixels: :func:`paired_pixels` (``mask``, ``max_pixels``, ``seed``).
    """
    x, y = paired_pixels(reference, test, mask=mask, max_pixels=max_pixels, seed=seed)
    if estimator == "ksg":
        return ksg_mutual_information(x, y, k=k, seed=seed)
    if estimator == "histogram":
        return histogram_mutual_information(x, y, bins=bins, value_range=value_range)
    raise DDICInputError(f"Unknown MI estimator {estimator!r}; use 'ksg' or 'histogram'.")


def nats_to_bits(value: float) -> float:
    return value / math.log(2.0)
