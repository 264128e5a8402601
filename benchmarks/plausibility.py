"""How well the atrium plausibility rule (ddic/measure/plausibility.py) separates right from wrong.

For each frame — phantom frames (``ddic.data.phantom``, a quarter with ventriculomegaly) and frames of an
independently written head generator (``independent_head.py``, no phantom code) — the skull is found
automatically, as in ``ddic demo``, and the distal atrium is segmented (classical region growing) from:

* ``atlas``: the automatic atlas prompts with the true front/back orientation;
* ``fwd10`` / ``back10`` / ``lat8`` / ``med8``: the same prompts moved 10 mm forward / backward along the
  midline, 8 mm towards the skull / the midline — onto parenchyma or other structures;
* ``flipped``: the atlas prompts with the orientation turned by 180° (the wrong guess).

Each result is **right** when its Dice with the true distal atrium is ≥ 0.5 and its width is within
2 mm of the truth, else **wrong**; the rule's verdict is ``reliable`` or not. The table counts right /
wrong × reliable / unreliable; the number that matters most is *wrong but reliable* (a wrong measurement
reported as a result). Segmentation runs on the ultrasound; with ``--mri-seeds`` the phantom frames of
those seeds are also translated (bundled demo models, DDIC faithful, ``--steps``) and segmented on the
pseudo-MRI, as the demo does.

    python benchmarks/plausibility.py --phantom-seeds 0:40 --independent-seeds 0:40 \\
        --mri-seeds 0:8 --out benchmarks/results/plausibility.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))

from independent_head import independent_frame  # noqa: E402

from ddic.data.ventricle_atlas import ATLAS_SIZE_PX, Square, head_axes, prompts_for_transform  # noqa: E402
from ddic.errors import DDICError  # noqa: E402
from ddic.geometry.canonical import spacing_for_size  # noqa: E402
from ddic.geometry.ellipse import Ellipse  # noqa: E402
from ddic.geometry.head import CanonicalHeadTransform  # noqa: E402
from ddic.io.images import Frame  # noqa: E402
from ddic.segment.classical import ClassicalSegmenter  # noqa: E402
from ddic.segment.distal_atrium import measure_distal_atrium  # noqa: E402
from ddic.translate.placement import PlacementOptions, place_frame  # noqa: E402

SHIFTS_MM = {"atlas": (0.0, 0.0), "fwd10": (10.0, 0.0), "back10": (-10.0, 0.0), "lat8": (0.0, 8.0),
             "med8": (0.0, -8.0)}
MODEL_SIZE = 64  # the bundled demo models' grid; the atlas itself is always on the 128-px grid


def _span(text: str) -> range:
    lo, hi = (int(v) for v in text.split(":"))
    return range(lo, hi)


def phantom_case(seed: int) -> dict:
    from ddic.data.labels import Label
    from ddic.data.phantom.dataset import render_paired_case

    ga = 22.0 + (seed * 7.3) % 15.0
    case = render_paired_case(seed, 0, (ga, ga), pathology_fraction=0.25)
    rendered = case["frame"]
    ventricle = np.isin(rendered.labels, [int(Label.LATERAL_VENTRICLE), int(Label.CHOROID_PLEXUS)])
    return {"name": f"phantom{seed}", "image": rendered.image.astype(np.float32),
            "pixel_size_mm": float(rendered.pixel_size_mm), "anterior_right": bool(case["transform"].anterior_right),
            "ventricle": ventricle, "params": case["params"], "pathology": case["params"].pathology}


def independent_case(seed: int) -> dict:
    f = independent_frame(seed, ventriculomegaly=seed % 4 == 3)
    return {"name": f"independent{seed}", "image": f["image"].astype(np.float32), "pixel_size_mm": f["pixel_size_mm"],
            "anterior_right": f["anterior_right"], "atrium": f["atrium"], "atrium_width_mm": f["atrium_width_mm"],
            "pathology": "ventriculomegaly" if seed % 4 == 3 else None, "ellipse": f["ellipse"]}


def transform_for(case: dict, frame: Frame, anterior_right: bool) -> tuple[CanonicalHeadTransform, str]:
    """The demo's head transform (automatic skull fit); the true ellipse where the fit fails."""
    try:
        place = place_frame(frame, MODEL_SIZE, PlacementOptions(mode="head", pixel_size_mm=case["pixel_size_mm"],
                                                                anterior_right=anterior_right))
        return place.transform, "detected"
    except DDICError:
        if "ellipse" not in case:
            raise
        return CanonicalHeadTransform(frame, Ellipse(*case["ellipse"]), size=MODEL_SIZE, anterior_right=anterior_right,
                                      pixel_size_mm=case["pixel_size_mm"]), "true (fit failed)"


def true_atrium(case: dict, transform, side: str) -> tuple[np.ndarray, float]:
    """The distal atrium's mask and width under the true orientation."""
    if "atrium" in case:
        return case["atrium"], case["atrium_width_mm"]
    axes = head_axes(transform, side)
    components, n = ndimage.label(case["ventricle"])
    best, best_size = None, 0
    for k in range(1, n + 1):
        ys, xs = np.nonzero(components == k)
        rel = np.stack([xs, ys], 1) - np.asarray(axes.centre_xy)
        t, s = rel @ np.asarray(axes.anterior_xy), rel @ np.asarray(axes.distal_xy)
        if t.mean() < 0 and s.mean() > 0 and len(xs) > best_size:
            best, best_size = components == k, len(xs)
    fetal_side = "left" if side == "bottom" else "right"
    return (best if best is not None else np.zeros_like(case["ventricle"])), \
        float(case["params"].hemisphere(fetal_side).atrium_width_mm)


def moved(prompts, du_mm: float, dv_mm: float):
    spacing = spacing_for_size(ATLAS_SIZE_PX)
    sign = 1.0 if prompts.side == "bottom" else -1.0  # +v: away from the midline on the distal side
    du, dv = du_mm / spacing, sign * dv_mm / spacing
    x0, y0, x1, y1 = prompts.box
    return replace(prompts, point=(prompts.point[0] + du, prompts.point[1] + dv),
                   box=(x0 + du, y0 + dv, x1 + du, y1 + dv), roi=Square(prompts.roi.cx + du, prompts.roi.cy + dv,
                                                                          prompts.roi.side))


def evaluate(case: dict, image_name: str, image: np.ndarray, transform, prompts, truth, variant: str,
             segmenter: ClassicalSegmenter) -> dict:
    """One automatic measurement (the engine's :func:`measure_distal_atrium`) against the truth."""
    segmented = None if image is case["image"] else image
    found = measure_distal_atrium(case["image"], segmented, transform, segmenter, canonical=prompts)
    truth_mask, truth_width = truth
    row = {"case": case["name"], "pathology": case["pathology"], "on": image_name, "variant": variant,
           "true_width_mm": round(truth_width, 2)}
    mask = found.mask
    if found.candidate_width_mm is None:
        return {**row, "right": False, "reliable": found.reliable, "plausibility": 0.0, "empty": True}
    width = found.candidate_width_mm
    dice = 2.0 * (mask & truth_mask).sum() / max(mask.sum() + truth_mask.sum(), 1)
    right = bool(dice >= 0.5 and abs(width - truth_width) <= 2.0)
    verdict = found.plausibility
    return {**row, "width_mm": round(width, 2), "dice": round(float(dice), 3), "right": right,
            "reliable": verdict.reliable, "plausibility": round(verdict.plausibility, 3),
            "failed": [c.name for c in verdict.checks if not c.passed],
            "features": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in verdict.features.items()}}


def summarise(rows: list[dict]) -> dict:
    def count(r, right, reliable):
        return sum(1 for x in r if x["right"] == right and x["reliable"] == reliable)

    groups = {}
    for key in sorted({(r["on"], r["case"].rstrip("0123456789")) for r in rows}):
        part = [r for r in rows if (r["on"], r["case"].rstrip("0123456789")) == key]
        groups[f"{key[1]} frames, segmented on {key[0]}"] = {
            "results": len(part), "right & reliable": count(part, True, True),
            "right but unreliable": count(part, True, False), "wrong but reliable": count(part, False, True),
            "wrong & unreliable": count(part, False, False),
            "plausibility right (min/median)": _stats([r["plausibility"] for r in part if r["right"]]),
            "plausibility wrong (median/max)": _stats([r["plausibility"] for r in part if not r["right"]], True),
        }
    caught = {}
    for r in rows:
        if not r["right"]:
            for name in r.get("failed", ["size"]):
                caught[name] = caught.get(name, 0) + 1
    return {"groups": groups, "wrong results failing each check": caught,
            "wrong but reliable": [{k: r[k] for k in ("case", "on", "variant", "dice", "width_mm", "true_width_mm",
                                                      "plausibility")} for r in rows
                                   if not r["right"] and r["reliable"]]}


def _stats(values, upper=False):
    if not values:
        return None
    v = np.asarray(values)
    return [round(float(np.median(v)), 3), round(float(v.max()), 3)] if upper else \
        [round(float(v.min()), 3), round(float(np.median(v)), 3)]


def translator(steps: int):
    import torch

    from ddic.diffusion.modelfile import load_model
    from ddic.models.bundled import bundled_model_path
    from ddic.translate.engine import Translator
    from ddic.translate.options import TranslateOptions

    torch.set_num_threads(1)
    us = load_model(bundled_model_path("us"), expected_domain="us")
    mri = load_model(bundled_model_path("mri"), expected_domain="mri", expected_image_size=us.card.image_size)
    return Translator(us, mri, TranslateOptions(method="ddic", mode="faithful", steps=steps, device="cpu"))


def pseudo_mri(frame: Frame, transform, engine, cache: Path | None, key: str) -> np.ndarray:
    from ddic.translate.frames import translate_frames

    path = cache / f"{key}.npy" if cache else None
    if path is not None and path.exists():
        return np.load(path)
    placement = PlacementOptions(mode="head", ellipse=transform.ellipse, pixel_size_mm=transform.geometry.pixel_size_mm,
                                 anterior_right=transform.anterior_right)
    result = translate_frames([frame], engine, placement=placement)[0].pseudo_mri
    if path is not None:
        np.save(path, result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phantom-seeds", type=_span, default=range(0, 40))
    parser.add_argument("--independent-seeds", type=_span, default=range(0, 40))
    parser.add_argument("--mri-seeds", type=_span, default=range(0, 0), help="phantom seeds also run on the pseudo-MRI")
    parser.add_argument("--steps", type=int, default=100, help="ODE steps of the translation (the demo's 100)")
    parser.add_argument("--cache", type=Path, default=None, help="folder keeping pseudo-MRIs between runs")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.cache:
        args.cache.mkdir(parents=True, exist_ok=True)
    engine = translator(args.steps) if len(args.mri_seeds) else None
    segmenter = ClassicalSegmenter()
    rows, skipped = [], []
    started = time.perf_counter()
    specs = [("phantom", s) for s in args.phantom_seeds] + [("independent", s) for s in args.independent_seeds]
    for kind, seed in specs:
        case = phantom_case(seed) if kind == "phantom" else independent_case(seed)
        frame = Frame.from_array(case["image"], spacing=(case["pixel_size_mm"],) * 2)
        frame.is_8bit = True
        try:
            true_t, how = transform_for(case, frame, case["anterior_right"])
            flip_t, _ = transform_for(case, frame, not case["anterior_right"])
            true_p = prompts_for_transform(true_t)
            flip_p = prompts_for_transform(flip_t)
        except DDICError as exc:
            skipped.append({"case": case["name"], "why": str(exc)[:160]})
            continue
        truth = true_atrium(case, true_t, true_p.side)
        images = [("ultrasound", case["image"], case["image"])]
        if kind == "phantom" and seed in args.mri_seeds:
            images.append(("pseudo-MRI", pseudo_mri(frame, true_t, engine, args.cache, f"{case['name']}_true"),
                           pseudo_mri(frame, flip_t, engine, args.cache, f"{case['name']}_flip")))
        for name, image_true, image_flip in images:
            for variant, (du, dv) in SHIFTS_MM.items():
                rows.append(evaluate(case, name, image_true, true_t, moved(true_p, du, dv), truth, variant, segmenter))
            rows.append(evaluate(case, name, image_flip, flip_t, flip_p, truth, "flipped", segmenter))
        print(f"{case['name']}: {how}; " + ", ".join(f"{r['on'][:2]}/{r['variant']}: "
                                                    f"{'R' if r['right'] else 'W'}{'+' if r['reliable'] else '-'}"
                                                    for r in rows[-len(images) * 6:]), flush=True)
    summary = summarise(rows)
    report = {"command": "python " + " ".join(sys.argv), "date": time.strftime("%Y-%m-%d"),
              "seconds": round(time.perf_counter() - started, 1), "summary": summary, "skipped": skipped,
              "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
