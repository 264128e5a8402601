"""The CycleGAN baseline (ddic.cyclegan, `ddic train-cyclegan`, `ddic translate --method cyclegan`) on CPU.

Checked: the reference architecture (shapes, the 70×70 receptive field, the reference's parameter
counts), the image pool's semantics, the lr schedule, deterministic training and bit-exact resume, the
checkpoint's safeguards, the generator file and its refusals, and the translation path end to end.
Runs use tiny networks on 32 px synthetic frames, one thread.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from ddic.cli.main import main
from ddic.cyclegan import checkpoint as ckpt
from ddic.cyclegan.config import CycleGANConfig
from ddic.cyclegan.model import load_generator, read_card
from ddic.cyclegan.networks import (
    PatchDiscriminator,
    ResnetGenerator,
    build_generator,
    count_parameters,
    discriminator_config,
    generator_config,
    init_weights,
    patch_output_size,
    receptive_field,
)
from ddic.cyclegan.pool import ImagePool
from ddic.cyclegan.training import CycleGANNets, lr_factor, train_cyclegan
from ddic.errors import DDICInputError, DDICModelError
from ddic.translate.options import TranslateOptions
from torch import nn

torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # torch imports its compiler (~5 s) at the first
# optimizer of a process; pay that at collection, not in whichever test happens to come first
SIZE = 32
TINY = {"generator_filters": 8, "discriminator_filters": 8, "residual_blocks": 2}


def blob(i: int, bright: bool) -> np.ndarray:
    """A disc on a background, varying with i; 'US' has a dark disc, 'MRI' a bright one (0…255)."""
    yy, xx = np.mgrid[:SIZE, :SIZE]
    image = np.full((SIZE, SIZE), 60.0 if bright else 180.0)
    image[(xx - 16 - i % 3) ** 2 + (yy - 16) ** 2 < (5 + i % 4) ** 2] = 220.0 if bright else 30.0
    return image.astype(np.uint8)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cyclegan_data")
    for name, count, bright in (("us", 5, False), ("mri", 3, True)):
        (root / name).mkdir()
        for i in range(count):
            sitk.WriteImage(sitk.GetImageFromArray(blob(i, bright)), str(root / name / f"{name}_{i}.png"))
    return root / "us", root / "mri"


def config(folders, out: Path, **changes) -> CycleGANConfig:
    values = dict(us_dir=folders[0], mri_dir=folders[1], out_dir=out, image_size=SIZE, steps=4, batch_size=2,
                  pool_size=3, num_samples=2, device="cpu", **TINY)
    values.update(changes)
    return CycleGANConfig(**values)


def loss_rows(out: Path) -> list[list[str]]:
    with open(out / "loss.csv", newline="") as handle:
        return [row[:-1] for row in csv.reader(handle)]  # drop elapsed_s


# --- networks ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size, patches", [(64, 6), (128, 14), (256, 30)])
def test_generator_and_patchgan_shapes(size, patches):
    x = torch.zeros(1, 1, size, size)
    d = PatchDiscriminator(1, filters=8)
    assert d(x).shape == (1, 1, patches, patches)
    assert patch_output_size(size) == patches
    if size <= 128:
        g = init_weights(ResnetGenerator(1, filters=8, blocks=2))
        y = g(torch.randn(2, 1, size, size))
        assert y.shape == (2, 1, size, size)
        assert y.abs().max() <= 1.0  # tanh


def test_patchgan_sees_70_by_70_patches():
    """Without the (global) instance norms, one output depends on exactly a 70×70 input window."""
    assert receptive_field(3) == 70
    torch.manual_seed(0)
    d = init_weights(PatchDiscriminator(1, filters=4))
    for i, layer in enumerate(d.model):
        if isinstance(layer, nn.InstanceNorm2d):
            d.model[i] = nn.Identity()
    x = torch.randn(1, 1, 128, 128, requires_grad=True)
    d(x)[0, 0, 7, 7].backward()
    rows, cols = np.nonzero(x.grad[0, 0].numpy())
    assert rows.max() - rows.min() + 1 == 70 and cols.max() - cols.min() + 1 == 70
    assert rows.min() == 8 * 7 - 23 and cols.min() == 8 * 7 - 23  # output j sees input 8j − 23 … 8j + 46


def test_reference_parameter_counts_and_defaults():
    # the numbers the reference prints for its 3-channel networks (11.378 M, 7.838 M, 2.765 M)
    assert count_parameters(ResnetGenerator(3, 64, 9)) == 11_378_179
    assert count_parameters(ResnetGenerator(3, 64, 6)) == 7_837_699
    assert count_parameters(PatchDiscriminator(3, 64, 3)) == 2_764_737
    # ours: 1 channel, 6 blocks at 128 px
    g128, d128 = generator_config(128), discriminator_config(128)
    assert (g128["blocks"], g128["filters"], d128["layers"], d128["filters"]) == (6, 64, 3, 64)
    assert generator_config(256)["blocks"] == 9 and generator_config(64)["blocks"] == 6
    assert count_parameters(build_generator(g128)) == 7_825_153
    assert count_parameters(PatchDiscriminator(1, 64, 3)) == 2_762_689
    c = CycleGANConfig(us_dir="u", mri_dir="m", out_dir="o")
    assert (c.lr, c.beta1, c.lambda_cycle, c.lambda_identity, c.pool_size, c.batch_size, c.init_std) == \
        (2e-4, 0.5, 10.0, 0.5, 50, 1, 0.02)
    assert c.total_steps(365, 251) == 200 * 365 and c.image_size == 128
    with pytest.raises(DDICInputError, match="multiple of 4"):
        generator_config(30)


def test_init_is_normal_002_and_norms_have_no_parameters():
    torch.manual_seed(0)
    g = init_weights(ResnetGenerator(1, 16, 2))
    weights = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
    biases = torch.cat([m.bias for m in g.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
    assert abs(weights.std().item() - 0.02) < 0.001 and abs(weights.mean().item()) < 0.001
    assert torch.count_nonzero(biases) == 0
    norms = [m for m in g.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert norms and all(not m.affine and not m.track_running_stats for m in norms)


# --- pool and schedule -----------------------------------------------------------------------------------


def test_image_pool_semantics_with_a_seeded_generator():
    pool = ImagePool(50)
    generator = torch.Generator().manual_seed(7)
    first = torch.arange(50, dtype=torch.float32).view(50, 1, 1, 1)
    assert torch.equal(pool.query(first, generator), first)  # the first 50 are stored and returned as they are
    assert len(pool) == 50
    new = 100 + torch.arange(400, dtype=torch.float32).view(400, 1, 1, 1)
    # what the pool must do, replayed with the same random stream
    replay = torch.Generator().manual_seed(7)
    stored = list(range(50))
    expected = []
    for value in new.flatten().tolist():
        if torch.rand((), generator=replay).item() > 0.5:
            index = int(torch.randint(0, 50, (), generator=replay).item())
            expected.append(stored[index])
            stored[index] = value
        else:
            expected.append(value)
    got = pool.query(new, generator).flatten().tolist()
    assert got == expected
    assert sorted(t.item() for t in pool.images) == sorted(stored)
    swapped = sum(g != n for g, n in zip(got, new.flatten().tolist()))
    assert 150 < swapped < 250  # about half
    saved = pool.state()
    other = ImagePool(50)
    other.load_state(saved)
    assert torch.equal(other.state(), saved)
    assert torch.equal(ImagePool(0).query(new[:3], generator), new[:3])  # size 0: no pool


def test_lr_schedule_is_the_reference_linear_policy():
    # the reference with n_epochs = n_epochs_decay = 100, epoch_count = 1: 1 − max(0, e + 1 − 100) / 101
    def reference(e):
        return 1.0 - max(0, e + 1 - 100) / 101.0

    for step in (0, 50, 98, 99, 100, 150, 198, 199):
        assert lr_factor(step, 200, 100) == pytest.approx(reference(step))
    assert lr_factor(99, 200, 100) == 1.0
    assert lr_factor(100, 200, 100) == pytest.approx(100 / 101)
    assert lr_factor(199, 200, 100) == pytest.approx(1 / 101)
    assert lr_factor(9, 10, 0) == 1.0  # no decay


# --- training -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(folders, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "a"
    train_cyclegan(config(folders, out))
    return out


def test_training_writes_its_files_and_is_deterministic(trained, folders, tmp_path):
    names = {p.name for p in trained.iterdir()}
    assert {"generator_us2mri.safetensors", "generator_us2mri.json", "cyclegan_config.json", "loss.csv",
            "checkpoint", "samples"} <= names
    grid = sitk.GetArrayFromImage(sitk.ReadImage(str(trained / "samples" / "step_000004.png")))
    assert grid.shape == (2 * SIZE, 6 * SIZE)
    rows = loss_rows(trained)
    assert rows[0][:2] == ["step", "loss_g"] and [r[0] for r in rows[1:]] == ["1", "2", "3", "4"]
    lrs = [float(r[-1]) for r in rows[1:]]  # 4 steps, decay over the last 2: 1, 1, 2/3, 1/3
    assert lrs == pytest.approx([2e-4, 2e-4, 2e-4 * 2 / 3, 2e-4 / 3], rel=1e-5)
    assert all(np.isfinite(float(v)) for r in rows[1:] for v in r[1:])
    saved = json.loads((trained / "cyclegan_config.json").read_text())
    assert CycleGANConfig.from_dict(saved) == config(folders, trained)
    again = tmp_path / "b"
    train_cyclegan(config(folders, again))
    assert loss_rows(again) == rows  # same seed, same losses


def test_resume_is_bit_exact(trained, folders, tmp_path):
    split = tmp_path / "split"
    first = train_cyclegan(config(folders, split, stop_after=2))
    assert (first.steps_done, first.total_steps) == (2, 4)
    with pytest.raises(DDICInputError, match="already holds a training run"):
        train_cyclegan(config(folders, split))
    result = train_cyclegan(config(folders, split, resume=True))
    assert (result.start_step, result.steps_done) == (2, 4)
    names = {n: CycleGANNets(generator_config(SIZE, 8, 2), discriminator_config(SIZE, 8)).parameter_names(p)
             for n, p in (("optim_g", "g_"), ("optim_d", "d_"))}
    whole, resumed = ckpt.load_state(trained, names), ckpt.load_state(split, names)
    assert whole.nets.keys() == resumed.nets.keys()
    assert all(torch.equal(whole.nets[k], resumed.nets[k]) for k in whole.nets)
    for name in names:
        a, b = whole.optimizers[name]["state"], resumed.optimizers[name]["state"]
        assert a.keys() == b.keys() and all(torch.equal(a[i][f], b[i][f]) for i in a for f in a[i])
    assert all(torch.equal(whole.pools[k], resumed.pools[k]) for k in ("fake_mri", "fake_us"))
    assert whole.pools["fake_mri"].shape == (3, 1, SIZE, SIZE)
    assert loss_rows(split) == loss_rows(trained)
    assert resumed.record["resumed_at_steps"] == [2]
    with pytest.raises(DDICInputError, match="--size 32"):
        train_cyclegan(config(folders, split, image_size=64, resume=True, steps=6))


def test_resume_compares_the_networks_not_the_spelling():
    previous = CycleGANConfig(us_dir="u", mri_dir="m", out_dir="o").to_dict()  # blocks None: 6 at 128 px
    CycleGANConfig(us_dir="u", mri_dir="m", out_dir="o", residual_blocks=6).check_resume(previous, "o")
    with pytest.raises(DDICInputError, match="residual_blocks = 6.*--blocks 6"):
        CycleGANConfig(us_dir="u", mri_dir="m", out_dir="o", residual_blocks=9).check_resume(previous, "o")


def test_checkpoint_round_trip_and_refusals(trained, tmp_path):
    nets = CycleGANNets(generator_config(SIZE, 8, 2), discriminator_config(SIZE, 8))
    names = {"optim_g": nets.parameter_names("g_"), "optim_d": nets.parameter_names("d_")}
    state = ckpt.load_state(trained, names)
    nets.load_state_dict(state.nets, strict=True)
    optimizer = torch.optim.Adam(nets.parameters_of("g_"), lr=1.0, betas=(0.5, 0.999))
    optimizer.load_state_dict(state.optimizers["optim_g"])
    assert optimizer.param_groups[0]["betas"] == (0.5, 0.999)
    assert int(optimizer.state[optimizer.param_groups[0]["params"][0]]["step"]) == 4
    torn = tmp_path / "torn"
    (torn / "checkpoint").mkdir(parents=True)
    for name in ("train_state.json", "train_state.safetensors"):
        (torn / "checkpoint" / name).write_bytes((trained / "checkpoint" / name).read_bytes())
    with open(torn / "checkpoint" / "train_state.safetensors", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(DDICModelError, match="torn by a crash"):
        ckpt.load_state(torn, names)
    record = json.loads((torn / "checkpoint" / "train_state.json").read_text())
    record["format"] = "ddic-train-state"
    (torn / "checkpoint" / "train_state.json").write_text(json.dumps(record))
    with pytest.raises(DDICModelError, match="not a CycleGAN training checkpoint"):
        ckpt.read_record(torn)


# --- the generator file and translation -------------------------------------------------------------------


def test_generator_file_checks(trained, tmp_path):
    model = load_generator(trained)
    assert model.image_size == SIZE and model.card.normalisation == {"kind": "uint8"}
    assert model.card.training["steps"] == 4 and not any(p.requires_grad for p in model.generator.parameters())
    assert model.card.network["blocks"] == 2 and model.card.source_domain == "us"
    with pytest.raises(DDICModelError, match="64×64 is needed"):
        load_generator(trained, expected_image_size=64)
    diffusion_card = tmp_path / "us.json"  # what `ddic train` writes, as far as the loader looks
    diffusion_card.write_text(json.dumps({"format": "ddic-model", "domain": "us"}))
    with pytest.raises(DDICModelError, match="diffusion model card"):
        load_generator(diffusion_card)
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("generator_us2mri.json", "generator_us2mri.safetensors"):
        (copy / name).write_bytes((trained / name).read_bytes())
    _card, card_path = read_card(copy)
    data = json.loads(card_path.read_text())
    data["source_domain"], data["target_domain"] = "mri", "us"
    card_path.write_text(json.dumps(data))
    with pytest.raises(DDICModelError, match="needs an ultrasound → MRI"):
        load_generator(copy)
    data["source_domain"], data["target_domain"] = "us", "mri"
    card_path.write_text(json.dumps(data))
    weights = copy / "generator_us2mri.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\1")
    with pytest.raises(DDICModelError, match="corrupt or was changed"):
        load_generator(copy)


def test_diffusion_translator_refuses_cyclegan(trained):
    from ddic.translate.cyclegan import CycleGANTranslator
    from ddic.translate.engine import Translator

    options = TranslateOptions(method="cyclegan")
    assert options.step_lr(128) == 0.0
    with pytest.raises(DDICModelError, match="CycleGANTranslator"):
        Translator(None, None, options)  # refused before the models are looked at
    with pytest.raises(DDICInputError, match="method 'cyclegan'"):
        CycleGANTranslator(load_generator(trained), TranslateOptions(method="ddib"))
    translator = CycleGANTranslator(load_generator(trained), TranslateOptions(method="cyclegan", batch_size=2,
                                                                              device="cpu"))
    calls = []
    batches = translator.translate(np.zeros((3, SIZE, SIZE), np.float32), progress=lambda *a: calls.append(a))
    assert [b.pseudo_mri.shape for b in batches] == [(2, SIZE, SIZE), (1, SIZE, SIZE)]
    assert calls == [(1, 2, "translating"), (2, 2, "translating")] and translator.steps_per_image_batch == 1

    from ddic.io.images import Frame
    from ddic.translate.cyclegan import translate_cyclegan

    model = load_generator(trained)
    (result,) = translate_cyclegan([Frame.from_array(blob(2, False))], model)
    with torch.no_grad():
        x = torch.from_numpy(blob(2, False).astype(np.float32) / 127.5 - 1.0)[None, None]
        expected = (model.generator(x)[0, 0].numpy() + 1.0) * 127.5
    assert result.placement == {"kind": "identity"} and result.final_correlation is None
    np.testing.assert_allclose(result.pseudo_mri, expected, atol=1e-3)


def test_cli_trains_and_translates_end_to_end(folders, tmp_path, capsys):
    out = tmp_path / "cli_run"
    args = ["train-cyclegan", "--us", str(folders[0]), "--mri", str(folders[1]), "--out", str(out),
            "--size", str(SIZE), "--steps", "2", "--batch-size", "1", "--g-filters", "8", "--d-filters", "8",
            "--blocks", "1", "--num-samples", "0", "--device", "cpu"]
    assert main(args) == 0
    assert "steps: 2 of 2 (2 in this run)" in capsys.readouterr().out
    assert main(args + ["--resume"]) == 0  # complete: nothing to do, still success

    frame = folders[0] / "us_1.png"  # model-sized and square: taken as canonical (identity placement)
    result_dir = tmp_path / "translated"
    assert main(["translate", str(frame), "--method", "cyclegan", "--cyclegan-model", str(out),
                 "--out", str(result_dir), "--cpu"]) == 0
    pseudo = sitk.GetArrayFromImage(sitk.ReadImage(str(result_dir / "us_1_pseudo_mri.png"))).astype(float)
    generator = load_generator(out).generator
    with torch.no_grad():
        x = torch.from_numpy(blob(1, False).astype(np.float32) / 127.5 - 1.0)[None, None]
        expected = ((generator(x)[0, 0].numpy() + 1.0) * 127.5)
    assert pseudo.shape == (SIZE, SIZE) and np.abs(pseudo - expected).max() <= 0.51
    report = json.loads((result_dir / "translate.json").read_text())
    assert report["cyclegan_model"].startswith("generator_us2mri@") and "us_model" not in report
    assert (result_dir / "us_1_side_by_side.png").is_file()
    assert main(["translate", str(frame), "--method", "cyclegan", "--out", str(tmp_path / "x"), "--cpu"]) == 2
    assert "needs --cyclegan-model" in capsys.readouterr().err
