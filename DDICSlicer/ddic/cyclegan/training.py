"""Training the CycleGAN baseline (US ↔ MRI, unpaired): the loop, its randomness and its files.

One step is the reference's ``optimize_parameters``: with the discriminators frozen, the generators
G (US → MRI) and F (MRI → US) minimise LSGAN + λ·(cycle L1 both ways) + 0.5·λ·(identity L1 both ways);
then each discriminator minimises ½·(MSE(D(real), 1) + MSE(D(pooled fake), 0)), the fakes drawn through
an image pool. Two Adam optimizers (generators, discriminators); the lr is constant for the first
half of the steps and then decays linearly towards 0 (:func:`lr_factor`).

Reproducibility as in the diffusion trainer (and with its helpers): step k's randomness (flips, crops,
pool decisions) comes from a generator seeded with (seed, k), each domain's data order from per-epoch
permutations seeded with (seed, domain, epoch), and the image pools are part of the checkpoint, so a
resumed run continues bit-identically on the CPU.

Files in ``out_dir``: ``generator_us2mri.safetensors`` + ``.json`` (the US → MRI generator and its card,
rewritten at every checkpoint), ``cyclegan_config.json``, ``checkpoint/`` (all four networks, both
optimizers, both pools), ``loss.csv`` and ``samples/step_NNNNNN.png`` (rows: US | G(US) | F(G(US)) |
MRI | F(MRI) | G(F(MRI))).
"""

from __future__ import annotations

import csv
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..diffusion.dataset import TrainingData, load_training_images
from ..diffusion.distributed import DistInfo, training_device
from ..diffusion.train_outputs import LossLog, hardware_description, resume_record
from ..diffusion.training import EpochSampler, StepLoop, derive_seed
from ..errors import DDICInputError, DDICModelError
from ..geometry.canonical import spacing_for_size
from ..io.atomic import write_text_atomic
from ..io.images import write_png
from ..io.intensity import Normalisation
from ..progress import ProgressCallback, resolve
from . import checkpoint as ckpt
from .config import CycleGANConfig
from .model import CycleGANCard, save_generator
from .networks import (
    build_discriminator,
    build_generator,
    discriminator_config,
    generator_config,
    init_weights,
)
from .pool import ImagePool
from .reference import ADAM_BETA2

__all__ = ["CycleGANConfig", "CycleGANNets", "CycleGANResult", "lr_factor", "train_cyclegan"]

GENERATOR_NAME = "generator_us2mri"
CONFIG_NAME = "cyclegan_config.json"
LOSS_NAME = "loss.csv"
SAMPLES_DIR = "samples"
LOSS_TERMS = ("loss_g", "gan_us2mri", "gan_mri2us", "cycle_us", "cycle_mri", "identity_us2mri",
              "identity_mri2us", "loss_d_mri", "loss_d_us")
_OPTIMIZERS = {"optim_g": "g_", "optim_d": "d_"}  # optimizer name → prefix of its parameters in CycleGANNets

# Independent random streams, mixed into every derived seed so that they never overlap.
_STREAM_INIT, _STREAM_STEP, _STREAM_EPOCH_US, _STREAM_EPOCH_MRI = range(4)


class CycleGANNets(nn.Module):
    """The four networks under one module, so that their parameters have stable, readable names."""

    def __init__(self, generator: dict, discriminator: dict) -> None:
        super().__init__()
        self.g_us2mri = build_generator(generator)
        self.g_mri2us = build_generator(generator)
        self.d_mri = build_discriminator(discriminator)
        self.d_us = build_discriminator(discriminator)

    def parameter_names(self, prefix: str) -> list[str]:
        return [name for name, _ in self.named_parameters() if name.startswith(prefix)]

    def parameters_of(self, prefix: str) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if name.startswith(prefix)]


@dataclass
class CycleGANResult:
    out_dir: Path
    card_path: Path
    start_step: int
    steps_done: int
    total_steps: int
    duration_s: float
    final_losses: dict | None
    device: str


def lr_factor(step: int, total_steps: int, decay_steps: int) -> float:
    """The lr multiplier of (0-based) step ``step``: the reference's ``linear`` policy counted in steps.

    1 for the first ``total − decay`` steps, then 1 − j/(decay + 1) for the j-th decay step (j = 1 …
    decay), so the last step runs at 1/(decay + 1) of the lr and the next one would run at 0.
    """
    return 1.0 - max(0, step + 1 - (total_steps - decay_steps)) / float(decay_steps + 1)


class CycleGANLossLog(LossLog):
    """``loss.csv``: step, the nine loss terms, lr, elapsed_s (resume handling from the diffusion log)."""

    HEADER = ("step",) + LOSS_TERMS + ("lr", "elapsed_s")

    def append(self, rows: list[tuple]) -> None:
        with open(self.path, "a", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerows((step, *(f"{v:.6g}" for v in losses), f"{lr:.6g}", f"{elapsed:.3f}")
                             for step, losses, lr, elapsed in rows)


def train_cyclegan(config: CycleGANConfig, progress: ProgressCallback | None = None) -> CycleGANResult:
    """Train (or resume) the CycleGAN baseline as ``config`` says."""
    config.validate()
    return _Run(config, resolve(progress)).execute()


def _augment(images: torch.Tensor, config: CycleGANConfig, generator: torch.Generator) -> torch.Tensor:
    """The reference's resize-and-random-crop (only with ``load_size``) and horizontal flip (p = ½)."""
    size, batch = config.image_size, images.shape[0]
    if config.load_size is not None and config.load_size > size:
        load = config.load_size
        images = F.interpolate(images, size=(load, load), mode="bilinear", align_corners=False)
        offsets = torch.randint(0, load - size + 1, (batch, 2), generator=generator).tolist()
        images = torch.stack([img[:, y:y + size, x:x + size] for img, (y, x) in zip(images, offsets)])
    if config.flip:
        flip = (torch.rand(batch, generator=generator) < 0.5).to(images.device)
        images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
    return images


def _lsgan(prediction: torch.Tensor, real: bool) -> torch.Tensor:
    target = torch.ones_like(prediction) if real else torch.zeros_like(prediction)
    return F.mse_loss(prediction, target)


class _Run(StepLoop):
    """One invocation of :func:`train_cyclegan`: set-up, the step loop (shared with the diffusion trainer)
    and the outputs."""

    def __init__(self, config: CycleGANConfig, progress: ProgressCallback) -> None:
        self.config = config
        self.progress = progress
        self.out = Path(config.out_dir)
        self.started = time.monotonic()
        self.elapsed_before = 0.0
        self.resumed_at: list[int] = []
        self.pending: list[tuple[int, torch.Tensor, float, float]] = []
        self.last_losses: dict | None = None

    # -- set-up ------------------------------------------------------------------------------------

    def _check_out_dir(self) -> dict | None:
        """The checkpoint record to resume from, or None for a fresh run; never overwrites a run."""
        record = resume_record(self.out, self.config.resume, ckpt.read_record, GENERATOR_NAME)
        if record is not None:
            self.config.check_resume(record.get("config", {}), str(self.out))
        return record

    def _load_data(self, record: dict | None) -> None:
        config = self.config
        self.progress(int(record["step"]) if record else 0, 0, "loading data")
        self.us = load_training_images(config.us_dir, config.image_size, config.intensity)
        self.mri = load_training_images(config.mri_dir, config.image_size, config.intensity)
        if record is not None:
            for name, data in (("us", self.us), ("mri", self.mri)):
                previous = record.get("normalisation", {}).get(name, {}).get("kind")
                if previous and previous != data.normalisation.kind:
                    raise DDICInputError(
                        f"Cannot resume {self.out}: the checkpoint normalised the {name.upper()} images with "
                        f"{previous!r}, this data gives {data.normalisation.kind!r}. Pass --intensity {previous}."
                    )
        self.total = config.total_steps(len(self.us), len(self.mri))
        self.decay = self.total // 2 if config.decay_steps is None else min(config.decay_steps, self.total)
        self.stop = self.total if config.stop_after is None else min(config.stop_after, self.total)

    def _build(self, record: dict | None) -> None:
        config = self.config
        self.device = training_device(config.device, DistInfo())
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.g_config = generator_config(config.image_size, config.generator_filters, config.residual_blocks)
        self.d_config = discriminator_config(config.image_size, config.discriminator_filters,
                                             config.discriminator_layers)
        torch.manual_seed(derive_seed(config.seed, _STREAM_INIT))
        self.nets = init_weights(CycleGANNets(self.g_config, self.d_config), config.init_std).to(self.device)
        betas = (config.beta1, ADAM_BETA2)
        self.optimizers = {name: torch.optim.Adam(self.nets.parameters_of(prefix), lr=config.lr, betas=betas)
                           for name, prefix in _OPTIMIZERS.items()}
        self.names = {name: self.nets.parameter_names(prefix) for name, prefix in _OPTIMIZERS.items()}
        self.pools = {"fake_mri": ImagePool(config.pool_size), "fake_us": ImagePool(config.pool_size)}
        self.start_step = 0
        if record is not None:
            state = ckpt.load_state(self.out, self.names)
            try:
                self.nets.load_state_dict(state.nets, strict=True)
                for name, optimizer in self.optimizers.items():
                    saved = state.optimizers[name]
                    for group, current in zip(saved["param_groups"], optimizer.param_groups):
                        group.update({k: current[k] for k in ("foreach", "fused", "capturable", "differentiable")
                                      if k in current})
                    optimizer.load_state_dict(saved)
                for name, pool in self.pools.items():
                    pool.load_state(state.pools.get(name), self.device)
            except (RuntimeError, ValueError, KeyError) as exc:
                raise DDICModelError(f"The checkpoint in {self.out} does not fit these networks ({exc}).") from exc
            self._resume_clock(record, state.step)
            self.last_losses = record.get("last_losses")
        self.images = {"us": self.us.images.to(self.device), "mri": self.mri.images.to(self.device)}
        self.samplers = {
            "us": EpochSampler(len(self.us), config.batch_size, derive_seed(config.seed, _STREAM_EPOCH_US), DistInfo()),
            "mri": EpochSampler(len(self.mri), config.batch_size, derive_seed(config.seed, _STREAM_EPOCH_MRI),
                                DistInfo()),
        }

    # -- the loop ----------------------------------------------------------------------------------

    def _batch(self, domain: str, step: int, generator: torch.Generator) -> torch.Tensor:
        indices = self.samplers[domain].indices(step).to(self.device)
        return _augment(self.images[domain].index_select(0, indices), self.config, generator)

    def _step(self, step: int) -> None:
        config, nets = self.config, self.nets
        generator = torch.Generator().manual_seed(derive_seed(config.seed, _STREAM_STEP, step))
        real_us = self._batch("us", step, generator)
        real_mri = self._batch("mri", step, generator)
        lr = config.lr * lr_factor(step, self.total, self.decay)
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = lr
        lam, lam_idt = config.lambda_cycle, config.lambda_cycle * config.lambda_identity

        # generators, discriminators frozen
        nets.d_mri.requires_grad_(False)
        nets.d_us.requires_grad_(False)
        fake_mri = nets.g_us2mri(real_us)
        rec_us = nets.g_mri2us(fake_mri)
        fake_us = nets.g_mri2us(real_mri)
        rec_mri = nets.g_us2mri(fake_us)
        zero = real_us.new_zeros(())
        idt_g = F.l1_loss(nets.g_us2mri(real_mri), real_mri) * lam_idt if lam_idt > 0 else zero
        idt_f = F.l1_loss(nets.g_mri2us(real_us), real_us) * lam_idt if lam_idt > 0 else zero
        gan_g = _lsgan(nets.d_mri(fake_mri), True)
        gan_f = _lsgan(nets.d_us(fake_us), True)
        cycle_us = F.l1_loss(rec_us, real_us) * lam
        cycle_mri = F.l1_loss(rec_mri, real_mri) * lam
        loss_g = gan_g + gan_f + cycle_us + cycle_mri + idt_g + idt_f
        self.optimizers["optim_g"].zero_grad(set_to_none=True)
        loss_g.backward()
        self.optimizers["optim_g"].step()

        # discriminators, on pooled fakes
        nets.d_mri.requires_grad_(True)
        nets.d_us.requires_grad_(True)
        self.optimizers["optim_d"].zero_grad(set_to_none=True)
        pooled_mri = self.pools["fake_mri"].query(fake_mri, generator)
        loss_d_mri = 0.5 * (_lsgan(nets.d_mri(real_mri), True) + _lsgan(nets.d_mri(pooled_mri), False))
        loss_d_mri.backward()
        pooled_us = self.pools["fake_us"].query(fake_us, generator)
        loss_d_us = 0.5 * (_lsgan(nets.d_us(real_us), True) + _lsgan(nets.d_us(pooled_us), False))
        loss_d_us.backward()
        self.optimizers["optim_d"].step()

        terms = torch.stack([loss_g, gan_g, gan_f, cycle_us, cycle_mri, idt_g, idt_f, loss_d_mri, loss_d_us])
        self.pending.append((step + 1, terms.detach(), lr, self.elapsed()))

    def _flush_losses(self) -> None:
        if not self.pending:
            return
        values = torch.stack([p[1] for p in self.pending]).float().cpu().tolist()
        self.loss_log.append([(s, v, lr, el) for (s, _, lr, el), v in zip(self.pending, values)])
        self.last_losses = dict(zip(LOSS_TERMS, values[-1]))
        self.pending = []

    # -- outputs -----------------------------------------------------------------------------------

    def _write_checkpoint(self, step_done: int) -> None:
        elapsed = self.elapsed()
        record = {"config": self.config.to_dict(), "total_steps": self.total, "decay_steps": self.decay,
                  "elapsed_s": elapsed, "last_losses": self.last_losses, "resumed_at_steps": self.resumed_at,
                  "normalisation": {"us": self.us.normalisation.to_dict(), "mri": self.mri.normalisation.to_dict()},
                  "data": {"us": self.us.summary, "mri": self.mri.summary},
                  "networks": {"generator": self.g_config, "discriminator": self.d_config}}
        optimizers = {name: (opt, self.names[name]) for name, opt in self.optimizers.items()}
        pools = {name: pool.state() for name, pool in self.pools.items()}
        ckpt.save_state(self.out, step_done, self.nets, optimizers, pools, record)
        self.card_path = self._write_model(step_done, elapsed)

    def _write_model(self, step_done: int, elapsed: float) -> Path:
        card = build_card(self.config, self.us, self.mri, self.g_config, self.d_config, steps_done=step_done,
                          total_steps=self.total, decay_steps=self.decay, device=self.device, duration_s=elapsed,
                          final_losses=self.last_losses, resumed_at=self.resumed_at)
        return save_generator(self.nets.g_us2mri, card, self.out / f"{GENERATOR_NAME}.safetensors")

    @torch.no_grad()
    def _write_samples(self, step_done: int) -> None:
        n = min(self.config.num_samples, len(self.us), len(self.mri))
        us, mri = self.images["us"][:n], self.images["mri"][:n]
        fake_mri, fake_us = self.nets.g_us2mri(us), self.nets.g_mri2us(mri)
        tiles = [us, fake_mri, self.nets.g_mri2us(fake_mri), mri, fake_us, self.nets.g_us2mri(fake_us)]
        rows = torch.cat(tiles, dim=-1)[:, 0]  # (n, S, 6·S)
        grid = Normalisation.to_display(torch.cat(list(rows), dim=0).float().cpu().numpy())
        write_png(grid, self.out / SAMPLES_DIR / f"step_{step_done:06d}.png")

    def _save(self, step_done: int, checkpoint: bool, sample: bool) -> None:
        self._flush_losses()
        if checkpoint:
            self._write_checkpoint(step_done)
        if sample:
            self.progress(step_done, self.total, "sample grid")
            self._write_samples(step_done)

    def _message(self) -> str:
        if not self.last_losses:
            return "training"
        d = 0.5 * (self.last_losses["loss_d_mri"] + self.last_losses["loss_d_us"])
        return f"G {self.last_losses['loss_g']:.3f} D {d:.3f}"

    def execute(self) -> CycleGANResult:
        config = self.config
        record = self._check_out_dir()
        self._load_data(record)
        self._build(record)
        self.out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.out / CONFIG_NAME, json.dumps(config.to_dict(), indent=2) + "\n")
        self.loss_log = CycleGANLossLog(self.out / LOSS_NAME)
        self.loss_log.start(self.start_step if record is not None else None)
        self.card_path = self.out / f"{GENERATOR_NAME}.json"
        if self.start_step >= self.stop and not self.card_path.exists():
            self._write_model(self.start_step, self.elapsed_before)
        self._run_steps(self.start_step, self.stop, self.total)
        return CycleGANResult(out_dir=self.out, card_path=self.card_path, start_step=self.start_step,
                              steps_done=max(self.start_step, self.stop), total_steps=self.total,
                              duration_s=self.elapsed(), final_losses=self.last_losses, device=str(self.device))


def build_card(config: CycleGANConfig, us: TrainingData, mri: TrainingData, g_config: dict, d_config: dict, *,
               steps_done: int, total_steps: int, decay_steps: int, device: torch.device, duration_s: float,
               final_losses: dict | None, resumed_at: list[int]) -> CycleGANCard:
    spacing = spacing_for_size(config.image_size)
    description = (
        f"CycleGAN baseline generator, ultrasound → MRI (ResNet, {g_config['blocks']} residual blocks, "
        f"{config.image_size}×{config.image_size} px at {spacing:.3f} mm/px), trained unpaired with "
        f"`ddic train-cyclegan` for {steps_done} of {total_steps} steps on {us.summary['count']} US and "
        f"{mri.summary['count']} MRI canonical frames."
    )
    training = {
        "data": {"us": us.summary, "mri": mri.summary},
        "steps": steps_done,
        "steps_planned": total_steps,
        "decay_steps": decay_steps,
        "batch_size": config.batch_size,
        "optimizer": f"Adam, lr {config.lr}, betas ({config.beta1}, {ADAM_BETA2}); two optimizers (G, D)",
        "lr_policy": "constant, then linear decay towards 0 over decay_steps (reference 'linear')",
        "gan_loss": "LSGAN (MSE)",
        "lambda_cycle": config.lambda_cycle,
        "lambda_identity": config.lambda_identity,
        "pool_size": config.pool_size,
        "init": f"normal(0, {config.init_std})",
        "augmentation": ("horizontal flip, p = 0.5" if config.flip else "none")
                        + (f"; resize to {config.load_size} and random crop" if config.load_size else ""),
        "discriminator": d_config,
        "seed": config.seed,
        "device": device.type,
        "hardware": hardware_description(device, 1),
        "duration_s": round(duration_s, 3),
        "final_losses": final_losses,
        "resumed_at_steps": resumed_at,
        "command": config.command_line(),
        "argv": list(sys.argv),
        "torch_version": torch.__version__,
        "reference": "junyanz/pytorch-CycleGAN-and-pix2pix, cycle_gan model defaults",
    }
    return CycleGANCard(network=g_config, image_size=config.image_size, pixel_spacing_mm=spacing,
                        normalisation=us.normalisation.to_dict(), target_normalisation=mri.normalisation.to_dict(),
                        training=training, description=description)

