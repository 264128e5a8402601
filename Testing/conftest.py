"""Shared fixtures. Tests run on the CPU with one torch thread (two pytest workers would otherwise make
torch's two threads fight over two cores) and never touch the network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

from ddic.diffusion.networks import build_unet, unet_config  # noqa: E402
from ddic.diffusion.schedule import Schedule  # noqa: E402
from ddic.geometry.canonical import spacing_for_size  # noqa: E402
from ddic.diffusion.modelfile import ModelCard, save_model  # noqa: E402

TEST_SIZE = 32  # the smallest size the tiny preset allows; keeps network tests at seconds


@pytest.fixture(scope="session")
def schedule() -> Schedule:
    return Schedule()


def make_card(domain: str, size: int = TEST_SIZE, preset: str = "tiny") -> ModelCard:
    return ModelCard(domain=domain, preset=preset, network=unet_config(preset, size), image_size=size,
                     pixel_spacing_mm=spacing_for_size(size), schedule=Schedule().to_dict(),
                     normalisation={"kind": "uint8"},
                     training={"note": "random weights, for tests"}, description="test model")


def save_random_model(folder, domain: str, seed: int, size: int = TEST_SIZE):
    torch.manual_seed(seed)
    unet = build_unet(unet_config("tiny", size))
    return save_model(unet, make_card(domain, size), folder / f"{domain}.safetensors")


@pytest.fixture(scope="session")
def random_models(tmp_path_factory):
    """A (US, MRI) pair of tiny untrained models at 32 px, saved with cards; returns the card paths."""
    folder = tmp_path_factory.mktemp("models")
    return save_random_model(folder, "us", 1), save_random_model(folder, "mri", 2)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
