"""Render a phantom ultrasound frame (or take --frame), find the head, translate it into a pseudo-MRI with DDIC
using the bundled demo models (trained on phantoms: for demonstration only), segment the distal lateral
ventricle from automatically placed prompts, measure CNR on the ultrasound and the pseudo-MRI with the same
squares, and write pseudo_mri.nrrd, ventricle_mask.nrrd, side_by_side.png and report.json to --out.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..translate.options import METHODS
from .common import tqdm_progress, add_command
from .translate_args import (
    add_placement_arguments,
    add_translation_arguments,
    placement_options_from_args,
    translation_options_from_args,
)


def register(subparsers) -> None:
    from ..demo.run import DEMO_GA_WEEKS

    p = add_command(subparsers, "demo", __doc__, help="the whole method on a phantom frame with the bundled demo models (no download)")
    p.add_argument("--out", type=Path, default=Path("ddic-demo"), help="output folder")
    p.add_argument("--frame", type=Path, help="your own ultrasound frame instead of a phantom one")
    p.add_argument("--seed", type=int, default=0, help="phantom case to render")
    p.add_argument("--ga", type=float, default=DEMO_GA_WEEKS, help="gestational age of the phantom (weeks, 21–38)")
    p.add_argument("--us-model", help="ultrasound model (default: the bundled demo model)")
    p.add_argument("--mri-model", help="MRI model (default: the bundled demo model)")
    add_translation_arguments(p, methods=METHODS, batch_size=False)
    add_placement_arguments(p, geometry=False)
    p.add_argument("--backend", choices=("auto", "sam", "classical"), default="auto",
                   help="segmentation: auto = SAM when --sam-checkpoint is given, else the offline classical one")
    p.add_argument("--sam-checkpoint", help="SAM weights: a local file or a model id from `ddic models list`")
    p.add_argument("--sam-model-type", choices=("vit_b", "vit_l", "vit_h"),
                   help="SAM architecture of the checkpoint (default: read from the weights)")
    p.add_argument("--overwrite", action="store_true", help="replace earlier demo results in --out")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..demo.run import DemoOptions, run_demo, summary_lines

    options = DemoOptions(
        out=args.out, frame=args.frame, seed=args.seed, ga_weeks=args.ga, us_model=args.us_model,
        mri_model=args.mri_model, translation=translation_options_from_args(args, batch_size=1),
        placement=placement_options_from_args(args, mode="head"), backend=args.backend,
        sam_checkpoint=args.sam_checkpoint, sam_model_type=args.sam_model_type, overwrite=args.overwrite)

    def stage(text: str) -> None:
        print(f"· {text}", file=sys.stderr, flush=True)

    with tqdm_progress("translate") as bar:
        report = run_demo(options, progress=bar, stage=stage)
    print("\n".join(summary_lines(report, args.out)))
    return 0
