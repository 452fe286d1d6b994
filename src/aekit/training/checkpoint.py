"""The checkpoint file format: a training state, its one schema, its checks, its files.

A training state (:meth:`Trainer.state_dict <aekit.training.Trainer.state_dict>`) is a dict
with the keys and types of :data:`STATE_FIELDS`: :func:`build_state` makes one, and
:func:`check_state` checks one read from a file. A run's folder holds
``checkpoint-eEEEEEE-bBBBBBB.safetensors`` files (epochs completed, batches done in the
epoch after), each written atomically by :func:`write_checkpoint`, so the names sort in the
order they were written. A file is trusted only after its state checks; resuming skips a
corrupt or partial file with a warning and takes the one before (:func:`find_checkpoint`),
and takes a state only if it fits the run (:func:`check_resumable`). When and where a run
saves and resumes is the :class:`~aekit.training.callbacks.Checkpointer`'s business.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as save_safetensors_bytes

from ..config.configs import ModelConfig, TrainConfig
from ..data.names import refuse_other_columns
from ..errors import ConfigError, ModelFileError
from ..files.atomic import atomic_write
from ..files.core import (
    check_fields,
    check_tensors,
    parse_safetensors,
    read_safetensors,
    safetensors_header,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "RESUME_KEYS",
    "STATE_FIELDS",
    "all_finite",
    "build_state",
    "check_like",
    "check_optimizer_state",
    "check_resumable",
    "check_state",
    "checkpoint_columns",
    "checkpoint_path",
    "checkpoint_run",
    "clone_state",
    "find_checkpoint",
    "latest_checkpoint",
    "prune_checkpoints",
    "read_checkpoint",
    "refuse_fresh_run",
    "write_checkpoint",
]

logger = logging.getLogger("aekit")

CHECKPOINT_FORMAT = "aekit-checkpoint"
_GLOB = "checkpoint-*.safetensors"
_CHECKPOINT_KEY = "aekit_checkpoint"
_TEMP_GLOB = ".checkpoint-*.tmp"  # left behind by a writer killed mid-write
_RUN_KEY = "run_id"  # metadata: the torchrun launch that wrote the checkpoint

# THE schema of a training state: its top-level keys, in order, and their allowed types.
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
    "dealt_to": int,  # ranks the epoch in progress was dealt to (data/shares.py); absent: 1
    "noise_state": torch.Tensor,
    "history": dict,
    "stop_reason": str,
    "elapsed": (int, float),
    "n_rows": int,
    "column_names": (list, type(None)),  # the data's column names or labels; absent: none
    "row_order": str,  # "blocks" (a streamed source's shuffle) or "rows"; absent: unknown
}

# Training-config fields a resumed run must share with the checkpoint to repeat the run.
RESUME_KEYS = (
    "lr",
    "weight_decay",
    "batch_size",
    "val_fraction",
    "min_val_rows",
    "random_state",
    "optimizer",
    "lr_schedule",
    "loss",
    "val_hidden",  # with holes: the unit early stopping compares in (hidden or as given)
)


def checkpoint_path(folder: str | os.PathLike[str], epoch: int, batch: int) -> Path:
    """The file name of the checkpoint after ``epoch`` epochs and ``batch`` more batches."""
    return Path(folder) / f"checkpoint-e{epoch:06d}-b{batch:06d}.safetensors"


def build_state(**parts: Any) -> dict[str, Any]:
    """A training state from its parts: every key of :data:`STATE_FIELDS` but ``format``.

    Raises
    ------
    ModelFileError
        If a part is missing, unknown or of the wrong type (a state no file could hold).
    """
    state = {"format": CHECKPOINT_FORMAT, **parts}
    return check_fields(state, STATE_FIELDS, "training state")


def check_state(state: object, source: str | os.PathLike[str]) -> dict[str, Any]:
    """Check the keys and types of a training state read from ``source``; return it.

    Raises
    ------
    ModelFileError
        If a key is missing, unknown or of the wrong type, or the format is not aekit's.
    """
    state = check_fields(
        state, STATE_FIELDS, source, optional=("dealt_to", "column_names", "row_order")
    )
    if state["format"] != CHECKPOINT_FORMAT:
        raise ModelFileError(f"{source}: format {state['format']!r} is not {CHECKPOINT_FORMAT!r}")
    position = check_fields(state["position"], {"epoch": int, "batch": int}, f"{source} position")
    if min(position.values()) < 0:
        raise ModelFileError(f"{source}: negative position {position}")
    return state


def check_resumable(
    state: dict[str, Any],
    current: dict[str, Any],
    *,
    params: list[torch.Tensor],
    n_batches: int,
    source: str | os.PathLike[str],
) -> None:
    """Refuse a checked ``state`` unless it continues the run whose state is ``current``.

    Parameters
    ----------
    state : dict
        A state that passed :func:`check_state`.
    current : dict
        The run's own state (:meth:`Trainer.state_dict`), the template ``state`` must fit.
    params : list of Tensor
        The parameters the optimiser updates, in its order.
    n_batches : int
        Batches in one of the run's epochs.
    source : str or path
        Where ``state`` came from, for messages.

    Raises
    ------
    ModelFileError
        If ``state`` belongs to another model, data or set-up (``RESUME_KEYS``), or a tensor,
        the optimiser's or the schedule's state does not fit.
    """
    try:  # a field added since the checkpoint was written takes its (old-behaviour) default
        written = ModelConfig.from_dict(state["model_config"]).to_dict()
    except ConfigError as exc:
        raise ModelFileError(f"{source}: invalid model configuration ({exc})") from exc
    if written != current["model_config"]:
        raise ModelFileError(f"{source} was written for a different model configuration")
    if state["n_rows"] != current["n_rows"]:
        raise ModelFileError(
            f"{source} was written for {state['n_rows']} rows, not {current['n_rows']}"
        )
    refuse_other_columns(state.get("column_names"), current["column_names"], source, ModelFileError)
    order = state.get("row_order", current["row_order"])
    how = {"blocks": "streamed from a file", "rows": "held in memory"}
    if order not in how:
        raise ModelFileError(f"{source}: row_order {order!r} is not 'blocks' or 'rows'")
    if order != current["row_order"]:  # each shuffles an epoch its own way
        raise ModelFileError(
            f"{source} was written with the rows {how[order]}, this run has them "
            f"{how[current['row_order']]}: resume them the same way (aekit fit --stream or "
            "--no-stream as before)"
        )
    ours = current["train_config"]
    theirs = {**TrainConfig.ABSENT_MEANS, **state["train_config"]}
    for key in RESUME_KEYS:
        if key == "val_hidden" and not current["model_config"].get("missing"):
            continue  # rows without holes validate alike either way
        if theirs.get(key) != ours[key]:
            raise ModelFileError(
                f"{source} was written with {key}={theirs.get(key)!r}, "
                f"this run has {key}={ours[key]!r}"
            )
    _check_epochs(theirs.get("epochs"), ours, state["position"]["epoch"], source)
    check_tensors(current["module"], state["module"], source)
    refuse_other_scaling(current["module"], state["module"], source)
    early = state["callbacks"].get("EarlyStopping", {})
    for key, what in (("best_state", "best weights"), ("initial_state", "starting weights")):
        if early.get(key) is not None:
            check_tensors(current["module"], early[key], f"{source} ({what})")
    if state["position"]["batch"] > n_batches:
        raise ModelFileError(f"{source}: position {state['position']} is past the epoch")
    check_optimizer_state(current["optimizer"], state["optimizer"], params, f"{source} optimizer")
    if current["scheduler"] is not None:
        check_like(current["scheduler"], state["scheduler"], f"{source} scheduler")


def _check_epochs(
    written: object, ours: dict[str, Any], done: int, source: str | os.PathLike[str]
) -> None:
    """Refuse another epoch count unless the rate is constant and the run is not past it.

    A scheduled rate (cosine, plateau) spans the run's epochs: another count would restart or
    cut it (the cosine rose again after the checkpoint's last epoch), so a resumed run keeps
    the count. A constant rate may train longer.
    """
    if written == ours["epochs"]:
        return
    if ours["lr_schedule"] != "constant" or ours["epochs"] < done:
        raise ModelFileError(
            f"{source} was written with epochs={written!r}, this run has epochs={ours['epochs']!r}"
            f" ({done} done; only a run with lr_schedule='constant' may resume to train longer)"
        )


def refuse_other_scaling(
    ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor], source: str | os.PathLike[str]
) -> None:
    """Refuse a checkpoint whose input scaling is not the one this run's rows give.

    The scaling (``offset`` and ``scale``, set from the training rows' statistics before
    training) is in the checkpoint's weights: a run resumed on other rows of the same shape
    and columns trained on, and reported errors in, the old rows' units. The same rows give
    the same scaling within float rounding: within 1e-4 of the value plus the column's scale
    (a float32 and a float64 copy of one file differ in the last bits).
    """
    unit = theirs.get("scale")
    for name in ("offset", "scale"):
        mine, written = ours.get(name), theirs.get(name)
        if mine is None or written is None or unit is None or mine.shape != unit.shape:
            continue
        mine, written = mine.double().cpu(), written.double().cpu()
        bound = 1e-4 * (written.abs() + unit.double().cpu().abs()) + 1e-6
        off = torch.nan_to_num((mine - written).abs() - bound, nan=0.0)
        if bool((off > 0).any()):
            j = int(off.argmax())
            raise ModelFileError(
                f"{source} was written for other data: its input {name} differs from this "
                f"data's (column {j}: {float(written[j]):.6g} there, {float(mine[j]):.6g} here)"
            )


def check_like(template: object, value: object, source: str) -> None:
    """Refuse ``value`` unless it has the structure and scalar types of ``template``.

    Dicts need the same keys, lists and tuples the same length, tensors the same shape and
    dtype; ints must be ints, floats may be ints or floats, strings strings, None None. The
    template is the state of a freshly built object of the same kind (optimiser, schedule).

    Raises
    ------
    ModelFileError
        Naming the first place where ``value`` differs.
    """
    if isinstance(template, dict):
        if not isinstance(value, dict) or set(value) != set(template):
            raise ModelFileError(f"{source}: expected keys {sorted(map(str, template))}")
        for key, item in template.items():
            check_like(item, value[key], f"{source}.{key}")
    elif isinstance(template, (list, tuple)):
        if not isinstance(value, (list, tuple)) or len(value) != len(template):
            raise ModelFileError(f"{source}: expected a list of {len(template)} items")
        for i, (item, got) in enumerate(zip(template, value, strict=True)):
            check_like(item, got, f"{source}.{i}")
    elif isinstance(template, torch.Tensor):
        if not isinstance(value, torch.Tensor) or value.shape != template.shape:
            raise ModelFileError(f"{source}: expected a tensor of shape {tuple(template.shape)}")
    elif type(template) is not type(value) and not (type(template) is float and type(value) is int):
        raise ModelFileError(
            f"{source}: expected {type(template).__name__}, got {type(value).__name__}"
        )


def check_optimizer_state(
    template: dict[str, Any], value: object, params: list[torch.Tensor], source: str
) -> None:
    """Check an optimiser state dict against a fresh one's and the parameters it updates.

    Raises
    ------
    ModelFileError
        If a parameter group or a per-parameter tensor does not fit.
    """
    value = check_fields(value, {"state": dict, "param_groups": list}, source)
    check_like(template["param_groups"], value["param_groups"], f"{source} param_groups")
    for index, entry in value["state"].items():
        if not isinstance(index, int) or not 0 <= index < len(params):
            raise ModelFileError(f"{source}: state for unknown parameter {index!r}")
        if not isinstance(entry, dict):
            raise ModelFileError(f"{source}: state of parameter {index} is not a mapping")
        for key, tensor in entry.items():
            shape = () if key == "step" else tuple(params[index].shape)
            if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != shape:
                raise ModelFileError(
                    f"{source}: {key} of parameter {index} must have shape {shape}"
                )


def find_checkpoint(
    folder: str | os.PathLike[str] | None,
    run_id: str | None = None,
    check: Callable[[object, Path], dict[str, Any]] | None = None,
) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint in ``folder`` that reads and checks, with its state.

    Unreadable or malformed files are skipped with a warning on the ``aekit`` logger. With
    ``run_id``, only checkpoints written by that launch count (:func:`write_checkpoint`).
    ``check`` checks a state read back (default :func:`check_state`, the Trainer's schema;
    the SAE loop passes its own) and raises :class:`ModelFileError` for a malformed one.
    """
    check = check or check_state
    if folder is None or not Path(folder).is_dir():
        return None
    for path in sorted(Path(folder).glob(_GLOB), reverse=True):
        if run_id is not None and checkpoint_run(path) != run_id:
            continue
        try:
            return path, check(read_checkpoint(path), path)
        except ModelFileError as exc:
            logger.warning("skipping unusable checkpoint %s: %s", path, exc)
    return None


def latest_checkpoint(
    folder: str | os.PathLike[str] | None,
    check: Callable[[object, Path], dict[str, Any]] | None = None,
) -> Path | None:
    """The newest usable checkpoint file in ``folder`` (None if there is none)."""
    found = find_checkpoint(folder, check=check)
    return None if found is None else found[0]


def all_finite(module: torch.nn.Module, *tensors: torch.Tensor) -> bool:
    """True when ``module``'s parameters and ``tensors`` are finite (else no checkpoint)."""
    return all(bool(torch.isfinite(t).all()) for t in (*module.parameters(), *tensors))


def refuse_fresh_run(folder: str | os.PathLike[str] | None) -> None:
    """Refuse to start a run afresh in a ``folder`` that holds checkpoints of another run.

    Its own would be pruned by name among them, and a resume would continue the other run.

    Raises
    ------
    ConfigError
        If ``folder`` holds a checkpoint file.
    """
    found = sorted(Path(folder).glob(_GLOB)) if folder is not None else []
    if found:
        raise ConfigError(
            f"{folder} holds checkpoints of an earlier run (newest {found[-1].name}): resume "
            "to continue it (resume=True, --resume), or start afresh in another folder or "
            "after removing them"
        )


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


def _flatten(obj: object, prefix: str, tensors: dict[str, torch.Tensor]) -> object:
    """Replace every tensor in a nested structure by a reference into ``tensors``."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().to("cpu").clone().contiguous()
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        return {"__dict__": [[k, _flatten(v, f"{prefix}.{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_flatten(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at {prefix!r} in a checkpoint")


def _unflatten(obj: object, tensors: dict[str, torch.Tensor]) -> object:
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            return tensors[obj["__tensor__"]]
        if set(obj) == {"__dict__"}:
            return {k: _unflatten(v, tensors) for k, v in obj["__dict__"]}
        raise ValueError(f"unexpected object with keys {sorted(obj)}")
    return obj


def write_checkpoint(
    path: str | os.PathLike[str], state: dict[str, Any], run_id: str | None = None
) -> Path:
    """Write a training state (nested dicts/lists of tensors and JSON scalars) atomically.

    ``run_id`` (torchrun's id of the launch, see
    :func:`~aekit.training.distributed.run_id`) is stored beside the state, so that a group
    torchrun restarts resumes from its own checkpoints only (:func:`checkpoint_run`).
    """
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _flatten(state, "s", tensors)
    metadata = {_CHECKPOINT_KEY: json.dumps(skeleton), "format_version": "1"}
    if run_id is not None:
        metadata[_RUN_KEY] = run_id
    blob = save_safetensors_bytes(tensors, metadata=metadata)
    atomic_write(path, blob)
    return Path(path)


def checkpoint_run(path: str | os.PathLike[str]) -> str | None:
    """The launch id a checkpoint was written under (None: none recorded, or unreadable)."""
    try:
        found = safetensors_header(Path(path))[0]["__metadata__"].get(_RUN_KEY)
    except (ModelFileError, KeyError, TypeError, AttributeError):
        return None
    return found if isinstance(found, str) else None


def checkpoint_columns(
    folder: str | os.PathLike[str] | None, resume: bool | str | os.PathLike[str], key: str
) -> list[Any] | None:
    """The data's column names (state ``key``) a resumed run's checkpoint was written for.

    ``resume`` is True (the newest checkpoint in ``folder`` whose header reads and whose size
    is the one it declares, as :func:`find_checkpoint` skips a broken newest file) or a
    checkpoint's path; read from the file's header alone (the weights stay on disk). None
    where there is no such file, it records no names, or it does not read: the resume itself
    then says what is wrong.
    """
    if not resume:
        return None
    if resume is True:  # newest first, as find_checkpoint tries them
        paths = sorted(Path(folder).glob(_GLOB), reverse=True) if folder is not None else []
    else:
        paths = [Path(resume)]
    for path in paths:
        try:
            header, size = safetensors_header(path)
            if path.stat().st_size != size:
                continue  # truncated: the resume skips it too
            meta = header["__metadata__"][_CHECKPOINT_KEY]
            names = dict(json.loads(meta)["__dict__"]).get(key)  # (_flatten's)
        except (ModelFileError, OSError, KeyError, TypeError, ValueError, AttributeError):
            continue
        return names if isinstance(names, list) and names else None
    return None


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`write_checkpoint`.

    Raises
    ------
    ModelFileError
        If the file is missing, truncated, not a safetensors file or not an aekit checkpoint, or
        not a regular file (a symbolic link, a FIFO or a device in its place: read only by
        :func:`~aekit.files.core.read_safetensors`, the rule of every saved folder).
    """
    path = Path(path)
    raw = read_safetensors(path)
    tensors = parse_safetensors(raw, path)
    try:
        # The safetensors header (already validated above) is an 8-byte length and JSON.
        header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
        state = _unflatten(json.loads(header["__metadata__"][_CHECKPOINT_KEY]), tensors)
    except (KeyError, ValueError, TypeError, RecursionError) as exc:
        raise ModelFileError(f"{path} is not an aekit checkpoint ({exc})") from exc
    if not isinstance(state, dict):
        raise ModelFileError(f"{path} is not an aekit checkpoint")
    return state
