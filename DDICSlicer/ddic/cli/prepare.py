"""``ddic prepare DATASET``: a public dataset → canonical 128×128 training images + manifest.

Only ``hc18`` (the ultrasound side) so far; the MRI preparers (FeTA, CRL atlas) are to come.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import tqdm_progress


def register(subparsers) -> None:
    from ..data.prepare import PREPARERS
    from ..data.prepare.hc18 import CSV_NAME, HC_RANGE_MM, MASK_MARGIN_MM
    from ..geometry.canonical import CANONICAL_SIZE_PX, CANONICAL_SPACING_MM

    p = subparsers.add_parser(
        "prepare", help="prepare a public dataset as canonical training images",
        description="Turn a public dataset into canonical head images (head centred, midline horizontal, "
                    f"{CANONICAL_SIZE_PX}×{CANONICAL_SIZE_PX} px at {CANONICAL_SPACING_MM} mm/px) split into "
                    "OUT/train and OUT/test by subject, with OUT/manifest.csv. Datasets: "
                    + ", ".join(PREPARERS) + ".")
    datasets = p.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    h = datasets.add_parser(
        "hc18", help="HC18 fetal head ultrasound (training set with annotations)",
        description=f"Prepare the HC18 training set unpacked under ROOT ({CSV_NAME} and the *_HC.png / "
                    "*_HC_Annotation.png files, in any sub-folder): keep HC "
                    f"{HC_RANGE_MM[0]:g}–{HC_RANGE_MM[1]:g} mm, fit each annotation ellipse, canonicalise, "
                    "zero everything outside the skull ellipse, split by subject. Nothing is written unless "
                    "the whole run succeeds.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    h.add_argument("root", type=Path, metavar="ROOT", help="folder the HC18 zips were unpacked into")
    h.add_argument("--out", required=True, type=Path, help="output folder (must be new or empty)")
    h.add_argument("--csv", type=Path, default=None, help=f"the CSV, if not found as {CSV_NAME} under ROOT")
    h.add_argument("--split-seed", type=int, default=0, help="seed of the subject shuffle")
    h.add_argument("--test-fraction", type=float, default=0.1, help="fraction of subjects in test/")
    h.add_argument("--size", type=int, default=CANONICAL_SIZE_PX,
                   help="output pixels a side (the field of view stays 128 × 1.094 mm)")
    h.add_argument("--hc-min", type=float, default=HC_RANGE_MM[0], help="smallest HC kept (mm)")
    h.add_argument("--hc-max", type=float, default=HC_RANGE_MM[1], help="largest HC kept (mm)")
    h.add_argument("--mask-margin-mm", type=float, default=MASK_MARGIN_MM,
                   help="keep this much outside the skull ellipse; beyond it pixels are zeroed")
    h.add_argument("--skip-bad", action="store_true",
                   help="skip unusable rows (listed in the manifest) instead of stopping")
    h.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    h.set_defaults(func=run_hc18)


def run_hc18(args) -> int:
    from ..data.prepare.hc18 import prepare_hc18

    with tqdm_progress("hc18") as progress:
        summary = prepare_hc18(args.root, args.out, csv_path=args.csv, split_seed=args.split_seed,
                               test_fraction=args.test_fraction, size=args.size,
                               hc_range_mm=(args.hc_min, args.hc_max), mask_margin_mm=args.mask_margin_mm,
                               skip_bad=args.skip_bad, overwrite=args.overwrite, progress=progress)
    print(f"HC18: {summary.train} train ({summary.train_subjects} subjects), {summary.test} test "
          f"({summary.test_subjects} subjects), {len(summary.skipped)} of {summary.rows} rows skipped "
          f"→ {summary.out}")
    reasons: dict[str, int] = {}
    for _, reason in summary.skipped:
        key = "HC outside range" if reason.startswith("HC ") and "outside" in reason else reason
        reasons[key] = reasons.get(key, 0) + 1
    for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1])[:10]:
        print(f"  skipped {count}: {reason}")
    print(f"manifest: {summary.manifest}")
    return 0
