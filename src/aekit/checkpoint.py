"""Checkpoint files of a training run: naming, checking, finding the newest good one, pruning.

A run's folder holds ``checkpoint-eEEEEEE-bBBBBBB.safetensors`` files (epochs completed,
batches done in the epoch after), each written atomically by
:func:`aekit.io.write_checkpoint`, so the names sort in the order they were written. A file
is trusted only after its state has the expected keys and types (:func:`check_state`);
resuming skips a corrupt or partial file with a warning and takes the one before.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from .errors import ModelFileError
from .io import check_fields, read_checkpoint

__all__ = [
    "CHECKPOINT_FORMAT",
    "STATE_FIELDS",
    "check_state",
    "checkpoint_path",
    "clone_state",
    "find_checkpoint",
    "latest_checkpoint",
    "prune_checkpoints",
]

logger = logging.getLogger("aekit")

CHECKPOINT_FORMAT = "aekit-checkpoint"
_GLOB = "checkpoint-*.safetensors"
_TEMP_GLOB = ".checkpoint-*.tmp"  # left behind by a writer killed mid-write

# Top-level keys of a training state (see Trainer.state_dict) and their allowed types.
STATE_FIELDS: dict[str, type | tuple[type, ...]] = {
    "format": str,
    "model_config": dict,
    "train_config": dict,
    "module": dict,
    "optimizer": dict,
    "scheduler": (dict, type(None)),
    "callbacks": dict,
    "position": dict,
    "epoch_sums": torch.Tensor,
    "epoch_perm_state": torch.Tensor,
    "noise_state": torch.Tensor,
    "history": dict,
    "stop_reason": str,
    "elapsed": (int, float),
    "n_rows": int,
}


def checkpoint_path(folder: str | os.PathLike[str], epoch: int, batch: int) -> Path:
    """The file name of the checkpoint after ``epoch`` epochs and ``batch`` more batches."""
    return Path(folder) / f"checkpoint-e{epoch:06d}-b{batch:06d}.safetensors"


def check_state(state: object, source: str | os.PathLike[str]) -> dict[str, Any]:
    """Check the keys and types of a training state read from ``source``; return it.

    Raises
    ------
    ModelFileError
        If a key is missing, unknown or of the wrong type, or the format is not aekit's.
    """
    state = check_fields(state, STATE_FIELDS, source)
    if state["format"] != CHECKPOINT_FORMAT:
        raise ModelFileError(f"{source}: format {state['format']!r} is not {CHECKPOINT_FORMAT!r}")
    position = check_fields(state["position"], {"epoch": int, "batch": int}, f"{source} position")
    if min(position.values()) < 0:
        raise ModelFileError(f"{source}: negative position {position}")
    return state


def find_checkpoint(folder: str | os.PathLike[str] | None) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint in ``folder`` that reads and checks, with its state.

    Unreadable or malformed files are skipped with a warning on the ``aekit`` logger.
    """
    if folder is None or not Path(folder).is_dir():
        return None
    for path in sorted(Path(folder).glob(_GLOB), reverse=True):
        try:
            return path, check_state(read_checkpoint(path), path)
        except ModelFileError as exc:
            logger.warning("skipping unusable checkpoint %s: %s", path, exc)
    return None


def latest_checkpoint(folder: str | os.PathLike[str] | None) -> Path | None:
    """The newest usable checkpoint file in ``folder`` (None if there is none)."""
    found = find_checkpoint(folder)
    return None if found is None else found[0]


def prune_checkpoints(folder: str | os.PathLike[str], keep: int) -> None:
    """Delete all but the ``keep`` newest checkpoints, and temporary files of killed writes."""
    folder = Path(folder)
    for old in sorted(folder.glob(_GLOB))[:-keep]:
        old.unlink(missing_ok=True)
    for stale in folder.glob(_TEMP_GLOB):
        stale.unlink(missing_ok=True)


def clone_state(obj: Any) -> Any:
    """Copy a nested state (dicts, lists, tensors, scalars), cloning every tensor."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {key: clone_state(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(clone_state(value) for value in obj)
    return obj
