"""How every preparer writes: a hidden staging folder beside OUT, filled completely, then moved into place.

A failed or interrupted run therefore leaves no half-written OUT, and a previous result in OUT is replaced
only with ``--overwrite`` and only once the new one is whole. Also the two files every preparer writes
(``manifest.csv``, ``prepare.json``), their summary record and the by-subject train/test split.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ...errors import DDICInputError
from ...io.atomic import write_text_atomic

SPLITS = ("train", "test")


@dataclass
class SplitSummary:
    """What a preparer wrote: image counts per split, skipped inputs with reasons, subjects per split."""

    out: Path
    train: int = 0
    test: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    train_subjects: int = 0
    test_subjects: int = 0

    @property
    def manifest(self) -> Path:
        return self.out / "manifest.csv"


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse an OUT that is a file, or a non-empty folder without ``overwrite``."""
    if out.exists():
        if not out.is_dir():
            raise DDICInputError(f"--out {out} exists and is not a folder.")
        if any(out.iterdir()) and not overwrite:
            raise DDICInputError(f"--out {out} is not empty; choose a new folder or pass --overwrite to replace it.")


def publish(staging: Path, out: Path, overwrite: bool) -> None:
    """Move the finished staging folder to ``out`` (replacing an old ``out`` only with ``overwrite``)."""
    if out.exists():
        check_out(out, overwrite)
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        try:
            os.replace(out, old / "previous")
            try:
                os.replace(staging, out)
            except OSError:
                os.replace(old / "previous", out)  # put the previous result back
                raise
        finally:
            shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, out)


@contextmanager
def staged_output(out: Path, overwrite: bool) -> Iterator[Path]:
    """Yield a staging folder (with train/ and test/) that becomes ``out`` when the block succeeds."""
    out.parent.mkdir(parents=True, exist_ok=True)
    check_out(out, overwrite)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        for split in SPLITS:
            (staging / split).mkdir()
        yield staging
        publish(staging, out, overwrite)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def write_manifest(staging: Path, columns: Sequence[str], records: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    write_text_atomic(staging / "manifest.csv", buffer.getvalue())


def write_summary(staging: Path, info: dict) -> None:
    write_text_atomic(staging / "prepare.json", json.dumps(info, indent=2) + "\n")


def split_subjects(subjects, test_fraction: float, seed: int) -> set[str]:
    """The subjects that go to the test split (a seeded shuffle of the sorted subject ids)."""
    if not 0.0 <= float(test_fraction) < 1.0:
        raise DDICInputError(f"--test-fraction must be in [0, 1), got {test_fraction}.")
    unique = sorted(set(subjects))
    n = len(unique)
    if n < 2 or test_fraction == 0:
        return set()
    n_test = min(max(1, int(round(test_fraction * n))), n - 1)
    order = np.random.default_rng(int(seed)).permutation(n)
    return {unique[i] for i in order[:n_test]}
