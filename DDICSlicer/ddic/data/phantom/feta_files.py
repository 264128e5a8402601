"""The phantom's MRI volumes in the FeTA dataset layout (anatomy.md §7.3): BIDS names, FeTA classes, sidecar and
``participants.tsv`` — so ``ddic prepare feta`` reads phantom volumes exactly as it reads the real challenge data.

Split from :mod:`ddic.data.phantom.mri` (which renders the images) as ``hc18_files`` is from the ultrasound
renderer: file layout apart from physics.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ...errors import DDICInputError
from ...io.atomic import atomic_path, write_text_atomic
from ..labels import FETA_CLASS, Label
from .mri import PHANTOM_DIRECTION_LPS

FETA_LUT = np.zeros(256, dtype=np.uint8)
for _label, _cls in FETA_CLASS.items():
    FETA_LUT[int(_label)] = _cls
PARTICIPANTS_HEADER = ("participant_id", "condition", "gestational_age")
_SUBJECT_RE = re.compile(r"^[A-Za-z0-9]+$")


def feta_subject_name(subject_id) -> str:
    """``7`` → ``sub-007``; ``"007"`` or ``"sub-007"`` → ``sub-007`` (BIDS labels are alphanumeric)."""
    if isinstance(subject_id, (int, np.integer)):
        if subject_id < 0:
            raise DDICInputError(f"subject id must be non-negative, got {subject_id}")
        return f"sub-{int(subject_id):03d}"
    label = str(subject_id)
    label = label[4:] if label.startswith("sub-") else label
    if not _SUBJECT_RE.match(label):
        raise DDICInputError(f"subject id {subject_id!r} must be alphanumeric (BIDS label), e.g. '001' or 7")
    return f"sub-{label}"


def to_feta_classes(labels: np.ndarray) -> np.ndarray:
    """Phantom :class:`Label` ids → FeTA classes 0–7 (``ddic.data.labels.FETA_CLASS``)."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() > max(int(v) for v in Label)):
        raise DDICInputError(f"labels must be phantom Label ids 0…{max(int(v) for v in Label)}, "
                             f"got {labels.min()}…{labels.max()}")
    return FETA_LUT[labels.astype(np.int64)]


def _write_image(array: np.ndarray, path: Path, spacing, origin, direction) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin(tuple(float(o) for o in origin))
    image.SetDirection(tuple(float(d) for d in direction))
    with atomic_path(path) as tmp:
        sitk.WriteImage(image, str(tmp), True)


def _update_participants(root: Path, name: str, condition: str, ga_weeks: float) -> Path:
    path = root / "participants.tsv"
    rows: dict[str, list[str]] = {}
    if path.exists():
        reader = csv.reader(io.StringIO(path.read_text(encoding="utf-8")), delimiter="\t")
        for i, row in enumerate(reader):
            if i == 0 or not row:
                continue
            rows[row[0]] = row
    rows[name] = [name, condition, f"{float(ga_weeks):.2f}"]
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t", lineterminator="\n")
    writer.writerow(PARTICIPANTS_HEADER)
    for key in sorted(rows):
        writer.writerow(rows[key])
    write_text_atomic(path, out.getvalue())
    return path


def write_feta_subject(root, subject_id, volume: np.ndarray, labels: np.ndarray,
                       spacing: tuple[float, float, float], ga: float, *, origin=None, direction=None,
                       pathology: str | None = None, rec: str = "phantom", sidecar: dict | None = None) -> dict:
    """Write one subject in the FeTA BIDS layout (anatomy.md §7.3) and return its paths.

    ``root/sub-XXX/anat/sub-XXX_rec-<rec>_T2w.nii.gz`` (float32), ``…_dseg.nii.gz`` (uint8, labels mapped to
    FeTA classes 0–7), ``…_T2w.json`` (``sidecar``, e.g. ``VolumeInfo.to_dict()``), and a row
    ``participant_id  condition  gestational_age`` in ``root/participants.tsv`` (updated in place, sorted).
    Arrays are (Z, Y, X); ``spacing``/``origin`` are (x, y, z); ``direction`` defaults to
    ``PHANTOM_DIRECTION_LPS``. Every file is written atomically.
    """
    volume, labels = np.asarray(volume), np.asarray(labels)
    if volume.ndim != 3 or labels.shape != volume.shape:
        raise DDICInputError(f"volume and labels must be matching 3D (Z, Y, X) arrays, got {volume.shape} and "
                             f"{labels.shape}")
    if len(spacing) != 3 or min(float(s) for s in spacing) <= 0:
        raise DDICInputError(f"spacing must be three positive numbers (x, y, z) in mm, got {spacing}")
    if not re.match(r"^[A-Za-z0-9]+$", rec):
        raise DDICInputError(f"rec must be alphanumeric (BIDS), got {rec!r}")
    root = Path(root)
    name = feta_subject_name(subject_id)
    anat = root / name / "anat"
    if origin is None:
        d = np.asarray(PHANTOM_DIRECTION_LPS if direction is None else direction, dtype=np.float64).reshape(3, 3)
        centre = np.array([(volume.shape[2] - 1) * spacing[0], (volume.shape[1] - 1) * spacing[1],
                           (volume.shape[0] - 1) * spacing[2]]) / 2.0
        origin = tuple(-(d @ centre))
    direction = PHANTOM_DIRECTION_LPS if direction is None else tuple(direction)
    t2w = anat / f"{name}_rec-{rec}_T2w.nii.gz"
    dseg = anat / f"{name}_rec-{rec}_dseg.nii.gz"
    _write_image(volume.astype(np.float32), t2w, spacing, origin, direction)
    _write_image(to_feta_classes(labels), dseg, spacing, origin, direction)
    paths = {"T2w": t2w, "dseg": dseg}
    if sidecar is not None:
        js = anat / f"{name}_rec-{rec}_T2w.json"
        write_text_atomic(js, json.dumps(sidecar, indent=2, default=_json_default))
        paths["json"] = js
    condition = "Pathology" if pathology else "Neurotypical"
    paths["participants"] = _update_participants(root, name, condition, ga)
    return paths


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
