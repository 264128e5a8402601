"""Frames in, pseudo-MRI frames out: find the head → canonical grid → translate → back to the frame.

This is the whole data path for one set of frames, shared by the CLI and the worker.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..io.images import Frame
from ..io.intensity import Normalisation
from ..progress import ProgressCallback
from .engine import Translator
from .placement import PlacementOptions, place_frame
from .trust import is_trusted


@dataclass
class FrameResult:
    frame: Frame
    pseudo_mri: np.ndarray  # (H, W) float32, 0…255, on the frame's grid
    model_input: np.ndarray  # (S, S) in [−1, 1]: what the US model saw
    model_output: np.ndarray  # (S, S) in [−1, 1]: the pseudo-MRI on the model grid
    final_correlation: float | None  # r between the chains at the last guided level (DDIC only)
    placement: dict | None = None  # how the head was found (kind, ellipse, HC, orientation)
    us_round_trip_rmse: float | None = None  # the trust number (ddic.translate.trust); None if not measured
    trust_threshold: float | None = None  # above it the frame is flagged (from the US model's card)

    @property
    def trusted(self) -> bool | None:
        """False when the US model does not represent this frame (round trip above the threshold)."""
        if self.trust_threshold is None:
            return None
        return is_trusted(self.us_round_trip_rmse, self.trust_threshold)


def translate_frames(frames: list[Frame], translator: Translator, progress: ProgressCallback | None = None,
                     placement: PlacementOptions | None = None) -> list[FrameResult]:
    """Translate frames with a :class:`Translator`; every result has its frame's shape and geometry."""
    normalisation: Normalisation = translator.us_model.normalisation
    placement = placement or PlacementOptions()
    placements = [place_frame(frame, translator.image_size, placement) for frame in frames]
    model_inputs = []
    for frame, place in zip(frames, placements):
        window = normalisation.window(frame.pixels)
        canonical = place.model_image()  # masked as the training data (ddic prepare) was
        model_inputs.append(normalisation.to_model(canonical, window))
    batches = translator.translate(np.stack(model_inputs), progress=progress)
    outputs = np.concatenate([b.pseudo_mri for b in batches])
    finals: list[float | None] = []
    trust: list[float | None] = []
    for b in batches:
        if b.correlation is not None and len(b.correlation):
            finals.extend(float(v) for v in b.correlation[-1])
        else:
            finals.extend([None] * len(b.pseudo_mri))
        rmse = getattr(b, "round_trip_rmse", None)
        trust.extend([None] * len(b.pseudo_mri) if rmse is None else [float(v) for v in rmse])
    results = []
    for frame, place, model_input, output, final, rmse in zip(frames, placements, model_inputs, outputs, finals,
                                                              trust):
        display = Normalisation.to_display(output)
        results.append(FrameResult(frame=frame, pseudo_mri=place.transform.to_frame(display),
                                   model_input=model_input, model_output=output, final_correlation=final,
                                   placement=place.info, us_round_trip_rmse=rmse,
                                   trust_threshold=getattr(translator, "trust_threshold", None)))
    return results


def translate(frames: list[Frame], us_model, mri_model, options, progress: ProgressCallback | None = None,
              placement: PlacementOptions | None = None) -> list[FrameResult]:
    """The engine's one-call entry point: frames + two loaded models + options → pseudo-MRI frames."""
    return translate_frames(frames, Translator(us_model, mri_model, options), progress, placement)
