"""Segment one structure in IMAGE from prompts given in pixel coordinates (x = column, y = row, as in the array
and in Slicer's IJK). Writes the mask with IMAGE's geometry (PNG: 0/255, NRRD/NIfTI/MHA: 0/1). Backend auto =
SAM when a checkpoint is given (or DDIC_SAM_CHECKPOINT is set), else the offline classical region growing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_command


def _numbers(text: str, counts: tuple[int, ...], what: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in str(text).split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{what} must be comma-separated numbers, not {text!r}") from exc
    if len(values) not in counts:
        raise argparse.ArgumentTypeError(f"{what} needs {' or '.join(map(str, counts))} numbers, not {text!r}")
    return values


def _point(text: str) -> tuple[float, ...]:
    values = _numbers(text, (2, 3), "--points")
    if len(values) == 3 and values[2] not in (0.0, 1.0):
        raise argparse.ArgumentTypeError(f"a point's label must be 1 (positive) or 0 (negative), not {text!r}")
    return values[:2] + ((int(values[2]),) if len(values) == 3 else ())


def _box(text: str) -> tuple[float, ...]:
    return _numbers(text, (4,), "--box")


def register(subparsers) -> None:
    p = add_command(subparsers, "segment", __doc__, help="segment a structure in a 2D frame from points/box prompts (SAM or classical)")
    p.add_argument("image", type=Path, help="2D frame (PNG, NRRD, NIfTI, MHA, DICOM)")
    p.add_argument("--points", type=_point, nargs="+", default=[], metavar="X,Y[,LABEL]",
                   help="prompt points; label 1 = on the structure (default), 0 = not on it")
    p.add_argument("--box", type=_box, default=None, metavar="X0,Y0,X1,Y1", help="box around the structure")
    p.add_argument("--backend", choices=("auto", "sam", "classical"), default="auto")
    p.add_argument("--checkpoint", default=None, metavar="PATH_OR_ID",
                   help="SAM weights: a .pth file or a model id from the manifest (e.g. sam-vit-b)")
    p.add_argument("--model-type", default=None, choices=("vit_b", "vit_l", "vit_h"),
                   help="SAM architecture (default: read from the checkpoint)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (SAM only)")
    p.add_argument("--single-mask", action="store_true",
                   help="SAM: ask for one mask instead of choosing among three (better with box + points)")
    p.add_argument("--value", type=int, default=None, help="mask value (default 255 for PNG, 1 otherwise)")
    p.add_argument("--out", type=Path, required=True, help="mask file (.png, .nrrd, .nii.gz, .mha)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..io.images import read_frame
    from ..io.writable import check_output_folder
    from ..segment.backend import make_segmenter
    from ..segment.masks import write_mask
    from ..segment.prompts import Prompts

    prompts = Prompts.from_labelled(args.points, args.box)
    check_output_folder(args.out.parent, "--out")
    frame = read_frame(args.image)
    segmenter = make_segmenter(args.backend, args.checkpoint, args.model_type, args.device)
    print(segmenter.backend_message)
    segmenter.set_image(frame.pixels)
    result = segmenter.predict(prompts, multimask=not args.single_mask).require_region()
    write_mask(result.mask, frame, args.out, args.value)
    scores = ", ".join(f"{s:.3f}" for s in result.scores)
    print(f"segment: {result.backend}, score {result.score:.3f} (candidates {scores}; {result.reason}), "
          f"{result.area_px} px → {args.out}")
    return 0
