"""``ddic translate --options-json``: the flags and the JSON document give identical option records.

The Slicer panel builds ``TranslateOptions`` / ``PlacementOptions`` itself and hands them to the
translation process as one JSON document (``ddic.translate.options_document``); these tests hold the
command line and the document to the same records, and the document to every field of the records.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import fields

import pytest

from ddic.cli import translate as cli_translate
from ddic.errors import DDICInputError
from ddic.geometry.ellipse import Ellipse
from ddic.translate import options_document
from ddic.translate.options import SOLVERS, TranslateOptions
from ddic.translate.placement import PlacementOptions


def parse(*argv):
    parser = argparse.ArgumentParser()
    cli_translate.register(parser.add_subparsers())
    return parser.parse_args(["translate", "f.png", "--out", "o", *argv])


FLAG_SETS = [
    (),
    ("--method", "ddib", "--steps", "50", "--cpu"),
    ("--mode", "cached", "--steps", "7", "--lr", "2.5", "--median-kernel", "3", "--corr-sign", "abs",
     "--guide-t-min", "10", "--guide-t-max", "900", "--no-clip", "--batch-size", "2", "--precision", "fp32",
     "--geometry", "head", "--pixel-size", "0.25", "--anterior", "left",
     "--ellipse", "400,270,120.5,90,12", "--device", "cuda:1", "--solver", "dpmpp2m"),
    ("--geometry", "square", "--anterior", "right", "--lr-reference-steps", "500"),
]


@pytest.mark.parametrize("flags", FLAG_SETS, ids=lambda f: " ".join(f)[:40] or "defaults")
def test_flags_and_json_document_give_identical_options(flags, tmp_path):
    from_flags = parse(*flags)
    options, placement = cli_translate.options_from_args(from_flags), cli_translate.placement_from_args(from_flags, 1)
    path = options_document.write(tmp_path / "options.json", options, placement)
    from_json = parse("--options-json", str(path))
    assert cli_translate.options_from_args(from_json) == options
    assert cli_translate.placement_from_args(from_json, 1) == placement


def test_document_carries_every_field_including_ones_without_a_flag(tmp_path):
    """No field list is kept anywhere: a field without a CLI flag (solver) still travels."""
    options = TranslateOptions(method="ddic", steps=33, solver=SOLVERS[-1], device="cpu")
    placement = PlacementOptions(mode="head", ellipse=Ellipse(50, 40, 30, 20, 15), pixel_size_mm=0.3,
                                 anterior_right=False)
    data = json.loads(options_document.write(tmp_path / "o.json", options, placement).read_text())
    assert set(data["translate"]) == {f.name for f in fields(TranslateOptions)}
    assert set(data["placement"]) == {f.name for f in fields(PlacementOptions)}
    assert data["translate"]["solver"] == SOLVERS[-1] and data["placement"]["ellipse"]["a"] == 30.0
    back, back_placement = options_document.read(tmp_path / "o.json")
    assert back == options and back_placement == placement
    assert cli_translate.options_from_args(parse("--options-json", str(tmp_path / "o.json"))).solver == SOLVERS[-1]


def test_flags_together_with_the_document_are_refused(tmp_path):
    path = options_document.write(tmp_path / "o.json", TranslateOptions(), PlacementOptions())
    with pytest.raises(DDICInputError, match="either as flags or in --options-json"):
        cli_translate.options_from_args(parse("--steps", "9", "--options-json", str(path)))
    with pytest.raises(DDICInputError, match="either as flags or in --options-json"):
        cli_translate.placement_from_args(parse("--pixel-size", "0.2", "--options-json", str(path)), 1)


def test_bad_documents_say_what_is_wrong(tmp_path):
    good = options_document.to_dict(TranslateOptions(), PlacementOptions())
    cases = [({**good, "format": "other"}, "Not a translation options document"),
             ({**good, "format_version": 99}, "version 99 is not supported"),
             ({**good, "translate": {**good["translate"], "stepz": 3}}, "Unknown translation option"),
             ({**good, "translate": {**good["translate"], "steps": 1}}, "Invalid translation option steps"),
             ({**good, "placement": {**good["placement"], "elipse": None}}, "Unknown placement option"),
             ({**good, "placement": {**good["placement"], "pixel_size_mm": -1}}, "positive number")]
    for data, message in cases:
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(data))
        with pytest.raises(DDICInputError, match=message):
            options_document.read(path)
    with pytest.raises(DDICInputError, match="not found"):
        options_document.read(tmp_path / "missing.json")
    ellipse_doc = options_document.to_dict(TranslateOptions(), PlacementOptions(ellipse=Ellipse(5, 5, 3, 2)))
    (tmp_path / "e.json").write_text(json.dumps(ellipse_doc))
    with pytest.raises(DDICInputError, match="describes one frame"):
        cli_translate.placement_from_args(parse("--options-json", str(tmp_path / "e.json")), 2)


def test_anterior_choices_travel():
    from ddic.translate.placement import ANTERIOR_CHOICES, anterior_from_choice

    for name in ANTERIOR_CHOICES:
        placement = cli_translate.placement_from_args(parse("--anterior", name), 1)
        assert placement.anterior_right is anterior_from_choice(name)
        back = options_document.from_dict(options_document.to_dict(TranslateOptions(), placement))[1]
        assert back.anterior_right is anterior_from_choice(name)


def test_option_records_import_without_torch():
    """The panel imports these in Slicer's own process, where torch may be absent."""
    code = ("import sys, ddic.translate.options, ddic.translate.placement, ddic.translate.options_document, "
            "ddic.diffusion.constants, ddic.worker.protocol, ddic.cli.watchdog\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    third_party = set(eval(out)) - {"ddic", "__main__", "_distutils_hack"}
    third_party = {m for m in third_party if not m.startswith("__editable__")}
    assert third_party <= {"numpy"}, third_party


def test_translate_runs_from_the_document(frames_and_models, tmp_path):
    """End to end: a document written by the options module drives a real run; the report echoes it."""
    frame, (us, mri) = frames_and_models
    options = TranslateOptions(method="ddib", steps=3, device="cpu")
    path = options_document.write(tmp_path / "o.json", options, PlacementOptions(mode="square"))
    from ddic.cli.main import main

    out = tmp_path / "out"
    assert main(["translate", str(frame), "--us-model", str(us), "--mri-model", str(mri), "--out", str(out),
                 "--options-json", str(path)]) == 0
    report = json.loads((out / "translate.json").read_text())
    assert report["options"] == options.to_dict()
    assert report["frames"][0]["placement"]["kind"] in ("square_fit", "identity")


@pytest.fixture
def frames_and_models(random_models, tmp_path):
    import numpy as np
    import SimpleITK as sitk

    path = tmp_path / "frame.nrrd"
    image = sitk.GetImageFromArray((np.random.default_rng(3).random((20, 24)) * 100).astype(np.float32))
    sitk.WriteImage(image, str(path))
    return path, random_models
