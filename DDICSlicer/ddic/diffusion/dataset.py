"""The training set of one domain: a folder of canonical 2D frames as one float32 tensor in [−1, 1].

Training draws random batches thousands of times from a few hundred small images, so the whole set is
read once, resampled to the model size and normalised up front (365 HC18 frames at 128 px are 24 MB).
The images are expected to be canonical already (``ddic prepare``: square, head-centred); this module
only changes their pixel count, never their field of view, so a 128 px canonical set can train a 64 px
model. The normalisation chosen here is recorded in the model card, so that translation later
normalises frames exactly as the training data was.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DDICInputError
from ..io.images import IMAGE_SUFFIXES, list_images, read_frame
from ..io.intensity import DISPLAY_MAX, KINDS, Normalisation

if TYPE_CHECKING:  # torch is imported when images are loaded, so the choices below stay cheap to import
    import torch

INTENSITY_CHOICES = ("auto",) + KINDS
"""``auto`` picks ``uint8`` when every image is 8-bit (PNG screen captures) and ``percentile`` otherwise."""


@dataclass
class TrainingData:
    """The images (N, 1, S, S) float32 in [−1, 1], how they were normalised, and where they came from."""

    images: "torch.Tensor"
    normalisation: Normalisation
    summary: dict

    def __len__(self) -> int:
        return int(self.images.shape[0])


def file_list_sha256(names: list[str]) -> str:
    """SHA-256 of the sorted file names, one per line: identifies *which* images a model saw, cheaply."""
    return hashlib.sha256("\n".join(sorted(names)).encode("utf-8")).hexdigest()


def resample_square(pixels: np.ndarray, size: int) -> np.ndarray:
    """Linearly resample a square (n, n) array to (size, size) over the same field of view.

    Pixel *edges* stay aligned (the first and last output pixels are centred half an output pixel inside
    the image border), which is how SimpleITK/ITK place pixels, so no shift is introduced.
    """
    import SimpleITK as sitk

    n = pixels.shape[0]
    if n == size:
        return pixels.astype(np.float32, copy=False)
    image = sitk.GetImageFromArray(np.ascontiguousarray(pixels, dtype=np.float32))  # spacing 1, origin 0
    spacing = n / size
    origin = -0.5 + spacing / 2.0
    resampled = sitk.Resample(image, [size, size], sitk.Transform(), sitk.sitkLinear,
                              [origin, origin], [spacing, spacing], image.GetDirection(), 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(resampled)


def check_intensity_choice(intensity: str) -> None:
    if intensity not in INTENSITY_CHOICES:
        raise DDICInputError(
            f"Unknown intensity normalisation {intensity!r}; choose one of {', '.join(INTENSITY_CHOICES)}."
        )


def resolve_intensity(intensity: str, all_8bit: bool) -> Normalisation:
    """The normalisation for ``intensity``; ``auto`` becomes ``uint8`` only if every image is 8-bit."""
    check_intensity_choice(intensity)
    if intensity == "auto":
        intensity = "uint8" if all_8bit else "percentile"
    return Normalisation(kind=intensity)


def load_training_images(folder: str | os.PathLike, image_size: int, intensity: str = "auto") -> TrainingData:
    """Read every image directly in ``folder`` into one tensor (N, 1, size, size) in [−1, 1].

    Non-square images are refused (they have not been through ``ddic prepare``); square images of
    another size are resampled linearly. ``intensity`` is ``auto``, ``uint8`` or ``percentile``.
    """
    folder = Path(folder).expanduser()
    files = list_images(folder)
    if not files:
        raise DDICInputError(
            f"No training images in {folder}: expected canonical frames with one of the suffixes "
            f"{', '.join(IMAGE_SUFFIXES)} directly in that folder. Run `ddic prepare` to make them."
        )
    check_intensity_choice(intensity)  # fail before reading hundreds of files
    percentile = Normalisation(kind="percentile")
    resampled, ranges, windows, eight_bit, sizes = [], [], [], [], Counter()
    for path in files:  # keep only the resampled pixels (raw frames may be large) and what normalising needs
        frame = read_frame(path)
        height, width = frame.shape
        if height != width:
            raise DDICInputError(
                f"{path} is {width}×{height} px, not square: training needs canonical square frames. "
                "Run `ddic prepare` on the raw data first and train on its output folder."
            )
        sizes[f"{width}x{height}"] += 1
        resampled.append(resample_square(frame.pixels, image_size))
        ranges.append((float(np.nanmin(frame.pixels)), float(np.nanmax(frame.pixels))))
        try:
            windows.append(percentile.window(frame.pixels))  # from the frame as read, as translation does
        except DDICInputError as exc:
            raise DDICInputError(f"{path}: {exc} Remove it from the training folder.") from exc
        eight_bit.append(frame.is_8bit)
    normalisation = resolve_intensity(intensity, all(eight_bit))
    images = np.empty((len(files), 1, image_size, image_size), dtype=np.float32)
    for i, (path, pixels, (low, high), window) in enumerate(zip(files, resampled, ranges, windows)):
        if normalisation.kind == "uint8" and (low < 0 or high > DISPLAY_MAX):
            raise DDICInputError(
                f"{path} has values outside 0…255 ({low:g}…{high:g}), so 'uint8' intensity would clip it. "
                "Use --intensity percentile (or auto) for this data."
            )
        images[i, 0] = normalisation.to_model(pixels, window if normalisation.kind == "percentile" else None)
    summary = {
        "folder": str(folder.resolve()),
        "count": len(files),
        "original_sizes": dict(sorted(sizes.items())),
        "resampled_to": image_size,
        "intensity": normalisation.kind,
        "intensity_requested": intensity,
        "files_sha256": file_list_sha256([p.name for p in files]),
    }
    import torch

    return TrainingData(images=torch.from_numpy(images), normalisation=normalisation, summary=summary)
