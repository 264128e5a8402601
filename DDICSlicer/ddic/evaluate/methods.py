"""The translation methods an evaluation compares, behind one small registry.

Why a registry: ``--methods ddic,ddib,cyclegan`` must check every name and its models *before* any work,
identify each method's outputs without loading weights (so a rerun whose outputs are all cached never
touches torch), and build the translator only when something is left to translate. A method is:

- the diffusion methods (:data:`ddic.translate.options.METHODS`: ``ddic``, ``ddib``) — the US and MRI models
  (``--us-model``, ``--mri-model``) and :class:`ddic.translate.engine.Translator`;
- ``cyclegan`` — its generator (``--cyclegan-model``) and :class:`ddic.translate.cyclegan.CycleGANTranslator`.

A new baseline adds an entry to :data:`MODEL_ARGUMENTS` and a branch in :func:`build_translator`.

The *identity* of a method's output (what the cache compares) holds only what changes the pixels: the model
ids (card name @ weights SHA-256) and the options that method uses — ``steps``/``mode``/``lr``… for DDIC, only
``steps``/``clip_decode`` for DDIB (its decoder ignores the guidance options), nothing but the precision for
CycleGAN — with the precision resolved (``auto`` is bf16 on CUDA, fp32 on the CPU) and the device type
(CPU and CUDA arithmetic differ in the last bits; TF32 on CUDA), so outputs made on another kind of device
are translated again. The device index and the batch size are left out: results do not depend on them
(batch independence is tested in ``Testing/test_translate.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import DDICInputError
from ..translate.options import ALL_METHODS, METHODS, TranslateOptions

MODEL_ARGUMENTS = {"ddic": ("us_model", "mri_model"), "ddib": ("us_model", "mri_model"),
                   "cyclegan": ("cyclegan_model",)}
"""Which model arguments each method needs (EvaluateOptions fields; CLI ``--us-model`` …)."""
FLAGS = {"us_model": "--us-model", "mri_model": "--mri-model", "cyclegan_model": "--cyclegan-model"}
DISPLAY_ORDER = ("cyclegan", "ddib", "ddic")
"""Column order of the image grid and the plots after the US (the paper's Fig. 3: US | CycleGAN | DDIB | DDIC)."""
PAIRED_MRI = "paired_mri"
"""The reference group of a phantom evaluation: the paired MRI itself, i.e. what a perfect translation would
give. Measured like a method (same regions, same segmentation), so its numbers are the ceiling of each metric
under this protocol; it is not translated and takes no part in FID/KID."""
DISPLAY_NAMES = {"us": "US", "ddic": "DDIC", "ddib": "DDIB", "cyclegan": "CycleGAN", PAIRED_MRI: "Paired MRI"}
_IDENTITY_OPTIONS = {
    "ddic": ("method", "mode", "solver", "steps", "lr", "lr_reference_steps", "lr_reference_size", "median_kernel",
             "corr_sign", "guidance", "guidance_window", "guide_t_min", "guide_t_max", "clip_decode", "cheap_prior_variance", "precision"),
    "ddib": ("method", "solver", "steps", "clip_decode", "precision"),
    "cyclegan": ("method", "precision"),
}


def parse_methods(text) -> tuple[str, ...]:
    """``"ddic,ddib"`` (or a sequence) → ordered unique method names; a clear error for anything unknown."""
    items = [m.strip().lower() for m in (text.split(",") if isinstance(text, str) else text)]
    items = [m for m in items if m]
    if not items:
        raise DDICInputError(f"--methods is empty; name one or more of {', '.join(ALL_METHODS)} (e.g. ddic,ddib).")
    unknown = [m for m in items if m not in ALL_METHODS]
    if unknown:
        raise DDICInputError(f"--methods: unknown method(s) {', '.join(unknown)}; choose from "
                             f"{', '.join(ALL_METHODS)}, comma-separated (e.g. ddic,ddib,cyclegan).")
    return tuple(dict.fromkeys(items))


def display_order(methods) -> list[str]:
    """Methods in the paper's column order (unknown future methods next, in their given order; the paired-MRI
    reference last)."""
    known = [m for m in DISPLAY_ORDER if m in methods]
    others = [m for m in methods if m not in DISPLAY_ORDER and m != PAIRED_MRI]
    return known + others + ([PAIRED_MRI] if PAIRED_MRI in methods else [])


def display_name(method: str) -> str:
    return DISPLAY_NAMES.get(method, method)


def check_model_arguments(methods, models: dict) -> None:
    """Every method's models are given (``models``: field name → path or None); say which flag is missing."""
    for method in methods:
        missing = [FLAGS[a] for a in MODEL_ARGUMENTS[method] if not models.get(a)]
        if missing:
            extra = (" (the folder of `ddic train-cyclegan`), or leave cyclegan out of --methods"
                     if method == "cyclegan" else " (per-domain diffusion models from `ddic train`)")
            raise DDICInputError(f"Method {method} needs {' and '.join(missing)}{extra}.")


@dataclass
class MethodModels:
    """What identifies a method's models without loading weights, and where they are."""

    method: str
    ids: dict  # e.g. {"us_model": "us@0123abcd…", "mri_model": …}
    paths: dict = field(default_factory=dict)
    image_size: int = 0


def read_models(method: str, models: dict) -> MethodModels:
    """Read and check the model cards of ``method`` (no weights loaded): ids, paths and the model grid size."""
    if method in METHODS:
        from ..io.modelfile import read_card, validate_card
        from ..models import ddic_model_path  # folders, files or ids from `ddic models list`

        us_card, us_path = read_card(ddic_model_path(models["us_model"], "--us-model"))
        validate_card(us_card, us_path, expected_domain="us")
        mri_card, mri_path = read_card(ddic_model_path(models["mri_model"], "--mri-model"))
        validate_card(mri_card, mri_path, expected_domain="mri", expected_image_size=us_card.image_size)
        ids = {"us_model": f"{us_path.stem}@{us_card.weights_sha256[:12]}",
               "mri_model": f"{mri_path.stem}@{mri_card.weights_sha256[:12]}"}
        return MethodModels(method, ids, {"us_model": str(us_path), "mri_model": str(mri_path)},
                            int(us_card.image_size))
    if method == "cyclegan":
        from ..cyclegan.model import read_card as read_cyclegan_card
        from ..cyclegan.model import validate_card as validate_cyclegan_card

        card, path = read_cyclegan_card(models["cyclegan_model"])
        validate_cyclegan_card(card, path)
        return MethodModels(method, {"cyclegan_model": f"{path.stem}@{card.weights_sha256[:12]}"},
                            {"cyclegan_model": str(path)}, int(card.image_size))
    raise DDICInputError(f"No models known for method {method!r}.")


def translate_options(method: str, base: TranslateOptions) -> TranslateOptions:
    """``base`` (steps, mode, lr, device…) with ``method`` set."""
    data = base.to_dict()
    data["method"] = method
    return TranslateOptions.from_dict(data)


def identity(method: str, options: TranslateOptions, models: MethodModels) -> dict:
    """What a cached output of ``method`` must match to be reused (module docstring)."""
    from ..translate.device import select_device, use_bf16

    device = select_device(options.device)
    data = options.to_dict()
    data["precision"] = "bf16" if use_bf16(options.precision, device) else "fp32"  # what "auto" resolves to
    return {"method": method, "options": {k: data[k] for k in _IDENTITY_OPTIONS[method]}, "models": dict(models.ids),
            "device_type": device.type}


class SharedModels:
    """The US and MRI models, loaded once and shared by DDIC and DDIB."""

    def __init__(self) -> None:
        self._loaded: dict = {}

    def get(self, us_path: str, mri_path: str):
        key = (us_path, mri_path)
        if key not in self._loaded:
            from ..io.modelfile import load_model

            us = load_model(us_path, expected_domain="us")
            mri = load_model(mri_path, expected_domain="mri", expected_image_size=us.card.image_size)
            self._loaded[key] = (us, mri)
        return self._loaded[key]


def build_translator(models: MethodModels, options: TranslateOptions, shared: SharedModels | None = None):
    """A translator with the Translator interface (``image_size``, ``device``, ``translate``) for ``models``."""
    if models.method in METHODS:
        from ..translate.engine import Translator

        us, mri = (shared or SharedModels()).get(models.paths["us_model"], models.paths["mri_model"])
        return Translator(us, mri, options)
    if models.method == "cyclegan":
        from ..cyclegan.model import load_generator
        from ..translate.cyclegan import CycleGANTranslator

        return CycleGANTranslator(load_generator(models.paths["cyclegan_model"]), options)
    raise DDICInputError(f"No translator for method {models.method!r}.")

