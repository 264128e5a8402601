"""The distal lateral-ventricle atrium measured without clicks: atlas prompts → segmentation → width →
plausibility. One call for ``ddic demo`` and the Slicer panel.

Prompts placed by an atlas are a guess about *this* head; the result is therefore always returned with
its plausibility (:mod:`ddic.measure.plausibility`), and the width is given as a result only when the
segmented region passes every check. Otherwise ``atrium_width_mm`` is ``None``, ``reliable`` is false,
``reasons`` says why, and the number that was measured is kept as ``candidate_width_mm`` for auditing
only. Every mm figure uses the pixel size in force for the head transform (``--pixel-size`` for PNG
frames, the frame's spacing otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.ventricle_atlas import FramePrompts, VentriclePrompts, head_axes, prompts_for_transform, to_frame
from ..measure.plausibility import Plausibility, assess_atrium
from ..measure.width import WidthMeasurement, atrium_width
from .prompts import Prompts
from .result import SegmentationResult


@dataclass
class AtriumMeasurement:
    """What :func:`measure_distal_atrium` found (see the module docstring)."""

    canonical_prompts: VentriclePrompts
    prompts: FramePrompts
    box: tuple[float, float, float, float]  # the box used, clipped to the frame
    segmentation: SegmentationResult
    width: WidthMeasurement | None
    plausibility: Plausibility
    pixel_size_mm: float

    @property
    def mask(self) -> np.ndarray:
        return np.asarray(self.segmentation.mask, dtype=bool)

    @property
    def reliable(self) -> bool:
        return self.plausibility.reliable

    @property
    def candidate_width_mm(self) -> float | None:
        return None if self.width is None else float(self.width.width_mm)

    @property
    def atrium_width_mm(self) -> float | None:
        """The width as a result: only when the region is a plausible atrium."""
        return self.candidate_width_mm if self.reliable else None

    @property
    def area_mm2(self) -> float:
        return float(self.mask.sum()) * self.pixel_size_mm ** 2

    def to_dict(self) -> dict:
        return {"reliable": self.reliable, "plausibility": round(self.plausibility.plausibility, 3),
                "atrium_width_mm": _round(self.atrium_width_mm), "candidate_width_mm": _round(self.candidate_width_mm),
                "reasons": self.plausibility.reasons, "pixels": int(self.mask.sum()),
                "area_mm2": round(self.area_mm2, 2), "pixel_size_mm": self.pixel_size_mm,
                "caliper_xy": None if self.width is None else [list(p) for p in self.width.caliper_xy],
                "checks": self.plausibility.to_dict()["checks"], "rule": self.plausibility.to_dict()["rule"]}


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 2)


def measure_distal_atrium(ultrasound: np.ndarray, segmented: np.ndarray | None, transform, segmenter,
                          orientation_decided: bool = True,
                          canonical: VentriclePrompts | None = None) -> AtriumMeasurement:
    """Segment and measure the distal atrium of the head ``transform`` describes.

    ``ultrasound``: the frame's pixels (the plausibility checks read the echoes); ``segmented``: the image
    to segment on (the pseudo-MRI on the frame's grid), ``None`` for the ultrasound itself; ``segmenter``:
    a backend from :func:`ddic.segment.backend.make_segmenter`; ``orientation_decided``: whether the
    front/back orientation came from the image or the user (not a default); ``canonical``: prompts to use
    instead of the atlas's (e.g. deliberately moved ones, to test the checks).
    """
    ultrasound = np.asarray(ultrasound, dtype=np.float32)
    canonical = prompts_for_transform(transform) if canonical is None else canonical
    prompts = to_frame(canonical, transform)
    h, w = ultrasound.shape
    x0, y0, x1, y1 = prompts.box
    box = (max(0.0, x0), max(0.0, y0), min(w - 1.0, x1), min(h - 1.0, y1))
    segmenter.set_image(ultrasound if segmented is None else segmented)
    result = segmenter.predict(Prompts(positive=[prompts.point], box=box))
    mask = np.asarray(result.mask, dtype=bool)
    axes = head_axes(transform, canonical.side, orientation_decided)
    ps = float(transform.geometry.pixel_size_mm)
    posterior = tuple(-np.asarray(axes.anterior_xy))
    width = atrium_width(mask, (ps, ps), posterior=posterior) if mask.sum() >= 3 else None
    verdict = assess_atrium(mask, ultrasound, segmented, axes, box, None if width is None else width.width_mm)
    return AtriumMeasurement(canonical_prompts=canonical, prompts=prompts, box=box, segmentation=result, width=width,
                             plausibility=verdict, pixel_size_mm=ps)
