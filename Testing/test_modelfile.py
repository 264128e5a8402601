"""Model files: safetensors weights + JSON card, and every refusal on loading."""

import json
import shutil

import pytest
import torch

from ddic.errors import DDICModelError
from ddic.io.modelfile import sha256_file
from ddic.diffusion.modelfile import load_model, read_card, resolve_card_path

from conftest import TEST_SIZE, save_random_model


@pytest.fixture
def model_dir(tmp_path):
    save_random_model(tmp_path, "us", seed=7)
    return tmp_path


def test_round_trip_keeps_weights_and_card(model_dir):
    card_path = model_dir / "us.json"
    loaded = load_model(model_dir / "us.safetensors", expected_domain="us", expected_image_size=TEST_SIZE)
    torch.manual_seed(7)
    from ddic.diffusion.networks import build_unet, unet_config

    original = build_unet(unet_config("tiny", TEST_SIZE)).state_dict()
    for key, value in loaded.unet.state_dict().items():
        assert torch.equal(value, original[key]), key
    card = json.loads(card_path.read_text())
    assert card["format"] == "ddic-model" and card["domain"] == "us" and card["preset"] == "tiny"
    assert card["weights_file"] == "us.safetensors"
    assert card["weights_sha256"] == sha256_file(model_dir / "us.safetensors")
    assert card["schedule"]["name"] == "cosine" and card["schedule"]["num_train_timesteps"] == 1000
    assert card["pixel_spacing_mm"] == pytest.approx(128 * 1.094 / TEST_SIZE)
    assert card["created"] and card["package_version"]
    assert not any(p.requires_grad for p in loaded.unet.parameters())


def test_card_path_resolution(model_dir):
    assert resolve_card_path(model_dir) == model_dir / "us.json"
    assert resolve_card_path(model_dir / "us.safetensors") == model_dir / "us.json"
    save_random_model(model_dir, "mri", seed=8)
    with pytest.raises(DDICModelError, match="several model cards"):
        resolve_card_path(model_dir)
    with pytest.raises(DDICModelError, match="not found"):
        resolve_card_path(model_dir / "nothing.json")


def edit_card(model_dir, **changes):
    path = model_dir / "us.json"
    card = json.loads(path.read_text())
    card.update(changes)
    path.write_text(json.dumps(card))


def test_wrong_domain_is_refused(model_dir):
    with pytest.raises(DDICModelError, match="ultrasound model, but an MRI model is needed"):
        load_model(model_dir, expected_domain="mri")


def test_wrong_size_is_refused(model_dir):
    with pytest.raises(DDICModelError, match="128×128 is needed"):
        load_model(model_dir, expected_image_size=128)


def test_foreign_schedule_is_refused(model_dir):
    card = read_card(model_dir)[0]
    edit_card(model_dir, schedule={**card.schedule, "name": "linear"})
    with pytest.raises(DDICModelError, match="schedule"):
        load_model(model_dir)


def test_corrupt_weights_are_refused(model_dir):
    weights = model_dir / "us.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(DDICModelError, match="corrupt"):
        load_model(model_dir)


def test_missing_weights_are_refused(model_dir):
    (model_dir / "us.safetensors").unlink()
    with pytest.raises(DDICModelError, match="missing"):
        load_model(model_dir / "us.json")


def test_damaged_card_is_refused(model_dir):
    (model_dir / "us.json").write_text("{not json")
    with pytest.raises(DDICModelError, match="not valid JSON"):
        load_model(model_dir / "us.json")


def test_other_json_is_not_a_card(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(DDICModelError, match="not a DDIC model card"):
        load_model(tmp_path / "x.json")


def test_incomplete_card_is_refused(model_dir):
    card = json.loads((model_dir / "us.json").read_text())
    del card["image_size"]
    (model_dir / "us.json").write_text(json.dumps(card))
    with pytest.raises(DDICModelError, match="image_size"):
        load_model(model_dir)


def test_weights_not_matching_the_network_are_refused(model_dir, tmp_path_factory):
    other = tmp_path_factory.mktemp("other")
    # a card whose network is wider than the stored (hash-intact) tiny weights
    shutil.copy(model_dir / "us.safetensors", other / "us.safetensors")
    card = json.loads((model_dir / "us.json").read_text())
    card["network"]["block_out_channels"] = [32, 64, 64, 256]
    (other / "us.json").write_text(json.dumps(card))
    with pytest.raises(DDICModelError, match="do not match the network"):
        load_model(other)


def test_newer_card_version_is_refused(model_dir):
    edit_card(model_dir, format_version=99)
    with pytest.raises(DDICModelError, match="Update DDICSlicer"):
        load_model(model_dir)


def test_float16_storage_halves_the_file_and_loads_as_float32(model_dir, tmp_path_factory):
    from ddic.diffusion.modelfile import save_model

    tmp_path = tmp_path_factory.mktemp("half")
    full = load_model(model_dir / "us.json")
    card, _ = read_card(model_dir / "us.json")
    save_model(full.unet, card, tmp_path / "half.safetensors", dtype="float16")
    half = load_model(tmp_path / "half.json", expected_domain="us")
    assert json.loads((tmp_path / "half.json").read_text())["weights_dtype"] == "float16"
    ratio = (tmp_path / "half.safetensors").stat().st_size / (model_dir / "us.safetensors").stat().st_size
    assert 0.45 < ratio < 0.55
    for key, value in half.unet.state_dict().items():
        reference = full.unet.state_dict()[key]
        assert value.dtype == reference.dtype == torch.float32, key
        assert torch.allclose(value, reference, rtol=1e-3, atol=1e-4), key


def test_unknown_storage_dtype_is_refused(model_dir, tmp_path):
    from ddic.diffusion.modelfile import save_model

    full = load_model(model_dir / "us.json")
    card, _ = read_card(model_dir / "us.json")
    with pytest.raises(DDICModelError, match="storage type"):
        save_model(full.unet, card, tmp_path / "out" / "x.safetensors", dtype="int8")
    assert not (tmp_path / "out").exists()
