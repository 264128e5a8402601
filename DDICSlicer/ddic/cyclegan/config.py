"""The configuration of a CycleGAN run: one dataclass that the CLI builds and ``cyclegan_config.json`` stores.

Defaults are the reference implementation's (junyanz/pytorch-CycleGAN-and-pix2pix ``cycle_gan`` model):
ResNet generator with 64 filters (6 residual blocks below 256 px, 9 at 256 px), 70×70 PatchGAN with 64
filters, LSGAN, cycle weight λ = 10 both ways, identity weight 0.5·λ, Adam lr 2e-4 with β = (0.5, 0.999),
batch 1, image pool 50, the lr constant for the first half and linearly decayed towards 0 over the
second half, N(0, 0.02) initialisation, horizontal flips. The reference counts its 100 + 100 epochs
in passes over the larger domain; here everything is in optimizer steps, and ``steps = None`` means
the same 200 such passes. Kept free of torch so that option parsing stays fast.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, fields

from ..diffusion.dataset import INTENSITY_CHOICES
from ..errors import DDICInputError, DDICModelError
from . import reference as ref
from .reference import check_image_size

DEVICE_CHOICES = ("auto", "cpu", "cuda")

RESUME_FIXED_FIELDS = ("image_size", "generator_filters", "residual_blocks", "discriminator_filters",
                       "discriminator_layers", "pool_size")
"""Fields a resumed run must share with its checkpoint (the networks' and the pools' shapes)."""
_OPTION_NAMES = {"image_size": "--size", "residual_blocks": "--blocks", "generator_filters": "--g-filters",
                 "discriminator_filters": "--d-filters", "discriminator_layers": "--d-layers",
                 "pool_size": "--pool-size"}


@dataclass
class CycleGANConfig:
    us_dir: str
    mri_dir: str
    out_dir: str
    image_size: int = 128
    steps: int | None = None  # None: ref.EPOCHS passes over the larger domain
    batch_size: int = ref.BATCH_SIZE
    decay_steps: int | None = None  # None: the second half of the steps
    lr: float = ref.LR
    beta1: float = ref.BETA1  # Adam's β2 is the reference's fixed 0.999 (ref.ADAM_BETA2)
    lambda_cycle: float = ref.LAMBDA_CYCLE
    lambda_identity: float = ref.LAMBDA_IDENTITY  # × lambda_cycle
    pool_size: int = ref.POOL_SIZE
    generator_filters: int = ref.FILTERS
    residual_blocks: int | None = None  # None: 6 below 256 px, 9 at 256 px (the reference)
    discriminator_filters: int = ref.FILTERS
    discriminator_layers: int = ref.D_LAYERS
    init_std: float = ref.INIT_STD
    flip: bool = True
    load_size: int | None = None  # resize to this, then random-crop image_size; None: no resize-and-crop
    seed: int = 0
    checkpoint_every: int = 1000
    sample_every: int | None = None  # None: at every checkpoint
    num_samples: int = 4  # images per domain in each sample grid; 0: none
    device: str = "auto"
    intensity: str = "auto"
    resume: bool = False
    stop_after: int | None = None  # end this invocation after this many (total) steps; the schedule still uses steps

    def __post_init__(self) -> None:
        self.us_dir, self.mri_dir, self.out_dir = str(self.us_dir), str(self.mri_dir), str(self.out_dir)

    @property
    def sample_interval(self) -> int:
        return self.sample_every if self.sample_every is not None else self.checkpoint_every

    def total_steps(self, count_us: int, count_mri: int) -> int:
        """``steps``, or the reference's 200 epochs over the larger domain at this batch size."""
        if self.steps is not None:
            return self.steps
        return ref.EPOCHS * -(-max(count_us, count_mri) // self.batch_size)

    def validate(self) -> None:
        """Refuse impossible settings up front, naming the option to change."""
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise DDICInputError(message)

        check_image_size(self.image_size)
        need(self.steps is None or self.steps >= 1, f"--steps must be at least 1, got {self.steps}.")
        need(self.batch_size >= 1, f"--batch-size must be at least 1, got {self.batch_size}.")
        need(self.decay_steps is None or self.decay_steps >= 0,
             f"--decay-steps must not be negative, got {self.decay_steps}.")
        need(self.decay_steps is None or self.steps is None or self.decay_steps <= self.steps,
             f"--decay-steps ({self.decay_steps}) cannot exceed --steps ({self.steps}).")
        need(self.lr > 0, f"--lr must be positive, got {self.lr}.")
        need(0.0 <= self.beta1 < 1.0, f"--beta1 must be in [0, 1), got {self.beta1}.")
        need(self.lambda_cycle >= 0 and self.lambda_identity >= 0, "--lambda-cycle and --lambda-identity must be ≥ 0.")
        need(self.pool_size >= 0, f"--pool-size must not be negative, got {self.pool_size}.")
        need(self.generator_filters >= 1 and self.discriminator_filters >= 1, "filter counts must be at least 1.")
        need(self.residual_blocks is None or self.residual_blocks >= 0, "--blocks must not be negative.")
        need(self.discriminator_layers >= 1, "--d-layers must be at least 1.")
        need(self.init_std > 0, f"init_std must be positive, got {self.init_std}.")
        need(self.load_size is None or self.load_size >= self.image_size,
             f"--load-size ({self.load_size}) must be at least --size ({self.image_size}).")
        need(self.seed >= 0, f"--seed must not be negative, got {self.seed}.")
        need(self.checkpoint_every >= 1, f"--checkpoint-every must be at least 1, got {self.checkpoint_every}.")
        need(self.sample_every is None or self.sample_every >= 1, "--sample-every must be at least 1.")
        need(self.num_samples >= 0, f"--num-samples must not be negative, got {self.num_samples}.")
        need(self.device in DEVICE_CHOICES, f"--device must be one of {', '.join(DEVICE_CHOICES)}.")
        need(self.intensity in INTENSITY_CHOICES, f"--intensity must be one of {', '.join(INTENSITY_CHOICES)}.")
        need(self.stop_after is None or self.stop_after >= 1, "--stop-after must be at least 1.")

    def check_resume(self, previous: dict, out_dir: str) -> None:
        """Refuse to resume a checkpoint whose networks or pools have another shape than this config's."""
        def resolved(values: dict, name: str):
            if name == "residual_blocks" and values.get(name) is None:  # the default: by image size
                return ref.residual_blocks(values.get("image_size"))
            return values.get(name)

        now = self.to_dict()
        changed = [n for n in RESUME_FIXED_FIELDS if n in previous and resolved(previous, n) != resolved(now, n)]
        if changed:
            was = ", ".join(f"{n} = {resolved(previous, n)!r}" for n in changed)
            options = " ".join(f"{_OPTION_NAMES[n]} {resolved(previous, n)}" for n in changed)
            raise DDICInputError(
                f"Cannot resume {out_dir}: its checkpoint was trained with {was}. Resume with the same "
                f"settings{' (' + options + ')' if options else ''}, or start a new run in another --out folder."
            )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CycleGANConfig:
        """Rebuild from JSON; unknown keys (from a newer version) are ignored, missing ones defaulted."""
        missing = [k for k in ("us_dir", "mri_dir", "out_dir") if k not in data]
        if missing:
            raise DDICModelError(f"CycleGAN config lacks {', '.join(missing)}; it is not a CycleGAN config.")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def command_line(self) -> str:
        """The ``ddic train-cyclegan`` command that reproduces this config, every value spelled out."""
        args: list = ["ddic", "train-cyclegan", "--us", self.us_dir, "--mri", self.mri_dir, "--out", self.out_dir,
                      "--size", self.image_size, "--batch-size", self.batch_size, "--lr", self.lr,
                      "--beta1", self.beta1, "--lambda-cycle", self.lambda_cycle,
                      "--lambda-identity", self.lambda_identity, "--pool-size", self.pool_size,
                      "--g-filters", self.generator_filters, "--d-filters", self.discriminator_filters,
                      "--d-layers", self.discriminator_layers, "--seed", self.seed,
                      "--checkpoint-every", self.checkpoint_every, "--num-samples", self.num_samples,
                      "--device", self.device, "--intensity", self.intensity]
        optional = {"--steps": self.steps, "--decay-steps": self.decay_steps, "--blocks": self.residual_blocks,
                    "--load-size": self.load_size, "--sample-every": self.sample_every,
                    "--stop-after": self.stop_after}
        for option, value in optional.items():
            if value is not None:
                args += [option, value]
        if not self.flip:
            args.append("--no-flip")
        if self.resume:
            args.append("--resume")
        return shlex.join(str(a) for a in args)
