"""``ddic translate`` end to end on PNG and NRRD frames with tiny models."""

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from ddic.cli.main import main


@pytest.fixture
def frames(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    png = (rng.random((27, 40)) * 255).astype(np.uint8)  # non-square 8-bit frame
    sitk.WriteImage(sitk.GetImageFromArray(png), str(folder / "a.png"))
    nrrd = sitk.GetImageFromArray(rng.random((32, 32)).astype(np.float32) * 1000)
    nrrd.SetSpacing((0.3, 0.3))
    nrrd.SetOrigin((5.0, 6.0))
    sitk.WriteImage(nrrd, str(folder / "b.nrrd"))
    return folder


def run_translate(frames, models, out, *extra):
    us, mri = models
    return main(["translate", str(frames), "--us-model", str(us), "--mri-model", str(mri), "--out", str(out),
                 "--steps", "3", "--cpu", *extra])


def test_translate_writes_results_with_input_geometry(frames, random_models, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_translate(frames, random_models, out, "--batch-size", "1", "--geometry", "square") == 0
    a = sitk.ReadImage(str(out / "a_pseudo_mri.png"))
    assert a.GetSize() == (40, 27) and a.GetPixelIDTypeAsString() == "8-bit unsigned integer"
    b = sitk.ReadImage(str(out / "b_pseudo_mri.nrrd"))
    assert b.GetSize() == (32, 32) and b.GetSpacing() == pytest.approx((0.3, 0.3))
    assert b.GetOrigin() == pytest.approx((5.0, 6.0))
    values = sitk.GetArrayFromImage(b)
    assert values.dtype == np.float32 and 0.0 <= values.min() and values.max() <= 255.0
    preview = sitk.ReadImage(str(out / "a_side_by_side.png"))
    assert preview.GetSize() == (2 * 40 + 4, 27)
    report = json.loads((out / "translate.json").read_text())
    assert report["options"]["steps"] == 3 and report["step_lr"] == pytest.approx(62.5)
    assert len(report["frames"]) == 2 and report["device"] == "cpu"
    assert all(isinstance(f["final_correlation"], float) for f in report["frames"])
    assert "2 frame(s) translated with ddic/faithful" in capsys.readouterr().out


def test_ddib_and_refusal_to_overwrite(frames, random_models, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_translate(frames, random_models, out, "--method", "ddib", "--geometry", "square") == 0
    first = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "b_pseudo_mri.nrrd")))
    assert json.loads((out / "translate.json").read_text())["frames"][0]["final_correlation"] is None
    stamp = (out / "b_pseudo_mri.nrrd").stat().st_mtime_ns
    capsys.readouterr()
    # the same run again finds every frame complete and keeps it untouched
    assert run_translate(frames, random_models, out, "--method", "ddib", "--geometry", "square") == 0
    assert "2 of 2 frame(s) already complete" in capsys.readouterr().err
    assert (out / "b_pseudo_mri.nrrd").stat().st_mtime_ns == stamp
    # other settings into the same folder: refused, unless --overwrite
    assert run_translate(frames, random_models, out, "--method", "ddic", "--geometry", "square") == 2
    assert "already holds a translation made with other settings (method: 'ddib' → 'ddic'" in capsys.readouterr().err
    (out / "translate.json").unlink()  # results without a report (e.g. from an older version) are not replaced
    assert run_translate(frames, random_models, out, "--method", "ddib", "--geometry", "square") == 2
    assert "already exists" in capsys.readouterr().err
    assert run_translate(frames, random_models, out, "--method", "ddib", "--geometry", "square", "--overwrite") == 0
    np.testing.assert_array_equal(first, sitk.GetArrayFromImage(sitk.ReadImage(str(out / "b_pseudo_mri.nrrd"))))


def test_swapped_models_fail_with_a_clear_message(frames, random_models, tmp_path, capsys):
    us, mri = random_models
    code = main(["translate", str(frames), "--us-model", str(mri), "--mri-model", str(us), "--out",
                 str(tmp_path / "o"), "--steps", "2", "--cpu"])
    assert code == 2
    err = capsys.readouterr().err
    assert "MRI model, but an ultrasound model is needed" in err and "swapped" in err


def test_output_never_overwrites_an_input(frames, random_models, capsys):
    (frames / "c_pseudo_mri.png").write_bytes((frames / "a.png").read_bytes())  # an input named like a result
    sitk.WriteImage(sitk.ReadImage(str(frames / "a.png")), str(frames / "c.png"))
    assert run_translate(frames, random_models, frames, "--method", "ddib") == 2
    assert "overwrite an input" in capsys.readouterr().err


def test_bad_options_and_missing_frames(frames, random_models, tmp_path, capsys):
    assert run_translate(frames, random_models, tmp_path / "o", "--median-kernel", "4") == 2
    assert "median_kernel" in capsys.readouterr().err
    assert run_translate(tmp_path / "missing.png", random_models, tmp_path / "o") == 2
    assert "not found" in capsys.readouterr().err


def test_models_trained_by_the_cli_translate_end_to_end(tmp_path, capsys):
    """`ddic train` (a few steps, tiny net) for each domain, then `ddic translate` with those models."""
    rng = np.random.default_rng(1)
    data = {}
    for domain in ("us", "mri"):
        folder = tmp_path / f"{domain}_data"
        folder.mkdir()
        for i in range(4):
            image = (rng.random((32, 32)) * (255 if domain == "us" else 100)).astype(np.uint8)
            sitk.WriteImage(sitk.GetImageFromArray(image), str(folder / f"{i}.png"))
        data[domain] = folder
        assert main(["train", "--domain", domain, "--data", str(folder), "--out", str(tmp_path / domain),
                     "--preset", "tiny", "--size", "32", "--steps", "2", "--batch-size", "2",
                     "--num-samples", "0", "--device", "cpu"]) == 0
    out = tmp_path / "translated"
    assert main(["translate", str(data["us"] / "0.png"), "--us-model", str(tmp_path / "us"),
                 "--mri-model", str(tmp_path / "mri" / "model.safetensors"), "--out", str(out),
                 "--steps", "3", "--mode", "cached", "--cpu"]) == 0
    result = sitk.ReadImage(str(out / "0_pseudo_mri.png"))
    assert result.GetSize() == (32, 32)
    report = json.loads((out / "translate.json").read_text())
    assert report["us_model"].startswith("model@") and report["options"]["mode"] == "cached"
    assert "1 frame(s) translated" in capsys.readouterr().out


@pytest.mark.slow
def test_torchrun_shards_frames_across_ranks(frames, random_models, tmp_path):
    """Two processes each translate their share of the frames; together they cover every frame once."""
    import os
    import subprocess
    import sys

    sitk.WriteImage(sitk.ReadImage(str(frames / "a.png")), str(frames / "c.png"))
    us, mri = random_models
    out = tmp_path / "sharded"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
         "-m", "ddic", "translate", str(frames), "--us-model", str(us), "--mri-model", str(mri),
         "--out", str(out), "--steps", "2", "--method", "ddib", "--cpu", "--geometry", "square"],
        capture_output=True, text=True, env=env, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    reports = [json.loads((out / f"translate_rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in reports] == [2, 2]
    translated = sorted(Path(f["frame"]).name for r in reports for f in r["frames"])
    assert translated == ["a.png", "b.nrrd", "c.png"]
    assert {len(r["frames"]) for r in reports} == {1, 2}
    for name in ("a_pseudo_mri.png", "b_pseudo_mri.nrrd", "c_pseudo_mri.png"):
        assert (out / name).is_file()


def test_head_geometry_on_an_hc18_like_frame(random_models, tmp_path):
    """A full 800×540 B-mode-like frame: the skull is found, the head goes to the canonical grid and the
    pseudo-MRI comes back on the frame's own grid."""
    from hc18_synthetic import random_head, skull_frame

    rng = np.random.default_rng(3)
    ellipse, pixel_size, hc = random_head(rng)
    frame = skull_frame(rng, ellipse, pixel_size)
    sitk.WriteImage(sitk.GetImageFromArray(frame.astype(np.uint8)), str(tmp_path / "f.png"))
    us, mri = random_models
    out = tmp_path / "out"
    args = ["translate", str(tmp_path / "f.png"), "--us-model", str(us), "--mri-model", str(mri),
            "--out", str(out), "--steps", "2", "--method", "ddib", "--cpu"]
    assert main(args) == 2  # a PNG carries no pixel size
    assert main(args + ["--pixel-size", str(pixel_size)]) == 0
    result = sitk.ReadImage(str(out / "f_pseudo_mri.png"))
    assert result.GetSize() == (800, 540)
    placed = json.loads((out / "translate.json").read_text())["frames"][0]["placement"]
    assert placed["kind"] == "canonical_head" and placed["ellipse_source"] == "detected"
    # the synthetic ring is centred on `ellipse`; the detector reports the outer skull (default
    # boundary="outer"): half a Wong-law bone thickness outside the echo's centre line
    from ddic.geometry.skull import skull_thickness_from_bpd_mm
    half_bone_px = 0.5 * float(skull_thickness_from_bpd_mm(2.0 * ellipse.b * pixel_size)) / pixel_size
    assert placed["hc_mm"] == pytest.approx(ellipse.offset(half_bone_px).hc_mm(pixel_size), rel=0.03)
    given = f"{ellipse.cx},{ellipse.cy},{ellipse.a},{ellipse.b},{ellipse.angle_deg}"
    assert main(args + ["--pixel-size", str(pixel_size), "--ellipse", given, "--overwrite",
                        "--anterior", "right"]) == 0
    placed = json.loads((out / "translate.json").read_text())["frames"][0]["placement"]
    assert placed["ellipse_source"] == "given" and placed["orientation_source"] == "given"
    assert placed["hc_mm"] == pytest.approx(hc, abs=0.01)
