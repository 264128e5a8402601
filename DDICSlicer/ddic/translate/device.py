"""Device and precision choice: CUDA when present, else CPU; bf16 network calls on CUDA only."""

from __future__ import annotations

import torch

from ..errors import DDICInputError


def select_device(requested: str = "auto") -> torch.device:
    """``auto`` → ``cuda`` if available else ``cpu``; an explicit CUDA request without CUDA is an error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DDICInputError(
            f"Device {requested!r} was requested but this PyTorch has no usable CUDA GPU "
            f"(torch {torch.__version__}). Use --device cpu (slower), or install a CUDA build of PyTorch."
        )
    return device


def use_bf16(precision: str, device: torch.device) -> bool:
    """Whether network calls run in bf16: ``auto`` does so on CUDA; bf16 on the CPU is refused (slow)."""
    if precision == "bf16" and device.type != "cuda":
        raise DDICInputError("bf16 precision needs a CUDA device; use --precision fp32 (or auto) on the CPU.")
    return device.type == "cuda" and precision in ("auto", "bf16")


def configure_backends(device: torch.device) -> None:
    """TF32 matmuls on CUDA (the fp32 parts), deterministic cuDNN algorithm choice."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = False
