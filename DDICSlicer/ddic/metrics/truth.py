"""Scores against paired ground truth, which only the phantom has: Dice overlap of segmentations and the error
of an atrium width measured on a segmentation.

Why: on real data there is no truth (US and MRI cannot be acquired together), so the paper judged segmentations
visually. The phantom knows every structure and the width of each atrium, so a segmentation of the US, or of a
pseudo-MRI, can be scored with numbers: does the translation make the ventricle easier to delineate (Dice), and
is the clinically used width right (mm error)?

Conventions:

- Dice = 2|A∩B| / (|A| + |B|) on boolean masks (nonzero = inside). Both masks empty: ``nan`` (undefined:
  nothing to find and nothing found; reports write ``null``), never a flattering 1.
- Width error = measured − truth in mm (signed: positive = measured too wide), plus its absolute value and the
  error relative to the truth. A segmentation too small to measure gives a :class:`WidthError` whose measured
  width is ``nan`` and whose ``note`` says why, so one failed frame does not stop an evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import DDICInputError
from ..measure import atrium_width


def _mask(mask, name: str) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim != 2:
        raise DDICInputError(f"The {name} must be a 2D mask, got shape {m.shape}.")
    return m != 0


def dice(prediction, truth) -> float:
    """Dice overlap of two masks of one shape; ``nan`` when both are empty (module docstring)."""
    a, b = _mask(prediction, "predicted mask"), _mask(truth, "truth mask")
    if a.shape != b.shape:
        raise DDICInputError(f"Masks to compare have different shapes ({a.shape} and {b.shape}).")
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return math.nan
    return 2.0 * int(np.logical_and(a, b).sum()) / total


def dice_per_label(prediction_labels, truth_labels, labels: Iterable[int] | Mapping[str, int]) -> dict:
    """Dice of each label of two label maps: ``{name or id: dice}``; ``labels`` is ids or ``{name: id}``."""
    p, t = np.asarray(prediction_labels), np.asarray(truth_labels)
    if p.shape != t.shape:
        raise DDICInputError(f"Label maps to compare have different shapes ({p.shape} and {t.shape}).")
    items = labels.items() if isinstance(labels, Mapping) else ((int(v), int(v)) for v in labels)
    return {name: dice(p == int(value), t == int(value)) for name, value in items}


@dataclass(frozen=True)
class WidthError:
    """An atrium width measured on a segmentation against the known truth, in mm."""

    measured_mm: float
    truth_mm: float
    note: str = ""

    @property
    def error_mm(self) -> float:
        """Measured − truth (positive: measured too wide)."""
        return self.measured_mm - self.truth_mm

    @property
    def abs_error_mm(self) -> float:
        return abs(self.error_mm)

    @property
    def relative_error(self) -> float:
        """(measured − truth) / truth."""
        return self.error_mm / self.truth_mm

    def to_dict(self) -> dict:
        return {"measured_mm": self.measured_mm, "truth_mm": self.truth_mm, "error_mm": self.error_mm,
                "abs_error_mm": self.abs_error_mm, "relative_error": self.relative_error, "note": self.note}


def atrium_width_error(measured_mm: float, truth_mm: float) -> WidthError:
    """The error of a measured atrium width against the truth (both in mm; the truth must be positive)."""
    truth = float(truth_mm)
    if not math.isfinite(truth) or truth <= 0:
        raise DDICInputError(f"The true atrium width must be a positive number of mm, not {truth_mm!r}.")
    return WidthError(measured_mm=float(measured_mm), truth_mm=truth)


def atrium_width_error_from_mask(mask, truth_mm: float, spacing_xy=(1.0, 1.0), *, posterior=None,
                                 glomus=None) -> WidthError:
    """Measure the atrium width on a ventricle segmentation with :func:`ddic.measure.atrium_width` (same
    arguments) and compare it with the truth; an unmeasurable mask gives ``measured_mm = nan`` and a note."""
    try:
        measured = atrium_width(mask, spacing_xy, posterior=posterior, glomus=glomus).width_mm
        note = ""
    except DDICInputError as exc:
        measured, note = math.nan, f"not measurable: {exc}"
    base = atrium_width_error(measured, truth_mm)
    return WidthError(measured_mm=base.measured_mm, truth_mm=base.truth_mm, note=note)
