"""Client of the persistent segmentation worker (``python -m ddic.worker``, JSON lines on stdin/stdout).

Why a persistent process: SAM's image embedding is the slow part (seconds on a GPU, up to minutes on a
CPU) and is computed once per frame by ``set_image``; each click then only runs the prompt decoder. A
separate process keeps torch and its GPU memory out of Slicer and can be killed without harm.

Wire format (``ddic/worker/protocol.py``): request ``{"id": n, "op": name, ...}``, exactly one response
``{"id": n, "ok": true, "op": name, "result": {...}}`` or ``{"id": n, "ok": false, "error", "type"}``, and
optional progress lines ``{"id": n, "progress": {...}}`` before it. Replies are matched to requests by id;
a reader thread queues them and :meth:`WorkerClient.poll` (called from a Qt timer on the main thread)
hands them to the callbacks. Plain Python: no ``slicer`` import. Sequencing several requests into one
user action, with exactly one outcome, is :mod:`DDICSlicerLib.segmentation`'s job.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Sequence

from ddic.worker.protocol import PROTOCOL_VERSION  # the version this client speaks: the engine's own

from .process import CappedLog, kill_process_tree


class WorkerError(RuntimeError):
    """The worker could not be reached (not started, or gone)."""


class WorkerClient:
    """Start once, send requests with callbacks, poll replies on the main thread, stop on cleanup."""

    def __init__(self, args: Sequence[str], env: dict | None = None, log_limit: int = 64_000):
        self.args = [str(a) for a in args]
        self.env = env
        self.process: subprocess.Popen | None = None
        self.log = CappedLog(log_limit)
        self._replies: queue.Queue = queue.Queue()
        self._pending: dict = {}  # id → (request, callback) waiting for their reply
        self._next_id = 0
        self.image_path: str | None = None  # the image whose embedding the worker holds
        self.loaded: dict | None = None  # the arguments of the last successful load
        self.hello: dict | None = None  # the worker's versions and device, from the hello handshake
        self.progress: dict | None = None  # the last progress line of a long op
        self._stderr_reader: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    def start(self) -> None:
        if self.running:
            return
        env = dict(os.environ if self.env is None else self.env)
        env["PYTHONUNBUFFERED"] = "1"
        kwargs: dict = {"start_new_session": True} if os.name != "nt" else {
            "creationflags": subprocess.CREATE_NEW_PROCESS_GROUP | getattr(subprocess, "CREATE_NO_WINDOW", 0)}
        self.process = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, env=env, text=True, encoding="utf-8",
                                        errors="replace", bufsize=1, **kwargs)
        self.image_path, self.loaded, self.hello = None, None, None
        threading.Thread(target=self._read_stdout, daemon=True, name="DDICSlicer-worker-stdout").start()
        self._stderr_reader = threading.Thread(target=self._read_stderr, daemon=True, name="DDICSlicer-worker-stderr")
        self._stderr_reader.start()
        self.request("hello", self._on_hello)  # version handshake: a mismatched engine is reported at once

    def _on_hello(self, reply: dict) -> None:
        self.hello = reply.get("result") if reply.get("ok") else None
        version = (self.hello or {}).get("protocol")
        if version != PROTOCOL_VERSION:
            self.log.append(f"warning: the segmentation worker speaks protocol {version}, this panel "
                            f"{PROTOCOL_VERSION}; reinstall DDICSlicer so both come from one version.")

    def _read_stdout(self) -> None:
        for line in iter(self.process.stdout.readline, ""):
            line = line.strip()
            if not line:
                continue
            try:
                reply = json.loads(line)
            except ValueError:
                self._replies.put(("log", line))
                continue
            self._replies.put(("reply", reply) if isinstance(reply, dict) else ("log", line))
        self._replies.put(("eof", None))

    def _read_stderr(self) -> None:
        for line in iter(self.process.stderr.readline, ""):
            if line.strip():
                self._replies.put(("log", line.rstrip()))

    def request(self, op: str, callback: Callable[[dict], None] | None = None, **fields) -> int:
        """Send one request; ``callback(reply)`` runs from :meth:`poll` (reply has ``ok``). Returns its id."""
        if not self.running:
            raise WorkerError("The segmentation worker is not running; press Segment again to restart it.")
        self._next_id += 1
        message = {"id": self._next_id, "op": op, **fields}
        self._pending[self._next_id] = (message, callback)
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()
        return self._next_id

    def poll(self) -> None:
        """Dispatch the replies that arrived; a dead worker fails every pending request once."""
        while True:
            try:
                kind, item = self._replies.get_nowait()
            except queue.Empty:
                return
            if kind == "log":
                self.log.append(item)
            elif kind == "reply":
                self._dispatch(item)
            elif kind == "eof":
                self._stderr_reader.join(timeout=2.0)  # the worker's last words explain why it stopped
                while not self._replies.empty():
                    later_kind, later = self._replies.get_nowait()
                    if later_kind == "log":
                        self.log.append(later)
                    elif later_kind == "reply":
                        self._dispatch(later)
                pending, self._pending = list(self._pending.values()), {}
                tail = "\n".join(self.log.text.splitlines()[-5:])
                for _request, callback in pending:
                    if callback:
                        callback({"ok": False, "type": "WorkerExited",
                                  "error": f"The segmentation worker stopped unexpectedly. Last log lines:\n{tail}"})

    def _dispatch(self, item: dict) -> None:
        if "ok" not in item:
            self.progress = item.get("progress")  # a progress line of a long op
            return
        request, callback = self._pending.pop(item.get("id"), (None, None))
        if request is None:
            self.log.append(f"reply to no pending request: {item}")
            return
        if item.get("ok") and request["op"] == "set_image":
            self.image_path = request.get("path")
        if item.get("ok") and request["op"] == "load":
            self.loaded = {k: v for k, v in request.items() if k not in ("id", "op")}
        if not item.get("ok"):
            self.log.append(f"{request['op']} failed ({item.get('type')}): {item.get('error')}")
        if callback:
            callback(item)

    def stop(self, timeout_s: float = 3.0) -> None:
        """Ask the worker to shut down (it also exits when stdin closes); kill its tree if it lingers."""
        if self.process is None:
            return
        if self.running:
            try:
                self.process.stdin.write(json.dumps({"id": 0, "op": "shutdown"}) + "\n")
                self.process.stdin.flush()
                self.process.stdin.close()
            except (OSError, ValueError):
                pass
            deadline = time.monotonic() + timeout_s
            while self.running and time.monotonic() < deadline:
                time.sleep(0.05)
        kill_process_tree(self.process, hard=True)
        self.process = None
        self._pending.clear()
