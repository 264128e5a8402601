"""The intensity range (MAX) that PSNR and SSIM are computed for, decided once and explicitly.

Why explicit: PSNR = 10·log10(MAX²/MSE) and SSIM's constants (K·L)² scale with the assumed range, so the same
pixels give different numbers for different MAX. scikit-image guesses MAX from the dtype (float → 1.0), which
silently gives nonsense for float images holding 0…255 values (sam-metrics.md §5.4). Here:

- two ``uint8`` arrays → MAX = 255 (the paper's eq. 13) unless ``data_range`` says otherwise;
- anything else (float arrays — every frame read by :func:`ddic.io.images.read_frame` is float32 —,
  16-bit, mixed dtypes) needs ``data_range``: refused without it.

The evaluation passes ``data_range=PAPER_MAX`` for 8-bit-scale frames and pseudo-MRI (0…255 display scale).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import DDICInputError

PAPER_MAX = 255.0
"""MAX of the paper's PSNR (method.md eq. 13): 8-bit images."""


def check_pair(reference, test, name: str = "images") -> tuple[np.ndarray, np.ndarray]:
    """Both images as arrays of one 2D shape, finite; a clear error otherwise."""
    a, b = np.asarray(reference), np.asarray(test)
    if a.shape != b.shape:
        raise DDICInputError(
            f"The {name} to compare have different shapes ({a.shape} and {b.shape}); resample the test image "
            "onto the reference grid first (the pseudo-MRI is written on the US frame's grid)."
        )
    if a.ndim != 2 or a.size == 0:
        raise DDICInputError(f"The {name} must be 2D grayscale images, got shape {a.shape}.")
    for arr, which in ((a, "reference"), (b, "test")):
        if arr.dtype.kind not in "biuf":
            raise DDICInputError(f"The {which} image has non-numeric pixels (dtype {arr.dtype}).")
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise DDICInputError(f"The {which} image contains NaN or infinite pixels.")
    return a, b


def resolve_data_range(reference: np.ndarray, test: np.ndarray, data_range: float | None) -> float:
    """MAX for a pair of images (module docstring): explicit, or 255 for two uint8 images."""
    if data_range is not None:
        value = float(data_range)
        if not math.isfinite(value) or value <= 0:
            raise DDICInputError(f"data_range must be a positive number (e.g. 255 for 8-bit images), not {data_range!r}.")
        return value
    if reference.dtype == np.uint8 and test.dtype == np.uint8:
        return PAPER_MAX
    raise DDICInputError(
        f"The intensity range (data_range) must be given for {reference.dtype} / {test.dtype} images; it is only "
        "implied for two uint8 images (255). Pass data_range=255 for frames on the 0…255 scale (8-bit "
        "ultrasound, pseudo-MRI), or the range your data really has."
    )
