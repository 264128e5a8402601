"""Per-domain diffusion training (ddic.diffusion.dataset / training, `ddic train`) on CPU, in seconds.

The runs use the `tiny` UNet on 32 px synthetic frames; what is checked is the bookkeeping that a long GPU
run depends on: the data normalisation, the files and the model card, bit-exact resume, the refusal to
overwrite a run, the CLI and a two-process torchrun job.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from ddic.cli.main import main
from ddic.diffusion import checkpoint as ckpt
from ddic.diffusion.dataset import file_list_sha256, load_training_images, resample_square
from ddic.diffusion.distributed import DistInfo
from ddic.diffusion.schedule import Schedule
from ddic.diffusion.train_outputs import tile_grid
from ddic.diffusion.training import EpochSampler, TrainConfig, derive_seed, ema_decay_at, train
from ddic.errors import DDICInputError, DDICModelError
from ddic.geometry.canonical import spacing_for_size
from ddic.diffusion.modelfile import load_model

SIZE = 32


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One CPU thread, as the timings of these tests assume; restored for other test modules."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def head_like(i: int, size: int = SIZE) -> np.ndarray:
    """A bright disc with a dark 'ventricle' on a grey background, varying with i (0…255 scale)."""
    yy, xx = np.mgrid[:size, :size] * (SIZE / size)
    image = np.full((size, size), 40.0)
    image[(xx - 16 - i % 3) ** 2 + (yy - 16) ** 2 < (6 + i % 5) ** 2] = 190.0
    image[(xx - 15) ** 2 + (yy - 17 + i % 2) ** 2 < 4] = 70.0
    return image


def write_image(path: Path, pixels: np.ndarray) -> Path:
    sitk.WriteImage(sitk.GetImageFromArray(pixels), str(path))
    return path


@pytest.fixture(scope="module")
def png_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("us_frames")
    for i in range(8):
        write_image(folder / f"frame_{i:02d}.png", head_like(i).astype(np.uint8))
    return folder


@pytest.fixture(scope="module")
def nrrd_folder(tmp_path_factory) -> Path:
    """Float MRI-like slices at 48 px (resampled to 32 for training), on an arbitrary intensity scale."""
    folder = tmp_path_factory.mktemp("mri_slices")
    for i in range(4):
        write_image(folder / f"slice_{i}.nrrd", (head_like(i, 48) * 7.3 + 1000.0).astype(np.float32))
    return folder


def config(data: Path, out: Path, **overrides) -> TrainConfig:
    values = dict(domain="us", data_dir=data, out_dir=out, preset="tiny", image_size=SIZE, steps=4,
                  batch_size=4, lr=1e-3, checkpoint_every=2, sample_steps=3, num_samples=4, device="cpu")
    values.update(overrides)
    return TrainConfig(**values)


def loss_rows(out: Path) -> list[dict]:
    with open(out / "loss.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


# --------------------------------------------------------------------------------------------------
# Dataset


def test_png_folder_loads_as_uint8_with_exact_scaling(png_folder):
    data = load_training_images(png_folder, SIZE)
    assert data.images.shape == (8, 1, SIZE, SIZE) and data.images.dtype == torch.float32
    assert data.normalisation.kind == "uint8"
    expected = head_like(3).astype(np.uint8) / 127.5 - 1.0
    np.testing.assert_allclose(data.images[3, 0].numpy(), expected, atol=1e-6)
    names = sorted(p.name for p in png_folder.iterdir())
    assert data.summary["count"] == 8
    assert data.summary["original_sizes"] == {"32x32": 8}
    assert data.summary["intensity"] == "uint8"
    assert data.summary["files_sha256"] == file_list_sha256(names)
    assert data.summary["folder"] == str(png_folder.resolve())


def test_float_images_choose_percentile_and_are_resampled(nrrd_folder, tmp_path):
    data = load_training_images(nrrd_folder, SIZE)
    assert data.normalisation.kind == "percentile"
    assert data.images.shape == (4, 1, SIZE, SIZE)
    assert data.summary["original_sizes"] == {"48x48": 4}
    assert float(data.images.min()) == -1.0 and float(data.images.max()) == 1.0  # percentile-clipped
    # the percentile window comes from the frame as read (as translation computes it), then resampling
    raw = sitk.GetArrayFromImage(sitk.ReadImage(str(nrrd_folder / "slice_2.nrrd")))
    expected = data.normalisation.to_model(resample_square(raw, SIZE), data.normalisation.window(raw))
    np.testing.assert_array_equal(data.images[2, 0].numpy(), expected)
    # one float image among 8-bit ones is enough to switch `auto` to percentile
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    write_image(mixed / "a.png", head_like(0).astype(np.uint8))
    write_image(mixed / "b.nrrd", head_like(1).astype(np.float32))
    assert load_training_images(mixed, SIZE).normalisation.kind == "percentile"
    assert load_training_images(mixed, SIZE, intensity="uint8").normalisation.kind == "uint8"


def test_resampling_is_linear_and_edge_aligned():
    ramp = np.tile(np.arange(48, dtype=np.float32), (48, 1))  # value = column index
    out = resample_square(ramp, 32)
    # output pixel j is centred at input coordinate (j + 0.5)·48/32 − 0.5; linear interpolation of a ramp is exact
    expected = (np.arange(32) + 0.5) * 1.5 - 0.5
    np.testing.assert_allclose(out[10], expected, atol=1e-4)
    assert out.shape == (32, 32)


def test_dataset_errors_are_actionable(tmp_path, nrrd_folder):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DDICInputError, match="No training images.*ddic prepare"):
        load_training_images(empty, SIZE)
    wide = tmp_path / "wide"
    wide.mkdir()
    write_image(wide / "raw.png", np.zeros((20, 30), dtype=np.uint8))
    with pytest.raises(DDICInputError, match=r"30×20 px, not square.*ddic prepare"):
        load_training_images(wide, SIZE)
    with pytest.raises(DDICInputError, match="outside 0…255.*percentile"):
        load_training_images(nrrd_folder, SIZE, intensity="uint8")
    with pytest.raises(DDICInputError, match="intensity"):
        load_training_images(nrrd_folder, SIZE, intensity="zscore")


# --------------------------------------------------------------------------------------------------
# Pieces of the loop


def test_epoch_sampler_splits_each_epoch_between_ranks():
    seen = []
    for step in range(2):
        for rank in range(2):
            sampler = EpochSampler(8, 2, seed=5, info=DistInfo(world_size=2, rank=rank))
            seen += sampler.indices(step).tolist()
    assert sorted(seen) == list(range(8))  # steps 0–1 of both ranks are exactly one pass over the data
    again = EpochSampler(8, 2, seed=5, info=DistInfo(world_size=2, rank=1)).indices(1).tolist()
    assert again == seen[6:8]  # a function of (seed, step, rank) alone
    assert derive_seed(0, 1, 2, 0) != derive_seed(0, 1, 2, 1) != derive_seed(1, 1, 2, 1)


def test_ema_warmup_and_grid_helpers():
    assert ema_decay_at(1, 0.999) == pytest.approx(2 / 11)
    assert ema_decay_at(100_000, 0.999) == 0.999
    grid = tile_grid(np.ones((5, 4, 4), dtype=np.float32))
    assert grid.shape == (8, 12) and grid[4:, 8:].sum() == 0  # 3 columns, 2 rows, last cell empty


def test_config_round_trip_and_validation(tmp_path):
    cfg = config(tmp_path, tmp_path / "out", sample_every=5)
    again = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    assert "--sample-every 5" in cfg.command_line() and "--preset tiny" in cfg.command_line()
    with pytest.raises(DDICInputError, match="--ema-decay"):
        config(tmp_path, tmp_path / "out", ema_decay=1.0).validate()
    with pytest.raises(DDICInputError, match="Image size 36"):
        config(tmp_path, tmp_path / "out", image_size=36).validate()


# --------------------------------------------------------------------------------------------------
# Training runs


@pytest.fixture(scope="module")
def trained_run(png_folder, tmp_path_factory):
    """One 6-step run (checkpoints at 3 and 6) shared by the tests that only read its outputs."""
    out = tmp_path_factory.mktemp("run") / "out"
    calls = []
    result = train(config(png_folder, out, steps=6, checkpoint_every=3),
                   progress=lambda done, total, message: calls.append((done, total, message)))
    return out, result, calls


def test_training_writes_model_card_losses_and_samples(trained_run, png_folder):
    out, result, calls = trained_run
    assert result.steps_done == 6 and result.start_step == 0 and result.world_size == 1
    rows = loss_rows(out)
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    losses = [float(r["loss"]) for r in rows]
    assert all(np.isfinite(losses)) and all(float(r["lr"]) == 1e-3 for r in rows)
    assert np.mean(losses[-3:]) < 0.75 * losses[0]  # the v-MSE starts near its variance and drops at lr 1e-3
    assert result.final_loss == pytest.approx(losses[-1], rel=1e-5)

    for step in (3, 6):  # 4 samples of 32 px tile a 2 × 2 grid
        grid = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "samples" / f"step_{step:06d}.png")))
        assert grid.shape == (2 * SIZE, 2 * SIZE) and grid.dtype == np.uint8

    loaded = load_model(out, expected_domain="us", expected_image_size=SIZE)
    card = loaded.card
    assert (card.domain, card.preset, card.image_size, card.weights) == ("us", "tiny", SIZE, "ema")
    assert card.pixel_spacing_mm == pytest.approx(spacing_for_size(SIZE))
    assert card.schedule == Schedule(prediction="v_prediction").to_dict()  # the default parameterisation
    assert card.normalisation == {"kind": "uint8"}
    assert card.network["sample_size"] == SIZE
    training = card.training
    assert training["steps"] == 6 and training["batch_size"] == 4 and training["world_size"] == 1
    assert training["image_count"] == 8 and training["data"]["count"] == 8
    assert training["lr"] == 1e-3 and training["ema_decay"] == 0.999 and training["seed"] == 0
    assert training["device"] == "cpu" and training["bf16"] is False and "CPU" in training["hardware"]
    assert training["duration_s"] > 0 and "--steps 6" in training["command"]
    assert "ultrasound" in card.description and "8 canonical frames" in card.description

    # the model file holds the EMA weights of the final checkpoint, not the raw ones
    state = read_tensors(out / "checkpoint" / "train_state.safetensors")
    weights = read_tensors(out / "model.safetensors")
    assert all(torch.equal(weights[k], state[f"ema.{k}"]) for k in weights)
    assert not all(torch.equal(weights[k], state[f"model.{k}"]) for k in weights)
    assert json.loads((out / "train_config.json").read_text())["steps"] == 6

    with pytest.raises(DDICModelError, match="ultrasound model, but an MRI"):
        load_model(out, expected_domain="mri")
    # progress: absolute steps up to the total, with the loss in the message
    assert calls[-1][:2] == (6, 6) and calls[-1][2].startswith("loss ")
    assert [c[0] for c in calls if c[2].startswith("loss")] == sorted(c[0] for c in calls if c[2].startswith("loss"))


def test_refuses_to_overwrite_a_run(trained_run, png_folder):
    out, _, _ = trained_run
    before = (out / "model.safetensors").read_bytes()
    with pytest.raises(DDICInputError, match="already holds a training run.*--resume"):
        train(config(png_folder, out, steps=6))
    with pytest.raises(DDICInputError, match=r"preset = 'tiny', image_size = 32, but .*--preset tiny --size 32"):
        train(config(png_folder, out, steps=8, preset="small", image_size=64, resume=True))
    with pytest.raises(DDICInputError, match=r"image_size = 32.*--size 32"):
        train(config(png_folder, out, steps=8, image_size=64, resume=True))
    with pytest.raises(DDICInputError, match=r"domain = 'us'"):
        train(config(png_folder, out, steps=8, domain="mri", resume=True))
    assert (out / "model.safetensors").read_bytes() == before


def test_resume_continues_bit_identically(png_folder, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(config(png_folder, straight, steps=4, num_samples=0))
    train(config(png_folder, split, steps=2, num_samples=0))
    with open(split / "loss.csv", "a") as handle:  # a row logged after the checkpoint by a killed run
        handle.write("3,9.99,0.001,1.0\n")
    result = train(config(png_folder, split, steps=4, num_samples=0, resume=True))
    assert result.start_step == 2 and result.steps_done == 4

    a = read_tensors(straight / "checkpoint" / "train_state.safetensors")
    b = read_tensors(split / "checkpoint" / "train_state.safetensors")
    assert a.keys() == b.keys()
    assert any(k.startswith("optim.") and k.endswith(".exp_avg_sq") for k in a)
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert different == []  # raw weights, EMA weights and AdamW state, bit for bit
    assert ckpt.read_train_record(split)["resumed_at_steps"] == [2]
    assert load_model(split).card.training["resumed_at_steps"] == [2]

    rows_a, rows_b = loss_rows(straight), loss_rows(split)
    assert [r["step"] for r in rows_b] == ["1", "2", "3", "4"]  # the stale row 3 was dropped
    assert [r["loss"] for r in rows_a] == [r["loss"] for r in rows_b]

    # a checkpoint torn by a crash between its two files is refused, not resumed
    with open(split / "checkpoint" / "train_state.safetensors", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(DDICModelError, match="torn by a crash"):
        train(config(png_folder, split, steps=6, num_samples=0, resume=True))


def test_resume_needs_a_checkpoint_to_touch_a_finished_model(png_folder, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"someone's model")
    with pytest.raises(DDICInputError, match="no checkpoint/"):
        train(config(png_folder, out, resume=True))


# --------------------------------------------------------------------------------------------------
# Command line


def test_cli_train_end_to_end(nrrd_folder, tmp_path, capsys):
    out = tmp_path / "mri_model"
    args = ["train", "--domain", "mri", "--data", str(nrrd_folder), "--out", str(out), "--preset", "tiny",
            "--size", str(SIZE), "--steps", "2", "--batch-size", "2", "--sample-steps", "2",
            "--num-samples", "1", "--device", "cpu", "--seed", "7"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"model: {out / 'model.json'}" in printed and "steps: 2 (2 in this run)" in printed
    card = load_model(out, expected_domain="mri").card
    assert card.normalisation["kind"] == "percentile" and card.training["seed"] == 7
    assert card.training["data"]["original_sizes"] == {"48x48": 4}
    grid = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "samples" / "step_000002.png")))
    assert grid.shape == (SIZE, SIZE)

    assert main(args) == 2  # a second run into the same folder is refused with a message, no traceback
    assert "already holds a training run" in capsys.readouterr().err
    assert main(args + ["--resume"]) == 0  # already complete: nothing to do, still success
    assert "steps: 2 (0 in this run, resumed at 2)" in capsys.readouterr().out


@pytest.mark.slow
def test_torchrun_two_processes(png_folder, tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
               "-m", "ddic", "train", "--domain", "us", "--data", str(png_folder), "--out", str(out),
               "--preset", "tiny", "--size", str(SIZE), "--steps", "2", "--batch-size", "2",
               "--sample-steps", "2", "--num-samples", "1", "--device", "cpu"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    card = load_model(out, expected_domain="us").card
    assert card.training["world_size"] == 2 and card.training["global_batch_size"] == 4
    assert [r["step"] for r in loss_rows(out)] == ["1", "2"]
    assert done.stdout.count("model: ") == 1  # only rank 0 reports


def test_a_non_finite_gradient_skips_the_update_instead_of_poisoning_the_weights(png_folder, tmp_path, monkeypatch):
    """One inf gradient must not turn every weight into NaN through AdamW: the step is skipped and recorded."""
    import ddic.diffusion.training as training

    original = torch.nn.utils.clip_grad_norm_
    calls = {"n": 0}

    def flaky(params, max_norm, *a, **k):
        calls["n"] += 1
        norm = original(params, max_norm, *a, **k)
        return torch.tensor(float("inf")) if calls["n"] == 2 else norm

    monkeypatch.setattr(training.torch.nn.utils, "clip_grad_norm_", flaky)
    out = tmp_path / "out"
    train(config(png_folder, out, steps=4, checkpoint_every=4))
    weights = read_tensors(out / "model.safetensors")
    assert all(torch.isfinite(w.float()).all() for w in weights.values())
    card = load_model(out).card
    assert card.training["skipped_updates"]["steps"] == [2]


def test_cosine_schedule_and_initialising_from_an_earlier_model(png_folder, tmp_path):
    from ddic.diffusion.training import learning_rate

    cfg = config(png_folder, tmp_path / "a", steps=10, warmup_steps=2, lr_schedule="cosine", min_lr=1e-5)
    lrs = [learning_rate(s, cfg) for s in range(10)]
    assert lrs[0] == pytest.approx(cfg.lr / 2) and lrs[2] == pytest.approx(cfg.lr)
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:])) and lrs[-1] > cfg.min_lr
    assert learning_rate(10, cfg) == pytest.approx(cfg.min_lr)
    first = tmp_path / "first"
    train(config(png_folder, first, steps=2, checkpoint_every=2))
    second = tmp_path / "second"
    train(config(png_folder, second, steps=1, checkpoint_every=1, init_from=str(first), lr=1e-12, ema_decay=0.0))
    a, b = read_tensors(first / "model.safetensors"), read_tensors(second / "model.safetensors")
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)  # started from the first's weights
    assert load_model(second).card.training["initialised_from"] == str(first)
    with pytest.raises(DDICInputError, match="init-from"):
        train(config(png_folder, tmp_path / "third", steps=1, init_from=str(first), prediction="epsilon"))
