"""The CycleGAN baseline behind the same frame path as DDIC and DDIB.

:class:`CycleGANTranslator` has the interface :func:`ddic.translate.frames.translate_frames` and the CLI
use on :class:`ddic.translate.engine.Translator` — ``image_size``, ``device``, ``us_model.normalisation``,
``steps_per_image_batch`` and ``translate(images, progress)`` → batches with ``pseudo_mri`` — so frames
get the same head placement (canonical transform, skull mask), intensity normalisation and mapping back
onto their own grid; only the network in the middle differs: one generator call per batch.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch

from ..cyclegan.model import LoadedCycleGAN
from ..errors import DDICInputError
from ..io.images import Frame
from ..progress import ProgressCallback, resolve
from .device import configure_backends, select_device, use_bf16
from .engine import BatchResult
from .frames import FrameResult, translate_frames
from .options import TranslateOptions
from .placement import PlacementOptions


class CycleGANTranslator:
    """A loaded US → MRI generator on one device, translating batches of model-grid images."""

    def __init__(self, model: LoadedCycleGAN, options: TranslateOptions) -> None:
        if options.method != "cyclegan":
            raise DDICInputError(f"CycleGANTranslator translates with method 'cyclegan', not {options.method!r}.")
        self.options = options
        self.model = model
        self.us_model = model  # frames are normalised as the generator's US training data (card.normalisation)
        self.image_size = model.image_size
        self.device = select_device(options.device)
        configure_backends(self.device)
        self.bf16 = use_bf16(options.precision, self.device)
        self.generator = model.generator.to(self.device)

    @property
    def steps_per_image_batch(self) -> int:
        return 1

    @torch.no_grad()
    def translate(self, images: np.ndarray, progress: ProgressCallback | None = None,
                  label: str = "translating") -> list[BatchResult]:
        """Translate (B, S, S) float32 images in [−1, 1], in batches of ``options.batch_size``."""
        report = resolve(progress)
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 3 or images.shape[1:] != (self.image_size, self.image_size):
            raise ValueError(f"expected (B, {self.image_size}, {self.image_size}) images, got {images.shape}")
        batch = self.options.batch_size
        chunks = [images[i:i + batch] for i in range(0, len(images), batch)]
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if self.bf16 else nullcontext()
        results = []
        for done, chunk in enumerate(chunks, start=1):
            source = torch.from_numpy(chunk).unsqueeze(1).to(self.device)
            with autocast:
                output = self.generator(source)
            results.append(BatchResult(pseudo_mri=output.squeeze(1).float().clamp(-1, 1).cpu().numpy()))
            report(done, len(chunks), label)
        return results


def translate_cyclegan(frames: list[Frame], model: LoadedCycleGAN, options: TranslateOptions | None = None,
                       progress: ProgressCallback | None = None,
                       placement: PlacementOptions | None = None) -> list[FrameResult]:
    """The CycleGAN twin of :func:`ddic.translate.frames.translate`: frames + generator → pseudo-MRI frames."""
    options = options or TranslateOptions(method="cyclegan")
    return translate_frames(frames, CycleGANTranslator(model, options), progress, placement)
