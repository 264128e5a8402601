"""Translate 2D fetal-brain ultrasound frames into pseudo-MRI with DDIC (or the DDIB baseline). Each result keeps
its frame's geometry and format family (PNG → PNG, NRRD → NRRD, NIfTI → NIfTI) and gets a side-by-side preview
PNG. Under `torchrun --nproc_per_node K -m ddic translate ...` the frames are shared out over K processes / GPUs.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import DDICInputError
from ..io.writable import check_output_folder
from ..translate.methods import FLAGS, build_translator, check_models, read_models
from ..translate.options import METHODS, TranslateOptions
from ..translate.placement import PlacementOptions
from .common import PROGRESS_FORMATS, emit_event, progress_context, run_with_json_events, add_command
from .translate_args import (
    add_placement_arguments,
    add_translation_arguments,
    placement_options_from_args,
    translation_options_from_args,
)


def register(subparsers) -> None:
    p = add_command(subparsers, "translate", __doc__, help="translate ultrasound frames into pseudo-MRI")
    p.add_argument("frames", nargs="+", metavar="FRAME", help="image files or folders of images")
    p.add_argument("--us-model", help="ultrasound model for ddic/ddib (.json card, .safetensors, folder, or an id "
                                      "from `ddic models list`, e.g. ddic-demo-us)")
    p.add_argument("--mri-model", help="MRI model for ddic/ddib (.json card, .safetensors, folder, or an id "
                                       "from `ddic models list`, e.g. ddic-demo-mri)")
    p.add_argument("--cyclegan-model", metavar="DIR",
                   help="US → MRI generator for --method cyclegan (the --out folder of `ddic train-cyclegan`)")
    p.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    add_translation_arguments(p)
    add_placement_arguments(p)
    p.add_argument("--options-json", type=Path, metavar="FILE",
                   help="read every translation and placement option from FILE (a JSON document of "
                        "ddic.translate.options_document, as the Slicer panel writes it) instead of the option "
                        "flags above, which must then be left at their defaults")
    p.add_argument("--watch-parent", type=int, metavar="PID",
                   help="for programs: stop when process PID ends or stdin is closed; the line 'cancel' on stdin "
                        "cancels (exit code 130), on every OS")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing results in --out (without it, frames an interrupted run with the same "
                        "settings completed are kept and the rest translated)")
    p.add_argument("--progress-format", choices=PROGRESS_FORMATS, default="bar",
                   help="bar: a progress bar on stderr; json: one JSON object per line on stdout for programs "
                        "(events start, progress, done, error; exit code 3 = out of memory, retry with --cpu)")
    p.set_defaults(func=run)


def options_from_args(args) -> TranslateOptions:
    options = translation_options_from_args(args)
    if getattr(args, "options_json", None):
        from ..translate.options_document import read

        if options != TranslateOptions():
            raise DDICInputError("Give the translation options either as flags or in --options-json, not both.")
        options, _placement = read(args.options_json)
    return options


def model_arguments(args) -> dict:
    """The model flags of ``ddic translate`` by model argument name (the registry's keys)."""
    return {name: getattr(args, name, None) for name in FLAGS}


def placement_from_args(args, frame_count: int) -> PlacementOptions:
    """The placement of ``--options-json`` when given, else of the placement flags."""
    placement = placement_options_from_args(args, frame_count)
    if getattr(args, "options_json", None):
        from ..translate.options_document import read

        if placement != PlacementOptions():
            raise DDICInputError("Give the placement options either as flags or in --options-json, not both.")
        _options, placement = read(args.options_json)
        if placement.ellipse is not None and frame_count != 1:
            raise DDICInputError("The ellipse of --options-json describes one frame; translate that frame alone.")
    return placement


def run(args) -> int:
    if getattr(args, "watch_parent", None) is not None:
        from .watchdog import start_watchdog

        start_watchdog(args.watch_parent)
    if getattr(args, "progress_format", "bar") == "json":
        return run_with_json_events(lambda: translate_all(args), device_hint="cpu" if args.cpu else args.device)
    return translate_all(args)


def translate_all(args) -> int:
    """Parse, load the models, hand everything to :func:`ddic.translate.service.translate_files`, print."""
    import torch

    from ..diffusion.distributed import detect
    from ..translate.service import expand_frames, translate_files

    options = options_from_args(args)
    check_models(options.method, model_arguments(args), forbid_others=True)
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
                       kept=run.kept, notes=run.notes, frames=frame_summaries(run), message=summary)
        else:
            print(summary)
    return 0


def frame_summaries(run) -> list[dict]:
    """Per output frame, in the order of ``outputs``: its trust number and how its head was oriented, from its
    record in ``translate.json`` (the Slicer panel logs the number and marks an untrusted pseudo-MRI)."""
    records = {str(Path(r["pseudo_mri"])): r for r in run.report.get("frames", [])}
    threshold = run.report.get("trust_threshold")
    summaries = []
    for output in run.outputs:
        record = records.get(str(output), {})
        placement = record.get("placement") or {}
        summaries.append({"pseudo_mri": str(output), "frame": record.get("frame"),
                          "us_round_trip_rmse": record.get("us_round_trip_rmse"), "trust_threshold": threshold,
                          "trusted": record.get("trusted"), "orientation_source": placement.get("orientation_source"),
                          "anterior_right": placement.get("anterior_right")})
    return summaries


def load_translator(args, options: TranslateOptions):
    """(translator, model ids) for ``options.method``, through the method registry; models given as folders,
    files or manifest ids."""
    models = read_models(options.method, model_arguments(args))
    translator = build_translator(models, options)
    return translator, dict(models.ids)
