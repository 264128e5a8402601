"""``ddic prepare hc18``: HC18-format folders → canonical train/test PNGs and a manifest, atomically."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from ddic.cli.main import main
from ddic.data.prepare.hc18 import (MANIFEST_COLUMNS, annotation_name, prepare_hc18, read_hc18_csv,
                                    split_subjects, subject_id)
from ddic.errors import DDICInputError
from ddic.geometry.canonical import spacing_for_size
from ddic.geometry.ellipse import Ellipse
from ddic.geometry.image_filters import sample_bilinear
from ddic.geometry.head import CanonicalHeadTransform

from hc18_synthetic import outline, random_head, skull_frame, write_hc18, write_png

NAMES = ["000_HC.png", "001_HC.png", "010_HC.png", "010_2HC.png", "010_3HC.png", "020_HC.png",
         "021_HC.png", "030_HC.png", "031_HC.png", "040_HC.png"]


def entry(rng, name, hc_range=(190.0, 330.0), csp_side=1.0):
    ellipse, ps, hc = random_head(rng, hc_range=hc_range)
    frame = skull_frame(rng, ellipse, ps, csp_side=csp_side)
    return name, ps, hc, frame, outline(ellipse, width=1 + len(name) % 2), ellipse


def make_root(tmp_path, rng, names=NAMES, out_of_range=("021_HC.png",)):
    root = tmp_path / "hc18"
    entries = []
    for name in names:
        hc_range = (120.0, 150.0) if name in out_of_range else (190.0, 330.0)
        entries.append(entry(rng, name, hc_range))
    write_hc18(root, [e[:5] for e in entries])
    return root, {e[0]: e for e in entries}


def read_manifest(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_helpers():
    assert subject_id("010_2HC.png") == subject_id("010_HC.png") == "010"
    assert subject_id("sub/805_HC.png") == "805"
    assert annotation_name("010_2HC.png") == "010_2HC_Annotation.png"
    subjects = [f"{i:03d}" for i in range(40)]
    test = split_subjects(subjects, 0.1, seed=3)
    assert len(test) == 4 and test == split_subjects(subjects, 0.1, seed=3)
    assert test != split_subjects(subjects, 0.1, seed=4)
    assert split_subjects(["001"], 0.5, 0) == set() and len(split_subjects(["a", "b"], 0.1, 0)) == 1
    with pytest.raises(DDICInputError):
        split_subjects(subjects, 1.0, 0)


def test_prepare_end_to_end(tmp_path):
    rng = np.random.default_rng(31)
    root, entries = make_root(tmp_path, rng)
    out = tmp_path / "prepared"
    summary = prepare_hc18(root, out, split_seed=1, test_fraction=0.3)
    rows = read_manifest(out / "manifest.csv")
    assert tuple(rows[0].keys()) == MANIFEST_COLUMNS
    assert [r["filename"] for r in rows] == NAMES  # CSV order, kept and skipped
    by_name = {r["filename"]: r for r in rows}

    # HC filter: skipped and listed, not an error
    skipped = by_name["021_HC.png"]
    assert skipped["status"] == "skipped" and skipped["split"] == "skipped"
    assert "outside 170–350 mm" in skipped["reason"] and skipped["output"] == ""
    assert summary.skipped == [("021_HC.png", skipped["reason"])]

    # subject split: 9 images of 7 subjects kept; 010_* stay together
    kept = [r for r in rows if r["status"] == "ok"]
    assert len(kept) == 9 and summary.train + summary.test == 9
    assert len({by_name[n]["split"] for n in ("010_HC.png", "010_2HC.png", "010_3HC.png")}) == 1
    test_subjects = {r["subject"] for r in kept if r["split"] == "test"}
    assert len(test_subjects) == 2 == summary.test_subjects  # round(0.3 × 7)
    assert not test_subjects & {r["subject"] for r in kept if r["split"] == "train"}
    assert sorted(p.name for p in (out / "test").iterdir()) == sorted(
        Path(r["output"]).name for r in kept if r["split"] == "test")
    assert len(list((out / "train").iterdir())) == summary.train

    for r in kept:
        name, ps, hc, frame, _, ellipse = entries[r["filename"]]
        assert r["source"] == f"training_set/training_set/{name}"
        assert float(r["pixel_size_mm"]) == pytest.approx(ps, rel=1e-6)
        assert float(r["hc_mm"]) == pytest.approx(hc, abs=0.01)
        assert float(r["hc_fit_mm"]) == pytest.approx(hc, rel=0.01)
        assert float(r["ofd_mm"]) == pytest.approx(2 * ellipse.a * ps, rel=0.01)
        assert float(r["semi_a_px"]) == pytest.approx(ellipse.a, abs=1.0)
        assert r["anterior_right"] in ("true", "false")
        assert r["orientation_source"] in ("heuristic", "default") and r["near_field"] in ("top", "bottom")
        image = sitk.GetArrayFromImage(sitk.ReadImage(str(out / r["output"])))
        assert image.shape == (128, 128) and image.dtype == np.uint8
        # the head is centred and horizontal: the bright skull ring fits a centred horizontal ellipse
        t = CanonicalHeadTransform.from_dict(json.loads(r["transform"]))
        ce = t.canonical_ellipse()
        assert (ce.cx, ce.cy) == pytest.approx((63.5, 63.5))
        assert ce.a * spacing_for_size(128) == pytest.approx(ellipse.a * ps, rel=0.01)
        def ring_mean(scale):
            e = Ellipse(ce.cx, ce.cy, ce.a * scale, ce.b * scale, 0.0)
            return float(np.mean(sample_bilinear(image.astype(float), *e.points(400).T)))

        assert ring_mean(1.0) > 1.5 * max(ring_mean(0.85), ring_mean(1.15))
        # outside the skull ellipse + 2 mm everything is zero; the corners are outside any head
        outside = ~t.head_mask(128, margin_mm=2.0)
        assert image[outside].max() == 0 and image[t.head_mask(128)].mean() > 10
        # the CSP was drawn at the +major-axis end: the heuristic must not put it left
        if r["orientation_source"] == "heuristic":
            assert r["anterior_right"] == "true"

    info = json.loads((out / "prepare.json").read_text())
    assert info["train"] == summary.train and info["skipped"] == 1 and info["size"] == 128
    assert leftovers(tmp_path) == []


def test_cli_prepare_hc18(tmp_path, capsys):
    rng = np.random.default_rng(32)
    root, _ = make_root(tmp_path, rng, names=NAMES[:4], out_of_range=())
    out = tmp_path / "out"
    assert main(["prepare", "hc18", str(root), "--out", str(out), "--split-seed", "5", "--test-fraction",
                 "0.5", "--size", "64"]) == 0
    text = capsys.readouterr().out
    assert "HC18:" in text and "manifest:" in text
    rows = read_manifest(out / "manifest.csv")
    assert {r["split"] for r in rows} == {"train", "test"}
    image = sitk.GetArrayFromImage(sitk.ReadImage(str(out / rows[0]["output"])))
    assert image.shape == (64, 64)
    # a second run into the same folder needs --overwrite
    assert main(["prepare", "hc18", str(root), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["prepare", "hc18", str(root), "--out", str(out), "--overwrite", "--test-fraction", "0"]) == 0
    assert {r["split"] for r in read_manifest(out / "manifest.csv")} == {"train"}
    assert leftovers(tmp_path) == []
    # an HC18 folder is not a FeTA tree: a clear error, not a crash
    assert main(["prepare", "feta", str(root), "--out", str(tmp_path / "feta_out")]) == 2
    assert "No FeTA volume" in capsys.readouterr().err


def test_rgb_frames_are_converted(tmp_path):
    rng = np.random.default_rng(33)
    name, ps, hc, frame, annotation, _ = entry(rng, "050_HC.png")
    rgb = np.repeat(frame[..., None], 3, axis=2)
    root = tmp_path / "root"
    write_hc18(root, [(name, ps, hc, rgb, annotation)], nested=False)
    prepare_hc18(root, tmp_path / "out", test_fraction=0.0)
    row = read_manifest(tmp_path / "out" / "manifest.csv")[0]
    assert row["status"] == "ok" and "RGB" in row["notes"]


# ---------------------------------------------------------------------------------------------------------
# Bad inputs: one clear error, nothing written


def assert_fails_cleanly(tmp_path, root, match, **kwargs):
    out = tmp_path / "out"
    with pytest.raises(DDICInputError, match=match):
        prepare_hc18(root, out, **kwargs)
    assert not out.exists()
    assert leftovers(tmp_path) == []


def test_missing_csv(tmp_path):
    (tmp_path / "root").mkdir()
    assert_fails_cleanly(tmp_path, tmp_path / "root", "training_set_pixel_size_and_HC.csv not found")
    assert_fails_cleanly(tmp_path, tmp_path / "nowhere", "folder not found")


def test_bad_csv(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    csv_path = root / "training_set_pixel_size_and_HC.csv"
    csv_path.write_text("filename,pixel size(mm)\n000_HC.png,0.1\n")
    assert_fails_cleanly(tmp_path, root, "test-set CSV")
    csv_path.write_text("filename,pixel size(mm),head circumference (mm)\n000_HC.png,abc,200\n")
    assert_fails_cleanly(tmp_path, root, "line 2")
    csv_path.write_text("filename,pixel size(mm),head circumference (mm)\n")
    assert_fails_cleanly(tmp_path, root, "no rows")
    # a BOM and spaces in the header are fine
    csv_path.write_text("\ufefffilename, pixel size(mm) ,head circumference (mm)\n000_HC.png,0.1,200\n")
    assert read_hc18_csv(csv_path)[0].hc_mm == 200.0


def test_row_without_image_or_annotation(tmp_path):
    rng = np.random.default_rng(34)
    e = entry(rng, "000_HC.png")
    f = entry(rng, "001_HC.png")
    root = tmp_path / "root"
    write_hc18(root, [e[:5], ("002_HC.png", 0.2, 250.0, None, None), ("003_HC.png", f[1], f[2], f[3], None)])
    out = tmp_path / "out"
    with pytest.raises(DDICInputError) as info:
        prepare_hc18(root, out)
    message = str(info.value)
    assert "2 of 3" in message and "no image file 002_HC.png" in message
    assert "no annotation 003_HC_Annotation.png" in message and "--skip-bad" in message
    assert not out.exists() and leftovers(tmp_path) == []
    # with --skip-bad they are listed instead
    summary = prepare_hc18(root, out, skip_bad=True)
    rows = {r["filename"]: r for r in read_manifest(out / "manifest.csv")}
    assert rows["000_HC.png"]["status"] == "ok" and summary.train + summary.test == 1
    assert "no image file" in rows["002_HC.png"]["reason"] and rows["003_HC.png"]["status"] == "skipped"


def test_empty_annotation(tmp_path):
    rng = np.random.default_rng(35)
    name, ps, hc, frame, _, _ = entry(rng, "000_HC.png")
    root = tmp_path / "root"
    write_hc18(root, [(name, ps, hc, frame, np.zeros_like(frame))])
    assert_fails_cleanly(tmp_path, root, "empty")


def test_hc_mismatch_and_wrong_annotation_size(tmp_path):
    rng = np.random.default_rng(36)
    name, ps, hc, frame, annotation, _ = entry(rng, "000_HC.png")
    root = tmp_path / "root"
    write_hc18(root, [(name, ps * 1.2, hc, frame, annotation)])  # wrong pixel size → HC disagrees
    assert_fails_cleanly(tmp_path, root, "CSV says")
    write_hc18(root, [(name, ps, hc, frame, annotation[:500])])
    assert_fails_cleanly(tmp_path, root, "annotation 000_HC_Annotation.png is 800×500")


def test_volume_files_are_refused(tmp_path):
    rng = np.random.default_rng(37)
    name, ps, hc, frame, annotation, _ = entry(rng, "000_HC.png")
    root = tmp_path / "root"
    root.mkdir()
    volume = sitk.GetImageFromArray(np.stack([frame, frame]).astype(np.uint8))  # 3D, two slices
    sitk.WriteImage(volume, str(root / "000_HC.nrrd"))
    sitk.WriteImage(sitk.GetImageFromArray(annotation), str(root / "000_HC_Annotation.nrrd"))
    four_d = sitk.JoinSeries([volume, volume])
    assert four_d.GetDimension() == 4
    sitk.WriteImage(four_d, str(root / "001_HC.nrrd"))
    sitk.WriteImage(sitk.GetImageFromArray(annotation), str(root / "001_HC_Annotation.nrrd"))
    (root / "training_set_pixel_size_and_HC.csv").write_text(
        f"filename,pixel size(mm),head circumference (mm)\n000_HC.nrrd,{ps},{hc}\n001_HC.nrrd,{ps},{hc}\n")
    out = tmp_path / "out"
    with pytest.raises(DDICInputError) as info:
        prepare_hc18(root, out)
    assert "3D volume with 2 slices" in str(info.value) and "4 dimensions" in str(info.value)
    assert not out.exists() and leftovers(tmp_path) == []


def test_existing_output_is_kept_on_failure(tmp_path):
    rng = np.random.default_rng(38)
    root, _ = make_root(tmp_path, rng, names=NAMES[:2], out_of_range=())
    out = tmp_path / "out"
    prepare_hc18(root, out, test_fraction=0.0)
    before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    (root / "training_set" / "training_set" / "001_HC_Annotation.png").unlink()
    with pytest.raises(DDICInputError, match="no annotation"):
        prepare_hc18(root, out, overwrite=True)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == before
    assert leftovers(tmp_path) == []


def test_ambiguous_names_use_the_image_beside_its_annotation(tmp_path):
    """HC18's test set reuses file names; the training image is the one next to its annotation."""
    rng = np.random.default_rng(39)
    e = entry(rng, "000_HC.png")
    root = tmp_path / "root"
    write_hc18(root, [e[:5]])
    write_png(np.zeros_like(e[3]), root / "test_set" / "000_HC.png")  # an unrelated frame, same name
    prepare_hc18(root, tmp_path / "out", test_fraction=0.0)
    row = read_manifest(tmp_path / "out" / "manifest.csv")[0]
    assert row["source"] == "training_set/training_set/000_HC.png" and row["status"] == "ok"
    assert isinstance(Ellipse.from_dict({"cx": row["center_x_px"], "cy": row["center_y_px"],
                                         "a": row["semi_a_px"], "b": row["semi_b_px"],
                                         "angle_deg": row["angle_deg"]}), Ellipse)
