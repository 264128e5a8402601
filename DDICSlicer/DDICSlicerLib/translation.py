"""The translation job as data: the engine's own option records, the command line, environment and estimate.

The panel builds the same :class:`~ddic.translate.options.TranslateOptions` and
:class:`~ddic.translate.placement.PlacementOptions` the ``ddic translate`` command builds, and hands them
over as one JSON document (``--options-json``, :mod:`ddic.translate.options_document`): no option list,
limit or default is kept here. Plain Python (no ``slicer``), so the command the panel runs is the one
the tests run.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ddic.translate.options import TranslateOptions

# Rough cost model for the estimate shown before a run (BENCHMARKS.md, "Translation speed"):
# GFLOP of one network forward at 128 px per preset (scales with pixels), network-forward equivalents
# per step (an input-gradient backward counts as one forward; both solvers evaluate once per step), and
# the sustained throughput of the device. The CPU figure was measured (2 cores ≈ 70 GFLOP/s, tiny @ 128
# DDIB); the GPU figure is an assumption for small batch-1 UNets in bf16 (not measured yet) and is
# labelled "rough" in the UI.
GFLOP_PER_FORWARD_128 = {"tiny": 12.9, "small": 31.1, "paper": 132.1}
FORWARDS_PER_STEP = {("ddib", None): 2.0, ("ddic", "faithful"): 5.0, ("ddic", "cached"): 4.0,
                     ("ddic", "cheap"): 2.0}
CPU_GFLOPS_PER_CORE = 35.0
GPU_GFLOPS_ASSUMED = 20000.0


def panel_options(method: str, steps: int, solver: str, force_cpu: bool) -> TranslateOptions:
    """The ``TranslateOptions`` of the panel's choices; every other field keeps the engine's default."""
    return TranslateOptions(method=method, steps=int(steps), solver=solver, device="cpu" if force_cpu else "auto")


def panel_placement(pixel_size_mm: float, anterior: str, ellipse: tuple | None):
    """The ``PlacementOptions`` of the panel's choices (0 px size: the frame's own spacing)."""
    from ddic.geometry.ellipse import Ellipse
    from ddic.translate.placement import PlacementOptions, anterior_from_choice

    return PlacementOptions(ellipse=Ellipse(*ellipse) if ellipse is not None else None,
                            pixel_size_mm=float(pixel_size_mm) if pixel_size_mm else None,
                            anterior_right=anterior_from_choice(anterior))


@dataclass
class TranslationJob:
    """Everything one ``ddic translate`` run needs; :meth:`command` writes the options and returns argv."""

    frames: list
    us_model: str
    mri_model: str
    out_dir: str
    options: TranslateOptions
    placement: object  # ddic.translate.placement.PlacementOptions
    options_path: str | os.PathLike
    watch_parent: int | None = None  # the panel's pid: the process stops if Slicer goes away

    def validate(self) -> None:
        if not self.frames:
            raise ValueError("No frame to translate.")
        if getattr(self.placement, "ellipse", None) is not None and len(self.frames) != 1:
            raise ValueError("A fitted ellipse describes one frame; translate a sequence with automatic detection.")
        self.options.validate()

    def command(self, python: str | None = None) -> list[str]:
        from ddic.translate.options_document import write

        self.validate()
        write(self.options_path, self.options, self.placement)
        argv = [python or sys.executable, "-m", "ddic", "translate", *map(str, self.frames),
                "--us-model", str(self.us_model), "--mri-model", str(self.mri_model), "--out", str(self.out_dir),
                "--options-json", str(self.options_path), "--progress-format", "json"]
        if self.watch_parent:
            argv += ["--watch-parent", str(int(self.watch_parent))]
        return argv


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


def estimate_seconds(card: dict, options: TranslateOptions, gpu: bool = False,
                     cpu_count: int | None = None) -> float | None:
    """Rough seconds for one frame (None when the card does not say preset and size)."""
    preset, size = card.get("preset"), card.get("image_size")
    if preset not in GFLOP_PER_FORWARD_128 or not size:
        return None
    gflop = GFLOP_PER_FORWARD_128[preset] * (float(size) / 128.0) ** 2
    key = (options.method, None if options.method == "ddib" else options.mode)
    forwards = FORWARDS_PER_STEP.get(key)
    if forwards is None:
        return None
    cores = max(1, cpu_count if cpu_count is not None else (os.cpu_count() or 1))
    throughput = GPU_GFLOPS_ASSUMED if gpu else CPU_GFLOPS_PER_CORE * min(cores, 16)
    return gflop * forwards * int(options.steps) / throughput


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


def estimate_text(card: dict, options: TranslateOptions, device, frames: int = 1) -> str:
    """'Estimated time: ≈ 2 s on NVIDIA RTX A4000 (CUDA, 14.2 of 16.0 GB free; rough)' for ``frames`` frames.

    ``device`` is the :class:`~DDICSlicerLib.device.DeviceInfo` the run will use (CPU when forced), so
    the estimate is for that device and names it; its note (no PyTorch yet, little GPU memory, ...)
    follows.
    """
    gpu = device.kind == "cuda"
    seconds = estimate_seconds(card, options, gpu=gpu, cpu_count=device.cpu_count)
    if seconds is None:
        return "Time estimate unavailable (the model card does not give preset and size)."
    per = f" for {frames} frames" if frames > 1 else ""
    text = f"Estimated time{per}: ≈ {format_duration(seconds * frames)} on {device.label()}"
    text += " (rough)." if gpu else "."
    return f"{text} {device.note}".strip()
