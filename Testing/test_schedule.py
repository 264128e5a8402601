"""The cosine schedule, the step grids and the DDIM step conventions."""

import math

import numpy as np
import pytest
import torch

from ddic.diffusion.schedule import (
    NUM_TRAIN_TIMESTEPS, Schedule, StepGrid, cosine_alpha_bar, ddim_decode_step, ddim_encode_step,
    decode_step_jacobian_diag, spaced_timesteps,
)
from ddic.errors import DDICInputError, DDICModelError


def test_cosine_endpoint_values():
    a = cosine_alpha_bar()
    assert a.dtype == np.float64 and a.shape == (NUM_TRAIN_TIMESTEPS,)
    assert a[0] == pytest.approx(0.99995872, rel=1e-7)
    assert a[998] == pytest.approx(2.42876691e-6, rel=1e-6)
    assert a[999] == pytest.approx(2.42876691e-9, rel=1e-6)  # β_999 capped at 0.999
    assert np.all(np.diff(a) < 0)


def test_only_the_last_beta_is_capped():
    a = cosine_alpha_bar()
    betas = 1 - a / np.concatenate([[1.0], a[:-1]])
    assert betas[-1] == pytest.approx(0.999)
    assert np.all(betas[:-1] < 0.999)


def test_matches_diffusers_squaredcos_in_float32():
    from diffusers import DDPMScheduler

    reference = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2").alphas_cumprod
    ours = cosine_alpha_bar()
    np.testing.assert_allclose(ours, reference.double().numpy(), atol=1e-6)
    assert np.max(np.abs(ours.astype(np.float32) - ours)) < 1e-6


def _guided_diffusion_spacing(num_timesteps, count):
    # the reference algorithm (space_timesteps with one section), written out for comparison
    stride = (num_timesteps - 1) / (count - 1)
    taken, cursor = [], 0.0
    for _ in range(count):
        taken.append(round(cursor))
        cursor += stride
    return taken


@pytest.mark.parametrize("count", [2, 10, 25, 50, 100, 250, 999])  # 999 has a rounding tie at 499.5
def test_grid_matches_guided_diffusion_spacing(count):
    grid = spaced_timesteps(count)
    assert list(grid) == _guided_diffusion_spacing(1000, count)
    assert grid[0] == 0 and grid[-1] == 999 and np.all(np.diff(grid) > 0)


def test_full_grid_is_every_timestep():
    assert np.array_equal(spaced_timesteps(1000), np.arange(1000))


@pytest.mark.parametrize("bad", [0, 1, 1001, 2.5, True, "100"])
def test_grid_rejects_bad_counts(bad):
    with pytest.raises(DDICInputError, match="steps"):
        spaced_timesteps(bad)


def test_grid_levels_follow_ddib_conventions(schedule):
    grid = schedule.grid(50)
    assert isinstance(grid, StepGrid) and len(grid) == 50
    assert grid.alpha(-1) == 1.0  # below the grid: the clean image
    assert grid.alpha(50) == 0.0  # above it: the encoder's end point
    assert grid.alpha(49) == pytest.approx(schedule.alpha_bar[999])
    assert grid.t(49) == 999 and grid.t(0) == 0


def test_schedule_card_round_trip_and_refusals(schedule):
    assert Schedule.from_dict(schedule.to_dict()) == schedule
    with pytest.raises(DDICModelError, match="schedule"):
        Schedule.from_dict({**schedule.to_dict(), "name": "linear"})
    with pytest.raises(DDICModelError, match="offset"):
        Schedule.from_dict({**schedule.to_dict(), "cosine_offset": 0.01})
    with pytest.raises(DDICModelError, match="prediction type 'sample'"):
        Schedule.from_dict({**schedule.to_dict(), "prediction": "sample"})
    v = Schedule.from_dict({**schedule.to_dict(), "prediction": "v_prediction"})
    assert v.prediction == "v_prediction" and v != schedule and np.array_equal(v.alpha_bar, schedule.alpha_bar)


def test_encode_step_is_the_ddim_formula():
    x, eps = torch.tensor([0.3]), torch.tensor([-0.7])
    a, a_next = 0.9, 0.5
    x0 = (0.3 - math.sqrt(0.1) * -0.7) / math.sqrt(0.9)
    expected = math.sqrt(0.5) * x0 + math.sqrt(0.5) * -0.7
    assert ddim_encode_step(x, eps, a, a_next).item() == pytest.approx(expected, rel=1e-6)
    # ending at ᾱ = 0 the state is ε itself (DDIB's latent)
    assert ddim_encode_step(x, eps, a, 0.0).item() == pytest.approx(-0.7)


def test_decode_step_clamps_and_rederives_eps():
    a, a_prev = 0.25, 0.64
    x = torch.tensor([1.0, 0.1])
    eps = torch.tensor([-2.0, 0.2])  # first pixel: x̂0 = (1 + 0.866·2)/0.5 > 1 → clamped
    step = ddim_decode_step(x, eps, a, a_prev, clip=True)
    assert step.saturated.tolist() == [True, False]
    assert step.pred_x0[0].item() == pytest.approx(1.0)
    eps_rederived = (1.0 - 0.5 * 1.0) / math.sqrt(0.75)
    assert step.x_prev[0].item() == pytest.approx(0.8 * 1.0 + 0.6 * eps_rederived, rel=1e-6)
    unclipped = ddim_decode_step(x, eps, a, a_prev, clip=False)
    assert unclipped.saturated is None
    assert unclipped.x_prev[1].item() == pytest.approx(step.x_prev[1].item(), rel=1e-6)


def test_decode_jacobian_blend_limits():
    # no signal (ᾱ → 0): x̂0-constant limit; low noise: ε-constant limit c1 = √(ᾱ_prev/ᾱ)
    high = decode_step_jacobian_diag(None, 1e-9, 1e-4, 0.25)
    assert high == pytest.approx(math.sqrt(1 - 1e-4) / math.sqrt(1 - 1e-9), rel=1e-4)
    low = decode_step_jacobian_diag(None, 0.9999, 0.99995, 0.25)
    assert low == pytest.approx(math.sqrt(0.99995 / 0.9999), rel=1e-3)
    sat = decode_step_jacobian_diag(torch.tensor([True, False]), 0.5, 0.6, 0.25)
    assert sat[0].item() == pytest.approx(math.sqrt(0.4 / 0.5), rel=1e-6)
    assert sat[1].item() == pytest.approx(decode_step_jacobian_diag(None, 0.5, 0.6, 0.25), rel=1e-6)
