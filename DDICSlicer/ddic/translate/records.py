"""``translate.json``: what a translation run wrote, frame by frame, so a killed run can be finished.

The report is rewritten (atomically) after every finished frame, so at any moment it lists exactly the
frames whose pseudo-MRI and preview are complete on disk. A frame counts as **complete** for a later
run when its record is there, the run that wrote it translated the same way (:func:`run_identity`: the
options that change pixels, the models, the head placement, the package version), its input still has
the recorded SHA-256, and both output files still have theirs. A complete frame is kept as it is; any
other existing output of the same name is an orphan of a killed run (written, not yet recorded) and is
replaced.

Under ``torchrun`` each rank writes ``translate_rank{r}.json``; a later run reads every report in the
folder, whatever the number of ranks was.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..errors import DDICOutputError
from ..io.modelfile import sha256_file

REPORT_NAME = "translate.json"
RANK_REPORT_GLOB = "translate_rank*.json"
REPORT_KIND = "ddic_translate_report"
IDENTITY_IGNORES = ("batch_size", "device")
"""Options that do not change a frame's result (beyond floating-point noise): a run may be finished with
another batch size or on another device."""


def report_name(rank: int, world_size: int) -> str:
    return REPORT_NAME if world_size == 1 else f"translate_rank{rank}.json"


def run_identity(options: dict, model_ids: dict, placement: dict) -> dict:
    """What two runs must share for one to finish the other's frames (as it reads back from JSON)."""
    identity = {"options": {k: v for k, v in options.items() if k not in IDENTITY_IGNORES},
                "models": dict(model_ids), "placement": dict(placement), "ddic_version": __version__}
    return json.loads(json.dumps(identity))


def describe_difference(old: dict, new: dict) -> str:
    """The first few settings in which two identities differ, as 'name: old → new'."""
    diffs = []
    for group in ("options", "models", "placement"):
        a, b = old.get(group, {}), new.get(group, {})
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                diffs.append(f"{key}: {a.get(key)!r} → {b.get(key)!r}")
    if old.get("ddic_version") != new.get("ddic_version"):
        diffs.append(f"ddic version: {old.get('ddic_version')} → {new.get('ddic_version')}")
    return ", ".join(diffs[:4]) + (" …" if len(diffs) > 4 else "")


@dataclass
class FolderState:
    """What earlier runs left in an output folder (read before this run writes anything)."""

    reports: list[Path] = field(default_factory=list)
    identity: dict | None = None  # of the earlier run(s); None: no report
    records: dict[str, dict] = field(default_factory=dict)  # resolved frame path → record


def read_state(out: Path) -> FolderState:
    """Every report in ``out`` (one per rank of the last run, or one); refused when they disagree."""
    state = FolderState()
    if not out.is_dir():
        return state
    paths = sorted(p for p in [out / REPORT_NAME, *out.glob(RANK_REPORT_GLOB)] if p.is_file())
    for path in paths:
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DDICOutputError(f"{path} is damaged ({exc}); delete it (and the results it lists) or use "
                                  "--overwrite.") from exc
        identity = report.get("identity") if isinstance(report, dict) else None
        if identity is None:  # a report of an older ddic: its frames cannot be checked, so none is kept
            identity = {"unknown": str(path)}
        if state.identity is not None and identity != state.identity:
            raise DDICOutputError(f"The reports in {out} ({', '.join(p.name for p in paths)}) come from different "
                                  "translations; use --overwrite or another output folder.")
        state.identity = identity
        state.reports.append(path)
        for record in report.get("frames", []) if isinstance(report, dict) else []:
            if isinstance(record, dict) and "frame" in record:
                state.records[str(Path(record["frame"]).resolve())] = record
    return state


def is_complete(record: dict | None, frame: Path, outputs: tuple[Path, Path]) -> bool:
    """Whether ``record`` proves that ``frame``'s outputs are whole and from this very input."""
    if not record:
        return False
    expected = (record.get("frame_sha256"), record.get("pseudo_mri_sha256"), record.get("preview_sha256"))
    if None in expected or not all(p.is_file() for p in outputs):
        return False
    if [Path(str(record.get("pseudo_mri"))).name, Path(str(record.get("preview"))).name] != [p.name for p in outputs]:
        return False
    try:
        return (sha256_file(frame), sha256_file(outputs[0]), sha256_file(outputs[1])) == expected
    except OSError:
        return False
