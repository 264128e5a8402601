"""Output folders that cannot be written: found early, told in one line (which folder, why, what to do).

Three places use this:

* :func:`check_output_folder` before any work (``ddic translate`` must not spend an hour translating
  into a read-only folder) — it creates nothing, so a refused command leaves no empty folder behind;
* :func:`make_output_folder` when there is something to write;
* :func:`as_output_error` turns a failed write — an ``OSError`` (permission, read-only file system,
  disk full, quota) or a writer's ``RuntimeError`` (SimpleITK reports a full disk as "fwrite wrote
  only …") — into a :class:`DDICOutputError`; the CLI, the JSON-events wrapper and the worker use it
  for any such error that escapes, so no command shows a traceback for a folder it cannot write.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import DDICOutputError

PERMISSION = (errno.EACCES, errno.EPERM)
READ_ONLY = (errno.EROFS,)
FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
FILESYSTEM_ERRNOS = PERMISSION + READ_ONLY + FULL + (errno.ENOTDIR, errno.EEXIST, errno.EISDIR, errno.EIO,
                                                    errno.ENAMETOOLONG)
_MESSAGES = {  # text a writer's RuntimeError carries for the same causes
    "No space left on device": errno.ENOSPC, "Disk quota exceeded": errno.EDQUOT,
    "Read-only file system": errno.EROFS, "Permission denied": errno.EACCES,
}
MIN_FREE_BYTES = 1 << 20
"""A writer that failed without saying why, on a file system with less than this free (or less than
the bytes it was writing), is reported as a full disk."""


def _nearest_existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _free_text(folder: Path) -> str:
    try:
        free = shutil.disk_usage(_nearest_existing(folder)).free
    except OSError:
        return ""
    return f"{free / 2**20:.1f} MiB free"


def describe(code: int, folder: Path, target: Path | None = None) -> str:
    """One line for an errno while writing ``target`` in ``folder``: what, where, why, what to do."""
    what = f"Cannot write {target}" if target is not None else f"Cannot write to the folder {folder}"
    if code in PERMISSION:
        return (f"{what}: permission denied (the folder {folder} is not writable for this user). Choose an "
                "output folder you can write to, or change its permissions.")
    if code in READ_ONLY:
        return (f"{what}: {folder} is on a read-only file system. Choose an output folder on a writable "
                "disk.")
    if code in FULL:
        free = _free_text(folder)
        return (f"{what}: the disk holding {folder} is full{' (' + free + ')' if free else ''}; nothing was "
                "left half-written. Free some space or choose an output folder on another disk.")
    if code == errno.ENOTDIR or code == errno.EEXIST:
        return (f"{what}: a file is in the way of the folder {folder} (a path component is a file, not a "
                "folder). Choose another output folder.")
    return f"{what}: {os.strerror(code)}. Check the disk and the folder {folder}, or choose another one."


def check_output_folder(folder: str | os.PathLike, option: str = "--out") -> Path:
    """Refuse a folder that cannot be created or written, without creating anything.

    An existing folder is probed with a real temporary file (permission bits, ACLs, read-only mounts and
    root-squashed network shares all answer truthfully); a missing one is checked on its nearest
    existing parent (it could be created there).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise DDICOutputError(f"{option} {folder} exists and is not a folder; choose a folder.")
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise DDICOutputError(describe(errno.ENOTDIR, folder))
    if existing == Path(os.path.abspath(folder)):
        try:
            fd, name = tempfile.mkstemp(prefix=".ddic-write-test.", dir=existing)
            os.close(fd)
            os.unlink(name)
        except OSError as exc:
            raise DDICOutputError(describe(exc.errno or errno.EACCES, folder)) from exc
    elif not os.access(existing, os.W_OK | os.X_OK):
        code = errno.EROFS if _read_only_mount(existing) else errno.EACCES
        raise DDICOutputError(describe(code, existing) + f" ({folder} would be created there.)")
    return folder


def _read_only_mount(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (AttributeError, OSError):
        return False


def make_output_folder(folder: str | os.PathLike) -> Path:
    """Create ``folder`` (and its parents) or raise :class:`DDICOutputError` saying why it cannot be."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if exc.errno not in FILESYSTEM_ERRNOS:
            raise
        where = _nearest_existing(folder)
        raise DDICOutputError(describe(exc.errno, where) + f" ({folder} could not be created.)") from exc
    return folder


def as_output_error(exc: BaseException, target: str | os.PathLike | None = None,
                    expected_bytes: int | None = None) -> DDICOutputError | None:
    """The :class:`DDICOutputError` for a write that failed for a file-system reason, else ``None``.

    ``target`` is the file (or folder) being written when the exception does not name it;
    ``expected_bytes`` how much was being written (to recognise a full disk from a writer that does not
    say so).
    """
    if isinstance(exc, DDICOutputError):
        return exc
    code = None
    if isinstance(exc, OSError) and exc.errno in FILESYSTEM_ERRNOS:
        code = exc.errno
        target = exc.filename if exc.filename is not None and target is None else target
    elif isinstance(exc, RuntimeError) and target is not None:
        text = str(exc)
        code = next((c for message, c in _MESSAGES.items() if message in text), None)
        if code is None:
            folder = _nearest_existing(Path(target).parent)
            try:
                free = shutil.disk_usage(folder).free
            except OSError:
                free = None
            if free is not None and free < max(MIN_FREE_BYTES, int(expected_bytes or 0)):
                code = errno.ENOSPC
    if code is None or target is None:
        return None
    target = Path(os.fsdecode(target))
    folder = target if target.is_dir() else target.parent
    return DDICOutputError(describe(code, folder, None if target.is_dir() else target))
