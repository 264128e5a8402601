"""One ODE step in either direction, first or second order: what encode, decode and DDIC's guided decode
are made of.

Notation: α = √ᾱ, σ = √(1−ᾱ), λ = log(α/σ) (half the log-SNR). Every solver here is exact for the linear
part of the probability-flow ODE and differs in how it integrates the data prediction x̂₀ over [λ, λ_to]:

* ``ddim`` (order 1, the paper's eq. 6): x̂₀ held constant — x_to = α_to·x̂₀ + σ_to·ε̂.
* ``dpmpp2m`` (DPM-Solver++(2M), Lu et al. 2022, Alg. 2): x̂₀ extrapolated linearly in λ from this level
  and the previous one, D = (1 + 1/(2r))·x̂₀ − 1/(2r)·x̂₀_prev with r = h_prev/h, h = λ_to − λ; then
  x_to = (σ_to/σ)·x + (α_to − α·σ_to/σ)·D. Steps without a previous level, and steps to λ = ±∞ (ᾱ = 1 or
  ᾱ = 0 exactly) are first order. Run with a falling λ it is the encoder (DPM-Solver++ inversion), as diffusers'
  inverse scheduler. Note: the cosine schedule's last level has ᾱ = 2.4e-9 (a finite λ), so the encoder's last
  step *is* second order, with 1/(2r) ≈ 4–5 at every N — the cause of the fragile round trip at N = 30–60
  (BENCHMARKS.md, "Why the round trip breaks"; ``benchmarks/terminal_step_probe.py``).

``clip`` (decode only) clamps x̂₀ to [−1, 1] and re-derives ε from it (DDIB's ``clip_denoised``);
encode steps are never clipped. With ``ddim`` these are exactly :func:`ddic.diffusion.schedule.ddim_encode_step`
and :func:`~ddic.diffusion.schedule.ddim_decode_step`, bit for bit.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .constants import SOLVERS
from .prediction import Prediction

SOLVER_ORDER = {"ddim": 1, "dpmpp2m": 2}
assert set(SOLVER_ORDER) == set(SOLVERS)


def half_log_snr(alpha_bar: float) -> float:
    """λ = log(α/σ); +∞ for the clean image (ᾱ = 1), −∞ at the end of the encoder (ᾱ = 0)."""
    if alpha_bar >= 1.0:
        return math.inf
    if alpha_bar <= 0.0:
        return -math.inf
    return 0.5 * math.log(alpha_bar / (1.0 - alpha_bar))


class History(NamedTuple):
    """The previous level of a chain, for the second-order solver: its x̂₀ (clamped if the chain clips)
    and its λ."""

    x0: torch.Tensor
    lam: float


class StepResult(NamedTuple):
    x_to: torch.Tensor  # the state at the next level
    x0: torch.Tensor  # this level's x̂₀ as the step used it (clamped if clipping): the next step's history
    saturated: torch.Tensor | None  # where the clamp was active (None without clipping)
    gain: float  # D's weight on this level's x̂₀: 1 (first order) or 1 + 1/(2r) (for the cheap Jacobian)


def second_order_weight(lam: float, lam_to: float, history: History | None) -> float | None:
    """1/(2r) of DPM-Solver++(2M) for a step λ → λ_to, or None where the step must be first order."""
    if history is None or not math.isfinite(lam_to) or not math.isfinite(history.lam) or not math.isfinite(lam):
        return None
    h, h_prev = lam_to - lam, lam - history.lam
    if h == 0.0 or h_prev == 0.0:
        return None
    return h / (2.0 * h_prev)


def solver_step(x: torch.Tensor, pred: Prediction, alpha_bar: float, alpha_bar_to: float,
                history: History | None = None, order: int = 1, clip: bool = False) -> StepResult:
    """One step from ᾱ to ᾱ_to (either direction); see the module docstring."""
    a, s = math.sqrt(alpha_bar), math.sqrt(1.0 - alpha_bar)
    a_to, s_to = math.sqrt(alpha_bar_to), math.sqrt(1.0 - alpha_bar_to)
    x0, saturated = pred.x0, None
    if clip:
        saturated = x0.abs() > 1.0
        x0 = x0.clamp(-1.0, 1.0)
    weight = second_order_weight(half_log_snr(alpha_bar), half_log_snr(alpha_bar_to), history) \
        if order >= 2 else None
    if weight is None:
        if not clip:  # the DDIM formula itself, with the model's own ε̂ (best conditioned for ε-models)
            return StepResult(a_to * x0 + s_to * pred.eps, x0, None, 1.0)
        eps = (x - a * x0) / s
        return StepResult(a_to * x0 + s_to * eps, x0, saturated, 1.0)
    d = (1.0 + weight) * x0 - weight * history.x0  # from clamped x̂₀s when clipping, as diffusers thresholds
    eps = (x - a * d) / s
    return StepResult(a_to * d + s_to * eps, x0, saturated, 1.0 + weight)
