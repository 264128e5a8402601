"""The little that data-parallel training needs from ``torch.distributed``, in one place.

``torchrun --nproc_per_node K`` starts K copies of the same command and tells each its place through
the environment (WORLD_SIZE, RANK, LOCAL_RANK). A plain single process has none of these and never
creates a process group, so every helper here is a no-op there; the training loop stays one code path.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch

from ..errors import DDICInputError

COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=60)
"""How long ranks wait for each other: rank 0 alone samples the preview grid and writes checkpoints
while the others wait in a collective, which can take minutes for a large model on a slow disk."""


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in a (possibly one-process) training job."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes files and reports progress."""
        return self.rank == 0


def detect() -> DistInfo:
    """Read torchrun's environment; without it this is a single process."""
    try:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise DDICInputError(f"WORLD_SIZE / RANK / LOCAL_RANK must be integers ({exc}); start with torchrun.") from exc
    if world_size < 1 or not 0 <= rank < world_size:
        raise DDICInputError(f"Inconsistent torchrun environment: RANK {rank} with WORLD_SIZE {world_size}.")
    return DistInfo(world_size=world_size, rank=rank, local_rank=local_rank)


def training_device(requested: str, info: DistInfo) -> torch.device:
    """``auto`` → CUDA when available; under torchrun each process gets the GPU of its LOCAL_RANK."""
    if requested not in ("auto", "cpu", "cuda"):
        raise DDICInputError(f"Unknown device {requested!r}; choose auto, cpu or cuda.")
    use_cuda = torch.cuda.is_available() if requested == "auto" else requested == "cuda"
    if not use_cuda:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DDICInputError("--device cuda was requested, but PyTorch sees no CUDA GPU. Use --device cpu.")
    if info.local_rank >= torch.cuda.device_count():
        raise DDICInputError(
            f"LOCAL_RANK {info.local_rank} has no GPU: only {torch.cuda.device_count()} visible. "
            "Start at most one process per GPU (torchrun --nproc_per_node)."
        )
    device = torch.device("cuda", info.local_rank)
    torch.cuda.set_device(device)
    return device


def init(info: DistInfo, device: torch.device) -> None:
    """Create the process group (gloo on CPU, nccl on CUDA); nothing for a single process."""
    if not info.is_distributed or torch.distributed.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs = {"device_id": device} if device.type == "cuda" else {}
    torch.distributed.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size,
                                         timeout=COLLECTIVE_TIMEOUT, **kwargs)


def barrier(info: DistInfo) -> None:
    if info.is_distributed and torch.distributed.is_initialized():
        torch.distributed.barrier()


def mean_across_ranks(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The element-wise mean over all processes (the tensor itself in a single process)."""
    if not (info.is_distributed and torch.distributed.is_initialized()):
        return tensor
    tensor = tensor.clone()
    torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
    return tensor / info.world_size


def all_ok(ok: bool, info: DistInfo, device: torch.device) -> bool:
    """True only if ``ok`` holds on every process: lets all ranks stop together instead of hanging."""
    if not (info.is_distributed and torch.distributed.is_initialized()):
        return ok
    flag = torch.tensor([1 if ok else 0], dtype=torch.int32, device=device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
    return bool(flag.item())


def shutdown(info: DistInfo) -> None:
    """Destroy the process group at the end (torchrun warns about leaked groups otherwise)."""
    if info.is_distributed and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
