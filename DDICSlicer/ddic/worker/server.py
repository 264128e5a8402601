"""The worker loop: read a line, dispatch it by op name, answer with one line; never die silently.

The dispatcher is a plain dict ``op name → handler(session, request) → result dict``; other op sets
(e.g. translation) are added with :meth:`Worker.register` or by passing ``ops``. A handler raises to
fail: engine errors become ``ok: false`` responses with their message, anything else is reported as an
internal error with its traceback on stderr, and the loop goes on with the next line. End of input
(the GUI closed the pipe, or died) ends the loop normally.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from ..errors import DDICError
from ..io.writable import as_output_error
from .protocol import (
    PROTOCOL_VERSION,
    RequestError,
    encode,
    failure,
    parse_request,
    progress_line,
    request_id,
    success,
)

log = logging.getLogger("ddic.worker")

MAX_REQUEST_CHARS = 1 << 20
"""Longest request line read: requests name files and carry prompts, so 1 Mi characters is generous,
and a runaway client cannot make the worker hold an arbitrarily long line."""

Handler = Callable[["Session", dict], dict | None]


@dataclass
class Session:
    """Mutable state shared by the handlers of one worker process."""

    segmenter: Any = None
    frame: Any = None
    extras: dict = field(default_factory=dict)  # room for other op sets (e.g. loaded translation models)
    progress: Callable[[int, int, str], None] = lambda done, total, message: None
    stop: bool = False


def op_hello(session: Session, request: dict) -> dict:
    """Versions and the compute device, so the GUI can check its environment in one round trip."""
    from importlib import metadata

    import numpy
    import SimpleITK

    from .. import __version__

    def version(dist: str):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    try:
        import torch

        torch_version, cuda = torch.__version__, torch.cuda.is_available()
        device = "cuda" if cuda else "cpu"
        gpu = torch.cuda.get_device_name(0) if cuda else None
    except ImportError:
        torch_version, device, gpu = None, "cpu", None
    return {"protocol": PROTOCOL_VERSION, "ddic": __version__, "torch": torch_version, "numpy": numpy.__version__,
            "SimpleITK": SimpleITK.Version.VersionString(), "segment_anything": version("segment-anything"),
            "device": device, "gpu": gpu, "python": sys.version.split()[0], "pid": os.getpid(),
            "ops": sorted(request.get("_ops", []))}


def op_shutdown(session: Session, request: dict) -> dict:
    session.stop = True
    return {"bye": True}


class Worker:
    """Serve JSON-line requests from ``stdin`` to ``stdout`` with the ops in ``self.ops``."""

    def __init__(self, ops: dict[str, Handler] | None = None):
        self.ops: dict[str, Handler] = dict(DEFAULT_OPS if ops is None else ops)
        self.session = Session()

    def register(self, name: str, handler: Handler) -> None:
        self.ops[name] = handler

    def handle_line(self, line: str, out: TextIO) -> dict | None:
        """Answer one request line on ``out``; returns the response (``None`` for a blank line)."""
        if not line.strip():
            return None
        rid = request_id(line)
        try:
            request = parse_request(line)
            rid = request.get("id")
            handler = self.ops.get(request["op"])
            if handler is None:
                raise RequestError(f'Unknown op "{request["op"]}"; known: {", ".join(sorted(self.ops))}.')
            if handler is op_hello:
                request = {**request, "_ops": list(self.ops)}
            self.session.progress = lambda done, total, message: self._write(
                out, progress_line(rid, done, total, message))
            response = success(rid, request["op"], handler(self.session, request))
        except DDICError as exc:
            log.info("request %r failed: %s", rid, exc)
            response = failure(rid, exc)
        except Exception as exc:  # noqa: BLE001 -- a bug: report it, keep serving
            output_error = as_output_error(exc)  # a folder it cannot write is the user's to fix
            if output_error is not None:
                log.info("request %r failed: %s", rid, output_error)
                response = failure(rid, output_error)
            else:
                log.error("unexpected error in request %r:\n%s", rid, traceback.format_exc())
                response = failure(rid, exc, unexpected=True)
        self._write(out, response)
        return response

    @staticmethod
    def _write(out: TextIO, message: dict) -> None:
        out.write(encode(message))
        out.flush()

    def serve(self, inp: TextIO, out: TextIO) -> int:
        """Loop until ``shutdown`` or end of input; returns the exit status (0).

        A line longer than :data:`MAX_REQUEST_CHARS` is answered with an error and skipped without being
        held in memory; a last line cut off by the end of input is answered like any other (as malformed
        JSON when it is incomplete); nothing after ``shutdown`` is read.
        """
        while not self.session.stop:
            line = inp.readline(MAX_REQUEST_CHARS + 1)
            if not line:
                break
            if len(line) > MAX_REQUEST_CHARS:
                while line and not line.endswith("\n"):  # skip the rest of the oversized line
                    line = inp.readline(MAX_REQUEST_CHARS)
                self._write(out, failure(None, RequestError(
                    f"Request line longer than {MAX_REQUEST_CHARS} characters; requests carry file paths, "
                    "never image data.")))
                continue
            self.handle_line(line, out)
        return 0


def _segment_ops() -> dict[str, Handler]:
    from .segment_ops import OPS

    return OPS


DEFAULT_OPS: dict[str, Handler] = {"hello": op_hello, "shutdown": op_shutdown, **_segment_ops()}
