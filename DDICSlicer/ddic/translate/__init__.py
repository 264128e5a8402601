"""US → pseudo-MRI translation: encode with the US model, decode with the MRI model (DDIB), under
imposed correlation with the parallel US reconstruction (DDIC).

Entry points: :func:`translate` (frames with geometry), :class:`Translator` (model-grid batches),
:func:`translate_tensor` (the algorithm on tensors) and :class:`TranslateOptions`.
"""

from .engine import Translator, translate_tensor
from .frames import FrameResult, translate, translate_frames
from .options import TranslateOptions

__all__ = ["FrameResult", "TranslateOptions", "Translator", "translate", "translate_frames", "translate_tensor"]
