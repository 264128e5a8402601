"""A lock file that keeps two runs out of one output folder at once.

``FolderLock(folder).acquire()`` creates ``folder/.ddic.lock`` with ``O_CREAT | O_EXCL`` (atomic on
local and network file systems, on every OS) holding who owns it: pid, host, process start time and
the time it was taken. A second run finds the file and refuses with a message naming the holder —
unless the holder is gone:

* **dead pid on this host** (or a pid now used by a process started after the lock was taken: Linux
  start times tell pid reuse apart) → the lock is stale, left by a killed run; it is taken over and the
  takeover is reported (:attr:`FolderLock.stale`);
* **another host** → cannot be checked from here, so it counts as held; the message says where the lock
  file is, to delete it if no run is going on there;
* **an empty or unreadable lock file** → a run is writing it right now, unless it is older than
  :data:`UNREADABLE_GRACE_S`.

Taking a stale lock over is race-free: the stale file is renamed aside (only one contender's rename
succeeds), checked to be the very file judged stale, and only then removed; the new lock is again
created with ``O_EXCL``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
import sys
import time
import uuid
from pathlib import Path

from ..errors import DDICOutputError

LOCK_NAME = ".ddic.lock"
UNREADABLE_GRACE_S = 30.0
"""An empty or damaged lock file younger than this is taken to be in the middle of being written."""


def _proc_start(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (Linux ``/proc``), to tell pid reuse apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22, counted after the command name


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (never signals it)."""
    if pid <= 0:
        return False
    if sys.platform == "win32":  # os.kill(pid, 0) would *terminate* the process on Windows
        import ctypes

        kernel = ctypes.windll.kernel32  # type: ignore[attr-defined]
        handle = kernel.OpenProcess(0x1000 | 0x00100000, False, pid)  # QUERY_LIMITED_INFORMATION | SYNCHRONIZE
        if not handle:
            return False
        try:
            return kernel.WaitForSingleObject(handle, 0) == 0x102  # WAIT_TIMEOUT: still running
        finally:
            kernel.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holder_record(purpose: str) -> dict:
    """What this process writes into a lock it takes."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "proc_start": _proc_start(os.getpid()),
            "since": _dt.datetime.now().astimezone().isoformat(timespec="seconds"), "purpose": purpose,
            "token": uuid.uuid4().hex}


class FolderLock:
    """An exclusive lock on an output folder (module docstring); a context manager."""

    def __init__(self, folder: str | os.PathLike, purpose: str = "ddic", name: str = LOCK_NAME):
        self.folder = Path(folder)
        self.path = self.folder / name
        self.purpose = purpose
        self.record: dict | None = None
        self.stale: dict | None = None  # the dead holder whose lock was taken over, if any

    # --- holder checks -----------------------------------------------------------------------------
    def _read(self, path: Path) -> tuple[dict | None, bytes]:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None, b""
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None, raw
        return (data if isinstance(data, dict) else None), raw

    def _is_stale(self, holder: dict | None) -> bool:
        if holder is None:  # empty or damaged: being written now, or left by a crash long ago
            try:
                age = time.time() - self.path.stat().st_mtime
            except FileNotFoundError:
                return False
            return age > UNREADABLE_GRACE_S
        if holder.get("host") != socket.gethostname():
            return False
        pid = holder.get("pid")
        if not isinstance(pid, int) or not pid_alive(pid):
            return True
        recorded, now = holder.get("proc_start"), _proc_start(pid)
        return recorded is not None and now is not None and recorded != now

    def _busy_error(self, holder: dict | None) -> DDICOutputError:
        if holder is None:
            who = "another run (its lock file is being written)"
        else:
            where = "" if holder.get("host") == socket.gethostname() else f" on {holder.get('host')}"
            who = f"another {holder.get('purpose', 'ddic')} run (pid {holder.get('pid')}{where}, since {holder.get('since')})"
        return DDICOutputError(
            f"The output folder {self.folder} is in use by {who}. Wait for it to finish or choose another "
            f"output folder; if no such run is going on, delete {self.path}.")

    # --- acquire / release -----------------------------------------------------------------------------
    def acquire(self) -> FolderLock:
        """Take the lock or raise :class:`DDICOutputError` naming its holder (folder must exist)."""
        record = holder_record(self.purpose)
        data = (json.dumps(record, indent=1) + "\n").encode("utf-8")
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder, raw = self._read(self.path)
                if not self._is_stale(holder):
                    raise self._busy_error(holder) from None
                self._take_over(holder, raw)
                continue
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            self.record = record
            return self
        raise DDICOutputError(f"Could not take the lock {self.path}: other runs keep taking it. Try again.")

    def _take_over(self, holder: dict | None, raw: bytes) -> None:
        """Move a stale lock aside, but only if it is still the file judged stale (see the docstring)."""
        aside = self.path.with_name(f"{self.path.name}.stale-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return  # another contender moved it first; try again
        _, moved = self._read(aside)
        if moved != raw:  # a fresh lock of a contender that took over meanwhile: put it back
            try:
                os.rename(aside, self.path) if not self.path.exists() else None
            finally:
                if aside.exists() and self.path.exists():
                    aside.unlink()
            return
        aside.unlink()
        self.stale = holder or {}

    def release(self) -> None:
        """Remove the lock if it is still ours (never someone else's)."""
        if self.record is None:
            return
        holder, _ = self._read(self.path)
        if holder is not None and holder.get("token") == self.record["token"]:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        self.record = None

    @property
    def held(self) -> bool:
        return self.record is not None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
