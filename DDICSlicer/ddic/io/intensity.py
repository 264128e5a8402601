"""Intensity normalisation between image values and the networks' [−1, 1] range.

Two kinds, recorded in every model card so that translation normalises frames exactly as the model's
training data was normalised:

* ``uint8``: the DDIB convention x/127.5 − 1 for 8-bit images (values clipped to 0…255).
* ``percentile``: per image, the [low, high] percentiles map to [−1, 1] (clipped) — for MRI volumes and
  other floating-point data without a fixed range.

Network outputs go back to a 0…255 display range with (y + 1)·127.5, whatever the kind.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DDICInputError, DDICModelError

KINDS = ("uint8", "percentile")
DISPLAY_MAX = 255.0


@dataclass(frozen=True)
class Normalisation:
    kind: str = "uint8"
    low_percentile: float = 0.5
    high_percentile: float = 99.5

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise DDICModelError(f"Unknown intensity normalisation {self.kind!r}; expected one of {KINDS}.")
        if not 0.0 <= self.low_percentile < self.high_percentile <= 100.0:
            raise DDICModelError(
                f"Percentiles must satisfy 0 ≤ low < high ≤ 100, got {self.low_percentile}, {self.high_percentile}."
            )

    def window(self, pixels: np.ndarray) -> tuple[float, float]:
        """The (low, high) image values that map to −1 and +1 for this image."""
        if self.kind == "uint8":
            return 0.0, DISPLAY_MAX
        finite = pixels[np.isfinite(pixels)]
        if finite.size == 0:
            raise DDICInputError("The image has no finite pixel values; it cannot be normalised.")
        low, high = np.percentile(finite, [self.low_percentile, self.high_percentile])
        if high <= low:  # constant image: map it to mid-grey instead of dividing by zero
            return float(low) - 1.0, float(low) + 1.0
        return float(low), float(high)

    def to_model(self, pixels: np.ndarray, window: tuple[float, float] | None = None) -> np.ndarray:
        low, high = window if window is not None else self.window(pixels)
        scaled = (np.asarray(pixels, dtype=np.float64) - low) / (high - low) * 2.0 - 1.0
        return np.clip(np.nan_to_num(scaled, nan=-1.0), -1.0, 1.0).astype(np.float32)

    @staticmethod
    def to_display(model_values: np.ndarray) -> np.ndarray:
        """[−1, 1] → [0, 255] float32 (the pseudo-MRI's intensity scale in every output format)."""
        return ((np.clip(model_values, -1.0, 1.0) + 1.0) * (DISPLAY_MAX / 2.0)).astype(np.float32)

    def to_dict(self) -> dict:
        if self.kind == "uint8":
            return {"kind": "uint8"}
        return {"kind": self.kind, "low_percentile": self.low_percentile, "high_percentile": self.high_percentile}

    @classmethod
    def from_dict(cls, data: dict) -> "Normalisation":
        return cls(kind=data.get("kind", ""), low_percentile=float(data.get("low_percentile", 0.5)),
                   high_percentile=float(data.get("high_percentile", 99.5)))


def is_8bit(pixel_id_string: str) -> bool:
    """Whether a SimpleITK pixel type string describes 8-bit unsigned data (scalar or vector)."""
    return "8-bit unsigned" in pixel_id_string
