"""The files a training run leaves in its output folder, apart from the resume state (``checkpoint.py``).

``model.safetensors`` + ``model.json`` (EMA weights and their model card), ``loss.csv``,
``samples/step_NNNNNN.png`` and ``train_config.json`` — and the rule that a run never overwrites another
run's outputs unless it is asked to resume that run.
"""

from __future__ import annotations

import csv
import io
import math
import platform
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..errors import DDICInputError
from ..geometry.canonical import spacing_for_size
from ..io.atomic import write_text_atomic
from ..io.modelfile import DOMAIN_NAMES
from .modelfile import ModelCard
from . import checkpoint as ckpt
from .dataset import TrainingData
from .schedule import Schedule
from .train_config import RESUME_FIXED_FIELDS, TrainConfig

MODEL_NAME = "model"
CONFIG_NAME = "train_config.json"
LOSS_NAME = "loss.csv"
SAMPLES_DIR = "samples"
_OPTION_NAMES = {"image_size": "--size"}


def existing_run_files(out_dir: Path, model_name: str = MODEL_NAME) -> list[str]:
    """The outputs of an earlier run in ``out_dir`` that a new run would overwrite."""
    found = [f"{ckpt.CHECKPOINT_DIR}/"] if ckpt.has_checkpoint(out_dir) else []
    found += [name for name in (f"{model_name}.safetensors", f"{model_name}.json", LOSS_NAME)
              if (out_dir / name).exists()]
    return found


def resume_record(out: Path, resume: bool, read_record: Callable[[Path], dict],
                  model_name: str = MODEL_NAME) -> dict | None:
    """The checkpoint record to resume from (read by ``read_record``), or None for a fresh run; refuses to
    overwrite a run. Shared with the CycleGAN trainer, whose model is ``model_name``."""
    if out.exists() and not out.is_dir():
        raise DDICInputError(f"--out {out} is a file; give a folder for the model and its training outputs.")
    existing = existing_run_files(out, model_name)
    if not resume:
        if existing:
            raise DDICInputError(
                f"{out} already holds a training run ({', '.join(existing)}). Add --resume to continue it, "
                "or give another --out folder; DDIC never overwrites a run."
            )
        return None
    if not ckpt.has_checkpoint(out):
        if (out / f"{model_name}.safetensors").exists():
            raise DDICInputError(
                f"--resume: {out} holds a model but no checkpoint/ to continue from, so training would "
                "start again and overwrite it. Give another --out folder."
            )
        return None  # nothing to resume yet: start fresh (lets job scripts always pass --resume)
    return read_record(out)


def check_out_dir(config: TrainConfig) -> dict | None:
    """The checkpoint record to resume from, or None for a fresh run; refuses to overwrite a run."""
    out = Path(config.out_dir)
    record = resume_record(out, config.resume, ckpt.read_train_record)
    if record is None:
        return None
    previous = record.get("config", {})
    changed = [name for name in RESUME_FIXED_FIELDS if name in previous and previous[name] != getattr(config, name)]
    if changed:
        was = ", ".join(f"{name} = {previous[name]!r}" for name in changed)
        now = ", ".join(f"{name} = {getattr(config, name)!r}" for name in changed)
        options = " ".join(f"{_OPTION_NAMES.get(name, '--' + name)} {previous[name]}" for name in changed)
        raise DDICInputError(
            f"Cannot resume {out}: its checkpoint was trained with {was}, but this run asks for {now}. "
            f"Resume with {options}, or start a new run in another --out folder."
        )
    return record


class LossLog:
    """``loss.csv``: one row per step (step, loss, lr, elapsed_s), appended as training goes."""

    HEADER = ("step", "loss", "lr", "elapsed_s")

    def __init__(self, path: Path) -> None:
        self.path = path

    def start(self, resume_step: int | None) -> None:
        """Fresh run: header only. Resume: keep the rows up to the checkpoint, drop the later ones (they
        were trained again from the checkpoint, so they would otherwise appear twice)."""
        rows = []
        if resume_step is not None and self.path.is_file():
            with open(self.path, newline="", encoding="utf-8") as handle:
                rows = [r for r in csv.reader(handle) if r and r[0].isdigit() and int(r[0]) <= resume_step]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.HEADER)
        writer.writerows(rows)
        write_text_atomic(self.path, buffer.getvalue())

    def append(self, rows: list[tuple]) -> None:
        with open(self.path, "a", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerows((step, f"{loss:.6g}", f"{lr:.6g}", f"{elapsed:.3f}") for step, loss, lr, elapsed in rows)


def hardware_description(device: torch.device, world_size: int) -> str:
    """A human-readable record of what trained the model (GPU name or CPU model and threads)."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        text = f"{props.name} ({props.total_memory / 2**30:.0f} GiB)"
    else:
        threads = torch.get_num_threads()
        text = f"CPU {_cpu_model()} ({threads} thread{'s' if threads != 1 else ''})"
    return f"{world_size} × {text}" if world_size > 1 else text


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def tile_grid(images: np.ndarray) -> np.ndarray:
    """(n, S, S) → one (rows·S, cols·S) mosaic, row by row, as square as possible; empty cells black."""
    n, size = images.shape[0], images.shape[-1]
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.zeros((rows * size, cols * size), dtype=images.dtype)
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        grid[r * size:(r + 1) * size, c * size:(c + 1) * size] = image
    return grid


def build_card(config: TrainConfig, data: TrainingData, network: dict, *, steps_done: int, world_size: int,
               device: torch.device, bf16: bool, duration_s: float, final_loss: float | None,
               resumed_at: list[int], skipped_steps: list[int] | None = None) -> ModelCard:
    summary = data.summary
    domain_name = DOMAIN_NAMES[config.domain]
    spacing = spacing_for_size(config.image_size)
    description = (
        f"{domain_name} {'v' if config.prediction == 'v_prediction' else 'ε'}-prediction diffusion model ({config.preset} UNet, {config.image_size}×"
        f"{config.image_size} px at {spacing:.3f} mm/px) trained with `ddic train` for {steps_done} steps on "
        f"{summary['count']} canonical frames from {Path(summary['folder']).name}/ "
        f"({summary['intensity']} intensity normalisation); EMA weights."
    )
    training = {
        "data": summary,
        "image_count": summary["count"],
        "steps": steps_done,
        "steps_planned": config.steps,
        "batch_size": config.batch_size,
        "global_batch_size": config.batch_size * world_size,
        "world_size": world_size,
        "lr": config.lr,
        "warmup_steps": config.warmup_steps,
        "lr_schedule": config.lr_schedule if config.lr_schedule == "constant"
        else f"cosine to {config.min_lr:g} at step {config.steps}",
        "initialised_from": config.init_from,
        "weight_decay": config.weight_decay,
        "grad_clip": config.grad_clip,
        "optimizer": "AdamW",
        "ema_decay": config.ema_decay,
        "ema_warmup": "min(ema_decay, (1 + k) / (10 + k)) after k steps",
        "loss": (f"MSE on {config.prediction}, t uniform in [0, 999], "
                 + ("uniform weights" if config.loss_weighting == "uniform"
                    else f"min-SNR weights (gamma {config.min_snr_gamma:g})")),
        "augmentation": "none" if config.flip == "none" else f"{config.flip} flip, p = 0.5",
        "seed": config.seed,
        "device": device.type,
        "hardware": hardware_description(device, world_size),
        "bf16": bf16,
        "duration_s": round(duration_s, 3),
        "final_loss": final_loss,
        "resumed_at_steps": resumed_at,
        "skipped_updates": {"steps": list(skipped_steps or []),
                            "why": "non-finite gradient norm: the update was skipped, not applied"},
        "command": config.command_line(),
        "argv": list(sys.argv),
        "torch_version": torch.__version__,
        "diffusers_version": _diffusers_version(),
    }
    return ModelCard(domain=config.domain, preset=config.preset, network=network, image_size=config.image_size,
                     pixel_spacing_mm=spacing, schedule=Schedule(prediction=config.prediction).to_dict(),
                     normalisation=data.normalisation.to_dict(), training=training, description=description)


def _diffusers_version() -> str:
    import diffusers

    return diffusers.__version__
