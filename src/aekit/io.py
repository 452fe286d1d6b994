"""Model folders and checkpoint files: JSON plus safetensors, written atomically, no pickle.

A model folder holds ``config.json`` (format version, model and training configuration,
feature names, aekit version, the SHA-256 of the weights) and ``weights.safetensors`` (the
module's tensors, input scaling included). Other tools may add files beside them.

A checkpoint is one ``.safetensors`` file: every tensor of the training state (weights,
optimiser moments, random-generator states, best weights so far) plus the rest of the state
as JSON in the file's metadata. One file means one atomic rename.

Loading parses JSON and safetensors only; nothing in a file is ever executed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from . import __version__
from .config import ModelConfig
from .errors import AekitError, ModelFileError
from .model import Hourglass

__all__ = [
    "CONFIG_NAME",
    "FORMAT_VERSION",
    "WEIGHTS_NAME",
    "atomic_file",
    "atomic_write",
    "build_module",
    "check_fields",
    "check_tensors",
    "read_checkpoint",
    "read_model",
    "write_checkpoint",
    "write_model",
]

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "weights.safetensors"
_MODEL_FORMAT = "aekit-model"
_CHECKPOINT_KEY = "aekit_checkpoint"


# -- atomic writes ------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A binary file that appears at ``path`` complete, or not at all.

    What the block writes goes to a temporary file in the same folder; when the block ends
    without an exception the file is flushed to disk (fsync) and renamed over ``path``, and
    the folder entry is synced too. On an exception the temporary file is removed, and an
    older file at ``path`` stays as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes 0600; give the usual umask-based mode
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


def atomic_write(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    See :func:`atomic_file`.
    """
    with atomic_file(path) as handle:
        handle.write(data)


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a folder
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _json_bytes(obj: object) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


# -- model folders ------------------------------------------------------------------------
def write_model(folder: str | os.PathLike[str], module: Hourglass, meta: dict[str, Any]) -> Path:
    """Save ``module`` and ``meta`` as a model folder.

    Parameters
    ----------
    folder : path
        Created if missing; files of other tools inside it are left alone.
    module : Hourglass
        The network; its config goes into ``config.json``.
    meta : dict
        JSON-ready extras stored beside the model config (training config, feature names...).

    Returns
    -------
    Path
        The folder.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ModelFileError(f"cannot save a model to {folder}: it exists and is not a folder")
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
    weights = save_safetensors_bytes(tensors)
    config = {
        "format": _MODEL_FORMAT,
        "format_version": FORMAT_VERSION,
        "aekit_version": __version__,
        "model": module.config.to_dict(),
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
        **meta,
    }
    # Weights first, config last: the config names the checksum of the weights it belongs to,
    # so an interrupted overwrite is detected at load time rather than silently mixed.
    atomic_write(folder / WEIGHTS_NAME, weights)
    atomic_write(folder / CONFIG_NAME, _json_bytes(config))
    return folder


def read_model(folder: str | os.PathLike[str]) -> tuple[Hourglass, dict[str, Any]]:
    """Load a model folder written by :func:`write_model`.

    Returns
    -------
    module : Hourglass
        On the CPU, in eval mode.
    config : dict
        The parsed ``config.json``.

    Raises
    ------
    ModelFileError
        If a file is missing, truncated, tampered with, or not an aekit model.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFileError(f"no model folder at {folder}")
    config = _read_json(folder / CONFIG_NAME)
    if config.get("format") != _MODEL_FORMAT:
        raise ModelFileError(f"{folder / CONFIG_NAME} is not an aekit model config")
    version = config.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(
            f"{folder / CONFIG_NAME} has format_version {version!r}; this aekit reads up to "
            f"{FORMAT_VERSION} (upgrade aekit)"
        )
    weights_path = folder / WEIGHTS_NAME
    try:
        raw = weights_path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"cannot read {weights_path}: {exc.strerror or exc}") from exc
    if hashlib.sha256(raw).hexdigest() != config.get("weights_sha256"):
        raise ModelFileError(
            f"{weights_path} does not match the checksum in {CONFIG_NAME} "
            "(truncated, modified, or from another save)"
        )
    module = build_module(config.get("model"), _parse_safetensors(raw, weights_path), folder)
    return module, config


def build_module(
    model_config: object, tensors: dict[str, torch.Tensor], source: os.PathLike[str] | str
) -> Hourglass:
    """Rebuild a network from its config dict and tensors, checking every key and shape."""
    try:
        mconfig = ModelConfig.from_dict(model_config)
    except AekitError as exc:
        raise ModelFileError(f"{source}: invalid model config: {exc}") from exc
    with torch.device("meta"):  # shapes only: a config inflated by tampering allocates nothing
        check_tensors(Hourglass(mconfig).state_dict(), tensors, source)
    module = Hourglass(mconfig)
    scale = tensors["scale"]
    if not bool((scale > 0).all()):
        raise ModelFileError(f"{source}: the input scale must be positive everywhere")
    module.load_state_dict(tensors)
    return module.eval()


def check_tensors(
    expected: dict[str, torch.Tensor], tensors: object, source: os.PathLike[str] | str
) -> None:
    """Refuse ``tensors`` unless it has exactly the keys, shapes and dtypes of ``expected``.

    Floating-point tensors must also be finite (a NaN weight is a broken model, not a model).

    Raises
    ------
    ModelFileError
        Naming the first key that does not fit.
    """
    if not isinstance(tensors, dict):
        kind = type(tensors).__name__
        raise ModelFileError(f"{source}: expected a mapping of tensors, got {kind}")
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ModelFileError(
            f"{source}: weights do not fit the config (missing {missing or 'none'}, "
            f"unexpected {unexpected or 'none'})"
        )
    for key, ref in expected.items():
        got = tensors[key]
        if not isinstance(got, torch.Tensor) or got.shape != ref.shape or got.dtype != ref.dtype:
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            dtype = f" ({got.dtype})" if isinstance(got, torch.Tensor) else ""
            raise ModelFileError(
                f"{source}: weight {key!r} has shape {shape}{dtype}, "
                f"the config needs {tuple(ref.shape)} ({ref.dtype})"
            )
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise ModelFileError(f"{source}: weight {key!r} holds NaN or infinity")


def check_fields(
    data: object,
    fields: dict[str, type | tuple[type, ...]],
    source: os.PathLike[str] | str,
    *,
    optional: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Check that ``data`` is a dict with exactly ``fields`` (name → allowed types).

    ``bool`` is not accepted where ``int`` or ``float`` is asked for; names in ``optional``
    may be absent. Returns ``data``.

    Raises
    ------
    ModelFileError
        Naming the missing, unknown or mistyped key.
    """
    if not isinstance(data, dict):
        raise ModelFileError(f"{source}: expected a JSON object, got {type(data).__name__}")
    missing = sorted(set(fields) - set(data) - set(optional))
    unknown = sorted(set(data) - set(fields))
    if missing or unknown:
        raise ModelFileError(
            f"{source}: missing key(s) {missing or 'none'}, unknown key(s) {unknown or 'none'}"
        )
    for key, value in data.items():
        types = fields[key] if isinstance(fields[key], tuple) else (fields[key],)
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            names = " or ".join("None" if t is type(None) else t.__name__ for t in types)
            raise ModelFileError(
                f"{source}: {key!r} must be {names}, got {type(value).__name__} {value!r:.60}"
            )
    return data


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelFileError(f"missing {path}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ModelFileError(f"{path} is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ModelFileError(f"{path} must hold a JSON object")
    return data


def _parse_safetensors(raw: bytes, source: Path) -> dict[str, torch.Tensor]:
    try:
        return load_safetensors_bytes(raw)
    except (SafetensorError, ValueError, RuntimeError, OSError) as exc:
        raise ModelFileError(f"{source} is not a valid safetensors file ({exc})") from exc


# -- checkpoints --------------------------------------------------------------------------
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


def write_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write a training state (nested dicts/lists of tensors and JSON scalars) atomically."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _flatten(state, "s", tensors)
    blob = save_safetensors_bytes(
        tensors, metadata={_CHECKPOINT_KEY: json.dumps(skeleton), "format_version": "1"}
    )
    atomic_write(path, blob)
    return Path(path)


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`write_checkpoint`.

    Raises
    ------
    ModelFileError
        If the file is missing, truncated, not a safetensors file or not an aekit checkpoint.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from exc
    tensors = _parse_safetensors(raw, path)
    try:
        # The safetensors header (already validated above) is an 8-byte length and JSON.
        header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
        state = _unflatten(json.loads(header["__metadata__"][_CHECKPOINT_KEY]), tensors)
    except (KeyError, ValueError, TypeError, RecursionError) as exc:
        raise ModelFileError(f"{path} is not an aekit checkpoint ({exc})") from exc
    if not isinstance(state, dict):
        raise ModelFileError(f"{path} is not an aekit checkpoint")
    return state
