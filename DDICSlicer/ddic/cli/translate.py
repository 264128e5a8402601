"""``ddic translate``: US frames → pseudo-MRI frames with DDIC (or DDIB), written beside a preview.

This module parses options, loads the models and prints; :func:`ddic.translate.service.translate_files`
does the rest (lock, resume, batching, per-frame atomic writes, ``translate.json``). Under ``torchrun
--nproc_per_node K`` the frames are sharded across ranks (rank r takes every K-th remaining frame), each
rank on its own GPU; outputs never collide because each frame has its own file names.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import DDICInputError
from ..io.writable import check_output_folder
from ..translate.options import (
    ALL_METHODS,
    CORRELATION_SIGNS,
    METHODS,
    MODE_NOTES,
    MODES,
    PRECISIONS,
    TranslateOptions,
)
from ..translate.placement import GEOMETRY_MODES, PlacementOptions
from .common import PROGRESS_FORMATS, emit_event, progress_context, run_with_json_events


def register(subparsers) -> None:
    defaults = TranslateOptions()
    p = subparsers.add_parser(
        "translate", help="translate ultrasound frames into pseudo-MRI",
        description="Translate 2D fetal-brain ultrasound frames into pseudo-MRI with DDIC (or the DDIB "
                    "baseline). Each result keeps its frame's geometry and format family (PNG → PNG, "
                    "NRRD → NRRD, NIfTI → NIfTI) and gets a side-by-side preview PNG.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("frames", nargs="+", metavar="FRAME", help="image files or folders of images")
    p.add_argument("--us-model", help="ultrasound model for ddic/ddib (.json card, .safetensors, folder, or an id "
                                      "from `ddic models list`, e.g. ddic-demo-us)")
    p.add_argument("--mri-model", help="MRI model for ddic/ddib (.json card, .safetensors, folder, or an id "
                                       "from `ddic models list`, e.g. ddic-demo-mri)")
    p.add_argument("--cyclegan-model", metavar="DIR",
                   help="US → MRI generator for --method cyclegan (the --out folder of `ddic train-cyclegan`)")
    p.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    p.add_argument("--method", choices=ALL_METHODS, default=defaults.method)
    p.add_argument("--mode", choices=MODES, default=defaults.mode,
                   help="DDIC variant: " + "; ".join(f"{k}: {v}" for k, v in MODE_NOTES.items()))
    p.add_argument("--steps", type=int, default=defaults.steps, help="ODE steps N (1000 = the paper)")
    p.add_argument("--lr", type=float, default=defaults.lr,
                   help="correlation step size at --lr-reference-steps; scaled by reference/N")
    p.add_argument("--lr-reference-steps", type=int, default=defaults.lr_reference_steps)
    p.add_argument("--median-kernel", type=int, default=defaults.median_kernel, help="odd median size k")
    p.add_argument("--corr-sign", choices=CORRELATION_SIGNS, default=defaults.corr_sign,
                   help="+1: favour positive correlation (paper); -1: negative; abs: either")
    p.add_argument("--guide-t-min", type=int, default=defaults.guide_t_min, help="guide only t ≥ this")
    p.add_argument("--guide-t-max", type=int, default=defaults.guide_t_max, help="guide only t ≤ this")
    p.add_argument("--no-clip", action="store_true", help="do not clamp x̂0 while decoding (unstable)")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--device", default=defaults.device, help="auto, cpu, cuda or cuda:N")
    p.add_argument("--cpu", action="store_true", help="force the CPU (same as --device cpu)")
    p.add_argument("--precision", choices=PRECISIONS, default=defaults.precision,
                   help="auto: bf16 network calls on CUDA, fp32 on the CPU")
    p.add_argument("--geometry", choices=GEOMETRY_MODES, default="auto",
                   help="auto: model-sized square frames are canonical, others get the head-ellipse transform; "
                        "head: always the head transform; square: fit the whole frame (head-centred crops)")
    p.add_argument("--pixel-size", type=float, metavar="MM",
                   help="pixel size of picture frames (PNG/JPG carry none), needed by the head geometry")
    p.add_argument("--ellipse", metavar="CX,CY,A,B,ANGLE",
                   help="skull ellipse in frame pixels (centre, semi-axes, angle in degrees) instead of the "
                        "automatic skull detection; only with a single frame")
    p.add_argument("--anterior", choices=("auto", "right", "left"), default="auto",
                   help="which end of the ellipse's major axis (the one on the frame's right) is frontal")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing results in --out (without it, frames an interrupted run with the same "
                        "settings completed are kept and the rest translated)")
    p.add_argument("--progress-format", choices=PROGRESS_FORMATS, default="bar",
                   help="bar: a progress bar on stderr; json: one JSON object per line on stdout for programs "
                        "(events start, progress, done, error; exit code 3 = out of memory, retry with --cpu)")
    p.set_defaults(func=run)


def options_from_args(args) -> TranslateOptions:
    return TranslateOptions(
        method=args.method, mode=args.mode, steps=args.steps, lr=args.lr,
        lr_reference_steps=args.lr_reference_steps, median_kernel=args.median_kernel,
        corr_sign=args.corr_sign, guide_t_min=args.guide_t_min, guide_t_max=args.guide_t_max,
        clip_decode=not args.no_clip, batch_size=args.batch_size,
        device="cpu" if args.cpu else args.device, precision=args.precision)


def check_model_args(args, method: str) -> None:
    """The diffusion methods need --us-model and --mri-model, CycleGAN needs --cyclegan-model; never a mix."""
    diffusion = {"--us-model": getattr(args, "us_model", None), "--mri-model": getattr(args, "mri_model", None)}
    cyclegan = getattr(args, "cyclegan_model", None)
    if method in METHODS:
        missing = [name for name, value in diffusion.items() if not value]
        if missing:
            raise DDICInputError(f"--method {method} needs {' and '.join(missing)} (diffusion models).")
        if cyclegan:
            raise DDICInputError("--cyclegan-model is only used with --method cyclegan.")
    else:
        if not cyclegan:
            raise DDICInputError(f"--method {method} needs --cyclegan-model (the folder of `ddic train-cyclegan`).")
        given = [name for name, value in diffusion.items() if value]
        if given:
            raise DDICInputError(f"{' and '.join(given)} are not used with --method {method}; leave them out.")


def placement_from_args(args, frame_count: int) -> PlacementOptions:
    ellipse = None
    if args.ellipse:
        from ..geometry.ellipse import Ellipse

        if frame_count != 1:
            raise DDICInputError("--ellipse describes one frame; translate that frame alone.")
        try:
            cx, cy, a, b, angle = (float(v) for v in args.ellipse.split(","))
        except ValueError:
            raise DDICInputError(f"--ellipse needs five numbers CX,CY,A,B,ANGLE, got {args.ellipse!r}.") from None
        ellipse = Ellipse(cx, cy, a, b, angle)
    anterior = {"auto": None, "right": True, "left": False}[args.anterior]
    return PlacementOptions(mode=args.geometry, ellipse=ellipse, pixel_size_mm=args.pixel_size,
                            anterior_right=anterior)


def run(args) -> int:
    if getattr(args, "progress_format", "bar") == "json":
        return run_with_json_events(lambda: translate_all(args), device_hint="cpu" if args.cpu else args.device)
    return translate_all(args)


def translate_all(args) -> int:
    """Parse, load the models, hand everything to :func:`ddic.translate.service.translate_files`, print."""
    import sys

    import torch

    from ..diffusion.distributed import detect
    from ..translate.service import expand_frames, translate_files

    options = options_from_args(args)
    check_model_args(args, options.method)
    place = detect()
    rank, world = place.rank, place.world_size
    if world > 1 and options.device in ("auto", "cuda") and torch.cuda.is_available():
        options.device = f"cuda:{place.local_rank}"
    paths = expand_frames(args.frames)
    placement = placement_from_args(args, len(paths))
    check_output_folder(args.out)  # before the models load: fail fast, create nothing
    translator, model_ids = load_translator(args, options)
    json_mode = getattr(args, "progress_format", "bar") == "json"

    def on_start(info: dict) -> None:
        if json_mode:
            emit_event("start", frames=info["frames"], device=info["device"], method=options.method,
                       mode=options.mode, steps=options.steps, kept=info["kept"])

    progress = progress_context(getattr(args, "progress_format", "bar"))
    with progress(f"{options.method} on {translator.device.type}", enabled=rank == 0) as bar:
        run = translate_files(paths, args.out, translator, placement, model_ids=model_ids,
                              overwrite=args.overwrite, progress=bar, rank=rank, world_size=world,
                              on_start=on_start, on_note=lambda text: print(f"\nddic translate: note: {text}",
                                                                          file=sys.stderr, flush=True))
    if rank == 0:
        summary = (f"{run.translated} frame(s) translated with {options.method}"
                   f"{'/' + options.mode if options.method == 'ddic' else ''}"
                   f"{', N = ' + str(options.steps) if options.method in METHODS else ''}, "
                   f"on {translator.device} in {run.seconds:.1f} s "
                   f"({run.report.get('seconds_per_frame', 0.0):.2f} s/frame"
                   f"{', rank 0 of ' + str(world) if world > 1 else ''})"
                   f"{f'; {run.kept} kept from an earlier run' if run.kept else ''}; results in {args.out}")
        if json_mode:
            emit_event("done", outputs=[str(p) for p in run.outputs], previews=[str(p) for p in run.previews],
                       report=str(run.report_path), device=str(translator.device), seconds=round(run.seconds, 3),
                       kept=run.kept, notes=run.notes, message=summary)
        else:
            print(summary)
    return 0


def load_translator(args, options: TranslateOptions):
    """(translator, model ids) for ``options.method``; models given as folders, files or manifest ids."""
    if options.method in METHODS:
        from ..io.modelfile import load_model
        from ..models import ddic_model_path
        from ..translate.engine import Translator

        us_model = load_model(ddic_model_path(args.us_model, "--us-model"), expected_domain="us")
        mri_model = load_model(ddic_model_path(args.mri_model, "--mri-model"), expected_domain="mri",
                               expected_image_size=us_model.card.image_size)
        return Translator(us_model, mri_model, options), {"us_model": us_model.model_id,
                                                          "mri_model": mri_model.model_id}
    from ..cyclegan.model import load_generator
    from ..translate.cyclegan import CycleGANTranslator

    translator = CycleGANTranslator(load_generator(args.cyclegan_model), options)
    return translator, {"cyclegan_model": translator.model.model_id}
