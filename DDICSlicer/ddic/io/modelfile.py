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
    format: str = CARD_FORMAT
    format_version: int = CARD_FORMAT_VERSION
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict, where: Path) -> "ModelCard":
        if not isinstance(data, dict) or data.get("format") != CARD_FORMAT:
            raise DDICModelError(
                f"{where} is not a DDIC model card (its 'format' is not {CARD_FORMAT!r}). "
                "Give the .json card written by `ddic train`, its .safetensors file, or their folder."
            )
        if int(data.get("format_version", 0)) > CARD_FORMAT_VERSION:
            raise DDICModelError(
                f"{where} uses model-card version {data.get('format_version')}, newer than this package "
                f"understands ({CARD_FORMAT_VERSION}). Update DDICSlicer."
            )
        known = set(cls.__dataclass_fields__)
        missing = [k for k in ("domain", "preset", "network", "image_size", "pixel_spacing_mm", "schedule",
                               "normalisation", "weights_file", "weights_sha256") if k not in data]
        if missing:
            raise DDICModelError(f"Model card {where} lacks the field(s) {', '.join(missing)}; it is incomplete.")
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class LoadedModel:
    unet: Any  # diffusers.UNet2DModel, eval mode, weights frozen
    card: ModelCard
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


def resolve_card_path(path: str | os.PathLike) -> Path:
    """Accept a card (.json), its weights (.safetensors) or a folder holding exactly one model card."""
    path = Path(path).expanduser()
    if path.is_dir():
        cards = [p for p in sorted(path.glob("*.json")) if _looks_like_card(p)]
        if len(cards) == 1:
            return cards[0]
        if not cards:
            raise DDICModelError(f"No DDIC model card (*.json with format {CARD_FORMAT!r}) in the folder {path}.")
        names = ", ".join(p.name for p in cards)
        raise DDICModelError(f"The folder {path} holds several model cards ({names}); name the one to use.")
    if path.suffix == ".safetensors":
        path = path.with_suffix(".json")
    if not path.is_file():
        raise DDICModelError(
            f"Model card not found: {path}. A model is a NAME.safetensors file with its NAME.json card "
            "beside it, as written by `ddic train`."
        )
    return path


def _looks_like_card(path: Path) -> bool:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("format") == CARD_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def save_model(unet, card: ModelCard, weights_path: str | os.PathLike) -> Path:
    """Write ``unet``'s weights and ``card`` (weights file name, SHA-256 and date filled in), atomically.

    Returns the card's path. The weights are written first, so a card never points at missing weights.
    """
    from safetensors.torch import save_file

    weights_path = Path(weights_path)
    if weights_path.suffix != ".safetensors":
        raise DDICModelError(f"Model weights must be saved as .safetensors, got {weights_path}.")
    if card.domain not in DOMAINS:
        raise DDICModelError(f"Unknown domain {card.domain!r}; expected one of {DOMAINS}.")
    state = {k: v.detach().to("cpu").contiguous() for k, v in unet.state_dict().items()}
    with atomic_path(weights_path) as tmp:
        save_file(state, str(tmp), metadata={"format": CARD_FORMAT, "domain": card.domain})
        card.weights_sha256 = sha256_file(tmp)
    card.weights_file = weights_path.name
    card.created = card.created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    card_path = weights_path.with_suffix(".json")
    write_text_atomic(card_path, card.to_json())
    return card_path


def read_card(path: str | os.PathLike) -> tuple[ModelCard, Path]:
    card_path = resolve_card_path(path)
    try:
        data = json.loads(card_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DDICModelError(f"Model card {card_path} is not valid JSON ({exc}); the file is damaged.") from exc
    return ModelCard.from_dict(data, card_path), card_path


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
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from ..diffusion.networks import build_unet

    card, card_path = read_card(path)
    validate_card(card, card_path, expected_domain, expected_image_size)
    weights_path = card_path.parent / card.weights_file
    if not weights_path.is_file():
        raise DDICModelError(f"The weights {weights_path} named by {card_path.name} are missing.")
    digest = sha256_file(weights_path)
    if digest != card.weights_sha256:
        raise DDICModelError(
            f"{weights_path} is corrupt or was changed: its SHA-256 is {digest}, the card says "
            f"{card.weights_sha256}. Copy or download the model again."
        )
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise DDICModelError(f"{weights_path} is not a readable safetensors file ({exc}).") from exc
    unet = build_unet(card.network)
    try:
        unet.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise DDICModelError(
            f"The weights in {weights_path} do not match the network described by its card ({first})."
        ) from exc
    unet.eval().requires_grad_(False)
    return LoadedModel(unet=unet, card=card, card_path=card_path, weights_path=weights_path)
