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

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..diffusion.checkpoint import (
    CHECKPOINT_DIR,
    JSON_NAME,
    TENSORS_NAME,
    checkpoint_dir,
    has_checkpoint,
)
from ..errors import DDICModelError
from ..io.atomic import atomic_path, write_text_atomic
from ..io.modelfile import sha256_file

__all__ = ["CHECKPOINT_DIR", "STATE_FORMAT", "CycleGANState", "checkpoint_dir", "has_checkpoint",
           "load_state", "read_record", "save_state"]

STATE_FORMAT = "ddic-cyclegan-train-state"
STATE_FORMAT_VERSION = 1
ALL_PARAMETERS = "all"


@dataclass
class CycleGANState:
    """What :func:`load_state` returns, ready for ``load_state_dict`` and the pools."""

    step: int
    nets: dict[str, torch.Tensor]
    optimizers: dict[str, dict]  # name → torch optimizer state_dict
    pools: dict[str, torch.Tensor | None]
    record: dict


def _optimizer_tensors(prefix: str, optimizer: torch.optim.Optimizer, names: list[str]) -> tuple[dict, list]:
    """Per-parameter state as ``<prefix>.<param name>.<field>`` tensors; the groups as JSON."""
    state = optimizer.state_dict()
    tensors, groups = {}, []
    for index, per_param in state["state"].items():
        for key, value in per_param.items():
            value = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"{prefix}.{names[index]}.{key}"] = value.detach().to("cpu").contiguous()
    for group in state["param_groups"]:
        group = dict(group)
        members = [names[i] for i in group["params"]]
        group["params"] = ALL_PARAMETERS if members == names else members
        groups.append({k: list(v) if isinstance(v, tuple) else v for k, v in group.items()})
    return tensors, groups


def _optimizer_state(prefix: str, tensors: dict, groups: list, names: list[str]) -> dict:
    """The inverse of :func:`_optimizer_tensors`, keyed by parameter index as torch expects."""
    index = {name: i for i, name in enumerate(names)}
    state: dict[int, dict] = {}
    start = f"{prefix}."
    for key, value in tensors.items():
        if not key.startswith(start):
            continue
        name, _, field = key[len(start):].rpartition(".")
        if name not in index:
            raise DDICModelError(f"The checkpoint's {prefix} state names an unknown parameter {name!r}.")
        state.setdefault(index[name], {})[field] = value
    out_groups = []
    for group in groups:
        group = dict(group)
        members = names if group["params"] == ALL_PARAMETERS else group["params"]
        unknown = [n for n in members if n not in index]
        if unknown:
            raise DDICModelError(f"The checkpoint's {prefix} names unknown parameters ({unknown[0]}, …).")
        group["params"] = [index[n] for n in members]
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
        out_groups.append(group)
    return {"state": state, "param_groups": out_groups}


def save_state(out_dir: str | Path, step: int, nets: torch.nn.Module,
               optimizers: dict[str, tuple[torch.optim.Optimizer, list[str]]],
               pools: dict[str, torch.Tensor | None], record: dict) -> Path:
    """Write the checkpoint of ``step``. ``optimizers`` maps a name to (optimizer, the ``nets`` parameter
    names it was given, in order). Returns the JSON path."""
    from safetensors.torch import save_file

    tensors = {f"net.{k}": v.detach().to("cpu").contiguous() for k, v in nets.state_dict().items()}
    groups = {}
    for name, (optimizer, names) in optimizers.items():
        optim_tensors, groups[name] = _optimizer_tensors(name, optimizer, names)
        tensors.update(optim_tensors)
    tensors.update({f"pool.{k}": v for k, v in pools.items() if v is not None})
    folder = checkpoint_dir(out_dir)
    with atomic_path(folder / TENSORS_NAME) as tmp:
        save_file(tensors, str(tmp), metadata={"format": STATE_FORMAT, "step": str(step)})
        digest = sha256_file(tmp)
    record = dict(record, format=STATE_FORMAT, format_version=STATE_FORMAT_VERSION, step=step,
                  tensors_file=TENSORS_NAME, tensors_sha256=digest, optimizer_param_groups=groups,
                  pools=sorted(pools))
    json_path = folder / JSON_NAME
    write_text_atomic(json_path, json.dumps(record, indent=2) + "\n")
    return json_path


def read_record(out_dir: str | Path) -> dict:
    """The JSON half of a checkpoint, checked for format; raises a clear error if absent or damaged."""
    path = checkpoint_dir(out_dir) / JSON_NAME
    if not path.is_file():
        raise DDICModelError(
            f"The checkpoint folder {path.parent} has no {JSON_NAME}: the run was interrupted before its "
            "first checkpoint finished. Delete that folder to start again."
        )
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DDICModelError(f"{path} is not valid JSON ({exc}); the checkpoint is damaged.") from exc
    if not isinstance(record, dict) or record.get("format") != STATE_FORMAT:
        raise DDICModelError(
            f"{path} is not a CycleGAN training checkpoint (format is not {STATE_FORMAT!r}); "
            "is --out the folder of another kind of run?"
        )
    if int(record.get("format_version", 0)) > STATE_FORMAT_VERSION:
        raise DDICModelError(f"{path} was written by a newer DDICSlicer; update the package to resume it.")
    return record


def load_state(out_dir: str | Path, optimizer_names: dict[str, list[str]]) -> CycleGANState:
    """Read and verify a checkpoint; ``optimizer_names`` gives each optimizer's parameter names in order."""
    from safetensors import SafetensorError, safe_open

    record = read_record(out_dir)
    tensors_path = checkpoint_dir(out_dir) / record.get("tensors_file", TENSORS_NAME)
    step = int(record["step"])
    if not tensors_path.is_file() or sha256_file(tensors_path) != record.get("tensors_sha256"):
        raise DDICModelError(
            f"{tensors_path} is missing or does not match {JSON_NAME} (different SHA-256): the checkpoint "
            "was torn by a crash or edited. Delete the checkpoint folder to restart, or restore it from a copy."
        )
    try:
        with safe_open(str(tensors_path), framework="pt") as handle:
            if (handle.metadata() or {}).get("step") != str(step):
                raise DDICModelError(f"{tensors_path} holds a different step than {JSON_NAME} says ({step}).")
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - safe_open is not a dict
    except (SafetensorError, OSError) as exc:
        raise DDICModelError(f"{tensors_path} is not a readable safetensors file ({exc}).") from exc
    groups = record.get("optimizer_param_groups", {})
    optimizers = {name: _optimizer_state(name, tensors, groups.get(name, []), names)
                  for name, names in optimizer_names.items()}
    return CycleGANState(
        step=step,
        nets={k[len("net."):]: v for k, v in tensors.items() if k.startswith("net.")},
        optimizers=optimizers,
        pools={name: tensors.get(f"pool.{name}") for name in record.get("pools", [])},
        record=record,
    )
