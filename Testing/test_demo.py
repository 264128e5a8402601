"""The main job (`ddic demo`), its atlas-placed ventricle prompts, its drawing helpers and the bundled models."""

import json

import numpy as np
import pytest
import SimpleITK as sitk

from ddic.cli.main import main
from ddic.data.labels import Label
from ddic.demo.overlay import draw_box, draw_outline, to_rgb

VENTRICLE = (int(Label.LATERAL_VENTRICLE), int(Label.CHOROID_PLEXUS))
PARENCHYMA = (int(Label.WHITE_MATTER), int(Label.THALAMUS), int(Label.BASAL_GANGLIA))


@pytest.mark.slow
def test_atlas_prompts_land_in_the_distal_ventricle_and_the_parenchyma():
    from ddic.data.phantom.dataset import render_paired_case
    from ddic.data.ventricle_atlas import prompts_for_transform

    roi_purity, background_purity = [], []
    for index in range(4):
        case = render_paired_case(5, index, (21, 38))
        transform, labels = case["transform"], case["labels"]
        prompts = prompts_for_transform(transform)
        x, y = (int(round(v)) for v in prompts.point)
        assert labels[y, x] in VENTRICLE, index
        distal_rows = slice(64, 128) if transform.near_field_side() == "top" else slice(0, 64)
        assert (prompts.side == "bottom") == (distal_rows.start == 64)
        assert distal_rows.start <= y < distal_rows.stop
        x0, y0, x1, y1 = prompts.box
        assert x0 < x < x1 and y0 < y < y1

        def purity(square, ids):
            a, b, c, d = (int(round(v)) for v in square.box())
            return float(np.isin(labels[b:d + 1, a:c + 1], ids).mean())

        roi_purity.append(purity(prompts.roi, VENTRICLE))
        background_purity.append(purity(prompts.background, PARENCHYMA))
    assert min(roi_purity) >= 0.5 and np.mean(roi_purity) >= 0.8
    assert np.mean(background_purity) >= 0.7


def test_atlas_refuses_bad_arguments():
    from ddic.data.ventricle_atlas import distal_ventricle_prompts
    from ddic.errors import DDICInputError

    with pytest.raises(DDICInputError, match="near_field_side"):
        distal_ventricle_prompts(250.0, 40.0, 33.0, "left")
    with pytest.raises(DDICInputError, match="semi-axes"):
        distal_ventricle_prompts(250.0, 0.0, 33.0, "top")


def test_outline_and_boxes_are_drawn_where_they_belong():
    mask = np.zeros((20, 30), bool)
    mask[5:15, 8:20] = True
    rgb = to_rgb(np.full((20, 30), 100.0))
    draw_outline(rgb, mask, (255, 0, 0), width=1)
    red = (rgb == [255, 0, 0]).all(axis=2)
    assert red[5, 8] and red[14, 19] and red[5, 12] and not red[10, 12] and not red[4, 8]
    assert red.sum() == 2 * 12 + 2 * 8
    draw_box(rgb, (25, 15, 40, 30), (0, 255, 0), width=2)  # clipped at the image's edge
    green = (rgb == [0, 255, 0]).all(axis=2)
    assert green[15, 25] and green[19, 29] and not green[17, 27]
    with pytest.raises(ValueError):
        draw_outline(rgb, np.zeros((3, 3), bool), (1, 2, 3))


@pytest.mark.slow
def test_demo_writes_every_output_with_the_frame_geometry(tmp_path):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--steps", "2", "--cpu"]  # the bundled demo models, as the README runs it
    assert main(args) == 0
    for name in ("pseudo_mri.nrrd", "ultrasound.nrrd", "ventricle_mask.nrrd", "side_by_side.png", "report.json"):
        assert (out / name).is_file(), name
    frame = sitk.ReadImage(str(out / "ultrasound.nrrd"))
    result = sitk.ReadImage(str(out / "pseudo_mri.nrrd"))
    mask = sitk.ReadImage(str(out / "ventricle_mask.nrrd"))
    assert frame.GetSize() == result.GetSize() == mask.GetSize() == (800, 540)
    assert result.GetSpacing() == pytest.approx(frame.GetSpacing()) and result.GetOrigin() == frame.GetOrigin()
    picture = sitk.ReadImage(str(out / "side_by_side.png"))
    assert picture.GetSize() == (2 * 800 + 4, 540) and picture.GetNumberOfComponentsPerPixel() == 3

    report = json.loads((out / "report.json").read_text())
    assert report["kind"] == "ddic_demo_report"
    assert report["translation"]["method"] == "ddic" and report["translation"]["steps"] == 2
    assert report["head"]["ellipse_source"] == "detected"
    truth = report["truth"]
    assert abs(truth["hc_error_percent"]) < 3.0  # the automatic skull fit on the phantom frame
    assert truth["distal_hemisphere"] in ("left", "right") and truth["atrium_width_mm"] > 3.0
    for image in ("us", "pseudo_mri"):
        c = report["cnr"][image]
        assert c["roi"]["n"] == c["background"]["n"] > 4
        assert c["cnr"] is None or c["cnr"] >= 0.0
    roi, background = report["cnr"]["roi"], report["cnr"]["background"]
    assert roi != background
    assert set(report["timings_s"]) >= {"frame", "head", "translate", "prompts", "segment", "measure", "write"}
    assert report["segmentation"]["backend"] == "classical"
    assert report["models"]["us_card"].endswith("demo-us/model.json")

    assert main(args) == 2  # earlier results are never overwritten silently
    assert main(args + ["--overwrite"]) == 0


def test_bundled_demo_models_are_present_small_and_labelled():
    from ddic.diffusion.modelfile import load_model
    from ddic.models.bundled import bundled_model_path

    total = 0
    for domain in ("us", "mri"):
        folder = bundled_model_path(domain)
        model = load_model(folder, expected_domain=domain)
        assert model.card.image_size == 64 and model.card.preset == "slim"
        assert model.card.weights_dtype == "float16"
        assert model.card.schedule["prediction"] == "v_prediction"  # the recipe of BENCHMARKS.md (no 1/√ᾱ blow-up)
        text = (model.card.description + " " + model.card.intended_use).lower()
        assert "phantom" in text and "not for clinical use" in text
        if domain == "us":  # the trust number's threshold is calibrated at the defaults, not the fallback
            from ddic.translate.options import TranslateOptions
            from ddic.translate.trust import reference_entry

            defaults = TranslateOptions()
            entry = reference_entry(model.card, defaults.solver, defaults.steps)
            assert entry is not None and entry["steps"] == defaults.steps and entry["images"] >= 20
        training = model.card.training
        assert training.get("steps", 0) > 0 and training.get("command") and training.get("hardware")
        total += sum(p.stat().st_size for p in folder.iterdir())
    assert total <= 25 * 1024 * 1024


@pytest.mark.slow
def test_demo_on_a_frame_without_a_ventricle_withholds_the_width_and_says_the_orientation_is_undecided(
        tmp_path, capsys):
    """A PNG frame (pixel size from --pixel-size, ≠ 1) of a head with no CSP and no ventricle: the
    orientation cannot be decided, so the default is printed; whatever region the atlas prompts give is
    not an atrium, so no width is reported; every mm figure uses the pixel size in force."""
    from hc18_synthetic import random_head, skull_frame

    rng = np.random.default_rng(5)
    ellipse, pixel_size, _ = random_head(rng)
    frame = tmp_path / "head.png"
    sitk.WriteImage(sitk.GetImageFromArray(skull_frame(rng, ellipse, pixel_size).astype(np.uint8)), str(frame))
    out = tmp_path / "demo"
    capsys.readouterr()
    assert main(["demo", "--frame", str(frame), "--pixel-size", f"{pixel_size:.6f}", "--out", str(out),
                 "--steps", "2", "--cpu"]) == 0
    printed = capsys.readouterr()
    assert "front/back orientation undecided from the image; assumed the frontal end on the right" in printed.out
    assert "atrium width NOT REPORTED — unreliable" in printed.out
    report = json.loads((out / "report.json").read_text())
    assert report["head"]["orientation_source"] == "default" and report["head"]["orientation_decided"] is False
    ventricle = report["ventricle"]
    assert report["atrium_width_mm"] is None and ventricle["atrium_width_mm"] is None
    assert ventricle["reliable"] is False and ventricle["plausibility"] < 0.5
    assert any("orientation was not decided" in reason for reason in ventricle["reasons"])
    assert report["cnr"]["regions_reliable"] is False
    assert pixel_size != pytest.approx(1.0) and report["input"]["pixel_size_mm"] == pytest.approx(pixel_size, rel=1e-5)
    pixels = report["segmentation"]["pixels"]
    assert report["segmentation"]["area_mm2"] == pytest.approx(pixels * pixel_size ** 2, rel=1e-3)
    assert ventricle["area_mm2"] == pytest.approx(pixels * pixel_size ** 2, rel=1e-3)
