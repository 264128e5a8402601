"""The translation methods, one registry: what models each needs, how they are identified without loading
weights, and how its translator is built. The CLI (``ddic translate``), ``ddic evaluate``, ``ddic demo`` and
the Slicer panel (through the CLI) all go through it, so a method's requirements are written once.

- the diffusion methods (:data:`ddic.translate.options.METHODS`: ``ddic``, ``ddib``): the US and MRI models
  (``--us-model``, ``--mri-model``; folders, files or ids from ``ddic models list``) and
  :class:`ddic.translate.engine.Translator`;
- ``cyclegan``: its generator (``--cyclegan-model``) and :class:`ddic.translate.cyclegan.CycleGANTranslator`.

A new method adds a :class:`MethodSpec` to :data:`REGISTRY` (and its name to ``ddic.translate.options``).
Importing this module loads no torch; weights load only in :func:`build_translator`.

``identity_options`` lists the options that change a method's pixels (what an evaluation's cache compares):
DDIB's decoder ignores the guidance options, CycleGAN every diffusion option.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import DDICInputError
from .options import ALL_METHODS, TranslateOptions

FLAGS = {"us_model": "--us-model", "mri_model": "--mri-model", "cyclegan_model": "--cyclegan-model"}
"""Model argument (an option-record field) → its command-line flag."""

_DIFFUSION_MODELS = ("us_model", "mri_model")
_DIFFUSION_IDENTITY = ("method", "solver", "steps", "clip_decode", "precision")


@dataclass(frozen=True)
class MethodSpec:
    name: str
    models: tuple[str, ...]  # model arguments it needs (keys of FLAGS)
    family: str  # "diffusion" (the two per-domain models) or "cyclegan" (one generator)
    identity_options: tuple[str, ...]
    model_hint: str  # what the missing model is, for the error message


REGISTRY = {
    "ddic": MethodSpec("ddic", _DIFFUSION_MODELS, "diffusion", _DIFFUSION_IDENTITY + (
        "mode", "lr", "lr_reference_steps", "lr_reference_size", "median_kernel", "corr_sign", "guidance",
        "guidance_window", "guide_t_min", "guide_t_max", "cheap_prior_variance"),
        "per-domain diffusion models from `ddic train`"),
    "ddib": MethodSpec("ddib", _DIFFUSION_MODELS, "diffusion", _DIFFUSION_IDENTITY,
                       "per-domain diffusion models from `ddic train`"),
    "cyclegan": MethodSpec("cyclegan", ("cyclegan_model",), "cyclegan", ("method", "precision"),
                           "the folder of `ddic train-cyclegan`"),
}
assert set(REGISTRY) == set(ALL_METHODS)


def method_spec(method: str) -> MethodSpec:
    try:
        return REGISTRY[method]
    except KeyError:
        raise DDICInputError(f"Unknown method {method!r}; choose one of {', '.join(ALL_METHODS)}.") from None


def check_models(method: str, given: dict, forbid_others: bool = False) -> None:
    """Every model ``method`` needs is given (``given``: model argument → value); with ``forbid_others``, a
    model it does not use is an error too (a command with one method should not silently ignore a flag)."""
    spec = method_spec(method)
    missing = [FLAGS[a] for a in spec.models if not given.get(a)]
    if missing:
        raise DDICInputError(f"Method {method} needs {' and '.join(missing)} ({spec.model_hint}).")
    if forbid_others:
        extra = [FLAGS[a] for a, v in given.items() if v and a not in spec.models]
        if extra:
            raise DDICInputError(f"{' and '.join(extra)} {'is' if len(extra) == 1 else 'are'} not used with "
                                 f"method {method}; leave {'it' if len(extra) == 1 else 'them'} out.")


@dataclass
class MethodModels:
    """What identifies a method's models without loading weights, and where they are."""

    method: str
    ids: dict  # e.g. {"us_model": "us@0123abcd…", "mri_model": …}
    paths: dict = field(default_factory=dict)
    image_size: int = 0


def read_models(method: str, given: dict) -> MethodModels:
    """Read and check the model cards of ``method`` (no weights loaded): ids, paths and the model grid size."""
    spec = method_spec(method)
    check_models(method, given)
    if spec.family == "diffusion":
        from ..diffusion.modelfile import read_card, validate_card
        from ..models import ddic_model_path  # folders, files or ids from `ddic models list`

        us_card, us_path = read_card(ddic_model_path(given["us_model"], "--us-model"))
        validate_card(us_card, us_path, expected_domain="us")
        mri_card, mri_path = read_card(ddic_model_path(given["mri_model"], "--mri-model"))
        validate_card(mri_card, mri_path, expected_domain="mri", expected_image_size=us_card.image_size)
        ids = {"us_model": f"{us_path.stem}@{us_card.weights_sha256[:12]}",
               "mri_model": f"{mri_path.stem}@{mri_card.weights_sha256[:12]}"}
        return MethodModels(method, ids, {"us_model": str(us_path), "mri_model": str(mri_path)},
                            int(us_card.image_size))
    from ..cyclegan.model import read_card as read_cyclegan_card
    from ..cyclegan.model import validate_card as validate_cyclegan_card

    card, path = read_cyclegan_card(given["cyclegan_model"])
    validate_cyclegan_card(card, path)
    return MethodModels(method, {"cyclegan_model": f"{path.stem}@{card.weights_sha256[:12]}"},
                        {"cyclegan_model": str(path)}, int(card.image_size))


class SharedModels:
    """Loaded diffusion model pairs, kept so that DDIC and DDIB of one run load their models once."""

    def __init__(self) -> None:
        self._loaded: dict = {}

    def get(self, us_path: str, mri_path: str):
        key = (us_path, mri_path)
        if key not in self._loaded:
            from ..diffusion.modelfile import load_model

            us = load_model(us_path, expected_domain="us")
            mri = load_model(mri_path, expected_domain="mri", expected_image_size=us.card.image_size)
            self._loaded[key] = (us, mri)
        return self._loaded[key]


def build_translator(models: MethodModels, options: TranslateOptions, shared: SharedModels | None = None):
    """The translator of ``models.method`` (``image_size``, ``device``, ``translate``), weights loaded."""
    if options.method != models.method:
        options = with_method(models.method, options)
    if method_spec(models.method).family == "diffusion":
        from .engine import Translator

        us, mri = (shared or SharedModels()).get(models.paths["us_model"], models.paths["mri_model"])
        return Translator(us, mri, options)
    from ..cyclegan.model import load_generator
    from .cyclegan import CycleGANTranslator

    return CycleGANTranslator(load_generator(models.paths["cyclegan_model"]), options)


def with_method(method: str, base: TranslateOptions) -> TranslateOptions:
    """``base`` (steps, mode, lr, device…) with ``method`` set."""
    data = base.to_dict()
    data["method"] = method
    return TranslateOptions.from_dict(data)
