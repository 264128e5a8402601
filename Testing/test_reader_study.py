"""The reader study: ``ddic reader-study create`` → readers fill the sheets → ``ddic reader-study score``.

Checks the blinding (neutral ids, the key kept apart, no source names in the readers' folder), the seeded draw,
hand-computed Fig. 7 numbers, Fleiss' kappa against the agreement module, and one clear error per kind of
malformed sheet.
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from ddic.cli.main import main as ddic_main
from ddic.errors import DDICInputError
from ddic.io.images import write_png
from ddic.metrics.agreement import binary_counts, fleiss_kappa, wilson_interval
from ddic.metrics.reader_study import (
    FEATURES,
    KEY_FILE,
    SHEET_COLUMNS,
    create_study,
    display_uint8,
    match_pairs,
    read_key,
    score_study,
    side_by_side,
)


@pytest.fixture
def frames(tmp_path):
    """12 US frames with pseudo-MRIs named as `ddic translate` writes them, and one US frame without one."""
    us, pseudo = tmp_path / "us", tmp_path / "pseudo"
    rng = np.random.default_rng(0)
    for i in range(12):
        write_png(rng.integers(0, 256, (24, 32)), us / f"case_{i:03d}.png")
        write_png(rng.integers(0, 256, (24, 32)), pseudo / f"case_{i:03d}_pseudo_mri.png")
        write_png(rng.integers(0, 256, (24, 32)), pseudo / f"case_{i:03d}_side_by_side.png")  # ignored
    write_png(rng.integers(0, 256, (24, 32)), us / "lonely.png")
    return us, pseudo


def fill_sheet(template, path, reader: str, answers: dict, delimiter: str = ",") -> None:
    """Copy the template with ``answers[pair_id] = (4 booleans)`` written as yes/no."""
    with open(template, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=SHEET_COLUMNS, delimiter=delimiter)
        writer.writeheader()
        for row in rows:
            row["reader"] = reader
            for feature, value in zip(FEATURES, answers[row["pair_id"]]):
                row[feature] = "yes" if value else "no"
            writer.writerow(row)


def test_match_pairs_and_display_helpers(frames, tmp_path):
    us, pseudo = frames
    pairs = match_pairs(us, pseudo)
    assert len(pairs) == 12
    assert all(p.name == u.name.replace(".png", "_pseudo_mri.png") for u, p in pairs)
    write_png(np.zeros((24, 32)), pseudo / "case_000.png")  # a second candidate for case_000
    with pytest.raises(DDICInputError, match="several pseudo-MRI candidates"):
        match_pairs(us, pseudo)
    assert display_uint8(np.array([[0.0, 255.0]])).tolist() == [[0, 255]]
    windowed = display_uint8(np.linspace(-1000, 1000, 400).reshape(20, 20))
    assert windowed.min() == 0 and windowed.max() == 255
    combined = side_by_side(np.full((4, 3), 9, np.uint8), np.full((2, 2), 7, np.uint8), gap=1)
    assert combined.shape == (4, 6) and combined[1, 4] == 7 and combined[0, 4] == 0 and combined[0, 3] == 0


def test_create_is_blinded_and_seeded(frames, tmp_path):
    us, pseudo = frames
    created = create_study(us, pseudo, tmp_path / "s1", n=10, seed=3)
    assert [p.id for p in created.pairs] == [f"P{i:02d}" for i in range(1, 11)]
    assert created.n_available == 12
    study = created.study_dir
    names = sorted(p.name for p in (study / "images").iterdir())
    assert len(names) == 30 and all(n.startswith("P") for n in names)
    assert created.key_path.parent != study and not any(study.rglob(KEY_FILE))
    for path in study.rglob("*"):  # nothing the readers get names a source file
        assert "case_" not in path.name
        if path.suffix in (".csv", ".txt"):
            assert "case_" not in path.read_text()
    key = read_key(created.key_path)
    assert key["seed"] == 3 and len(key["pairs"]) == 10
    assert {p["id"] for p in key["pairs"]} == {p.id for p in created.pairs}
    # the same seed draws the same pairs in the same order; the order is not the file order
    again = create_study(us, pseudo, tmp_path / "s2", n=10, seed=3)
    assert [(p.us, p.pseudo_mri) for p in again.pairs] == [(p.us, p.pseudo_mri) for p in created.pairs]
    assert [p.us.name for p in created.pairs] != sorted(p.us.name for p in created.pairs)
    with open(created.sheet_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["pair_id"] for r in rows] == [p.id for p in created.pairs]
    assert tuple(rows[0]) == SHEET_COLUMNS
    with pytest.raises(DDICInputError, match="not empty"):
        create_study(us, pseudo, tmp_path / "s1", n=10, seed=4)
    with pytest.raises(DDICInputError, match="Only 12"):
        create_study(us, pseudo, tmp_path / "s3", n=13)
    random_seed = create_study(us, pseudo, tmp_path / "s4", n=2)
    assert read_key(random_seed.key_path)["seed"] == random_seed.seed


def test_create_fill_score_end_to_end(frames, tmp_path, capsys):
    us, pseudo = frames
    out = tmp_path / "study"
    assert ddic_main(["reader-study", "create", "--us", str(us), "--pseudo", str(pseudo), "--out", str(out),
                      "--n", "4", "--seed", "11"]) == 0
    key = out / "key" / KEY_FILE
    template = out / "study" / "answer_sheet.csv"
    ids = [p["id"] for p in json.loads(key.read_text())["pairs"]]
    # three readers, four pairs; answers chosen so every number can be counted by hand
    answers = {
        "ann": {ids[0]: (1, 1, 0, 0), ids[1]: (0, 1, 0, 0), ids[2]: (0, 0, 0, 0), ids[3]: (1, 1, 1, 1)},
        "bob": {ids[0]: (1, 0, 0, 0), ids[1]: (0, 1, 0, 1), ids[2]: (0, 0, 0, 0), ids[3]: (1, 1, 0, 1)},
        "cat": {ids[0]: (1, 1, 0, 0), ids[1]: (0, 0, 0, 0), ids[2]: (0, 0, 1, 0), ids[3]: (1, 1, 1, 1)},
    }
    sheets = []
    for reader, a in answers.items():
        sheets.append(tmp_path / f"{reader}.csv")
        fill_sheet(template, sheets[-1], reader, a, delimiter=";" if reader == "bob" else ",")
    results = tmp_path / "results"
    assert ddic_main(["reader-study", "score", "--key", str(key), "--sheets", *map(str, sheets),
                      "--out", str(results)]) == 0
    assert ">= 1 feature improved" in capsys.readouterr().out
    report = json.loads((results / "reader_study_scores.json").read_text())
    assert report["readers"] == ["ann", "bob", "cat"] and report["n_pairs"] == 4

    ratings = np.array([[answers[r][i] for i in ids] for r in answers], bool)  # readers × pairs × features
    improved = ratings.any(axis=2)
    any_block = report["pooled"]["improved_any"]
    assert (any_block["count"], any_block["n"]) == (9, 12)  # hand count: 3 + 2 + 1 + 3 improved ratings
    assert any_block["percent"] == pytest.approx(75.0)
    low, high = wilson_interval(9, 12)
    assert (any_block["ci_low_percent"], any_block["ci_high_percent"]) == pytest.approx((100 * low, 100 * high))
    distal_lv = report["pooled"]["among_improved"]["distal_lv"]
    assert (distal_lv["count"], distal_lv["n"]) == (7, 9)
    assert report["pooled"]["among_all"]["distal_sf"]["count"] == 4
    assert report["per_reader"]["cat"]["improved_any"]["count"] == 3
    for j, feature in enumerate(FEATURES):
        assert report["fleiss_kappa"][feature] == pytest.approx(fleiss_kappa(binary_counts(ratings[..., j].T)))
    assert report["fleiss_kappa"]["any"] == pytest.approx(fleiss_kappa(binary_counts(improved.T)))

    with open(results / "reader_study_table.csv", newline="") as f:
        table = list(csv.DictReader(f))
    first = table[0]
    assert (first["scope"], first["measure"], first["feature"], first["count"], first["n"]) == (
        "pooled", "improved_any", "any", "9", "12")
    assert float(first["percent"]) == pytest.approx(75.0)
    assert sum(row["scope"].startswith("reader:") for row in table) == 3


def write_rows(path, rows, header=SHEET_COLUMNS):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


@pytest.fixture
def small_study(frames, tmp_path):
    us, pseudo = frames
    created = create_study(us, pseudo, tmp_path / "small", n=3, seed=1)
    return created.key_path, [p.id for p in created.pairs]


def test_malformed_sheets_give_clear_errors(small_study, tmp_path):
    key, ids = small_study
    ok = [["r1", i, "yes", "no", "1", "0", ""] for i in ids]
    sheet = tmp_path / "sheet.csv"

    bad_value = [row[:] for row in ok]
    bad_value[1][3] = "maybe"
    bad_value[2][4] = ""
    write_rows(sheet, bad_value)
    with pytest.raises(DDICInputError) as err:
        score_study(key, [sheet])
    assert "'maybe'" in str(err.value) and "empty" in str(err.value) and "line 3" in str(err.value)

    write_rows(sheet, ok[:2])
    with pytest.raises(DDICInputError, match="1 pair\\(s\\) have no row: " + ids[2]):
        score_study(key, [sheet])

    write_rows(sheet, ok + [["r1", "P99", "yes", "no", "no", "no", ""], ok[0]])
    with pytest.raises(DDICInputError) as err:
        score_study(key, [sheet])
    assert "P99" in str(err.value) and "answered twice" in str(err.value)

    write_rows(sheet, [row[:3] + row[4:] for row in ok], header=[c for c in SHEET_COLUMNS if c != "distal_lv"])
    with pytest.raises(DDICInputError, match="lacks the column\\(s\\) distal_lv"):
        score_study(key, [sheet])

    write_rows(sheet, ok)
    other = tmp_path / "other.csv"
    write_rows(other, ok)  # the same reader name in a second sheet
    with pytest.raises(DDICInputError, match="Reader 'r1' appears twice"):
        score_study(key, [sheet, other])
    with pytest.raises(DDICInputError, match="appears twice"):
        score_study(key, [sheet, sheet])

    mixed = [row[:] for row in ok]
    mixed[0][0] = "r2"
    write_rows(sheet, mixed)
    with pytest.raises(DDICInputError, match="several names"):
        score_study(key, [sheet])


def test_one_reader_unnamed_sheet_and_cli_error(small_study, tmp_path, capsys):
    key, ids = small_study
    sheet = tmp_path / "dr_who.csv"
    rows = [["", i, "Yes", " NO ", "0", "1", "fine"] for i in ids]
    with open(sheet, "w", newline="", encoding="utf-8-sig") as f:  # Excel's "CSV UTF-8" adds a BOM
        writer = csv.writer(f)
        writer.writerow(SHEET_COLUMNS)
        writer.writerows(rows + [["", "", "", "", "", "", ""]])  # trailing blank row
    scores = score_study(key, [sheet])
    assert scores.readers == ("dr_who",)
    assert scores.fleiss_kappa["any"] is None  # one reader: no agreement to measure
    assert scores.pooled["improved_any"].count == 3
    assert scores.pooled["among_improved"]["distal_lv"].count == 0
    report = scores.to_dict()
    assert report["pooled"]["among_improved"]["proximal_lv"]["percent"] == pytest.approx(100.0)

    missing = tmp_path / "missing.csv"
    assert ddic_main(["reader-study", "score", "--key", str(key), "--sheets", str(missing),
                      "--out", str(tmp_path / "r")]) == 2
    assert "Answer sheet not found" in capsys.readouterr().err
    assert not math.isnan(scores.pooled["improved_any"].ci_low)
