"""Structural similarity (SSIM, Wang et al., IEEE TIP 13(4), 2004) between a result and its paired truth.

Why here and not scikit-image: SSIM is only needed where a phantom gives paired truth, and it is ~20 lines on
``scipy.ndimage``; scikit-image would add ~14 MB and four packages for it. The definition follows the paper
(and ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=L)``: identical results on uint8 images with scikit-image 0.26, within
3e-8 on float32 images, which scikit-image computes in float32 and this module in float64):

- local statistics with a Gaussian window, σ = ``SSIM_SIGMA`` = 1.5 px, truncated at 3.5 σ (an 11 × 11
  window), normalised to sum 1; ``scipy.ndimage.gaussian_filter`` with mirror ("reflect") borders;
- μ = G∗x; σ_x² = G∗x² − μ_x²; σ_xy = G∗(xy) − μ_x μ_y (weighted population moments, no n−1);
- SSIM map = ((2 μ_x μ_y + C1)(2 σ_xy + C2)) / ((μ_x² + μ_y² + C1)(σ_x² + σ_y² + C2)),
  C1 = (K1·L)², C2 = (K2·L)², K1 = 0.01, K2 = 0.03, L = the data range (:mod:`ddic.metrics.datarange`:
  255 for uint8, explicit otherwise);
- mean SSIM = the map averaged over pixels at least 5 px (the window radius) from the border, where the
  window lies inside the image, so the border rule does not matter.
"""

from __future__ import annotations

import numpy as np

from ..errors import DDICInputError
from .datarange import check_pair, resolve_data_range

SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_TRUNCATE = 3.5
"""Window: Gaussian σ = 1.5 px cut at 3.5 σ (radius 5 px, 11 × 11), Wang et al. 2004."""


def _radius(sigma: float, truncate: float) -> int:
    return int(truncate * sigma + 0.5)  # scipy.ndimage's own rule for the kernel radius


def ssim_map(reference, test, data_range: float | None = None, sigma: float = SSIM_SIGMA, k1: float = SSIM_K1,
             k2: float = SSIM_K2) -> np.ndarray:
    """The local SSIM of every pixel (same shape as the images; border pixels use mirrored windows)."""
    from scipy.ndimage import gaussian_filter

    a, b = check_pair(reference, test)
    peak = resolve_data_range(a, b, data_range)
    if not sigma > 0:
        raise DDICInputError(f"The SSIM window σ must be positive, not {sigma}.")
    x, y = a.astype(np.float64), b.astype(np.float64)

    def g(image: np.ndarray) -> np.ndarray:
        return gaussian_filter(image, sigma=sigma, truncate=SSIM_TRUNCATE, mode="reflect")

    mx, my = g(x), g(y)
    vx = g(x * x) - mx * mx
    vy = g(y * y) - my * my
    cxy = g(x * y) - mx * my
    c1, c2 = (k1 * peak) ** 2, (k2 * peak) ** 2
    return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))


def ssim(reference, test, data_range: float | None = None, sigma: float = SSIM_SIGMA, k1: float = SSIM_K1,
         k2: float = SSIM_K2) -> float:
    """Mean SSIM over the pixels whose whole window lies inside the image (module docstring)."""
    a, b = check_pair(reference, test)
    r = _radius(sigma, SSIM_TRUNCATE)
    if min(a.shape) < 2 * r + 1:
        raise DDICInputError(
            f"SSIM with σ = {sigma} needs images of at least {2 * r + 1}×{2 * r + 1} pixels, got "
            f"{a.shape[1]}×{a.shape[0]}."
        )
    local = ssim_map(a, b, data_range, sigma, k1, k2)
    return float(local[r:local.shape[0] - r, r:local.shape[1] - r].mean())
