"""What a network predicts, and how that becomes the two estimates every ODE step needs: ε̂ and x̂₀.

x_t = α·x₀ + σ·ε with α = √ᾱ_t, σ = √(1−ᾱ_t). Two parameterisations of the same ideal denoiser:

* ``epsilon`` (the paper's, DDPM's): the network predicts ε; x̂₀ = (x − σ·ε̂)/α. At the end of the cosine
  schedule α = √ᾱ_999 ≈ 5e-5, so any error of ε̂ reaches x̂₀ multiplied by 1/α ≈ 20 000 — the terminal-step
  failure of a full-depth round trip (pitfall P1), which only the decode's clamp hides.
* ``v_prediction`` (Salimans & Ho 2022): the network predicts v = α·ε − σ·x₀; then
  x̂₀ = α·x − σ·v̂ and ε̂ = σ·x + α·v̂ — no division anywhere, so an error of v̂ reaches x̂₀ one to one at
  every noise level, the terminal step included. The ODE is the same; only the network's target differs.

Training targets and the optional min-SNR loss weighting (Hang et al. 2023) are written here too, so the
trainer and the samplers read one definition.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

PREDICTIONS = ("epsilon", "v_prediction")
LOSS_WEIGHTINGS = ("uniform", "min_snr")


class Prediction(NamedTuple):
    """A denoiser's two estimates at one point of the ODE."""

    eps: torch.Tensor
    x0: torch.Tensor


def prediction_kind(model) -> str:
    """The parameterisation of a model: its ``prediction`` attribute, ``epsilon`` for plain ε callables."""
    return getattr(model, "prediction", "epsilon")


def to_prediction(output: torch.Tensor, x: torch.Tensor, alpha_bar: float, kind: str) -> Prediction:
    """Network output at ᾱ → (ε̂, x̂₀), each computed in the well-conditioned way for ``kind``."""
    a, s = math.sqrt(alpha_bar), math.sqrt(1.0 - alpha_bar)
    if kind == "epsilon":
        return Prediction(output, (x - s * output) / a)
    if kind == "v_prediction":
        return Prediction(s * x + a * output, a * x - s * output)
    raise ValueError(f"unknown prediction type {kind!r}; expected one of {PREDICTIONS}")


def predict(model, x: torch.Tensor, t: int, alpha_bar: float) -> Prediction:
    """Call ``model(x, t)`` (original timestep t, as the network was trained) and convert its output."""
    return to_prediction(model(x, t), x, alpha_bar, prediction_kind(model))


def training_target(x0: torch.Tensor, noise: torch.Tensor, sqrt_ab: torch.Tensor, sqrt_1mab: torch.Tensor,
                    kind: str) -> torch.Tensor:
    """What the network is trained to output for x_t = √ᾱ·x₀ + √(1−ᾱ)·noise (broadcastable scalars)."""
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return sqrt_ab * noise - sqrt_1mab * x0
    raise ValueError(f"unknown prediction type {kind!r}; expected one of {PREDICTIONS}")


def loss_weight(alpha_bar: torch.Tensor, kind: str, weighting: str, gamma: float) -> torch.Tensor:
    """Per-sample weight of the MSE on the network's target.

    ``uniform``: 1 (the plain objective: for ε it weights the x₀ error by SNR, for v by SNR + 1).
    ``min_snr``: the x₀ error weighted by min(SNR, γ) — clamps the easy low-noise steps that dominate the
    plain ε objective — which is min(SNR, γ)/SNR on the ε target and min(SNR, γ)/(SNR + 1) on the v target.
    """
    if weighting == "uniform":
        return torch.ones_like(alpha_bar)
    if weighting != "min_snr":
        raise ValueError(f"unknown loss weighting {weighting!r}; expected one of {LOSS_WEIGHTINGS}")
    snr = alpha_bar / (1.0 - alpha_bar)
    clamped = torch.clamp(snr, max=float(gamma))
    return clamped / snr if kind == "epsilon" else clamped / (snr + 1.0)
