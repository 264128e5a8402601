"""Automatic skull-ellipse fit against HC18-style ground truth: HC error, success rate, time per frame.

Works on any folder in HC18's layout (frames + ``*_pixel_size_and_HC.csv``): the real HC18 training set,
or phantom frames from ``ddic phantom``. A frame counts as a success when the detector returns an
ellipse whose HC is within ``--tolerance`` (3 %) of the CSV's; a refusal (DDICInputError) is a failure.

    python benchmarks/skull_fit.py OUT/us/hc18 --boundary outer --out benchmarks/results/skull_fit.json
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import time
from pathlib import Path

import numpy as np
from ddic.errors import DDICInputError
from ddic.geometry.skull_detection import detect_skull_ellipse
from ddic.io.images import read_frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="folder with HC18-style frames and CSV")
    parser.add_argument("--boundary", choices=("centre", "outer"), default="outer",
                        help="which skull boundary the detector reports (default outer: the HC18 / phantom "
                             "CSV convention)")
    parser.add_argument("--tolerance", type=float, default=0.03, help="relative HC error counted as success")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N frames")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/skull_fit.json"))
    args = parser.parse_args()

    csv_path = next(iter(sorted(args.root.glob("*pixel_size_and_HC.csv"))), None)
    if csv_path is None:
        raise SystemExit(f"No *pixel_size_and_HC.csv in {args.root}")
    with open(csv_path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))[1:]
    if args.limit:
        rows = rows[:args.limit]
    records = []
    for name, pixel_size, hc in rows:
        frame = read_frame(args.root / name)
        start = time.perf_counter()
        try:
            found = detect_skull_ellipse(frame.pixels, float(pixel_size), boundary=args.boundary)
            estimate, confidence = found.hc_mm, found.confidence
        except DDICInputError:
            estimate, confidence = None, None
        seconds = time.perf_counter() - start
        error = None if estimate is None else (estimate - float(hc)) / float(hc)
        records.append({"frame": name, "hc_mm": float(hc), "estimate_mm": estimate, "relative_error": error,
                        "confidence": confidence, "seconds": seconds})
        print(f"{name}: HC {float(hc):.1f} mm, estimate {estimate if estimate is None else round(estimate, 1)}, "
              f"error {error if error is None else f'{100 * error:+.2f} %'}", flush=True)
    signed = np.array([r["relative_error"] for r in records if r["relative_error"] is not None])
    errors = np.abs(signed)
    refused = sum(r["estimate_mm"] is None for r in records)
    success = int(np.sum(errors <= args.tolerance))
    summary = {
        "frames": len(records), "refused": refused, "success": success,
        "success_rate": success / max(len(records), 1),
        "median_abs_error": float(np.median(errors)) if errors.size else None,
        "p95_abs_error": float(np.percentile(errors, 95)) if errors.size else None,
        "max_abs_error": float(errors.max()) if errors.size else None,
        "mean_signed_error": float(signed.mean()) if signed.size else None,
        "signed_error_range": [float(signed.min()), float(signed.max())] if signed.size else None,
        "median_seconds": float(np.median([r["seconds"] for r in records])),
    }
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": platform.platform(), "root": str(args.root),
            "boundary": args.boundary, "tolerance": args.tolerance}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "summary": summary, "frames": records}, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
