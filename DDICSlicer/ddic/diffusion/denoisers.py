"""Denoisers: what the ODE loops call. A trained UNet behind a uniform interface, and the exact denoiser
of a Gaussian data distribution, which lets the whole method be tested without trained weights.

A denoiser is any callable ``model(x, t) -> Tensor`` with x of shape (B, 1, H, W) in float32 and t the
*original* training timestep (an int), whose output is what its ``prediction`` attribute says (ε or v;
:mod:`ddic.diffusion.prediction` turns it into ε̂ and x̂₀). It also counts its evaluations, which the
benchmark reports.
"""

from __future__ import annotations

import math
from contextlib import nullcontext

import numpy as np
import torch

from .prediction import PREDICTIONS


class EvaluationCounter:
    """Counts network evaluations per image: forwards and input-gradient backwards, separately."""

    def __init__(self) -> None:
        self.forward = 0
        self.backward = 0

    def reset(self) -> None:
        self.forward = 0
        self.backward = 0

    def as_dict(self) -> dict:
        return {"forward": self.forward, "backward": self.backward}


class UNetDenoiser:
    """A frozen ``UNet2DModel`` as a denoiser: weights never get gradients, inputs may.

    On CUDA the network runs under bf16 autocast when ``bf16`` is set; the output is returned in float32 so
    that the schedule, median and correlation arithmetic around it stays in float32.
    """

    def __init__(self, unet: torch.nn.Module, device: torch.device | str = "cpu", bf16: bool = False,
                 prediction: str = "epsilon") -> None:
        if prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction type {prediction!r}; expected one of {PREDICTIONS}")
        self.prediction = prediction
        self.device = torch.device(device)
        self.unet = unet.to(self.device).eval().requires_grad_(False)
        self.bf16 = bool(bf16) and self.device.type == "cuda"
        self.counter = EvaluationCounter()

    def __call__(self, x: torch.Tensor, t: int) -> torch.Tensor:
        timesteps = torch.full((x.shape[0],), int(t), device=x.device, dtype=torch.long)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if self.bf16 else nullcontext()
        with autocast:
            out = self.unet(x, timesteps).sample
        self.counter.forward += 1
        if x.requires_grad and torch.is_grad_enabled():
            self.counter.backward += 1
        return out.float()


class GaussianDenoiser:
    """The optimal denoiser for data x₀ ~ N(μ, s²) per pixel under a given ᾱ schedule (no network).

    ε*(x_t, t) = √(1−ᾱ_t)·(x_t − √ᾱ_t·μ) / (ᾱ_t·s² + 1 − ᾱ_t) and x̂₀* = μ + √ᾱ_t·s²·(x_t − √ᾱ_t·μ) /
    (ᾱ_t·s² + 1 − ᾱ_t); it outputs ε* or v* = √ᾱ·ε* − √(1−ᾱ)·x̂₀* as ``prediction`` says. With it, encode →
    decode reconstructs and DDIB between two Gaussians reproduces the affine optimal-transport map, with
    errors that shrink with N — the reference tests of the translation code. ``mean`` and ``std`` may be
    per-pixel arrays (H, W) (a "per-pixel Gaussian" fitted to images).

    With ``basis`` (an orthonormal (H·W, H·W) matrix U whose columns are the directions), ``mean`` and
    ``std`` are per *component*: x₀ = U·c with c ~ N(mean, std²) independently — a Gaussian with a full
    covariance, e.g. an image-like spectrum where a few low-frequency components carry variances in the
    hundreds (which is what makes the last steps of the schedule hard). It is differentiable in x.
    """

    def __init__(self, mean, std, alpha_bar: np.ndarray, prediction: str = "epsilon",
                 basis: np.ndarray | None = None) -> None:
        if prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction type {prediction!r}; expected one of {PREDICTIONS}")
        self.prediction = prediction
        self.mean = torch.as_tensor(np.asarray(mean, dtype=np.float32))
        self.var = torch.as_tensor(np.asarray(std, dtype=np.float32)) ** 2
        self.basis = None if basis is None else torch.as_tensor(np.asarray(basis, dtype=np.float32))
        self.alpha_bar = np.asarray(alpha_bar, dtype=np.float64)
        self.counter = EvaluationCounter()

    def __call__(self, x: torch.Tensor, t: int) -> torch.Tensor:
        a = float(self.alpha_bar[int(t)])
        self.counter.forward += 1
        if x.requires_grad and torch.is_grad_enabled():
            self.counter.backward += 1
        state = x if self.basis is None else x.flatten(1) @ self.basis.to(x)  # components c = Uᵀx
        mean, var = self.mean.to(x), self.var.to(x)
        centred = (state - math.sqrt(a) * mean) / (a * var + 1.0 - a)
        eps = math.sqrt(1.0 - a) * centred
        out = eps
        if self.prediction == "v_prediction":
            x0 = mean + math.sqrt(a) * var * centred
            out = math.sqrt(a) * eps - math.sqrt(1.0 - a) * x0
        return out if self.basis is None else (out @ self.basis.to(x).T).reshape(x.shape)
