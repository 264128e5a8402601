"""DDIM encode / decode / DDIB against the exact ε of Gaussian data (no trained network needed).

For x₀ ~ N(μ, s²) the probability-flow ODE maps data to noise and back exactly, and DDIB between two
Gaussians is the affine optimal-transport map; DDIM's discretisation error must shrink like 1/N.
"""

import numpy as np
import pytest
import torch

from ddic.diffusion.denoisers import GaussianDenoiser
from ddic.diffusion.sampling import ode_decode, ode_encode
from ddic.diffusion.schedule import ddim_decode_step, decode_step_jacobian_diag

MU_A, S_A, MU_B, S_B = 0.1, 0.2, -0.2, 0.3


@pytest.fixture(scope="module")
def source():
    g = torch.Generator().manual_seed(0)
    return MU_A + S_A * torch.randn(4, 1, 16, 16, generator=g)


def rmse(a, b):
    return (a - b).pow(2).mean().sqrt().item()


def errors(schedule, source, counts):
    us, mri = GaussianDenoiser(MU_A, S_A, schedule.alpha_bar), GaussianDenoiser(MU_B, S_B, schedule.alpha_bar)
    ot_map = MU_B + S_B / S_A * (source - MU_A)
    out = {}
    for n in counts:
        grid = schedule.grid(n)
        latent, _ = ode_encode(us, source, grid)
        out[n] = (rmse(ode_decode(us, latent, grid, clip=False), source),
                  rmse(ode_decode(mri, latent, grid, clip=False), ot_map))  # Gaussian tails leave [−1, 1]
    return out


def test_reconstruction_and_ot_map_errors_shrink_like_one_over_n(schedule, source):
    err = errors(schedule, source, [10, 20, 40, 80, 1000])
    for n in (10, 20, 40):
        for which in (0, 1):
            ratio = err[n][which] / err[2 * n][which]
            assert 1.6 < ratio < 2.6, (n, which, ratio)  # first order: halving the step halves the error
    reconstruction, ot_error = err[1000]
    assert reconstruction < 3e-3 and ot_error < 4e-3


def test_latent_is_standard_normal_at_full_steps(schedule, source):
    us = GaussianDenoiser(MU_A, S_A, schedule.alpha_bar)
    latent, trajectory = ode_encode(us, source, schedule.grid(1000), keep_trajectory=True)
    assert len(trajectory) == 1001 and trajectory[0] is source
    assert torch.equal(trajectory[-1], latent)
    expected = (source - MU_A) / S_A  # the exact flow maps N(μ, s²) affinely onto N(0, 1)
    assert rmse(latent, expected) < 0.02


def test_clipped_decode_from_999_is_stable_where_unclipped_explodes(schedule):
    """Pitfall P1: ᾱ_999 ≈ 2.4e-9 amplifies any ε error by √(ᾱ_prev/ᾱ_999)."""
    g = torch.Generator().manual_seed(1)
    exact = GaussianDenoiser(0.0, 0.5, schedule.alpha_bar)

    def noisy_eps(x, t):  # a slightly wrong network: 5 % error in ε
        return exact(x, t) + 0.05 * torch.randn(x.shape, generator=g)

    latent = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    grid = schedule.grid(10)
    unclipped = ode_decode(noisy_eps, latent, grid, clip=False)
    clipped = ode_decode(noisy_eps, latent, grid, clip=True)
    assert unclipped.abs().max().item() > 50.0
    assert clipped.abs().max().item() <= 1.0 + 1e-6


def test_cheap_jacobian_is_exact_for_gaussian_data(schedule):
    """With the data variance as prior, the diagonal estimate equals the true Jacobian of a decode step."""
    eps_model = GaussianDenoiser(0.0, 0.5, schedule.alpha_bar)
    grid = schedule.grid(20)
    for level in (19, 12, 5, 0):
        x = torch.randn(1, 1, 4, 4, dtype=torch.float64)
        a, a_prev = grid.alpha(level), grid.alpha(level - 1)

        def step(v):
            return ddim_decode_step(v, eps_model(v, grid.t(level)), a, a_prev, clip=False).x_prev

        jac = torch.autograd.functional.jacobian(step, x).reshape(16, 16)
        assert torch.allclose(jac, torch.diag(torch.diagonal(jac)))  # elementwise
        expected = decode_step_jacobian_diag(None, a, a_prev, prior_variance=0.25)
        np.testing.assert_allclose(torch.diagonal(jac).numpy(), expected, rtol=1e-6)
