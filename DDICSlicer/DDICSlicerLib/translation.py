"""The translation job as data: the engine command line, its environment and a time estimate.

Plain Python (no ``slicer``), so the command the panel runs is the one the tests run.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

METHODS = ("ddic", "ddib")
ANTERIOR_CHOICES = ("auto", "right", "left")
MIN_STEPS, MAX_STEPS = 2, 1000  # ddic.translate.options accepts 2…1000 steps

# Rough cost model for the estimate shown before a run (BENCHMARKS.md, "Translation speed"):
# GFLOP of one network forward at 128 px per preset (scales with pixels), network-forward equivalents
# per step (an input-gradient backward counts as one forward), and the sustained throughput of this
# kind of device. The CPU figure was measured (2 cores ≈ 70 GFLOP/s, tiny @ 128 DDIB); the GPU figure is
# an assumption for small batch-1 UNets in bf16 (not measured yet) and is labelled as such in the UI.
GFLOP_PER_FORWARD_128 = {"tiny": 12.9, "small": 31.1, "paper": 132.1}
FORWARDS_PER_STEP = {("ddib", None): 2.0, ("ddic", "faithful"): 5.0, ("ddic", "cached"): 4.0,
                     ("ddic", "cheap"): 2.0}
CPU_GFLOPS_PER_CORE = 35.0
GPU_GFLOPS_ASSUMED = 20000.0


@dataclass
class TranslationJob:
    """Everything one ``ddic translate`` run needs; :meth:`command` turns it into argv."""

    frames: list
    us_model: str
    mri_model: str
    out_dir: str
    method: str = "ddic"
    steps: int = 100
    force_cpu: bool = False
    ellipse: tuple | None = None  # (cx, cy, a, b, angle_deg) in frame pixels
    anterior: str = "auto"
    pixel_size_mm: float | None = None
    geometry: str = "auto"
    extra: list = field(default_factory=list)

    def validate(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"Method {self.method!r} is not one of {', '.join(METHODS)}.")
        if not MIN_STEPS <= int(self.steps) <= MAX_STEPS:
            raise ValueError(f"Steps must be between {MIN_STEPS} and {MAX_STEPS}, got {self.steps}.")
        if self.anterior not in ANTERIOR_CHOICES:
            raise ValueError(f"Anterior side {self.anterior!r} is not one of {', '.join(ANTERIOR_CHOICES)}.")
        if self.ellipse is not None and len(self.frames) != 1:
            raise ValueError("A fitted ellipse describes one frame; translate a sequence with automatic detection.")

    def command(self, python: str | None = None) -> list[str]:
        self.validate()
        argv = [python or sys.executable, "-m", "ddic", "translate", *map(str, self.frames),
                "--us-model", str(self.us_model), "--mri-model", str(self.mri_model),
                "--method", self.method, "--steps", str(int(self.steps)), "--out", str(self.out_dir),
                "--geometry", self.geometry, "--anterior", self.anterior, "--progress-format", "json"]
        if self.force_cpu:
            argv.append("--cpu")
        if self.ellipse is not None:
            argv += ["--ellipse", ",".join(f"{float(v):.4f}" for v in self.ellipse)]
        if self.pixel_size_mm:
            argv += ["--pixel-size", f"{float(self.pixel_size_mm):g}"]
        return argv + [str(a) for a in self.extra]


def engine_environment(module_dir: str | os.PathLike, force_cpu: bool = False,
                       base: dict | None = None) -> dict:
    """The worker's environment: ``ddic`` importable from the module folder; no GPU when forced to CPU."""
    env = dict(os.environ if base is None else base)
    paths = [str(Path(module_dir))] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONUNBUFFERED"] = "1"
    if force_cpu:
        env["CUDA_VISIBLE_DEVICES"] = "-1"  # also hides the GPU from libraries that ignore --cpu
    return env


def read_model_card(model: str | os.PathLike) -> dict:
    """The JSON model card of a model folder / card / weights file, or {} (only used for the estimate)."""
    path = Path(model)
    candidates = [path / "model.json"] if path.is_dir() else [path, path.with_suffix(".json")]
    for candidate in candidates:
        if candidate.suffix == ".json" and candidate.is_file():
            try:
                return json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return {}
    return {}


def estimate_seconds(card: dict, method: str, steps: int, mode: str = "faithful", gpu: bool = False,
                     cpu_count: int | None = None) -> float | None:
    """Rough seconds for one frame (None when the card does not say preset and size)."""
    preset, size = card.get("preset"), card.get("image_size")
    if preset not in GFLOP_PER_FORWARD_128 or not size:
        return None
    gflop = GFLOP_PER_FORWARD_128[preset] * (float(size) / 128.0) ** 2
    forwards = FORWARDS_PER_STEP[(method, None if method == "ddib" else mode)]
    cores = max(1, cpu_count if cpu_count is not None else (os.cpu_count() or 1))
    throughput = GPU_GFLOPS_ASSUMED if gpu else CPU_GFLOPS_PER_CORE * min(cores, 16)
    return gflop * forwards * int(steps) / throughput


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 1:
        return "< 1 s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def estimate_text(card: dict, method: str, steps: int, frames: int = 1) -> str:
    """'≈ 2 s on a GPU (assumed), ≈ 4 min on this CPU' for ``frames`` frames."""
    cpu = estimate_seconds(card, method, steps, gpu=False)
    gpu = estimate_seconds(card, method, steps, gpu=True)
    if cpu is None:
        return "Time estimate unavailable (the model card does not give preset and size)."
    per = f" for {frames} frames" if frames > 1 else ""
    return (f"Estimated time{per}: ≈ {format_duration(gpu * frames)} on a GPU (rough), "
            f"≈ {format_duration(cpu * frames)} on this CPU.")
