"""``ddic translate``: US frames → pseudo-MRI frames with DDIC (or DDIB), written beside a preview.

Under ``torchrun --nproc_per_node K`` the frames are sharded across ranks (rank r takes every K-th frame),
each rank on its own GPU; outputs never collide because each frame has its own file names.
"""

from __future__ import annotations

import argparse
import json
import sys
import platform
import time
from pathlib import Path

from ..errors import DDICInputError
from ..io.atomic import write_text_atomic
from ..io.images import (
    image_stem,
    list_images,
    output_suffix,
    read_frame,
    write_like,
    write_png,
)
from ..io.preview import side_by_side, to_uint8_display
from ..translate.options import METHODS, TranslateOptions
from ..translate.trust import warning_text
from ..translate.placement import PlacementOptions
from .common import PROGRESS_FORMATS, emit_event, progress_context, run_with_json_events
from .translate_args import (
    add_placement_arguments,
    add_translation_arguments,
    placement_options_from_args,
    translation_options_from_args,
)

PSEUDO_MRI_SUFFIX = "_pseudo_mri"
PREVIEW_SUFFIX = "_side_by_side.png"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "translate", help="translate ultrasound frames into pseudo-MRI",
        description="Translate 2D fetal-brain ultrasound frames into pseudo-MRI with DDIC (or the DDIB "
                    "baseline). Each result keeps its frame's geometry and format family (PNG → PNG, "
                    "NRRD → NRRD, NIfTI → NIfTI) and gets a side-by-side preview PNG.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("frames", nargs="+", metavar="FRAME", help="image files or folders of images")
    p.add_argument("--us-model", help="ultrasound model for ddic/ddib (.json card, .safetensors or folder)")
    p.add_argument("--mri-model", help="MRI model for ddic/ddib (.json card, .safetensors or folder)")
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
    p.add_argument("--overwrite", action="store_true", help="replace existing results in --out")
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


def expand_frames(items: list[str]) -> list[Path]:
    paths: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = list_images(path)
            if not found:
                raise DDICInputError(f"The folder {path} holds no PNG, JPG, NRRD, NIfTI or MHA images.")
            paths.extend(found)
        elif path.is_file():
            paths.append(path)
        else:
            raise DDICInputError(f"Frame not found: {path}.")
    stems = [image_stem(p) for p in paths]
    duplicates = sorted({s for s in stems if stems.count(s) > 1})
    if duplicates:
        raise DDICInputError(
            f"Several frames share the name(s) {', '.join(duplicates)}; their results would overwrite each "
            "other in --out. Rename them or translate them into different folders."
        )
    return paths


def output_paths(frame_path: Path, out: Path) -> tuple[Path, Path]:
    stem = image_stem(frame_path)
    return out / f"{stem}{PSEUDO_MRI_SUFFIX}{output_suffix(frame_path)}", out / f"{stem}{PREVIEW_SUFFIX}"


def run(args) -> int:
    if getattr(args, "watch_parent", None) is not None:
        from .watchdog import start_watchdog

        start_watchdog(args.watch_parent)
    if getattr(args, "progress_format", "bar") == "json":
        return run_with_json_events(lambda: translate_all(args), device_hint="cpu" if args.cpu else args.device)
    return translate_all(args)


def translate_all(args) -> int:
    import torch

    from ..diffusion.distributed import detect
    from ..io.modelfile import load_model
    from ..translate.engine import Translator
    from ..translate.frames import translate_frames

    options = options_from_args(args)
    check_model_args(args, options.method)
    place = detect()
    rank, world, local_rank = place.rank, place.world_size, place.local_rank
    if world > 1 and options.device in ("auto", "cuda") and torch.cuda.is_available():
        options.device = f"cuda:{local_rank}"
    all_paths = expand_frames(args.frames)
    placement = placement_from_args(args, len(all_paths))
    out: Path = args.out
    inputs = {p.resolve() for p in all_paths}
    for path in all_paths:
        for target in output_paths(path, out):
            if target.resolve() in inputs:
                raise DDICInputError(f"Writing {target} would overwrite an input frame; choose another --out.")
            if target.exists() and not args.overwrite:
                raise DDICInputError(f"{target} already exists; use --overwrite or another --out folder.")
    paths = all_paths[rank::world]

    if options.method in METHODS:
        us_model = load_model(args.us_model, expected_domain="us")
        mri_model = load_model(args.mri_model, expected_domain="mri", expected_image_size=us_model.card.image_size)
        translator = Translator(us_model, mri_model, options)
        model_ids = {"us_model": us_model.model_id, "mri_model": mri_model.model_id}
    else:
        from ..cyclegan.model import load_generator
        from ..translate.cyclegan import CycleGANTranslator

        translator = CycleGANTranslator(load_generator(args.cyclegan_model), options)
        model_ids = {"cyclegan_model": translator.model.model_id}
    out.mkdir(parents=True, exist_ok=True)
    json_mode = getattr(args, "progress_format", "bar") == "json"
    if json_mode and rank == 0:
        emit_event("start", frames=len(all_paths), device=str(translator.device), method=options.method,
                   mode=options.mode, steps=options.steps)

    started = time.perf_counter()
    records = []
    batch = options.batch_size
    total = -(-len(paths) // batch) * translator.steps_per_image_batch
    progress = progress_context(getattr(args, "progress_format", "bar"))
    with progress(f"{options.method} on {translator.device.type}", enabled=rank == 0) as bar:
        for first in range(0, len(paths), batch):
            chunk = paths[first:first + batch]
            frames = [read_frame(p) for p in chunk]
            offset = (first // batch) * translator.steps_per_image_batch
            def frame_progress(done, _total, message, offset=offset):
                bar(offset + done, total, message)

            results = translate_frames(frames, translator, progress=frame_progress, placement=placement)
            for path, result in zip(chunk, results):
                mri_path, preview_path = output_paths(path, out)
                write_like(result.pseudo_mri, result.frame, mri_path)
                left = to_uint8_display(result.frame.pixels, result.frame.is_8bit)
                write_png(side_by_side(left, result.pseudo_mri), preview_path)
                records.append({"frame": str(path), "pseudo_mri": str(mri_path), "preview": str(preview_path),
                                "final_correlation": result.final_correlation, "placement": result.placement,
                                "us_round_trip_rmse": result.us_round_trip_rmse, "trusted": result.trusted})
                if result.trusted is False:
                    print(f"warning: {warning_text(path.name, result.us_round_trip_rmse, result.trust_threshold)}",
                          file=sys.stderr)
    elapsed = time.perf_counter() - started
    report = {
        "options": options.to_dict(),
        "step_lr": options.step_lr(translator.image_size),
        "trust_threshold": getattr(translator, "trust_threshold", None),
        "trust_threshold_source": getattr(translator, "trust_threshold_source", None),
        **model_ids,
        "device": str(translator.device), "rank": rank, "world_size": world,
        "host": platform.node(), "seconds": round(elapsed, 3),
        "seconds_per_frame": round(elapsed / max(len(paths), 1), 3),
        "frames": records,
    }
    name = "translate.json" if world == 1 else f"translate_rank{rank}.json"
    write_text_atomic(out / name, json.dumps(report, indent=2) + "\n")
    if rank == 0:
        summary = (f"{len(records)} frame(s) translated with {options.method}"
                   f"{'/' + options.mode if options.method == 'ddic' else ''}"
                   f"{', N = ' + str(options.steps) if options.method in METHODS else ''}, "
                   f"on {translator.device} in {elapsed:.1f} s ({report['seconds_per_frame']:.2f} s/frame"
                   f"{', rank 0 of ' + str(world) if world > 1 else ''}); results in {out}")
        if json_mode:  # stdout carries only JSON lines
            emit_event("done", outputs=[r["pseudo_mri"] for r in records],
                       previews=[r["preview"] for r in records], report=str(out / name),
                       device=str(translator.device), seconds=report["seconds"], message=summary)
        else:
            print(summary)
    return 0
