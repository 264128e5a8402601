"""US → pseudo-MRI translation: encode with the US model, decode with the MRI model (DDIB), under
imposed correlation with the parallel US reconstruction (DDIC).

Entry points: :func:`translate` (frames with geometry), :class:`Translator` (model-grid batches),
:func:`translate_tensor` (the algorithm on tensors) and :class:`TranslateOptions`.

The names are resolved lazily, so ``ddic.translate.options`` (torch-free) can be imported where torch is
absent — inside Slicer's own process, which builds the same option records as the CLI.
"""

from importlib import import_module

_EXPORTS = {
    "FrameResult": ".frames", "translate": ".frames", "translate_frames": ".frames",
    "Translator": ".engine", "translate_tensor": ".engine", "TranslateOptions": ".options",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
