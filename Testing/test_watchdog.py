"""The translation process ends with the panel that started it (``ddic translate --watch-parent PID``).

Unit tests drive :class:`ddic.cli.watchdog.ParentWatchdog` with injected interrupt/exit/alive functions;
the process tests start real children and only wait for them (generous bounds, no timing asserted).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from ddic.cli.watchdog import EXIT_CANCELLED, ParentWatchdog, process_exists

ENGINE_DIR = Path(__file__).resolve().parents[1] / "DDICSlicer"


class Recorder:
    def __init__(self):
        self.interrupts = 0
        self.exits = []

    def interrupt(self):
        self.interrupts += 1

    def exit(self, code):
        self.exits.append(code)


def make(stdin_text=None, alive=lambda pid: True, parent=None):
    rec = Recorder()
    dog = ParentWatchdog(parent_pid=parent, stdin=io.StringIO(stdin_text) if stdin_text is not None else None,
                         grace_s=None, interrupt=rec.interrupt, exit=rec.exit, alive=alive, log=io.StringIO())
    return dog, rec


def test_cancel_line_interrupts_once():
    dog, rec = make("progress?\ncancel\nmore\n")
    dog.watch_stdin()
    assert (dog.reason, rec.interrupts) == ("cancel", 1)
    dog.fire("stdin closed")  # a later end of input must not interrupt the cleanup a second time
    assert (dog.reason, rec.interrupts) == ("cancel", 1)


def test_end_of_input_means_the_parent_is_gone():
    dog, rec = make("")
    dog.watch_stdin()
    assert (dog.reason, rec.interrupts) == ("stdin closed", 1)


def test_parent_pid_disappearing_fires():
    states = iter([True, True, False])
    dog, rec = make(alive=lambda pid: next(states), parent=4242)
    sleeps = []
    dog.watch_parent(sleep=sleeps.append)
    assert (dog.reason, rec.interrupts, len(sleeps)) == ("parent gone", 1, 2)


def test_grace_period_ends_in_a_hard_exit():
    rec = Recorder()
    done = threading.Event()

    def exit_(code):
        rec.exit(code)
        done.set()

    dog = ParentWatchdog(stdin=io.StringIO(""), grace_s=0.01, interrupt=rec.interrupt, exit=exit_,
                         log=io.StringIO())
    dog.watch_stdin()
    assert done.wait(30)
    assert rec.exits == [EXIT_CANCELLED] and rec.interrupts == 1


def test_process_exists():
    assert process_exists(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not process_exists(child.pid)
    assert not process_exists(0)


CHILD = textwrap.dedent("""
    import sys, time
    from ddic.cli.watchdog import start_watchdog
    print("ready", flush=True)
    try:
        start_watchdog(int(sys.argv[1]), grace_s=20)
        time.sleep(600)  # a blocking call: the interrupt must wake it
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(130)
""")


def start_child(parent_pid: int):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ENGINE_DIR), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(parent_pid)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=env)
    assert child.stdout.readline().strip() == "ready"
    return child


@pytest.mark.parametrize("how", ["cancel line", "stdin closed"])
def test_real_child_stops_on_cancel_or_closed_stdin(how):
    child = start_child(os.getpid())
    if how == "cancel line":
        child.stdin.write("cancel\n")
        child.stdin.flush()
    else:
        child.stdin.close()
    assert child.wait(timeout=60) == 130
    assert child.stdout.read().strip() == "interrupted"


def test_real_child_stops_when_its_parent_pid_is_gone():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    child = start_child(gone.pid)  # stdin stays open: only the pid check can stop it
    try:
        assert child.wait(timeout=60) == 130
    finally:
        child.stdin.close()
