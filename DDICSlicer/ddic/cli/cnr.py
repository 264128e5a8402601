"""Measure the contrast-to-noise ratio CNR = |mean_roi - mean_bg| / sqrt(sd_roi² + sd_bg²) (sample SDs, ddof=1,
as Slicer's Segment Statistics) and the generalised CNR (1 - overlap of the two intensity histograms) of an
ROI against a background. Regions are pixel boxes or mask images (nonzero = inside) on the grid of the image
as read (RGB is converted to luminance). With several images (e.g. ultrasound and pseudo-MRI) the same pixels
are measured on each; they must have the same size.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .common import add_command

BOX_HELP = "x0,y0,x1,y1 in pixels of the image (x = column, y = row, 0-based; x1 and y1 exclusive)"


def register(subparsers) -> None:
    p = add_command(subparsers, "cnr", __doc__, help="CNR and gCNR of an ROI against a background (one image, or the same pixels on several)")
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE",
                   help="image file(s): PNG/JPG/BMP/TIFF, NRRD, NIfTI, MHA or single-frame DICOM")
    roi = p.add_mutually_exclusive_group(required=True)
    roi.add_argument("--roi", metavar="X0,Y0,X1,Y1", help=f"ROI box: {BOX_HELP}")
    roi.add_argument("--mask-roi", type=Path, metavar="FILE", help="ROI mask image (nonzero = ROI)")
    bg = p.add_mutually_exclusive_group(required=True)
    bg.add_argument("--background", metavar="X0,Y0,X1,Y1", help=f"background box: {BOX_HELP}")
    bg.add_argument("--mask-background", type=Path, metavar="FILE", help="background mask image (nonzero = in)")
    p.add_argument("--bins", type=int, default=None,
                   help="gCNR histogram bins (default: ceil(2·N^0.4), N = ROI + background pixels)")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write the results as JSON")
    p.set_defaults(func=run)


def _region(box_text, mask_path, name: str, shape):
    """(region for ddic.measure, JSON description); boxes are clipped to the image with a note on stderr."""
    from ..errors import DDICInputError
    from ..io.images import read_frame
    from ..measure import PixelBox

    if box_text is not None:
        box = PixelBox.parse(box_text, f"--{'roi' if name == 'ROI' else 'background'}")
        clipped = box.clip(shape, name)
        if clipped != box:
            print(f"ddic cnr: note: {name} box {box.as_text()} reaches outside the {shape[1]}×{shape[0]} image; "
                  f"measured on {clipped.as_text()}.", file=sys.stderr)
        return clipped, {"box": list(clipped.as_tuple()), "requested_box": list(box.as_tuple())}
    mask = read_frame(mask_path).pixels != 0
    if mask.shape != tuple(shape):
        raise DDICInputError(
            f"The {name} mask {mask_path} is {mask.shape[1]}×{mask.shape[0]} pixels but the image is "
            f"{shape[1]}×{shape[0]}; draw the mask on the measured image's grid."
        )
    return mask, {"mask": str(mask_path)}


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def run(args) -> int:
    from .. import __version__
    from ..errors import DDICInputError
    from ..io.atomic import write_text_atomic
    from ..io.images import read_frame
    from ..io.writable import check_output_folder
    from ..measure import measure_images
    from ..measure.contrast import GCNR_BIN_RULE

    if args.bins is not None and args.bins < 1:
        raise DDICInputError(f"--bins must be at least 1, not {args.bins}.")
    if args.json is not None:
        check_output_folder(args.json.parent, "--json")
    frames = [read_frame(path) for path in args.images]
    shape = frames[0].shape
    for frame in frames[1:]:
        if frame.shape != shape:
            raise DDICInputError(
                f"{frame.path} is {frame.shape[1]}×{frame.shape[0]} pixels but {frames[0].path} is "
                f"{shape[1]}×{shape[0]}; the same ROI must cover the same pixels. Resample one onto the other's "
                "grid first."
            )
    roi, roi_info = _region(args.roi, args.mask_roi, "ROI", shape)
    background, bg_info = _region(args.background, args.mask_background, "background", shape)
    results = measure_images([f.pixels for f in frames], roi, background, bins=args.bins)

    rows = [(str(path), r.to_dict()) for path, r in zip(args.images, results.values())]
    width = max(len("image"), *(len(name) for name, _ in rows))
    header = (f"{'image':<{width}}  {'ROI mean':>9} {'ROI SD':>8} {'ROI n':>6}  {'bg mean':>9} {'bg SD':>8} "
              f"{'bg n':>6}  {'CNR':>7} {'gCNR':>6}")
    print(header)
    for name, d in rows:
        r, b = d["roi"], d["background"]
        print(f"{name:<{width}}  {r['mean']:>9.3f} {r['sd']:>8.3f} {r['n']:>6d}  {b['mean']:>9.3f} {b['sd']:>8.3f} "
              f"{b['n']:>6d}  {_fmt(d['cnr']):>7} {_fmt(d['gcnr']):>6}")

    if args.json is not None:
        report = {
            "kind": "ddic_cnr", "version": __version__,
            "definition": {
                "cnr": "|mean_roi - mean_bg| / sqrt(sd_roi^2 + sd_bg^2) (method.md eq. 14); null if undefined",
                "sd": "sample standard deviation (ddof = 1), as Slicer Segment Statistics",
                "gcnr": "1 - sum(min(h_roi, h_bg)) of normalised histograms on shared bins; "
                        + (f"{args.bins} equal-width bins over the joint [min, max]" if args.bins else GCNR_BIN_RULE),
                "box": "x0, y0, x1, y1 in pixels (x = column, y = row, 0-based, x1/y1 exclusive)",
            },
            "roi": roi_info, "background": bg_info,
            "images": [{"path": name, "shape": list(shape), **d} for name, d in rows],
        }
        write_text_atomic(args.json, json.dumps(report, indent=2, allow_nan=False) + "\n")
        print(f"cnr: results → {args.json}")
    return 0

