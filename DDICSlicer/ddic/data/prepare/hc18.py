"""HC18 (van den Heuvel et al. 2018) → the canonical ultrasound training set (method.md §5).

Input: the unzipped HC18 training set under ROOT — ``training_set_pixel_size_and_HC.csv`` (columns
``filename, pixel size(mm), head circumference (mm)``) and, anywhere below ROOT (unzipping can nest
``training_set/training_set/``), each ``NNN_[k]HC.png`` with its ``NNN_[k]HC_Annotation.png`` (a thin
ellipse outline drawn on the skull).

Per CSV row:

1. **HC filter**: rows with HC outside :data:`HC_RANGE_MM` (170–350 mm ≈ 20 weeks to term, anatomy.md
   §1.3) are *skipped and listed* in the manifest, not an error.
2. **Ellipse** fitted to the annotation outline (:func:`ddic.geometry.ellipse.fit_annotation`); its HC
   (Ramanujan × pixel size) must agree with the CSV within :data:`HC_AGREEMENT` (else the pixel size or
   the annotation is wrong).
3. **Canonicalise** (:class:`ddic.geometry.head.CanonicalHeadTransform`): head centre at the image
   centre, midline horizontal, frontal end right when :func:`ddic.geometry.head.guess_anterior` decides,
   else the consistent default (the right end of the major axis); resampled linearly with SimpleITK
   onto 128×128 px at 1.094 mm/px (``size`` changes the pixel count, never the field of view).
4. **Head mask** *[decision]*: canonical pixels farther than :data:`MASK_MARGIN_MM` outside the skull
   ellipse are set to 0 (the ellipse's semi-axes grown by the margin, so the whole skull echo stays
   whether the annotation sits on its centre or its outer border; maternal tissue, amniotic fluid and
   the sector edges go). Canonical pixels outside the frame are 0 as well.
5. **Split** by subject: ``010_HC.png`` and ``010_2HC.png`` are one subject (the number before the first
   underscore) and always land in the same split; a seeded shuffle of the subjects puts
   ``round(test_fraction × subjects)`` (at least one when there are two or more) into ``test``.

Output (written into a hidden staging folder beside OUT and moved into place only when complete):
``OUT/train/<stem>.png``, ``OUT/test/<stem>.png`` (8-bit, S×S), ``OUT/manifest.csv`` (one row per CSV row,
see :data:`MANIFEST_COLUMNS`) and ``OUT/prepare.json`` (parameters and counts).

Problems with the data — a row whose image or annotation is missing, an empty or unusable annotation, a
3D/4D file, an unreadable file, an annotation of another size, an HC mismatch — stop the run with one
error that lists them all, and nothing is written; with ``skip_bad`` they are skipped and listed in the
manifest instead. RGB(A) frames are converted to luminance (noted in the manifest).
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import DDICInputError
from ...geometry.canonical import CANONICAL_SIZE_PX, HEAD_MASK_MARGIN_MM, spacing_for_size
from ...progress import ProgressCallback, resolve
from .output import SplitSummary, check_out, split_subjects, staged_output, write_manifest, write_summary

CSV_NAME = "training_set_pixel_size_and_HC.csv"
CSV_COLUMNS = ("filename", "pixel size(mm)", "head circumference (mm)")
HC_RANGE_MM = (170.0, 350.0)
HC_AGREEMENT = 0.05
"""Largest relative difference between the annotation ellipse's HC and the CSV's HC."""
MASK_MARGIN_MM = HEAD_MASK_MARGIN_MM
ANNOTATION_SUFFIX = "_Annotation"
MANIFEST_COLUMNS = (
    "filename", "source", "subject", "split", "output", "status", "reason", "notes",
    "hc_mm", "hc_fit_mm", "pixel_size_mm",
    "center_x_px", "center_y_px", "semi_a_px", "semi_b_px", "angle_deg", "ofd_mm", "bpd_mm",
    "anterior_right", "orientation_source", "near_field", "transform",
)
"""``source``: the image path relative to ROOT; ``split``: train, test or skipped; ``output``: the PNG
relative to OUT; ``status``: ok or skipped; ``reason``: why a row was skipped; the ellipse columns are the
fitted annotation ellipse in frame pixels (angle: ddic.geometry.ellipse conventions); ``ofd_mm``/``bpd_mm``
= 2a, 2b in mm; ``near_field``: where the frame's top (transducer side) went in the canonical image;
``transform``: the JSON of :meth:`CanonicalHeadTransform.to_dict` (canonical → frame, mm)."""

_SUBJECT = re.compile(r"^(\d+)_")


@dataclass
class HC18Row:
    filename: str
    pixel_size_mm: float
    hc_mm: float
    line: int


@dataclass
class PrepareSummary(SplitSummary):
    rows: int = 0  # rows of the HC18 CSV


# ---------------------------------------------------------------------------------------------------------
# CSV and files


def find_csv(root: Path, csv_path: Path | None = None) -> Path:
    """The training CSV: ``csv_path`` if given, else ``CSV_NAME`` anywhere under ROOT (the shallowest)."""
    if csv_path is not None:
        csv_path = Path(csv_path)
        if not csv_path.is_file():
            raise DDICInputError(f"HC18 CSV not found: {csv_path}.")
        return csv_path
    root = Path(root)
    if not root.is_dir():
        raise DDICInputError(f"HC18 folder not found: {root}. Give the folder the HC18 zips were unpacked into.")
    found = sorted(root.rglob(CSV_NAME), key=lambda p: (len(p.parts), str(p)))
    if not found:
        raise DDICInputError(
            f"{CSV_NAME} not found under {root}. Download it from the HC18 Zenodo record (10.5281/zenodo.1327317) "
            "next to the unpacked training_set.zip, or give its path with --csv.")
    return found[0]


def read_hc18_csv(path: Path) -> list[HC18Row]:
    """Parse the HC18 training CSV (``filename, pixel size(mm), head circumference (mm)``)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DDICInputError(f"Cannot read the HC18 CSV {path}: {exc}.") from exc
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise DDICInputError(f"The HC18 CSV {path} is empty; expected the header {', '.join(CSV_COLUMNS)}.")
    norm = [re.sub(r"\s+", "", h).lower() for h in header]
    wanted = [re.sub(r"\s+", "", c).lower() for c in CSV_COLUMNS]
    missing = [c for c, w in zip(CSV_COLUMNS, wanted) if w not in norm]
    if missing:
        hint = (" This looks like the test-set CSV, which has no HC; use " + CSV_NAME + "."
                if CSV_COLUMNS[2] in missing and CSV_COLUMNS[1] not in missing else "")
        raise DDICInputError(f"The HC18 CSV {path} lacks the column(s) {', '.join(missing)} "
                             f"(header: {', '.join(header)}).{hint}")
    i_name, i_size, i_hc = (norm.index(w) for w in wanted)
    rows: list[HC18Row] = []
    seen: dict[str, int] = {}
    for line, record in enumerate(reader, start=2):
        if not record or all(not v.strip() for v in record):
            continue
        try:
            name = record[i_name].strip()
            size = float(record[i_size])
            hc = float(record[i_hc])
        except (IndexError, ValueError) as exc:
            raise DDICInputError(f"{path}, line {line}: cannot read filename, pixel size and HC from "
                                 f"{record!r} ({exc}).") from exc
        if not name:
            raise DDICInputError(f"{path}, line {line}: the filename is empty.")
        if not (math.isfinite(size) and size > 0 and math.isfinite(hc) and hc > 0):
            raise DDICInputError(f"{path}, line {line}: pixel size {size} and HC {hc} must be positive numbers.")
        if name in seen:
            raise DDICInputError(f"{path}, line {line}: {name} is listed twice (also line {seen[name]}).")
        seen[name] = line
        rows.append(HC18Row(filename=name, pixel_size_mm=size, hc_mm=hc, line=line))
    if not rows:
        raise DDICInputError(f"The HC18 CSV {path} has a header but no rows.")
    return rows


def subject_id(filename: str) -> str:
    """The subject (exam) of an HC18 file: ``010_HC.png`` and ``010_2HC.png`` → ``"010"``."""
    name = Path(filename).name
    match = _SUBJECT.match(name)
    return match.group(1) if match else name.split("_")[0].split(".")[0]


def annotation_name(filename: str) -> str:
    path = Path(filename)
    suffix = "".join(path.suffixes[-1:])
    stem = path.name[: len(path.name) - len(suffix)] if suffix else path.name
    return f"{stem}{ANNOTATION_SUFFIX}{suffix}"


def _index_files(root: Path) -> dict[str, list[Path]]:
    index: dict[str, list[Path]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith("."):
                index.setdefault(name, []).append(Path(dirpath) / name)
    return index


def _locate(row: HC18Row, index: dict[str, list[Path]]) -> tuple[Path, Path]:
    """The row's image and annotation: the image beside its annotation (the HC18 test set reuses the
    training file names, so a name alone can be ambiguous when both sets are unpacked under ROOT)."""
    images = index.get(Path(row.filename).name, [])
    ann_name = annotation_name(row.filename)
    annotations = {p.parent: p for p in index.get(ann_name, [])}
    if not images:
        raise DDICInputError(f"no image file {row.filename} under the HC18 folder (CSV line {row.line})")
    paired = [p for p in images if p.parent in annotations]
    if not paired:
        raise DDICInputError(f"no annotation {ann_name} beside {images[0]} (CSV line {row.line})")
    paired.sort(key=lambda p: (len(p.parts), str(p)))
    image = paired[0]
    return image, annotations[image.parent]


# ---------------------------------------------------------------------------------------------------------
# One frame


@dataclass
class _Prepared:
    row: HC18Row
    source: str
    image: np.ndarray  # (S, S) uint8
    transform: object  # CanonicalHeadTransform
    hc_fit_mm: float
    notes: list[str]


def _read_2d(path: Path, what: str):
    from ...io.images import read_frame

    try:
        frame = read_frame(path)
    except DDICInputError as exc:
        raise DDICInputError(f"{what} {path.name}: {exc}") from exc
    return frame


def prepare_frame(row: HC18Row, image_path: Path, annotation_path: Path, *, size: int = CANONICAL_SIZE_PX,
                  mask_margin_mm: float = MASK_MARGIN_MM):
    """One HC18 row → (canonical uint8 image, transform, annotation HC in mm, notes). Raises
    :class:`DDICInputError` for unusable files."""
    from ...geometry.ellipse import fit_annotation
    from ...geometry.head import CanonicalHeadTransform

    notes: list[str] = []
    frame = _read_2d(image_path, "frame")
    annotation = _read_2d(annotation_path, "annotation")
    if frame.source.GetNumberOfComponentsPerPixel() > 1:
        notes.append("RGB frame converted to luminance")
    if annotation.shape != frame.shape:
        raise DDICInputError(f"annotation {annotation_path.name} is {annotation.shape[1]}×{annotation.shape[0]} "
                             f"px but the frame is {frame.shape[1]}×{frame.shape[0]} px")
    if frame.shape != (540, 800):
        notes.append(f"frame is {frame.shape[1]}×{frame.shape[0]} px (HC18 frames are 800×540)")
    ellipse = fit_annotation(annotation)
    hc_fit = ellipse.hc_mm(row.pixel_size_mm)
    if abs(hc_fit - row.hc_mm) > HC_AGREEMENT * row.hc_mm:
        raise DDICInputError(
            f"the annotation ellipse of {row.filename} gives HC {hc_fit:.1f} mm but the CSV says "
            f"{row.hc_mm:.1f} mm (pixel size {row.pixel_size_mm} mm); check the pixel size and the annotation")
    transform = CanonicalHeadTransform(frame, ellipse, size=size, pixel_size_mm=row.pixel_size_mm)
    if not transform.head_fits():
        notes.append("head larger than the canonical field of view (cropped)")
    canonical = transform.head_image(frame.pixels, size=size, margin_mm=mask_margin_mm)
    image = np.clip(np.rint(canonical), 0, 255).astype(np.uint8)
    return image, transform, hc_fit, notes


# ---------------------------------------------------------------------------------------------------------
# The whole set


def prepare_hc18(root, out, *, csv_path=None, split_seed: int = 0, test_fraction: float = 0.1,
                 size: int = CANONICAL_SIZE_PX, hc_range_mm: tuple[float, float] = HC_RANGE_MM,
                 mask_margin_mm: float = MASK_MARGIN_MM, skip_bad: bool = False, overwrite: bool = False,
                 progress: ProgressCallback | None = None) -> PrepareSummary:
    """Prepare the HC18 training set under ``root`` into ``out`` (see the module docstring)."""
    progress = resolve(progress)
    root, out = Path(root), Path(out)
    if not 0.0 <= float(test_fraction) < 1.0:
        raise DDICInputError(f"--test-fraction must be in [0, 1), got {test_fraction}.")
    if int(size) < 8:
        raise DDICInputError(f"--size must be at least 8 pixels, got {size}.")
    if not (0 < hc_range_mm[0] < hc_range_mm[1]):
        raise DDICInputError(f"The HC range must be 0 < min < max, got {hc_range_mm}.")
    if mask_margin_mm < 0:
        raise DDICInputError(f"--mask-margin-mm must be ≥ 0, got {mask_margin_mm}.")
    check_out(out, overwrite)
    csv_file = find_csv(root, csv_path)
    rows = read_hc18_csv(csv_file)
    if not root.is_dir():
        raise DDICInputError(f"HC18 folder not found: {root}.")
    index = _index_files(root)

    prepared: list[_Prepared] = []
    skipped: dict[str, str] = {}
    problems: list[str] = []
    lo, hi = hc_range_mm
    for done, row in enumerate(rows):
        progress(done, len(rows), row.filename)
        if not lo <= row.hc_mm <= hi:
            skipped[row.filename] = f"HC {row.hc_mm:g} mm outside {lo:g}–{hi:g} mm"
            continue
        try:
            image_path, annotation_path = _locate(row, index)
            image, transform, hc_fit, notes = prepare_frame(row, image_path, annotation_path, size=size,
                                                            mask_margin_mm=mask_margin_mm)
        except DDICInputError as exc:
            message = str(exc)
            if skip_bad:
                skipped[row.filename] = message
            else:
                problems.append(f"{row.filename}: {message}")
            continue
        source = image_path.relative_to(root).as_posix()
        prepared.append(_Prepared(row, source, image, transform, hc_fit, notes))
    progress(len(rows), len(rows), "")
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise DDICInputError(
            f"{len(problems)} of {len(rows)} HC18 rows cannot be prepared (nothing was written):\n  {shown}{more}\n"
            "Fix them, or pass --skip-bad to skip them and list them in the manifest.")
    if not prepared:
        raise DDICInputError(f"No HC18 row is usable (all {len(rows)} skipped; nothing was written). "
                             f"First reasons: {'; '.join(list(skipped.values())[:3])}.")

    test_subjects = split_subjects([subject_id(p.row.filename) for p in prepared], test_fraction, split_seed)
    summary = PrepareSummary(out=out, rows=len(rows), train=0, test=0)
    _write(out, rows, prepared, skipped, test_subjects, summary, overwrite, parameters={
        "dataset": "hc18", "root": str(root), "csv": str(csv_file), "split_seed": int(split_seed),
        "test_fraction": float(test_fraction), "size": int(size), "spacing_mm": spacing_for_size(size),
        "hc_range_mm": [float(lo), float(hi)], "mask_margin_mm": float(mask_margin_mm),
        "skip_bad": bool(skip_bad)})
    return summary


def _manifest_row(row: HC18Row, **values) -> dict:
    base = {c: "" for c in MANIFEST_COLUMNS}
    base.update(filename=row.filename, subject=subject_id(row.filename), hc_mm=repr(row.hc_mm),
                pixel_size_mm=repr(row.pixel_size_mm))
    base.update({k: v for k, v in values.items() if k in base})
    return base


def _write(out: Path, rows, prepared, skipped, test_subjects, summary: PrepareSummary, overwrite: bool,
           parameters: dict) -> None:
    from ...io.images import image_stem, write_png

    by_name = {p.row.filename: p for p in prepared}
    with staged_output(out, overwrite) as staging:
        records = []
        for row in rows:
            p = by_name.get(row.filename)
            if p is None:
                reason = skipped.get(row.filename, "not prepared")
                records.append(_manifest_row(row, split="skipped", status="skipped", reason=reason))
                summary.skipped.append((row.filename, reason))
                continue
            subject = subject_id(row.filename)
            split = "test" if subject in test_subjects else "train"
            output = f"{split}/{image_stem(row.filename)}.png"
            write_png(p.image, staging / output)
            setattr(summary, split, getattr(summary, split) + 1)
            t, e, ps = p.transform, p.transform.ellipse, row.pixel_size_mm
            records.append(_manifest_row(
                row, source=p.source, split=split, output=output, status="ok", notes="; ".join(p.notes),
                hc_fit_mm=f"{p.hc_fit_mm:.2f}", center_x_px=f"{e.cx:.3f}", center_y_px=f"{e.cy:.3f}",
                semi_a_px=f"{e.a:.3f}", semi_b_px=f"{e.b:.3f}", angle_deg=f"{e.angle_deg:.3f}",
                ofd_mm=f"{2 * e.a * ps:.2f}", bpd_mm=f"{2 * e.b * ps:.2f}",
                anterior_right=str(t.anterior_right).lower(), orientation_source=t.orientation_source,
                near_field=t.near_field_side(), transform=t.to_json()))
        write_manifest(staging, MANIFEST_COLUMNS, records)
        summary.train_subjects = len({subject_id(p.row.filename) for p in prepared} - set(test_subjects))
        summary.test_subjects = len(set(test_subjects))
        info = dict(parameters, rows=summary.rows, train=summary.train, test=summary.test,
                    skipped=len(summary.skipped), train_subjects=summary.train_subjects,
                    test_subjects=summary.test_subjects)
        write_summary(staging, info)
