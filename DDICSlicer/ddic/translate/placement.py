"""Where the head is: the frame ⇄ model-grid transform used for one frame.

* ``auto`` (default): a frame that already is model-sized and square is taken as canonical (identity);
  any other frame gets the head-ellipse transform (:class:`ddic.geometry.head.CanonicalHeadTransform`),
  from a given ellipse or the automatic skull-echo fit.
* ``head``: always the head transform. ``square``: the whole frame fitted into a centred square
  (:class:`ddic.geometry.square_fit.SquareFit`), for frames that are already head-centred crops.

With the head transform the canonical image is masked outside the skull exactly as the training data
was (``HEAD_MASK_MARGIN_MM``), and the pseudo-MRI is resampled back onto the frame's own grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DDICInputError
from ..geometry.canonical import CANONICAL_SIZE_PX, HEAD_MASK_MARGIN_MM
from ..geometry.ellipse import Ellipse
from ..geometry.head import CanonicalHeadTransform
from ..geometry.skull_detection import detect_skull_ellipse
from ..geometry.square_fit import SquareFit
from ..io.images import Frame, image_suffix

GEOMETRY_MODES = ("auto", "head", "square")
ANTERIOR_CHOICES = ("auto", "right", "left")
"""Which end of the skull ellipse's major axis (the one on the frame's right) is frontal; auto: guessed."""


def anterior_from_choice(choice: str) -> bool | None:
    """``auto`` → None (guess from the image), ``right`` → True, ``left`` → False."""
    try:
        return {"auto": None, "right": True, "left": False}[choice]
    except KeyError:
        raise DDICInputError(f"Unknown anterior choice {choice!r}; choose one of {', '.join(ANTERIOR_CHOICES)}.") from None
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass
class PlacementOptions:
    """How to find the head in each frame (the CLI's --geometry, --ellipse, --pixel-size, --anterior)."""

    mode: str = "auto"
    ellipse: Ellipse | None = None  # frame pixels; only meaningful for a single frame
    pixel_size_mm: float | None = None  # for picture formats, which carry no spacing
    anterior_right: bool | None = None  # None: guessed from the image, else the default
    mask_margin_mm: float = HEAD_MASK_MARGIN_MM

    def __post_init__(self) -> None:
        if self.mode not in GEOMETRY_MODES:
            raise DDICInputError(f"Unknown geometry mode {self.mode!r}; choose one of {', '.join(GEOMETRY_MODES)}.")
        if self.pixel_size_mm is not None and not self.pixel_size_mm > 0:
            raise DDICInputError(f"--pixel-size must be a positive number of mm, got {self.pixel_size_mm}.")


@dataclass
class Placement:
    """One frame's transform, plus what a report should say about it."""

    transform: object  # CanonicalHeadTransform or SquareFit (both have to_model / to_frame)
    info: dict
    margin_mm: float = HEAD_MASK_MARGIN_MM
    eight_bit: bool = False

    def model_image(self) -> np.ndarray:
        """The frame on the model grid, made exactly as the model's training data was: the head transform's
        :meth:`~ddic.geometry.head.CanonicalHeadTransform.head_image` at the canonical 128 px (the one
        canonical-US preprocessing, shared with ``ddic prepare hc18`` and the phantom), rounded to 8 bits as
        those PNGs are when the frame is 8-bit, then resampled to the model's size as training resamples
        (:func:`ddic.diffusion.dataset.resample_square`) — resampling the frame straight to 64 px would
        alias its speckle differently from what the model learnt. Without a head: the square fit."""
        if not isinstance(self.transform, CanonicalHeadTransform):
            return self.transform.to_model()
        from ..diffusion.dataset import resample_square

        canonical = self.transform.head_image(size=CANONICAL_SIZE_PX, margin_mm=self.margin_mm)
        if self.eight_bit:
            canonical = np.clip(np.rint(canonical), 0, 255)
        return resample_square(canonical, self.transform.size)


def _pixel_size(frame: Frame, options: PlacementOptions) -> float:
    if options.pixel_size_mm is not None:
        return float(options.pixel_size_mm)
    spacing = frame.spacing
    if frame.path is not None and image_suffix(frame.path) in PICTURE_SUFFIXES:
        raise DDICInputError(
            f"{frame.path.name} is a picture file without a physical pixel size, which the head geometry needs. "
            "Pass --pixel-size MM (HC18 lists it in its CSV), or --geometry square for a head-centred crop."
        )
    if abs(spacing[0] - spacing[1]) > 1e-6 * max(spacing):
        raise DDICInputError(f"The frame's pixels are not square ({spacing[0]} × {spacing[1]} mm); resample it first.")
    return float(spacing[0])


def place_frame(frame: Frame, size: int, options: PlacementOptions) -> Placement:
    """The transform between ``frame`` and an S×S model grid, chosen as the module docstring says."""
    if options.mode == "square" or (options.mode == "auto" and options.ellipse is None
                                     and frame.shape == (size, size)):
        fit = SquareFit(frame, size)
        return Placement(fit, {"kind": "identity" if fit.is_identity else "square_fit"})
    pixel_size = _pixel_size(frame, options)
    info: dict = {"kind": "canonical_head", "pixel_size_mm": pixel_size}
    ellipse = options.ellipse
    if ellipse is None:
        detection = detect_skull_ellipse(frame.pixels, pixel_size)
        ellipse = detection.ellipse
        info.update(ellipse_source="detected", detection_confidence=round(float(detection.confidence), 3))
    else:
        info["ellipse_source"] = "given"
    transform = CanonicalHeadTransform(frame, ellipse, size=size, anterior_right=options.anterior_right,
                                       pixel_size_mm=pixel_size)
    info.update(ellipse=ellipse.to_dict(), hc_mm=round(float(ellipse.hc_mm(pixel_size)), 2),
                orientation_source=transform.orientation_source, anterior_right=transform.anterior_right,
                orientation_decided=transform.orientation_source != "default")
    return Placement(transform, info, margin_mm=options.mask_margin_mm, eight_bit=bool(frame.is_8bit))
