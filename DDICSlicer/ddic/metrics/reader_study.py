"""The reader study (the paper's "Medical Opinion Test", method.md §6): a blinded, randomised set of
(ultrasound, pseudo-MRI) pairs for physicians, and the scoring of their answer sheets into the paper's Fig. 7
numbers with confidence intervals and inter-reader agreement.

Why blinded and randomised: readers must not know which case (patient, file, order of acquisition) a pair is,
or learn anything from the order they see the pairs in. ``create`` therefore draws the pairs in a random order
from a recorded seed, names them by neutral ids (``P01``, ``P02``, … in that random order) and writes the
mapping back to the source files into a *private key* in its own folder, to be kept away from the readers.

Layout written by :func:`create_study` into ``OUT``:

- ``OUT/study/`` — what readers get: ``images/<id>_pair.png`` (US left, pseudo-MRI right, 8-px black gap),
  ``images/<id>_us.png`` and ``images/<id>_pseudo_mri.png`` (the two halves, for viewers such as Slicer),
  ``answer_sheet.csv`` (the template) and ``INSTRUCTIONS.txt``;
- ``OUT/key/reader_study_key.json`` — private: id → source files, the seed, the date.

Answer sheet (CSV; comma, semicolon or tab separated, as spreadsheets save it): one row per pair with columns
``reader`` (the reader's name or code, the same on every row; blank → the file name is used), ``pair_id``,
and for each of ``FEATURES`` — proximal / distal lateral ventricle, proximal / distal Sylvian fissure — whether
the pseudo-MRI *improves* the visibility of that structure compared with the US: ``yes``/``no`` or ``1``/``0``
(case-insensitive); ``comment`` is free text. Every pair must be answered exactly once.

Scoring (:func:`score_study`), over all readers' ratings pooled (one rating = one reader × one pair):

- "improved": % of ratings with at least one improved feature (the paper's 81 %);
- per feature: % of ratings with that feature improved *among the ratings with ≥ 1 improved feature* (the
  paper's per-feature bars), and, for reference, among all ratings;
- 95 % Wilson intervals (:func:`ddic.metrics.agreement.wilson_interval`). The pooled ratings are not
  independent (each reader rates every pair), so these intervals are narrower than a reader- and image-level
  analysis would give; per-reader numbers are reported beside them;
- agreement: Fleiss' κ per feature and for "≥ 1 improved" (pairs = subjects, readers = raters), null with a
  single reader or when every rating is the same.
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import DDICInputError
from ..io.atomic import write_text_atomic
from ..io.images import image_stem, list_images, read_frame, write_png
from ..progress import ProgressCallback, resolve
from .agreement import CONFIDENCE, binary_counts, fleiss_kappa, wilson_interval
from .jsonsafe import RULE, json_safe

FEATURES = ("proximal_lv", "distal_lv", "proximal_sf", "distal_sf")
FEATURE_NAMES = {
    "proximal_lv": "proximal lateral ventricle", "distal_lv": "distal lateral ventricle",
    "proximal_sf": "proximal Sylvian fissure", "distal_sf": "distal Sylvian fissure",
}
ANY = "any"
"""Name of the "≥ 1 improved feature" measure in the results."""
DEFAULT_N_PAIRS = 40
"""Pairs per study, as in the paper (40 pairs per physician)."""
PSEUDO_SUFFIXES = ("", "_pseudo_mri")
"""A pseudo-MRI matches a US frame by file stem: the same stem, or the stem + ``_pseudo_mri`` that
``ddic translate`` writes."""
YES, NO = frozenset({"yes", "1"}), frozenset({"no", "0"})
SHEET_COLUMNS = ("reader", "pair_id", *FEATURES, "comment")
STUDY_DIR, KEY_DIR = "study", "key"
KEY_FILE = "reader_study_key.json"
SHEET_FILE = "answer_sheet.csv"
KEY_KIND = "ddic_reader_study_key"
GAP_PX = 8
DISPLAY_PERCENTILES = (0.5, 99.5)

INSTRUCTIONS = """Reader study: does the pseudo-MRI add diagnostic value?

Each pair (images/<id>_pair.png) shows a fetal brain ultrasound frame (left) and a pseudo-MRI computed from it
(right); images/<id>_us.png and images/<id>_pseudo_mri.png are the two halves.

For every pair, decide for each structure whether the pseudo-MRI IMPROVES its visibility compared with the
ultrasound alone, and write yes or no (or 1 / 0) in answer_sheet.csv:

  proximal_lv   proximal lateral ventricle (the one nearer the probe)
  distal_lv     distal lateral ventricle
  proximal_sf   proximal Sylvian fissure
  distal_sf     distal Sylvian fissure

Write your name or reader code in the "reader" column (the same on every row). The comment column is optional.
Answer every pair; do not add or remove rows. Save the file as CSV and return it to the study organiser.
"""


# --------------------------------------------------------------------------------------------------------------
# Creating a study
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StudyPair:
    id: str
    us: Path
    pseudo_mri: Path


@dataclass(frozen=True)
class CreatedStudy:
    """Where :func:`create_study` wrote things, and what it drew."""

    study_dir: Path
    key_path: Path
    sheet_path: Path
    pairs: tuple[StudyPair, ...]
    seed: int
    n_available: int


def match_pairs(us_dir: str | os.PathLike, pseudo_dir: str | os.PathLike,
                pseudo_suffixes: Sequence[str] = PSEUDO_SUFFIXES) -> list[tuple[Path, Path]]:
    """(US, pseudo-MRI) file pairs matched by stem (``PSEUDO_SUFFIXES``), sorted by US file name.

    US frames without a pseudo-MRI are left out; a frame with two candidate pseudo-MRIs is an error.
    """
    us_files = list_images(us_dir)
    if not us_files:
        raise DDICInputError(f"No images in the US folder {us_dir}.")
    pseudo_by_stem: dict[str, list[Path]] = {}
    for path in list_images(pseudo_dir):
        pseudo_by_stem.setdefault(image_stem(path), []).append(path)
    pairs = []
    for us in us_files:
        stem = image_stem(us)
        found = [p for suffix in pseudo_suffixes for p in pseudo_by_stem.get(stem + suffix, [])]
        if len(found) > 1:
            raise DDICInputError(
                f"The US frame {us.name} has several pseudo-MRI candidates in {pseudo_dir}: "
                f"{', '.join(p.name for p in found)}. Keep one per frame."
            )
        if found:
            pairs.append((us, found[0]))
    return pairs


def display_uint8(pixels: np.ndarray) -> np.ndarray:
    """Pixels for viewing: values already on 0…255 are kept (rounded); any other range is windowed to its
    0.5–99.5 percentiles, so a float NRRD frame is shown with usable contrast."""
    a = np.asarray(pixels, dtype=np.float64)
    finite = a[np.isfinite(a)]
    if finite.size and (finite.min() < 0.0 or finite.max() > 255.0):
        low, high = np.percentile(finite, DISPLAY_PERCENTILES)
        a = (a - low) / max(high - low, 1e-12) * 255.0
    return np.clip(np.rint(np.nan_to_num(a)), 0, 255).astype(np.uint8)


def side_by_side(left: np.ndarray, right: np.ndarray, gap: int = GAP_PX) -> np.ndarray:
    """Two uint8 images next to each other, vertically centred on a black canvas, ``gap`` px apart."""
    height = max(left.shape[0], right.shape[0])
    canvas = np.zeros((height, left.shape[1] + gap + right.shape[1]), dtype=np.uint8)
    for image, x0 in ((left, 0), (right, left.shape[1] + gap)):
        y0 = (height - image.shape[0]) // 2
        canvas[y0:y0 + image.shape[0], x0:x0 + image.shape[1]] = image
    return canvas


def _sheet_template(ids: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SHEET_COLUMNS)
    for pair_id in ids:
        writer.writerow(["", pair_id, *([""] * len(FEATURES)), ""])
    return buffer.getvalue()


def _pair_ids(n: int) -> list[str]:
    width = max(2, len(str(n)))
    return [f"P{i + 1:0{width}d}" for i in range(n)]


def create_study(us_dir: str | os.PathLike, pseudo_dir: str | os.PathLike, out_dir: str | os.PathLike,
                 n: int = DEFAULT_N_PAIRS, seed: int | None = None,
                 progress: ProgressCallback | None = None) -> CreatedStudy:
    """Write a blinded, randomised reader study of ``n`` pairs into ``out_dir`` (layout: module docstring).

    ``seed`` fixes the draw; without one a random seed is drawn and recorded in the key. ``out_dir`` must not
    hold a study already (a key must never be overwritten while readers work on its study).
    """
    report = resolve(progress)
    out = Path(out_dir)
    study_dir, key_dir = out / STUDY_DIR, out / KEY_DIR
    for folder in (study_dir, key_dir):
        if folder.exists() and any(folder.iterdir()):
            raise DDICInputError(
                f"{folder} already exists and is not empty: a reader study (or its private key) is there. "
                "Choose a new --out folder."
            )
    n = int(n)
    if n < 1:
        raise DDICInputError(f"A reader study needs at least 1 pair, not {n}.")
    available = match_pairs(us_dir, pseudo_dir)
    if len(available) < n:
        raise DDICInputError(
            f"Only {len(available)} US frame(s) in {us_dir} have a pseudo-MRI in {pseudo_dir} (matched by file "
            f"name: the same stem or stem + '_pseudo_mri'); {n} pairs were asked for. Pass --n {len(available)} "
            "or translate more frames."
        )
    seed = secrets.randbits(32) if seed is None else int(seed)
    order = np.random.default_rng(seed).choice(len(available), size=n, replace=False)
    pairs = tuple(StudyPair(id=pair_id, us=available[i][0], pseudo_mri=available[i][1])
                  for pair_id, i in zip(_pair_ids(n), order))

    images = study_dir / "images"
    for done, pair in enumerate(pairs):
        us = display_uint8(read_frame(pair.us).pixels)
        pseudo = display_uint8(read_frame(pair.pseudo_mri).pixels)
        write_png(us, images / f"{pair.id}_us.png")
        write_png(pseudo, images / f"{pair.id}_pseudo_mri.png")
        write_png(side_by_side(us, pseudo), images / f"{pair.id}_pair.png")
        report(done + 1, n, pair.id)
    sheet_path = study_dir / SHEET_FILE
    write_text_atomic(sheet_path, _sheet_template([p.id for p in pairs]))
    write_text_atomic(study_dir / "INSTRUCTIONS.txt", INSTRUCTIONS)
    key = {
        "kind": KEY_KIND, "version": __version__, "private": "Do not give this file to readers.",
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"), "seed": seed, "n": n,
        "n_available": len(available), "features": list(FEATURES), "us_dir": str(Path(us_dir).resolve()),
        "pseudo_dir": str(Path(pseudo_dir).resolve()),
        "pairs": [{"id": p.id, "us": str(p.us.resolve()), "pseudo_mri": str(p.pseudo_mri.resolve())} for p in pairs],
    }
    key_path = key_dir / KEY_FILE
    write_text_atomic(key_path, json.dumps(key, indent=2) + "\n")
    return CreatedStudy(study_dir=study_dir, key_path=key_path, sheet_path=sheet_path, pairs=pairs, seed=seed,
                        n_available=len(available))


# --------------------------------------------------------------------------------------------------------------
# Reading keys and sheets
# --------------------------------------------------------------------------------------------------------------


def read_key(path: str | os.PathLike) -> dict:
    """The private key written by :func:`create_study`, checked."""
    path = Path(path)
    if not path.is_file():
        raise DDICInputError(f"Reader-study key not found: {path} (it is OUT/key/{KEY_FILE} of the study).")
    try:
        key = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DDICInputError(f"{path} is not a reader-study key (invalid JSON: {exc}).") from exc
    if not isinstance(key, dict) or key.get("kind") != KEY_KIND or not isinstance(key.get("pairs"), list):
        raise DDICInputError(f"{path} is not a reader-study key written by `ddic reader-study create`.")
    ids = [p.get("id") for p in key["pairs"] if isinstance(p, dict)]
    if not ids or len(ids) != len(key["pairs"]) or len(set(ids)) != len(ids):
        raise DDICInputError(f"The key {path} has missing or duplicate pair ids; it may have been edited.")
    return key


@dataclass(frozen=True)
class ReaderSheet:
    """One reader's answers: ``ratings[pair_id][feature]`` is True when improved."""

    reader: str
    path: Path
    ratings: dict


def _parse_answer(text: str) -> bool | None:
    value = text.strip().lower()
    if value in YES:
        return True
    if value in NO:
        return False
    return None


def _dialect(text: str):
    first = text.splitlines()[0] if text.strip() else ""
    try:
        return csv.Sniffer().sniff(first, delimiters=",;\t")
    except csv.Error:
        return csv.excel


MAX_LISTED_PROBLEMS = 12


def _cell(row: list[str], columns: dict[str, int], name: str) -> str:
    index = columns.get(name)
    return row[index].strip() if index is not None and index < len(row) else ""


def read_sheet(path: str | os.PathLike, pair_ids: Sequence[str]) -> ReaderSheet:
    """Read and check one answer sheet against the study's pair ids; every problem is listed in one error."""
    path = Path(path)
    if not path.is_file():
        raise DDICInputError(f"Answer sheet not found: {path}.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DDICInputError(f"{path} is not a UTF-8 text (CSV) file; save the sheet as CSV UTF-8.") from exc
    rows = list(csv.reader(io.StringIO(text), _dialect(text)))
    if not rows:
        raise DDICInputError(f"The answer sheet {path} is empty.")
    header = [h.strip().lower() for h in rows[0]]
    missing = [c for c in ("pair_id", *FEATURES) if c not in header]
    if missing:
        raise DDICInputError(
            f"The answer sheet {path} lacks the column(s) {', '.join(missing)}; expected the header "
            f"{','.join(SHEET_COLUMNS)} (start from the template answer_sheet.csv)."
        )
    col = {name: header.index(name) for name in header if name}
    expected = set(pair_ids)
    problems: list[str] = []
    ratings: dict[str, dict[str, bool]] = {}
    readers: set[str] = set()
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue  # blank lines, as spreadsheets leave them

        pair_id = _cell(row, col, "pair_id")
        if not pair_id:
            problems.append(f"line {line}: no pair_id")
            continue
        if pair_id not in expected:
            problems.append(f"line {line}: pair_id {pair_id!r} is not in this study")
            continue
        if pair_id in ratings:
            problems.append(f"line {line}: pair {pair_id} is answered twice")
            continue
        if _cell(row, col, "reader"):
            readers.add(_cell(row, col, "reader"))
        answers = {}
        for feature in FEATURES:
            value = _parse_answer(_cell(row, col, feature))
            if value is None:
                shown = _cell(row, col, feature)
                problems.append(f"line {line}: {feature} of pair {pair_id} is "
                                f"{repr(shown) if shown else 'empty'}; write yes/no or 1/0")
            answers[feature] = value
        ratings[pair_id] = answers
    unanswered = [i for i in pair_ids if i not in ratings]
    if unanswered:
        listed = ", ".join(unanswered[:10]) + (" …" if len(unanswered) > 10 else "")
        problems.append(f"{len(unanswered)} pair(s) have no row: {listed}")
    if len(readers) > 1:
        problems.append(f"the reader column holds several names ({', '.join(sorted(readers))}); use one sheet "
                        "per reader")
    if problems:
        shown = problems[:MAX_LISTED_PROBLEMS]
        more = f"\n  … and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        raise DDICInputError(f"The answer sheet {path} has problems:\n  " + "\n  ".join(shown) + more)
    reader = readers.pop() if readers else path.stem
    return ReaderSheet(reader=reader, path=path, ratings=ratings)


# --------------------------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proportion:
    """count / n as a percentage with a Wilson interval."""

    count: int
    n: int
    percent: float
    ci_low: float
    ci_high: float

    @classmethod
    def of(cls, count: int, n: int, confidence: float = CONFIDENCE) -> Proportion:
        low, high = wilson_interval(count, n, confidence)
        pct = 100.0 * count / n if n else float("nan")
        return cls(count=int(count), n=int(n), percent=pct, ci_low=100.0 * low, ci_high=100.0 * high)

    def to_dict(self) -> dict:
        return {"count": self.count, "n": self.n, "percent": self.percent, "ci_low_percent": self.ci_low,
                "ci_high_percent": self.ci_high}

    def format(self) -> str:
        if not self.n:
            return "n/a"
        return f"{self.percent:5.1f} % ({self.count}/{self.n}; CI {self.ci_low:.1f}–{self.ci_high:.1f} %)"


def _proportions(ratings: np.ndarray, confidence: float) -> dict:
    """ratings: (readers, pairs, features) bool → the Fig. 7 proportions."""
    improved = ratings.any(axis=2)
    n_improved = int(improved.sum())
    result = {"improved_any": Proportion.of(n_improved, improved.size, confidence),
              "among_improved": {}, "among_all": {}}
    for j, feature in enumerate(FEATURES):
        count = int(ratings[..., j].sum())  # a feature improved implies ≥ 1 improved
        result["among_improved"][feature] = Proportion.of(count, n_improved, confidence)
        result["among_all"][feature] = Proportion.of(count, improved.size, confidence)
    return result


def _kappa_or_none(ratings_by_pair: np.ndarray) -> float | None:
    """Fleiss' κ of a (pairs × readers) boolean table; None with one reader or when undefined."""
    if ratings_by_pair.shape[1] < 2:
        return None
    value = fleiss_kappa(binary_counts(ratings_by_pair))
    return None if np.isnan(value) else float(value)


@dataclass(frozen=True)
class StudyScores:
    """Everything :func:`score_study` computes; ``to_dict`` is the JSON report."""

    readers: tuple[str, ...]
    pair_ids: tuple[str, ...]
    pooled: dict
    per_reader: dict
    fleiss_kappa: dict
    confidence: float

    def to_dict(self) -> dict:
        def props(block: dict) -> dict:
            return {"improved_any": block["improved_any"].to_dict(),
                    "among_improved": {f: p.to_dict() for f, p in block["among_improved"].items()},
                    "among_all": {f: p.to_dict() for f, p in block["among_all"].items()}}

        return {
            "kind": "ddic_reader_study_scores", "version": __version__,
            "definition": {
                "improved_any": "% of ratings (reader x pair) with >= 1 feature improved (paper Fig. 7)",
                "among_improved": "% of the ratings with >= 1 improved feature where this feature is improved",
                "among_all": "% of all ratings where this feature is improved",
                "ci": f"{self.confidence:.0%} Wilson score interval on pooled ratings (ratings are not "
                      "independent: readers rate the same pairs)",
                "fleiss_kappa": "agreement between readers per feature (pairs = subjects); null with one "
                                "reader or when every rating is identical",
                "json_numbers": RULE,
            },
            "features": {f: FEATURE_NAMES[f] for f in FEATURES},
            "n_readers": len(self.readers), "readers": list(self.readers), "n_pairs": len(self.pair_ids),
            "pooled": props(self.pooled),
            "per_reader": {r: props(block) for r, block in self.per_reader.items()},
            "fleiss_kappa": dict(self.fleiss_kappa),
        }

    def table_rows(self) -> list[dict]:
        """Rows of the CSV table: the pooled measures with κ, then the per-reader "≥ 1 improved" rows."""
        rows = []

        def add(scope: str, measure: str, feature: str, p: Proportion, kappa=None) -> None:
            rows.append({"scope": scope, "measure": measure, "feature": feature, "count": p.count, "n": p.n,
                         "percent": p.percent, "ci_low_percent": p.ci_low, "ci_high_percent": p.ci_high,
                         "fleiss_kappa": kappa})

        add("pooled", "improved_any", ANY, self.pooled["improved_any"], self.fleiss_kappa.get(ANY))
        for f in FEATURES:
            add("pooled", "among_improved", f, self.pooled["among_improved"][f], self.fleiss_kappa.get(f))
        for f in FEATURES:
            add("pooled", "among_all", f, self.pooled["among_all"][f], self.fleiss_kappa.get(f))
        for reader, block in self.per_reader.items():
            add(f"reader:{reader}", "improved_any", ANY, block["improved_any"])
        return rows


TABLE_COLUMNS = ("scope", "measure", "feature", "count", "n", "percent", "ci_low_percent", "ci_high_percent",
                 "fleiss_kappa")


def score_sheets(pair_ids: Sequence[str], sheets: Sequence[ReaderSheet],
                 confidence: float = CONFIDENCE) -> StudyScores:
    """The study's numbers from checked sheets (one per reader, every pair answered)."""
    if not sheets:
        raise DDICInputError("No answer sheets to score.")
    by_reader: dict[str, ReaderSheet] = {}
    for sheet in sheets:
        if sheet.reader in by_reader:
            raise DDICInputError(
                f"Reader {sheet.reader!r} appears twice ({by_reader[sheet.reader].path} and {sheet.path}); each "
                "reader's sheet must be given once, with a distinct name in its reader column."
            )
        by_reader[sheet.reader] = sheet
    ids = list(pair_ids)
    ratings = np.array([[[sheet.ratings[i][f] for f in FEATURES] for i in ids] for sheet in by_reader.values()],
                       dtype=bool)  # (readers, pairs, features)
    per_reader = {r: _proportions(ratings[k:k + 1], confidence) for k, r in enumerate(by_reader)}
    kappa = {ANY: _kappa_or_none(ratings.any(axis=2).T)}
    kappa.update({f: _kappa_or_none(ratings[..., j].T) for j, f in enumerate(FEATURES)})
    return StudyScores(readers=tuple(by_reader), pair_ids=tuple(ids), pooled=_proportions(ratings, confidence),
                       per_reader=per_reader, fleiss_kappa=kappa, confidence=float(confidence))


def score_study(key_path: str | os.PathLike, sheet_paths: Sequence[str | os.PathLike],
                out_dir: str | os.PathLike | None = None, confidence: float = CONFIDENCE) -> StudyScores:
    """Read the key and every sheet, score them, and (with ``out_dir``) write ``reader_study_scores.json`` and
    ``reader_study_table.csv`` there."""
    key = read_key(key_path)
    ids = [p["id"] for p in key["pairs"]]
    sheets = [read_sheet(path, ids) for path in sheet_paths]
    scores = score_sheets(ids, sheets, confidence)
    if out_dir is not None:
        write_scores(scores, out_dir)
    return scores


SCORES_JSON, SCORES_CSV = "reader_study_scores.json", "reader_study_table.csv"


def _csv_cell(value) -> str:
    """CSV text of a table cell: floats with 4 decimals, missing or undefined (None, NaN) as empty."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return ""
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def write_scores(scores: StudyScores, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    out = Path(out_dir)
    json_path, csv_path = out / SCORES_JSON, out / SCORES_CSV
    write_text_atomic(json_path, json.dumps(json_safe(scores.to_dict()), indent=2, allow_nan=False) + "\n")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=TABLE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in scores.table_rows():
        writer.writerow({k: _csv_cell(v) for k, v in row.items()})
    write_text_atomic(csv_path, buffer.getvalue())
    return json_path, csv_path
