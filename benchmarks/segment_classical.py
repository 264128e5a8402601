"""Dice of the classical (offline) segmentation backend on phantom ventricle atria, US and paired MRI.

For every case of a phantom dataset (``ddic phantom --domains us``), the two lateral-ventricle atria are
the two largest 8-connected components of {lateral ventricle, choroid plexus} in ``NNN_labels.png``
(the atrium is measured with its choroid glomus inside; the small frontal-horn slits are not atria).
Each atrium is segmented from automatically placed prompts — one positive point at the atrium pixel
farthest from its border, and a box = the atrium's bounding box grown by ``--margin`` px; and again from
the point alone — on the US frame and on the paired MRI slice, and scored by Dice against the label
mask (mean ± sample SD over the 2 × N atria).

    ddic phantom --n 30 --domains us --out /tmp/phseg --seed 21
    python benchmarks/segment_classical.py /tmp/phseg --out benchmarks/results/segment_classical.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from ddic import __version__
from ddic.data.labels import Label
from ddic.io.images import read_frame
from ddic.segment.classical import ClassicalOptions, ClassicalSegmenter
from ddic.segment.prompts import Prompts
from scipy import ndimage

ATRIUM_LABELS = (Label.LATERAL_VENTRICLE, Label.CHOROID_PLEXUS)
MODALITIES = ("us", "mri")
PROMPT_MODES = ("point+box", "point")  # the box is the main mode; point-only shows what a single click gives


def atria(labels: np.ndarray) -> list[np.ndarray]:
    """The two largest 8-connected components of the atrium labels (one per hemisphere)."""
    mask = np.isin(labels, [int(v) for v in ATRIUM_LABELS])
    comps, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    sizes = ndimage.sum_labels(mask, comps, index=range(1, count + 1))
    return [comps == i + 1 for i in np.argsort(sizes)[::-1][:2]]


def auto_prompts(target: np.ndarray, margin: int, with_box: bool = True) -> Prompts:
    """Positive point at the deepest interior pixel; box = bounding box grown by ``margin`` (or none)."""
    depth = ndimage.distance_transform_edt(target)
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    ys, xs = np.nonzero(target)
    box = (xs.min() - margin, ys.min() - margin, xs.max() + margin, ys.max() + margin)
    return Prompts(positive=((int(x), int(y)),), box=tuple(int(v) for v in box) if with_box else None)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return float(2.0 * (a & b).sum() / total) if total else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="phantom dataset folder (holds us/paired)")
    parser.add_argument("--margin", type=int, default=3, help="box margin around the atrium (px)")
    parser.add_argument("--smoothing", default="median", help="classical backend smoothing")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/segment_classical.json"))
    args = parser.parse_args()

    paired = args.root / "us" / "paired"
    cases = sorted(p.name[:-len("_labels.png")] for p in paired.glob("*_labels.png"))
    if not cases:
        raise SystemExit(f"No *_labels.png in {paired}; run `ddic phantom --domains us` first.")
    options = ClassicalOptions(smoothing=args.smoothing)
    segmenter = ClassicalSegmenter(options)
    records, start = [], time.perf_counter()
    for case in cases:
        labels = np.rint(read_frame(paired / f"{case}_labels.png").pixels).astype(np.int64)
        targets = atria(labels)
        for modality in MODALITIES:
            segmenter.set_image(read_frame(paired / f"{case}_{modality}.png").pixels)
            for side, target in enumerate(targets):
                for mode in PROMPT_MODES:
                    prompts = auto_prompts(target, args.margin, with_box=mode == "point+box")
                    t0 = time.perf_counter()
                    result = segmenter.predict(prompts)
                    records.append({"case": case, "modality": modality, "atrium": side, "prompts": mode,
                                    "dice": dice(result.mask, target), "target_px": int(target.sum()),
                                    "mask_px": result.area_px, "score": result.score,
                                    "seconds": time.perf_counter() - t0})
    summary = {}
    for mode in PROMPT_MODES:
        for modality in MODALITIES:
            values = np.array([r["dice"] for r in records if r["modality"] == modality and r["prompts"] == mode])
            summary.setdefault(mode, {})[modality] = {
                "n": int(values.size), "dice_mean": float(values.mean()), "dice_sd": float(values.std(ddof=1)),
                "dice_median": float(np.median(values)), "dice_min": float(values.min()),
                "dice_max": float(values.max())}
            print(f"{mode:>9} {modality:>3}: Dice {values.mean():.3f} ± {values.std(ddof=1):.3f} "
                  f"(median {np.median(values):.3f}, n = {values.size})")
    seconds = time.perf_counter() - start
    report = {"benchmark": "segment_classical", "ddic_version": __version__, "dataset": str(args.root),
              "target": "lateral-ventricle atria (labels LATERAL_VENTRICLE + CHOROID_PLEXUS), two per case",
              "prompts": {"point+box": f"1 positive point (deepest interior pixel) + box = bbox grown by "
                                       f"{args.margin} px", "point": "the same positive point alone"},
              "options": asdict(options), "summary": summary, "seconds": seconds,
              "platform": {"python": platform.python_version(), "machine": platform.machine()},
              "records": records}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"{len(records)} segmentations in {seconds:.1f} s → {args.out}")


if __name__ == "__main__":
    main()
