"""Write N ultrasound cases in the HC18 layout (OUT/us/hc18, usable by `ddic prepare hc18`) with paired canonical
US / T2w MRI / label maps (OUT/us/paired), and N unpaired MRI anatomies as canonical T2w slices
(OUT/mri/canonical) and optionally FeTA volumes (OUT/mri/feta). The two domains use disjoint seeds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import DDICInputError
from .common import tqdm_progress, add_command


def _ga_range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in str(text).split(":"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--ga must look like 21:38, not {text!r}") from exc
    return lo, hi


def _domains(text: str) -> tuple[str, ...]:
    return tuple(d.strip() for d in str(text).split(",") if d.strip())


def register(subparsers) -> None:
    p = add_command(subparsers, "phantom", __doc__, help="write phantom datasets (US HC18-style with paired truth, MRI canonical/FeTA)")
    p.add_argument("--n", type=int, required=True, help="cases per domain")
    p.add_argument("--ga", type=_ga_range, default=(21.0, 38.0), help="gestational-age range LOW:HIGH (weeks)")
    p.add_argument("--out", type=Path, required=True, help="output folder (must be new or empty)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed")
    p.add_argument("--domains", type=_domains, default=("us", "mri"), help="comma-separated: us, mri")
    p.add_argument("--mri-volumes", action="store_true", help="also write FeTA-layout volumes")
    p.add_argument("--ventriculomegaly-fraction", type=float, default=0.0,
                   help="fraction of cases drawn with ventriculomegaly")
    p.add_argument("--gallery", action="store_true",
                   help="also write OUT/gallery.png (labels, US, MRI at GA 22, 30, 37)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier phantom dataset in --out")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data.phantom.dataset import make_phantom_dataset, make_gallery

    if args.n < 1:
        raise DDICInputError(f"--n must be at least 1, not {args.n}")
    with tqdm_progress("phantom") as progress:
        summary = make_phantom_dataset(args.out, args.n, ga_range=args.ga, seed=args.seed, domains=args.domains,
                                       mri_volumes=args.mri_volumes,
                                       pathology_fraction=args.ventriculomegaly_fraction, progress=progress,
                                       overwrite=args.overwrite)
    if args.gallery:
        make_gallery(Path(args.out) / "gallery.png", seed=args.seed)
    c = summary["counts"]
    parts = []
    if "us" in c:
        parts.append(f"{c['us']} US frames + paired truth")
    if "mri" in c:
        parts.append(f"{c['mri_slices']} MRI slices" + (f", {c['mri_volumes']} volumes" if "mri_volumes" in c else ""))
    print(f"phantom: {'; '.join(parts)} in {summary['seconds']:.1f} s → {args.out}")
    return 0
