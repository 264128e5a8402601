"""``ddic train-cyclegan``: train the CycleGAN baseline on two folders of canonical frames (US, MRI).

Thin: options → :class:`ddic.cyclegan.config.CycleGANConfig` → :func:`ddic.cyclegan.training.train_cyclegan`.
Defaults come from the config dataclass (the reference implementation's), so it is their single source.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from ..cyclegan.config import DEVICE_CHOICES, CycleGANConfig
    from ..cyclegan.reference import EPOCHS
    from ..diffusion.dataset import INTENSITY_CHOICES
    from .common import add_checkpoint_options, add_run_options

    d = CycleGANConfig(us_dir="", mri_dir="", out_dir="")  # only for its defaults
    parser = subparsers.add_parser(
        "train-cyclegan",
        help="train the CycleGAN baseline (unpaired US ↔ MRI)",
        description=(
            "Train the CycleGAN baseline (Zhu et al. 2017) on two folders of canonical square frames (the "
            "output of `ddic prepare`), with the reference implementation's defaults: ResNet generator "
            "(6 residual blocks below 256 px, 9 at 256 px), 70×70 PatchGAN, LSGAN, cycle λ = 10, identity "
            "0.5·λ, Adam 2e-4 / β1 0.5, image pool 50, lr decayed linearly to 0 over the second half. Writes "
            "OUT/generator_us2mri.safetensors + .json (for `ddic translate --method cyclegan --cyclegan-model "
            "OUT`), OUT/checkpoint/ for --resume, OUT/loss.csv, OUT/samples/ and OUT/cyclegan_config.json."
        ),
    )
    add = parser.add_argument
    add("--us", required=True, metavar="DIR", help="folder of canonical ultrasound frames")
    add("--mri", required=True, metavar="DIR", help="folder of canonical MRI slices")
    add("--out", required=True, metavar="DIR", help="output folder for the model and training files")
    add("--size", type=int, default=d.image_size, metavar="PX",
        help="image size (128 = the paper, 64 for CPU runs); other square sizes are resampled (default %(default)s)")
    add("--steps", type=int, default=d.steps, metavar="N",
        help=f"total optimizer steps, counting those of a resumed run (default: the reference's {EPOCHS} "
             "epochs over the larger folder, e.g. 73 000 for 365 frames at batch 1)")
    add("--batch-size", type=int, default=d.batch_size, metavar="B", help="images per domain and step (default %(default)s)")
    add("--decay-steps", type=int, default=d.decay_steps, metavar="N",
        help="steps over which the lr decays linearly to 0 at the end (default: half of --steps)")
    add("--lr", type=float, default=d.lr, help="Adam learning rate (default %(default)s)")
    add("--beta1", type=float, default=d.beta1, help="Adam β1 (default %(default)s)")
    add("--lambda-cycle", type=float, default=d.lambda_cycle, metavar="λ", help="cycle-loss weight (default %(default)s)")
    add("--lambda-identity", type=float, default=d.lambda_identity, metavar="W",
        help="identity-loss weight as a fraction of λ; 0 turns it off (default %(default)s)")
    add("--pool-size", type=int, default=d.pool_size, metavar="N", help="image pool size, 0 for none (default %(default)s)")
    add("--blocks", type=int, default=d.residual_blocks, metavar="N",
        help="generator residual blocks (default: 6 below 256 px, 9 at 256 px, as the reference)")
    add("--g-filters", type=int, default=d.generator_filters, metavar="N", help="generator base filters (default %(default)s)")
    add("--d-filters", type=int, default=d.discriminator_filters, metavar="N",
        help="discriminator base filters (default %(default)s)")
    add("--d-layers", type=int, default=d.discriminator_layers, metavar="N",
        help="PatchGAN stride-2 layers; 3 = 70×70 patches (default %(default)s)")
    add("--load-size", type=int, default=d.load_size, metavar="PX",
        help="resize to PX and random-crop --size (the reference's resize_and_crop, 286→256, i.e. 143 at 128 px); "
             "default: off, canonical frames are already registered")
    add("--no-flip", action="store_true", help="no random horizontal flips")
    add_checkpoint_options(add, d, "generator")
    add("--num-samples", type=int, default=d.num_samples, metavar="N",
        help="images per domain in each sample grid, 0 for none (default %(default)s)")
    add("--stop-after", type=int, default=None, metavar="N",
        help="end this invocation after N total steps (checkpointed; the lr schedule still follows --steps), "
             "to split a long run into time-limited jobs")
    add_run_options(add, d, DEVICE_CHOICES, INTENSITY_CHOICES)
    parser.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):
    from ..cyclegan.config import CycleGANConfig
    from .common import shared_option_values

    return CycleGANConfig(
        us_dir=args.us, mri_dir=args.mri, out_dir=args.out, image_size=args.size, steps=args.steps,
        batch_size=args.batch_size, decay_steps=args.decay_steps, lr=args.lr, beta1=args.beta1,
        lambda_cycle=args.lambda_cycle, lambda_identity=args.lambda_identity, pool_size=args.pool_size,
        generator_filters=args.g_filters, residual_blocks=args.blocks, discriminator_filters=args.d_filters,
        discriminator_layers=args.d_layers, flip=not args.no_flip, load_size=args.load_size,
        num_samples=args.num_samples, stop_after=args.stop_after, **shared_option_values(args),
    )


def run(args: argparse.Namespace) -> int:
    from ..cyclegan.training import train_cyclegan
    from .common import tqdm_progress

    config = config_from_args(args)
    with tqdm_progress("train-cyclegan") as progress:
        result = train_cyclegan(config, progress)
    new = result.steps_done - result.start_step
    resumed = f", resumed at {result.start_step}" if result.start_step else ""
    losses = result.final_losses
    loss = (f"G {losses['loss_g']:.4f}, D_mri {losses['loss_d_mri']:.4f}, D_us {losses['loss_d_us']:.4f}"
            if losses else "n/a")
    print(f"generator: {result.card_path} (weights {result.card_path.with_suffix('.safetensors').name})")
    print(f"steps: {result.steps_done} of {result.total_steps} ({new} in this run{resumed}) on {result.device}")
    print(f"time: {result.duration_s:.1f} s in total, final losses {loss}")
    return 0
