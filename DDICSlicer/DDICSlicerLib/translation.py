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

# The estimate shown before a run is Σ network calls × the measured time of one call: the calls per frame come
# from the engine (TranslateOptions.network_evaluations: method, mode, N, guide window, round-trip check), the
# time of one batch-1 forward and one forward + input-gradient backward of the chosen US model from the device
# probe (DDICSlicerLib.device.time_network, in its own process, on the device the run will use).
# Until PyTorch is installed there is nothing to time, and a rough model stands in, labelled "rough": GFLOP of one
# call per preset and size, measured with torch.utils.flop_counter as benchmarks/translate.py does (the input
# backward costs one forward), over an assumed throughput. The CPU figure was measured (2 cores ≈ 70 GFLOP/s,
# tiny @ 128 DDIB); the GPU figure is an assumption for small batch-1 UNets in bf16.
GFLOP_PER_CALL = {  # (preset, image size) → (forward, forward + input-gradient backward)
    ("slim", 64): (1.00, 1.99), ("slim", 128): (3.88, 7.77),
    ("tiny", 64): (3.22, 6.43), ("tiny", 128): (12.86, 25.73),
    ("small", 64): (7.90, 15.79), ("small", 128): (31.07, 62.14),
    ("paper", 64): (33.55, 67.09), ("paper", 128): (132.15, 264.28),
}
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


@dataclass(frozen=True)
class Estimate:
    """Seconds per frame and how they were obtained (``measured`` on the device, or the rough FLOP model)."""

    seconds: float
    measured: bool
    calls: tuple  # (forward, backward) network calls per frame
    detail: str


def estimate_seconds(card: dict, options: TranslateOptions, gpu: bool = False, cpu_count: int | None = None,
                     timing: dict | None = None) -> Estimate | None:
    """Seconds for one frame: the engine's network calls per frame × the time of one call.

    ``timing`` is the device probe's measurement for this model on this device (``forward_s``,
    ``forward_backward_s``, batch 1): then the estimate is measured. Without it, the rough FLOP model
    (:data:`GFLOP_PER_CALL`) over an assumed throughput; None when the card does not give preset and size.
    """
    try:
        calls = options.network_evaluations()
    except Exception:  # noqa: BLE001 - a method without diffusion models: no estimate
        return None
    plain, backward = calls.plain_forward, calls.backward
    if timing and timing.get("forward_s") and timing.get("forward_backward_s"):
        forward_s, both_s = float(timing["forward_s"]), float(timing["forward_backward_s"])
        seconds = plain * forward_s + backward * both_s
        detail = (f"measured: {1000 * forward_s:.0f} ms per network call, {1000 * both_s:.0f} ms with its "
                  f"gradient; {calls.forward} calls per frame")
        return Estimate(seconds, True, tuple(calls), detail)
    preset, size = card.get("preset"), card.get("image_size")
    flops = GFLOP_PER_CALL.get((preset, int(size))) if size else None
    if flops is None and preset and size and (preset, 128) in GFLOP_PER_CALL:
        forward128, both128 = GFLOP_PER_CALL[(preset, 128)]  # another size: the cost scales with the pixels
        flops = (forward128 * (float(size) / 128.0) ** 2, both128 * (float(size) / 128.0) ** 2)
    if flops is None:
        return None
    cores = max(1, cpu_count if cpu_count is not None else (os.cpu_count() or 1))
    throughput = GPU_GFLOPS_ASSUMED if gpu else CPU_GFLOPS_PER_CORE * min(cores, 16)
    seconds = (plain * flops[0] + backward * flops[1]) / throughput
    return Estimate(seconds, False, tuple(calls), f"rough: from the size of a {preset} network")


# --- the trust number of each translated frame (ddic.translate.trust) -----------------------------------------

ATTRIBUTE_RMSE = "DDIC.USRoundTripRMSE"
ATTRIBUTE_THRESHOLD = "DDIC.TrustThreshold"
ATTRIBUTE_TRUSTED = "DDIC.Trusted"
ATTRIBUTE_WARNING = "DDIC.TrustWarning"
UNTRUSTED_SUFFIX = " (UNTRUSTED)"
"""Added to the name of a pseudo-MRI whose frame the US model does not represent (the node attributes say
why); both are kept in a saved scene."""


@dataclass(frozen=True)
class FrameTrust:
    """One translated frame's trust number, from the ``done`` event of ``ddic translate``."""

    rmse: float | None  # US round-trip RMSE over the head, [-1, 1] scale
    threshold: float | None  # above it the frame is flagged (from the US model's card)
    trusted: bool | None  # None: not measured (e.g. the round-trip check was off)
    orientation_source: str | None = None
    anterior_right: bool | None = None

    def line(self, label: str) -> str:
        """The log line of this frame."""
        if self.rmse is None or self.trusted is None:
            return f"{label}: US round trip not measured (no trust number)."
        if self.trusted:
            return (f"{label}: US round-trip RMSE {self.rmse:.3f} ≤ threshold {self.threshold:.3f}: the US model "
                    "represents this frame.")
        return (f"{label}: WARNING US round-trip RMSE {self.rmse:.3f} > threshold {self.threshold:.3f}: "
                + untrusted_advice())

    def attributes(self) -> dict:
        """Node attributes recording the number and the verdict on the pseudo-MRI."""
        out = {ATTRIBUTE_TRUSTED: {True: "true", False: "false", None: "not measured"}[self.trusted]}
        if self.rmse is not None:
            out[ATTRIBUTE_RMSE] = f"{self.rmse:.4f}"
        if self.threshold is not None:
            out[ATTRIBUTE_THRESHOLD] = f"{self.threshold:.4f}"
        if self.trusted is False:
            out[ATTRIBUTE_WARNING] = untrusted_advice()
        return out


def untrusted_advice() -> str:
    return ("the US model does not represent this frame (it lies outside what the model was trained on), so its "
            "pseudo-MRI must not be trusted. Check the frame (plane, head found, artefacts) or use a model trained "
            "on such data.")


def frame_trusts(done: dict | None, count: int) -> list[FrameTrust]:
    """The trust of each of ``count`` outputs, in output order (not measured where the event does not say)."""
    frames = list((done or {}).get("frames") or [])
    out = []
    for index in range(count):
        item = frames[index] if index < len(frames) and isinstance(frames[index], dict) else {}
        rmse, threshold, trusted = item.get("us_round_trip_rmse"), item.get("trust_threshold"), item.get("trusted")
        out.append(FrameTrust(None if rmse is None else float(rmse), None if threshold is None else float(threshold),
                              None if trusted is None else bool(trusted), item.get("orientation_source"),
                              item.get("anterior_right")))
    return out


def trust_warning(trusts: list[FrameTrust]) -> str:
    """One sentence for the status line when any frame is untrusted, else ""."""
    bad = [i for i, t in enumerate(trusts) if t.trusted is False]
    if not bad:
        return ""
    if len(trusts) == 1:
        return "WARNING: " + untrusted_advice()
    items = ", ".join(str(i + 1) for i in bad)
    return (f"WARNING: {len(bad)} of {len(trusts)} frames (items {items}) are UNTRUSTED: the US model does not "
            "represent them, so their pseudo-MRI must not be trusted (see the log).")


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


def estimate_text(card: dict, options: TranslateOptions, device, frames: int = 1, timing: dict | None = None,
                  measuring: bool = False) -> str:
    """'Estimated time: ≈ 2 s on NVIDIA RTX A4000 (CUDA, 14.2 of 16.0 GB free) (measured: …).' for ``frames``.

    ``device`` is the :class:`~DDICSlicerLib.device.DeviceInfo` the run will use (CPU when forced), so
    the estimate is for that device and names it; ``timing`` the probe's measurement of this model there
    (None: the rough FLOP model, labelled so; ``measuring``: a measurement is under way); the device's
    note (no PyTorch yet, little GPU memory, ...) follows.
    """
    estimate = estimate_seconds(card, options, gpu=device.kind == "cuda", cpu_count=device.cpu_count, timing=timing)
    if estimate is None:
        return "Time estimate unavailable (the model card does not give preset and size)."
    per = f" for {frames} frames" if frames > 1 else ""
    text = f"Estimated time{per}: ≈ {format_duration(estimate.seconds * frames)} on {device.label()}"
    detail = estimate.detail
    if not estimate.measured:
        detail += "; measuring this model on this device…" if measuring else ""
    return f"{text} ({detail}). {device.note}".strip()
