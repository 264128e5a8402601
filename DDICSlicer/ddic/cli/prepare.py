"""``ddic prepare DATASET``: a public dataset → canonical 128×128 training images + manifest.

``hc18`` (the ultrasound side), ``feta`` and ``crl`` (the MRI side: K axial slices around the
transthalamic plane of each labelled volume).
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
    _register_mri(datasets)


def _register_mri(datasets) -> None:
    from ..data.prepare.mri_common import DEFAULT_SLICE_STEP_MM, DEFAULT_SLICES
    from ..geometry.canonical import CANONICAL_SIZE_PX

    common = ("Each volume: reorient to LPS, find the transthalamic level from the labels (deep GM and "
              "ventricles, no cerebellum; the middle of the deep-GM span), take --slices axial slices "
              "--slice-step-mm apart around it, brain-mask (labels > 0), centre the brain and turn its midline "
              "horizontal (occiput left, frontal right), resample, normalise intensities per slice (1st–99th "
              "percentile of the brain → 0…255). Nothing is written unless the whole run succeeds.")
    specs = (
        ("feta", "FeTA fetal brain MRI (BIDS layout with dseg label maps)",
         "Prepare the FeTA release under ROOT (sub-*/anat/*_T2w.nii.gz with the matching *_dseg.nii.gz, and "
         "participants.tsv with id, condition and gestational age). ", "folder of the FeTA release", run_feta),
        ("crl", "CRL spatiotemporal fetal brain atlas (STA21–STA38 with tissue labels)",
         "Prepare the CRL atlas templates under ROOT (STA<GA>.nii.gz with STA<GA>_tissue.nii.gz, else "
         "STA<GA>_parcellation.nii.gz, beside it; GA 21–38 from the file name). ", "folder of the atlas",
         run_crl),
    )
    for name, help_text, description, root_help, func in specs:
        m = datasets.add_parser(name, help=help_text, description=description + common,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        m.add_argument("root", type=Path, metavar="ROOT", help=root_help)
        m.add_argument("--out", required=True, type=Path, help="output folder (must be new or empty)")
        m.add_argument("--slices", type=int, default=DEFAULT_SLICES,
                       help="axial slices per volume, centred on (and including) the transthalamic level")
        m.add_argument("--slice-step-mm", type=float, default=DEFAULT_SLICE_STEP_MM,
                       help="distance between neighbouring slices (mm)")
        m.add_argument("--test-fraction", type=float, default=0.0,
                       help="fraction of subjects in test/ (the MRI model trains on all slices by default)")
        m.add_argument("--split-seed", type=int, default=0, help="seed of the subject shuffle")
        m.add_argument("--size", type=int, default=CANONICAL_SIZE_PX,
                       help="output pixels a side (the field of view stays 128 × 1.094 mm)")
        if name == "feta":
            m.add_argument("--participants", type=Path, default=None,
                           help="participants.tsv, if not at ROOT/participants.tsv")
        m.add_argument("--skip-bad", action="store_true",
                       help="skip unusable volumes (listed in the manifest) instead of stopping")
        m.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
        m.set_defaults(func=func)


def _report_mri(name: str, summary) -> None:
    print(f"{name}: {summary.train} train slices ({summary.train_subjects} subjects), {summary.test} test "
          f"({summary.test_subjects} subjects) from {summary.volumes} volumes; {len(summary.skipped)} skipped "
          f"→ {summary.out}")
    for what, reason in summary.skipped[:10]:
        print(f"  skipped {what}: {reason}")
    print(f"manifest: {summary.manifest}")


def run_feta(args) -> int:
    from ..data.prepare.feta import prepare_feta

    with tqdm_progress("feta") as progress:
        summary = prepare_feta(args.root, args.out, n_slices=args.slices, step_mm=args.slice_step_mm,
                               test_fraction=args.test_fraction, split_seed=args.split_seed, size=args.size,
                               participants=args.participants, skip_bad=args.skip_bad,
                               overwrite=args.overwrite, progress=progress)
    _report_mri("FeTA", summary)
    return 0


def run_crl(args) -> int:
    from ..data.prepare.crl import prepare_crl

    with tqdm_progress("crl") as progress:
        summary = prepare_crl(args.root, args.out, n_slices=args.slices, step_mm=args.slice_step_mm,
                              test_fraction=args.test_fraction, split_seed=args.split_seed, size=args.size,
                              skip_bad=args.skip_bad, overwrite=args.overwrite, progress=progress)
    _report_mri("CRL atlas", summary)
    return 0


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
