"""A process started by a GUI ends with its GUI: stdin closes or the parent process disappears → exit.

Why: the Slicer panel runs ``ddic translate`` in a background process that may hold a GPU for minutes.
If Slicer crashes or is killed, nothing would end that process; it would keep the GPU until it finished.
With ``--watch-parent PID`` the command watches two things, each on a daemon thread:

* its stdin: the panel keeps a pipe open and never writes to it except ``cancel``; when the panel dies,
  the OS closes the pipe and the read returns end-of-file;
* the parent process id: polled every ``interval_s`` seconds (belt and braces for a parent that leaves
  the pipe open, e.g. a launcher in between).

It is also the soft cancel on every OS: the line ``cancel`` on stdin. Windows has no SIGTERM for a
process group, and ``taskkill`` without ``/F`` cannot stop a window-less console process, so a message
on the pipe is the one cancel that works everywhere.

Either way the main thread gets a ``KeyboardInterrupt`` — a real SIGINT aimed at it (``pthread_kill``;
``raise_signal`` on Windows, whose handler also wakes a sleeping main thread), so even a blocking wait
ends — and ``finally`` blocks run: no half-written result is left under a final name, the same path as
Ctrl+C. If the main thread is stuck in a long native call and has not ended ``grace_s`` seconds later,
the process exits hard (``os._exit``) with :data:`EXIT_CANCELLED`.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable

CANCEL_LINE = "cancel"
EXIT_CANCELLED = 130  # as for Ctrl+C (ddic.cli.main)
DEFAULT_INTERVAL_S = 1.0
DEFAULT_GRACE_S = 15.0


def interrupt_main_thread() -> None:
    """A KeyboardInterrupt in the main thread, waking it from a blocking call (unlike ``interrupt_main``)."""
    if hasattr(signal, "pthread_kill"):
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
    else:
        signal.raise_signal(signal.SIGINT)


def process_exists(pid: int) -> bool:
    """Whether process ``pid`` is alive (never sends it a signal)."""
    if pid <= 0:
        return False
    if os.name == "nt":
        return _windows_process_exists(pid)
    try:
        os.kill(pid, 0)  # signal 0: existence and permission check only (POSIX)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by someone else
    return True


def _windows_process_exists(pid: int) -> bool:
    # os.kill on Windows would *terminate* the process; ask the kernel instead.
    import ctypes

    process_query_limited_information, still_active = 0x1000, 259
    kernel32 = ctypes.windll.kernel32
    handle = kernel32.OpenProcess(process_query_limited_information, False, pid)
    if not handle:
        return False
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return False
        return code.value == still_active
    finally:
        kernel32.CloseHandle(handle)


class ParentWatchdog:
    """Watch stdin and a parent pid; on cancel / end of input / parent gone, interrupt then exit.

    ``interrupt``, ``exit`` and ``alive`` are injectable so the behaviour is tested without ending the
    test process. ``reason`` says what fired: ``"cancel"``, ``"stdin closed"`` or ``"parent gone"``.
    """

    def __init__(self, parent_pid: int | None = None, stdin=None, interval_s: float = DEFAULT_INTERVAL_S,
                 grace_s: float = DEFAULT_GRACE_S, interrupt: Callable[[], None] = interrupt_main_thread,
                 exit: Callable[[int], None] = os._exit, alive: Callable[[int], bool] = process_exists,
                 log=None):
        self.parent_pid = parent_pid
        self.stdin = sys.stdin if stdin is None else stdin
        self.interval_s = interval_s
        self.grace_s = grace_s
        self._interrupt = interrupt
        self._exit = exit
        self._alive = alive
        self._log = log if log is not None else sys.stderr
        self.reason: str | None = None
        self._fired = threading.Event()
        self._lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def start(self) -> ParentWatchdog:
        if self._interrupt is interrupt_main_thread and threading.current_thread() is threading.main_thread():
            # a process started with SIGINT ignored (e.g. in the background by a shell) has no Python
            # handler for it; install the usual one so the interrupt becomes KeyboardInterrupt
            signal.signal(signal.SIGINT, signal.default_int_handler)
        if self.stdin is not None:
            self.threads.append(threading.Thread(target=self.watch_stdin, daemon=True, name="ddic-watch-stdin"))
        if self.parent_pid:
            self.threads.append(threading.Thread(target=self.watch_parent, daemon=True, name="ddic-watch-parent"))
        for thread in self.threads:
            thread.start()
        return self

    @property
    def fired(self) -> bool:
        return self._fired.is_set()

    def fire(self, reason: str) -> None:
        """Interrupt the main thread once; exit hard if it is still running after ``grace_s``."""
        with self._lock:
            if self._fired.is_set():
                return
            self.reason = reason
            self._fired.set()
        try:
            print(f"ddic: stopping ({reason}).", file=self._log, flush=True)
        except (OSError, ValueError):
            pass
        self._interrupt()
        if self.grace_s is not None:
            timer = threading.Timer(self.grace_s, self._exit, args=(EXIT_CANCELLED,))
            timer.daemon = True
            timer.start()

    def watch_stdin(self) -> None:
        """Read lines until ``cancel`` or end of input (other lines are ignored)."""
        try:
            for line in iter(self.stdin.readline, ""):
                if line.strip().lower() == CANCEL_LINE:
                    self.fire("cancel")
                    return
        except (OSError, ValueError):  # the pipe broke: the parent is gone as well
            pass
        self.fire("stdin closed")

    def watch_parent(self, sleep: Callable[[float], None] = time.sleep) -> None:
        while not self._fired.is_set():
            if not self._alive(int(self.parent_pid)):
                self.fire("parent gone")
                return
            sleep(self.interval_s)


def start_watchdog(parent_pid: int | None, **kwargs) -> ParentWatchdog:
    """Start a :class:`ParentWatchdog` on this process's stdin and ``parent_pid`` (0/None: stdin only)."""
    return ParentWatchdog(parent_pid=parent_pid or None, **kwargs).start()
