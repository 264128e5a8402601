"""A background engine process that speaks JSON lines, as a small state machine the GUI polls.

Why not ``slicer.util.launchConsoleProcess(blocking=False)``: it exists only from Slicer 5.12, offers no
cancel and cannot end a process *tree* — ``PythonSlicer`` is a launcher that starts ``python-real``, so
killing the launcher alone leaves the real worker (and its GPU memory) behind. Here the worker gets its
own process group (POSIX session / Windows process group) and a pipe on its stdin:

* cancel writes the line ``cancel`` on that pipe — the engine's watchdog (``ddic translate
  --watch-parent``, :mod:`ddic.cli.watchdog`) turns it into a clean exit that removes its temporary
  files. This works on Windows too, where there is no SIGTERM for a process group and ``taskkill``
  without ``/F`` cannot stop a window-less console process; after a grace period the whole tree is
  killed;
* if Slicer itself dies, the OS closes the pipe and the watchdog ends the process: no orphan keeps the
  GPU.

The module is plain Python (no ``slicer``/``qt`` import) so that the same code runs under pytest: the
widget calls :meth:`WorkerProcess.poll` from a ``qt.QTimer`` on the main thread; two reader threads only
move lines into a queue and never touch Qt or MRML.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ddic.cli.watchdog import CANCEL_LINE

# states (readable strings, so they can be shown and logged as they are)
IDLE = "idle"
RUNNING = "running"
CANCELLING = "cancelling"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
FINISHED_STATES = (SUCCEEDED, FAILED, CANCELLED)

EXIT_OUT_OF_MEMORY = 3  # the engine's exit code for out-of-memory (ddic.cli.common.EXIT_OUT_OF_MEMORY)
DEFAULT_LOG_LIMIT = 256_000  # characters kept in the log; older lines are dropped (a GUI log must not grow forever)
DEFAULT_GRACE_S = 5.0  # from the soft cancel to killing the tree



@dataclass
class ProcessResult:
    """How a worker ended: state, exit code, the ``done`` event's fields or the ``error`` event."""

    state: str
    returncode: int | None
    outputs: list = field(default_factory=list)
    done: dict | None = None
    error: dict | None = None

    @property
    def out_of_memory(self) -> bool:
        return (self.error or {}).get("type") == "oom" or self.returncode == EXIT_OUT_OF_MEMORY

    def message(self) -> str:
        """One readable sentence for the user."""
        if self.state == SUCCEEDED:
            return (self.done or {}).get("message", "Finished.")
        if self.state == CANCELLED:
            return "Cancelled; no result was kept."
        if self.error and self.error.get("message"):
            return self.error["message"]
        return f"The background process stopped with exit code {self.returncode} without a result; see the log."


class CappedLog:
    """The last ``limit`` characters of a log, kept as whole lines."""

    def __init__(self, limit: int = DEFAULT_LOG_LIMIT):
        self.limit = limit
        self._lines: deque = deque()
        self._size = 0

    def append(self, line: str) -> None:
        self._lines.append(line)
        self._size += len(line) + 1
        while self._size > self.limit and len(self._lines) > 1:
            self._size -= len(self._lines.popleft()) + 1

    @property
    def text(self) -> str:
        return "\n".join(self._lines)

    def __len__(self) -> int:
        return len(self._lines)


def parse_line(line: str) -> dict | None:
    """A JSON event object, or None for any other line (warnings, stray prints go to the log)."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) and "event" in event else None


def kill_process_tree(process: subprocess.Popen, hard: bool = False) -> None:
    """End ``process`` and every process started in its group (the launcher and ``python-real``)."""
    if process.poll() is not None and os.name != "nt":
        # the launcher is gone, but its children may live on in the group
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return
    if os.name == "nt":
        flags = ["/F"] if hard else []
        subprocess.run(["taskkill", "/PID", str(process.pid), "/T", *flags],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        return
    try:
        os.killpg(process.pid, signal.SIGKILL if hard else signal.SIGTERM)
    except ProcessLookupError:
        pass


class WorkerProcess:
    """Start a command, collect its JSON events and log, cancel it as a tree, clean its temporary folder.

    ``on_event(event)`` and ``on_log(line)`` are called from :meth:`poll`, i.e. on the caller's thread.
    ``temp_dir`` (if given) is removed by :meth:`cleanup`, which the caller runs after importing results.
    """

    def __init__(self, args: Sequence[str], env: dict | None = None, cwd: str | None = None,
                 temp_dir: str | os.PathLike | None = None, log_limit: int = DEFAULT_LOG_LIMIT,
                 on_event: Callable[[dict], None] | None = None,
                 on_log: Callable[[str], None] | None = None, grace_s: float = DEFAULT_GRACE_S):
        self.args = [str(a) for a in args]
        self.env = env
        self.cwd = cwd
        self.temp_dir = Path(temp_dir) if temp_dir else None
        self.log = CappedLog(log_limit)
        self.on_event = on_event
        self.on_log = on_log
        self.grace_s = grace_s
        self.state = IDLE
        self.process: subprocess.Popen | None = None
        self.progress: tuple[int, int, str] = (0, 0, "")
        self.result: ProcessResult | None = None
        self._queue: queue.Queue = queue.Queue()
        self._readers: list[threading.Thread] = []
        self._done_event: dict | None = None
        self._error_event: dict | None = None
        self._kill_deadline: float | None = None
        self.started_at: float | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self.state != IDLE:
            raise RuntimeError(f"This worker was already started (state {self.state}).")
        env = dict(os.environ if self.env is None else self.env)
        env["PYTHONUNBUFFERED"] = "1"  # lines must arrive when printed, not when a pipe buffer fills
        kwargs: dict = {}
        if os.name == "nt":
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | getattr(subprocess, "CREATE_NO_WINDOW", 0)
        else:
            kwargs["start_new_session"] = True  # own process group: cancel reaches python-real too
        self.process = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, env=env, cwd=self.cwd, text=True,
                                        encoding="utf-8", errors="replace", bufsize=1, **kwargs)
        self.started_at = time.monotonic()
        self.state = RUNNING
        for stream, name in ((self.process.stdout, "stdout"), (self.process.stderr, "stderr")):
            reader = threading.Thread(target=self._read, args=(stream, name), daemon=True,
                                      name=f"DDICSlicer-{name}-reader")
            reader.start()
            self._readers.append(reader)

    def _read(self, stream, name: str) -> None:
        # tqdm-style carriage returns would otherwise make one endless line
        for raw in iter(stream.readline, ""):
            for part in raw.replace("\r", "\n").splitlines():
                if part.strip():
                    self._queue.put((name, part))
        stream.close()

    def cancel(self) -> None:
        """Ask the process to stop (``cancel`` on its stdin); :meth:`poll` kills the tree after ``grace_s``."""
        if self.state != RUNNING or self.process is None:
            return
        self.state = CANCELLING
        self._send_cancel()
        self._kill_deadline = time.monotonic() + self.grace_s

    def _send_cancel(self) -> None:
        try:
            self.process.stdin.write(CANCEL_LINE + "\n")
            self.process.stdin.flush()
        except (OSError, ValueError):  # already gone or stdin closed: the deadline kill covers it
            pass

    def kill(self) -> None:
        """End the tree at once (application exit, scene close)."""
        if self.process is not None and self.state in (RUNNING, CANCELLING):
            if self.state == RUNNING:
                self.state = CANCELLING
            kill_process_tree(self.process, hard=True)

    # -- polling (caller's thread) ---------------------------------------------------------------------------
    def poll(self) -> str:
        """Deliver queued lines and events; return the state (a finished state once, then stays)."""
        while True:
            try:
                name, line = self._queue.get_nowait()
            except queue.Empty:
                break
            event = parse_line(line) if name == "stdout" else None
            if event is None:
                self.log.append(line)
                if self.on_log:
                    self.on_log(line)
                continue
            kind = event.get("event")
            if kind == "progress":
                self.progress = (int(event.get("done", 0)), int(event.get("total", 0)), str(event.get("message", "")))
            elif kind == "done":
                self._done_event = event
            elif kind == "error":
                self._error_event = event
                self.log.append(f"error ({event.get('type')}): {event.get('message')}")
            if self.on_event:
                self.on_event(event)
        if self.state == CANCELLING and self._kill_deadline is not None and time.monotonic() > self._kill_deadline:
            kill_process_tree(self.process, hard=True)
            self._kill_deadline = None
        exited = self.process is not None and self.process.poll() is not None
        drained = all(not r.is_alive() for r in self._readers) and self._queue.empty()
        if self.state in (RUNNING, CANCELLING) and exited and drained:
            self._finish()
        return self.state

    def _finish(self) -> None:
        code = self.process.returncode
        self._close_stdin()
        if os.name != "nt":
            kill_process_tree(self.process, hard=True)  # no orphan may outlive its launcher
        if self.state == CANCELLING:
            state = CANCELLED
        elif code == 0 and self._done_event is not None:
            state = SUCCEEDED
        else:
            state = FAILED
        self.result = ProcessResult(state=state, returncode=code,
                                    outputs=list((self._done_event or {}).get("outputs", [])),
                                    done=self._done_event, error=self._error_event)
        self.state = state

    def wait(self, timeout: float | None = None, interval: float = 0.05) -> str:
        """Poll until finished (scripts and tests; the GUI uses a timer instead)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() not in FINISHED_STATES:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"The worker did not finish within {timeout} s.")
            time.sleep(interval)
        return self.state

    @property
    def fraction(self) -> float:
        done, total, _ = self.progress
        return min(max(done / total, 0.0), 1.0) if total > 0 else 0.0

    @property
    def elapsed_s(self) -> float:
        return 0.0 if self.started_at is None else time.monotonic() - self.started_at

    def _close_stdin(self) -> None:
        try:
            if self.process is not None and self.process.stdin is not None:
                self.process.stdin.close()
        except (OSError, ValueError):
            pass

    def cleanup(self) -> None:
        """Remove the temporary folder (inputs written for the worker and its outputs once imported)."""
        self._close_stdin()
        if self.temp_dir is not None and self.temp_dir.exists():
            shutil.rmtree(self.temp_dir, ignore_errors=True)


def python_command(python: str | None = None) -> list[str]:
    """The interpreter for workers: ``PythonSlicer`` inside Slicer (its ``sys.executable``), else this one."""
    return [python or sys.executable]
