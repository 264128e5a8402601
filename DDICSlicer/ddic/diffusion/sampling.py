"""The two deterministic ODE loops of DDIB: encode (ForwardODE) and decode (BackwardODE).

Both run on one :class:`StepGrid` with one solver (:mod:`.solvers`); DDIC's guided decode
(``ddic.translate``) is built from the same step function, so with a zero learning rate it reproduces
:func:`ode_decode` exactly. A model is any callable ``model(x, t)`` (t the original training timestep) with
a ``prediction`` attribute (``epsilon`` if absent; see :mod:`.prediction`).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from .prediction import predict
from .schedule import StepGrid
from .solvers import SOLVER_ORDER, History, half_log_snr, solver_step

StepHook = Optional[Callable[[], None]]


def solver_order(solver: str) -> int:
    try:
        return SOLVER_ORDER[solver]
    except KeyError:
        raise ValueError(f"unknown solver {solver!r}; expected one of {', '.join(SOLVER_ORDER)}") from None


@torch.no_grad()
def ode_encode(model, x0: torch.Tensor, grid: StepGrid, solver: str = "ddim", keep_trajectory: bool = False,
               on_step: StepHook = None) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    """ForwardODE: clean images → latent, unclipped, ending at ᾱ = 0 (DDIB).

    Returns the latent and, with ``keep_trajectory``, the states at levels 0 … N (level 0 is the input
    itself, as DDIB's encoder treats x₀ as level 0), which the `cached` DDIC modes reuse as the US chain.
    """
    order = solver_order(solver)
    x, history = x0, None
    trajectory = [x0] if keep_trajectory else None
    for level in range(len(grid)):
        alpha = grid.alpha(level)
        step = solver_step(x, predict(model, x, grid.t(level), alpha), alpha, grid.alpha(level + 1),
                           history, order, clip=False)
        history = History(step.x0, half_log_snr(alpha))
        x = step.x_to
        if trajectory is not None:
            trajectory.append(x)
        if on_step is not None:
            on_step()
    return x, trajectory


@torch.no_grad()
def ode_decode(model, latent: torch.Tensor, grid: StepGrid, solver: str = "ddim", clip: bool = True,
               on_step: StepHook = None) -> torch.Tensor:
    """BackwardODE: latent → images, x̂₀ clamped and ε re-derived at every step (unless ``clip`` is off)."""
    order = solver_order(solver)
    x, history = latent, None
    for level in reversed(range(len(grid))):
        alpha = grid.alpha(level)
        step = solver_step(x, predict(model, x, grid.t(level), alpha), alpha, grid.alpha(level - 1),
                           history, order, clip=clip)
        history = History(step.x0, half_log_snr(alpha))
        x = step.x_to
        if on_step is not None:
            on_step()
    return x
