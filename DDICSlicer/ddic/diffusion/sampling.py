"""The two deterministic ODE loops of DDIB: encode (ForwardODE) and decode (BackwardODE).

Both run on one :class:`StepGrid` with one solver (:mod:`.solvers`); DDIC's guided decode
(``ddic.translate``) is built from the same step function, so with a zero learning rate it reproduces
:func:`ode_decode` exactly. A model is any callable ``model(x, t)`` (t the original training timestep) with
a ``prediction`` attribute (``epsilon`` if absent; see :mod:`.prediction`).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

import math

from .constants import TERMINAL_STEPS
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
               on_step: StepHook = None, terminal: str = "explicit", clip: bool = True
               ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    """ForwardODE: clean images → latent, unclipped, ending at ᾱ = 0 (DDIB).

    Returns the latent and, with ``keep_trajectory``, the states at levels 0 … N (level 0 is the input
    itself, as DDIB's encoder treats x₀ as level 0), which the `cached` DDIC modes reuse as the US chain.

    ``terminal="exact"`` replaces the explicit steps from level N−2 to the end by :func:`exact_terminal_latent`:
    the latent the decoder's first step (with ``clip`` as the decoder will use it) takes back to the state at
    level N−2. The same N network evaluations; see :data:`ddic.diffusion.constants.TERMINAL_STEPS`.
    """
    if terminal not in TERMINAL_STEPS:
        raise ValueError(f"unknown terminal step {terminal!r}; expected one of {', '.join(TERMINAL_STEPS)}")
    order = solver_order(solver)
    x, history = x0, None
    trajectory = [x0] if keep_trajectory else None
    explicit_levels = len(grid) if terminal == "explicit" else len(grid) - 2  # exact: up to level N−2
    for level in range(explicit_levels):
        alpha = grid.alpha(level)
        step = solver_step(x, predict(model, x, grid.t(level), alpha), alpha, grid.alpha(level + 1),
                           history, order, clip=False)
        history = History(step.x0, half_log_snr(alpha))
        x = step.x_to
        if trajectory is not None:
            trajectory.append(x)
        if on_step is not None:
            on_step()
    if terminal == "exact":
        x = exact_terminal_latent(model, x, grid, clip, on_step)
        if trajectory is not None:
            trajectory += [x, x]  # the decoder takes the latent as the state at level N−1
    return x, trajectory


@torch.no_grad()
def exact_terminal_latent(model, x_before: torch.Tensor, grid: StepGrid, clip: bool = True,
                          on_step: StepHook = None) -> torch.Tensor:
    """The latent L whose first decode step returns ``x_before`` (the state at level N−2), by one corrector step.

    Why: DDIB's decoder starts by treating the latent as the state at the last level (ᾱ = 2.4e-9) and steps to
    level N−2 with the x̂₀ it predicts *there*, while the explicit encoder stepped up with x̂₀ predicted at
    level N−2 (DPM-Solver++(2M) even extrapolates it, with weight 4–5 on that long last interval in λ). The
    mismatch, scaled by √ᾱ at level N−2, was the dominant round-trip error at N = 30–60. The decode step is
    x_{N−2} = α'·x̂₀(L) + (σ'/σ)·(L − α·x̂₀(L)) (α, σ at the last level, α', σ' at N−2; x̂₀ clamped when the
    decoder clips), so L = α·x̂₀(L) + (σ/σ')·(x_{N−2} − α'·x̂₀(L)): a fixed point, contracting with factor
    ≈ α'/σ' (≈ 0.04). One evaluation at level N−2 gives the first-order start, one at the last level the
    correction — as many evaluations as the two explicit steps it replaces.
    """
    n = len(grid)
    a_bar, a_bar_before = grid.alpha(n - 1), grid.alpha(n - 2)
    a, s = math.sqrt(a_bar), math.sqrt(1.0 - a_bar)
    a_before, s_before = math.sqrt(a_bar_before), math.sqrt(1.0 - a_bar_before)
    latent = predict(model, x_before, grid.t(n - 2), a_bar_before).eps  # the explicit first-order step to ᾱ = 0
    if on_step is not None:
        on_step()
    x0 = predict(model, latent, grid.t(n - 1), a_bar).x0
    if clip:
        x0 = x0.clamp(-1.0, 1.0)
    latent = a * x0 + (s / s_before) * (x_before - a_before * x0)
    if on_step is not None:
        on_step()
    return latent


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
