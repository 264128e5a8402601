"""Segment Anything (SAM v1) behind the backend interface: safe loading, embedding cache, mask choice.

Loading never goes through ``segment_anything.build_sam``'s checkpoint argument, which unpickles the
file with a bare ``torch.load``: the model is built empty, the file is read with
``torch.load(..., weights_only=True)`` (tensors only, no code execution) and copied in with
``load_state_dict``. The architecture (vit_b / vit_l / vit_h) is read from the weights themselves, so
a wrong ``model_type`` is reported instead of failing with a page of missing keys.

SAM's coordinate convention is ours (:mod:`ddic.segment.prompts`): points (x = column, y = row) and
XYXY boxes in the original image's pixels; ``SamPredictor.predict`` maps them to the encoder's
1024-pixel frame with ``predictor.transform`` and returns masks at the original size.

MobileSAM (vit_t), the small CPU model of sam-metrics.md, is not listed: its TinyViT encoder lives in
the separate ``mobile_sam`` package and cannot be built by ``segment_anything``.
"""

from __future__ import annotations

import logging
import os
import pickle
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..errors import DDICInputError, DDICModelError
from .cleanup import clean_mask
from .imaging import content_key, to_rgb, to_uint8
from .prompts import Prompts
from .result import ImageInfo, SegmentationResult

log = logging.getLogger(__name__)

#: model type → width of the ViT encoder's patch embedding (how the type is recognised in a checkpoint)
SAM_MODEL_TYPES = {"vit_b": 768, "vit_l": 1024, "vit_h": 1280}
_PATCH_KEY = "image_encoder.patch_embed.proj.weight"
INSTALL_HINT = "Install the optional SAM support with `pip install 'ddicslicer[sam]'` (segment-anything, torchvision)."


def import_segment_anything():
    """The ``segment_anything`` package, or a :class:`DDICModelError` saying how to install it."""
    try:
        import segment_anything
    except ImportError as exc:  # also torchvision missing, which segment_anything imports at import time
        raise DDICModelError(f"SAM segmentation needs the segment-anything package ({exc}). {INSTALL_HINT} "
                             "Or use --backend classical, which needs no model.") from exc
    return segment_anything


def select_device(requested: str | None = "auto"):
    """``auto``/``None`` → CUDA when available, else CPU; an unavailable CUDA request is an error."""
    import torch

    if requested in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as exc:
        raise DDICInputError(f"Unknown device {requested!r}; use auto, cpu or cuda[:N].") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DDICInputError(f"Device {requested!r} was requested but PyTorch sees no CUDA GPU; use cpu.")
    return device


def read_state_dict(path: str | os.PathLike) -> dict:
    """A checkpoint's tensors, read with ``weights_only=True`` onto the CPU; wrapped dicts are unwrapped."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise DDICModelError(f"SAM checkpoint not found: {path}. Give the path of a .pth file or a model id "
                             "from the manifest (e.g. sam-vit-b).")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        raise DDICModelError(
            f"Cannot read {path} as SAM weights ({type(exc).__name__}: {str(exc).strip().splitlines()[0]}). "
            "Only plain state dicts are loaded (weights_only); the file may be truncated or not a SAM "
            "checkpoint: download it again.") from exc
    for wrapper in ("model", "state_dict"):
        if isinstance(state, dict) and _PATCH_KEY not in state and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or _PATCH_KEY not in state:
        raise DDICModelError(f"{path} holds no SAM image encoder ({_PATCH_KEY} missing): not a SAM v1 "
                             "checkpoint (SAM 2, MobileSAM and MedSAM variants need their own loaders).")
    return state


def infer_model_type(state: dict) -> str:
    width = int(state[_PATCH_KEY].shape[0])
    for name, dim in SAM_MODEL_TYPES.items():
        if dim == width:
            return name
    raise DDICModelError(f"Unrecognised SAM encoder width {width}; known: "
                         + ", ".join(f"{k} ({v})" for k, v in SAM_MODEL_TYPES.items()) + ".")


def load_sam_model(checkpoint: str | os.PathLike, model_type: str | None = None, device="auto"):
    """Build a SAM v1 model of ``model_type`` (read from the file when ``None``) and load its weights."""
    sa = import_segment_anything()
    state = read_state_dict(checkpoint)
    found = infer_model_type(state)
    if model_type in (None, "", "auto"):
        model_type = found
    elif model_type not in SAM_MODEL_TYPES:
        raise DDICInputError(f"Unknown SAM model type {model_type!r}; use one of {', '.join(SAM_MODEL_TYPES)}.")
    elif model_type != found:
        raise DDICModelError(f"{checkpoint} is a {found} checkpoint, not {model_type}: pass --model-type {found} "
                             "(or leave it out; it is read from the file).")
    model = sa.sam_model_registry[model_type](checkpoint=None)  # empty model; weights come next
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise DDICModelError(f"{checkpoint} does not fit the {model_type} architecture: "
                             f"{str(exc).splitlines()[0]}") from exc
    return model.to(select_device(device)).eval()


class SamSegmenter:
    """Promptable SAM segmentation of grayscale frames with one encoder pass per distinct image.

    ``predictor`` is a ``segment_anything.SamPredictor`` (or anything with its interface). Embeddings
    are cached by :func:`content_key` of the 8-bit image (``cache_size`` most recent images), so
    re-prompting — and switching back to an image seen before — never re-runs the encoder, which costs
    about a minute on a laptop CPU for ViT-B.

    Mask choice with ``multimask``: the candidate with the highest predicted IoU wins. Candidates within
    ``tie_tolerance`` of the best score are tied; a tie goes to the mask that agrees with the prompts
    (contains every positive point, no negative point), then to the smaller mask (SAM's three outputs
    are sub-part / part / whole, and the smaller one leaks less), then to the lower index. A candidate
    that is empty after clean-up (it missed the positive point) is only chosen if all are empty.
    """

    backend = "sam"

    def __init__(self, predictor, scaling: str = "auto", cache_size: int = 4, tie_tolerance: float = 1e-3,
                 description: str = "SAM"):
        self.predictor = predictor
        self.scaling = scaling
        self.cache_size = max(1, int(cache_size))
        self.tie_tolerance = float(tie_tolerance)
        self.description = description
        self.encoder_calls = 0
        self._cache: OrderedDict[str, tuple] = OrderedDict()
        self._current: str | None = None
        self._shape: tuple[int, int] | None = None

    @classmethod
    def from_checkpoint(cls, checkpoint, model_type: str | None = None, device="auto", **kwargs) -> SamSegmenter:
        sa = import_segment_anything()
        model = load_sam_model(checkpoint, model_type, device)
        kind = infer_model_type({_PATCH_KEY: model.image_encoder.patch_embed.proj.weight})
        return cls(sa.SamPredictor(model), description=f"SAM {kind} ({Path(checkpoint).name}) on {model.device}",
                   **kwargs)

    @property
    def device(self) -> str:
        return str(self.predictor.device)

    def set_image(self, pixels) -> ImageInfo:
        """Embed ``pixels`` (2D, any dtype; see :mod:`ddic.segment.imaging`) unless already cached."""
        gray8 = to_uint8(pixels, self.scaling)
        key = content_key(gray8)
        start = time.perf_counter()
        if key == self._current:
            return ImageInfo(key, gray8.shape, False, 0.0)
        if key in self._cache:
            self._restore(key)
            return ImageInfo(key, gray8.shape, False, time.perf_counter() - start)
        self._current = None  # set_image resets the predictor first: a failure leaves no stale image
        self.predictor.set_image(to_rgb(gray8))
        self.encoder_calls += 1
        self._cache[key] = (self.predictor.features, tuple(self.predictor.original_size),
                            tuple(self.predictor.input_size))
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        self._current, self._shape = key, gray8.shape
        seconds = time.perf_counter() - start
        log.info("SAM embedding of a %dx%d image in %.2f s", gray8.shape[1], gray8.shape[0], seconds)
        return ImageInfo(key, gray8.shape, True, seconds)

    def _restore(self, key: str) -> None:
        features, original_size, input_size = self._cache[key]
        self._cache.move_to_end(key)
        p = self.predictor
        p.reset_image()
        p.features, p.original_size, p.input_size, p.is_image_set = features, original_size, input_size, True
        self._current, self._shape = key, tuple(original_size)

    def predict(self, prompts: Prompts, multimask: bool = True) -> SegmentationResult:
        if self._current is None:
            raise DDICInputError("No image is set: call set_image(frame) before predict(prompts).")
        prompts = prompts.validated(self._shape)
        has_points = bool(prompts.positive or prompts.negative)
        masks, scores, _ = self.predictor.predict(
            point_coords=prompts.point_coords if has_points else None,
            point_labels=prompts.point_labels if has_points else None,
            box=None if prompts.box is None else np.asarray(prompts.box, dtype=np.float64),
            multimask_output=multimask)
        masks = np.asarray(masks, dtype=bool)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        cleaned = [clean_mask(m, prompts) for m in masks]
        chosen, reason = choose_mask(cleaned, scores, prompts, self.tie_tolerance)
        return SegmentationResult(mask=cleaned[chosen], score=float(scores[chosen]), backend=self.backend,
                                  scores=tuple(float(s) for s in scores), chosen=chosen, reason=reason,
                                  details={"multimask": bool(multimask), "raw_area_px": int(masks[chosen].sum()),
                                           "image_key": self._current[:16]})


def _agrees(mask: np.ndarray, prompts: Prompts) -> bool:
    return (all(mask[y, x] for x, y in prompts.pixel_points("positive"))
            and not any(mask[y, x] for x, y in prompts.pixel_points("negative")))


def choose_mask(masks: list[np.ndarray], scores: np.ndarray, prompts: Prompts, tie_tolerance: float = 1e-3
                ) -> tuple[int, str]:
    """Index of the mask to keep and the reason, by the rules of :class:`SamSegmenter`."""
    if len(masks) == 1:
        return 0, "single mask requested (multimask off)"
    candidates = [i for i, m in enumerate(masks) if m.any()] or list(range(len(masks)))
    dropped = len(masks) - len(candidates)
    best = max(scores[i] for i in candidates)
    tied = [i for i in candidates if scores[i] >= best - tie_tolerance]
    if len(tied) == 1:
        reason = f"highest predicted IoU ({best:.3f})"
    else:
        tied.sort(key=lambda i: (not _agrees(masks[i], prompts), int(masks[i].sum()), i))
        agrees = "agrees" if _agrees(masks[tied[0]], prompts) else "none agrees"
        reason = (f"tie within {tie_tolerance:g} of the highest predicted IoU ({best:.3f}) between masks "
                  f"{sorted(tied)}; kept mask {tied[0]}: {agrees} with the prompts, smallest "
                  f"({int(masks[tied[0]].sum())} px)")
    if dropped:
        reason += f"; {dropped} candidate(s) ignored as empty after clean-up"
    return tied[0], reason
