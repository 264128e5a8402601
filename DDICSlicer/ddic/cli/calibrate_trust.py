"""Encode and decode held-out, in-distribution canonical US frames (e.g. the test/ split of `ddic prepare hc18`)
with the US model, for each solver and step count, and write the quantiles of the round-trip error into the
model card. Translations then flag a frame whose round trip exceeds twice the 95th percentile at their solver
and N.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DDICInputError
from ..translate.options import SOLVERS
from .common import add_command


def register(subparsers) -> None:
    p = add_command(subparsers, "calibrate-trust", __doc__, help="store a US model's in-distribution round trip in its card (the trust threshold)")
    p.add_argument("us_model", help="US model (folder, .json card or .safetensors)")
    p.add_argument("--images", required=True, type=Path, help="folder of held-out canonical US frames")
    p.add_argument("--solvers", default=",".join(SOLVERS), help="comma-separated solvers")
    p.add_argument("--steps", default="10,20,30,50,100,200,1000", help="comma-separated step counts N")
    p.add_argument("--limit", type=int, default=32, help="frames used (first by name)")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from ..diffusion.dataset import load_training_images
    from ..diffusion.modelfile import load_model
    from ..translate.trust import measure_reference, store_reference
    from .common import tqdm_progress

    model = load_model(args.us_model, expected_domain="us")
    solvers = [s.strip() for s in args.solvers.split(",") if s.strip()]
    bad = [s for s in solvers if s not in SOLVERS]
    if bad:
        raise DDICInputError(f"Unknown solver(s) {', '.join(bad)}; choose from {', '.join(SOLVERS)}.")
    try:
        steps = [int(s) for s in args.steps.split(",")]
    except ValueError:
        raise DDICInputError(f"--steps must be comma-separated integers, got {args.steps!r}.") from None
    data = load_training_images(args.images, model.card.image_size, model.normalisation.kind)
    images = data.images[:args.limit]
    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tqdm_progress("calibrate") as progress:
        reference = measure_reference(model, images, [(s, n) for s in solvers for n in steps], progress=progress)
    store_reference(model.card_path, reference, f"{len(images)} frames from {Path(args.images).resolve()}")
    for e in reference["entries"]:
        print(f"{e['solver']:8s} N = {e['steps']:4d}: round trip median {e['p50']:.3f}, 95th pct {e['p95']:.3f}, "
              f"max {e['max']:.3f} → threshold {reference['trust_factor'] * e['p95']:.3f}")
    print(f"stored in {model.card_path}")
    return 0
