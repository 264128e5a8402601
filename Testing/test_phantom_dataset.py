"""``ddic phantom`` / :func:`make_phantom_dataset`: layout, HC18 compatibility, paired canonical ground
truth, disjoint domains, refusal of a non-empty folder, determinism. About 20 s on one CPU core."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk

from ddic.cli.main import main
from ddic.data.labels import Label
from ddic.data.phantom.dataset import HC18_CSV_NAME, MRI_SLICE_OFFSETS_MM, case_seeds, make_phantom_dataset
from ddic.errors import DDICInputError
from ddic.geometry.ellipse import fit_annotation, ramanujan_circumference

N = 2
GA = (22.0, 36.0)  # HC inside `prepare hc18`'s default range


def read_png(path):
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom") / "ds"
    calls = []
    summary = make_phantom_dataset(out, N, ga_range=GA, seed=11, mri_volumes=True, pathology_fraction=0.5,
                                   progress=lambda d, t, m: calls.append((d, t)))
    return out, summary, calls


def test_layout_summary_and_progress(dataset):
    out, summary, calls = dataset
    hc18, paired, canon = out / "us" / "hc18", out / "us" / "paired", out / "mri" / "canonical"
    for i in range(1, N + 1):
        assert (hc18 / f"{i:03d}_HC.png").is_file() and (hc18 / f"{i:03d}_HC_Annotation.png").is_file()
        for kind in ("us", "mri", "labels"):
            assert (paired / f"{i:03d}_{kind}.png").is_file()
        for offset in MRI_SLICE_OFFSETS_MM:
            assert (canon / f"{i:03d}_o{offset:+.0f}.png").is_file()
        anat = out / "mri" / "feta" / f"sub-{i:03d}" / "anat"
        assert (anat / f"sub-{i:03d}_rec-phantom_T2w.nii.gz").is_file()
        assert (anat / f"sub-{i:03d}_rec-phantom_dseg.nii.gz").is_file()
    assert (out / "mri" / "feta" / "participants.tsv").is_file()
    info = json.loads((out / "phantom.json").read_text())
    assert info["counts"] == {"us": N, "mri": N, "mri_slices": N * len(MRI_SLICE_OFFSETS_MM), "mri_volumes": N}
    assert info["arguments"]["seed"] == 11 and info["arguments"]["ga_range"] == list(GA)
    assert info["version"] and summary["counts"] == info["counts"]
    assert calls[-1] == (2 * N, 2 * N)
    assert not list(out.rglob(".*partial*"))  # atomic writes leave no temporaries
    frame = read_png(hc18 / "001_HC.png")
    assert frame.shape == (540, 800) and frame.dtype == np.uint8


def test_hc18_csv_matches_the_annotation_ellipse(dataset):
    out = dataset[0]
    hc18 = out / "us" / "hc18"
    lines = (hc18 / HC18_CSV_NAME).read_text().splitlines()
    assert lines[0] == "filename,pixel size(mm),head circumference (mm)"
    rows = [line.split(",") for line in lines[1:]]
    assert [r[0] for r in rows] == [f"{i:03d}_HC.png" for i in range(1, N + 1)]
    paired = read_csv(out / "us" / "paired" / "paired.csv")
    for (name, pixel, hc), row in zip(rows, paired):
        pixel, hc = float(pixel), float(hc)
        assert 0.052 <= pixel <= 0.326
        e = fit_annotation(read_png(hc18 / name.replace(".png", "_Annotation.png")))
        assert ramanujan_circumference(e.a, e.b) * pixel == pytest.approx(hc, rel=0.01)
        assert hc == pytest.approx(float(row["hc_mm"]), rel=0.01)  # the frame shows the anatomy's HC
        assert 21.0 <= float(row["ga_weeks"]) <= 37.0


def test_prepare_hc18_runs_on_the_generated_folder(dataset, tmp_path, capsys):
    out = dataset[0]
    prepared = tmp_path / "prepared"
    assert main(["prepare", "hc18", str(out / "us" / "hc18"), "--out", str(prepared), "--test-fraction",
                 "0.5"]) == 0
    assert "HC18:" in capsys.readouterr().out
    train, test = sorted((prepared / "train").glob("*.png")), sorted((prepared / "test").glob("*.png"))
    assert len(train) + len(test) == N and train and test
    assert read_png(train[0]).shape == (128, 128)


def test_paired_truth_is_canonical_and_aligned(dataset):
    out = dataset[0]
    paired = out / "us" / "paired"
    rows = read_csv(paired / "paired.csv")
    assert len(rows) == N
    for row in rows:
        us, mri, labels = (read_png(paired / row[k]) for k in ("us", "mri", "labels"))
        assert us.shape == mri.shape == labels.shape == (128, 128)
        head = labels >= Label.SKULL
        vv, uu = np.nonzero(head)
        assert uu.mean() == pytest.approx(63.5, abs=1.5) and vv.mean() == pytest.approx(63.5, abs=1.5)
        assert np.ptp(uu) > np.ptp(vv)  # midline (major axis) horizontal
        ventricle_rows = np.nonzero(labels == Label.LATERAL_VENTRICLE)[0]
        assert (ventricle_rows < 63.5).any() and (ventricle_rows > 63.5).any()  # one per hemisphere
        # the orientation of the transform reproduces the renderer's own frame map, and the scan-converted
        # frame labels brought to the canonical grid agree with the canonical label map
        assert float(row["orientation_error_px"]) < 1e-3
        assert float(row["label_agreement"]) > 0.9
        # the canonical US shows the skull bright against the brain, in the same place as the labels
        assert us[labels == Label.SKULL].mean() > 1.5 * us[labels == Label.WHITE_MATTER].mean()
        # the paired T2 slice: CSF (ventricles) brighter than white matter, which is brighter than cortex
        assert mri[labels == Label.LATERAL_VENTRICLE].mean() > mri[labels == Label.WHITE_MATTER].mean()
        # preprocessed as the real data is (issue 11): MRI brain-extracted (nothing on skull, scalp or fluid),
        # US zero far outside the skull (maternal tissue and fluid masked) but kept on the skull echo
        outside_brain = np.isin(labels, [Label.BACKGROUND, Label.AMNIOTIC_FLUID, Label.MATERNAL_WALL,
                                         Label.SCALP, Label.SKULL])
        assert mri[outside_brain].max() == 0 and mri[~outside_brain].mean() > 50
        assert us[labels <= Label.AMNIOTIC_FLUID].mean() < 0.2 * us[labels == Label.SKULL].mean()
        assert float(row["hc_mm"]) == pytest.approx(float(row["frame_hc_mm"]), rel=1e-6)


def test_domains_use_disjoint_seeds_and_anatomies(dataset):
    out = dataset[0]
    us = read_csv(out / "us" / "paired" / "paired.csv")
    mri = read_csv(out / "mri" / "canonical" / "mri.csv")
    assert len(mri) == N * len(MRI_SLICE_OFFSETS_MM)
    us_seeds = {r["anatomy_seed"] for r in us}
    mri_seeds = {r["anatomy_seed"] for r in mri}
    assert len(us_seeds) == N and len(mri_seeds) == N and not us_seeds & mri_seeds
    assert not {r["hc_mm"] for r in us} & {r["hc_mm"] for r in mri}
    assert case_seeds(11, "us", 0) != case_seeds(11, "mri", 0)
    img = read_png(out / "mri" / "canonical" / mri[0]["image"])
    assert img.shape == (128, 128) and img.max() > 100


def test_refuses_a_non_empty_out_unless_overwrite(dataset, tmp_path, capsys):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(DDICInputError, match="not empty"):
        make_phantom_dataset(busy, 1, domains=("mri",))
    assert main(["phantom", "--n", "1", "--out", str(busy), "--domains", "mri"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    with pytest.raises(DDICInputError, match="not a phantom"):  # --overwrite never deletes foreign files
        make_phantom_dataset(busy, 1, domains=("mri",), overwrite=True)
    assert (busy / "keep.txt").read_text() == "mine"
    with pytest.raises(DDICInputError):
        make_phantom_dataset(tmp_path / "bad", 1, domains=("ct",))


def test_same_seed_gives_identical_csv_and_cli_overwrite(dataset, tmp_path, capsys):
    out = dataset[0]
    again = tmp_path / "again"
    assert main(["phantom", "--n", "1", "--ga", "22:36", "--seed", "11", "--domains", "us",
                 "--ventriculomegaly-fraction", "0.5", "--out", str(again)]) == 0
    assert "phantom: 1 US frames" in capsys.readouterr().out
    first = (out / "us" / "hc18" / HC18_CSV_NAME).read_text().splitlines()
    second = (again / "us" / "hc18" / HC18_CSV_NAME).read_text().splitlines()
    assert second == first[:2]  # case i depends on (seed, domain, i) only, not on N
    a = read_csv(out / "us" / "paired" / "paired.csv")[:1]
    b = read_csv(again / "us" / "paired" / "paired.csv")
    assert a == b
    assert np.array_equal(read_png(out / "us" / "hc18" / "001_HC.png"), read_png(again / "us" / "hc18" / "001_HC.png"))
    # a different seed gives a different dataset; --overwrite replaces the earlier one
    assert main(["phantom", "--n", "1", "--ga", "22:36", "--seed", "12", "--domains", "us", "--out", str(again),
                 "--overwrite", "--gallery"]) == 0
    gallery = read_png(again / "gallery.png")  # 3 GAs × (labels | US frame | MRI), 256-px tiles, 8-px gaps
    assert gallery.shape == (3 * 256 + 2 * 8, 256 + 8 + 379 + 8 + 256, 3)
    for row in range(3):
        tiles = gallery[row * 264:row * 264 + 256]
        assert tiles[:, :256].std() > 10 and tiles[:, 264:643].mean() > 10 and tiles[:, 651:].mean() > 50
    third = (again / "us" / "hc18" / HC18_CSV_NAME).read_text().splitlines()
    assert len(third) == 2 and third[1] != first[1]
