"""The one preprocessing of canonical MRI slices, for real volumes and the phantom alike.

The paper keeps only brain tissue in its MRI training images (method.md §5). Every canonical MRI slice —
``ddic prepare feta|crl`` (real volumes, labels resampled with the slice) and the phantom's paired and
unpaired slices (labels rendered with the slice) — goes through :func:`canonical_mri_image`: pixels
outside the brain mask become 0 and the brain's 1st–99th intensity percentiles map to 0…255 (8-bit).
So the MRI model is trained, and the pseudo-MRI is scored, on images made by the same rule.

The brain mask is FeTA class > 0 (eCSF, grey and white matter, ventricles, cerebellum, deep grey matter,
brainstem): what a fetal MRI brain extraction keeps; skull, scalp, amniotic fluid and the uterus go.
"""

from __future__ import annotations

import numpy as np

from ..io.intensity import Normalisation

BRAIN_PERCENTILES = (1.0, 99.0)
"""Brain-pixel percentiles that map to 0 and 255 (per slice): robust to a few hot or dark pixels."""


def canonical_mri_image(image: np.ndarray, brain: np.ndarray,
                        percentiles: tuple[float, float] = BRAIN_PERCENTILES) -> tuple[np.ndarray, tuple[float, float]]:
    """(uint8 slice, (low, high) window): brain pixels windowed to 0…255, everything else 0.

    ``brain`` is a boolean mask of the slice's shape (FeTA class > 0); it must not be empty.
    """
    image = np.asarray(image, dtype=np.float32)
    brain = np.asarray(brain, dtype=bool)
    if brain.shape != image.shape:
        raise ValueError(f"brain mask {brain.shape} does not match the slice {image.shape}")
    if not brain.any():
        raise ValueError("the brain mask of this slice is empty")
    norm = Normalisation("percentile", float(percentiles[0]), float(percentiles[1]))
    window = norm.window(image[brain])
    display = Normalisation.to_display(norm.to_model(image, window))
    display[~brain] = 0.0
    return np.clip(np.rint(display), 0, 255).astype(np.uint8), window
