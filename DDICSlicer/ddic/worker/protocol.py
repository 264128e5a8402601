"""The wire format of the worker: JSON lines in, JSON lines out.

Request: ``{"id": <any JSON value>, "op": "<name>", ...arguments}``.
Response (exactly one per request, same ``id``):

* success — ``{"id": …, "ok": true, "op": "<name>", "result": {…}}``;
* failure — ``{"id": …, "ok": false, "error": "<message for the user>", "type": "<error class>"}``.
  ``type`` is ``RequestError`` for a malformed line, unknown op or bad argument, the engine's error
  class (``DDICInputError``, ``DDICModelError``) for expected failures, and the Python exception's
  class name for a bug (then ``"unexpected": true`` and the traceback goes to stderr).

A long op may write progress lines before its response: ``{"id": …, "progress": {"done", "total",
"message"}}`` (no ``ok`` key, so a client can tell them apart).
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..errors import DDICInputError

PROTOCOL_VERSION = 1
_MISSING = object()


class RequestError(DDICInputError):
    """A request that cannot be served as written (not JSON, no op, unknown op, bad argument)."""


def parse_request(line: str) -> dict:
    try:
        request = json.loads(line)
    except json.JSONDecodeError as exc:
        raise RequestError(f"Malformed JSON request ({exc.msg} at column {exc.colno}); send one JSON object "
                           "per line.") from exc
    if not isinstance(request, dict):
        raise RequestError(f"A request must be a JSON object, not {type(request).__name__}.")
    if not isinstance(request.get("op"), str):
        raise RequestError('A request needs an "op" string, e.g. {"id": 1, "op": "hello"}.')
    return request


def request_id(line_or_request) -> Any:
    """The ``id`` of a request, recovered from a dict or (best effort) from a raw line; else ``None``."""
    if isinstance(line_or_request, dict):
        return line_or_request.get("id")
    try:
        value = json.loads(line_or_request)
    except (json.JSONDecodeError, TypeError):
        return None
    return value.get("id") if isinstance(value, dict) else None


def arg(request: dict, name: str, kind=None, default=_MISSING):
    """Argument ``name`` of ``request``, type-checked; a :class:`RequestError` names what is wrong."""
    if name not in request or request[name] is None:
        if default is _MISSING:
            raise RequestError(f'Op "{request.get("op")}" needs the argument "{name}".')
        return default
    value = request[name]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is not None and (not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise RequestError(f'Argument "{name}" of op "{request.get("op")}" must be {expected}, '
                           f"not {type(value).__name__} {value!r}.")
    return value


def success(rid, op: str, result: dict | None) -> dict:
    return {"id": rid, "ok": True, "op": op, "result": result or {}}


def failure(rid, exc: BaseException, unexpected: bool = False) -> dict:
    message = str(exc) or type(exc).__name__
    response = {"id": rid, "ok": False, "error": message, "type": type(exc).__name__}
    if unexpected:
        response["unexpected"] = True
        response["error"] = f"Internal error ({type(exc).__name__}: {message}); see the worker log."
    return response


def progress_line(rid, done: int, total: int, message: str) -> dict:
    return {"id": rid, "progress": {"done": int(done), "total": int(total), "message": str(message)}}


def encode(message: dict) -> str:
    """One line of JSON (non-finite floats become null: strict JSON readers reject NaN)."""
    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(message), default=str, allow_nan=False) + "\n"
