"""How an evaluation names, orders and caches the translation methods it compares (their models and
translators come from the one registry, :mod:`ddic.translate.methods`).

The *identity* of a method's output (what the cache compares) holds only what changes the pixels: the model
ids (card name @ weights SHA-256) and the options that method uses (the registry's ``identity_options``) —
with the precision resolved (``auto`` is bf16 on CUDA, fp32 on the CPU) and the device type (CPU and CUDA
arithmetic differ in the last bits; TF32 on CUDA), so outputs made on another kind of device are translated
again. The device index and the batch size are left out: results do not depend on them (batch independence
is tested in ``Testing/test_translate.py``).
"""

from __future__ import annotations

from ..errors import DDICInputError
from ..translate.methods import MethodModels, check_models, method_spec
from ..translate.options import ALL_METHODS, TranslateOptions

DISPLAY_ORDER = ("cyclegan", "ddib", "ddic")
"""Column order of the image grid and the plots after the US (the paper's Fig. 3: US | CycleGAN | DDIB | DDIC)."""
PAIRED_MRI = "paired_mri"
"""The reference group of a phantom evaluation: the paired MRI itself, i.e. what a perfect translation would
give. Measured like a method (same regions, same segmentation), so its numbers are the ceiling of each metric
under this protocol; it is not translated and takes no part in FID/KID."""
DISPLAY_NAMES = {"us": "US", "ddic": "DDIC", "ddib": "DDIB", "cyclegan": "CycleGAN", PAIRED_MRI: "Paired MRI"}


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
        check_models(method, models)


def identity(method: str, options: TranslateOptions, models: MethodModels) -> dict:
    """What a cached output of ``method`` must match to be reused (module docstring)."""
    from ..translate.device import select_device, use_bf16

    device = select_device(options.device)
    data = options.to_dict()
    data["precision"] = "bf16" if use_bf16(options.precision, device) else "fp32"  # what "auto" resolves to
    keys = method_spec(method).identity_options
    return {"method": method, "options": {k: data[k] for k in keys}, "models": dict(models.ids),
            "device_type": device.type}
