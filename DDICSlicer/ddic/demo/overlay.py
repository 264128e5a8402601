"""Drawing on preview pictures: grayscale → RGB, a mask's outline and box outlines, in place.

Kept to numpy (no plotting library) because the result is an image at the frame's own pixel grid, not a
plot: one output pixel per frame pixel, so outlines sit exactly where the mask is.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

LINE_WIDTH_PX = 2


def to_rgb(gray: np.ndarray) -> np.ndarray:
    """(H, W) 0…255 → (H, W, 3) float32."""
    gray = np.clip(np.asarray(gray, dtype=np.float32), 0, 255)
    if gray.ndim != 2:
        raise ValueError(f"expected a 2D image, got shape {gray.shape}")
    return np.repeat(gray[..., None], 3, axis=2)


def draw_outline(rgb: np.ndarray, mask: np.ndarray, colour, width: int = LINE_WIDTH_PX) -> None:
    """Paint the boundary pixels of ``mask`` (grown to ``width`` px, inside the mask's edge) in ``colour``."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != rgb.shape[:2]:
        raise ValueError(f"mask {mask.shape} does not match the picture {rgb.shape[:2]}")
    if not mask.any():
        return
    edge = mask & ~ndimage.binary_erosion(mask, iterations=max(int(width), 1), border_value=0)
    rgb[edge] = colour


def draw_box(rgb: np.ndarray, box, colour, width: int = LINE_WIDTH_PX) -> None:
    """Paint the outline of a half-open pixel box (``x0, y0, x1, y1`` attributes or a 4-tuple), clipped."""
    x0, y0, x1, y1 = (box.x0, box.y0, box.x1, box.y1) if hasattr(box, "x0") else box
    h, w = rgb.shape[:2]
    x0, x1 = max(int(x0), 0), min(int(x1), w)
    y0, y1 = max(int(y0), 0), min(int(y1), h)
    if x1 <= x0 or y1 <= y0:
        return
    t = max(int(width), 1)
    rgb[y0:min(y0 + t, y1), x0:x1] = colour
    rgb[max(y1 - t, y0):y1, x0:x1] = colour
    rgb[y0:y1, x0:min(x0 + t, x1)] = colour
    rgb[y0:y1, max(x1 - t, x0):x1] = colour
