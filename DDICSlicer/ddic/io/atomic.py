"""Atomic file writing: a result appears whole under its final name or not at all, and a failed or
cancelled write never leaves a half file where a user's data (or a previous result) was."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .writable import as_output_error

PARTIAL_TAG = "partial"
"""Temporary files are named ``.STEM.RANDOM.partial.SUFFIX``: hidden, and never a result's name."""


@contextmanager
def atomic_path(target: str | os.PathLike, expected_bytes: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target`` (same suffix); on success it replaces ``target``.

    The suffix is kept (``.nii.gz`` included) so that writers choosing a format by extension, such as
    SimpleITK, write the right format. A write that fails for a file-system reason (no permission,
    read-only disk, disk full: ``expected_bytes`` helps recognise the last from a writer that does not
    say so) is raised as one :class:`ddic.errors.DDICOutputError` naming ``target``; the temporary file
    is removed in every case.
    """
    target = Path(target)
    suffix = "".join(target.suffixes[-2:]) if target.name.endswith(".nii.gz") else target.suffix
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".{PARTIAL_TAG}{suffix}",
                                        dir=target.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        yield tmp
        if tmp.exists():  # mkstemp makes the file private (0600); a result gets the usual permissions
            os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, target)
    except (OSError, RuntimeError) as exc:
        error = as_output_error(exc, target, expected_bytes)
        if error is None:
            raise
        raise error from exc
    finally:
        if tmp is not None and tmp.exists():
            tmp.unlink()


def is_partial(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a temporary file of :func:`atomic_path` (left only by a killed process)."""
    name = Path(path).name
    return name.startswith(".") and f".{PARTIAL_TAG}" in name


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes_atomic(target: str | os.PathLike, data: bytes) -> None:
    with atomic_path(target, expected_bytes=len(data)) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(target: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(target, text.encode("utf-8"))
