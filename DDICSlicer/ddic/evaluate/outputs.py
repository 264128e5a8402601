"""Translating the test set once: every method's pseudo-MRI cached under ``REPORT/outputs/<method>/``.

Why a cache: a faithful DDIC translation costs tens of seconds a frame on a CPU, and an evaluation is rerun
(another metric, an added method, ten more frames). Each output is ``<stem>.nrrd`` (float32, 0…255, the
canonical grid with its spacing) beside ``<stem>.json``, whose ``identity`` — the method's options and model
ids (:func:`ddic.evaluate.methods.identity`) and the SHA-256 of the input pixels — must equal the current one
for the output to be reused. Anything else (missing, damaged, other options or models, another input) is
translated again and overwritten; both files are written atomically, the JSON last, so an interrupted run
leaves no output that looks complete.

Frames are canonical S×S images; the translator's model grid may be smaller (a 64-px model): the whole frame
is fitted into the model grid and back (placement ``square``; both grids cover the same 140 mm field of view).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DDICInputError
from ..io.atomic import write_text_atomic
from ..io.images import Frame, read_frame, write_like
from ..progress import ProgressCallback, resolve
from .cases import EvalCase
from ..translate.methods import MethodModels, SharedModels, build_translator, with_method
from .methods import identity

OUTPUTS_DIR = "outputs"
OUTPUT_KIND = "ddic_evaluation_output"


@dataclass
class MethodOutput:
    """One method's pseudo-MRI of one frame, on the frame's grid."""

    pixels: np.ndarray  # (S, S) float32, 0…255
    seconds: float  # translation time per frame (of the run that made it)
    cached: bool  # reused from an earlier run
    final_correlation: float | None = None
    us_round_trip_rmse: float | None = None  # the trust number of the frame (ddic.translate.trust)


def output_paths(out: Path, method: str, name: str) -> tuple[Path, Path]:
    folder = Path(out) / OUTPUTS_DIR / method
    return folder / f"{name}.nrrd", folder / f"{name}.json"


def _frame(case: EvalCase) -> Frame:
    return Frame.from_array(case.pixels, spacing=(case.spacing_mm, case.spacing_mm))


def load_cached(out: Path, method: str, case: EvalCase, wanted: dict) -> MethodOutput | None:
    """The cached output of ``case`` if its identity equals ``wanted`` (and its image is readable), else None."""
    image_path, meta_path = output_paths(out, method, case.name)
    if not (image_path.is_file() and meta_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if meta.get("kind") != OUTPUT_KIND or meta.get("identity") != wanted:
        return None
    try:
        pixels = read_frame(image_path).pixels
    except (DDICInputError, RuntimeError, OSError):  # a damaged file is simply translated again
        return None
    if pixels.shape != case.pixels.shape:
        return None
    return MethodOutput(pixels=pixels.astype(np.float32), seconds=float(meta.get("seconds_per_frame", 0.0)),
                        cached=True, final_correlation=meta.get("final_correlation"),
                        us_round_trip_rmse=meta.get("us_round_trip_rmse"))


def _save(out: Path, method: str, case: EvalCase, pixels: np.ndarray, wanted: dict, seconds: float,
          final_correlation: float | None, us_round_trip_rmse: float | None = None) -> None:
    image_path, meta_path = output_paths(out, method, case.name)
    write_like(pixels, _frame(case), image_path)
    meta = {"kind": OUTPUT_KIND, "frame": str(case.path), "identity": wanted,
            "seconds_per_frame": round(seconds, 4), "final_correlation": final_correlation,
            "us_round_trip_rmse": us_round_trip_rmse,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_text_atomic(meta_path, json.dumps(meta, indent=2) + "\n")


def input_identity(method_identity: dict, case: EvalCase) -> dict:
    return {**method_identity, "input_sha256": case.digest()}


def translate_method(out: Path, models: MethodModels, base_options, cases: list[EvalCase],
                     shared: SharedModels | None = None, progress: ProgressCallback | None = None,
                     ) -> tuple[dict[str, MethodOutput], dict]:
    """Every case's output for one method — cached where the identity matches, translated otherwise.

    Returns ({case name: output}, info) with info = the method's identity, device, counts and seconds.
    """
    from ..translate.frames import translate_frames
    from ..translate.placement import PlacementOptions

    report = resolve(progress)
    method = models.method
    options = with_method(method, base_options)
    wanted = identity(method, options, models)
    results: dict[str, MethodOutput] = {}
    todo = []
    for case in cases:
        hit = load_cached(out, method, case, input_identity(wanted, case))
        if hit is None:
            todo.append(case)
        else:
            results[case.name] = hit
    info = {"identity": wanted, "frames": len(cases), "translated": len(todo), "cached": len(cases) - len(todo),
            "device": None, "seconds": 0.0}
    if not todo:
        report(1, 1, f"{method}: all {len(cases)} outputs cached")
        return results, info
    translator = build_translator(models, options, shared)
    info["device"] = str(translator.device)
    placement = PlacementOptions(mode="square")
    batch = options.batch_size
    per_batch = translator.steps_per_image_batch
    batches = [todo[i:i + batch] for i in range(0, len(todo), batch)]
    total = len(batches) * per_batch
    started = time.perf_counter()
    for index, chunk in enumerate(batches):
        offset = index * per_batch
        label = f"{method}: {len(chunk)} frame(s), batch {index + 1}/{len(batches)}"

        def tick(done, _total, _message, offset=offset, label=label):
            report(offset + done, total, label)

        t0 = time.perf_counter()
        frame_results = translate_frames([_frame(c) for c in chunk], translator, progress=tick, placement=placement)
        seconds = (time.perf_counter() - t0) / len(chunk)
        for case, result in zip(chunk, frame_results):
            pixels = np.asarray(result.pseudo_mri, dtype=np.float32)
            rmse = getattr(result, "us_round_trip_rmse", None)
            _save(out, method, case, pixels, input_identity(wanted, case), seconds, result.final_correlation, rmse)
            results[case.name] = MethodOutput(pixels=pixels, seconds=seconds, cached=False,
                                              final_correlation=result.final_correlation, us_round_trip_rmse=rmse)
    info["seconds"] = round(time.perf_counter() - started, 3)
    return results, info
