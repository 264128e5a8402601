"""What ``ddic evaluate`` does: one dataclass the CLI fills. The translation settings are one
:class:`TranslateOptions` (the same record, flags and defaults as ``ddic translate``); each method takes
what it uses of it, with its own ``method``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DDICInputError
from ..metrics.fid import N_BOOTSTRAP
from ..translate.options import TranslateOptions
from .figures import GRID_FRAMES
from .methods import check_model_arguments, parse_methods

DEFAULT_METHODS = ("ddic", "ddib")


@dataclass
class EvaluateOptions:
    us_test: Path
    out: Path
    methods: tuple[str, ...] = DEFAULT_METHODS
    us_model: str | None = None
    mri_model: str | None = None
    cyclegan_model: str | None = None
    mri_ref: Path | None = None  # real MRI images: FID/KID against them as well
    paired: Path | None = None  # phantom dataset with paired truth: SSIM, Dice, width error
    translation: TranslateOptions = field(default_factory=TranslateOptions)
    limit: int | None = None
    seed: int = 0
    inception_weights: str | None = None
    fid: bool = True
    n_bootstrap: int = N_BOOTSTRAP
    grid_frames: int = GRID_FRAMES
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.methods = parse_methods(self.methods)
        self.us_test = Path(self.us_test)
        self.out = Path(self.out)
        self.mri_ref = None if self.mri_ref in (None, "") else Path(self.mri_ref)
        self.paired = None if self.paired in (None, "") else Path(self.paired)
        check_model_arguments(self.methods, self.models())
        if self.limit is not None and int(self.limit) < 1:
            raise DDICInputError(f"--limit must be at least 1, not {self.limit}.")
        if int(self.n_bootstrap) < 1:
            raise DDICInputError(f"--bootstrap must be at least 1, not {self.n_bootstrap}.")
        if int(self.grid_frames) < 0:
            raise DDICInputError(f"--grid-frames must be 0 or more, not {self.grid_frames}.")
        if isinstance(self.translation, dict):
            self.translation = TranslateOptions.from_dict(self.translation)
        self.translation.validate()

    def models(self) -> dict:
        return {"us_model": self.us_model, "mri_model": self.mri_model, "cyclegan_model": self.cyclegan_model}

    @property
    def device(self) -> str:
        return self.translation.device

    def to_dict(self) -> dict:
        return {"us_test": str(self.us_test), "out": str(self.out), "methods": list(self.methods),
                "us_model": self.us_model, "mri_model": self.mri_model, "cyclegan_model": self.cyclegan_model,
                "mri_ref": None if self.mri_ref is None else str(self.mri_ref),
                "paired": None if self.paired is None else str(self.paired), "translation": self.translation.to_dict(),
                "limit": self.limit, "seed": self.seed, "inception_weights": self.inception_weights, "fid": self.fid,
                "n_bootstrap": self.n_bootstrap, "grid_frames": self.grid_frames}
