"""DDIC's guided decode: the MRI chain is pulled, one gradient step per level, towards the structure of
the parallel US reconstruction (paper eqs. 10–11, Fig. 2; the step is pix2pix-zero's).

Per level i (t = grid.t(i)), both chains starting from the encoded latent:

1. US chain, no gradient: x_prev = step(US, x, i) (`faithful`), or the encoder's state at level i−1
   (`cached`, `cheap`: exact in the ODE limit, one network call less).
2. Guided MRI step: loss = Σ_b −s·r_b(med(x_prev_b), med(y_prev_b)) with y_prev = step(MRI, y, i)
   computed from a leaf copy of y; the gradient flows through this one MRI call only, never the chain.
3. y ← y − lr·∂loss/∂y (plain SGD; lr per step from :meth:`TranslateOptions.step_lr`), then
   y_prev = step(MRI, y, i) again.

``step`` is the chosen solver (:mod:`ddic.diffusion.solvers`): first-order DDIM as the paper, or
DPM-Solver++(2M), whose second-order term uses the chain's x̂₀ of the previous level (that of the updated
y, so the history is the chain actually followed). Either way there is one guided step per level, so lr
keeps its per-level meaning whatever the solver.

`cheap` skips the backward through the network: the step's Jacobian is replaced by a diagonal estimate
that needs no network derivative (ε held constant at low noise, x̂₀ at high noise; see
:func:`ddic.diffusion.schedule.decode_step_jacobian_diag`), so the update and the new y_prev follow in
closed form from the gradient with respect to y_prev — one MRI call per level. An approximation.
With lr = 0 every mode returns exactly what :func:`ddic.diffusion.sampling.ode_decode` returns.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..diffusion.prediction import predict
from ..diffusion.sampling import StepHook, solver_order
from ..diffusion.schedule import StepGrid, decode_step_jacobian_diag
from ..diffusion.solvers import History, half_log_snr, solver_step
from .guidance import correlation_loss
from .options import TranslateOptions


@dataclass
class DecodeTrace:
    """Per guided level: the timestep and each image's correlation before the update (for reports)."""

    timesteps: list[int]
    correlation: torch.Tensor  # (levels, B), the signed Pearson r that the loss pushes on
    us_reconstruction: torch.Tensor | None = None  # the US chain's end (faithful mode): the US model's decode


def guided_decode(latent: torch.Tensor, us_model, mri_model, grid: StepGrid, options: TranslateOptions,
                  us_trajectory: list[torch.Tensor] | None = None,
                  on_step: StepHook = None) -> tuple[torch.Tensor, DecodeTrace]:
    """Decode ``latent`` with the MRI model under imposed correlation; returns ŷ₀ (in [−1, 1]) and a trace."""
    uses_cache = options.mode in ("cached", "cheap")
    if uses_cache and (us_trajectory is None or len(us_trajectory) != len(grid) + 1):
        raise ValueError("the cached and cheap modes need the encoder trajectory (levels 0 … N)")
    lr = options.step_lr(latent.shape[-1])
    clip = options.clip_decode
    order = solver_order(options.solver)
    x = y = latent
    x_history = y_history = None
    timesteps: list[int] = []
    correlations: list[torch.Tensor] = []

    def mri_step(state: torch.Tensor, t: int, alpha: float, alpha_prev: float):
        return solver_step(state, predict(mri_model, state, t, alpha), alpha, alpha_prev, y_history, order, clip)

    for level in reversed(range(len(grid))):
        t, alpha, alpha_prev = grid.t(level), grid.alpha(level), grid.alpha(level - 1)
        lam = half_log_snr(alpha)

        if uses_cache:
            x_prev = us_trajectory[max(level - 1, 0)]
        else:
            with torch.no_grad():
                us = solver_step(x, predict(us_model, x, t, alpha), alpha, alpha_prev, x_history, order, clip)
            x_prev, x_history = us.x_to, History(us.x0, lam)

        if not options.guides(t):
            with torch.no_grad():
                step = mri_step(y, t, alpha, alpha_prev)
        elif options.mode == "cheap":
            with torch.no_grad():
                step = mri_step(y, t, alpha, alpha_prev)
            y_prev_leaf = step.x_to.detach().requires_grad_(True)
            with torch.enable_grad():
                per_image = correlation_loss(x_prev, y_prev_leaf, options.median_kernel, options.corr_sign,
                                             options.guidance, options.guidance_window)
                (grad_prev,) = torch.autograd.grad(per_image.sum(), y_prev_leaf)
            with torch.no_grad():
                jacobian = decode_step_jacobian_diag(step.saturated, alpha, alpha_prev,
                                                      options.cheap_prior_variance, gain=step.gain)
                step = step._replace(x_to=step.x_to - lr * jacobian * jacobian * grad_prev)
            timesteps.append(t)
            correlations.append(-per_image.detach())
        else:
            y_leaf = y.detach().requires_grad_(True)
            with torch.enable_grad():
                guided = mri_step(y_leaf, t, alpha, alpha_prev).x_to
                per_image = correlation_loss(x_prev, guided, options.median_kernel, options.corr_sign,
                                             options.guidance, options.guidance_window)
                (grad,) = torch.autograd.grad(per_image.sum(), y_leaf)
            with torch.no_grad():
                y = y - lr * grad
                step = mri_step(y, t, alpha, alpha_prev)
            timesteps.append(t)
            correlations.append(-per_image.detach())

        x, y, y_history = x_prev, step.x_to, History(step.x0.detach(), lam)
        if on_step is not None:
            on_step()

    stacked = torch.stack(correlations) if correlations else torch.empty(0, latent.shape[0])
    return y, DecodeTrace(timesteps=timesteps, correlation=stacked.cpu(),
                          us_reconstruction=None if uses_cache else x)
