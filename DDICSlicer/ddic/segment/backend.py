"""Choosing a segmentation backend: SAM when weights are at hand, else the offline classical one.

``auto`` never downloads on its own: it uses SAM only when a checkpoint is given (a local file, or a
model id that :func:`ddic.models.resolve_model` turns into a verified local file) or named by the
``DDIC_SAM_CHECKPOINT`` environment variable; otherwise it says so and uses the classical backend,
which needs no weights and no GPU.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..errors import DDICInputError, DDICModelError
from .classical import ClassicalOptions, ClassicalSegmenter
from .sam import SamSegmenter

log = logging.getLogger(__name__)

BACKENDS = ("auto", "sam", "classical")
ENV_CHECKPOINT = "DDIC_SAM_CHECKPOINT"
SAM_PACKAGE = "segment-anything"  # the manifest's package name of the models this backend loads

Segmenter = SamSegmenter | ClassicalSegmenter


def resolve_checkpoint(spec: str) -> tuple[Path, str | None]:
    """(local checkpoint path, architecture from the manifest or ``None``) for a file path or model id.

    :func:`ddic.models.resolve_model` does the work (it never downloads; a known file is hash-checked).
    An id of another SAM family (SAM 2, MobileSAM) is refused here with the ids that do work.
    """
    from ..models import load_manifest, resolve_model

    try:
        manifest = load_manifest()
    except DDICModelError:
        if Path(spec).expanduser().is_file():  # a plain file still works without a readable manifest
            return Path(spec).expanduser(), None
        raise
    if spec in manifest:
        entry = manifest.get(spec)
        if entry.kind != "sam" or entry.package != SAM_PACKAGE:
            usable = ", ".join(e.id for e in manifest if e.kind == "sam" and e.package == SAM_PACKAGE)
            raise DDICModelError(f"Model {spec!r} is not a Segment Anything v1 checkpoint "
                                 f"({entry.package or entry.kind}); the SAM backend loads: {usable}.")
        return Path(resolve_model(spec, manifest=manifest)), entry.arch
    return Path(resolve_model(spec, manifest=manifest)), None


def make_segmenter(backend: str = "auto", checkpoint: str | None = None, model_type: str | None = None,
                   device: str = "auto", classical_options: ClassicalOptions | None = None) -> Segmenter:
    """A ready segmenter; its ``backend_message`` says which backend was chosen and why."""
    if backend not in BACKENDS:
        raise DDICInputError(f"Unknown segmentation backend {backend!r}; use one of {', '.join(BACKENDS)}.")
    spec = checkpoint or (os.environ.get(ENV_CHECKPOINT) if backend in ("auto", "sam") else None)
    if backend == "sam" or (backend == "auto" and spec):
        if not spec:
            raise DDICInputError("The SAM backend needs weights: give --checkpoint PATH_OR_ID (e.g. sam-vit-b) "
                                 f"or set {ENV_CHECKPOINT}; or use --backend classical.")
        path, arch = resolve_checkpoint(spec)
        segmenter = SamSegmenter.from_checkpoint(path, model_type or arch, device)
        source = "given" if checkpoint else f"from {ENV_CHECKPOINT}"
        segmenter.backend_message = f"backend: {segmenter.description} (checkpoint {source})"
    else:
        segmenter = ClassicalSegmenter(classical_options)
        why = "requested" if backend == "classical" else "no SAM checkpoint given (auto)"
        segmenter.backend_message = f"backend: {segmenter.description} — {why}"
    log.info(segmenter.backend_message)
    return segmenter
