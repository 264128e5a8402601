"""``ddic train``: train one per-domain diffusion model (US or MRI) on a folder of canonical frames.

Thin: options → :class:`ddic.diffusion.train_config.TrainConfig` → :func:`ddic.diffusion.training.train`.
Works as a single process or under ``torchrun --nproc_per_node K -m ddic train …`` (one bar, on rank 0).
Defaults come from ``TrainConfig``, so the dataclass is their single source.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from ..diffusion.dataset import INTENSITY_CHOICES
    from ..diffusion.networks import PRESETS, SUPPORTED_IMAGE_SIZES
    from ..diffusion.prediction import LOSS_WEIGHTINGS, PREDICTIONS
    from ..diffusion.train_config import BF16_CHOICES, DEVICE_CHOICES, FLIP_CHOICES, LR_SCHEDULES, TrainConfig
    from ..io.modelfile import DOMAINS
    from .common import add_checkpoint_options, add_run_options

    d = TrainConfig(domain="us", data_dir="", out_dir="")  # only for its defaults
    sizes = " or ".join(map(str, SUPPORTED_IMAGE_SIZES))
    parser = subparsers.add_parser(
        "train",
        help="train a per-domain diffusion model (US or MRI)",
        description=(
            "Train one diffusion model (v- or ε-prediction) on a folder of canonical square frames (the output of "
            "`ddic prepare`). Writes OUT/model.safetensors + OUT/model.json (EMA weights and model card), "
            "OUT/checkpoint/ for --resume, OUT/loss.csv and OUT/samples/step_NNNNNN.png. For several GPUs: "
            "torchrun --nproc_per_node K -m ddic train …"
        ),
    )
    add = parser.add_argument
    add("--domain", required=True, choices=DOMAINS, help="which domain the images are")
    add("--data", required=True, metavar="DIR", help="folder of canonical frames (PNG, NRRD, NIfTI)")
    add("--out", required=True, metavar="DIR", help="output folder for the model and training files")
    add("--preset", default=d.preset, choices=list(PRESETS),
        help="network size: paper (~95 M parameters), small (~20 M), tiny (CPU, tests); default %(default)s")
    add("--size", type=int, default=d.image_size, metavar="PX",
        help=f"image size in pixels ({sizes}); square images of another size are resampled; default %(default)s")
    add("--steps", type=int, default=d.steps, metavar="N",
        help="total optimizer steps, counting those of a resumed run (default %(default)s)")
    add("--batch-size", type=int, default=d.batch_size, metavar="B",
        help="images per step and per process (default %(default)s)")
    add("--lr", type=float, default=d.lr, help="AdamW learning rate (default %(default)s)")
    add("--weight-decay", type=float, default=d.weight_decay, metavar="WD",
        help="AdamW weight decay (default %(default)s)")
    add("--warmup", type=int, default=d.warmup_steps, metavar="N",
        help="linear learning-rate warm-up steps (default %(default)s)")
    add("--lr-schedule", default=d.lr_schedule, choices=LR_SCHEDULES,
        help="after the warm-up: constant, or cosine decay to --min-lr at the last step (default %(default)s)")
    add("--min-lr", type=float, default=d.min_lr, help="final lr of --lr-schedule cosine (default %(default)s)")
    add("--init-from", metavar="MODEL",
        help="start from the weights of an earlier model of the same preset/size/prediction (fine-tuning)")
    add("--grad-clip", type=float, default=d.grad_clip, metavar="NORM",
        help="max gradient norm, 0 for no clipping (default %(default)s)")
    add("--ema-decay", type=float, default=d.ema_decay, metavar="DECAY",
        help="EMA decay of the saved weights; 0.9999 for long runs (default %(default)s)")
    add("--prediction", default=d.prediction, choices=PREDICTIONS,
        help="network target: v_prediction keeps x̂₀ well conditioned at the end of the schedule (the "
             "full-depth round trip); epsilon is the paper's (default %(default)s)")
    add("--loss-weighting", default=d.loss_weighting, choices=LOSS_WEIGHTINGS,
        help="uniform MSE on the target, or min_snr (x₀ error weighted by min(SNR, gamma)) (default %(default)s)")
    add("--min-snr-gamma", type=float, default=d.min_snr_gamma, metavar="G",
        help="gamma of --loss-weighting min_snr (default %(default)s)")
    add("--flip", default=d.flip, choices=FLIP_CHOICES,
        help="mirroring augmentation: vertical swaps the hemispheres; horizontal would swap front and back of "
             "the canonical head (default %(default)s)")
    add_checkpoint_options(add, d, "model")
    add("--sample-steps", type=int, default=d.sample_steps, metavar="N",
        help="DDIM steps of the sample grids (default %(default)s)")
    add("--num-samples", type=int, default=d.num_samples, metavar="N",
        help="images per sample grid, 0 for none (default %(default)s)")
    add("--bf16", default=d.bf16, choices=BF16_CHOICES,
        help="bf16 autocast, CUDA only; auto = on where the GPU supports it (default %(default)s)")
    add_run_options(add, d, DEVICE_CHOICES, INTENSITY_CHOICES)
    parser.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):
    from ..diffusion.train_config import TrainConfig
    from .common import shared_option_values

    return TrainConfig(
        domain=args.domain, data_dir=args.data, out_dir=args.out, preset=args.preset, image_size=args.size,
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
        ema_decay=args.ema_decay, prediction=args.prediction, loss_weighting=args.loss_weighting,
        min_snr_gamma=args.min_snr_gamma, flip=args.flip, warmup_steps=args.warmup,
        lr_schedule=args.lr_schedule, min_lr=args.min_lr, init_from=args.init_from, grad_clip=args.grad_clip,
        sample_steps=args.sample_steps, num_samples=args.num_samples, bf16=args.bf16, **shared_option_values(args),
    )


def run(args: argparse.Namespace) -> int:
    from ..diffusion.distributed import detect
    from ..diffusion.training import train
    from .common import tqdm_progress

    config = config_from_args(args)
    with tqdm_progress(f"train {config.domain}", enabled=detect().is_main) as progress:
        result = train(config, progress)
    if result.is_main:
        new = result.steps_done - result.start_step
        resumed = f", resumed at {result.start_step}" if result.start_step else ""
        loss = f"{result.final_loss:.4f}" if result.final_loss is not None else "n/a"
        print(f"model: {result.card_path} (weights {result.card_path.with_suffix('.safetensors').name})")
        print(f"steps: {result.steps_done} ({new} in this run{resumed}), "
              f"{result.world_size} process(es) on {result.device}")
        print(f"time: {result.duration_s:.1f} s in total, final loss {loss}")
    return 0
