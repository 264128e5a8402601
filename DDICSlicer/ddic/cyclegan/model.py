"""The CycleGAN baseline's inference file: the US → MRI generator as ``NAME.safetensors`` + ``NAME.json``.

It follows the conventions of :mod:`ddic.io.modelfile` and shares its base card record (weights never unpickled, the card records the
weights' SHA-256 and is written after them, every check before any tensor is used, refusals that say
what to do) with a card of its own kind, ``ddic-cyclegan-model``: a diffusion card needs a noise
schedule and one domain, a translator has neither but has a direction. Its distinct ``format`` also
means that a diffusion loader given a CycleGAN file (or the reverse) refuses it clearly.

The card records the normalisation of the US training data, so translation normalises frames exactly
as the generator saw them in training (as the diffusion models' cards do).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..errors import DDICModelError
from ..io.intensity import Normalisation
from ..io.modelfile import (
    DOMAIN_NAMES,
    LoadedFile,
    ModelCardBase,
    find_card,
    load_frozen,
    read_json_card,
    verified_weights,
    write_weights_and_card,
)
from .networks import GENERATOR_KIND, build_generator

CARD_FORMAT = "ddic-cyclegan-model"
CARD_FORMAT_VERSION = 1
SOURCE_DOMAIN, TARGET_DOMAIN = "us", "mri"


@dataclass(kw_only=True)
class CycleGANCard(ModelCardBase):
    """What a saved generator is (direction, network, size, normalisation) and how it was trained; the shared
    fields (network, size, spacing, normalisation of the US training data, training, weights…) are
    :class:`ddic.io.modelfile.ModelCardBase`'s."""

    FORMAT: ClassVar[str] = CARD_FORMAT
    FORMAT_VERSION: ClassVar[int] = CARD_FORMAT_VERSION
    REQUIRED: ClassVar[tuple[str, ...]] = ("source_domain", "target_domain") + ModelCardBase.REQUIRED
    LABEL: ClassVar[str] = "CycleGAN card"

    target_normalisation: dict = field(default_factory=dict)  # of the MRI training data (for reference)
    source_domain: str = SOURCE_DOMAIN
    target_domain: str = TARGET_DOMAIN
    method: str = "cyclegan"

    @classmethod
    def wrong_format(cls, found, where: Path) -> str:
        hint = (" It is a diffusion model card: use it with --us-model / --mri-model and --method ddic or ddib."
                if found == "ddic-model" else "")
        return (f"{where} is not a CycleGAN model card (its 'format' is {found!r}, not {CARD_FORMAT!r}).{hint} "
                "Give the folder written by `ddic train-cyclegan`, its generator .json or .safetensors.")


@dataclass
class LoadedCycleGAN(LoadedFile):
    """A verified generator, eval mode, weights frozen, on the CPU."""

    generator: Any  # ddic.cyclegan.networks.ResnetGenerator
    card: CycleGANCard
    card_path: Path
    weights_path: Path

    @property
    def image_size(self) -> int:
        return int(self.card.image_size)


def resolve_card_path(path: str | os.PathLike) -> Path:
    """Accept a card (.json), its weights (.safetensors) or a folder holding exactly one CycleGAN card."""
    return find_card(path, CARD_FORMAT, kind="CycleGAN", writer="`ddic train-cyclegan`",
                     folder_hint=" Give the --out folder of `ddic train-cyclegan` (it is written at the first "
                                 "checkpoint).")


def save_generator(generator, card: CycleGANCard, weights_path: str | os.PathLike) -> Path:
    """Write the weights, then the card with their file name, SHA-256 and date; both atomically."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in generator.state_dict().items()}
    return write_weights_and_card(state, card, Path(weights_path), {
        "format": CARD_FORMAT, "direction": f"{card.source_domain}->{card.target_domain}"})


def read_card(path: str | os.PathLike) -> tuple[CycleGANCard, Path]:
    card_path = resolve_card_path(path)
    return CycleGANCard.from_dict(read_json_card(card_path, "CycleGAN card"), card_path), card_path


def validate_card(card: CycleGANCard, card_path: Path, expected_image_size: int | None = None) -> None:
    """Refuse a card that does not describe a US → MRI generator of the expected size."""
    if (card.source_domain, card.target_domain) != (SOURCE_DOMAIN, TARGET_DOMAIN):
        names = [DOMAIN_NAMES.get(d, repr(d)) for d in (card.source_domain, card.target_domain)]
        raise DDICModelError(
            f"{card_path.name} translates {names[0]} → {names[1]}, but translation needs an ultrasound → MRI "
            "generator. Use the generator_us2mri file that `ddic train-cyclegan` writes."
        )
    if not isinstance(card.network, dict) or card.network.get("kind") != GENERATOR_KIND:
        raise DDICModelError(f"CycleGAN card {card_path} does not describe a {GENERATOR_KIND}.")
    if int(card.network.get("image_size", card.image_size)) != int(card.image_size):
        raise DDICModelError(f"CycleGAN card {card_path} is inconsistent: network size differs from image_size.")
    if expected_image_size is not None and int(card.image_size) != int(expected_image_size):
        raise DDICModelError(
            f"{card_path.name} works on {card.image_size}×{card.image_size} images, but "
            f"{expected_image_size}×{expected_image_size} is needed here."
        )
    Normalisation.from_dict(card.normalisation)


def load_generator(path: str | os.PathLike, expected_image_size: int | None = None) -> LoadedCycleGAN:
    """Load the US → MRI generator after checking its card and the SHA-256 of its weights."""
    card, card_path = read_card(path)
    validate_card(card, card_path, expected_image_size)
    weights_path, state = verified_weights(card_path, card.weights_file, card.weights_sha256,
                                           "Copy the model again or retrain it.")
    generator = load_frozen(build_generator(card.network), state, weights_path, "generator")
    return LoadedCycleGAN(generator=generator, card=card, card_path=card_path, weights_path=weights_path)
