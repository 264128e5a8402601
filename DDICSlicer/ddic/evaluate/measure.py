"""Per-frame numbers: one row per (method, frame) of ``per_image.csv``.

Definitions (each number comes from the one function in :mod:`ddic.metrics` / :mod:`ddic.measure` that
defines it; this module only decides what is compared with what):

- ``cached`` — 1 when the output was reused from ``REPORT/outputs`` (0: translated in this run; empty for the
  paired-MRI reference); ``seconds`` — translation time per frame of the run that made the output (its
  batch's time / frames in the batch); ``final_correlation`` — DDIC's correlation between the two chains at
  the last guided level; ``us_round_trip_rmse`` — the frame's trust number (:mod:`ddic.translate.trust`);
- ``mi_ksg``, ``mi_hist`` — MI (nats) between the source US (as the model saw it) and the pseudo-MRI, whole
  canonical image (method.md eq. 12): KSG k = 3 and the 32-bin histogram cross-check;
- ``psnr`` — of the pseudo-MRI against the source US, MAX = 255 (eq. 13);
- ``cnr``, ``gcnr`` — on the pseudo-MRI; ``cnr_us``, ``gcnr_us`` — on the source US; the *same* two squares
  (the paper's Fig. 5: ROI in the distal lateral-ventricle atrium, background in the adjacent parenchyma),
  placed by the atlas (:mod:`ddic.data.ventricle_atlas`) from the head's geometry, never from the image, so both
  images are measured on the same pixels. CNR with sample SDs (eq. 14), gCNR with the shared binning rule;
- ``seg_pixels``, ``seg_score`` — the distal-ventricle segmentation of the pseudo-MRI with the offline classical
  backend from the atlas point and box (the paper used SAM and judged visually; a fixed offline backend makes
  the numbers reproducible);
- with paired phantom truth: ``ssim`` (pseudo-MRI vs the paired MRI, MAX = 255) and ``ssim_us`` (the source US
  vs the paired MRI: the floor a translation should rise above); ``dice`` / ``dice_us`` of the segmentation of
  the pseudo-MRI / of the US against the truth, which is the distal hemisphere's lateral ventricle + choroid
  plexus (labels 8, 9) in the posterior half of the head — the atrium region the atlas prompts aim at;
  ``width_mm`` measured on that segmentation (:func:`ddic.measure.atrium_width`, towards the occiput), its
  ``width_error_mm`` (measured − truth; paired.csv's width of the distal hemisphere) and absolute error, and the
  same on the US segmentation (``…_us``). The canonical label maps have the fetal left hemisphere in the lower
  half, so a distal "bottom" half is the left hemisphere.

With paired truth the phantom's own MRI is measured as a further group, ``paired_mri`` (its ``ssim`` is 1 by
construction): what a perfect translation would score under this protocol — the ceiling of every other number.

A number that cannot be computed for one frame (a segmentation too small to measure, a constant region) is
left empty (NaN) with a ``note``; it never stops the evaluation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..data.labels import Label
from ..errors import DDICInputError
from ..geometry.canonical import CANONICAL_SIZE_PX, spacing_for_size
from ..measure import PixelBox, measure_images
from ..metrics import (
    PAPER_MAX,
    atrium_width_error_from_mask,
    dice,
    image_mutual_information,
    psnr,
    ssim,
)
from .cases import EvalCase

TRUTH_LABELS = (int(Label.LATERAL_VENTRICLE), int(Label.CHOROID_PLEXUS))
POSTERIOR = (-1.0, 0.0)
"""Towards the occiput on the canonical grid (occiput left)."""
BASE_COLUMNS = ("method", "frame", "cached", "seconds", "final_correlation", "us_round_trip_rmse", "mi_ksg",
                "mi_hist", "psnr", "cnr", "gcnr", "cnr_us", "gcnr_us", "seg_pixels", "seg_score")
PAIRED_COLUMNS = ("distal_hemisphere", "ssim", "ssim_us", "dice", "dice_us", "width_truth_mm", "width_mm",
                  "width_error_mm", "width_abs_error_mm", "width_us_mm", "width_error_us_mm",
                  "width_abs_error_us_mm")
NOTE_COLUMN = "note"


def columns(paired: bool) -> tuple[str, ...]:
    return BASE_COLUMNS + (PAIRED_COLUMNS if paired else ()) + (NOTE_COLUMN,)


@dataclass(frozen=True)
class Regions:
    """The atlas prompts and CNR squares of one frame on its own canonical grid (x = column, y = row)."""

    point: tuple[float, float]
    box: tuple[float, float, float, float]
    roi: PixelBox
    background: PixelBox
    distal_side: str  # "top" or "bottom" half of the canonical image
    ga_weeks: float

    @property
    def hemisphere(self) -> str:
        """The fetal hemisphere of the distal side (canonical labels: left in the lower half)."""
        return "left" if self.distal_side == "bottom" else "right"

    def to_dict(self) -> dict:
        return {"point": [round(v, 2) for v in self.point], "box": [round(v, 2) for v in self.box],
                "roi": self.roi.as_tuple(), "background": self.background.as_tuple(),
                "distal_side": self.distal_side, "ga_weeks": round(self.ga_weeks, 2)}


def atlas_regions(case: EvalCase) -> Regions | None:
    """The atlas prompts for ``case`` (None without head geometry), mapped from the atlas's 128-px grid."""
    from ..data.ventricle_atlas import distal_ventricle_prompts

    if case.head is None:
        return None
    size = case.size
    f = spacing_for_size(CANONICAL_SIZE_PX) / spacing_for_size(size)  # atlas px → this grid's px
    c_atlas, c_grid = (CANONICAL_SIZE_PX - 1) / 2.0, (size - 1) / 2.0
    head = case.head
    prompts = distal_ventricle_prompts(head.hc_mm, head.a_px / f, head.b_px / f, head.near_field)

    def pos(u: float) -> float:
        return (u - c_atlas) * f + c_grid

    def square(sq) -> PixelBox:
        return PixelBox.around(pos(sq.cx), pos(sq.cy), max(2, round(sq.side * f)))

    x0, y0, x1, y1 = prompts.box
    return Regions(point=(pos(prompts.point[0]), pos(prompts.point[1])),
                   box=(pos(x0), pos(y0), pos(x1), pos(y1)), roi=square(prompts.roi),
                   background=square(prompts.background), distal_side=prompts.side, ga_weeks=prompts.ga_weeks)


def segment(segmenter, pixels: np.ndarray, regions: Regions) -> tuple[np.ndarray, float]:
    """The distal-ventricle mask of ``pixels`` from the atlas point and box, and the backend's score."""
    from ..segment import Prompts

    h, w = pixels.shape
    x0, y0, x1, y1 = regions.box
    box = (max(0.0, x0), max(0.0, y0), min(w - 1.0, x1), min(h - 1.0, y1))
    segmenter.set_image(pixels)
    result = segmenter.predict(Prompts(positive=(regions.point,), box=box))
    return np.asarray(result.mask, dtype=bool), float(result.score)


def truth_mask(labels: np.ndarray, regions: Regions) -> np.ndarray:
    """The distal atrium region of the truth: labels 8, 9 in the distal half and the posterior half."""
    n = labels.shape[0]
    c = (n - 1) / 2.0
    rows, cols = np.mgrid[0:n, 0:n]
    distal = rows < c if regions.distal_side == "top" else rows > c
    return np.isin(labels, TRUTH_LABELS) & distal & (cols < c)


def _contrast(image: np.ndarray, regions: Regions) -> tuple[float, float, str]:
    try:
        m = measure_images({"image": image}, regions.roi, regions.background)["image"]
    except DDICInputError as exc:
        return math.nan, math.nan, f"CNR not measurable: {exc}"
    return float(m.cnr), float(m.gcnr), ""


def _width(mask: np.ndarray, truth_mm: float, spacing: float) -> tuple[float, float, float, str]:
    w = atrium_width_error_from_mask(mask, truth_mm, (spacing, spacing), posterior=POSTERIOR)
    return w.measured_mm, w.error_mm, w.abs_error_mm, w.note


@dataclass
class SourceMeasurements:
    """What is measured once per frame on the source US (repeated on every method's row)."""

    regions: Regions | None
    values: dict
    notes: list[str]
    mask: np.ndarray | None = None  # the US segmentation (for the image grid)


def measure_source(case: EvalCase, segmenter, paired: bool) -> SourceMeasurements:
    """CNR / gCNR on the US, and with truth SSIM / Dice / width of the US segmentation."""
    regions = atlas_regions(case)
    values: dict = {"cnr_us": math.nan, "gcnr_us": math.nan}
    notes: list[str] = []
    mask = None
    if regions is not None:
        values["cnr_us"], values["gcnr_us"], note = _contrast(case.pixels, regions)
        notes += [f"US {note}"] if note else []
    if paired and case.truth is not None:
        t = case.truth
        values["ssim_us"] = ssim(t.mri, case.pixels, data_range=PAPER_MAX)
        if regions is not None:
            mask, _ = segment(segmenter, case.pixels, regions)
            truth = truth_mask(t.labels, regions)
            width_truth = t.width_mm(regions.hemisphere)
            values.update(distal_hemisphere=regions.hemisphere, width_truth_mm=width_truth,
                          dice_us=dice(mask, truth))
            w, err, abs_err, note = _width(mask, width_truth, case.spacing_mm)
            values.update(width_us_mm=w, width_error_us_mm=err, width_abs_error_us_mm=abs_err)
            notes += [f"US width {note}"] if note else []
    return SourceMeasurements(regions, values, notes, mask)


def measure_output(method: str, case: EvalCase, output, source: SourceMeasurements, segmenter,
                   paired: bool) -> tuple[dict, np.ndarray | None]:
    """One per_image.csv row for ``method`` on ``case`` (and the pseudo-MRI's segmentation mask, if any)."""
    mri = np.clip(output.pixels, 0.0, PAPER_MAX)
    us = case.pixels
    row = {c: math.nan for c in columns(paired)}
    row.update(method=method, frame=case.name, cached=int(output.cached), seconds=output.seconds,
               final_correlation=math.nan if output.final_correlation is None else output.final_correlation,
               us_round_trip_rmse=math.nan if getattr(output, "us_round_trip_rmse", None) is None
               else output.us_round_trip_rmse, note="")
    notes = list(source.notes)
    row["mi_ksg"] = image_mutual_information(us, mri, estimator="ksg")
    row["mi_hist"] = image_mutual_information(us, mri, estimator="histogram")
    row["psnr"] = psnr(us, mri, data_range=PAPER_MAX)
    for key, value in source.values.items():
        if key in row:
            row[key] = value
    mask = None
    regions = source.regions
    if regions is not None:
        row["cnr"], row["gcnr"], note = _contrast(mri, regions)
        notes += [f"pseudo-MRI {note}"] if note else []
        mask, score = segment(segmenter, mri, regions)
        row["seg_pixels"], row["seg_score"] = int(mask.sum()), score
    if paired and case.truth is not None:
        row["ssim"] = ssim(case.truth.mri, mri, data_range=PAPER_MAX)
        if regions is not None:
            row["dice"] = dice(mask, truth_mask(case.truth.labels, regions))
            w, err, abs_err, note = _width(mask, row["width_truth_mm"], case.spacing_mm)
            row.update(width_mm=w, width_error_mm=err, width_abs_error_mm=abs_err)
            notes += [f"width {note}"] if note else []
    row["note"] = "; ".join(notes)
    return row, mask
