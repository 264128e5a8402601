"""Training one per-domain ε-prediction diffusion model (notes §9.2): the loop and its randomness.

The loop is the plain DDPM objective — x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε, t uniform in 0…T−1, MSE on ε —
with AdamW, gradient clipping, horizontal-flip augmentation, an EMA copy of the weights (what is saved
and sampled) and bf16 autocast on CUDA. One code path serves a CPU test run and a multi-GPU
``torchrun`` job (DistributedDataParallel; see :mod:`ddic.diffusion.distributed`).

Reproducibility is by construction: the randomness of step k on rank r (batch, flips, t, noise) comes
from a generator seeded with a hash of (seed, k, r), and the data order from per-epoch permutations
seeded with (seed, epoch). Nothing depends on how many steps ran before in this process, so resuming
from a checkpoint continues bit-identically on CPU.

Only rank 0 writes files: ``model.safetensors`` + ``model.json`` (EMA weights and card, rewritten at every
checkpoint so a usable model always exists), ``checkpoint/``, ``loss.csv``, ``samples/`` and
``train_config.json`` (see :mod:`.train_outputs`, :mod:`.checkpoint`; the config is :mod:`.train_config`).
"""

from __future__ import annotations

import copy
import json
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DDICInputError, DDICModelError
from ..io.atomic import write_text_atomic
from ..io.images import write_png
from ..io.intensity import Normalisation
from .modelfile import save_model
from ..progress import ProgressCallback, resolve
from . import checkpoint as ckpt
from . import distributed
from .dataset import load_training_images
from .denoisers import UNetDenoiser
from .prediction import loss_weight, training_target
from .networks import build_unet, unet_config
from .sampling import ode_decode
from .schedule import NUM_TRAIN_TIMESTEPS, Schedule
from .train_config import TrainConfig
from .train_outputs import (
    CONFIG_NAME,
    LOSS_NAME,
    MODEL_NAME,
    SAMPLES_DIR,
    LossLog,
    build_card,
    check_out_dir,
    tile_grid,
)

__all__ = ["TrainConfig", "TrainResult", "train"]

LOSS_FLUSH_EVERY = 10
"""Losses are gathered on the device and written every this many steps: a per-step ``.item()`` would
stall a GPU on every iteration."""

_OPTIMIZER_RUNTIME_KEYS = ("weight_decay", "fused", "foreach", "capturable", "differentiable")

# Independent random streams, mixed into every derived seed so that they never overlap.
_STREAM_INIT, _STREAM_STEP, _STREAM_EPOCH, _STREAM_SAMPLES, _STREAM_DROPOUT = range(5)


@dataclass
class TrainResult:
    """What a finished (or already complete) run reports back to the CLI."""

    out_dir: Path
    card_path: Path
    start_step: int
    steps_done: int
    duration_s: float
    final_loss: float | None
    world_size: int
    device: str
    is_main: bool


# ---------------------------------------------------------------------------------------------------
# Randomness


def derive_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed from (seed, keys…) through numpy's SeedSequence hash: nearby inputs give unrelated
    streams, and the result depends on nothing but its arguments (the basis of exact resume)."""
    state = np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


class EpochSampler:
    """Which images step k of rank r trains on: one shuffled pass over the data per epoch, shared by all
    ranks and split between them, so K processes see disjoint images as one large batch would."""

    def __init__(self, count: int, batch_size: int, seed: int, info: distributed.DistInfo) -> None:
        self.count, self.batch_size, self.seed, self.info = count, batch_size, seed, info
        self._perms: dict[int, torch.Tensor] = {}

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            if len(self._perms) > 4:
                self._perms.pop(min(self._perms))
            generator = torch.Generator().manual_seed(derive_seed(self.seed, _STREAM_EPOCH, epoch))
            self._perms[epoch] = torch.randperm(self.count, generator=generator)
        return self._perms[epoch]

    def indices(self, step: int) -> torch.Tensor:
        start = (step * self.info.world_size + self.info.rank) * self.batch_size
        positions = torch.arange(start, start + self.batch_size)
        epochs, offsets = positions // self.count, positions % self.count
        return torch.stack([self._permutation(int(e))[int(o)] for e, o in zip(epochs, offsets)])


# ---------------------------------------------------------------------------------------------------
# Small pieces of the loop


@torch.no_grad()
def update_ema(ema_params: list[torch.Tensor], params: list[torch.Tensor], decay: float) -> None:
    """ema ← decay·ema + (1 − decay)·param, for all tensors in one fused call."""
    torch._foreach_lerp_(ema_params, params, 1.0 - decay)


def ema_decay_at(step_done: int, ema_decay: float) -> float:
    """The EMA decay after ``step_done`` steps: min(decay, (1+k)/(10+k)).

    Without this warm-up a short run's EMA would still be mostly its random initialisation
    (0.999^2000 ≈ 14 %); with it the average forgets the first steps quickly and settles to ``ema_decay``.
    """
    return min(ema_decay, (1.0 + step_done) / (10.0 + step_done))


def learning_rate(step: int, config: TrainConfig) -> float:
    """The lr of ``step``: a linear warm-up over ``warmup_steps``, then constant, or (``lr_schedule`` "cosine")
    a half cosine from ``lr`` down to ``min_lr`` at ``steps``. The decay matters on long CPU runs: at a
    constant 1e-3 the 64-px v-prediction runs diverged after 3000–6700 steps (BENCHMARKS.md)."""
    if config.warmup_steps and step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.lr_schedule == "cosine":
        span = max(1, config.steps - config.warmup_steps)
        progress = min(1.0, (step - config.warmup_steps) / span)
        return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1.0 + math.cos(math.pi * progress))
    return config.lr


@torch.no_grad()
def sample_images(ema: torch.nn.Module, config: TrainConfig, device: torch.device, bf16: bool) -> np.ndarray:
    """``num_samples`` DDIM samples of the EMA model from fixed-seed noise, as (n, S, S) in 0…255.

    The noise is the same at every checkpoint, so successive grids show the model improving on the
    same starting points.
    """
    generator = torch.Generator().manual_seed(derive_seed(config.seed, _STREAM_SAMPLES))
    noise = torch.randn((config.num_samples, 1, config.image_size, config.image_size), generator=generator)
    model = UNetDenoiser(ema, device=device, bf16=bf16, prediction=config.prediction)  # freezes the EMA copy
    images = ode_decode(model, noise.to(device), Schedule().grid(config.sample_steps))
    return Normalisation.to_display(images[:, 0].float().cpu().numpy())


def resolve_bf16(setting: str, device: torch.device) -> bool:
    if device.type != "cuda":
        if setting == "on":
            raise DDICInputError("--bf16 on needs a CUDA GPU; on CPU training runs in float32 (use --bf16 auto).")
        return False
    return setting == "on" or (setting == "auto" and torch.cuda.is_bf16_supported())


# ---------------------------------------------------------------------------------------------------
# The run


def train(config: TrainConfig, progress: ProgressCallback | None = None) -> TrainResult:
    """Train (or resume) one model as ``config`` says; works alone and under ``torchrun``."""
    config.validate()
    info = distributed.detect()
    device = distributed.training_device(config.device, info)
    bf16 = resolve_bf16(config.bf16, device)
    distributed.init(info, device)
    try:
        return _Run(config, info, device, bf16, resolve(progress) if info.is_main else None).execute()
    finally:
        distributed.shutdown(info)


class StepLoop:
    """The step loop both trainers share (this one and :mod:`ddic.cyclegan.training`): after every step,
    write the gathered losses every :data:`LOSS_FLUSH_EVERY` steps, a checkpoint every ``checkpoint_every``
    steps and at the last, a sample grid every ``sample_interval`` steps and at the last (if any samples),
    and report progress.

    A subclass holds ``config`` (``checkpoint_every``, ``num_samples``, ``sample_interval``), ``progress``,
    ``pending`` (losses not yet written), ``started`` (``time.monotonic()`` at its start) and
    ``elapsed_before`` (training time of earlier invocations), and implements ``_step``, ``_flush_losses``,
    ``_save`` and ``_message``.
    """

    def elapsed(self) -> float:
        """Training time of the whole run so far, resumed invocations included."""
        return self.elapsed_before + time.monotonic() - self.started

    def _resume_clock(self, record: dict, step: int) -> None:
        """Continue the step count, training time and resume history of the checkpoint ``record``."""
        self.start_step = step
        self.elapsed_before = float(record.get("elapsed_s", 0.0))
        self.resumed_at = list(record.get("resumed_at_steps", [])) + [step]

    def _run_steps(self, start: int, stop: int, total: int) -> None:
        """Steps ``start`` … ``stop − 1`` of a run of ``total`` steps."""
        config = self.config
        self.progress(start, total, self._message())
        for step in range(start, stop):
            self._step(step)
            done = step + 1
            if len(self.pending) >= LOSS_FLUSH_EVERY:
                self._flush_losses()
            last = done == stop
            checkpoint = last or done % config.checkpoint_every == 0
            sample = config.num_samples > 0 and (last or done % config.sample_interval == 0)
            if checkpoint or sample:
                self._save(done, checkpoint, sample)
            self.progress(done, total, self._message())


class _Run(StepLoop):
    """One invocation of :func:`train`: set-up, the step loop and the checkpoints, on one process."""

    def __init__(self, config: TrainConfig, info: distributed.DistInfo, device: torch.device, bf16: bool,
                 progress: ProgressCallback | None) -> None:
        self.config, self.info, self.device, self.bf16 = config, info, device, bf16
        self.progress = progress or (lambda done, total, message: None)
        self.out = Path(config.out_dir)
        self.started = time.monotonic()
        self.elapsed_before = 0.0
        self.resumed_at: list[int] = []
        self.pending: list[tuple[int, torch.Tensor, float, float]] = []  # losses not yet written
        self.last_loss: float | None = None
        self.skipped_steps: list[int] = []  # updates skipped for a non-finite gradient

    # -- set-up ------------------------------------------------------------------------------------

    def _prepare(self) -> dict | None:
        """Checks and data loading, on every rank; all ranks stop together if any of them fails."""
        error, record = None, None
        try:
            record = check_out_dir(self.config)
            self.progress(int(record["step"]) if record else 0, self.config.steps, "loading data")
            self.data = load_training_images(self.config.data_dir, self.config.image_size, self.config.intensity)
            if record is not None:
                previous = record.get("normalisation", {}).get("kind")
                if previous and previous != self.data.normalisation.kind:
                    raise DDICInputError(
                        f"Cannot resume {self.out}: the checkpoint used {previous!r} intensity normalisation, "
                        f"this data gives {self.data.normalisation.kind!r}. Pass --intensity {previous}."
                    )
        except Exception as exc:  # noqa: BLE001 - re-raised below, after the other ranks know
            error = exc
        if not distributed.all_ok(error is None, self.info, self.device):
            raise error or DDICInputError("Another training process failed while preparing; see its message.")
        return record

    def _build(self, record: dict | None) -> None:
        config = self.config
        self.network = unet_config(config.preset, config.image_size)
        torch.manual_seed(derive_seed(config.seed, _STREAM_INIT))  # identical initial weights on every rank
        self.model = build_unet(self.network).to(self.device).train()
        self.ema = copy.deepcopy(self.model).requires_grad_(False)
        if self.device.type == "cuda":  # TF32 for whatever autocast leaves in float32
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        fused = {"fused": True} if self.device.type == "cuda" else {}
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr,
                                           weight_decay=config.weight_decay, **fused)
        self.start_step = 0
        if record is None and config.init_from:
            self._initialise_from(config.init_from)
        if record is not None:
            state = ckpt.load_train_state(self.out, self.model)
            # Hyper-parameters come from this run's config and implementation flags (fused, foreach, …) from
            # this device, not from the checkpoint: a CUDA checkpoint can be resumed on CPU and vice versa.
            for saved, current in zip(state.optimizer["param_groups"], self.optimizer.param_groups):
                saved.update({k: current[k] for k in _OPTIMIZER_RUNTIME_KEYS if k in current})
            try:
                self.model.load_state_dict(state.model, strict=True)
                self.ema.load_state_dict(state.ema, strict=True)
                self.optimizer.load_state_dict(state.optimizer)
            except (RuntimeError, ValueError, KeyError) as exc:
                raise DDICModelError(f"The checkpoint in {self.out} does not fit this network ({exc}).") from exc
            self._resume_clock(record, state.step)
            self.last_loss = record.get("last_loss")
            self.skipped_steps = [int(s) for s in record.get("skipped_steps", []) if int(s) <= state.step]
        self.ddp = self.model
        if self.info.is_distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(self.model, device_ids=ids)
        self.params = list(self.model.parameters())
        self.ema_params = list(self.ema.parameters())
        alpha_bar = torch.from_numpy(Schedule().alpha_bar)  # float64; square roots before the float32 cast
        self.alpha_bar = alpha_bar.float().to(self.device)
        self.sqrt_ab = alpha_bar.sqrt().float().to(self.device)
        self.sqrt_1mab = (1.0 - alpha_bar).sqrt().float().to(self.device)
        self.images = self.data.images.to(self.device)
        self.sampler = EpochSampler(len(self.data), config.batch_size, config.seed, self.info)
        self.generator = torch.Generator(device=self.device)

    def _initialise_from(self, path: str) -> None:
        """Start from the (EMA) weights of an earlier model of the same network (fine-tuning, or a run
        restarted with another schedule); the optimizer starts afresh."""
        from .modelfile import load_model

        source = load_model(path, expected_domain=self.config.domain, expected_image_size=self.config.image_size)
        if source.card.network != self.network:
            raise DDICInputError(f"--init-from {path}: its network ({source.card.preset}) differs from this run's "
                                 f"({self.config.preset}); initialise from a model of the same preset and size.")
        if source.card.schedule.get("prediction", "epsilon") != self.config.prediction:
            raise DDICInputError(f"--init-from {path} predicts {source.card.schedule.get('prediction')!r}, this run "
                                 f"{self.config.prediction!r}; they must agree.")
        state = {k: v.to(self.device) for k, v in source.unet.state_dict().items()}
        self.model.load_state_dict(state)
        self.ema.load_state_dict(state)

    def _start_outputs(self, record: dict | None) -> None:
        if not self.info.is_main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.out / CONFIG_NAME, json.dumps(self.config.to_dict(), indent=2) + "\n")
        self.loss_log = LossLog(self.out / LOSS_NAME)
        self.loss_log.start(self.start_step if record is not None else None)

    # -- the loop ----------------------------------------------------------------------------------

    def _step(self, step: int) -> torch.Tensor:
        """One optimizer step; its randomness depends only on (seed, step, rank)."""
        config, device = self.config, self.device
        self.generator.manual_seed(derive_seed(config.seed, _STREAM_STEP, step, self.info.rank))
        if self.network.get("dropout", 0.0) > 0:
            torch.manual_seed(derive_seed(config.seed, _STREAM_DROPOUT, step, self.info.rank))
        batch = config.batch_size
        x0 = self.images.index_select(0, self.sampler.indices(step).to(device))
        flip = torch.rand(batch, generator=self.generator, device=device) < 0.5
        if config.flip != "none":
            x0 = torch.where(flip.view(-1, 1, 1, 1), x0.flip(-2 if config.flip == "vertical" else -1), x0)
        t = torch.randint(0, NUM_TRAIN_TIMESTEPS, (batch,), generator=self.generator, device=device)
        noise = torch.randn(x0.shape, generator=self.generator, device=device)
        sqrt_ab, sqrt_1mab = self.sqrt_ab[t].view(-1, 1, 1, 1), self.sqrt_1mab[t].view(-1, 1, 1, 1)
        x_t = sqrt_ab * x0 + sqrt_1mab * noise
        target = training_target(x0, noise, sqrt_ab, sqrt_1mab, config.prediction)
        weight = loss_weight(self.alpha_bar[t], config.prediction, config.loss_weighting, config.min_snr_gamma)

        lr = learning_rate(step, config)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if self.bf16 else nullcontext()
        with autocast:
            prediction = self.ddp(x_t, t).sample
        per_sample = (prediction.float() - target).pow(2).flatten(1).mean(dim=1)
        loss = (weight * per_sample).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.params, config.grad_clip if config.grad_clip > 0 else math.inf)
        if not torch.isfinite(norm):
            # A rare inf/NaN gradient (seen once in 3000 CPU steps of a 64-px v-prediction run) would turn every
            # weight into NaN through AdamW; skip that update instead, as mixed-precision loss scalers do, and
            # count it in the model card.
            self.optimizer.zero_grad(set_to_none=True)
            self.skipped_steps.append(step + 1)
        else:
            self.optimizer.step()
        update_ema(self.ema_params, [p.detach() for p in self.params], ema_decay_at(step + 1, config.ema_decay))
        self.pending.append((step + 1, loss.detach(), lr, self.elapsed()))
        return loss

    def _flush_losses(self) -> None:
        """Average the pending losses over ranks (one collective) and append them to loss.csv."""
        if not self.pending:
            return
        losses = distributed.mean_across_ranks(torch.stack([p[1] for p in self.pending]).float(), self.info)
        values = losses.cpu().tolist()
        if self.info.is_main:
            self.loss_log.append([(s, v, lr, el) for (s, _, lr, el), v in zip(self.pending, values)])
        self.last_loss = values[-1]
        self.pending = []

    def _save(self, step_done: int, checkpoint: bool, sample: bool) -> None:
        """Rank 0 writes the checkpoint + model and/or a sample grid; every rank waits for it to succeed."""
        self._flush_losses()
        error = None
        if self.info.is_main:
            try:
                if checkpoint:
                    self._write_checkpoint(step_done)
                if sample:
                    self.progress(step_done, self.config.steps, "sampling preview")
                    grid = tile_grid(sample_images(self.ema, self.config, self.device, self.bf16))
                    write_png(grid, self.out / SAMPLES_DIR / f"step_{step_done:06d}.png")
            except Exception as exc:  # noqa: BLE001 - re-raised below, after the other ranks know
                error = exc
        if not distributed.all_ok(error is None, self.info, self.device):
            raise error or DDICInputError("Training stopped: rank 0 could not write its checkpoint or samples.")

    def _write_checkpoint(self, step_done: int) -> None:
        elapsed = self.elapsed()
        record = {"config": self.config.to_dict(), "elapsed_s": elapsed, "last_loss": self.last_loss,
                  "world_size": self.info.world_size, "normalisation": self.data.normalisation.to_dict(),
                  "data": self.data.summary, "resumed_at_steps": self.resumed_at,
                  "skipped_steps": self.skipped_steps}
        ckpt.save_train_state(self.out, step_done, self.model, self.ema, self.optimizer, record)
        self.card_path = self._write_model(step_done, elapsed)

    def _write_model(self, step_done: int, elapsed: float) -> Path:
        card = build_card(self.config, self.data, self.network, steps_done=step_done,
                          world_size=self.info.world_size, device=self.device, bf16=self.bf16,
                          duration_s=elapsed, final_loss=self.last_loss, resumed_at=self.resumed_at,
                          skipped_steps=self.skipped_steps)
        return save_model(self.ema, card, self.out / f"{MODEL_NAME}.safetensors")

    def _message(self) -> str:
        return f"loss {self.last_loss:.4f}" if self.last_loss is not None else "training"

    def execute(self) -> TrainResult:
        record = self._prepare()
        self._build(record)
        distributed.barrier(self.info)  # every rank has read the old outputs before rank 0 rewrites them
        self._start_outputs(record)
        config = self.config
        self.card_path = self.out / f"{MODEL_NAME}.json"
        if self.start_step >= config.steps and self.info.is_main and not self.card_path.exists():
            self._write_model(self.start_step, self.elapsed_before)
        self._run_steps(self.start_step, config.steps, config.steps)
        return TrainResult(out_dir=self.out, card_path=self.card_path, start_step=self.start_step,
                           steps_done=max(self.start_step, config.steps), duration_s=self.elapsed(),
                           final_loss=self.last_loss, world_size=self.info.world_size,
                           device=str(self.device), is_main=self.info.is_main)
