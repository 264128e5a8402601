"""The configuration of a training run: one dataclass that the CLI builds and ``train_config.json`` stores.

Kept free of torch so that ``ddic --help`` and option parsing stay fast.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, fields

from ..errors import DDICInputError, DDICModelError
from ..io.modelfile import DOMAINS
from .dataset import INTENSITY_CHOICES
from .networks import get_preset, unet_config
from .prediction import LOSS_WEIGHTINGS, PREDICTIONS

DEVICE_CHOICES = ("auto", "cpu", "cuda")
BF16_CHOICES = ("auto", "on", "off")
FLIP_CHOICES = ("vertical", "horizontal", "none")
LR_SCHEDULES = ("constant", "cosine")
"""Augmentation by mirroring, p = 0.5. Canonical heads have the midline horizontal with the occiput on the
left, so a *horizontal* flip swaps front and back — a head no canonical image shows, which teaches the
model a second orientation and lets a decode come out reversed. A *vertical* flip swaps the hemispheres
(near field on top or at the bottom), which both domains really show; it is the default."""

RESUME_FIXED_FIELDS = ("domain", "preset", "image_size", "prediction")
"""Config fields a resumed run must share with its checkpoint (the others may change, e.g. more steps)."""


@dataclass
class TrainConfig:
    """Everything a training run depends on; the CLI builds it, ``train_config.json`` stores it."""

    domain: str
    data_dir: str
    out_dir: str
    preset: str = "small"
    image_size: int = 128
    steps: int = 10_000
    batch_size: int = 32  # per process; the global batch is batch_size × world_size
    lr: float = 1e-4
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    prediction: str = "v_prediction"  # what the network outputs; v keeps the terminal steps accurate (.prediction)
    loss_weighting: str = "uniform"  # "min_snr": x₀ error weighted by min(SNR, gamma)
    min_snr_gamma: float = 5.0
    flip: str = "vertical"
    warmup_steps: int = 0  # linear lr warm-up
    lr_schedule: str = "constant"  # or "cosine": half cosine from lr to min_lr at the last step
    min_lr: float = 0.0
    init_from: str | None = None  # start from an earlier model's (EMA) weights
    grad_clip: float = 1.0  # max gradient norm; 0 turns clipping off
    seed: int = 0
    checkpoint_every: int = 1000
    sample_every: int | None = None  # None: at every checkpoint
    sample_steps: int = 50
    num_samples: int = 16  # 0: no sample grids
    device: str = "auto"
    bf16: str = "auto"  # auto = on for CUDA GPUs that support it; bf16 is never used on CPU
    resume: bool = False
    intensity: str = "auto"

    def __post_init__(self) -> None:
        self.data_dir = str(self.data_dir)
        self.out_dir = str(self.out_dir)

    @property
    def sample_interval(self) -> int:
        return self.sample_every if self.sample_every is not None else self.checkpoint_every

    def validate(self) -> None:
        """Refuse impossible settings up front, naming the option to change."""
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise DDICInputError(message)

        need(self.domain in DOMAINS, f"--domain must be one of {', '.join(DOMAINS)}, got {self.domain!r}.")
        get_preset(self.preset)
        unet_config(self.preset, self.image_size)  # raises for a size the network cannot take
        need(self.steps >= 1, f"--steps must be at least 1, got {self.steps}.")
        need(self.batch_size >= 1, f"--batch-size must be at least 1, got {self.batch_size}.")
        need(self.lr > 0, f"--lr must be positive, got {self.lr}.")
        need(self.weight_decay >= 0, f"--weight-decay must not be negative, got {self.weight_decay}.")
        need(0.0 <= self.ema_decay < 1.0, f"--ema-decay must be in [0, 1), got {self.ema_decay}.")
        need(self.prediction in PREDICTIONS, f"--prediction must be one of {', '.join(PREDICTIONS)}.")
        need(self.loss_weighting in LOSS_WEIGHTINGS,
             f"--loss-weighting must be one of {', '.join(LOSS_WEIGHTINGS)}.")
        need(self.min_snr_gamma > 0, f"--min-snr-gamma must be positive, got {self.min_snr_gamma}.")
        need(self.flip in FLIP_CHOICES, f"--flip must be one of {', '.join(FLIP_CHOICES)}.")
        need(self.warmup_steps >= 0, f"--warmup must not be negative, got {self.warmup_steps}.")
        need(self.lr_schedule in LR_SCHEDULES, f"--lr-schedule must be one of {', '.join(LR_SCHEDULES)}.")
        need(0 <= self.min_lr <= self.lr, f"--min-lr must lie in [0, --lr], got {self.min_lr}.")
        need(self.grad_clip >= 0, f"--grad-clip must not be negative (0 turns it off), got {self.grad_clip}.")
        need(self.seed >= 0, f"--seed must not be negative, got {self.seed}.")
        need(self.checkpoint_every >= 1, f"--checkpoint-every must be at least 1, got {self.checkpoint_every}.")
        need(self.sample_every is None or self.sample_every >= 1,
             f"--sample-every must be at least 1, got {self.sample_every}.")
        need(self.num_samples >= 0, f"--num-samples must not be negative, got {self.num_samples}.")
        if self.num_samples:
            from .schedule import spaced_timesteps

            spaced_timesteps(self.sample_steps)  # raises with the allowed range
        need(self.device in DEVICE_CHOICES, f"--device must be one of {', '.join(DEVICE_CHOICES)}.")
        need(self.bf16 in BF16_CHOICES, f"--bf16 must be one of {', '.join(BF16_CHOICES)}.")
        need(self.intensity in INTENSITY_CHOICES, f"--intensity must be one of {', '.join(INTENSITY_CHOICES)}.")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """Rebuild from JSON; unknown keys (from a newer version) are ignored, missing ones defaulted."""
        known = {f.name for f in fields(cls)}
        missing = [k for k in ("domain", "data_dir", "out_dir") if k not in data]
        if missing:
            raise DDICModelError(f"Training config lacks {', '.join(missing)}; it is not a DDIC train config.")
        return cls(**{k: v for k, v in data.items() if k in known})

    def command_line(self) -> str:
        """The ``ddic train`` command that reproduces this config with every value spelled out."""
        args = ["ddic", "train", "--domain", self.domain, "--data", self.data_dir, "--out", self.out_dir,
                "--preset", self.preset, "--size", self.image_size, "--steps", self.steps,
                "--batch-size", self.batch_size, "--lr", self.lr, "--weight-decay", self.weight_decay,
                "--ema-decay", self.ema_decay, "--prediction", self.prediction,
                "--loss-weighting", self.loss_weighting, "--min-snr-gamma", self.min_snr_gamma, "--flip", self.flip,
                "--warmup", self.warmup_steps, "--lr-schedule", self.lr_schedule, "--min-lr", self.min_lr,
                "--grad-clip", self.grad_clip,
                "--seed", self.seed, "--checkpoint-every", self.checkpoint_every,
                "--sample-steps", self.sample_steps, "--num-samples", self.num_samples,
                "--device", self.device, "--bf16", self.bf16, "--intensity", self.intensity]
        if self.sample_every is not None:
            args += ["--sample-every", self.sample_every]
        if self.init_from:
            args += ["--init-from", self.init_from]
        if self.resume:
            args.append("--resume")
        return shlex.join(str(a) for a in args)
