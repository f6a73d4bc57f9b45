"""A run's tensors: the checkpoint and the weights, written atomically after every epoch.

The files of a run folder are named, and model.json and metrics.jsonl read and
written, in :mod:`vaelab.records`; this module writes and reads the tensors:

- ``checkpoint.safetensors``: model weights, Adam state and the metric history
  in one file, so that one atomic rename moves the run from one epoch to the
  next (a kill at any moment leaves the previous epoch's checkpoint whole).
- ``weights.safetensors``: the model weights alone, for users and other tools.
- ``metrics.jsonl`` (regenerated from the checkpoint's history).
"""

from __future__ import annotations

import errno
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from vaelab.errors import RunError
from vaelab.io import atomic_write, write_safetensors
from vaelab.records import CHECKPOINT, METRICS, WEIGHTS, metrics_text, read_metrics

FORMAT = "vaelab-checkpoint-1"


@dataclass
class Checkpoint:
    """What a resumed run needs: weights, optimiser state, epochs done, history."""

    epoch: int
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any] | None
    history: list[dict[str, Any]] = field(default_factory=list)


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    try:
        # Always CPU tensors: a run trained on a GPU resumes, encodes and evaluates on a CPU.
        write_safetensors(path, tensors, metadata)
    except (SafetensorError, OSError) as error:  # the previous file is untouched
        if isinstance(error, OSError) and error.errno != errno.ENOSPC:
            raise  # e.g. permission denied: the CLI names the path in one line
        raise RunError(f"{path}: could not be written (no space left on the device): free some space, then "
                       f"`vaelab train --resume {path.parent}`") from None


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], str]:
    """An optimiser's state as named tensors and JSON; a phased one's (one Adam per phase) phase by phase."""
    if "phases" in state:
        tensors: dict[str, torch.Tensor] = {}
        metas = []
        for i, phase_state in enumerate(state["phases"]):
            phase_tensors, meta = _flatten_one(phase_state, f"optim/phase{i}/")
            tensors.update(phase_tensors)
            metas.append(meta)
        return tensors, json.dumps({"phases": metas})
    tensors, meta = _flatten_one(state, "optim/")
    return tensors, json.dumps(meta)


def _flatten_one(state: dict[str, Any], prefix: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, scalars = {}, {}
    for index, slots in state["state"].items():
        for key, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}{index}/{key}"] = value
            else:
                scalars[f"{index}/{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], packed: str) -> dict[str, Any]:
    meta = json.loads(packed)
    if "phases" in meta:
        return {"phases": [_unflatten_one({name[len(f"optim/phase{i}/"):]: value for name, value in tensors.items()
                                           if name.startswith(f"optim/phase{i}/")}, phase_meta)
                           for i, phase_meta in enumerate(meta["phases"])]}
    return _unflatten_one({name[len("optim/"):]: value for name, value in tensors.items()}, meta)


def _unflatten_one(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        index, key = name.split("/", 1)
        state.setdefault(int(index), {})[key] = value
    for name, value in meta["scalars"].items():
        index, key = name.split("/", 1)
        state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(run_dir: Path, model: torch.nn.Module, optimizer: Any,
                    epoch: int, history: list[dict[str, Any]]) -> None:
    """Write the checkpoint of ``epoch`` (then weights and metrics) atomically."""
    weights = {f"model/{k}": v for k, v in model.state_dict().items()}
    metadata = {"format": FORMAT, "epoch": str(epoch), "history": json.dumps(history)}
    tensors = dict(weights)
    if optimizer is not None:
        optim_tensors, metadata["optimizer"] = _flatten_optimizer(optimizer.state_dict())
        tensors.update(optim_tensors)
    _save_tensors(run_dir / CHECKPOINT, tensors, metadata)
    write_derived(run_dir, model.state_dict(), epoch, history)


def write_derived(run_dir: Path, model_state: dict[str, torch.Tensor], epoch: int,
                  history: list[dict[str, Any]]) -> None:
    """Rewrite ``weights.safetensors`` and ``metrics.jsonl`` from the checkpoint's content.

    The checkpoint is the one source of truth of a run; these two files are copies
    for users and other tools. A kill between the checkpoint's rename and these
    writes leaves them one epoch behind, which :func:`load_trained_state` ignores and
    a resume repairs.
    """
    _save_tensors(run_dir / WEIGHTS, model_state, {"format": "vaelab-weights-1", "epoch": str(epoch)})
    atomic_write(run_dir / METRICS, metrics_text(history))


def load_checkpoint(run_dir: Path) -> Checkpoint:
    """Read ``checkpoint.safetensors``; a missing or corrupt file is a :class:`RunError`."""
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise RunError(f"{run_dir}: no {CHECKPOINT}: the run has not finished an epoch yet; start it again")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise RunError(f"{path}: unreadable checkpoint ({error}): delete the run directory and train again") from None
    if metadata.get("format") != FORMAT:
        raise RunError(f"{path}: not a vaelab checkpoint (format {metadata.get('format')!r})")
    model_state = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    optim_tensors = {k: v for k, v in tensors.items() if k.startswith("optim/")}
    try:
        optimizer_state = _unflatten_optimizer(optim_tensors, metadata["optimizer"]) if "optimizer" in metadata else None
        epoch, history = int(metadata["epoch"]), json.loads(metadata["history"])
        if epoch < 0 or not isinstance(history, list) or not all(isinstance(row, dict) for row in history):
            raise ValueError("epoch or history out of shape")
    except (KeyError, ValueError, TypeError):  # JSON errors are ValueErrors
        raise RunError(f"{path}: the checkpoint's epoch, history or optimiser state is damaged: delete the run "
                       "directory and train again") from None
    return Checkpoint(epoch, model_state, optimizer_state, history)


def load_trained_state(run_dir: Path) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """A run's weights and metric history, from its checkpoint (the source of truth) where there is one.

    Only the model's tensors are read from the checkpoint, not the optimiser's.
    A run folder without a checkpoint (weights exported alone) falls back to
    ``weights.safetensors`` and ``metrics.jsonl``.
    """
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        return load_weights(run_dir), read_metrics(run_dir)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            state = {k[len("model/"):]: handle.get_tensor(k) for k in handle.keys() if k.startswith("model/")}
        history = json.loads(metadata["history"])
    except (SafetensorError, OSError, ValueError, KeyError) as error:
        raise RunError(f"{path}: unreadable checkpoint ({error}): delete the run directory and train again") from None
    if metadata.get("format") != FORMAT:
        raise RunError(f"{path}: not a vaelab checkpoint (format {metadata.get('format')!r})")
    return state, history


def load_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """The model weights of a run (``weights.safetensors``)."""
    path = Path(run_dir) / WEIGHTS
    if not path.is_file():
        raise RunError(f"{run_dir}: no {WEIGHTS}: not a trained vaelab run (train it with `vaelab train`)")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise RunError(f"{path}: unreadable weights ({error}): train the run again") from None
