"""The main job, end to end on one frame: ultrasound in → pseudo-MRI, ventricle, CNR, picture and report.

``ddic demo`` runs it on a phantom frame with the bundled demo models (no download, no GPU); with
``frame=`` it runs on the user's own frame. The stages, each timed in the report:

1. **frame** — render phantom case ``seed`` (an HC18-like 800×540 frame with known anatomy), or read one;
2. **head** — the automatic skull-ellipse fit and the canonical head transform (frame ⇄ model grid);
3. **translate** — DDIC with the two models; the pseudo-MRI is resampled back onto the frame's grid;
4. **prompts** — the distal lateral ventricle's point, box and CNR squares from the atlas
   (:mod:`ddic.data.ventricle_atlas`), mapped onto the frame;
5. **segment** — the ventricle on the pseudo-MRI (offline backend, or SAM when weights are given), its
   atrium width and the region's plausibility as the distal atrium
   (:func:`ddic.segment.distal_atrium.measure_distal_atrium`): an implausible region's width is withheld
   (``atrium_width_mm`` null, ``ventricle.reasons`` say why) — never reported as a result;
6. **measure** — CNR / gCNR on the ultrasound and the pseudo-MRI with the same squares (flagged when the
   prompts are implausible); on a phantom frame also Dice, width error and HC error against the truth.

Every mm figure uses the pixel size in force for the head (``--pixel-size`` for picture frames). An
orientation the image did not decide is reported as undecided, with the default that was assumed.

Outputs (in ``out``, each written atomically; the folder must be new or empty unless ``overwrite``):
``pseudo_mri.nrrd`` (frame geometry), ``ultrasound.nrrd`` (the phantom frame, so both open in Slicer),
``ventricle_mask.nrrd``, ``side_by_side.png`` (outline and ROI squares drawn) and ``report.json``.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import DDICInputError
from ..io.atomic import write_text_atomic
from ..io.images import Frame, read_frame, write_like, write_png
from ..io.preview import to_uint8_display
from ..progress import ProgressCallback
from ..translate.options import TranslateOptions
from ..translate.placement import PlacementOptions
from ..translate.trust import warning_text
from ..data.ventricle_atlas import prompts_for_transform
from .overlay import draw_box, draw_outline, to_rgb

DEMO_GA_WEEKS = 30.0
OUTPUT_NAMES = ("pseudo_mri.nrrd", "ultrasound.nrrd", "ventricle_mask.nrrd", "side_by_side.png", "report.json")


@dataclass
class DemoOptions:
    """What ``ddic demo`` does. ``translation`` is the same record (flags, defaults) as ``ddic translate``'s;
    ``placement`` says how to find the head (always the head transform here: pixel size and orientation)."""

    out: Path
    frame: Path | None = None  # None: render phantom case ``seed``
    seed: int = 0
    ga_weeks: float = DEMO_GA_WEEKS
    us_model: str | None = None  # None: the bundled demo model
    mri_model: str | None = None
    translation: TranslateOptions = field(default_factory=TranslateOptions)
    placement: PlacementOptions = field(default_factory=lambda: PlacementOptions(mode="head"))
    backend: str = "auto"  # segmentation: auto (SAM if a checkpoint is given), sam, classical
    sam_checkpoint: str | None = None
    sam_model_type: str | None = None  # None: read from the checkpoint
    overwrite: bool = False
    extra: dict = field(default_factory=dict)


def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse a folder with earlier results (unless ``overwrite``) or one that cannot be written; the folder
    itself is made only when the first output is written."""
    from ..io.writable import check_output_folder

    check_output_folder(out)
    if out.exists():
        clashes = [name for name in OUTPUT_NAMES if (out / name).exists()]
        if clashes and not overwrite:
            raise DDICInputError(f"{out} already holds demo results ({', '.join(clashes)}); pass --overwrite or "
                                 "choose another --out.")


def _phantom_frame(seed: int, ga_weeks: float) -> tuple[Frame, dict]:
    from ..data.phantom.dataset import render_paired_case

    case = render_paired_case(int(seed), 0, (float(ga_weeks), float(ga_weeks)))
    rendered = case["frame"]
    ps = float(rendered.pixel_size_mm)
    frame = Frame.from_array(rendered.image.astype(np.float32), spacing=(ps, ps))
    frame.is_8bit = True
    return frame, case


def _bundled(domain: str) -> str:
    from ..models.bundled import bundled_model_path

    return str(bundled_model_path(domain))


def run_demo(options: DemoOptions, progress: ProgressCallback | None = None,
             stage: "callable | None" = None) -> dict:
    """Run the main job (see the module docstring); return the report (also written to report.json)."""
    from ..measure.contrast import measure_pair
    from ..measure.regions import PixelBox
    from ..segment.backend import make_segmenter
    from ..segment.distal_atrium import measure_distal_atrium
    from ..translate.methods import build_translator, read_models
    from ..translate.frames import translate_frames
    from ..translate.placement import place_frame

    say = stage or (lambda text: None)
    out = Path(options.out)
    _check_out(out, options.overwrite)
    if options.frame is not None and options.frame.resolve().parent == out.resolve() \
            and options.frame.name in OUTPUT_NAMES:
        raise DDICInputError(f"{options.frame} would be overwritten by the demo's outputs; choose another --out.")
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 3)
        clock = now

    # 1. frame
    case = None
    if options.frame is None:
        say(f"rendering phantom case (seed {options.seed}, GA {options.ga_weeks:g} w)")
        frame, case = _phantom_frame(options.seed, options.ga_weeks)
        pixel_size = frame.spacing[0]
    else:
        frame = read_frame(options.frame)
        pixel_size = options.placement.pixel_size_mm
    lap("frame")

    # 2. models and head
    say("loading models")
    models = read_models(options.translation.method, {"us_model": options.us_model or _bundled("us"),
                                                      "mri_model": options.mri_model or _bundled("mri")})
    translator = build_translator(models, options.translation)
    us_model, mri_model = translator.us_model, translator.mri_model
    size = translator.image_size
    anterior = options.placement.anterior_right
    orientation_note = None
    if anterior is None and case is not None:
        # On a phantom frame the orientation is known, as a user confirms it in the Slicer panel; the automatic
        # guess abstains on about a quarter of frames (BENCHMARKS.md, orientation).
        anterior = bool(case["transform"].anterior_right)
        orientation_note = "phantom truth (as a user would confirm it)"
    say("finding the head (skull-ellipse fit)")
    place = place_frame(frame, size, replace(options.placement, mode="head", pixel_size_mm=pixel_size,
                                             anterior_right=anterior))
    transform = place.transform
    if orientation_note:
        place.info["orientation_source"] = orientation_note
    orientation_decided = place.info.get("orientation_source") != "default"
    place.info["orientation_decided"] = orientation_decided
    if not orientation_decided:
        say(orientation_warning(place.info))
    lap("head")

    # 3. translate
    translate_options = t = options.translation
    say(f"translating with {t.method}{'/' + t.mode if t.method == 'ddic' else ''}, {t.solver} N = {t.steps}, "
        f"on {translator.device}")
    fixed = replace(options.placement, mode="head", ellipse=transform.ellipse, pixel_size_mm=pixel_size,
                    anterior_right=transform.anterior_right)
    result = translate_frames([frame], translator, progress=progress, placement=fixed)[0]
    pseudo_mri = result.pseudo_mri
    lap("translate")

    # 4. prompts
    say("placing the ventricle prompts (atlas)")
    canonical_prompts = prompts_for_transform(transform)
    lap("prompts")

    # 5. segment, measure the width, judge its plausibility
    segmenter = make_segmenter(options.backend, checkpoint=options.sam_checkpoint, model_type=options.sam_model_type,
                               device=translate_options.device)
    say(f"segmenting the distal lateral ventricle ({segmenter.backend_message})")
    ventricle = measure_distal_atrium(frame.pixels, pseudo_mri, transform, segmenter,
                                      orientation_decided=orientation_decided, canonical=canonical_prompts)
    prompts, segmentation, mask, width = ventricle.prompts, ventricle.segmentation, ventricle.mask, ventricle.width
    lap("segment")

    # 6. measure
    say("measuring")
    roi = PixelBox.around(*_centre(prompts.roi), _side(prompts.roi))
    background = PixelBox.around(*_centre(prompts.background), _side(prompts.background))
    contrast = measure_pair(frame.pixels, pseudo_mri, roi, background)
    truth = _phantom_truth(case, canonical_prompts, mask, width, place) if case is not None else None
    lap("measure")

    # outputs
    us_display = to_uint8_display(frame.pixels, frame.is_8bit)
    mri_display = np.clip(pseudo_mri, 0, 255)
    picture = _picture(us_display, mri_display, mask, (roi, background))
    write_like(pseudo_mri, frame, out / "pseudo_mri.nrrd")
    write_like(mask.astype(np.float32), frame, out / "ventricle_mask.nrrd")
    if case is not None:
        write_like(frame.pixels, frame, out / "ultrasound.nrrd")
    write_png(picture, out / "side_by_side.png")
    lap("write")

    report = {
        "kind": "ddic_demo_report", "version": __version__,
        "input": {"frame": str(options.frame) if options.frame else None,
                  "phantom": None if case is None else {"seed": options.seed, "ga_weeks": options.ga_weeks},
                  "shape": list(frame.shape), "pixel_size_mm": ventricle.pixel_size_mm},
        "models": {"us": us_model.model_id, "mri": mri_model.model_id,
                   "us_card": str(us_model.card_path), "mri_card": str(mri_model.card_path),
                   "image_size": size, "trained_on": us_model.card.training.get("data_description", "")},
        "translation": {**translate_options.to_dict(), "device": str(translator.device),
                        "final_correlation": result.final_correlation, "step_lr": translate_options.step_lr(size)},
        "trust": {"us_round_trip_rmse": result.us_round_trip_rmse, "threshold": result.trust_threshold,
                  "threshold_source": translator.trust_threshold_source, "trusted": result.trusted,
                  "meaning": "RMSE ([-1, 1] scale, head pixels) of the frame encoded and decoded by the US model; "
                             "above the threshold the US model does not represent the frame and the pseudo-MRI "
                             "must not be trusted"},
        "head": {**place.info},
        "prompts": {"canonical": canonical_prompts.to_dict(), "frame": prompts.to_dict()},
        "segmentation": {"backend": segmentation.backend, "how": segmenter.backend_message,
                         "score": _float(segmentation.score), "reason": segmentation.reason,
                         "pixels": int(mask.sum()), "area_mm2": round(ventricle.area_mm2, 2)},
        "ventricle": ventricle.to_dict(),
        "atrium_width_mm": ventricle.atrium_width_mm,  # null unless the region is a plausible atrium
        "cnr": {"roi": _box(roi), "background": _box(background), "regions_reliable": ventricle.reliable,
                **contrast.to_dict()},
        "truth": truth,
        "timings_s": timings, "seconds_total": round(sum(timings.values()), 3),
        "host": {"machine": platform.machine(), "python": platform.python_version()},
        "outputs": sorted(name for name in OUTPUT_NAMES if (out / name).exists() or name == "report.json"),
    }
    write_text_atomic(out / "report.json", json.dumps(report, indent=2) + "\n")
    return report


def _centre(box) -> tuple[float, float]:
    x0, y0, x1, y1 = box
    return (x0 + x1) / 2.0, (y0 + y1) / 2.0


def _side(box) -> int:
    x0, y0, x1, y1 = box
    return max(int(round(min(x1 - x0, y1 - y0))), 2)


def _box(box) -> list[int]:
    return [box.x0, box.y0, box.x1, box.y1]


def _float(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return round(value, 4) if np.isfinite(value) else None


def _picture(us: np.ndarray, mri: np.ndarray, mask: np.ndarray, boxes) -> np.ndarray:
    """US | pseudo-MRI, both with the ventricle outline (yellow), ROI (red) and background (cyan) squares."""
    panels = []
    for image in (us, mri):
        rgb = to_rgb(image)
        draw_outline(rgb, mask, (255, 220, 0))
        draw_box(rgb, boxes[0], (255, 40, 40))
        draw_box(rgb, boxes[1], (0, 220, 255))
        panels.append(rgb)
    gap = np.zeros((us.shape[0], 4, 3), dtype=np.float32)
    return np.concatenate([panels[0], gap, panels[1]], axis=1)


def _phantom_truth(case: dict, canonical_prompts, mask: np.ndarray, width, place) -> dict:
    """Ground truth of a phantom frame: the distal ventricle's label mask in the frame, its atrium width,
    the true HC — and the demo's errors against them."""
    from scipy import ndimage

    from ..data.labels import Label

    rendered = case["frame"]
    params = case["params"]
    labels = rendered.labels
    ventricle = np.isin(labels, [int(Label.LATERAL_VENTRICLE), int(Label.CHOROID_PLEXUS)])
    components, _ = ndimage.label(ventricle)
    # the true distal ventricle: the component the segmentation overlaps most (or none)
    overlap = np.bincount(components[mask], minlength=components.max() + 1) if mask.any() else None
    truth_mask = np.zeros_like(ventricle)
    if overlap is not None and overlap[1:].any():
        truth_mask = components == int(np.argmax(overlap[1:]) + 1)
    dice = (2.0 * np.logical_and(mask, truth_mask).sum() / (mask.sum() + truth_mask.sum())
            if (mask.sum() + truth_mask.sum()) else None)
    # canonical labels: fetal left hemisphere in the lower half (v > 0) of the canonical grid
    side = "left" if canonical_prompts.side == "bottom" else "right"
    true_width = params.hemisphere(side).atrium_width_mm
    hc_detected = place.info.get("hc_mm")
    hc_true = float(rendered.geometry.head_circumference_mm)
    return {
        "hc_mm": round(hc_true, 2), "hc_error_percent": None if hc_detected is None
        else round(100.0 * (hc_detected - hc_true) / hc_true, 2),
        "distal_hemisphere": side, "atrium_width_mm": round(float(true_width), 2),
        # of the width that was measured, whether reported or withheld as implausible (to audit the check)
        "atrium_width_error_mm": None if width is None else round(float(width.width_mm) - float(true_width), 2),
        "ventricle_dice": None if dice is None else round(float(dice), 4),
        "ga_weeks": round(float(params.ga_weeks), 2),
    }


def summary_lines(report: dict, out: Path) -> list[str]:
    """The one-screen summary printed at the end of ``ddic demo``."""
    c = report["cnr"]
    t = report.get("truth") or {}
    lines = [
        f"DDIC demo — {report['translation']['method']}/{report['translation']['mode']}, "
        f"{report['translation']['solver']} N = {report['translation']['steps']}, {report['translation']['device']}, "
        f"{report['seconds_total']:.1f} s in all",
        _trust_line(report.get("trust") or {}),
        f"  head        HC {report['head'].get('hc_mm', float('nan')):.1f} mm (skull fit)"
        + (f", truth {t['hc_mm']:.1f} mm ({t['hc_error_percent']:+.1f} %)" if t.get("hc_mm") else ""),
        _orientation_line(report["head"]),
        *_ventricle_lines(report, t),
        f"  CNR         ultrasound {_fmt(c['us']['cnr'])} → pseudo-MRI {_fmt(c['pseudo_mri']['cnr'])}"
        f"   (gCNR {_fmt(c['us']['gcnr'])} → {_fmt(c['pseudo_mri']['gcnr'])})"
        + ("" if c.get("regions_reliable", True) else "  [ventricle squares placed by unreliable prompts]"),
        f"  outputs     {out}/: " + ", ".join(report["outputs"]),
        "  Demo models trained on synthetic phantoms: for demonstration only, not for clinical use.",
    ]
    return lines


def orientation_warning(head: dict) -> str:
    """The sentence for an orientation the image did not decide (the default was assumed)."""
    side = "right" if head.get("anterior_right") else "left"
    other = "left" if side == "right" else "right"
    return (f"front/back orientation undecided from the image; assumed the frontal end on the {side} (the "
            f"default). Nothing that depends on it is reported as reliable; rerun with --anterior {side} to "
            f"confirm it, or --anterior {other} if the pseudo-MRI is mirrored front to back.")


def _orientation_line(head: dict) -> str:
    source = head.get("orientation_source")
    if source is None:
        return "  orientation n/a (no head transform)"
    if not head.get("orientation_decided", True):
        return "  WARNING     " + orientation_warning(head)
    side = "right" if head.get("anterior_right") else "left"
    return f"  orientation frontal end on the {side} ({source})"


def _ventricle_lines(report: dict, truth: dict) -> list[str]:
    v = report.get("ventricle") or {}
    seg = report["segmentation"]
    head = f"  ventricle   {seg['backend']}: {seg['pixels']} px ({seg['area_mm2']:.1f} mm²), "
    known = f" (truth {truth['atrium_width_mm']:.1f} mm, Dice {_fmt(truth.get('ventricle_dice'))})" if truth else ""
    if v.get("reliable"):
        return [head + f"atrium width {_fmt(report['atrium_width_mm'])} mm, plausibility {v['plausibility']:.2f}"
                + known]
    lines = [head + f"atrium width NOT REPORTED — unreliable (plausibility {v.get('plausibility', 0.0):.2f})"
             + known]
    lines += [f"              · {reason}" for reason in v.get("reasons", [])]
    lines.append("              Place the ventricle prompts by hand (ddic segment, or the Slicer panel) to measure.")
    return lines


def _trust_line(trust: dict) -> str:
    rmse = trust.get("us_round_trip_rmse")
    if rmse is None:
        return "  trust       not measured"
    if trust.get("trusted"):
        return f"  trust       US round trip {rmse:.3f} ≤ {trust['threshold']:.3f}: the US model represents this frame"
    return "  WARNING     " + warning_text("this frame", rmse, trust["threshold"])


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def options_dict(options: DemoOptions) -> dict:
    data = asdict(options)
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in data.items()}
