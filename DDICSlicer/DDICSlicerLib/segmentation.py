"""One Segment click as a small state machine over the persistent worker: exactly one outcome, always.

A click may need up to three requests — ``load`` (backend/model changed), ``set_image`` (new frame),
``predict`` — and each can fail. Sent all at once, one failure produced up to three error callbacks
(three dialogs) and an exception on send left the panel "busy" forever. Here the steps run one after
the other; the first failure ends the run, later replies are ignored, and whatever happens — a failed
reply, a worker that dies, an exception while sending, a cancel — the run finishes exactly once:
``on_done(reply)``, ``on_error(message)`` or ``on_cancel()``. ``busy`` is simply "not finished".

SAM fallback: a ``load`` step may carry a classical fallback. When SAM cannot be loaded (package missing,
checkpoint unreadable, ...) the run loads the classical backend instead and keeps a note that says why,
which the panel shows with the result. Plain Python, tested with a fake worker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

IDLE, RUNNING, SUCCEEDED, FAILED, CANCELLED = "idle", "running", "succeeded", "failed", "cancelled"


@dataclass
class Step:
    """One request: ``op`` and its fields, a label for the progress text, an optional fallback ``load``."""

    op: str
    fields: dict
    label: str
    fallback: dict | None = None  # fields of a classical ``load`` to use if this one fails
    fallback_note: str = ""


@dataclass
class SegmentationRun:
    """Run ``steps`` on ``client`` (a :class:`~DDICSlicerLib.workerclient.WorkerClient`) one at a time."""

    client: object
    steps: list
    on_done: Callable[[dict], None]
    on_error: Callable[[str], None]
    on_cancel: Callable[[], None] = lambda: None
    state: str = IDLE
    index: int = 0
    notes: list = field(default_factory=list)

    @property
    def busy(self) -> bool:
        return self.state in (IDLE, RUNNING)

    @property
    def finished(self) -> bool:
        return self.state in (SUCCEEDED, FAILED, CANCELLED)

    @property
    def progress(self) -> tuple[int, int, str]:
        """(steps done, steps in all, what is happening now)."""
        label = self.steps[self.index].label if self.index < len(self.steps) else "Done"
        return min(self.index, len(self.steps)), len(self.steps), label

    def start(self) -> None:
        self.state = RUNNING
        if not self.steps:
            self._fail("Nothing to do.")
            return
        self._send(self.steps[0].op, self.steps[0].fields)

    def cancel(self) -> None:
        """Stop now. The worker is stopped too: an image embedding cannot be interrupted any other way."""
        if self.finished:
            return
        self.state = CANCELLED
        try:
            self.client.stop()
        finally:
            self.on_cancel()

    def _send(self, op: str, fields: dict) -> None:
        step = self.index
        try:
            self.client.request(op, lambda reply: self._reply(step, reply), **fields)
        except Exception as exc:  # noqa: BLE001 - worker gone, pipe closed: this run's one outcome
            self._fail(str(exc) or type(exc).__name__)

    def _reply(self, step: int, reply: dict) -> None:
        if self.finished or step != self.index:
            return  # a late reply of a run that already ended (cancelled or failed)
        current = self.steps[step]
        if not reply.get("ok"):
            if current.fallback is not None:
                why = reply.get("error") or "unknown reason"
                self.notes.append(f"{current.fallback_note} ({why})" if current.fallback_note else why)
                fallback, current.fallback = current.fallback, None
                self._send(current.op, fallback)
                return
            self._fail(reply.get("error") or f"The segmentation worker could not {current.op}.")
            return
        self.index += 1
        if self.index < len(self.steps):
            nxt = self.steps[self.index]
            self._send(nxt.op, nxt.fields)
            return
        self.state = SUCCEEDED
        self.on_done(reply)

    def _fail(self, message: str) -> None:
        if self.finished:
            return
        self.state = FAILED
        self.on_error(message)
