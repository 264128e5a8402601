"""The translation and head-placement options of every command that translates (``translate``, ``demo``,
``evaluate``): one parser helper per option record, so flags, defaults and help are written once and each
command builds the same :class:`TranslateOptions` / :class:`PlacementOptions` (the Slicer panel builds them
too, from its widgets). Defaults come from the dataclasses; this module adds nothing of its own.
"""

from __future__ import annotations

import argparse

from ..errors import DDICInputError
from ..diffusion.constants import TERMINAL_STEPS
from ..translate.options import (
    ALL_METHODS,
    CORRELATION_SIGNS,
    GUIDANCE_MEASURES,
    MODE_NOTES,
    MODES,
    PRECISIONS,
    SOLVERS,
    TranslateOptions,
)
from ..translate.placement import ANTERIOR_CHOICES, GEOMETRY_MODES, PlacementOptions, anterior_from_choice

SOLVER_NOTES = {
    "ddim": "first-order DDIM, the paper's",
    "dpmpp2m": "DPM-Solver++(2M), second order: as accurate in far fewer steps (BENCHMARKS.md)",
}


def add_translation_arguments(parser: argparse.ArgumentParser, *, methods: tuple[str, ...] | None = ALL_METHODS,
                              batch_size: bool = True) -> None:
    """The flags of :class:`TranslateOptions`. ``methods=None`` leaves out ``--method`` (``evaluate`` takes
    a list of methods instead); ``batch_size=False`` leaves out ``--batch-size`` (one frame at a time)."""
    d = TranslateOptions()
    add = parser.add_argument
    if methods is not None:
        add("--method", choices=methods, default=d.method, help="ddic, or the ddib baseline (DDIC with lr = 0)")
    add("--mode", choices=MODES, default=d.mode,
        help="DDIC variant: " + "; ".join(f"{k}: {v}" for k, v in MODE_NOTES.items()))
    add("--solver", choices=SOLVERS, default=d.solver,
        help="ODE solver of encode and decode: " + "; ".join(f"{k}: {v}" for k, v in SOLVER_NOTES.items()))
    add("--steps", type=int, default=d.steps, help="ODE steps N (the paper: 1000 DDIM steps)")
    add("--terminal-step", choices=TERMINAL_STEPS, default=d.terminal_step,
        help="exact: the encoder's last step is solved so that the decoder's first step returns (same cost; "
             "BENCHMARKS.md); explicit: the solver's own step, as the paper and diffusers")
    add("--lr", type=float, default=d.lr,
        help=f"correlation step size with the paper's meaning (at N = {d.lr_reference_steps} and "
             f"{d.lr_reference_size} px); the per-step rate is lr·({d.lr_reference_steps}/N)·(S/{d.lr_reference_size})²")
    add("--lr-reference-steps", type=int, default=d.lr_reference_steps, help=argparse.SUPPRESS)
    add("--median-kernel", type=int, default=d.median_kernel, help="odd median size k (1 turns it off)")
    add("--corr-sign", choices=CORRELATION_SIGNS, default=d.corr_sign,
        help="+1: favour positive correlation (paper); -1: negative; abs: either")
    add("--guidance", choices=GUIDANCE_MEASURES, default=d.guidance,
        help="pearson: the paper's global correlation; lncc2: squared local normalised cross-correlation "
             "(sign-invariant; beyond the paper, see BENCHMARKS.md)")
    add("--guidance-window", type=int, default=d.guidance_window, help="odd box size of --guidance lncc2 (px)")
    add("--guide-t-min", type=int, default=d.guide_t_min, help="guide only t ≥ this")
    add("--guide-t-max", type=int, default=d.guide_t_max, help="guide only t ≤ this")
    add("--no-clip", action="store_true", help="do not clamp x̂0 while decoding (unstable)")
    if batch_size:
        add("--batch-size", type=int, default=d.batch_size, help="frames translated together")
    add("--device", default=d.device, help="auto, cpu, cuda or cuda:N")
    add("--cpu", action="store_true", help="force the CPU (same as --device cpu)")
    add("--precision", choices=PRECISIONS, default=d.precision, help="auto: bf16 network calls on CUDA, fp32 on the CPU")


def translation_options_from_args(args: argparse.Namespace, **fixed) -> TranslateOptions:
    """The :class:`TranslateOptions` of parsed flags (``fixed`` sets fields that have no flag here)."""
    values = dict(
        method=getattr(args, "method", TranslateOptions.method), mode=args.mode, solver=args.solver, steps=args.steps,
        lr=args.lr, lr_reference_steps=args.lr_reference_steps, median_kernel=args.median_kernel,
        corr_sign=args.corr_sign, guidance=args.guidance, guidance_window=args.guidance_window,
        guide_t_min=args.guide_t_min, guide_t_max=args.guide_t_max, terminal_step=args.terminal_step,
        clip_decode=not args.no_clip, device="cpu" if args.cpu else args.device, precision=args.precision)
    if hasattr(args, "batch_size"):
        values["batch_size"] = args.batch_size
    values.update(fixed)
    return TranslateOptions(**values)


def add_placement_arguments(parser: argparse.ArgumentParser, *, geometry: bool = True, ellipse: bool = True) -> None:
    """The flags of :class:`PlacementOptions` (where the head is in each frame)."""
    add = parser.add_argument
    if geometry:
        add("--geometry", choices=GEOMETRY_MODES, default=PlacementOptions.mode,
            help="auto: model-sized square frames are canonical, others get the head-ellipse transform; "
                 "head: always the head transform; square: fit the whole frame (head-centred crops)")
    add("--pixel-size", type=float, metavar="MM",
        help="pixel size of picture frames (PNG/JPG carry none), needed by the head geometry")
    if ellipse:
        add("--ellipse", metavar="CX,CY,A,B,ANGLE",
            help="skull ellipse in frame pixels (centre, semi-axes, angle in degrees) instead of the automatic "
                 "skull detection; only with a single frame")
    add("--anterior", choices=ANTERIOR_CHOICES, default="auto",
        help="which end of the skull ellipse's major axis (the one on the frame's right) is frontal")


def placement_options_from_args(args: argparse.Namespace, frame_count: int = 1, **fixed) -> PlacementOptions:
    ellipse = None
    text = getattr(args, "ellipse", None)
    if text:
        from ..geometry.ellipse import Ellipse

        if frame_count != 1:
            raise DDICInputError("--ellipse describes one frame; translate that frame alone.")
        try:
            cx, cy, a, b, angle = (float(v) for v in text.split(","))
        except ValueError:
            raise DDICInputError(f"--ellipse needs five numbers CX,CY,A,B,ANGLE, got {text!r}.") from None
        ellipse = Ellipse(cx, cy, a, b, angle)
    values = dict(mode=getattr(args, "geometry", PlacementOptions.mode), ellipse=ellipse,
                  pixel_size_mm=args.pixel_size, anterior_right=anterior_from_choice(args.anterior))
    values.update(fixed)
    return PlacementOptions(**values)
