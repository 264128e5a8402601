"""``ddic evaluate``: every file on a few phantom frames, the output cache, paired columns, CycleGAN, errors."""

from __future__ import annotations

import csv
import json
import math
import shutil

import numpy as np
import pytest
import torch
from conftest import TEST_SIZE
from ddic.cli.main import main
from ddic.translate.options import TranslateOptions
from ddic.errors import DDICInputError
from ddic.evaluate import REPORT_FILES, EvaluateOptions, run_evaluation
from ddic.evaluate.cases import attach_truth, guess_near_field, load_test_set
from ddic.evaluate.measure import atlas_regions, columns
from ddic.evaluate.methods import parse_methods
from ddic.metrics import RandomProjectionFeatures

N_FRAMES = 3
STEPS = 2


@pytest.fixture(scope="session")
def phantom(tmp_path_factory):
    """Three paired phantom US cases (canonical 128 px with truth)."""
    from ddic.data.phantom.dataset import make_phantom_dataset

    out = tmp_path_factory.mktemp("phantom")
    make_phantom_dataset(out, N_FRAMES, seed=3, domains=("us",))
    return out


@pytest.fixture(scope="session")
def models(random_models):
    us, mri = random_models
    return str(us), str(mri)


@pytest.fixture(scope="session")
def cyclegan_model(tmp_path_factory):
    """A tiny random US → MRI generator at the test size, saved with its card."""
    from ddic.cyclegan.model import CycleGANCard, save_generator
    from ddic.cyclegan.networks import build_generator, generator_config
    from ddic.geometry.canonical import spacing_for_size

    config = generator_config(TEST_SIZE, filters=4, blocks=1)
    torch.manual_seed(0)
    card = CycleGANCard(network=config, image_size=TEST_SIZE, pixel_spacing_mm=spacing_for_size(TEST_SIZE),
                        normalisation={"kind": "uint8"})
    folder = tmp_path_factory.mktemp("cyclegan")
    save_generator(build_generator(config), card, folder / "generator.safetensors")
    return folder


def read_rows(path):
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, list(reader)


def options(phantom, models, out, **changes) -> EvaluateOptions:
    translation = {"steps": STEPS, "mode": "cheap", "device": "cpu"}
    for key in ("steps", "mode", "lr", "solver"):
        if key in changes:
            translation[key] = changes.pop(key)
    base = {"us_test": phantom, "out": out, "methods": "ddib,ddic", "us_model": models[0], "mri_model": models[1],
            "paired": phantom, "translation": TranslateOptions(**translation), "n_bootstrap": 20, "grid_frames": 2}
    base.update(changes)
    return EvaluateOptions(**base)


@pytest.fixture(scope="module")
def first_run(phantom, models, tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    reference = folder / "mri_ref"  # a real-MRI set for FID/KID: the paired MRI slices
    reference.mkdir()
    for path in sorted((phantom / "us" / "paired").glob("*_mri.png")):
        shutil.copy(path, reference / path.name)
    out = folder / "report"
    result = run_evaluation(options(phantom, models, out, mri_ref=reference),
                            extractor=RandomProjectionFeatures(dims=8, size=8))
    return out, result


@pytest.mark.slow
def test_every_file_and_the_per_image_table(first_run):
    out, result = first_run
    for name in REPORT_FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for method in ("ddib", "ddic"):
        for i in range(1, N_FRAMES + 1):
            assert (out / "outputs" / method / f"{i:03d}_us.nrrd").is_file()
            assert (out / "outputs" / method / f"{i:03d}_us.json").is_file()
    header, rows = read_rows(out / "per_image.csv")
    assert tuple(header) == columns(paired=True)
    assert len(rows) == 3 * N_FRAMES  # two methods and the paired-MRI reference
    assert [r["method"] for r in rows] == ["ddib"] * N_FRAMES + ["ddic"] * N_FRAMES + ["paired_mri"] * N_FRAMES
    assert {r["frame"] for r in rows} == {f"{i:03d}_us" for i in range(1, N_FRAMES + 1)}
    for r in rows:
        assert r["cached"] == ("" if r["method"] == "paired_mri" else "0")
        assert math.isfinite(float(r["mi_ksg"])) and math.isfinite(float(r["psnr"]))
        assert float(r["cnr_us"]) > 0 and 0 <= float(r["gcnr_us"]) <= 1
        assert 0 <= float(r["dice_us"]) <= 1 and r["distal_hemisphere"] in ("left", "right")
        assert -1 <= float(r["ssim"]) <= 1
    # the US columns are measured once per frame: equal on every method's row
    assert all(float(r["ssim"]) == pytest.approx(1.0) for r in rows if r["method"] == "paired_mri")
    by_frame = {}
    for r in rows:
        by_frame.setdefault(r["frame"], set()).add((r["cnr_us"], r["dice_us"], r["ssim_us"]))
    assert all(len(v) == 1 for v in by_frame.values())
    assert result["translation"]["ddic"]["translated"] == N_FRAMES


@pytest.mark.slow
def test_summary_tables_and_report(first_run):
    out, _ = first_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kind"] == "ddic_evaluation" and summary["methods"] == ["ddib", "ddic"]
    assert set(summary["metrics"]["cnr"]["summary"]) == {"us", "ddib", "ddic", "paired_mri"}  # + US baseline
    assert set(summary["metrics"]["mi_ksg"]["summary"]) == {"ddib", "ddic", "paired_mri"}  # no MI of US with US
    _, summary_rows = read_rows(out / "summary.csv")
    assert {r["metric"] for r in summary_rows} >= {"mi_ksg", "psnr", "cnr", "gcnr", "ssim", "dice",
                                                   "width_abs_error_mm"}
    _, cnr = read_rows(out / "cnr_table.csv")
    assert [r["group"] for r in cnr] == ["us", "ddib", "ddic", "paired_mri"] and "±" in cnr[0]["cnr"]
    _, pairwise = read_rows(out / "pairwise.csv")
    assert {r["test"] for r in pairwise} == {"welch", "paired_t", "wilcoxon"}
    assert {(r["a"], r["b"]) for r in pairwise if r["metric"] == "mi_ksg"} == {
        ("ddib", "ddic"), ("ddib", "paired_mri"), ("ddic", "paired_mri")}
    fid = summary["fid"]
    assert fid["extractor"].startswith("random-projection")
    assert set(fid["methods"]) == {"us", "ddib", "ddic"} and fid["n_real_mri"] == N_FRAMES
    assert set(fid["methods"]["ddic"]) == {"source_us", "real_mri"} and set(fid["methods"]["us"]) == {"real_mri"}
    kid = fid["methods"]["ddic"]["real_mri"]
    assert kid["n_generated"] == N_FRAMES and kid["fid"] >= 0 and kid["kid_ci"][0] <= kid["kid_ci"][1]
    page = (out / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("data:image/png;base64,") == 2
    assert "Contrast: US vs pseudo-MRI" in page and "per_image.csv" in page


@pytest.mark.slow
def test_second_run_reuses_every_output_and_an_option_change_only_its_method(first_run, phantom, models,
                                                                                 tmp_path):
    out = tmp_path / "again"
    shutil.copytree(first_run[0], out)  # the first run's report stays as it was for the other tests
    before = read_rows(out / "per_image.csv")[1]
    code = main(["evaluate", "--us-test", str(phantom), "--paired", str(phantom), "--us-model", models[0],
                 "--mri-model", models[1], "--methods", "ddib,ddic", "--steps", str(STEPS), "--mode", "cheap",
                 "--no-fid", "--grid-frames", "0", "--cpu", "--out", str(out)])
    assert code == 0
    again = json.loads((out / "summary.json").read_text())
    assert {m: i["translated"] for m, i in again["translation"].items()} == {"ddib": 0, "ddic": 0}
    after = read_rows(out / "per_image.csv")[1]
    assert all(r["cached"] == "1" for r in after if r["method"] != "paired_mri")
    assert [r["mi_ksg"] for r in after] == [r["mi_ksg"] for r in before]  # the same pixels came back
    # another DDIC mode: DDIC is translated again, DDIB (which ignores the mode) is not
    assert not (out / "image_grid.png").exists()  # not drawn this time: the earlier grid is gone
    run_evaluation(options(phantom, models, out, mode="cached", fid=False, grid_frames=0, limit=2, paired=None))
    third = json.loads((out / "summary.json").read_text())["translation"]
    assert third["ddib"]["cached"] == 2 and third["ddic"]["translated"] == 2


@pytest.mark.slow
def test_without_paired_no_truth_columns_and_fid_skipped_with_a_note(phantom, models, tmp_path, monkeypatch):
    monkeypatch.setenv("DDIC_INCEPTION_WEIGHTS", str(tmp_path / "missing.pth"))
    out = tmp_path / "report"
    result = run_evaluation(options(phantom, models, out, methods="ddib", paired=None, limit=2, grid_frames=1))
    header, rows = read_rows(out / "per_image.csv")
    assert tuple(header) == columns(paired=False)
    assert "dice" not in header and "ssim" not in header and len(rows) == 2
    assert {r["method"] for r in rows} == {"ddib"}  # no paired-MRI reference without truth
    assert "Inception" in result["fid"]["note"] and any("FID/KID skipped" in n for n in result["notes"])
    assert (out / "report.html").is_file()


@pytest.mark.slow
def test_cyclegan_is_a_method_like_the_others(phantom, cyclegan_model, tmp_path):
    out = tmp_path / "report"
    code = main(["evaluate", "--us-test", str(phantom / "us" / "paired"), "--methods", "cyclegan",
                 "--cyclegan-model", str(cyclegan_model), "--limit", "2", "--no-fid", "--cpu", "--out", str(out)])
    assert code == 0
    _, rows = read_rows(out / "per_image.csv")
    assert [r["method"] for r in rows] == ["cyclegan", "cyclegan"]
    identity = json.loads((out / "outputs" / "cyclegan" / "001_us.json").read_text())["identity"]
    assert set(identity["models"]) == {"cyclegan_model"} and identity["device_type"] == "cpu"
    assert identity["options"] == {"method": "cyclegan", "precision": "fp32"}  # "auto" resolved on the CPU


def test_bad_methods_and_missing_models_exit_2_with_a_message(phantom, models, tmp_path, capsys):
    common = ["evaluate", "--us-test", str(phantom), "--us-model", models[0], "--mri-model", models[1],
              "--out", str(tmp_path / "r")]
    assert main(common + ["--methods", "ddic,foo"]) == 2
    assert "unknown method(s) foo" in capsys.readouterr().err
    assert main(common + ["--methods", ","]) == 2
    assert "--methods is empty" in capsys.readouterr().err
    assert main(common + ["--methods", "ddic,cyclegan"]) == 2
    assert "needs --cyclegan-model" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # nothing written before the arguments are right
    assert parse_methods("DDIC, ddib,ddic") == ("ddic", "ddib")


def test_a_foreign_out_folder_is_refused(phantom, models, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "thesis.docx").write_text("x")
    with pytest.raises(DDICInputError, match="holds other files"):
        run_evaluation(options(phantom, models, out, methods="ddib", paired=None, limit=1))


def test_prepared_data_gives_the_head_from_its_manifest(phantom, tmp_path):
    from ddic.data.prepare.hc18 import prepare_hc18

    prepared = tmp_path / "prepared"
    prepare_hc18(phantom / "us" / "hc18", prepared, test_fraction=0.5, size=64)
    with open(prepared / "manifest.csv", newline="") as handle:
        manifest = {r["output"]: r for r in csv.DictReader(handle) if r["split"] == "test"}
    for where in (prepared, prepared / "test"):
        test_set = load_test_set(where)
        assert test_set.kind == "prepared" and len(test_set.cases) == len(manifest) >= 1
        for case in test_set.cases:
            row = manifest[f"test/{case.path.name}"]
            assert case.size == 64 and case.head.near_field == row["near_field"]
            # semi-axes on the 64-px grid: the manifest's OFD / 2 in mm over the grid's spacing
            assert case.head.a_px == pytest.approx(float(row["ofd_mm"]) / 2 / case.spacing_mm, rel=1e-3)
            regions = atlas_regions(case)
            assert 0 <= regions.point[0] < 32 and regions.roi.width == 2  # posterior half; 3 mm at 2.19 mm/px
    with pytest.raises(DDICInputError, match="no row in"):
        attach_truth(load_test_set(prepared).cases, phantom)


def test_test_set_head_truth_and_near_field(phantom):
    test_set = load_test_set(phantom)
    assert test_set.kind == "phantom" and len(test_set.cases) == N_FRAMES
    with open(phantom / "us" / "paired" / "paired.csv", newline="") as handle:
        rows = {r["us"]: r for r in csv.DictReader(handle)}
    attach_truth(test_set.cases, phantom / "us" / "paired")
    for case in test_set.cases:
        row = rows[case.path.name]
        assert case.head.near_field == row["near_field"]
        # the skull-echo guess agrees with the renderer's own orientation (fallback for old csv files)
        assert guess_near_field(case.pixels, case.head.a_px, case.head.b_px) == row["near_field"]
        assert case.pixels.shape == (128, 128) and case.pixels[0, 0] == 0  # masked outside the head
        assert case.truth.width_mm("left") == pytest.approx(float(row["atrium_width_left_mm"]))
        regions = atlas_regions(case)
        assert regions.distal_side != row["near_field"]  # the distal hemisphere is away from the transducer
        # the ROI square lies in the true ventricle more than the background square does
        ventricle = np.isin(case.truth.labels, (8, 9))
        assert ventricle[regions.roi.slices].mean() > ventricle[regions.background.slices].mean()
    assert load_test_set(phantom, limit=2).cases[-1].name == "002_us"
    with pytest.raises(DDICInputError, match="--limit"):
        load_test_set(phantom, limit=0)


def test_a_plain_folder_of_canonical_frames_gets_its_head_from_the_skull_fit(phantom, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    paired = load_test_set(phantom)
    for case in paired.cases:
        shutil.copy(case.path, folder / case.path.name)
    plain = load_test_set(folder)
    assert plain.kind == "folder" and [c.name for c in plain.cases] == [c.name for c in paired.cases]
    assert any("skull-ellipse fit" in n for n in plain.notes)
    for found, known in zip(plain.cases, paired.cases):
        assert found.head.near_field == known.head.near_field
        assert found.head.a_px == pytest.approx(known.head.a_px, rel=0.15)
        assert found.head.b_px == pytest.approx(known.head.b_px, rel=0.15)
        assert atlas_regions(found).distal_side == atlas_regions(known).distal_side
