"""Paired comparison of methods across ``ddic evaluate`` runs on the same frames (e.g. DDIC +1 from one run
against DDIC −1 or the local-NCC² guidance from another), with Holm-corrected Wilcoxon signed-rank tests.

``ddic evaluate`` tests the methods *within* one run (pairwise.csv); variants that need other flags run
separately, and this joins them by frame name.

  python benchmarks/compare_evaluations.py --reference RUN_A/per_image.csv:ddic \\
      --other RUN_B/per_image.csv:ddic --other RUN_C/per_image.csv:ddic --out comparison.md

Each ``--other`` is compared with the reference on every metric; p-values are Holm-corrected over all tests made.
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import numpy as np
from ddic.metrics.statistics import holm, wilcoxon_test

METRICS = ("mi_ksg", "ssim", "dice", "width_abs_error_mm", "cnr", "gcnr", "us_round_trip_rmse")


def read(spec: str) -> tuple[str, dict[str, dict]]:
    path, method = spec.rsplit(":", 1)
    with open(path, newline="") as handle:
        rows = {r["frame"]: r for r in csv.DictReader(handle) if r["method"] == method}
    if not rows:
        raise SystemExit(f"no rows of method {method!r} in {path}")
    return f"{Path(path).parent.name}:{method}", rows


def number(row: dict, key: str) -> float:
    try:
        value = float(row.get(key, "nan"))
    except ValueError:
        return math.nan
    return value if math.isfinite(value) else math.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", required=True, help="PER_IMAGE_CSV:METHOD")
    parser.add_argument("--other", action="append", required=True, help="PER_IMAGE_CSV:METHOD (repeatable)")
    parser.add_argument("--out", type=Path, help="Markdown table (also printed)")
    args = parser.parse_args()
    ref_name, ref = read(args.reference)
    rows = []
    for spec in args.other:
        name, other = read(spec)
        frames = sorted(set(ref) & set(other))
        for key in METRICS:
            a = np.array([number(ref[f], key) for f in frames])
            b = np.array([number(other[f], key) for f in frames])
            keep = np.isfinite(a) & np.isfinite(b)
            if keep.sum() < 5:
                continue
            a, b = a[keep], b[keep]
            p = wilcoxon_test(b, a).pvalue  # the evaluation's own test (NaN when every difference is 0)
            p = 1.0 if math.isnan(p) else p
            rows.append({"other": name, "metric": key, "n": int(keep.sum()), "reference": float(a.mean()),
                         "value": float(b.mean()), "difference": float((b - a).mean()), "p": p})
    for row, adjusted in zip(rows, holm([r["p"] for r in rows])):
        row["p_holm"] = adjusted
    lines = [f"reference: {ref_name}", "",
             "| variant | metric | n | reference mean | variant mean | mean difference | Wilcoxon p (Holm) |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['other']} | {r['metric']} | {r['n']} | {r['reference']:.3f} | {r['value']:.3f} | "
              f"{r['difference']:+.3f} | {r['p_holm']:.2g} |" for r in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
