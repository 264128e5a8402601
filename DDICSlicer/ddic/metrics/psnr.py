"""Peak signal-to-noise ratio between two images (method.md eq. 13): PSNR = 10·log10(MAX² / MSE).

Conventions (one source of truth for the evaluation):

- MAX is the images' intensity range, :func:`ddic.metrics.datarange.resolve_data_range`: 255 for two uint8
  images (the paper), otherwise ``data_range`` must be given — float images are refused without it;
- MSE over all pixels in float64 (or over ``mask``);
- identical images (MSE = 0) give ``math.inf`` on purpose, without a floating-point warning; reports write it as
  the string ``"inf"`` (:mod:`ddic.metrics.jsonsafe`) and summaries count it apart from the finite values
  (:func:`ddic.metrics.statistics.summarize`).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import DDICInputError
from .datarange import check_pair, resolve_data_range


def mean_squared_error(reference, test, mask=None) -> float:
    """Mean of (reference − test)² in float64, over ``mask`` (boolean, same shape) when given."""
    a, b = check_pair(reference, test)
    diff = a.astype(np.float64) - b.astype(np.float64)
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != a.shape:
            raise DDICInputError(f"The PSNR mask has shape {m.shape}, the images {a.shape}.")
        diff = diff[m.astype(bool)]
        if diff.size == 0:
            raise DDICInputError("The PSNR mask selects no pixel.")
    return float(np.mean(diff * diff))


def psnr(reference, test, data_range: float | None = None, mask=None) -> float:
    """PSNR in dB of ``test`` against ``reference``; ``math.inf`` for identical images (module docstring)."""
    a, b = check_pair(reference, test)
    peak = resolve_data_range(a, b, data_range)
    mse = mean_squared_error(a, b, mask)
    if mse == 0.0:
        return math.inf
    return float(10.0 * math.log10(peak * peak / mse))
