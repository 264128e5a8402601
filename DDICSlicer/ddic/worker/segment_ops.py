"""Segmentation ops of the worker: ``load``, ``set_image``, ``predict``.

State lives in the :class:`~ddic.worker.server.Session`: the loaded segmenter and the current frame
(kept for its geometry, so masks are written back on the frame's own grid).
"""

from __future__ import annotations

import time
from pathlib import Path

from .protocol import RequestError, arg


def op_load(session, request: dict) -> dict:
    from ..segment.backend import make_segmenter

    start = time.perf_counter()
    segmenter = make_segmenter(backend=arg(request, "backend", str, "auto"),
                               checkpoint=arg(request, "checkpoint", str, None),
                               model_type=arg(request, "model_type", str, None),
                               device=arg(request, "device", str, "auto"))
    session.segmenter, session.frame = segmenter, None
    return {"backend": segmenter.backend, "description": segmenter.description,
            "message": segmenter.backend_message, "device": str(segmenter.device),
            "seconds": round(time.perf_counter() - start, 4)}


def _segmenter(session):
    if session.segmenter is None:
        raise RequestError('No segmentation backend is loaded: send {"op": "load", "backend": "auto"} first.')
    return session.segmenter


def op_set_image(session, request: dict) -> dict:
    from ..io.images import read_frame

    segmenter = _segmenter(session)
    frame = read_frame(Path(arg(request, "path", str)))
    start = time.perf_counter()
    info = segmenter.set_image(frame.pixels)
    session.frame = frame
    return {"path": str(frame.path), "shape": list(frame.shape), "spacing": list(frame.spacing),
            "embedding_seconds": round(info.seconds, 4), "computed": info.computed,
            "seconds": round(time.perf_counter() - start, 4), "image_key": info.key[:16]}


def _points(request: dict) -> list:
    points = arg(request, "points", list, [])
    labels = arg(request, "labels", list, None)
    if labels is not None and len(labels) != len(points):
        raise RequestError(f'"labels" has {len(labels)} entries but "points" has {len(points)}.')
    out = []
    for i, p in enumerate(points):
        if not isinstance(p, (list, tuple)) or len(p) not in (2, 3) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in p):
            raise RequestError(f"Point {i} must be [x, y] or [x, y, label] numbers, not {p!r}.")
        label = labels[i] if labels is not None else (p[2] if len(p) == 3 else 1)
        if label not in (0, 1):
            raise RequestError(f"Point {i} has label {label!r}; use 1 (positive) or 0 (negative).")
        out.append((p[0], p[1], int(label)))
    return out


def op_predict(session, request: dict) -> dict:
    from ..segment.masks import write_mask
    from ..segment.prompts import Prompts

    segmenter = _segmenter(session)
    if session.frame is None:
        raise RequestError('No image is set: send {"op": "set_image", "path": …} before "predict".')
    out = Path(arg(request, "out", str))
    box = arg(request, "box", list, None)
    if box is not None and (len(box) != 4 or not all(isinstance(v, (int, float)) for v in box)):
        raise RequestError(f'"box" must be [x0, y0, x1, y1] numbers, not {box!r}.')
    prompts = Prompts.from_labelled(_points(request), box)
    start = time.perf_counter()
    result = segmenter.predict(prompts, multimask=arg(request, "multimask", bool, True)).require_region()
    write_mask(result.mask, session.frame, out, arg(request, "value", int, None))
    return {"out": str(out), **result.summary(), "seconds": round(time.perf_counter() - start, 4)}


OPS = {"load": op_load, "set_image": op_set_image, "predict": op_predict}
