"""Bad input and unwritable outputs (issue 13): every command refuses with one line and exit code 2.

* non-finite pixels are refused (the rule: refused, never filled) by the one frame reader, so by
  translate, segment, cnr, the worker — and by the MRI volume reader of ``ddic prepare feta|crl``;
* a header declaring a huge image, or more data than the file holds, is refused before a pixel is read;
* an output folder that cannot be written gives one line naming it, from every command that writes;
* an empty segmentation is a failure; model ids work where folders do; a bad model card says what is wrong.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from faults_support import read_only_folder, write_huge_header, write_nan_nrrd

from ddic.cli.main import main
from ddic.errors import DDICInputError
from ddic.io.images import Frame, read_frame


def run(capsys, *argv) -> tuple[int, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def translate_args(frame, out, models, *extra):
    us, mri = models
    return ["translate", frame, "--us-model", us, "--mri-model", mri, "--out", out, "--steps", "2", "--cpu",
            "--method", "ddib", "--geometry", "square", *extra]


@pytest.mark.parametrize("value, kind", [(float("nan"), "100 NaN"), (float("inf"), "100 infinite")])
def test_non_finite_pixels_are_refused_by_every_command(tmp_path, capsys, random_models, value, kind):
    frame = write_nan_nrrd(tmp_path / "bad.nrrd", value=value)
    out = tmp_path / "out"
    code, err = run(capsys, *translate_args(frame, out, random_models))
    assert code == 2 and "non-finite" in err and kind in err and "refuses" in err
    assert not out.exists()  # a refused translation leaves no (empty) output folder behind
    code, err = run(capsys, "segment", frame, "--points", "30,30", "--out", tmp_path / "mask.nrrd")
    assert code == 2 and "non-finite" in err and not (tmp_path / "mask.nrrd").exists()
    code, err = run(capsys, "cnr", frame, "--roi", "25,25,35,35", "--background", "0,0,8,8")
    assert code == 2 and "non-finite" in err
    with pytest.raises(DDICInputError, match="non-finite"):
        Frame.from_array(sitk.GetArrayFromImage(sitk.ReadImage(str(frame))))  # the Slicer layer's path


def test_non_finite_voxels_are_refused_by_the_mri_volume_reader(tmp_path):
    from ddic.data.prepare.mri_common import read_volume

    volume = np.ones((6, 20, 20), dtype=np.float32)
    volume[3, 5, 5] = np.nan
    sitk.WriteImage(sitk.GetImageFromArray(volume), str(tmp_path / "t2w.nrrd"))  # NIfTI I/O drops NaN
    with pytest.raises(DDICInputError, match=r"1 non-finite pixel\(s\) \(1 NaN\)"):
        read_volume(tmp_path / "t2w.nrrd", "T2w volume")


def test_huge_or_truncated_headers_are_refused_before_any_pixel_is_read(tmp_path, capsys, monkeypatch,
                                                                      random_models):
    huge = write_huge_header(tmp_path / "huge.nrrd")
    truncated = tmp_path / "truncated.nrrd"
    truncated.write_bytes(b"NRRD0004\ntype: float\ndimension: 2\nsizes: 3000 2000\nendian: little\nencoding: raw\n\n" + b"\0" * 64)

    def no_pixels(*args, **kwargs):
        raise AssertionError("the pixels were read although the header had to be refused")

    monkeypatch.setattr(sitk, "ReadImage", no_pixels)
    for argv in (translate_args(huge, tmp_path / "out", random_models),
                 ["segment", huge, "--points", "3,3", "--out", tmp_path / "m.nrrd"],
                 ["cnr", huge, "--roi", "0,0,4,4", "--background", "5,5,9,9"]):
        code, err = run(capsys, *argv)
        assert code == 2 and "declares a 100000 × 100000 frame" in err and "MAX_FRAME_PIXELS" in err, err
    code, err = run(capsys, "segment", truncated, "--points", "3,3", "--out", tmp_path / "m.nrrd")
    assert code == 2 and "damaged or truncated" in err and "24,000,000 bytes" in err and "holds only 64" in err
    # an uncompressed NIfTI and a deflate file that are far too small for what they declare
    with pytest.raises(DDICInputError, match="damaged or truncated"):
        nii = tmp_path / "t.nii"
        sitk.WriteImage(sitk.GetImageFromArray(np.zeros((40, 50), np.uint8)), str(nii))
        nii.write_bytes(nii.read_bytes()[:-1000])
        read_frame(nii)
    assert not (tmp_path / "out").exists()


def test_the_pixel_limit_is_one_documented_constant():
    from pathlib import Path

    from ddic.io.header import MAX_FRAME_PIXELS

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert "MAX_FRAME_PIXELS" in readme and f"{MAX_FRAME_PIXELS:,}".replace(",", " ") in readme
    assert 4000 * 3000 <= MAX_FRAME_PIXELS  # a 4000 × 3000 capture must pass


def test_unwritable_output_folders_give_one_line_from_every_command(tmp_path, capsys, random_models):
    frame = tmp_path / "frame.png"
    sitk.WriteImage(sitk.GetImageFromArray((np.random.default_rng(1).random((32, 32)) * 255).astype(np.uint8)),
                    str(frame))
    with read_only_folder(tmp_path) as locked:
        commands = {
            "translate": translate_args(frame, locked / "out", random_models),
            "segment": ["segment", frame, "--points", "16,16", "--out", locked / "mask.nrrd"],
            "cnr": ["cnr", frame, "--roi", "10,10,20,20", "--background", "0,0,8,8", "--json", locked / "c.json"],
            "phantom": ["phantom", "--n", "1", "--out", locked / "phantom"],
            "demo": ["demo", "--out", locked / "demo", "--steps", "2"],
        }
        for name, argv in commands.items():
            code, err = run(capsys, *argv)
            lines = [line for line in err.splitlines() if line.strip()]
            assert code == 2, (name, err)
            assert len(lines) == 1 and lines[0].startswith(f"ddic {name}: error: Cannot write"), (name, err)
            assert str(locked) in lines[0] and "Traceback" not in err, (name, err)
        assert list(locked.iterdir()) == []


def test_a_write_that_fails_for_a_file_system_reason_is_one_line_even_deep_inside(tmp_path, capsys, monkeypatch):
    """A command that does not check its folder first still gets one line (the CLI's safety net)."""
    import errno

    def fails(args):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "x" / "file.csv"))

    monkeypatch.setattr("ddic.cli.models.run_list", fails)
    code, err = run(capsys, "models", "list")
    assert code == 2 and err.count("\n") == 1 and "permission denied" in err and "file.csv" in err


def test_an_empty_segmentation_is_a_failure_not_a_result(tmp_path, capsys):
    flat = tmp_path / "flat.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.full((60, 60), 100.0, np.float32)), str(flat))
    code, err = run(capsys, "segment", flat, "--points", "30,30", "--backend", "classical", "--out",
                    tmp_path / "mask.nrrd")
    assert code == 2 and "found no region" in err and "no mask was written" in err
    assert not (tmp_path / "mask.nrrd").exists()


def test_model_ids_from_models_list_are_accepted_for_translation(tmp_path, capsys):
    frame = tmp_path / "f.png"
    sitk.WriteImage(sitk.GetImageFromArray((np.random.default_rng(2).random((64, 64)) * 255).astype(np.uint8)),
                    str(frame))
    assert main(["models", "list"]) == 0
    listed = capsys.readouterr().out
    assert "ddic-demo-us" in listed and "ddic-demo-mri" in listed
    code, err = run(capsys, "translate", frame, "--us-model", "ddic-demo-us", "--mri-model", "ddic-demo-mri",
                    "--out", tmp_path / "out", "--steps", "2", "--cpu", "--method", "ddib")
    assert code == 0, err
    report = json.loads((tmp_path / "out" / "translate.json").read_text())
    assert report["us_model"].startswith("model@") and report["mri_model"].startswith("model@")
    code, err = run(capsys, "translate", frame, "--us-model", "sam-vit-b", "--mri-model", "ddic-demo-mri",
                    "--out", tmp_path / "o2", "--steps", "2", "--cpu")
    assert code == 2 and "not a DDIC diffusion model" in err and "ddic-demo-us" in err
    code, err = run(capsys, "translate", frame, "--us-model", "ddic-demo-mri", "--mri-model", "ddic-demo-us",
                    "--out", tmp_path / "o3", "--steps", "2", "--cpu")
    assert code == 2 and "swapped" in err


@pytest.mark.parametrize("damage, expected", [
    (lambda text: text.replace('"domain": "us"', '"domain": "ct"'), "names an unknown domain 'ct'"),
    (lambda text: text.replace('"format": "ddic-model"', '"format": "other"'), "its 'format' is 'other'"),
    (lambda text: text[:-40], "not valid JSON"),
])
def test_a_model_card_that_fails_validation_says_what_is_wrong(tmp_path, random_models, damage, expected):
    from ddic.errors import DDICModelError
    from ddic.diffusion.modelfile import load_model

    folder = tmp_path / "model"
    folder.mkdir()
    us_card = random_models[0]
    shutil.copy(us_card.with_suffix(".safetensors"), folder)
    (folder / us_card.name).write_text(damage(us_card.read_text()))
    with pytest.raises(DDICModelError, match=expected) as info:
        load_model(folder, expected_domain="us")
    assert "no model card" not in str(info.value).lower()


def test_model_ids_are_accepted_by_evaluate():
    from ddic.translate.methods import read_models

    models = read_models("ddic", {"us_model": "ddic-demo-us", "mri_model": "ddic-demo-mri"})
    assert models.ids["us_model"].startswith("model@") and models.paths["us_model"].endswith("model.json")
