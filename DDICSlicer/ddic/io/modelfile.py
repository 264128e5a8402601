"""Model files, whatever the model: weights in ``NAME.safetensors`` with a JSON card ``NAME.json`` beside them.

This module holds what every kind of model file shares — the base card record (:class:`ModelCardBase`: the
network, image size, pixel spacing, normalisation, how it was trained, the weights' name, dtype and SHA-256,
format and version), finding a card from a folder / card / weights path, writing weights then card
atomically, and reading weights after checking their SHA-256 (never unpickled). Each kind keeps its own
card and loader beside its code: the diffusion models in :mod:`ddic.diffusion.modelfile`, the CycleGAN
generator in :mod:`ddic.cyclegan.model`. Every refusal says what is wrong and what to do.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .. import __version__
from ..errors import DDICModelError
from .atomic import atomic_path, write_text_atomic
from .intensity import Normalisation

DOMAINS = ("us", "mri")
DOMAIN_NAMES = {"us": "ultrasound", "mri": "MRI"}
CLINICAL_DISCLAIMER = "For research use only; not a medical device and not for clinical decisions."


@dataclass(kw_only=True)
class ModelCardBase:
    """The fields every model card has; a kind of model subclasses it with its own fields and class constants
    (:attr:`FORMAT`, :attr:`FORMAT_VERSION`, :attr:`REQUIRED`, :attr:`LABEL`)."""

    FORMAT: ClassVar[str] = ""
    FORMAT_VERSION: ClassVar[int] = 1
    REQUIRED: ClassVar[tuple[str, ...]] = ("network", "image_size", "pixel_spacing_mm", "normalisation",
                                           "weights_file", "weights_sha256")
    LABEL: ClassVar[str] = "Model card"

    network: dict
    image_size: int
    pixel_spacing_mm: float
    normalisation: dict  # how the (source) training data was mapped to [−1, 1]
    training: dict = field(default_factory=dict)
    description: str = ""
    intended_use: str = CLINICAL_DISCLAIMER
    created: str = ""
    package_version: str = __version__
    weights_file: str = ""
    weights_sha256: str = ""
    weights_dtype: str = "float32"  # how the tensors are stored; they are loaded into a float32 network
    format: str = ""
    format_version: int = 1
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.format = self.format or self.FORMAT
        self.format_version = self.format_version or self.FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False) + "\n"

    @classmethod
    def wrong_format(cls, found, where: Path) -> str:
        """The refusal for a file whose ``format`` is not this kind's (a subclass may add a hint)."""
        return f"{where} is not a {cls.LABEL.lower()} (its 'format' is {found!r}, not {cls.FORMAT!r})."

    @classmethod
    def from_dict(cls, data: dict, where: Path):
        if not isinstance(data, dict) or data.get("format") != cls.FORMAT:
            raise DDICModelError(cls.wrong_format(data.get("format") if isinstance(data, dict) else None, where))
        return card_from_fields(cls, data, where, cls.FORMAT_VERSION, cls.REQUIRED, cls.LABEL)


class LoadedFile:
    """What every loaded model file offers (a diffusion model, :mod:`ddic.diffusion.modelfile`; the CycleGAN
    generator, :mod:`ddic.cyclegan.model`); the dataclass that mixes it in has ``card``, ``card_path``,
    ``weights_path``."""

    card: Any
    card_path: Path
    weights_path: Path

    @property
    def normalisation(self) -> Normalisation:
        return Normalisation.from_dict(self.card.normalisation)

    @property
    def model_id(self) -> str:
        return f"{self.card_path.stem}@{self.card.weights_sha256[:12]}"


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def card_from_fields(cls, data: dict, where: Path, format_version: int, required: tuple[str, ...],
                     label: str):
    """Build the card dataclass ``cls`` from ``data`` whose ``format`` was checked: refuse a newer card
    version or missing ``required`` fields (``label`` names the card in errors), ignore unknown keys."""
    if int(data.get("format_version", 0)) > format_version:
        raise DDICModelError(
            f"{label} {where} uses format version {data.get('format_version')}, newer than this package "
            f"understands ({format_version}). Update DDICSlicer."
        )
    missing = [k for k in required if k not in data]
    if missing:
        raise DDICModelError(f"{label} {where} lacks the field(s) {', '.join(missing)}; it is incomplete.")
    known = set(cls.__dataclass_fields__)
    return cls(**{k: v for k, v in data.items() if k in known})


def find_card(path: str | os.PathLike, card_format: str, kind: str = "",
              writer: str = "`ddic train`", folder_hint: str = "") -> Path:
    """Accept a card (.json), its weights (.safetensors) or a folder holding exactly one card of
    ``card_format``. ``kind`` ("" for diffusion models, "CycleGAN") and ``writer`` (the command that writes
    such files) word the errors; ``folder_hint`` ends the one for a folder without a card."""
    label = f"{kind} model card" if kind else "model card"
    path = Path(path).expanduser()
    if path.is_dir():
        candidates = sorted(path.glob("*.json"))
        problems = {p.name: _card_problem(p, card_format) for p in candidates}
        cards = [p for p in candidates if problems[p.name] is None]
        if len(cards) == 1:
            return cards[0]
        if not cards:
            why = ("; ".join(f"{name}: {problem}" for name, problem in problems.items()) if problems
                   else "it holds no .json file")
            raise DDICModelError(
                f"No usable {kind or 'DDIC'} model card (*.json with format {card_format!r}) in the folder "
                f"{path} ({why})." + folder_hint
            )
        names = ", ".join(p.name for p in cards)
        raise DDICModelError(f"The folder {path} holds several {label}s ({names}); name the one to use.")
    if path.suffix == ".safetensors":
        path = path.with_suffix(".json")
    if not path.is_file():
        raise DDICModelError(
            f"{label[0].upper()}{label[1:]} not found: {path}. A model is a NAME.safetensors file with its "
            f"NAME.json card beside it, as written by {writer}."
        )
    return path


def _card_problem(path: Path, card_format: str) -> str | None:
    """``None`` when ``path`` is a card of ``card_format``, else what is wrong with it (for the error
    that lists why a folder holds no usable card)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    except ValueError as exc:
        return f"not valid JSON ({exc})"
    if not isinstance(data, dict):
        return f"not a model card (a JSON {type(data).__name__}, not an object)"
    found = data.get("format")
    if found != card_format:
        return f"its 'format' is {found!r}, not {card_format!r}" if found is not None else \
            f"no 'format' field (a card has \"format\": \"{card_format}\")"
    return None


def read_json_card(card_path: Path, label: str = "Model card") -> dict:
    """The parsed JSON of a card file; a damaged file is refused naming it (``label`` says what it is)."""
    try:
        return json.loads(card_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DDICModelError(f"{label} {card_path} is not valid JSON ({exc}); the file is damaged.") from exc


def write_weights_and_card(state: dict, card, weights_path: Path, metadata: dict[str, str]) -> Path:
    """Write ``state`` to ``weights_path`` (.safetensors), then ``card`` (any card dataclass with
    ``weights_file``, ``weights_sha256``, ``created`` and ``to_json``) with the weights' file name, SHA-256
    and date filled in, beside it as ``.json``; both atomically, weights first, so a card never points at
    missing weights. Returns the card's path."""
    from safetensors.torch import save_file

    if weights_path.suffix != ".safetensors":
        raise DDICModelError(f"Model weights must be saved as .safetensors, got {weights_path}.")
    with atomic_path(weights_path) as tmp:
        save_file(state, str(tmp), metadata=metadata)
        card.weights_sha256 = sha256_file(tmp)
    card.weights_file = weights_path.name
    card.created = card.created or _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    card_path = weights_path.with_suffix(".json")
    write_text_atomic(card_path, card.to_json())
    return card_path


def verified_weights(card_path: Path, weights_file: str, weights_sha256: str, remedy: str) -> tuple[Path, dict]:
    """The weights file named by a card and its tensors (floating point as float32), after checking that it
    exists and has the card's SHA-256; ``remedy`` ends the message for a changed file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights_path = card_path.parent / weights_file
    if not weights_path.is_file():
        raise DDICModelError(f"The weights {weights_path} named by {card_path.name} are missing.")
    digest = sha256_file(weights_path)
    if digest != weights_sha256:
        raise DDICModelError(
            f"{weights_path} is corrupt or was changed: its SHA-256 is {digest}, the card says "
            f"{weights_sha256}. {remedy}"
        )
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise DDICModelError(f"{weights_path} is not a readable safetensors file ({exc}).") from exc
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}  # float16 storage → float32
    return weights_path, state


def load_frozen(module, state: dict, weights_path: Path, what: str):
    """Load ``state`` strictly into ``module`` (the ``what`` its card describes), then eval mode, no grads."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise DDICModelError(
            f"The weights in {weights_path} do not match the {what} described by its card ({first})."
        ) from exc
    return module.eval().requires_grad_(False)


STORAGE_DTYPES = ("float32", "float16", "bfloat16")


def state_for_storage(module, dtype: str = "float32") -> dict:
    """``module``'s tensors on the CPU, floating point ones stored as ``dtype`` (``float16`` halves a file; a
    loader always builds a float32 network)."""
    import torch

    if dtype not in STORAGE_DTYPES:
        raise DDICModelError(f"Unknown weight storage type {dtype!r}; choose one of {', '.join(STORAGE_DTYPES)}.")
    storage = getattr(torch, dtype)
    return {k: (v.detach().to("cpu", storage) if v.is_floating_point() else v.detach().to("cpu")).contiguous()
            for k, v in module.state_dict().items()}
