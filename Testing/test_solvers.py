"""The ODE solvers (ddic.diffusion.solvers) against diffusers' DPM-Solver++ schedulers and against the exact
denoiser of an image-like Gaussian, and the parameterisation's effect on the full-depth round trip.

The image-like Gaussian: 16×16 images whose DCT components are independent with variances ∝ 1/(1 + f²)^1.5
(a few low-frequency components carry most of the variance, as in real images) and a dark mean. For it the
probability-flow ODE is known exactly, so every error below is the solver's (or the injected network error).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddic.diffusion.denoisers import GaussianDenoiser
from ddic.diffusion.prediction import Prediction, to_prediction
from ddic.diffusion.sampling import ode_decode, ode_encode
from ddic.diffusion.schedule import Schedule, ddim_decode_step, ddim_encode_step
from ddic.diffusion.solvers import History, half_log_snr, solver_step

SIZE = 16


def dct_basis(n: int) -> np.ndarray:
    k = np.arange(n)
    m = np.cos(np.pi * (k[None, :] + 0.5) * k[:, None] / n)
    m[0] /= np.sqrt(2.0)
    m *= np.sqrt(2.0 / n)
    return np.kron(m, m).T  # orthonormal; columns are the 2-D DCT basis images


@pytest.fixture(scope="module")
def image_gaussian(schedule):
    """(basis, component means, component stds, 8 sample images) of the image-like Gaussian."""
    basis = dct_basis(SIZE)
    f2 = (np.arange(SIZE)[:, None] ** 2 + np.arange(SIZE)[None, :] ** 2).ravel()
    var = 1.0 / (1.0 + f2) ** 1.5
    var *= SIZE * SIZE * 0.05 / var.sum()  # mean pixel variance 0.05; the top component's ≈ 4.6
    mean = np.zeros(SIZE * SIZE)
    mean[0] = -0.3 * SIZE  # mean image −0.3
    std = np.sqrt(var)
    g = torch.Generator().manual_seed(0)
    comps = torch.from_numpy(mean).float() + torch.from_numpy(std).float() * torch.randn(8, SIZE * SIZE, generator=g)
    images = (comps @ torch.from_numpy(basis).float().T).reshape(8, 1, SIZE, SIZE)
    return basis, mean, std, images


def model(schedule, image_gaussian, prediction="epsilon"):
    basis, mean, std, _ = image_gaussian
    return GaussianDenoiser(mean, std, schedule.alpha_bar, prediction=prediction, basis=basis)


class NoisyNetwork:
    """An imperfect network: the exact output plus an independent 2 % (of unit scale) error at every call."""

    def __init__(self, exact, error: float = 0.02, seed: int = 1) -> None:
        self.exact, self.error = exact, error
        self.prediction = exact.prediction
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, x, t):
        return self.exact(x, t) + self.error * torch.randn(x.shape, generator=self.generator)


def rmse(a, b) -> float:
    return (a - b).pow(2).mean().sqrt().item()


def round_trip(m, images, schedule, steps, solver, clip=False) -> float:
    grid = schedule.grid(steps)
    latent, _ = ode_encode(m, images, grid, solver)
    return rmse(ode_decode(m, latent, grid, solver, clip=clip), images)


def test_ddim_solver_is_the_ddim_step_bit_for_bit():
    g = torch.Generator().manual_seed(3)
    x, eps = torch.randn(2, 1, 4, 4, generator=g), torch.randn(2, 1, 4, 4, generator=g)
    pred = to_prediction(eps, x, 0.3, "epsilon")
    assert torch.equal(solver_step(x, pred, 0.3, 0.1).x_to, ddim_encode_step(x, eps, 0.3, 0.1))
    old = ddim_decode_step(x, eps, 0.3, 0.6, clip=True)
    new = solver_step(x, pred, 0.3, 0.6, clip=True)
    assert torch.equal(new.x_to, old.x_prev) and torch.equal(new.saturated, old.saturated)


def test_v_and_epsilon_give_the_same_estimates_without_dividing_by_alpha():
    g = torch.Generator().manual_seed(4)
    x0, eps = torch.rand(1, 1, 4, 4, generator=g) * 2 - 1, torch.randn(1, 1, 4, 4, generator=g)
    for alpha_bar in (0.999, 0.5, 1e-3):
        a, s = math.sqrt(alpha_bar), math.sqrt(1 - alpha_bar)
        x = a * x0 + s * eps
        from_eps, from_v = to_prediction(eps, x, alpha_bar, "epsilon"), to_prediction(a * eps - s * x0, x, alpha_bar,
                                                                                      "v_prediction")
        assert torch.allclose(from_eps.x0, x0, atol=1e-4) and torch.allclose(from_v.x0, x0, atol=1e-5)
        assert torch.allclose(from_v.eps, eps, atol=1e-5)
    # at ᾱ_999 an ε error of 1e-3 becomes an x̂₀ error of ≈ 20 (1/√ᾱ); the same v error stays 1e-3
    a999 = Schedule().alpha_bar[999]
    x = torch.zeros(1)
    assert abs(to_prediction(torch.tensor([1e-3]), x, a999, "epsilon").x0.item()) > 15
    assert abs(to_prediction(torch.tensor([1e-3]), x, a999, "v_prediction").x0.item()) < 1.1e-3


@pytest.mark.parametrize("steps", [10, 25])
def test_dpmpp2m_decode_is_diffusers_dpm_solver_plus_plus(schedule, image_gaussian, steps):
    """Our DPM-Solver++(2M) decode on the DDIB grid = diffusers' DPMSolverMultistepScheduler (dpmsolver++,
    order 2, first-order final step to σ = 0) given the same ᾱ (its betas) and the same timesteps."""
    from diffusers import DPMSolverMultistepScheduler

    m = model(schedule, image_gaussian)
    grid = schedule.grid(steps)
    betas = 1.0 - schedule.alpha_bar / np.concatenate([[1.0], schedule.alpha_bar[:-1]])
    reference = DPMSolverMultistepScheduler(num_train_timesteps=1000, trained_betas=betas,
                                            algorithm_type="dpmsolver++", solver_order=2, prediction_type="epsilon",
                                            thresholding=False, lower_order_final=True, final_sigmas_type="zero")
    reference.set_timesteps(timesteps=[int(t) for t in grid.timesteps[::-1]])
    latent = torch.randn(2, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(5))
    ours = ode_decode(m, latent, grid, "dpmpp2m", clip=False)
    x = latent.clone()
    for t in reference.timesteps:
        x = reference.step(m(x, int(t)), t, x).prev_sample
    assert rmse(ours, x) < 2e-4 * rmse(ours, torch.zeros_like(ours)) + 1e-5


def test_dpmpp2m_encode_is_diffusers_dpm_solver_inversion(schedule, image_gaussian):
    """The encode = diffusers' DPMSolverMultistepInverseScheduler on the same levels (compared up to the last
    finite level: diffusers cannot step to ᾱ = 0, where ours ends with a first-order step, as DDIB's)."""
    from diffusers import DPMSolverMultistepInverseScheduler

    m = model(schedule, image_gaussian)
    grid = schedule.grid(20)
    betas = 1.0 - schedule.alpha_bar / np.concatenate([[1.0], schedule.alpha_bar[:-1]])
    reference = DPMSolverMultistepInverseScheduler(num_train_timesteps=1000, trained_betas=betas,
                                                   algorithm_type="dpmsolver++", solver_order=2,
                                                   prediction_type="epsilon", lower_order_final=False)
    reference.set_timesteps(19)
    reference.timesteps = torch.from_numpy(grid.timesteps[:-1].copy())
    reference.sigmas = torch.from_numpy(np.sqrt((1 - grid.alpha_bar) / grid.alpha_bar)).float()
    _, _, _, images = image_gaussian
    _, trajectory = ode_encode(m, images, grid, "dpmpp2m", keep_trajectory=True)
    x = images.clone()
    for t in reference.timesteps:
        x = reference.step(m(x, int(t)), t, x).prev_sample
    assert rmse(trajectory[19], x) < 2e-4 * rmse(x, torch.zeros_like(x))


def test_second_order_round_trip_converges_faster_than_ddim(schedule, image_gaussian):
    """Exact model, full depth (to ᾱ = 0), no clamp: the round-trip error is the solvers' alone. Measured:
    DDIM 0.023 / 0.0128 at N = 50 / 100 (first order: ×1.8 per doubling), DPM-Solver++(2M) 0.0069 / 0.0023
    (×3)."""
    m = model(schedule, image_gaussian)
    images = image_gaussian[3]
    ddim = {n: round_trip(m, images, schedule, n, "ddim") for n in (50, 100)}
    dpm = {n: round_trip(m, images, schedule, n, "dpmpp2m") for n in (50, 100)}
    assert dpm[100] < 0.004 and dpm[100] < ddim[100] / 3
    assert dpm[50] / dpm[100] > 2.5 and 1.5 < ddim[50] / ddim[100] < 2.3


def test_v_prediction_keeps_the_full_depth_round_trip_accurate_with_an_imperfect_network(schedule,
                                                                                        image_gaussian):
    """The terminal-step regression test (issue 11): the same 2 % output error costs an ε-network a round trip
    several times worse than a v-network, because ε's x̂₀ = (x − σε̂)/α multiplies it by σ/α (≈ 20 000 at
    t = 999) while v's x̂₀ = αx − σv̂ does not. Measured (N = 100, DPM-Solver++(2M), decode clamped as in
    translation): v 0.0029, ε 0.0256."""
    images = image_gaussian[3]
    v = round_trip(NoisyNetwork(model(schedule, image_gaussian, "v_prediction")), images, schedule, 100, "dpmpp2m",
                   clip=True)
    eps = round_trip(NoisyNetwork(model(schedule, image_gaussian, "epsilon")), images, schedule, 100, "dpmpp2m",
                     clip=True)
    assert v < 0.01 and eps > 3 * v


def test_second_order_weight_is_first_order_at_the_ends(schedule):
    grid = schedule.grid(10)
    x = torch.zeros(1, 1, 2, 2)
    pred = Prediction(torch.ones_like(x), torch.full_like(x, 0.5))
    history = History(torch.zeros_like(x), half_log_snr(grid.alpha(5)))
    # to the clean image (ᾱ = 1) and to the end of the encoder (ᾱ = 0): first order, gain 1
    assert solver_step(x, pred, grid.alpha(0), 1.0, history, order=2).gain == 1.0
    assert solver_step(x, pred, grid.alpha(9), 0.0, history, order=2).gain == 1.0
    inner = solver_step(x, pred, grid.alpha(4), grid.alpha(3), history, order=2)
    assert inner.gain > 1.0  # D = (1 + 1/(2r))·x̂₀ − 1/(2r)·x̂₀_prev


def test_exact_terminal_step_is_undone_by_the_decoders_first_step(schedule, image_gaussian):
    """``terminal="exact"`` (the default of translation): the decoder's first step takes the latent back to the
    encoder's state at level N−2 (one corrector evaluation; the fixed point contracts by ≈ √ᾱ/√(1−ᾱ) at that
    level, and the Gaussian's x̂₀ is linear, so here it is exact to rounding), and the full round trip of an
    imperfect v-network improves. Measured (N = 30, DPM-Solver++(2M), clamped decode): residual explicit 3.5e-3
    → exact 2.6e-8; noisy round trip 0.0156 → 0.0137."""
    from ddic.diffusion.prediction import predict

    images = image_gaussian[3]
    exact_model = model(schedule, image_gaussian, "v_prediction")
    grid = schedule.grid(30)
    n = len(grid)
    _, trajectory = ode_encode(exact_model, images, grid, "dpmpp2m", keep_trajectory=True)
    before = trajectory[n - 2]

    def first_decode_step(latent):
        alpha, alpha_to = grid.alpha(n - 1), grid.alpha(n - 2)
        return solver_step(latent, predict(exact_model, latent, grid.t(n - 1), alpha), alpha, alpha_to, None, 2,
                           clip=True).x_to

    explicit, _ = ode_encode(exact_model, images, grid, "dpmpp2m", terminal="explicit")
    exact, exact_trajectory = ode_encode(exact_model, images, grid, "dpmpp2m", terminal="exact", keep_trajectory=True)
    assert torch.equal(exact_trajectory[n - 2], before) and len(exact_trajectory) == n + 1
    residual_explicit, residual_exact = rmse(first_decode_step(explicit), before), rmse(first_decode_step(exact), before)
    assert residual_exact < 0.1 * residual_explicit

    noisy = NoisyNetwork(exact_model)

    def noisy_round_trip(terminal):
        noisy.generator.manual_seed(1)
        latent, _ = ode_encode(noisy, images, grid, "dpmpp2m", terminal=terminal)
        return rmse(ode_decode(noisy, latent, grid, "dpmpp2m", clip=True), images)

    assert noisy_round_trip("exact") < noisy_round_trip("explicit")
    with pytest.raises(ValueError, match="terminal"):
        ode_encode(exact_model, images, grid, "dpmpp2m", terminal="implicit")
