"""The CycleGAN networks (Zhu et al. 2017) as the reference implementation defines them by default.

* Generator: Johnson et al.'s ResNet — 7×7 conv, two stride-2 3×3 convs, ``blocks`` residual blocks,
  two stride-2 3×3 transposed convs, 7×7 conv, tanh; instance norm without affine parameters (so every
  conv before a norm keeps its bias, as the reference does), ReLU, reflection padding. The reference
  uses 9 blocks at 256 px and 6 blocks at 128 px and below (the paper's appendix); ``blocks=None``
  follows that rule.
* Discriminator: the 70×70 PatchGAN — three stride-2 4×4 convs, a stride-1 4×4 conv and a stride-1 4×4
  output conv (LeakyReLU 0.2, instance norm on all but the first layer). Every output value judges one
  70×70 input patch; a 128 px image gives a 14×14 map.
* Initialisation: weights of every (transposed) conv ~ N(0, 0.02), biases 0.

Networks are described by a small JSON-able dict (``generator_config`` / ``discriminator_config``),
stored in model cards and checkpoints, so a saved model can be rebuilt without guessing.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import DDICInputError, DDICModelError
from .reference import (
    CHANNELS,
    D_LAYERS,
    DOWNSAMPLINGS,
    FILTERS,
    INIT_STD,
    check_image_size,
    residual_blocks,
)

GENERATOR_KIND = "resnet_generator"
DISCRIMINATOR_KIND = "patchgan_discriminator"


def generator_config(image_size: int, filters: int = FILTERS, blocks: int | None = None,
                     channels: int = CHANNELS) -> dict:
    check_image_size(image_size)
    blocks = residual_blocks(image_size) if blocks is None else int(blocks)
    if blocks < 0 or filters < 1:
        raise DDICInputError(f"Generator needs filters ≥ 1 and blocks ≥ 0, got {filters} and {blocks}.")
    return {"kind": GENERATOR_KIND, "channels": channels, "filters": int(filters), "blocks": blocks,
            "image_size": int(image_size), "norm": "instance", "padding": "reflect",
            "upsampling": "transposed_conv"}


def discriminator_config(image_size: int, filters: int = FILTERS, layers: int = D_LAYERS,
                         channels: int = CHANNELS) -> dict:
    check_image_size(image_size)
    if layers < 1 or filters < 1:
        raise DDICInputError(f"Discriminator needs filters ≥ 1 and layers ≥ 1, got {filters} and {layers}.")
    return {"kind": DISCRIMINATOR_KIND, "channels": channels, "filters": int(filters), "layers": int(layers),
            "image_size": int(image_size), "norm": "instance"}


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResidualBlock(nn.Module):
    """x + (pad, conv3, norm, ReLU, pad, conv3, norm)(x)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), _norm(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), _norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """Image → image of the same size; output in [−1, 1]."""

    def __init__(self, channels: int = CHANNELS, filters: int = FILTERS, blocks: int = 6) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(channels, filters, 7), _norm(filters),
                                   nn.ReLU(True)]
        width = filters
        for _ in range(DOWNSAMPLINGS):
            layers += [nn.Conv2d(width, width * 2, 3, stride=2, padding=1), _norm(width * 2), nn.ReLU(True)]
            width *= 2
        layers += [ResidualBlock(width) for _ in range(blocks)]
        for _ in range(DOWNSAMPLINGS):
            layers += [nn.ConvTranspose2d(width, width // 2, 3, stride=2, padding=1, output_padding=1),
                       _norm(width // 2), nn.ReLU(True)]
            width //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PatchDiscriminator(nn.Module):
    """Image → map of real/fake scores, one per 70×70 patch (with 3 layers); LSGAN, so no sigmoid."""

    def __init__(self, channels: int = CHANNELS, filters: int = FILTERS,
                 layers: int = D_LAYERS) -> None:
        super().__init__()
        seq: list[nn.Module] = [nn.Conv2d(channels, filters, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        width = filters
        for n in range(1, layers + 1):
            out = filters * min(2 ** n, 8)
            stride = 2 if n < layers else 1
            seq += [nn.Conv2d(width, out, 4, stride=stride, padding=1), _norm(out), nn.LeakyReLU(0.2, True)]
            width = out
        seq += [nn.Conv2d(width, 1, 4, stride=1, padding=1)]
        self.model = nn.Sequential(*seq)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def patch_output_size(image_size: int, layers: int = D_LAYERS) -> int:
    """Side of the discriminator's output map: ``layers`` 4×4/2 convs then two 4×4/1 convs (padding 1)."""
    size = image_size
    for _ in range(layers):
        size = (size + 2 - 4) // 2 + 1
    for _ in range(2):
        size = size + 2 - 4 + 1
    return size


def receptive_field(layers: int = D_LAYERS) -> int:
    """Input patch seen by one discriminator output (70 for 3 layers), from the conv stack backwards."""
    field = 1
    for stride in reversed([2] * layers + [1, 1]):  # strides in input-to-output order, walked backwards
        field = (field - 1) * stride + 4
    return field


def init_weights(module: nn.Module, std: float = INIT_STD) -> nn.Module:
    """The reference's ``normal`` init: conv / transposed-conv weights ~ N(0, std), biases 0."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(layer.weight, 0.0, std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module


def _check_config(config: dict, kind: str, keys: tuple[str, ...]) -> None:
    if not isinstance(config, dict) or config.get("kind") != kind:
        raise DDICModelError(f"Expected a {kind} description, got {config!r}.")
    missing = [k for k in keys if k not in config]
    if missing:
        raise DDICModelError(f"The {kind} description lacks {', '.join(missing)}.")


def build_generator(config: dict) -> ResnetGenerator:
    """The (uninitialised) generator described by ``config``; call :func:`init_weights` to train it."""
    _check_config(config, GENERATOR_KIND, ("channels", "filters", "blocks"))
    return ResnetGenerator(int(config["channels"]), int(config["filters"]), int(config["blocks"]))


def build_discriminator(config: dict) -> PatchDiscriminator:
    _check_config(config, DISCRIMINATOR_KIND, ("channels", "filters", "layers"))
    return PatchDiscriminator(int(config["channels"]), int(config["filters"]), int(config["layers"]))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
