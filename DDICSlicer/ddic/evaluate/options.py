"""What ``ddic evaluate`` does: one dataclass the CLI fills (every field has a flag of the same name)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DDICInputError
from ..metrics.fid import N_BOOTSTRAP
from ..translate.options import DEFAULT_STEPS, PAPER_LR, TranslateOptions
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
    steps: int = DEFAULT_STEPS
    mode: str = "faithful"
    lr: float = PAPER_LR
    corr_sign: str = "+1"  # as the paper; "-1" or "abs" (see TranslateOptions)
    batch_size: int = 16
    limit: int | None = None
    seed: int = 0
    inception_weights: str | None = None
    device: str = "auto"
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
        self.translate_options()  # validates steps, mode, lr, batch size, device

    def models(self) -> dict:
        return {"us_model": self.us_model, "mri_model": self.mri_model, "cyclegan_model": self.cyclegan_model}

    def translate_options(self) -> TranslateOptions:
        """The shared translation options (each method takes what it uses; ``method`` is set per method)."""
        return TranslateOptions(method="ddic", mode=self.mode, steps=int(self.steps), lr=float(self.lr),
                                corr_sign=str(self.corr_sign), batch_size=int(self.batch_size), device=self.device)

    def to_dict(self) -> dict:
        return {"us_test": str(self.us_test), "out": str(self.out), "methods": list(self.methods),
                "us_model": self.us_model, "mri_model": self.mri_model, "cyclegan_model": self.cyclegan_model,
                "mri_ref": None if self.mri_ref is None else str(self.mri_ref),
                "paired": None if self.paired is None else str(self.paired), "steps": self.steps, "mode": self.mode,
                "lr": self.lr, "corr_sign": self.corr_sign, "batch_size": self.batch_size, "limit": self.limit, "seed": self.seed,
                "inception_weights": self.inception_weights, "device": self.device, "fid": self.fid,
                "n_bootstrap": self.n_bootstrap, "grid_frames": self.grid_frames}
