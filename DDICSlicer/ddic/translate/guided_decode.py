"""DDIC's guided decode: the MRI chain is pulled, one gradient step per level, towards the structure of
the parallel US reconstruction (paper eqs. 10–11, Fig. 2; the step is pix2pix-zero's).

Per level i (t = grid.t(i)), both chains starting from the encoded latent:

1. US chain, no gradient: x_prev = DDIM(US, x, i) (`faithful`), or the encoder's state at level i−1
   (`cached`, `cheap`: exact in the ODE limit, one network call less).
2. Guided MRI step: loss = Σ_b −s·r_b(med(x_prev_b), med(y_prev_b)) with y_prev = DDIM(MRI, y, i)
   computed from a leaf copy of y; the gradient flows through this one MRI call only, never the chain.
3. y ← y − lr·∂loss/∂y (plain SGD, lr scaled by reference/N), then y_prev = DDIM(MRI, y, i) again.

`cheap` skips the backward through the network: the step's Jacobian is replaced by a diagonal estimate
that needs no network derivative (ε held constant at low noise, x̂₀ at high noise; see
:func:`ddic.diffusion.schedule.decode_step_jacobian_diag`), so the update and the new y_prev follow in
closed form from the gradient with respect to y_prev — one MRI call per level. An approximation.
With lr = 0 every mode returns exactly what :func:`ddic.diffusion.sampling.ddim_decode` returns.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..diffusion.sampling import StepHook
from ..diffusion.schedule import StepGrid, ddim_decode_step, decode_step_jacobian_diag
from .guidance import correlation_loss
from .options import TranslateOptions


@dataclass
class DecodeTrace:
    """Per guided level: the timestep and each image's correlation before the update (for reports)."""

    timesteps: list[int]
    correlation: torch.Tensor  # (levels, B), the signed Pearson r that the loss pushes on


def guided_decode(latent: torch.Tensor, us_eps, mri_eps, grid: StepGrid, options: TranslateOptions,
                  us_trajectory: list[torch.Tensor] | None = None,
                  on_step: StepHook = None) -> tuple[torch.Tensor, DecodeTrace]:
    """Decode ``latent`` with the MRI model under imposed correlation; returns ŷ₀ (in [−1, 1]) and a trace."""
    uses_cache = options.mode in ("cached", "cheap")
    if uses_cache and (us_trajectory is None or len(us_trajectory) != len(grid) + 1):
        raise ValueError("the cached and cheap modes need the encoder trajectory (levels 0 … N)")
    lr = options.step_lr(latent.shape[-1])
    clip = options.clip_decode
    x = latent
    y = latent
    timesteps: list[int] = []
    correlations: list[torch.Tensor] = []

    for level in reversed(range(len(grid))):
        t, alpha, alpha_prev = grid.t(level), grid.alpha(level), grid.alpha(level - 1)

        if uses_cache:
            x_prev = us_trajectory[max(level - 1, 0)]
        else:
            with torch.no_grad():
                x_prev = ddim_decode_step(x, us_eps(x, t), alpha, alpha_prev, clip).x_prev

        if not options.guides(t):
            with torch.no_grad():
                y_prev = ddim_decode_step(y, mri_eps(y, t), alpha, alpha_prev, clip).x_prev
        elif options.mode == "cheap":
            with torch.no_grad():
                step = ddim_decode_step(y, mri_eps(y, t), alpha, alpha_prev, clip)
            y_prev_leaf = step.x_prev.detach().requires_grad_(True)
            with torch.enable_grad():
                per_image = correlation_loss(x_prev, y_prev_leaf, options.median_kernel, options.corr_sign)
                (grad_prev,) = torch.autograd.grad(per_image.sum(), y_prev_leaf)
            with torch.no_grad():
                jacobian = decode_step_jacobian_diag(step.saturated, alpha, alpha_prev,
                                                      options.cheap_prior_variance)
                y_prev = step.x_prev - lr * jacobian * jacobian * grad_prev
            timesteps.append(t)
            correlations.append(-per_image.detach())
        else:
            y_leaf = y.detach().requires_grad_(True)
            with torch.enable_grad():
                guided = ddim_decode_step(y_leaf, mri_eps(y_leaf, t), alpha, alpha_prev, clip).x_prev
                per_image = correlation_loss(x_prev, guided, options.median_kernel, options.corr_sign)
                (grad,) = torch.autograd.grad(per_image.sum(), y_leaf)
            with torch.no_grad():
                y = y - lr * grad
                y_prev = ddim_decode_step(y, mri_eps(y, t), alpha, alpha_prev, clip).x_prev
            timesteps.append(t)
            correlations.append(-per_image.detach())

        x, y = x_prev, y_prev
        if on_step is not None:
            on_step()

    stacked = torch.stack(correlations) if correlations else torch.empty(0, latent.shape[0])
    return y, DecodeTrace(timesteps=timesteps, correlation=stacked.cpu())
