"""FeTA 2021/2022 (Payette et al. 2021) → canonical MRI training slices (method.md §5, anatomy.md §7.3).

Input under ROOT: ``sub-XXX/anat/sub-XXX_rec-<pipeline>_T2w.nii[.gz]`` with the matching
``sub-XXX_rec-<pipeline>_dseg.nii[.gz]`` (FeTA classes 0–7), and ``participants.tsv`` (tab-separated) with a
row per subject. The participants columns are found by header name — the id (``participant_id``, ``subject``,
``id``…), the condition (``pathology``, ``condition``, ``group``…) and the gestational age (``gestational_age``,
``ga``, ``age``…) — and, where a name is not recognised, by position (0 id, 1 condition, 2 GA: the FeTA
release order). Ids match with or without the ``sub-`` prefix.

Every T2w volume found becomes K slices (:mod:`.mri_common`); a subject with several reconstructions
(``rec-mial`` and ``rec-irtk``) contributes each, and all its volumes share one split. A volume without its
dseg, a subject missing from participants.tsv (or with an unreadable GA), a 4D/RGB volume or one without deep
GM stops the run with one error listing every problem (``skip_bad``: skipped and listed in the manifest).
"""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path

from ...errors import DDICInputError
from ...geometry.canonical import CANONICAL_SIZE_PX
from ...progress import ProgressCallback
from .mri_common import (
    DEFAULT_SLICE_STEP_MM,
    DEFAULT_SLICES,
    MRIPrepareSummary,
    VolumeItem,
    VolumeTriage,
    prepare_volumes,
    start_run,
)

PARTICIPANTS_NAME = "participants.tsv"
_ID_NAMES = ("participant_id", "participant", "subject_id", "subject", "id", "sub")
_CONDITION_NAMES = ("pathology", "condition", "group", "diagnosis", "status")
_GA_NAMES = ("gestational_age", "gestationalage", "ga", "ga_weeks", "gestational_age_weeks", "age", "ga(weeks)")
_T2W = re.compile(r"^(sub-[A-Za-z0-9]+)_(.*_)?T2w\.nii(\.gz)?$")


def subject_key(value: str) -> str:
    value = value.strip()
    return value[4:] if value.lower().startswith("sub-") else value


def _column(norm: list[str], names: tuple[str, ...], position: int, taken: set[int]) -> int:
    for name in names:
        if name in norm and norm.index(name) not in taken:
            return norm.index(name)
    for i, h in enumerate(norm):  # a recognised word inside a longer header, e.g. "GA (weeks)"
        if i not in taken and any(re.search(rf"(^|[^a-z]){re.escape(n)}([^a-z]|$)", h) for n in names):
            return i
    return position


def read_participants(path: Path) -> dict[str, tuple[str, float | None, int]]:
    """``participants.tsv`` → {subject id without ``sub-``: (condition, GA weeks or None, line)}."""
    path = Path(path)
    if not path.is_file():
        raise DDICInputError(f"{PARTICIPANTS_NAME} not found at {path}; the FeTA release has it at the root of "
                             "the dataset (columns participant_id, condition/pathology, gestational age).")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DDICInputError(f"Cannot read {path}: {exc}.") from exc
    reader = csv.reader(io.StringIO(text), delimiter="\t")
    header = next(reader, None)
    if not header or len(header) < 1:
        raise DDICInputError(f"{path} is empty; expected a header such as participant_id, condition, "
                             "gestational_age.")
    norm = [re.sub(r"\s+", "_", h.strip().lower()) for h in header]
    i_id = _column(norm, _ID_NAMES, 0, set())
    i_cond = _column(norm, _CONDITION_NAMES, 1, {i_id})
    i_ga = _column(norm, _GA_NAMES, 2, {i_id, i_cond})
    rows: dict[str, tuple[str, float | None, int]] = {}
    for line, record in enumerate(reader, start=2):
        if not record or all(not v.strip() for v in record):
            continue
        if i_id >= len(record) or not record[i_id].strip():
            raise DDICInputError(f"{path}, line {line}: no participant id in {record!r}.")
        key = subject_key(record[i_id])
        condition = record[i_cond].strip() if i_cond < len(record) else ""
        ga = None
        if i_ga < len(record) and record[i_ga].strip() not in ("", "n/a", "NA", "nan"):
            try:
                ga = float(record[i_ga].strip().replace(",", "."))
            except ValueError as exc:
                raise DDICInputError(f"{path}, line {line}: gestational age {record[i_ga]!r} is not a number "
                                     f"(column {header[i_ga]!r}).") from exc
            if not (math.isfinite(ga) and 10.0 <= ga <= 45.0):
                raise DDICInputError(f"{path}, line {line}: gestational age {ga:g} is not a number of weeks "
                                     "(10–45).")
        if key in rows:
            raise DDICInputError(f"{path}, line {line}: participant {record[i_id].strip()} is listed twice "
                                 f"(also line {rows[key][2]}).")
        rows[key] = (condition, ga, line)
    return rows


def find_volumes(root: Path) -> list[tuple[str, Path, Path | None]]:
    """(subject, T2w, dseg or None) for every ``sub-*/anat/*_T2w.nii[.gz]`` under ROOT, sorted."""
    found = []
    for t2w in sorted(Path(root).glob("sub-*/anat/*_T2w.nii*")):
        match = _T2W.match(t2w.name)
        if not match:
            continue
        dseg = None
        for suffix in (".nii.gz", ".nii"):
            candidate = t2w.with_name(t2w.name[: t2w.name.index("_T2w")] + "_dseg" + suffix)
            if candidate.is_file():
                dseg = candidate
                break
        found.append((match.group(1), t2w, dseg))
    return found


def prepare_feta(root, out, *, n_slices: int = DEFAULT_SLICES, step_mm: float = DEFAULT_SLICE_STEP_MM,
                 test_fraction: float = 0.0, split_seed: int = 0, size: int = CANONICAL_SIZE_PX,
                 participants: Path | None = None, skip_bad: bool = False, overwrite: bool = False,
                 progress: ProgressCallback | None = None) -> MRIPrepareSummary:
    """Prepare the FeTA release under ``root`` into ``out`` (see the module docstring)."""
    root, out = start_run("FeTA", root, out, overwrite, n_slices, step_mm, test_fraction, size)
    volumes = find_volumes(root)
    if not volumes:
        raise DDICInputError(f"No FeTA volume (sub-*/anat/*_T2w.nii.gz) under {root}.")
    table_path = Path(participants) if participants is not None else root / PARTICIPANTS_NAME
    table = read_participants(table_path)
    triage = VolumeTriage(skip_bad)
    for subject, t2w, dseg in volumes:
        rel = t2w.relative_to(root).as_posix()
        reason = None
        row = table.get(subject_key(subject))
        if dseg is None:
            reason = (f"no label map {t2w.name.replace('_T2w', '_dseg')} beside the T2w volume")
        elif row is None:
            reason = f"{subject} has no row in {table_path.name}"
        elif row[1] is None:
            reason = f"{subject} has no gestational age in {table_path.name} (line {row[2]})"
        item = VolumeItem(subject=subject, image=t2w, labels=dseg if dseg is not None else t2w,
                          ga_weeks=row[1] if row else None, condition=row[0] if row else "", label_scheme="feta")
        triage.add(item, reason, rel)
    summary = prepare_volumes("FeTA", root, out, triage.items, problems=triage.problems, n_slices=n_slices, step_mm=step_mm,
                              test_fraction=test_fraction, split_seed=split_seed, size=size, skip_bad=skip_bad,
                              overwrite=overwrite, progress=progress, pre_skipped=triage.skipped,
                              parameters={"participants": str(table_path)})
    return summary
