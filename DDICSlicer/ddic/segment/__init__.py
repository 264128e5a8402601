"""Promptable 2D segmentation (lateral ventricles, Sylvian fissure) from points and boxes.

Two backends share one interface — ``set_image(pixels)`` then ``predict(prompts)`` → a
:class:`SegmentationResult` — and one clean-up: :class:`SamSegmenter` (Segment Anything v1, optional
``segment-anything`` package, weights loaded tensors-only) and :class:`ClassicalSegmenter` (SimpleITK
region growing, no weights). :func:`make_segmenter` picks one. Prompts are pixel coordinates,
``x`` = column and ``y`` = row (:mod:`ddic.segment.prompts`). torch is imported only when SAM is used.
"""

from .backend import BACKENDS, make_segmenter
from .classical import ClassicalOptions, ClassicalSegmenter
from .masks import write_mask
from .prompts import Prompts
from .result import ImageInfo, SegmentationResult
from .sam import SAM_MODEL_TYPES, SamSegmenter, load_sam_model

__all__ = [
           "BACKENDS",
           "SAM_MODEL_TYPES",
           "ClassicalOptions",
           "ClassicalSegmenter",
           "ImageInfo",
           "Prompts",
           "SamSegmenter",
           "SegmentationResult",
           "load_sam_model",
           "make_segmenter",
           "write_mask",
]
