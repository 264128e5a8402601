"""Translation options: one dataclass that the CLI, the worker and the Slicer panel all build.

Defaults follow the paper where it is explicit (lr = 3 at the paper's 1000 steps and 128 px, correlation
sign +1) and the reference code (DDIB clipping, 5×5 median with reflect padding) where it is not; see
``shared/docs/diffusion-notes.md`` §9 for the reasoning behind each.

This module imports neither torch nor numpy: the Slicer panel builds these records in Slicer's own process
and hands them to the translation process as JSON (:meth:`TranslateOptions.to_dict`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

from ..diffusion.constants import MIN_STEPS, NUM_TRAIN_TIMESTEPS, SOLVERS, TERMINAL_STEPS
from ..errors import DDICInputError

METHODS = ("ddic", "ddib")
"""The diffusion methods, which translate with a US and an MRI diffusion model."""
BASELINE_METHODS = ("cyclegan",)
"""Methods with a model of their own (``ddic train-cyclegan``); they ignore the diffusion options."""
ALL_METHODS = METHODS + BASELINE_METHODS
MODES = ("faithful", "cached", "cheap")
__all__ = ["ALL_METHODS", "BASELINE_METHODS", "CORRELATION_SIGNS", "DEFAULT_SOLVER", "DEFAULT_STEPS", "METHODS", "MIN_STEPS", "MODES",
           "MODE_NOTES", "NUM_TRAIN_TIMESTEPS", "GUIDANCE_MEASURES", "NetworkEvaluations", "PAPER_LR", "PRECISIONS",
           "SOLVERS", "TranslateOptions"]
CORRELATION_SIGNS = ("+1", "-1", "abs")
GUIDANCE_MEASURES = ("pearson", "lncc2")
"""What the guided step pulls on: the paper's global Pearson r of the median-filtered chains, or (beyond the
paper, measured in BENCHMARKS.md) the mean squared local normalised cross-correlation, sign-invariant."""
PRECISIONS = ("auto", "fp32", "bf16")

DEFAULT_SOLVER = "dpmpp2m"
DEFAULT_STEPS = 50
"""The default solver and N, chosen from the solver study (BENCHMARKS.md, "Few-step translation"): DPM-Solver++(2M)
at N = 50 with the exact terminal step keeps MI, SSIM and ventricle Dice within 5 % of N = 1000 at 250 network
evaluations per frame (4.3 s on a 2-core CPU with the demo pair), with a faithful round trip (validation mean
0.019; the demo frame 0.02). Without the exact terminal step N = 30–60 broke the round trip on frames slightly off
the training distribution (0.35 on the demo frame at N = 50); N = 30 is faster but loses 6.6 % SSIM."""
PAPER_LR = 3.0
PAPER_LR_STEPS = NUM_TRAIN_TIMESTEPS
PAPER_LR_SIZE = 128
"""The image size (px a side) the paper's lr = 3 was tuned at: the Pearson gradient per pixel falls as
1/(H·W), so the per-step rate grows with the pixel count to move each pixel by the same amount."""

MODE_NOTES = {
    "faithful": "as the paper: US chain recomputed, gradient through the MRI network, eps recomputed (≈5N evaluations)",
    "cached": "US chain taken from the encoder's trajectory (exact in the ODE limit), otherwise faithful (≈4N)",
    "cheap": "cached US chain, no network derivative (diagonal Jacobian estimate), first-order update (≈2N; an approximation)",
}


class NetworkEvaluations(NamedTuple):
    """Network calls per frame of one translation (what ``EvaluationCounter`` counts on a real run).

    ``forward`` counts every call of a network, including the ``backward`` calls whose input gradient is
    taken afterwards (a guided MRI step); so a frame costs ``forward − backward`` plain forwards plus
    ``backward`` forward+input-backward passes.
    """

    forward: int
    backward: int

    @property
    def plain_forward(self) -> int:
        return self.forward - self.backward


def grid_timesteps(steps: int, num_timesteps: int = NUM_TRAIN_TIMESTEPS) -> list[int]:
    """The N timesteps a translation visits, as :func:`ddic.diffusion.schedule.spaced_timesteps` makes them
    (a test keeps the two equal) but without numpy: 0 … T−1 at a fractional stride, each rounded."""
    stride = (num_timesteps - 1) / (steps - 1)
    positions, cursor = [], 0.0
    for _ in range(steps):
        positions.append(round(cursor))
        cursor += stride
    return positions


@dataclass
class TranslateOptions:
    """How to translate. ``lr`` keeps the paper's meaning (128 px, N = 1000); see :meth:`step_lr`."""

    method: str = "ddic"
    mode: str = "faithful"
    solver: str = DEFAULT_SOLVER
    steps: int = DEFAULT_STEPS
    lr: float = PAPER_LR
    lr_reference_steps: int = PAPER_LR_STEPS
    lr_reference_size: int = PAPER_LR_SIZE
    median_kernel: int = 5
    corr_sign: str = "+1"
    guidance: str = "pearson"
    guidance_window: int = 9  # box size of lncc2 (pixels of the model grid)
    guide_t_min: int = 0
    guide_t_max: int = NUM_TRAIN_TIMESTEPS - 1
    clip_decode: bool = True
    round_trip_check: bool = True  # measure the frame's US round trip (the trust number, ddic.translate.trust)
    terminal_step: str = "exact"  # how the encoder reaches the end of the schedule (diffusion.constants.TERMINAL_STEPS)
    cheap_prior_variance: float = 0.25
    batch_size: int = 16
    device: str = "auto"
    precision: str = "auto"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def bad(name: str, value, allowed: str) -> DDICInputError:
            return DDICInputError(f"Invalid translation option {name}={value!r}: {allowed}.")

        if self.method not in ALL_METHODS:
            raise bad("method", self.method, f"choose one of {', '.join(ALL_METHODS)}")
        if self.mode not in MODES:
            raise bad("mode", self.mode, f"choose one of {', '.join(MODES)}")
        if self.solver not in SOLVERS:
            raise bad("solver", self.solver, f"choose one of {', '.join(SOLVERS)}")
        if self.terminal_step not in TERMINAL_STEPS:
            raise bad("terminal_step", self.terminal_step, f"choose one of {', '.join(TERMINAL_STEPS)}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) \
                or not MIN_STEPS <= self.steps <= NUM_TRAIN_TIMESTEPS:
            raise bad("steps", self.steps, f"an integer from {MIN_STEPS} to {NUM_TRAIN_TIMESTEPS}")
        if not self.lr >= 0.0:
            raise bad("lr", self.lr, "a learning rate ≥ 0 (0 gives DDIB)")
        if not isinstance(self.lr_reference_steps, int) or self.lr_reference_steps < 1:
            raise bad("lr_reference_steps", self.lr_reference_steps, "a positive integer")
        if not isinstance(self.lr_reference_size, int) or self.lr_reference_size < 1:
            raise bad("lr_reference_size", self.lr_reference_size, "a positive integer (pixels a side)")
        if not isinstance(self.median_kernel, int) or self.median_kernel < 1 or self.median_kernel % 2 == 0:
            raise bad("median_kernel", self.median_kernel, "an odd integer ≥ 1 (1 turns the median off)")
        if self.guidance not in GUIDANCE_MEASURES:
            raise bad("guidance", self.guidance, f"one of {', '.join(GUIDANCE_MEASURES)}")
        if not isinstance(self.guidance_window, int) or self.guidance_window < 3 or self.guidance_window % 2 == 0:
            raise bad("guidance_window", self.guidance_window, "an odd integer ≥ 3")
        if self.corr_sign not in CORRELATION_SIGNS:
            raise bad("corr_sign", self.corr_sign, f"one of {', '.join(CORRELATION_SIGNS)}")
        if not 0 <= self.guide_t_min <= self.guide_t_max <= NUM_TRAIN_TIMESTEPS - 1:
            raise bad("guide_t window", (self.guide_t_min, self.guide_t_max),
                      f"0 ≤ min ≤ max ≤ {NUM_TRAIN_TIMESTEPS - 1}")
        if not self.cheap_prior_variance > 0.0:
            raise bad("cheap_prior_variance", self.cheap_prior_variance, "a positive data variance")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise bad("batch_size", self.batch_size, "a positive integer")
        if self.precision not in PRECISIONS:
            raise bad("precision", self.precision, f"one of {', '.join(PRECISIONS)}")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise bad("device", self.device, "auto, cpu, cuda or cuda:N")

    def step_lr(self, image_size: int) -> float:
        """The per-step rate actually used on S-px images: lr · (N_ref/N) · (S/S_ref)² for DDIC, 0 otherwise.

        The paper's lr = 3 is for 128 px and N = 1000. One guided step per level, so the total pull over the
        chain stays the same as N changes (·N_ref/N); the Pearson gradient per pixel scales as 1/(H·W), so
        the same per-pixel update at S px needs (S/S_ref)² of the rate (at 64 px a quarter).
        """
        if self.method != "ddic":
            return 0.0
        return self.lr * (self.lr_reference_steps / self.steps) * (int(image_size) / self.lr_reference_size) ** 2

    def guides(self, t: int) -> bool:
        return self.guide_t_min <= t <= self.guide_t_max

    def network_evaluations(self) -> NetworkEvaluations:
        """Network calls per frame of a diffusion translation with these options (batch-independent).

        N steps, G of them guided (grid timesteps inside the guide window): the US encode is N forwards;
        DDIB decodes with N MRI forwards. DDIC ``faithful`` adds the parallel US chain (N) and, per guided
        level, an MRI forward whose input gradient is taken and the recomputed step (2 forwards, 1 backward;
        an unguided level is one forward); ``cached`` takes the US chain from the encoder; ``cheap`` has one
        MRI forward per level and no network backward. The round-trip check (the trust number) is one more
        US decode (N) except in faithful DDIC, whose US chain is that decode. The solvers make one network
        evaluation per step (``ddim`` and the multistep ``dpmpp2m`` alike). ``Testing/test_translate.py``
        compares this with the evaluations counted on real runs for every combination.
        """
        if self.method not in METHODS:
            raise DDICInputError(f"--method {self.method} does not translate with diffusion models.")
        n = self.steps
        guided = sum(1 for t in grid_timesteps(n) if self.guides(t)) if self.method == "ddic" else 0
        if self.method == "ddib":
            forward, backward = 2 * n, 0
        elif self.mode == "faithful":
            forward, backward = 3 * n + guided, guided
        elif self.mode == "cached":
            forward, backward = 2 * n + guided, guided
        else:  # cheap
            forward, backward = 2 * n, 0
        us_chain_is_the_check = self.method == "ddic" and self.mode == "faithful"
        if self.round_trip_check and not us_chain_is_the_check:
            forward += n
        return NetworkEvaluations(forward, backward)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TranslateOptions":
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names - {"effective_lr", "step_lr"}
        if unknown:
            raise DDICInputError(f"Unknown translation option(s): {', '.join(sorted(unknown))}.")
        return cls(**{k: v for k, v in data.items() if k in names})
