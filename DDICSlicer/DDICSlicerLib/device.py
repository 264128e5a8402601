"""Which device a translation will run on, found up front, so the panel's estimate is for that device.

The engine picks CUDA when PyTorch sees a CUDA GPU and the CPU otherwise (``ddic.translate.device``
``select_device("auto")``; MPS is not used: SAM gives wrong masks on it, facebookresearch/segment-anything
#458, and the diffusion models are untested there). Torch must not be imported into Slicer's own process,
so :func:`probe` runs in a short background process (``python -m DDICSlicerLib.device``) that prints
one JSON event line, ``{"event": "done", "device": {...}}``, which the panel reads with its usual
:class:`~DDICSlicerLib.process.WorkerProcess`. :func:`device_info` turns that answer (or its absence)
into a :class:`DeviceInfo` for the choices on the panel (Force CPU).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass

GIB = 1024 ** 3
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


def probe_command(python: str | None = None) -> list[str]:
    return [python or sys.executable, "-m", "DDICSlicerLib.device"]


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


def main() -> int:
    print(json.dumps({"event": "done", "device": probe()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
