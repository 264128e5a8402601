"""Translation on the model grid: encode (ForwardODE^US) → decode (BackwardODE^MRI, guided for DDIC).

:func:`translate_tensor` is the algorithm on a batch of model-grid images in [−1, 1]; :class:`Translator`
holds two loaded models on a device and feeds it batches of numpy arrays, reporting progress.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..diffusion.denoisers import UNetDenoiser
from ..diffusion.sampling import StepHook, ode_decode, ode_encode
from ..diffusion.schedule import Schedule
from ..errors import DDICModelError
from ..diffusion.modelfile import LoadedModel
from ..progress import ProgressCallback, resolve
from .device import configure_backends, select_device, use_bf16
from .guided_decode import DecodeTrace, guided_decode
from .options import METHODS, TranslateOptions
from .trust import head_round_trip_rmse, round_trip_threshold


def translate_tensor(source: torch.Tensor, us_model, mri_model, schedule: Schedule, options: TranslateOptions,
                     on_step: StepHook = None) -> tuple[torch.Tensor, DecodeTrace]:
    """Translate a (B, 1, S, S) batch of US images in [−1, 1]; returns pseudo-MRI in [−1, 1] and the trace.

    With ``options.round_trip_check`` the trace carries the US model's own decode of the latent (the trust
    number's reconstruction, :mod:`.trust`): free in DDIC's faithful mode, one more US decode otherwise.
    ``on_step`` is called after each ODE step (N encode, N decode, and N for an extra US decode).
    """
    grid = schedule.grid(options.steps)
    keep = options.method == "ddic" and options.mode in ("cached", "cheap")
    latent, trajectory = ode_encode(us_model, source, grid, options.solver, keep_trajectory=keep, on_step=on_step,
                                    terminal=options.terminal_step, clip=options.clip_decode)
    if options.method == "ddib":
        output = ode_decode(mri_model, latent, grid, options.solver, clip=options.clip_decode, on_step=on_step)
        trace = DecodeTrace(timesteps=[], correlation=torch.empty(0, source.shape[0]))
    else:
        output, trace = guided_decode(latent, us_model, mri_model, grid, options, us_trajectory=trajectory,
                                      on_step=on_step)
    if options.round_trip_check and trace.us_reconstruction is None:
        trace.us_reconstruction = ode_decode(us_model, latent, grid, options.solver, clip=options.clip_decode,
                                             on_step=on_step)
    return output, trace


@dataclass
class BatchResult:
    pseudo_mri: np.ndarray  # (B, S, S) float32 in [−1, 1]
    correlation: np.ndarray | None = None  # (levels, B) trace, None for DDIB
    timesteps: list[int] = field(default_factory=list)
    round_trip_rmse: np.ndarray | None = None  # (B,) the trust number (.trust), None when not measured


class Translator:
    """Two per-domain models on one device, ready to translate batches of model-grid images."""

    def __init__(self, us_model: LoadedModel, mri_model: LoadedModel, options: TranslateOptions) -> None:
        if options.method not in METHODS:
            raise DDICModelError(f"Method {options.method!r} does not use diffusion models; "
                                 "use ddic.translate.cyclegan.CycleGANTranslator for 'cyclegan'.")
        for model, domain in ((us_model, "us"), (mri_model, "mri")):
            if model.card.domain != domain:
                raise DDICModelError(
                    f"{model.card_path.name} is a {model.card.domain!r} model where a {domain!r} model is needed."
                )
        if us_model.card.image_size != mri_model.card.image_size:
            raise DDICModelError(
                f"The US model works at {us_model.card.image_size} px and the MRI model at "
                f"{mri_model.card.image_size} px; a translation needs two models of the same size."
            )
        self.options = options
        self.us_model = us_model
        self.mri_model = mri_model
        self.image_size = int(us_model.card.image_size)
        self.schedule = Schedule.from_dict(us_model.card.schedule)
        mri_schedule = Schedule.from_dict(mri_model.card.schedule)
        if (mri_schedule.name, mri_schedule.num_train_timesteps) != (self.schedule.name,
                                                                     self.schedule.num_train_timesteps):
            raise DDICModelError("The US and MRI models were trained with different noise schedules.")
        self.device = select_device(options.device)
        configure_backends(self.device)
        bf16 = use_bf16(options.precision, self.device)
        # each model keeps its own parameterisation (ε or v); the ODE needs only the shared ᾱ
        self.trust_threshold, self.trust_threshold_source = round_trip_threshold(
            us_model.card, options.solver, options.steps)
        self.us_denoiser = UNetDenoiser(us_model.unet, self.device, bf16=bf16, prediction=self.schedule.prediction)
        self.mri_denoiser = UNetDenoiser(mri_model.unet, self.device, bf16=bf16, prediction=mri_schedule.prediction)

    @property
    def steps_per_image_batch(self) -> int:
        o = self.options
        extra = o.round_trip_check and not (o.method == "ddic" and o.mode == "faithful")
        return (3 if extra else 2) * o.steps

    def translate(self, images: np.ndarray, progress: ProgressCallback | None = None,
                  label: str = "translating") -> list[BatchResult]:
        """Translate (B, S, S) float32 images in [−1, 1], in batches of ``options.batch_size``."""
        report = resolve(progress)
        images = np.asarray(images, dtype=np.float32)
        expected = (self.image_size, self.image_size)
        if images.ndim != 3 or images.shape[1:] != expected:
            raise ValueError(f"expected (B, {self.image_size}, {self.image_size}) images, got {images.shape}")
        batch = self.options.batch_size
        batches = [images[i:i + batch] for i in range(0, len(images), batch)]
        total = len(batches) * self.steps_per_image_batch
        done = 0

        def tick() -> None:
            nonlocal done
            done += 1
            report(done, total, label)

        results = []
        for chunk in batches:
            source = torch.from_numpy(chunk).unsqueeze(1).to(self.device)
            output, trace = translate_tensor(source, self.us_denoiser, self.mri_denoiser, self.schedule, self.options,
                                             on_step=tick)
            rmse = None
            if trace.us_reconstruction is not None:
                rmse = head_round_trip_rmse(source, trace.us_reconstruction).float().cpu().numpy()
            results.append(BatchResult(
                pseudo_mri=output.squeeze(1).float().cpu().numpy(),
                correlation=trace.correlation.numpy() if trace.timesteps else None,
                timesteps=trace.timesteps, round_trip_rmse=rmse,
            ))
        return results
