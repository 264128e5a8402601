"""The resumable state of a CycleGAN run: ``checkpoint/train_state.safetensors`` + ``train_state.json``.

The same layout and safeguards as the diffusion trainer's checkpoint (:mod:`ddic.diffusion.checkpoint`,
whose folder and file names and helpers are reused): tensors in safetensors under readable keys, never
pickled — ``net.<module>.<param>`` for the four networks, ``optim_g.<param>.<field>`` /
``optim_d.<param>.<field>`` for the two Adam optimizers, ``pool.<name>`` for the image pools — and
everything else in JSON, which records the tensors' SHA-256 (the step is also in the tensor file's
metadata) so that a pair torn by a crash is refused, not resumed. A distinct ``format`` keeps the two
trainers from resuming each other's runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..diffusion.checkpoint import (
    CHECKPOINT_DIR,
    checkpoint_dir,
    has_checkpoint,
    optimizer_state,
    optimizer_tensors,
    read_state_record,
    read_state_tensors,
    write_state_files,
)

__all__ = ["CHECKPOINT_DIR", "STATE_FORMAT", "CycleGANState", "checkpoint_dir", "has_checkpoint",
           "load_state", "read_record", "save_state"]

STATE_FORMAT = "ddic-cyclegan-train-state"
STATE_FORMAT_VERSION = 1


@dataclass
class CycleGANState:
    """What :func:`load_state` returns, ready for ``load_state_dict`` and the pools."""

    step: int
    nets: dict[str, torch.Tensor]
    optimizers: dict[str, dict]  # name → torch optimizer state_dict
    pools: dict[str, torch.Tensor | None]
    record: dict


def save_state(out_dir: str | Path, step: int, nets: torch.nn.Module,
               optimizers: dict[str, tuple[torch.optim.Optimizer, list[str]]],
               pools: dict[str, torch.Tensor | None], record: dict) -> Path:
    """Write the checkpoint of ``step``. ``optimizers`` maps a name to (optimizer, the ``nets`` parameter
    names it was given, in order). Returns the JSON path."""
    tensors = {f"net.{k}": v.detach().to("cpu").contiguous() for k, v in nets.state_dict().items()}
    groups = {}
    for name, (optimizer, names) in optimizers.items():
        optim_tensors, groups[name] = optimizer_tensors(name, optimizer, names)
        tensors.update(optim_tensors)
    tensors.update({f"pool.{k}": v for k, v in pools.items() if v is not None})
    return write_state_files(out_dir, step, tensors, STATE_FORMAT, STATE_FORMAT_VERSION, record,
                             optimizer_param_groups=groups, pools=sorted(pools))


def read_record(out_dir: str | Path) -> dict:
    """The JSON half of a checkpoint, checked for format; raises a clear error if absent or damaged."""
    return read_state_record(out_dir, STATE_FORMAT, STATE_FORMAT_VERSION, "CycleGAN",
                             "; is --out the folder of another kind of run?")


def load_state(out_dir: str | Path, optimizer_names: dict[str, list[str]]) -> CycleGANState:
    """Read and verify a checkpoint; ``optimizer_names`` gives each optimizer's parameter names in order."""
    record = read_record(out_dir)
    step, tensors = read_state_tensors(out_dir, record)
    groups = record.get("optimizer_param_groups", {})
    optimizers = {name: optimizer_state(name, tensors, groups.get(name, []), names)
                  for name, names in optimizer_names.items()}
    return CycleGANState(
        step=step,
        nets={k[len("net."):]: v for k, v in tensors.items() if k.startswith("net.")},
        optimizers=optimizers,
        pools={name: tensors.get(f"pool.{name}") for name in record.get("pools", [])},
        record=record,
    )
