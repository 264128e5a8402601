"""Writing a mask with the geometry of the frame it was drawn on (atomically, via ddic.io.images)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import DDICInputError
from ..io.images import Frame, image_suffix, write_like

MASK_SUFFIXES = (".png", ".nrrd", ".nii.gz", ".nii", ".mha")


def default_value(path: str | os.PathLike) -> int:
    """255 for PNG (a visible picture), 1 for volume formats (what label-map readers such as Slicer expect)."""
    return 255 if image_suffix(path) == ".png" else 1


def write_mask(mask: np.ndarray, frame: Frame, path: str | os.PathLike, value: int | None = None) -> Path:
    """Write a boolean (H, W) mask as ``value`` on 0 with ``frame``'s origin, spacing and direction."""
    suffix = image_suffix(path)
    if suffix not in MASK_SUFFIXES:
        raise DDICInputError(f"Cannot write a mask as {Path(path).name}: use one of {', '.join(MASK_SUFFIXES)}.")
    value = default_value(path) if value is None else int(value)
    if not 1 <= value <= 255:
        raise DDICInputError(f"The mask value must be 1…255, not {value}.")
    mask = np.asarray(mask, dtype=bool)
    return write_like(mask.astype(np.float32) * value, frame, path)
