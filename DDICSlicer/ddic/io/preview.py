"""Preview pictures: a frame and its pseudo-MRI side by side, as a uint8 array ready for PNG."""

from __future__ import annotations

import numpy as np


def to_uint8_display(pixels: np.ndarray, is_8bit: bool) -> np.ndarray:
    """8-bit data as it is; anything else windowed to its 0.5–99.5 percentiles."""
    pixels = np.asarray(pixels, dtype=np.float32)
    if is_8bit:
        return np.clip(pixels, 0, 255)
    low, high = np.percentile(pixels, [0.5, 99.5])
    if high <= low:
        return np.zeros_like(pixels)
    return np.clip((pixels - low) / (high - low) * 255.0, 0, 255)


def side_by_side(left: np.ndarray, right: np.ndarray, gap: int = 4) -> np.ndarray:
    """Two (H, W) 0…255 images next to each other with a black gap; heights must match."""
    if left.shape[0] != right.shape[0]:
        raise ValueError(f"heights differ: {left.shape} vs {right.shape}")
    spacer = np.zeros((left.shape[0], gap), dtype=np.float32)
    return np.concatenate([left, spacer, right], axis=1)
