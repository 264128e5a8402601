"""DDIC translation: modes, exact DDIB limit, batch independence, determinism, evaluation counts."""

import numpy as np
import pytest
import torch

from ddic.diffusion.denoisers import GaussianDenoiser, UNetDenoiser
from ddic.errors import DDICInputError, DDICModelError
from ddic.diffusion.modelfile import load_model
from ddic.translate.engine import Translator, translate_tensor
from ddic.translate.options import DEFAULT_SOLVER, METHODS, MODES, SOLVERS, TranslateOptions, grid_timesteps

from conftest import TEST_SIZE


@pytest.fixture(scope="module")
def gaussians(schedule):
    return GaussianDenoiser(0.1, 0.2, schedule.alpha_bar), GaussianDenoiser(-0.2, 0.3, schedule.alpha_bar)


@pytest.fixture(scope="module")
def source():
    return 0.1 + 0.2 * torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(3))


@pytest.fixture(scope="module")
def unets(random_models):
    us, mri = (load_model(p) for p in random_models)
    return UNetDenoiser(us.unet), UNetDenoiser(mri.unet)


@pytest.mark.parametrize("mode", MODES)
def test_zero_lr_reproduces_ddib_exactly(mode, schedule, gaussians, source):
    ddib, _ = translate_tensor(source, *gaussians, schedule, TranslateOptions(method="ddib", steps=12))
    ddic, trace = translate_tensor(source, *gaussians, schedule, TranslateOptions(mode=mode, steps=12, lr=0.0))
    assert torch.equal(ddic, ddib)
    assert trace.correlation.shape == (12, 3)


@pytest.mark.parametrize("mode", MODES)
def test_zero_lr_reproduces_ddib_exactly_with_networks(mode, schedule, unets):
    x = torch.rand(2, 1, TEST_SIZE, TEST_SIZE, generator=torch.Generator().manual_seed(4)) * 2 - 1
    ddib, _ = translate_tensor(x, *unets, schedule, TranslateOptions(method="ddib", steps=4))
    ddic, _ = translate_tensor(x, *unets, schedule, TranslateOptions(mode=mode, steps=4, lr=0.0))
    assert torch.equal(ddic, ddib)


def test_guide_window_outside_the_grid_is_ddib(schedule, gaussians, source):
    ddib, _ = translate_tensor(source, *gaussians, schedule, TranslateOptions(method="ddib", steps=10))
    # grid of 10 steps: t = 0, 111, 222, …; a window of [1, 100] holds none of them
    ddic, trace = translate_tensor(source, *gaussians, schedule,
                                   TranslateOptions(steps=10, guide_t_min=1, guide_t_max=100))
    assert torch.equal(ddic, ddib) and trace.timesteps == []


@pytest.mark.parametrize("mode", MODES)
def test_guidance_moves_the_correlation_the_way_it_is_told(mode, schedule, gaussians, source):
    """DDIB between Gaussians is an increasing affine map (r ≈ +1 between the chains); asking for negative
    correlation must pull the final r down, and more strongly with a larger lr."""
    finals = []
    for lr in (0.0, 0.1, 0.3):
        _, trace = translate_tensor(source, *gaussians, schedule,
                                    TranslateOptions(mode=mode, steps=20, lr=lr, corr_sign="-1", median_kernel=3,
                                                     lr_reference_size=source.shape[-1]))
        finals.append(-trace.correlation[-1].mean().item())  # the recorded value is s·r; s = −1
    assert finals[0] > 0.95
    assert finals[0] > finals[1] > finals[2] and finals[2] < 0.0


def test_step_lr_scales_with_steps_and_pixel_count():
    assert TranslateOptions(steps=1000).step_lr(128) == pytest.approx(3.0)
    assert TranslateOptions(steps=100).step_lr(128) == pytest.approx(30.0)
    assert TranslateOptions(steps=100).step_lr(64) == pytest.approx(7.5)  # (64/128)² of the 128-px rate
    assert TranslateOptions(steps=50, lr=1.5, lr_reference_steps=100).step_lr(128) == pytest.approx(3.0)
    assert TranslateOptions(method="ddib", steps=50).step_lr(64) == 0.0


@pytest.mark.parametrize("field,value", [("method", "pix2pix"), ("mode", "fast"), ("steps", 1),
                                         ("steps", 1001), ("lr", -1.0), ("median_kernel", 4),
                                         ("corr_sign", "+2"), ("guide_t_min", 500), ("batch_size", 0),
                                         ("device", "tpu"), ("precision", "fp16")])
def test_options_refuse_bad_values(field, value):
    kwargs = {field: value}
    if field == "guide_t_min":
        kwargs["guide_t_max"] = 100
    with pytest.raises(DDICInputError, match="Invalid translation option"):
        TranslateOptions(**kwargs)


def test_options_dict_round_trip():
    options = TranslateOptions(mode="cheap", steps=50, corr_sign="abs")
    data = options.to_dict()
    assert data["solver"] == DEFAULT_SOLVER and "effective_lr" not in data
    assert TranslateOptions.from_dict(data) == options
    with pytest.raises(DDICInputError, match="Unknown"):
        TranslateOptions.from_dict({"stepz": 3})


@pytest.mark.parametrize("mode", MODES)
def test_frame_result_does_not_depend_on_batch_size(mode, schedule, unets):
    """Real (untrained) UNets, first-order solver: batch-dependent float rounding in the convolutions (≈1e-6)
    stays small. DPM-Solver++(2M) is checked with exact denoisers below: its x̂₀ extrapolation amplifies that
    rounding on random networks (BENCHMARKS.md, solver study), which says nothing about coupling."""
    x = torch.rand(3, 1, TEST_SIZE, TEST_SIZE, generator=torch.Generator().manual_seed(5)) * 2 - 1
    options = TranslateOptions(mode=mode, steps=4, solver="ddim")
    together, _ = translate_tensor(x, *unets, schedule, options)
    alone, _ = translate_tensor(x[1:2], *unets, schedule, options)
    assert torch.allclose(together[1:2], alone, atol=2e-4)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("mode", MODES)
def test_no_frame_is_coupled_to_the_others_in_its_batch(mode, solver, schedule, gaussians):
    """Per-pixel exact denoisers compute each frame identically whatever the batch, so any cross-frame term
    (a correlation, a norm or a history taken over the batch) would show as a difference."""
    x = 0.1 + 0.2 * torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(7))
    x[0] = -x[0]  # a very different neighbour
    options = TranslateOptions(mode=mode, steps=12, solver=solver)
    together, _ = translate_tensor(x, *gaussians, schedule, options)
    alone, _ = translate_tensor(x[1:2], *gaussians, schedule, options)
    assert torch.allclose(together[1:2], alone, atol=1e-5)


def test_translation_is_deterministic(schedule, unets):
    x = torch.rand(2, 1, TEST_SIZE, TEST_SIZE, generator=torch.Generator().manual_seed(6)) * 2 - 1
    options = TranslateOptions(steps=3)
    first, _ = translate_tensor(x, *unets, schedule, options)
    second, _ = translate_tensor(x, *unets, schedule, options)
    assert torch.equal(first, second)


@pytest.mark.parametrize("check", [False, True])
@pytest.mark.parametrize("method,mode,forward,backward", [
    ("ddib", "faithful", 2, 0),   # encode N + MRI decode N
    ("ddic", "faithful", 4, 1),   # + US decode N, guided MRI forward+backward N, recompute N
    ("ddic", "cached", 3, 1),     # US chain from the encoder
    ("ddic", "cheap", 2, 0),      # no network backward, no recompute
])
def test_network_evaluations_per_step(method, mode, forward, backward, check, schedule, source):
    """The trust number (round_trip_check) costs one more US decode (N) unless DDIC's faithful US chain is it."""
    us, mri = GaussianDenoiser(0.1, 0.2, schedule.alpha_bar), GaussianDenoiser(-0.2, 0.3, schedule.alpha_bar)
    options = TranslateOptions(method=method, mode=mode, steps=10, round_trip_check=check)
    _, trace = translate_tensor(source, us, mri, schedule, options)
    extra = int(check and not (method == "ddic" and mode == "faithful"))
    assert us.counter.forward + mri.counter.forward == (forward + extra) * 10
    assert us.counter.backward + mri.counter.backward == backward * 10
    assert (trace.us_reconstruction is not None) == (check or (method, mode) == ("ddic", "faithful"))


@pytest.mark.parametrize("window", [(0, 999), (100, 600)], ids=["every level guided", "guide window"])
@pytest.mark.parametrize("check", [False, True], ids=["no check", "round-trip check"])
@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", METHODS)
def test_network_evaluations_predicts_the_counted_calls(method, mode, solver, check, window, schedule, source):
    """TranslateOptions.network_evaluations (torch-free: the Slicer panel's time estimate multiplies it by
    the measured cost of one call) against the calls counted on a real run, for every combination."""
    us, mri = GaussianDenoiser(0.1, 0.2, schedule.alpha_bar), GaussianDenoiser(-0.2, 0.3, schedule.alpha_bar)
    options = TranslateOptions(method=method, mode=mode, solver=solver, steps=7, round_trip_check=check,
                               guide_t_min=window[0], guide_t_max=window[1])
    translate_tensor(source, us, mri, schedule, options)
    counted = (us.counter.forward + mri.counter.forward, us.counter.backward + mri.counter.backward)
    predicted = options.network_evaluations()
    assert tuple(predicted) == counted
    assert predicted.plain_forward == counted[0] - counted[1]


def test_network_evaluations_match_the_counts_of_the_modes_table():
    """ddib 2N; faithful 4N + N backward; cached 3N + N; cheap 2N; + N for the round trip except faithful."""
    n = 50
    for (method, mode), (forward, backward) in {("ddib", "faithful"): (2, 0), ("ddic", "faithful"): (4, 1),
                                                ("ddic", "cached"): (3, 1), ("ddic", "cheap"): (2, 0)}.items():
        plain = TranslateOptions(method=method, mode=mode, steps=n, round_trip_check=False)
        checked = TranslateOptions(method=method, mode=mode, steps=n, round_trip_check=True)
        assert tuple(plain.network_evaluations()) == (forward * n, backward * n)
        extra = 0 if (method, mode) == ("ddic", "faithful") else n
        assert tuple(checked.network_evaluations()) == (forward * n + extra, backward * n)
    with pytest.raises(DDICInputError, match="cyclegan"):
        TranslateOptions(method="cyclegan").network_evaluations()


@pytest.mark.parametrize("steps", [2, 3, 7, 10, 50, 100, 333, 999, 1000])
def test_torch_free_grid_is_the_schedule_grid(steps, schedule):
    assert grid_timesteps(steps) == [int(t) for t in schedule.grid(steps).timesteps]


def test_trust_number_is_the_head_round_trip_of_the_us_model(schedule):
    """The trust number is the RMSE between the frame and the US model's decode of its latent, over the head.
    (An exact Gaussian model's flow is affine, so it round-trips anything: whether a *network* represents a
    frame is measured on the trained demo models, BENCHMARKS.md "Trust number".) A model that maps every
    latent to one fixed image stands for a model that does not represent the frame: flagged."""
    from ddic.translate.trust import ROUND_TRIP_WARN_RMSE, head_round_trip_rmse, is_trusted

    g = torch.Generator().manual_seed(8)
    mean, std = -0.4, 0.15
    model = GaussianDenoiser(mean, std, schedule.alpha_bar, prediction="v_prediction")
    inside = (mean + std * torch.randn(2, 1, 16, 16, generator=g)).clamp(-0.99, 1)
    _, trace = translate_tensor(inside, model, model, schedule,
                                TranslateOptions(method="ddib", steps=50, solver="dpmpp2m"))
    good = head_round_trip_rmse(inside, trace.us_reconstruction)
    assert good.max().item() < 0.01 and all(is_trusted(float(r)) for r in good)
    collapsed = GaussianDenoiser(0.5, 1e-3, schedule.alpha_bar, prediction="v_prediction")  # always ≈ 0.5
    _, trace = translate_tensor(inside, model, model, schedule, TranslateOptions(method="ddib", steps=20))
    _, bad_trace = translate_tensor(inside, collapsed, model, schedule, TranslateOptions(method="ddib", steps=20))
    bad = head_round_trip_rmse(inside, bad_trace.us_reconstruction)
    assert bad.min().item() > ROUND_TRIP_WARN_RMSE and not any(is_trusted(float(r)) for r in bad)
    # the background (masked, −1) is left out: a frame that is mostly background is judged on its head only
    masked = inside.clone()
    masked[..., :, :8] = -1.0
    rec = masked.clone()
    rec[..., :, :8] = 0.5  # wrong only on the background
    assert head_round_trip_rmse(masked, rec).max().item() == 0.0


def test_translator_checks_its_models(random_models):
    us, mri = (load_model(p) for p in random_models)
    with pytest.raises(DDICModelError, match="'mri' model is needed"):
        Translator(us, us, TranslateOptions(device="cpu"))
    translator = Translator(us, mri, TranslateOptions(device="cpu", steps=2, batch_size=2))
    seen = []
    images = np.zeros((3, TEST_SIZE, TEST_SIZE), dtype=np.float32)
    results = translator.translate(images, progress=lambda d, t, m: seen.append((d, t)))
    assert [r.pseudo_mri.shape for r in results] == [(2, TEST_SIZE, TEST_SIZE), (1, TEST_SIZE, TEST_SIZE)]
    assert seen[-1] == (8, 8) and len(seen) == 8  # 2 batches × (2 encode + 2 decode steps)
    assert all(np.abs(r.pseudo_mri).max() <= 1.0 for r in results)
    with pytest.raises(ValueError, match="expected"):
        translator.translate(np.zeros((1, 16, 16), dtype=np.float32))


def test_cuda_request_without_cuda_is_a_clear_error(random_models):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    us, mri = (load_model(p) for p in random_models)
    with pytest.raises(DDICInputError, match="--device cpu"):
        Translator(us, mri, TranslateOptions(device="cuda"))
    with pytest.raises(DDICInputError, match="bf16"):
        Translator(us, mri, TranslateOptions(device="cpu", precision="bf16"))
