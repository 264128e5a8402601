"""The ε-prediction networks: ``diffusers.UNet2DModel`` in three named sizes.

``paper`` is the guided-diffusion 128 px UNet that DDIB (and so DDIC) used: 128 channels, multipliers
(1, 1, 2, 3, 4), two residual blocks per level, attention at 16×16 and 8×8, scale-shift norm (~95 M
parameters, ~132 GFLOP per 128² forward). ``small`` (~20 M) is the practical GPU default when training
time is short; ``tiny`` (< 5 M) is for CPU use and tests; ``slim`` (~2.8 M: 16–128 channels, one residual
block per level, attention at 8×8 only) is the bundled 64-px demo models' network, chosen for CPU speed
per quality (BENCHMARKS.md: ≈ 3× cheaper per training step and 2–2.5× per translation step than ``tiny``).
Attention is placed by feature-map resolution, so a preset keeps its meaning at 64 and 128 px.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import DDICInputError, DDICModelError

SUPPORTED_IMAGE_SIZES = (64, 128)
"""Image sizes the CLI offers (the canonical 128 px, and 64 px for CPU training)."""


@dataclass(frozen=True)
class NetworkPreset:
    """The few numbers that define one UNet size."""

    name: str
    base_channels: int
    channel_multipliers: tuple[int, ...]
    attention_resolutions: tuple[int, ...]
    attention_head_dim: int
    layers_per_block: int = 2
    dropout: float = 0.0
    norm_groups: int = 32


PRESETS: dict[str, NetworkPreset] = {
    "paper": NetworkPreset("paper", 128, (1, 1, 2, 3, 4), (16, 8), 64),
    "small": NetworkPreset("small", 64, (1, 1, 2, 2, 4), (16, 8), 64),
    "tiny": NetworkPreset("tiny", 32, (1, 2, 2, 4), (16,), 32),
    "slim": NetworkPreset("slim", 16, (1, 2, 4, 8), (8,), 32, layers_per_block=1, norm_groups=16),
}


def get_preset(name: str) -> NetworkPreset:
    try:
        return PRESETS[name]
    except KeyError:
        raise DDICInputError(
            f"Unknown network preset {name!r}; choose one of {', '.join(PRESETS)}."
        ) from None


def unet_config(preset: str | NetworkPreset, image_size: int) -> dict:
    """Keyword arguments for ``UNet2DModel`` (1 channel in and out) for a preset at an image size.

    The dict is what the model card stores, so a model can be rebuilt without knowing its preset.
    """
    spec = get_preset(preset) if isinstance(preset, str) else preset
    levels = len(spec.channel_multipliers)
    factor = 2 ** (levels - 1)
    if image_size < 4 * factor or image_size % factor:
        raise DDICInputError(
            f"Image size {image_size} does not fit the {spec.name!r} network: it must be a multiple of "
            f"{factor} and at least {4 * factor} (the CLI uses {' or '.join(map(str, SUPPORTED_IMAGE_SIZES))})."
        )
    down, resolution = [], image_size
    for level in range(levels):
        down.append("AttnDownBlock2D" if resolution in spec.attention_resolutions else "DownBlock2D")
        if level < levels - 1:
            resolution //= 2
    up = [block.replace("Down", "Up") for block in reversed(down)]
    return {
        "sample_size": image_size,
        "in_channels": 1,
        "out_channels": 1,
        "block_out_channels": [spec.base_channels * m for m in spec.channel_multipliers],
        "layers_per_block": spec.layers_per_block,
        "down_block_types": down,
        "up_block_types": up,
        "attention_head_dim": spec.attention_head_dim,
        "resnet_time_scale_shift": "scale_shift",
        "dropout": spec.dropout,
        "norm_num_groups": spec.norm_groups,
    }


def build_unet(config: dict):
    """Build an (untrained) ``UNet2DModel`` from a config made by :func:`unet_config` or read from a card."""
    from diffusers import UNet2DModel

    try:
        kwargs = dict(config)
        for key in ("block_out_channels", "down_block_types", "up_block_types"):
            kwargs[key] = tuple(kwargs[key])
        return UNet2DModel(**kwargs)
    except (TypeError, ValueError, KeyError) as exc:
        raise DDICModelError(f"The network configuration {config} cannot build a UNet2DModel: {exc}") from exc


def preset_summary(name: str) -> dict:
    return asdict(get_preset(name))


def count_parameters(module) -> int:
    return sum(p.numel() for p in module.parameters())
