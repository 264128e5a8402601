"""The trust threshold: measured into the US model's card by ``ddic calibrate-trust``, chosen per solver and
N at translation time, with the documented fallback for a card without a reference."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk

from ddic.cli.main import main
from ddic.diffusion.modelfile import load_model
from ddic.translate.engine import Translator
from ddic.translate.options import TranslateOptions
from ddic.translate.trust import (
    REFERENCE_KEY,
    ROUND_TRIP_WARN_RMSE,
    TRUST_FACTOR,
    reference_entry,
    round_trip_threshold,
)

from conftest import TEST_SIZE


def card_with(entries):
    return SimpleNamespace(extra={REFERENCE_KEY: {"entries": entries}})


def test_threshold_uses_the_largest_calibrated_n_not_above_the_request():
    entries = [{"solver": "ddim", "steps": n, "p95": p, "images": 8} for n, p in ((20, 0.2), (50, 0.1), (100, 0.05))]
    card = card_with(entries + [{"solver": "dpmpp2m", "steps": 20, "p95": 0.03, "images": 8}])
    assert reference_entry(card, "ddim", 60)["steps"] == 50  # the conservative (larger-error) neighbour
    assert reference_entry(card, "ddim", 10)["steps"] == 20  # nothing below: the smallest above
    assert round_trip_threshold(card, "ddim", 100)[0] == pytest.approx(TRUST_FACTOR * 0.05)
    assert round_trip_threshold(card, "dpmpp2m", 30)[0] == pytest.approx(TRUST_FACTOR * 0.03)
    threshold, source = round_trip_threshold(SimpleNamespace(extra={}), "ddim", 100)
    assert threshold == ROUND_TRIP_WARN_RMSE and "default" in source


def test_calibrate_trust_writes_the_reference_and_translation_uses_it(random_models, tmp_path, capsys):
    folder = tmp_path / "model"
    folder.mkdir()
    us_card = random_models[0]
    for path in (us_card, us_card.with_suffix(".safetensors")):
        shutil.copy(path, folder / path.name)
    images = tmp_path / "frames"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        sitk.WriteImage(sitk.GetImageFromArray(rng.integers(0, 255, (TEST_SIZE, TEST_SIZE)).astype(np.uint8)),
                        str(images / f"{i}.png"))
    weights_before = (folder / "us.safetensors").read_bytes()
    assert main(["calibrate-trust", str(folder), "--images", str(images), "--solvers", "ddim",
                 "--steps", "3,5"]) == 0
    assert "threshold" in capsys.readouterr().out
    card = json.loads((folder / "us.json").read_text())
    entries = card["extra"][REFERENCE_KEY]["entries"]
    assert [(e["solver"], e["steps"]) for e in entries] == [("ddim", 3), ("ddim", 5)]
    assert all(0 <= e["p50"] <= e["p95"] <= e["max"] for e in entries) and entries[0]["images"] == 4
    assert (folder / "us.safetensors").read_bytes() == weights_before  # weights untouched, still loadable
    us, mri = load_model(folder), load_model(random_models[1])
    translator = Translator(us, mri, TranslateOptions(steps=5, solver="ddim", device="cpu"))
    assert translator.trust_threshold == pytest.approx(TRUST_FACTOR * entries[1]["p95"])
    assert "95th percentile" in translator.trust_threshold_source
    assert main(["calibrate-trust", str(folder), "--images", str(images), "--solvers", "euler"]) == 2
