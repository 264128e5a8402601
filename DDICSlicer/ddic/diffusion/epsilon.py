"""ε-models: what the ODE loops call. A trained UNet behind a uniform interface, and the exact ε of a
Gaussian data distribution, which lets the whole method be tested without trained weights.

An ε-model is any callable ``eps(x, t) -> Tensor`` with x of shape (B, 1, H, W) in float32 and t the
*original* training timestep (an int). It also counts its evaluations, which the benchmark reports.
"""

from __future__ import annotations

import math
from contextlib import nullcontext

import numpy as np
import torch


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


class UNetEpsilon:
    """A frozen ``UNet2DModel`` as an ε-model: weights never get gradients, inputs may.

    On CUDA the network runs under bf16 autocast when ``bf16`` is set; the output is returned in float32 so
    that the schedule, median and correlation arithmetic around it stays in float32.
    """

    def __init__(self, unet: torch.nn.Module, device: torch.device | str = "cpu", bf16: bool = False) -> None:
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


class GaussianEpsilon:
    """The optimal ε for data x₀ ~ N(μ, s²·I) under a given ᾱ schedule (no network).

    ε*(x_t, t) = √(1−ᾱ_t)·(x_t − √ᾱ_t·μ) / (ᾱ_t·s² + 1 − ᾱ_t). With it, DDIM encode→decode reconstructs
    and DDIB between two Gaussians reproduces the affine optimal-transport map, with errors that
    shrink like 1/N — the reference tests of the translation code. It is differentiable in x.
    """

    def __init__(self, mean: float, std: float, alpha_bar: np.ndarray) -> None:
        self.mean = float(mean)
        self.std = float(std)
        self.alpha_bar = np.asarray(alpha_bar, dtype=np.float64)
        self.counter = EvaluationCounter()

    def __call__(self, x: torch.Tensor, t: int) -> torch.Tensor:
        a = float(self.alpha_bar[int(t)])
        self.counter.forward += 1
        if x.requires_grad and torch.is_grad_enabled():
            self.counter.backward += 1
        return math.sqrt(1.0 - a) * (x - math.sqrt(a) * self.mean) / (a * self.std ** 2 + 1.0 - a)
