"""The paper's Medical Opinion Test. `create` draws N (US, pseudo-MRI) pairs in a random order, writes them as
PNGs under neutral ids with an answer-sheet template (OUT/study/, for the readers) and the id → source-file
key (OUT/key/, private). `score` checks the readers' filled sheets and writes the % of ratings with >= 1
improved feature, the per-feature % among improved ones (Wilson intervals) and Fleiss' kappa per feature.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import tqdm_progress, add_command


def register(subparsers) -> None:
    p = add_command(subparsers, "reader-study", __doc__, help="blinded reader study of (US, pseudo-MRI) pairs: create it, score the answers")
    sub = p.add_subparsers(dest="reader_study_command", metavar="ACTION")
    sub.required = True

    c = sub.add_parser("create", help="write a blinded, randomised study and its private key",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       description="Pairs are matched by file name: a pseudo-MRI named like the US frame, or like "
                                   "it plus '_pseudo_mri' (as `ddic translate` writes). Readers get OUT/study/; "
                                   "keep OUT/key/ to yourself.")
    c.add_argument("--us", type=Path, required=True, metavar="DIR", help="folder of ultrasound frames")
    c.add_argument("--pseudo", type=Path, required=True, metavar="DIR", help="folder of their pseudo-MRIs")
    c.add_argument("--out", type=Path, required=True, metavar="DIR", help="new output folder")
    c.add_argument("--n", type=int, default=40, help="number of pairs (the paper: 40)")
    c.add_argument("--seed", type=int, default=None,
                   help="seed of the random draw (default: a random seed, recorded in the key)")
    c.set_defaults(func=run_create)

    s = sub.add_parser("score", help="score the readers' answer sheets",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       description="Every sheet must answer every pair of the key with yes/no (or 1/0) for "
                                   "proximal_lv, distal_lv, proximal_sf and distal_sf, and name one reader (or is "
                                   "named after its file). Writes reader_study_scores.json and "
                                   "reader_study_table.csv into OUT.")
    s.add_argument("--key", type=Path, required=True, metavar="KEY", help="the study's private key (JSON)")
    s.add_argument("--sheets", type=Path, required=True, nargs="+", metavar="CSV", help="filled answer sheets")
    s.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder for the results")
    s.add_argument("--confidence", type=float, default=0.95, help="confidence level of the intervals")
    s.set_defaults(func=run_score)


def run_create(args) -> int:
    from ..metrics.reader_study import create_study

    with tqdm_progress("reader study") as progress:
        created = create_study(args.us, args.pseudo, args.out, n=args.n, seed=args.seed, progress=progress)
    print(f"reader-study: {len(created.pairs)} pairs (of {created.n_available} available), seed {created.seed}")
    print(f"  for the readers:  {created.study_dir}  (images/, {created.sheet_path.name}, INSTRUCTIONS.txt)")
    print(f"  private key:      {created.key_path}  (do not give it to the readers)")
    return 0


def run_score(args) -> int:
    from ..errors import DDICInputError
    from ..metrics.reader_study import (
        FEATURE_NAMES,
        FEATURES,
        score_study,
        write_scores,
    )

    if not 0.0 < args.confidence < 1.0:
        raise DDICInputError(f"--confidence must lie strictly between 0 and 1, not {args.confidence}.")
    scores = score_study(args.key, args.sheets, confidence=args.confidence)
    json_path, csv_path = write_scores(scores, args.out)
    kappa = scores.fleiss_kappa

    def k(name: str) -> str:
        return "n/a" if kappa.get(name) is None else f"{kappa[name]:.3f}"

    level = f"{args.confidence:.0%}"
    print(f"{len(scores.readers)} reader(s) × {len(scores.pair_ids)} pairs; {level} Wilson intervals")
    print(f"  >= 1 feature improved:  {scores.pooled['improved_any'].format()}   Fleiss kappa {k('any')}")
    for feature in FEATURES:
        p = scores.pooled["among_improved"][feature]
        print(f"  {FEATURE_NAMES[feature]:<27} {p.format()} of improved   Fleiss kappa {k(feature)}")
    print(f"reader-study: results → {json_path}, {csv_path}")
    return 0
