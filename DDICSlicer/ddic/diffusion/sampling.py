"""The two deterministic ODE loops of DDIB: encode (ForwardODE) and decode (BackwardODE).

Both run on one :class:`StepGrid`; DDIC's guided decode (``ddic.translate``) is built from the same
step functions, so with a zero learning rate it reproduces :func:`ddim_decode` exactly.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from .schedule import StepGrid, ddim_decode_step, ddim_encode_step

StepHook = Optional[Callable[[], None]]


@torch.no_grad()
def ddim_encode(eps_model, x0: torch.Tensor, grid: StepGrid, keep_trajectory: bool = False,
                on_step: StepHook = None) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    """ForwardODE: clean images → latent, unclipped, ending at ᾱ = 0 (DDIB).

    Returns the latent and, with ``keep_trajectory``, the states at levels 0 … N (level 0 is the input
    itself, as DDIB's encoder treats x₀ as level 0), which the `cached` DDIC modes reuse as the US chain.
    """
    x = x0
    trajectory = [x0] if keep_trajectory else None
    for level in range(len(grid)):
        eps = eps_model(x, grid.t(level))
        x = ddim_encode_step(x, eps, grid.alpha(level), grid.alpha(level + 1))
        if trajectory is not None:
            trajectory.append(x)
        if on_step is not None:
            on_step()
    return x, trajectory


@torch.no_grad()
def ddim_decode(eps_model, latent: torch.Tensor, grid: StepGrid, clip: bool = True,
                on_step: StepHook = None) -> torch.Tensor:
    """BackwardODE: latent → images, x̂₀ clamped and ε re-derived at every step (unless ``clip`` is off)."""
    x = latent
    for level in reversed(range(len(grid))):
        eps = eps_model(x, grid.t(level))
        x = ddim_decode_step(x, eps, grid.alpha(level), grid.alpha(level - 1), clip=clip).x_prev
        if on_step is not None:
            on_step()
    return x
