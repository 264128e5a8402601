"""Helpers of the fault tests: broken inputs, read-only and tiny file systems, subprocess runs of ``ddic``.

Read-only folders: a non-root user gets a folder with mode 0555; root ignores permission bits, so root
gets a read-only tmpfs mounted on the folder (skipped, with the reason, where mounting is not allowed).
A tiny file system (for "disk full") is likewise a small tmpfs, or ``None`` where it cannot be made; the
tests then patch the writer to raise ENOSPC instead.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import SimpleITK as sitk


def write_nan_nrrd(path: Path, shape=(48, 48), value=float("nan")) -> Path:
    """A float NRRD with a 10×10 block of ``value`` (NaN by default) in otherwise ordinary pixels."""
    pixels = np.random.default_rng(0).random(shape).astype(np.float32) * 200
    pixels[10:20, 10:20] = value
    sitk.WriteImage(sitk.GetImageFromArray(pixels), str(path))
    return path


def write_huge_header(path: Path, side: int = 100_000) -> Path:
    """An NRRD header declaring side × side uchar pixels, with no data at all."""
    path.write_text(f"NRRD0004\ntype: uchar\ndimension: 2\nsizes: {side} {side}\nencoding: raw\n\n")
    return path


def _mount_tmpfs(folder: Path, options: str) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    return done.returncode == 0


def _umount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@contextmanager
def read_only_folder(base: Path) -> Iterator[Path]:
    """An existing folder this process cannot write into (see the module docstring)."""
    folder = base / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    if not _mount_tmpfs(folder, "ro,size=64k"):
        pytest.skip("running as root, where permission bits do not stop writes, and mounting a read-only "
                    "tmpfs is not permitted here")
    try:
        yield folder
    finally:
        _umount(folder)


@contextmanager
def tiny_filesystem(base: Path, size_kb: int) -> Iterator[Path | None]:
    """A folder on a ``size_kb`` tmpfs, or ``None`` where one cannot be mounted."""
    folder = base / "tiny-disk"
    folder.mkdir()
    if not _mount_tmpfs(folder, f"size={int(size_kb)}k"):
        yield None
        return
    try:
        yield folder
    finally:
        _umount(folder)


def enospc_writer():
    """A ``SimpleITK.WriteImage`` that writes half a file and then fails as a full disk does."""
    def write(image, path, *args, **kwargs):
        with open(path, "wb") as handle:
            handle.write(b"\0" * 1000)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    return write


def ddic_env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("DDIC_SAM_CHECKPOINT", None)
    return env


def run_ddic(args: list[str], timeout: float = 300.0, prefix: list[str] | None = None,
             **kwargs) -> subprocess.CompletedProcess:
    """``python -m ddic ARGS`` in a subprocess (optionally under ``prefix``, e.g. ``unshare -rn``)."""
    return subprocess.run([*(prefix or []), sys.executable, "-m", "ddic", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=ddic_env(), **kwargs)


def visible_files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if not p.name.startswith(".")}
