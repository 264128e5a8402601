"""``ddic demo``: the main job on the embedded default — phantom ultrasound → pseudo-MRI → ventricle → CNR."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..translate.options import METHODS, MODES
from .common import tqdm_progress


def register(subparsers) -> None:
    from ..demo.run import DEMO_GA_WEEKS, DEMO_MODE, DEMO_STEPS

    p = subparsers.add_parser(
        "demo", help="the whole method on a phantom frame with the bundled demo models (no download)",
        description="Render a phantom ultrasound frame (or take --frame), find the head, translate it into a "
                    "pseudo-MRI with DDIC using the bundled demo models (trained on phantoms: for demonstration "
                    "only), segment the distal lateral ventricle from automatically placed prompts, measure "
                    "CNR on the ultrasound and the pseudo-MRI with the same squares, and write pseudo_mri.nrrd, "
                    "ventricle_mask.nrrd, side_by_side.png and report.json to --out.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("ddic-demo"), help="output folder")
    p.add_argument("--frame", type=Path, help="your own ultrasound frame instead of a phantom one")
    p.add_argument("--pixel-size", type=float, metavar="MM", help="pixel size of a PNG/JPG --frame")
    p.add_argument("--seed", type=int, default=0, help="phantom case to render")
    p.add_argument("--ga", type=float, default=DEMO_GA_WEEKS, help="gestational age of the phantom (weeks, 21–38)")
    p.add_argument("--us-model", help="ultrasound model (default: the bundled demo model)")
    p.add_argument("--mri-model", help="MRI model (default: the bundled demo model)")
    p.add_argument("--method", choices=METHODS, default="ddic")
    p.add_argument("--mode", choices=MODES, default=DEMO_MODE)
    p.add_argument("--steps", type=int, default=DEMO_STEPS, help="ODE steps N")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--cpu", action="store_true", help="force the CPU")
    p.add_argument("--backend", choices=("auto", "sam", "classical"), default="auto",
                   help="segmentation: auto = SAM when --sam-checkpoint is given, else the offline classical one")
    p.add_argument("--sam-checkpoint", help="SAM weights: a local file or a model id from `ddic models list`")
    p.add_argument("--sam-model-type", choices=("vit_b", "vit_l", "vit_h"),
                   help="SAM architecture of the checkpoint (default: read from the weights)")
    p.add_argument("--anterior", choices=("auto", "right", "left"), default="auto",
                   help="which end of the skull ellipse's major axis is frontal")
    p.add_argument("--overwrite", action="store_true", help="replace earlier demo results in --out")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..demo.run import DemoOptions, run_demo, summary_lines

    options = DemoOptions(
        out=args.out, frame=args.frame, pixel_size_mm=args.pixel_size, seed=args.seed, ga_weeks=args.ga,
        us_model=args.us_model, mri_model=args.mri_model, method=args.method, mode=args.mode, steps=args.steps,
        device="cpu" if args.cpu else args.device, backend=args.backend, sam_checkpoint=args.sam_checkpoint,
        sam_model_type=args.sam_model_type, anterior=args.anterior, overwrite=args.overwrite)

    def stage(text: str) -> None:
        print(f"· {text}", file=sys.stderr, flush=True)

    with tqdm_progress("translate") as bar:
        report = run_demo(options, progress=bar, stage=stage)
    print("\n".join(summary_lines(report, args.out)))
    return 0
