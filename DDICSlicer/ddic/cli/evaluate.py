"""Evaluate DDIC against its baselines as the paper does: translate every test frame with every method (outputs
are cached in OUT/outputs and reused), score structure preservation (MI, PSNR with the source US), contrast
(CNR, gCNR of the distal lateral ventricle, atlas squares), with --paired phantom truth also SSIM, ventricle
Dice and atrium-width error, FID/KID when the Inception weights are on disk; write CSV/JSON tables, box plots,
an image grid and OUT/report.html.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from ..metrics.fid import N_BOOTSTRAP
from ..translate.options import ALL_METHODS
from .common import tqdm_progress, add_command
from .translate_args import add_translation_arguments, translation_options_from_args


def register(subparsers) -> None:
    p = add_command(subparsers, "evaluate", __doc__, help="compare translation methods on a test set (tables, plots, HTML report)")
    p.add_argument("--us-test", required=True, type=Path, metavar="DIR",
                   help="test frames: a `ddic phantom` folder (or its us/paired), a `ddic prepare` folder "
                        "(its test split) or a folder of canonical images")
    p.add_argument("--methods", default="ddic,ddib",
                   help=f"comma-separated methods from {', '.join(ALL_METHODS)}")
    p.add_argument("--us-model", help="ultrasound diffusion model (ddic, ddib)")
    p.add_argument("--mri-model", help="MRI diffusion model (ddic, ddib)")
    p.add_argument("--cyclegan-model", metavar="DIR", help="CycleGAN generator (the `ddic train-cyclegan` folder)")
    p.add_argument("--mri-ref", type=Path, metavar="DIR",
                   help="real MRI images for FID/KID against MRI (a `ddic phantom` folder, a prepared MRI folder "
                        "or a folder of images)")
    p.add_argument("--paired", type=Path, metavar="DIR",
                   help="`ddic phantom` folder with the frames' paired truth: adds SSIM, Dice, width error")
    add_translation_arguments(p, methods=None)
    p.add_argument("--limit", type=int, metavar="N", help="only the first N frames (by name)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap intervals (and torch)")
    p.add_argument("--inception-weights", metavar="FILE",
                   help="pt_inception-2015-12-05-6726825d.pth for FID/KID (else the torch cache; never downloaded)")
    p.add_argument("--no-fid", action="store_true", help="skip FID/KID")
    p.add_argument("--bootstrap", type=int, default=N_BOOTSTRAP, help="bootstrap resamples of the FID/KID intervals")
    p.add_argument("--grid-frames", type=int, default=6, help="frames (rows) in the image grid")
    p.add_argument("--out", required=True, type=Path, metavar="REPORT",
                   help="report folder (new, empty, or an earlier evaluation's: its cached outputs are reused)")
    p.set_defaults(func=run)


def options_from_args(args):
    from ..evaluate import EvaluateOptions

    return EvaluateOptions(
        us_test=args.us_test, out=args.out, methods=args.methods, us_model=args.us_model, mri_model=args.mri_model,
        cyclegan_model=args.cyclegan_model, mri_ref=args.mri_ref, paired=args.paired,
        translation=translation_options_from_args(args), limit=args.limit, seed=args.seed,
        inception_weights=args.inception_weights, fid=not args.no_fid,
        n_bootstrap=args.bootstrap, grid_frames=args.grid_frames)


class _StageBars:
    """One tqdm bar per stage: a new stage closes the previous bar."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self._callback = None

    def stage(self, text: str) -> None:
        self._stack.close()
        self._stack = contextlib.ExitStack()
        self._callback = self._stack.enter_context(tqdm_progress(text))

    def progress(self, done: int, total: int, message: str) -> None:
        if self._callback is not None:
            self._callback(done, total, message)

    def close(self) -> None:
        self._stack.close()


def run(args) -> int:
    from ..evaluate import run_evaluation
    from ..evaluate.methods import display_name

    options = options_from_args(args)
    bars = _StageBars()
    try:
        result = run_evaluation(options, progress=bars.progress, stage=bars.stage)
    finally:
        bars.close()
    lines = [(f"ddic evaluate: {result['test_set']['frames']} frames × {len(result['methods'])} method(s) "
              f"in {result['run']['seconds']:.1f} s")]
    for method, info in result["translation"].items():
        lines.append(f"  {display_name(method):9s} {info['translated']} translated, {info['cached']} cached")
    for row in result["cnr_table"]:
        lines.append(f"  CNR {row['name']:9s} {row['cnr']}   gCNR {row['gcnr']}")
    for note in result["notes"]:
        lines.append(f"  note: {note.splitlines()[0]}")
    lines.append(f"  report: {Path(args.out) / 'report.html'}")
    print("\n".join(lines))
    return 0
