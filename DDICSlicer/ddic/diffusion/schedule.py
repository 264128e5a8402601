"""The noise schedule, the step grids and the DDIM step: the single source of truth for all three.

Conventions follow DDIB (suxuann/ddib, itself guided-diffusion), because DDIC is built on it:

* cosine ᾱ (Nichol & Dhariwal): ᾱ(s) = cos²((s/T + 0.008)/1.008 · π/2), β_t = min(1 − ᾱ(t+1)/ᾱ(t), 0.999),
  ᾱ_t = Π_{i≤t}(1 − β_i), all in float64, T = 1000. ᾱ_999 ≈ 2.4e-9: the endpoint is near-singular.
* a grid of N steps keeps N of the T training timesteps, evenly spaced and including 0 and T−1
  (guided-diffusion's ``space_timesteps(T, "N")``); N = T keeps every t. Encode, decode and the US
  reconstruction all use the same grid, and the network always receives the *original* t (0…T−1).
* levels: grid level i sits at ᾱ of the i-th kept timestep; level −1 is the clean image (ᾱ = 1) and
  level N is the end of the encoder (ᾱ = 0, so the latent equals the last ε), exactly as DDIB.
* encode (ForwardODE) steps are unclipped; decode (BackwardODE) steps clamp x̂₀ to [−1, 1] and
  re-derive ε from the clamped x̂₀ (DDIB's ``clip_denoised=True``), which keeps the first step from
  t = 999 stable (pitfall P1).

Scalars are Python floats computed in float64; tensors keep their own dtype (float32), so the schedule
arithmetic never runs in bf16.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

from ..errors import DDICInputError, DDICModelError
from .constants import MIN_STEPS, NUM_TRAIN_TIMESTEPS
from .prediction import PREDICTIONS

COSINE_OFFSET = 0.008
"""The small offset s of the cosine schedule (guided-diffusion)."""

MAX_BETA = 0.999
"""Cap on β_t, which only bites at the last timestep of the cosine schedule."""

SCHEDULE_NAME = "cosine"


def cosine_alpha_bar(num_timesteps: int = NUM_TRAIN_TIMESTEPS) -> np.ndarray:
    """ᾱ_t for t = 0 … T−1 of the capped cosine schedule, float64."""
    def f(s: float) -> float:
        return math.cos((s / num_timesteps + COSINE_OFFSET) / (1 + COSINE_OFFSET) * math.pi / 2) ** 2

    betas = np.array(
        [min(1.0 - f(t + 1) / f(t), MAX_BETA) for t in range(num_timesteps)], dtype=np.float64
    )
    return np.cumprod(1.0 - betas)


@dataclass(frozen=True)
class Schedule:
    """A named noise schedule and the model's parameterisation (ε or v, :mod:`.prediction`); what a model
    card records and what loading checks."""

    name: str = SCHEDULE_NAME
    num_train_timesteps: int = NUM_TRAIN_TIMESTEPS
    prediction: str = "epsilon"
    alpha_bar: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.name != SCHEDULE_NAME:
            raise DDICModelError(
                f"Unknown noise schedule {self.name!r}: DDIC models use the {SCHEDULE_NAME!r} schedule. "
                "Retrain the model with `ddic train`, or check that the model card belongs to a DDIC model."
            )
        if self.prediction not in PREDICTIONS:
            raise DDICModelError(
                f"Unsupported prediction type {self.prediction!r}: DDIC models predict one of "
                f"{', '.join(PREDICTIONS)}. Is this model card from a newer ddic?"
            )
        if self.num_train_timesteps < 2:
            raise DDICModelError(f"num_train_timesteps must be at least 2, got {self.num_train_timesteps}.")
        object.__setattr__(self, "alpha_bar", cosine_alpha_bar(self.num_train_timesteps))

    def to_dict(self) -> dict:
        return {"name": self.name, "num_train_timesteps": self.num_train_timesteps,
                "prediction": self.prediction, "cosine_offset": COSINE_OFFSET, "max_beta": MAX_BETA}

    @classmethod
    def from_dict(cls, data: dict) -> "Schedule":
        """Rebuild from a model card; the offset and β cap must be ours, since ᾱ is recomputed here."""
        if data.get("cosine_offset", COSINE_OFFSET) != COSINE_OFFSET or data.get("max_beta", MAX_BETA) != MAX_BETA:
            raise DDICModelError(
                f"Model card schedule {data} differs from this package's cosine schedule "
                f"(offset {COSINE_OFFSET}, max beta {MAX_BETA})."
            )
        return cls(name=data.get("name", ""), num_train_timesteps=int(data.get("num_train_timesteps", 0)),
                   prediction=data.get("prediction", "epsilon"))

    def grid(self, num_steps: int) -> "StepGrid":
        return StepGrid.build(self, num_steps)


def spaced_timesteps(num_steps: int, num_timesteps: int = NUM_TRAIN_TIMESTEPS) -> np.ndarray:
    """N of T timesteps, ascending, evenly spaced with 0 and T−1 included; N = T gives every t."""
    if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)):
        raise DDICInputError(f"The number of steps must be an integer, got {num_steps!r}.")
    if not MIN_STEPS <= num_steps <= num_timesteps:
        raise DDICInputError(
            f"The number of steps must be between {MIN_STEPS} and {num_timesteps}, got {num_steps}. "
            "Use 1000 for the paper's full-step translation, or 50–100 for a fast one."
        )
    # accumulate the fractional stride and round each position (Python's round), exactly as
    # guided-diffusion's space_timesteps does, so grids (ties included) match DDIB's
    stride = (num_timesteps - 1) / (num_steps - 1)
    positions, cursor = [], 0.0
    for _ in range(num_steps):
        positions.append(round(cursor))
        cursor += stride
    steps = np.asarray(positions, dtype=np.int64)
    assert len(np.unique(steps)) == num_steps and steps[0] == 0 and steps[-1] == num_timesteps - 1
    return steps


@dataclass(frozen=True)
class StepGrid:
    """The kept timesteps and their ᾱ, with DDIB's level conventions (see the module docstring)."""

    timesteps: np.ndarray  # int64, ascending, original t values
    alpha_bar: np.ndarray  # float64, ᾱ at each kept timestep

    @classmethod
    def build(cls, schedule: Schedule, num_steps: int) -> "StepGrid":
        steps = spaced_timesteps(num_steps, schedule.num_train_timesteps)
        return cls(timesteps=steps, alpha_bar=schedule.alpha_bar[steps])

    def __len__(self) -> int:
        return len(self.timesteps)

    def alpha(self, level: int) -> float:
        """ᾱ at a grid level: 1 below the grid (clean image), 0 above it (end of the encoder)."""
        if level < 0:
            return 1.0
        if level >= len(self.timesteps):
            return 0.0
        return float(self.alpha_bar[level])

    def t(self, level: int) -> int:
        """The original training timestep of a level, which is what the network is given."""
        return int(self.timesteps[level])


class DecodeStep(NamedTuple):
    """Result of one clipped DDIM decode step."""

    x_prev: torch.Tensor  # the sample one level down
    pred_x0: torch.Tensor  # x̂₀ after clamping (if clamped)
    saturated: torch.Tensor | None  # bool mask where the clamp was active (None without clipping)


def predict_x0(x: torch.Tensor, eps: torch.Tensor, alpha: float) -> torch.Tensor:
    """x̂₀ = (x − √(1−ᾱ)·ε) / √ᾱ."""
    return (x - math.sqrt(1.0 - alpha) * eps) / math.sqrt(alpha)


def ddim_encode_step(x: torch.Tensor, eps: torch.Tensor, alpha: float, alpha_next: float) -> torch.Tensor:
    """One deterministic DDIM noising step (ForwardODE), unclipped, from ᾱ to ᾱ_next > ... ≥ 0."""
    pred_x0 = predict_x0(x, eps, alpha)
    return math.sqrt(alpha_next) * pred_x0 + math.sqrt(1.0 - alpha_next) * eps


def ddim_decode_step(x: torch.Tensor, eps: torch.Tensor, alpha: float, alpha_prev: float,
                     clip: bool = True) -> DecodeStep:
    """One deterministic DDIM denoising step (BackwardODE) from ᾱ to ᾱ_prev.

    With ``clip`` (the default, DDIB's decode), x̂₀ is clamped to [−1, 1] and ε is re-derived from the
    clamped x̂₀, so the step stays on the data range even from the near-singular ᾱ_999.
    """
    pred_x0 = predict_x0(x, eps, alpha)
    saturated = None
    if clip:
        saturated = pred_x0.abs() > 1.0
        pred_x0 = pred_x0.clamp(-1.0, 1.0)
        eps = (x - math.sqrt(alpha) * pred_x0) / math.sqrt(1.0 - alpha)
    x_prev = math.sqrt(alpha_prev) * pred_x0 + math.sqrt(1.0 - alpha_prev) * eps
    return DecodeStep(x_prev, pred_x0, saturated)


def decode_step_jacobian_diag(saturated: torch.Tensor | None, alpha: float, alpha_prev: float,
                              prior_variance: float, gain: float = 1.0) -> torch.Tensor | float:
    """A diagonal estimate of ∂x_prev/∂x for :func:`ddim_decode_step` without differentiating the network.

    Write x_prev = √ᾱ_prev·x̂₀ + √(1−ᾱ_prev)·ε. Holding ε constant gives c₁ = √(ᾱ_prev/ᾱ), right at low
    noise but wrong at high noise, where ε ≈ x and c₁ explodes (≈ 300 at the first step of 100 from
    ᾱ_999 ≈ 2.4e-9). Holding x̂₀ constant gives c₀ = √(1−ᾱ_prev)/√(1−ᾱ), right at high noise. For data
    x₀ ~ N(μ, σ²) the exact Jacobian is the blend ρ·c₁ + (1−ρ)·c₀ with ρ = ᾱσ²/(ᾱσ² + 1 − ᾱ), which goes
    from x̂₀-constant to ε-constant as the noise falls; that blend, with ``prior_variance`` = σ², is what
    this returns. Where the clamp is active x̂₀ cannot move, so ρ = 0 there (exact under clipping).

    ``gain`` is the weight of this level's x̂₀ in a second-order step (1 + 1/(2r) for DPM-Solver++(2M),
    :mod:`ddic.diffusion.solvers`): the x̂₀ path of the Jacobian, ρ·(c₁ − c₀), scales with it.
    """
    rho = alpha * prior_variance / (alpha * prior_variance + 1.0 - alpha)
    c_eps_const = math.sqrt(alpha_prev / alpha)
    c_x0_const = math.sqrt(1.0 - alpha_prev) / math.sqrt(1.0 - alpha)
    blended = c_x0_const + gain * rho * (c_eps_const - c_x0_const)
    if saturated is None:
        return blended
    return torch.where(saturated, torch.full(saturated.shape, c_x0_const, device=saturated.device),
                       torch.full(saturated.shape, blended, device=saturated.device))
