"""Model files: weights in ``NAME.safetensors`` with a JSON model card ``NAME.json`` beside them.

The card says what the model is (domain, network, image size, pixel spacing, schedule, normalisation),
how it was made (training data, steps, hardware, time, command, package version) and the SHA-256 of the
weights. Loading checks all of it before any tensor is used and fails with a message that says what is
wrong and what to do: a wrong domain or size, a foreign schedule and a corrupt file are all refused.
Weights are never unpickled.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import DDICModelError
from .atomic import atomic_path, write_text_atomic
from .intensity import Normalisation

CARD_FORMAT = "ddic-model"
CARD_FORMAT_VERSION = 1
DOMAINS = ("us", "mri")
DOMAIN_NAMES = {"us": "ultrasound", "mri": "MRI"}
CLINICAL_DISCLAIMER = "For research use only; not a medical device and not for clinical decisions."
_REQUIRED = ("domain", "preset", "network", "image_size", "pixel_spacing_mm", "schedule", "normalisation",
             "weights_file", "weights_sha256")


@dataclass
class ModelCard:
    """Everything needed to rebuild, check and cite one per-domain diffusion model."""

    domain: str
    preset: str
    network: dict
    image_size: int
    pixel_spacing_mm: float
    schedule: dict
    normalisation: dict
    training: dict = field(default_factory=dict)
    description: str = ""
    intended_use: str = CLINICAL_DISCLAIMER
    created: str = ""
    package_version: str = __version__
    weights_file: str = ""
    weights_sha256: str = ""
    weights: str = "ema"
    weights_dtype: str = "float32"  # how the tensors are stored; they are loaded into a float32 network
    format: str = CARD_FORMAT
    format_version: int = CARD_FORMAT_VERSION
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict, where: Path) -> ModelCard:
        if not isinstance(data, dict) or data.get("format") != CARD_FORMAT:
            raise DDICModelError(
                f"{where} is not a DDIC model card (its 'format' is not {CARD_FORMAT!r}). "
                "Give the .json card written by `ddic train`, its .safetensors file, or their folder."
            )
        return card_from_fields(cls, data, where, CARD_FORMAT_VERSION, _REQUIRED, "Model card")


class LoadedFile:
    """What every loaded model file offers (a diffusion model here, the CycleGAN generator in
    :mod:`ddic.cyclegan.model`); the dataclass that mixes it in has ``card``, ``card_path``, ``weights_path``."""

    card: Any
    card_path: Path
    weights_path: Path

    @property
    def normalisation(self) -> Normalisation:
        return Normalisation.from_dict(self.card.normalisation)

    @property
    def model_id(self) -> str:
        return f"{self.card_path.stem}@{self.card.weights_sha256[:12]}"


@dataclass
class LoadedModel(LoadedFile):
    unet: Any  # diffusers.UNet2DModel, eval mode, weights frozen
    card: ModelCard
    card_path: Path
    weights_path: Path


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


def find_card(path: str | os.PathLike, card_format: str = CARD_FORMAT, kind: str = "",
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


def resolve_card_path(path: str | os.PathLike) -> Path:
    """Accept a card (.json), its weights (.safetensors) or a folder holding exactly one model card."""
    return find_card(path)


def _card_problem(path: Path, card_format: str = CARD_FORMAT) -> str | None:
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


def save_model(unet, card: ModelCard, weights_path: str | os.PathLike, dtype: str = "float32") -> Path:
    """Write ``unet``'s weights and ``card`` (weights file name, SHA-256 and date filled in), atomically.

    ``dtype`` is the storage type of floating-point tensors: ``float16`` halves the file (the bundled demo
    models use it to stay small); loading always builds a float32 network. Returns the card's path. The
    weights are written first, so a card never points at missing weights.
    """
    import torch

    if dtype not in STORAGE_DTYPES:
        raise DDICModelError(f"Unknown weight storage type {dtype!r}; choose one of {', '.join(STORAGE_DTYPES)}.")

    weights_path = Path(weights_path)
    if weights_path.suffix != ".safetensors":  # before the domain check (the writer checks it too)
        raise DDICModelError(f"Model weights must be saved as .safetensors, got {weights_path}.")
    if card.domain not in DOMAINS:
        raise DDICModelError(f"Unknown domain {card.domain!r}; expected one of {DOMAINS}.")
    storage = getattr(torch, dtype)
    state = {k: (v.detach().to("cpu", storage) if v.is_floating_point() else v.detach().to("cpu")).contiguous()
             for k, v in unet.state_dict().items()}
    card.weights_dtype = dtype
    return write_weights_and_card(state, card, weights_path, {"format": CARD_FORMAT, "domain": card.domain})


def read_card(path: str | os.PathLike) -> tuple[ModelCard, Path]:
    card_path = resolve_card_path(path)
    return ModelCard.from_dict(read_json_card(card_path), card_path), card_path


def validate_card(card: ModelCard, card_path: Path, expected_domain: str | None = None,
                  expected_image_size: int | None = None) -> None:
    """Refuse a card that does not fit the requested use, with a message that says which model to use."""
    from ..diffusion.schedule import Schedule

    if card.domain not in DOMAINS:
        raise DDICModelError(f"Model card {card_path} names an unknown domain {card.domain!r}.")
    if expected_domain is not None and card.domain != expected_domain:
        raise DDICModelError(
            f"{card_path.name} is an {DOMAIN_NAMES[card.domain]} model, but an {DOMAIN_NAMES[expected_domain]} "
            f"model is needed here. Check that the US and MRI models are not swapped."
        )
    if expected_image_size is not None and int(card.image_size) != int(expected_image_size):
        raise DDICModelError(
            f"{card_path.name} works on {card.image_size}×{card.image_size} images, but "
            f"{expected_image_size}×{expected_image_size} is needed (both models of a translation must have "
            "the same image size)."
        )
    if int(card.network.get("sample_size", card.image_size)) != int(card.image_size):
        raise DDICModelError(f"Model card {card_path} is inconsistent: network size differs from image_size.")
    Schedule.from_dict(card.schedule)  # raises DDICModelError for a foreign schedule
    Normalisation.from_dict(card.normalisation)


def load_model(path: str | os.PathLike, expected_domain: str | None = None,
               expected_image_size: int | None = None) -> LoadedModel:
    """Load a model after checking its card and the SHA-256 of its weights."""
    from ..diffusion.networks import build_unet

    card, card_path = read_card(path)
    validate_card(card, card_path, expected_domain, expected_image_size)
    weights_path, state = verified_weights(card_path, card.weights_file, card.weights_sha256,
                                           "Copy or download the model again.")
    unet = load_frozen(build_unet(card.network), state, weights_path, "network")
    return LoadedModel(unet=unet, card=card, card_path=card_path, weights_path=weights_path)
