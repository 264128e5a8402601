"""The resumable state of a training run: ``checkpoint/train_state.safetensors`` + ``train_state.json``.

Tensors (raw weights, EMA weights, AdamW moments and step counters) go to safetensors under readable
keys — ``model.<param>``, ``ema.<param>``, ``optim.<param>.<exp_avg|exp_avg_sq|step>`` — so that nothing
is ever unpickled and a checkpoint can be inspected with any safetensors reader. Everything else (the
step, the run's config, AdamW's hyper-parameters, elapsed time) is JSON. Both files are written
atomically, tensors first; the JSON records the tensors' SHA-256 and the step is also stored in the
tensor file's metadata, so a pair torn by a crash between the two writes is detected, not resumed.

No random-number-generator state is stored: every step's randomness is derived from (seed, step, rank),
which is what makes a resumed run bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import DDICModelError
from ..io.atomic import atomic_path, write_text_atomic
from ..io.modelfile import sha256_file

STATE_FORMAT = "ddic-train-state"
STATE_FORMAT_VERSION = 1
CHECKPOINT_DIR = "checkpoint"
TENSORS_NAME = "train_state.safetensors"
JSON_NAME = "train_state.json"
ALL_PARAMETERS = "all"
"""Stands for "every parameter, in ``named_parameters()`` order" in a param group (the usual single group)."""


@dataclass
class TrainState:
    """What :func:`load_train_state` returns: tensors ready for ``load_state_dict`` plus the JSON record."""

    step: int
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor]
    optimizer: dict  # a torch optimizer state_dict, keyed by parameter index as torch expects
    record: dict  # the whole JSON (config, elapsed_s, …)


def checkpoint_dir(out_dir: str | Path) -> Path:
    return Path(out_dir) / CHECKPOINT_DIR


def has_checkpoint(out_dir: str | Path) -> bool:
    """Whether ``out_dir`` holds anything in its checkpoint folder (even a partial write)."""
    folder = checkpoint_dir(out_dir)
    return folder.is_dir() and any(folder.iterdir())


def optimizer_tensors(prefix: str, optimizer: torch.optim.Optimizer, names: list[str]) -> tuple[dict, list]:
    """Flatten an Adam-family optimizer's per-parameter state to ``<prefix>.<name>.<key>`` tensors and its
    groups to JSON (``names``: the parameter names it was given, in order). Shared with the CycleGAN trainer."""
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


def optimizer_state(prefix: str, tensors: dict, groups: list, names: list[str], label: str | None = None) -> dict:
    """The inverse of :func:`optimizer_tensors`: a torch optimizer state_dict keyed by parameter index.

    ``label`` names the optimizer in errors (default: ``prefix``)."""
    label = label or prefix
    index = {name: i for i, name in enumerate(names)}
    state: dict[int, dict] = {}
    start = f"{prefix}."
    for key, value in tensors.items():
        if not key.startswith(start):
            continue
        name, _, field = key[len(start):].rpartition(".")
        if name not in index:
            raise DDICModelError(f"The checkpoint's {label} state names an unknown parameter {name!r}.")
        state.setdefault(index[name], {})[field] = value
    out_groups = []
    for group in groups:
        group = dict(group)
        members = names if group["params"] == ALL_PARAMETERS else group["params"]
        unknown = [n for n in members if n not in index]
        if unknown:
            raise DDICModelError(f"The checkpoint's {label} names unknown parameters ({unknown[0]}, …).")
        group["params"] = [index[n] for n in members]
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
        out_groups.append(group)
    return {"state": state, "param_groups": out_groups}


def write_state_files(out_dir: str | Path, step: int, tensors: dict[str, torch.Tensor], state_format: str,
                      format_version: int, record: dict, **fields) -> Path:
    """Write ``tensors`` then the JSON ``record`` (plus format, step, the tensors' SHA-256 and ``fields``),
    both atomically, tensors first. Returns the JSON path. Shared with the CycleGAN trainer."""
    from safetensors.torch import save_file

    folder = checkpoint_dir(out_dir)
    with atomic_path(folder / TENSORS_NAME) as tmp:
        save_file(tensors, str(tmp), metadata={"format": state_format, "step": str(step)})
        digest = sha256_file(tmp)
    record = dict(record, format=state_format, format_version=format_version, step=step,
                  tensors_file=TENSORS_NAME, tensors_sha256=digest, **fields)
    json_path = folder / JSON_NAME
    write_text_atomic(json_path, json.dumps(record, indent=2) + "\n")
    return json_path


def read_state_record(out_dir: str | Path, state_format: str, format_version: int, kind: str,
                      hint: str = ".") -> dict:
    """The JSON half of a checkpoint, checked for ``state_format``; raises a clear error if absent or damaged.

    ``kind`` and ``hint`` finish the refusal of another format: "… is not a {kind} training checkpoint
    (format is not …){hint}"."""
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
    if not isinstance(record, dict) or record.get("format") != state_format:
        raise DDICModelError(f"{path} is not a {kind} training checkpoint (format is not {state_format!r}){hint}")
    if int(record.get("format_version", 0)) > format_version:
        raise DDICModelError(f"{path} was written by a newer DDICSlicer; update the package to resume it.")
    return record


def read_state_tensors(out_dir: str | Path, record: dict) -> tuple[int, dict[str, torch.Tensor]]:
    """The step and the tensors of a checkpoint whose JSON is ``record``, after checking that the tensor
    file is the one the JSON recorded (SHA-256, and the step in its metadata)."""
    from safetensors import SafetensorError, safe_open

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
    return step, tensors


def save_train_state(out_dir: str | Path, step: int, model: torch.nn.Module, ema: torch.nn.Module,
                     optimizer: torch.optim.Optimizer, record: dict) -> Path:
    """Write the checkpoint of ``step``; ``model`` must be the unwrapped module whose parameters, in
    ``named_parameters()`` order, were handed to ``optimizer``. Returns the JSON path."""
    names = [name for name, _ in model.named_parameters()]
    tensors = {f"model.{k}": v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v.detach().to("cpu").contiguous() for k, v in ema.state_dict().items()})
    optim_tensors, groups = optimizer_tensors("optim", optimizer, names)
    tensors.update(optim_tensors)
    return write_state_files(out_dir, step, tensors, STATE_FORMAT, STATE_FORMAT_VERSION, record,
                             optimizer_param_groups=groups)


def read_train_record(out_dir: str | Path) -> dict:
    """The JSON half of a checkpoint, checked for format; raises a clear error if absent or damaged."""
    return read_state_record(out_dir, STATE_FORMAT, STATE_FORMAT_VERSION, "DDIC")


def load_train_state(out_dir: str | Path, model: torch.nn.Module) -> TrainState:
    """Read and verify a checkpoint; ``model`` (any module of the same network) supplies parameter order."""
    record = read_train_record(out_dir)
    step, tensors = read_state_tensors(out_dir, record)

    def part(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

    names = [name for name, _ in model.named_parameters()]
    optimizer = optimizer_state("optim", tensors, record.get("optimizer_param_groups", []), names,
                                label="optimizer")
    return TrainState(step=step, model=part("model."), ema=part("ema."), optimizer=optimizer, record=record)
