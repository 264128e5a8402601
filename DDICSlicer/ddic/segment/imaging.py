"""Grayscale frames → the 8-bit RGB images SAM's encoder expects, plus a content key for caching.

SAM was trained on 8-bit RGB photos: ``SamPredictor.set_image`` wants (H, W, 3) uint8 in [0, 255] and
silently mis-normalises anything else (a float image in [0, 1] comes out nearly black), and a 2D array
fails deep inside torch. Medical frames arrive as any dtype, so the conversion is explicit here:

* ``auto`` (default): data that is already 8-bit — integer values within 0…255, as B-mode ultrasound
  and PNG screen captures are — passes through unchanged; anything else (MRI, CT, float) is windowed
  to its 1st–99th percentile, which keeps the contrast of prompts stable across slices where a
  min–max stretch would follow single outlier pixels;
* ``percentile``: always the percentile window (``PERCENTILES``);
* ``minmax``: ``255·(x − min)/(max − min)``, what SlicerSegmentWithSAM and micro-sam do;
* ``none``: values are only clipped to 0…255 (the caller scaled already).
"""

from __future__ import annotations

import hashlib

import numpy as np

from ..errors import DDICInputError

SCALINGS = ("auto", "percentile", "minmax", "none")
PERCENTILES = (1.0, 99.0)


def as_grayscale(pixels) -> np.ndarray:
    """Check a frame is a finite 2D (or H×W×1) numeric array; return it as a 2D float64 array."""
    array = np.asarray(pixels)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise DDICInputError(f"Segmentation needs a 2D grayscale frame (rows, cols); got shape {array.shape}. "
                             "Convert RGB to grayscale first (ddic.io.images.read_frame does).")
    if array.dtype == bool or not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise DDICInputError(f"Segmentation needs a numeric grayscale image, not dtype {array.dtype}.")
    if min(array.shape) < 2:
        raise DDICInputError(f"The frame of shape {array.shape} is too small to segment.")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise DDICInputError("The frame contains NaN or infinite values; fill or mask them before segmenting.")
    return array


def to_uint8(pixels, scaling: str = "auto", percentiles: tuple[float, float] = PERCENTILES) -> np.ndarray:
    """A grayscale frame of any dtype as (H, W) uint8, by the rule ``scaling`` (module docstring)."""
    if scaling not in SCALINGS:
        raise DDICInputError(f"Unknown intensity scaling {scaling!r}; use one of {', '.join(SCALINGS)}.")
    array = as_grayscale(pixels)
    if scaling == "auto":
        eight_bit = array.min() >= 0 and array.max() <= 255 and np.all(array == np.round(array))
        scaling = "none" if eight_bit else "percentile"
    if scaling == "percentile":
        lo, hi = np.percentile(array, percentiles)
    elif scaling == "minmax":
        lo, hi = array.min(), array.max()
    else:
        lo, hi = 0.0, 255.0
    if scaling != "none":
        array = (array - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(array)
    return np.clip(np.rint(array), 0, 255).astype(np.uint8)


def to_rgb(gray8: np.ndarray) -> np.ndarray:
    """(H, W) uint8 → (H, W, 3) uint8 with three equal channels, contiguous (what SAM expects)."""
    return np.ascontiguousarray(np.repeat(gray8[..., None], 3, axis=2))


def content_key(gray8: np.ndarray) -> str:
    """A hash of the exact 8-bit image the encoder sees (shape included): equal key ⇒ equal embedding."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr(gray8.shape).encode())
    digest.update(np.ascontiguousarray(gray8).tobytes())
    return digest.hexdigest()
