"""Image → feature-vector extractors for FID / KID, behind one small interface.

Why an interface: FID and KID (:mod:`ddic.metrics.fid`) only need an (N, D) feature matrix per image set. The
real extractor (Inception v3, :mod:`ddic.metrics.inception`) needs torch, an optional package and a 95 MB
weights file that is never downloaded implicitly; tests and plumbing use :class:`RandomProjectionFeatures`,
a fixed random projection that needs nothing. Either one plugs into :func:`extract_features`.

Image convention: each image is a 2D grayscale array on the 0…255 display scale (8-bit frames, pseudo-MRI as
``ddic translate`` writes it), any size; extractors resize internally.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import DDICInputError
from ..progress import ProgressCallback, resolve

DISPLAY_MAX = 255.0


@runtime_checkable
class FeatureExtractor(Protocol):
    """Anything with a ``name`` (written into reports), ``dims`` and ``__call__(images) -> (N, dims)``."""

    name: str
    dims: int

    def __call__(self, images: Sequence[np.ndarray]) -> np.ndarray: ...


def unit_range(image, name: str = "image") -> np.ndarray:
    """One 2D image on the 0…255 scale → float32 in [0, 1] (clipped), with a clear error for anything else."""
    a = np.asarray(image)
    if a.ndim != 2 or min(a.shape) < 1:
        raise DDICInputError(f"The {name} must be a 2D grayscale image, got shape {a.shape}.")
    a = a.astype(np.float32)
    if not np.all(np.isfinite(a)):
        raise DDICInputError(f"The {name} contains NaN or infinite pixels.")
    return np.clip(a / DISPLAY_MAX, 0.0, 1.0)


@dataclass(frozen=True)
class RandomProjectionFeatures:
    """A stub extractor: each image is resized to ``size`` × ``size`` (bilinear), scaled to [0, 1] and projected
    onto ``dims`` fixed Gaussian directions (seed ``seed``). Deterministic and cheap, so FID / KID plumbing can be
    tested without weights; it is **not** a perceptual feature space — never report FID values computed with it.
    """

    dims: int = 64
    size: int = 16
    seed: int = 0
    _matrix: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.dims < 1 or self.size < 2:
            raise DDICInputError(f"RandomProjectionFeatures needs dims ≥ 1 and size ≥ 2, got {self.dims}, {self.size}.")
        rng = np.random.default_rng(self.seed)
        matrix = rng.standard_normal((self.size * self.size, self.dims)) / self.size
        object.__setattr__(self, "_matrix", matrix)

    @property
    def name(self) -> str:
        return f"random-projection (stub, not perceptual) {self.dims}d from {self.size}px, seed {self.seed}"

    def _resize(self, image: np.ndarray) -> np.ndarray:
        from scipy.ndimage import zoom

        h, w = image.shape
        out = zoom(image, (self.size / h, self.size / w), order=1, mode="nearest", grid_mode=True)
        return out[: self.size, : self.size]

    def __call__(self, images: Sequence[np.ndarray]) -> np.ndarray:
        rows = [self._resize(unit_range(im, f"image {i + 1}")).astype(np.float64).ravel()
                for i, im in enumerate(images)]
        if not rows:
            return np.zeros((0, self.dims))
        return np.stack(rows) @ self._matrix


def extract_features(images: Sequence[np.ndarray], extractor: FeatureExtractor, batch_size: int = 16,
                     progress: ProgressCallback | None = None) -> np.ndarray:
    """Features (N, extractor.dims) of ``images`` in batches of ``batch_size``, reporting progress per batch."""
    report = resolve(progress)
    images = list(images)
    if not images:
        raise DDICInputError("No images to extract features from.")
    if batch_size < 1:
        raise DDICInputError(f"batch_size must be at least 1, not {batch_size}.")
    parts = []
    for start in range(0, len(images), batch_size):
        parts.append(np.asarray(extractor(images[start:start + batch_size]), dtype=np.float64))
        report(min(start + batch_size, len(images)), len(images), f"features ({extractor.name})")
    features = np.concatenate(parts, axis=0)
    if features.shape != (len(images), extractor.dims):
        raise DDICInputError(
            f"The feature extractor {extractor.name!r} returned shape {features.shape}, expected "
            f"({len(images)}, {extractor.dims})."
        )
    return features
