"""Translation options: one dataclass that the CLI, the worker and the Slicer panel all build.

Defaults follow the paper where it is explicit (lr = 3 at the paper's 1000 steps, correlation sign +1)
and the reference code (DDIB clipping, 5×5 median with reflect padding) where it is not; see
``shared/docs/diffusion-notes.md`` §9 for the reasoning behind each.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ..diffusion.schedule import NUM_TRAIN_TIMESTEPS
from ..errors import DDICInputError

METHODS = ("ddic", "ddib")
"""The diffusion methods, which translate with a US and an MRI diffusion model."""
BASELINE_METHODS = ("cyclegan",)
"""Methods with a model of their own (``ddic train-cyclegan``); they ignore the diffusion options."""
ALL_METHODS = METHODS + BASELINE_METHODS
MODES = ("faithful", "cached", "cheap")
CORRELATION_SIGNS = ("+1", "-1", "abs")
PRECISIONS = ("auto", "fp32", "bf16")

DEFAULT_STEPS = 100
PAPER_LR = 3.0
PAPER_LR_STEPS = NUM_TRAIN_TIMESTEPS

MODE_NOTES = {
    "faithful": "as the paper: US chain recomputed, gradient through the MRI network, eps recomputed (≈5N evaluations)",
    "cached": "US chain taken from the encoder's trajectory (exact in the ODE limit), otherwise faithful (≈4N)",
    "cheap": "cached US chain, no network derivative (diagonal Jacobian estimate), first-order update (≈2N; an approximation)",
}


@dataclass
class TranslateOptions:
    """How to translate. ``lr`` is given at ``lr_reference_steps`` and scaled by reference/N (pitfall P7)."""

    method: str = "ddic"
    mode: str = "faithful"
    steps: int = DEFAULT_STEPS
    lr: float = PAPER_LR
    lr_reference_steps: int = PAPER_LR_STEPS
    median_kernel: int = 5
    corr_sign: str = "+1"
    guide_t_min: int = 0
    guide_t_max: int = NUM_TRAIN_TIMESTEPS - 1
    clip_decode: bool = True
    cheap_prior_variance: float = 0.25
    batch_size: int = 16
    device: str = "auto"
    precision: str = "auto"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def bad(name: str, value, allowed: str) -> DDICInputError:
            return DDICInputError(f"Invalid translation option {name}={value!r}: {allowed}.")

        if self.method not in ALL_METHODS:
            raise bad("method", self.method, f"choose one of {', '.join(ALL_METHODS)}")
        if self.mode not in MODES:
            raise bad("mode", self.mode, f"choose one of {', '.join(MODES)}")
        if not isinstance(self.steps, int) or not 2 <= self.steps <= NUM_TRAIN_TIMESTEPS:
            raise bad("steps", self.steps, f"an integer from 2 to {NUM_TRAIN_TIMESTEPS}")
        if not self.lr >= 0.0:
            raise bad("lr", self.lr, "a learning rate ≥ 0 (0 gives DDIB)")
        if not isinstance(self.lr_reference_steps, int) or self.lr_reference_steps < 1:
            raise bad("lr_reference_steps", self.lr_reference_steps, "a positive integer")
        if not isinstance(self.median_kernel, int) or self.median_kernel < 1 or self.median_kernel % 2 == 0:
            raise bad("median_kernel", self.median_kernel, "an odd integer ≥ 1 (1 turns the median off)")
        if self.corr_sign not in CORRELATION_SIGNS:
            raise bad("corr_sign", self.corr_sign, f"one of {', '.join(CORRELATION_SIGNS)}")
        if not 0 <= self.guide_t_min <= self.guide_t_max <= NUM_TRAIN_TIMESTEPS - 1:
            raise bad("guide_t window", (self.guide_t_min, self.guide_t_max),
                      f"0 ≤ min ≤ max ≤ {NUM_TRAIN_TIMESTEPS - 1}")
        if not self.cheap_prior_variance > 0.0:
            raise bad("cheap_prior_variance", self.cheap_prior_variance, "a positive data variance")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise bad("batch_size", self.batch_size, "a positive integer")
        if self.precision not in PRECISIONS:
            raise bad("precision", self.precision, f"one of {', '.join(PRECISIONS)}")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise bad("device", self.device, "auto, cpu, cuda or cuda:N")

    @property
    def effective_lr(self) -> float:
        """The per-step learning rate actually used: lr·reference/N for DDIC, 0 for DDIB (and CycleGAN)."""
        if self.method != "ddic":
            return 0.0
        return self.lr * self.lr_reference_steps / self.steps

    def guides(self, t: int) -> bool:
        return self.guide_t_min <= t <= self.guide_t_max

    def to_dict(self) -> dict:
        data = asdict(self)
        data["effective_lr"] = self.effective_lr
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "TranslateOptions":
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names - {"effective_lr"}
        if unknown:
            raise DDICInputError(f"Unknown translation option(s): {', '.join(sorted(unknown))}.")
        return cls(**{k: v for k, v in data.items() if k in names})
