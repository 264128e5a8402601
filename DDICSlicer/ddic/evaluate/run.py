"""The paper's evaluation protocol as one call: translate → measure → summarise → plot → report.

Stages (each announced through ``stage(text)``; long ones report ``progress(done, total, message)``):

1. **frames** — the test set (:mod:`.cases`) and, with ``paired``, its phantom truth;
2. **models** — every method's model cards are read and checked before any work (:mod:`.methods`);
3. **translate** — each method's outputs, reused from ``REPORT/outputs/`` when they match (:mod:`.outputs`);
4. **measure** — one row per (method, frame) (:mod:`.measure`) → ``per_image.csv``;
5. **summarise** — mean ± SD, pairwise tests, the CNR table (:mod:`.summary`) → ``summary.csv``,
   ``pairwise.csv``, ``cnr_table.csv``, ``summary.json``;
6. **FID / KID** — when an extractor is available (:mod:`.fid`), else a note;
7. **figures** — ``box_plots.png``, ``image_grid.png`` (:mod:`.figures`);
8. **report** — ``report.html`` (:mod:`.html`).

Every file is written atomically. ``REPORT`` must be new, empty or an earlier evaluation's folder.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import DDICInputError
from ..io.atomic import write_text_atomic
from ..metrics.jsonsafe import RULE, json_safe
from ..progress import ProgressCallback, resolve
from . import cases as cases_module
from . import figures, html, summary
from .fid import feature_comparisons, make_extractor
from .measure import columns, measure_output, measure_source
from ..translate.methods import SharedModels, read_models
from .methods import PAIRED_MRI, display_order
from .options import EvaluateOptions
from .outputs import OUTPUTS_DIR, MethodOutput, translate_method

REPORT_FILES = ("per_image.csv", "summary.csv", "pairwise.csv", "cnr_table.csv", "summary.json",
                "box_plots.png", "image_grid.png", "report.html")
MARKER = "summary.json"


def check_out(out: Path) -> None:
    """``out`` may be new, empty, or an earlier evaluation's folder (its cache is reused)."""
    if out.exists() and not out.is_dir():
        raise DDICInputError(f"--out {out} exists and is not a folder; choose a folder for the report.")
    if out.is_dir() and any(out.iterdir()) and not ((out / OUTPUTS_DIR).is_dir() or (out / MARKER).is_file()):
        raise DDICInputError(f"--out {out} holds other files; choose a new folder, or an earlier evaluation's "
                             "folder to reuse its outputs.")
    out.mkdir(parents=True, exist_ok=True)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return ""
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return f"{v:.6g}"
    return str(value)


def write_csv(path: Path, header, rows: list[dict]) -> Path:
    """A CSV with ``header`` columns; NaN is an empty cell, ±inf is "inf"/"-inf"."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in header])
    write_text_atomic(path, buffer.getvalue())
    return path


def run_evaluation(options: EvaluateOptions, progress: ProgressCallback | None = None, stage=None,
                   extractor=None) -> dict:
    """Run the evaluation (module docstring); return the summary (also written to ``summary.json``).

    ``extractor``: a FID/KID feature extractor to use instead of Inception v3 (tests pass a stub).
    """
    say = stage or (lambda text: None)
    report = resolve(progress)
    started = time.perf_counter()
    started_at = time.strftime("%Y-%m-%d %H:%M:%S")
    out = options.out
    notes: list[str] = []

    # 1. frames
    say("reading the test frames")
    test_set = cases_module.load_test_set(options.us_test, options.limit)
    notes += test_set.notes
    cases = test_set.cases
    paired_folder = None
    if options.paired is not None:
        paired_folder = cases_module.attach_truth(cases, options.paired)
    paired = paired_folder is not None

    # 2. models (cards only: nothing is loaded until something must be translated)
    say("checking the models")
    models = {m: read_models(m, options.models()) for m in options.methods}
    check_out(out)

    # 3. translate
    base = options.translation
    shared = SharedModels()
    outputs, translation = {}, {}
    for method in options.methods:
        say(f"translating with {method}")
        _seed_torch_if_loaded(options.seed)
        outputs[method], translation[method] = translate_method(out, models[method], base, cases, shared, report)

    # 4. measure
    say("measuring")
    from ..segment import make_segmenter

    segmenter = make_segmenter("classical")
    groups = list(options.methods) + ([PAIRED_MRI] if paired else [])
    if paired:
        notes.append("'Paired MRI' is the phantom's own MRI measured like a method (same squares, same "
                     "segmentation): what a perfect translation would score, the ceiling of each metric here.")
        for case in cases:
            outputs.setdefault(PAIRED_MRI, {})[case.name] = MethodOutput(case.truth.mri, float("nan"), False)
    rows: list[dict] = []
    grid_rows: list[dict] = []
    for i, case in enumerate(cases):
        source = measure_source(case, segmenter, paired)
        grid = {"name": case.name, "images": {"us": case.pixels}, "masks": {}, "boxes": ()}
        if source.regions is not None:
            grid["boxes"] = (source.regions.roi, source.regions.background)
            if source.mask is not None:
                grid["masks"]["us"] = source.mask
        for method in groups:
            row, mask = measure_output(method, case, outputs[method][case.name], source, segmenter, paired)
            rows.append(row)
            grid["images"][method] = outputs[method][case.name].pixels
            if mask is not None:
                grid["masks"][method] = mask
        if i < options.grid_frames:
            grid_rows.append(grid)
        report(i + 1, len(cases), f"measured {case.name}")
    header = columns(paired)
    for row in rows:
        if row["method"] == PAIRED_MRI:
            row["cached"] = None  # a reference, not translated
    rows.sort(key=lambda r: (display_order(groups).index(r["method"]), r["frame"]))
    write_csv(out / "per_image.csv", header, rows)

    # 5. summarise
    say("summarising")
    frames = [c.name for c in cases]
    records = summary.summarize_metrics(rows, groups, frames, paired)
    pairwise = summary.pairwise_rows(records)
    cnr = summary.cnr_table(records)
    write_csv(out / "summary.csv", summary.SUMMARY_COLUMNS, summary.summary_rows(records))
    write_csv(out / "pairwise.csv", summary.PAIRWISE_COLUMNS, pairwise)
    write_csv(out / "cnr_table.csv", summary.CNR_COLUMNS, cnr)

    # 6. FID / KID
    fid = _fid(options, cases, outputs, extractor, notes, report, say)

    # 7. figures
    say("drawing the figures")
    drawn = {}
    try:
        drawn["box_plots"] = figures.box_plots(records, out / "box_plots.png")
        columns_order = ["us"] + display_order(groups)
        drawn["image_grid"] = figures.image_grid(grid_rows, columns_order, out / "image_grid.png")
    except DDICInputError as exc:
        notes.append(f"Figures not drawn: {exc}")
    for key in ("box_plots", "image_grid"):  # no stale figure of an earlier run may pass for this one's
        if drawn.get(key) is None and (out / f"{key}.png").is_file():
            (out / f"{key}.png").unlink()

    # 8. summary.json and report.html
    files = [name for name in REPORT_FILES
             if name in ("summary.json", "report.html") or (out / name).is_file()]
    result = {
        "kind": "ddic_evaluation", "version": __version__, "json_numbers": RULE,
        "run": {"started": started_at, "seconds": round(time.perf_counter() - started, 3),
                "options": options.to_dict(),
                "translation": {**base.to_dict(), "ddic_step_lr": _step_lr(base, models)}},
        "test_set": cases_module.describe(test_set), "paired": None if paired_folder is None else str(paired_folder),
        "methods": list(options.methods),
        "models": {m: mm.ids for m, mm in models.items()},
        "translation": translation,
        "regions": "atlas (ddic.data.ventricle_atlas): distal lateral-ventricle atrium ROI and adjacent-parenchyma "
                   "background squares, the same pixels on the US and each pseudo-MRI",
        "segmentation": segmenter.backend_message,
        "metrics": summary.records_json(records),
        "cnr_table": cnr, "pairwise": pairwise, "fid": fid, "notes": notes,
        "files": files, "outputs": f"{OUTPUTS_DIR}/<method>/<frame>.nrrd",
    }
    write_text_atomic(out / "summary.json", json.dumps(json_safe(result), indent=2, allow_nan=False) + "\n")
    say("writing the report")
    page = html.render(result, records, cnr, pairwise, drawn, files)
    write_text_atomic(out / "report.html", page)
    return result


def _seed_torch_if_loaded(seed: int) -> None:
    """Seed torch for any stochastic layer (the ODE translations themselves are deterministic)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(int(seed))


def _fid(options: EvaluateOptions, cases, outputs: dict, extractor, notes: list[str], report, say) -> dict:
    if not options.fid:
        return {"note": "FID/KID not computed (--no-fid)."}
    if len(cases) < 2:
        return {"note": "FID/KID need at least 2 frames."}
    say("FID / KID features")
    if extractor is None:
        from ..translate.device import select_device

        extractor, why = make_extractor(options.inception_weights, str(select_device(options.device)))
        if extractor is None:
            note = "FID/KID skipped — " + why.replace("\n", " ")
            notes.append(note)
            return {"note": note}
    reference = None
    if options.mri_ref is not None:
        reference, folder = cases_module.load_reference_images(options.mri_ref)
        notes.append(f"FID/KID real-MRI reference: {len(reference)} images from {folder}.")
    result = feature_comparisons([c.pixels for c in cases],
                                 {m: [outputs[m][c.name].pixels for c in cases] for m in display_order(options.methods)},
                                 reference, extractor, options.n_bootstrap, options.seed, report)
    return result


def _step_lr(options, models: dict) -> float | None:
    """The per-step correlation rate DDIC used at its models' size (None when DDIC was not run)."""
    from ..translate.methods import with_method

    ddic = models.get("ddic")
    if ddic is None or not ddic.image_size:
        return None
    return with_method("ddic", options).step_lr(ddic.image_size)
