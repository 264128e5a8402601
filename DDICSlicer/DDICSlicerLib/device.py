"""Which device a translation will run on, found up front, so the panel's estimate is for that device.

The engine picks CUDA when PyTorch sees a CUDA GPU and the CPU otherwise (``ddic.translate.device``
``select_device("auto")``; MPS is not used: SAM gives wrong masks on it, facebookresearch/segment-anything
#458, and the diffusion models are untested there). Torch must not be imported into Slicer's own process,
so :func:`probe` runs in a short background process (``python -m DDICSlicerLib.device``) that prints
one JSON event line, ``{"event": "done", "device": {...}}``, which the panel reads with its usual
:class:`~DDICSlicerLib.process.WorkerProcess`. :func:`device_info` turns that answer (or its absence)
into a :class:`DeviceInfo` for the choices on the panel (Force CPU).

Given ``--model PATH`` the probe also times that (US) model's network on the device a translation would use
(:func:`time_network`: one batch-1 forward and one forward + input-gradient backward, as the translation
calls it, a few repetitions within :data:`TIMING_BUDGET_S`), so the panel's estimate is the engine's count of
network calls per frame times the measured cost of one call on this machine (``DDICSlicerLib.translation``).
``--cpu`` times on the CPU while still reporting the GPU (Force CPU).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass

GIB = 1024 ** 3
TIMING_BUDGET_S = 3.0
"""Seconds of repeated timing per kind of call (after one warm-up call); at least one repetition is made."""
TIMING_REPEATS = 5
LOW_GPU_MEMORY_BYTES = 2 * GIB  # below this much free memory a translation may run out of GPU memory


@dataclass(frozen=True)
class DeviceInfo:
    """The device a run will use: ``kind`` ``cuda`` or ``cpu``, a readable name, memory, and a note."""

    kind: str
    name: str
    cpu_count: int
    free_bytes: int | None = None
    total_bytes: int | None = None
    note: str = ""

    def label(self) -> str:
        if self.kind == "cuda":
            memory = ""
            if self.free_bytes is not None and self.total_bytes:
                memory = f", {self.free_bytes / GIB:.1f} of {self.total_bytes / GIB:.1f} GB free"
            return f"{self.name} (CUDA{memory})"
        return f"this CPU ({self.cpu_count} cores)"


def probe() -> dict:
    """What PyTorch sees in this process (run in the probe process, never in Slicer's)."""
    try:
        import torch
    except ImportError as exc:
        return {"torch": None, "error": str(exc)}
    info: dict = {"torch": torch.__version__, "cuda_build": getattr(torch.version, "cuda", None),
                  "cuda": False, "mps": False}
    try:
        if torch.backends.cuda.is_built() and torch.cuda.is_available():
            free, total = torch.cuda.mem_get_info(0)
            info.update(cuda=True, name=torch.cuda.get_device_name(0), free_bytes=int(free), total_bytes=int(total))
    except Exception as exc:  # noqa: BLE001 - a broken driver is reported, not raised
        info["cuda_error"] = f"{type(exc).__name__}: {exc}"
    mps = getattr(torch.backends, "mps", None)
    info["mps"] = bool(mps is not None and mps.is_available())
    return info


def probe_command(python: str | None = None, model: str | None = None, cpu: bool = False) -> list[str]:
    argv = [python or sys.executable, "-m", "DDICSlicerLib.device"]
    if model:
        argv += ["--model", str(model)]
    if cpu:
        argv.append("--cpu")
    return argv


def _median_seconds(call, synchronise, repeats: int, budget_s: float) -> tuple[float, int]:
    import time

    call()  # warm-up: first-call allocations, kernel selection
    synchronise()
    times: list[float] = []
    spent = 0.0
    while len(times) < max(1, repeats) and (not times or spent < budget_s):
        start = time.perf_counter()
        call()
        synchronise()
        times.append(time.perf_counter() - start)
        spent += times[-1]
    times.sort()
    return times[len(times) // 2], len(times)


def time_network(model, device: str = "auto", repeats: int = TIMING_REPEATS,
                 budget_s: float = TIMING_BUDGET_S) -> dict:
    """Seconds of one batch-1 forward and one forward + input-gradient backward of ``model``'s network.

    ``model``: a model folder or card (the US model: the translation's calls are mostly of the same network
    size). The network is built from the card with untrained weights (same architecture, same cost; the
    weights need not be read) and called exactly as the translation calls it: the engine's
    :class:`~ddic.diffusion.denoisers.UNetDenoiser` on the device :func:`ddic.translate.device.select_device`
    picks, in bf16 on CUDA as ``--precision auto`` does.
    """
    import torch
    from ddic.diffusion.denoisers import UNetDenoiser
    from ddic.diffusion.networks import build_unet
    from ddic.translate.device import configure_backends, select_device, use_bf16

    from .translation import read_model_card

    card = read_model_card(model)
    if not card.get("network") or not card.get("image_size"):
        raise ValueError(f"{model}: the model card does not describe its network and size.")
    target = select_device(device)
    configure_backends(target)
    size = int(card["image_size"])
    denoiser = UNetDenoiser(build_unet(card["network"]), target, bf16=use_bf16("auto", target),
                            prediction=(card.get("schedule") or {}).get("prediction", "epsilon"))
    x = torch.randn(1, 1, size, size, device=target)
    t = 500

    def synchronise() -> None:
        if target.type == "cuda":
            torch.cuda.synchronize(target)

    def forward() -> None:
        with torch.no_grad():
            denoiser(x, t)

    def forward_backward() -> None:
        leaf = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            torch.autograd.grad(denoiser(leaf, t).sum(), leaf)

    forward_s, n_forward = _median_seconds(forward, synchronise, repeats, budget_s)
    both_s, n_both = _median_seconds(forward_backward, synchronise, repeats, budget_s)
    return {"device_kind": target.type, "device": str(target), "image_size": size, "preset": card.get("preset"),
            "forward_s": forward_s, "forward_backward_s": both_s, "repeats": [n_forward, n_both],
            "threads": torch.get_num_threads(), "batch": 1}


def device_info(probed: dict | None, force_cpu: bool = False, cpu_count: int | None = None) -> DeviceInfo:
    """The device a translation will use, with a note that says what the user may want to know."""
    cores = max(1, cpu_count if cpu_count is not None else (os.cpu_count() or 1))
    cpu = "this CPU"
    if force_cpu:
        return DeviceInfo("cpu", cpu, cores, note="(Force CPU is ticked.)")
    if probed is None:
        return DeviceInfo("cpu", cpu, cores, note="(Looking for a GPU…)")
    if probed.get("torch") is None:
        return DeviceInfo("cpu", cpu, cores, note="(PyTorch is not installed yet; a GPU is looked for once it is.)")
    if probed.get("cuda"):
        info = DeviceInfo("cuda", probed.get("name") or "CUDA GPU", cores, probed.get("free_bytes"),
                          probed.get("total_bytes"))
        free = probed.get("free_bytes")
        if free is not None and free < LOW_GPU_MEMORY_BYTES:
            return DeviceInfo(info.kind, info.name, cores, info.free_bytes, info.total_bytes,
                              note=f"Only {free / GIB:.1f} GB of GPU memory is free: close other GPU programs, "
                                   "or tick Force CPU if the run stops for lack of memory.")
        return info
    if probed.get("cuda_error"):
        note = f"(The GPU could not be used: {probed['cuda_error']}; see Troubleshooting in the README.)"
    elif probed.get("mps"):
        note = "(An Apple GPU was found; DDIC runs on the CPU on macOS.)"
    elif not probed.get("cuda_build"):
        note = (f"(PyTorch {probed.get('torch')} is a CPU-only build; for an NVIDIA GPU reinstall it from the "
                "PyTorch Utils module with a CUDA backend.)")
    else:
        note = "(No CUDA GPU found.)"
    return DeviceInfo("cpu", cpu, cores, note=note)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="DDICSlicerLib.device", description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="also time this model's network (folder or card)")
    parser.add_argument("--cpu", action="store_true", help="time on the CPU (Force CPU)")
    args = parser.parse_args(argv)
    event: dict = {"event": "done", "device": probe()}
    if args.model and event["device"].get("torch"):
        try:
            event["timing"] = time_network(args.model, "cpu" if args.cpu else "auto")
        except Exception as exc:  # noqa: BLE001 - no diffusers yet, a broken card: the estimate stays rough
            event["timing_error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(event), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
