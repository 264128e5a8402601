"""The diffusion model file: a per-domain UNet's weights (``NAME.safetensors``) and its card (``NAME.json``,
format ``ddic-model``), on the conventions of :mod:`ddic.io.modelfile`.

The card adds what a diffusion model is to the shared record: its domain (US or MRI), network preset, noise
schedule and parameterisation (:class:`ddic.diffusion.schedule.Schedule`). Loading checks all of it and the
weights' SHA-256 before any tensor is used, and refuses a wrong domain or size, a foreign schedule or a
corrupt file with a message that says what to do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..errors import DDICModelError
from ..io.intensity import Normalisation
from ..io.modelfile import (
    DOMAIN_NAMES,
    DOMAINS,
    LoadedFile,
    ModelCardBase,
    find_card,
    load_frozen,
    read_json_card,
    state_for_storage,
    verified_weights,
    write_weights_and_card,
)

CARD_FORMAT = "ddic-model"
CARD_FORMAT_VERSION = 1


@dataclass(kw_only=True)
class ModelCard(ModelCardBase):
    """Everything needed to rebuild, check and cite one per-domain diffusion model."""

    FORMAT: ClassVar[str] = CARD_FORMAT
    FORMAT_VERSION: ClassVar[int] = CARD_FORMAT_VERSION
    REQUIRED: ClassVar[tuple[str, ...]] = ("domain", "preset", "schedule") + ModelCardBase.REQUIRED
    LABEL: ClassVar[str] = "Model card"

    domain: str
    preset: str
    schedule: dict
    weights: str = "ema"

    @classmethod
    def wrong_format(cls, found, where: Path) -> str:
        return (f"{where} is not a DDIC model card (its 'format' is not {CARD_FORMAT!r}). Give the .json card "
                "written by `ddic train`, its .safetensors file, or their folder.")


@dataclass
class LoadedModel(LoadedFile):
    unet: Any  # diffusers.UNet2DModel, eval mode, weights frozen
    card: ModelCard
    card_path: Path
    weights_path: Path


def resolve_card_path(path: str | os.PathLike) -> Path:
    """Accept a card (.json), its weights (.safetensors) or a folder holding exactly one model card."""
    return find_card(path, CARD_FORMAT)


def save_model(unet, card: ModelCard, weights_path: str | os.PathLike, dtype: str = "float32") -> Path:
    """Write ``unet``'s weights and ``card`` (weights file name, SHA-256 and date filled in), atomically.

    ``dtype`` is the storage type of floating-point tensors: ``float16`` halves the file (the bundled demo
    models use it to stay small); loading always builds a float32 network. Returns the card's path. The
    weights are written first, so a card never points at missing weights.
    """
    weights_path = Path(weights_path)
    if weights_path.suffix != ".safetensors":  # before the domain check (the writer checks it too)
        raise DDICModelError(f"Model weights must be saved as .safetensors, got {weights_path}.")
    if card.domain not in DOMAINS:
        raise DDICModelError(f"Unknown domain {card.domain!r}; expected one of {DOMAINS}.")
    state = state_for_storage(unet, dtype)
    card.weights_dtype = dtype
    return write_weights_and_card(state, card, weights_path, {"format": CARD_FORMAT, "domain": card.domain})


def read_card(path: str | os.PathLike) -> tuple[ModelCard, Path]:
    card_path = resolve_card_path(path)
    return ModelCard.from_dict(read_json_card(card_path), card_path), card_path


def validate_card(card: ModelCard, card_path: Path, expected_domain: str | None = None,
                  expected_image_size: int | None = None) -> None:
    """Refuse a card that does not fit the requested use, with a message that says which model to use."""
    from .schedule import Schedule

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
    from .networks import build_unet

    card, card_path = read_card(path)
    validate_card(card, card_path, expected_domain, expected_image_size)
    weights_path, state = verified_weights(card_path, card.weights_file, card.weights_sha256,
                                           "Copy or download the model again.")
    unet = load_frozen(build_unet(card.network), state, weights_path, "network")
    return LoadedModel(unet=unet, card=card, card_path=card_path, weights_path=weights_path)
