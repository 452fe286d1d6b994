"""Model folders: ``config.json`` plus ``weights.safetensors``, written atomically, no pickle.

A model folder holds ``config.json`` (format version, model and training configuration,
feature names, aekit version, the SHA-256 of the weights) and ``weights.safetensors`` (the
module's tensors, input scaling included). Other tools may add files beside them. Loading
parses JSON and safetensors only; nothing in a file is ever executed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from ._atomic import atomic_files
from ._folderlock import folder_lock
from ._version import __version__
from .config import SCALINGS, ModelConfig, TrainConfig
from .data.tables import TableLayout
from .errors import AekitError, ConfigError, ModelFileError
from .model import Hourglass

if TYPE_CHECKING:
    from .estimator import Autoencoder

__all__ = [
    "CONFIG_NAME",
    "FORMAT_VERSION",
    "LEGACY_PARAMETERS",
    "WEIGHTS_NAME",
    "build_module",
    "check_fields",
    "check_tensors",
    "load",
    "parse_safetensors",
    "read_json",
    "read_model",
    "save",
    "write_model",
]


FORMAT_VERSION = 2  # 2: errors in the scaled space; estimator parameters may be absent (below)

# Estimator parameters added after format 1, with the value that gives an older folder the
# behaviour it was saved with: ``{name: (format_version that added it, the old behaviour)}``.
# A parameter whose estimator default is already the old behaviour needs no entry.
LEGACY_PARAMETERS: dict[str, tuple[int, Any]] = {"init": (2, "random")}


CONFIG_NAME = "config.json"


WEIGHTS_NAME = "weights.safetensors"


_MODEL_FORMAT = "aekit-model"


# Keys of a saved model's config.json (see Autoencoder.save) and their JSON types.
_SAVED_FIELDS: dict[str, type | tuple[type, ...]] = {
    "format": str, "format_version": int, "aekit_version": str, "model": dict,
    "weights_sha256": str, "train": dict, "estimator": dict, "scaling": str,
    "n_features_in": int, "feature_names": (list, type(None)), "history": dict,
    "table": (dict, type(None)),
}  # fmt: skip
_OPTIONAL_FIELDS = ("table",)  # added later: absent from older folders (numeric input)


def _json_bytes(obj: object) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


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
    # Both or neither replaced (a full disk stops the writes before any rename); weights
    # first, config last, and the config names the checksum of the weights it belongs to, so
    # a copy torn some other way is detected at load time rather than silently mixed.
    with folder_lock(folder), atomic_files(folder) as put:
        put(WEIGHTS_NAME, weights)
        put(CONFIG_NAME, _json_bytes(config))
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
    config = read_json(folder / CONFIG_NAME)
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
    module = build_module(config.get("model"), parse_safetensors(raw, weights_path), folder)
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


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; anything else is one :class:`ModelFileError` naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelFileError(f"missing {path}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ModelFileError(f"{path} is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ModelFileError(f"{path} must hold a JSON object")
    return data


def parse_safetensors(raw: bytes, source: Path) -> dict[str, torch.Tensor]:
    """Tensors from safetensors bytes (no code runs); bad bytes are a :class:`ModelFileError`."""
    try:
        return load_safetensors_bytes(raw)
    except (SafetensorError, ValueError, RuntimeError, OSError) as exc:
        raise ModelFileError(f"{source} is not a valid safetensors file ({exc})") from exc


def save(estimator: Autoencoder, folder: str | os.PathLike[str]) -> Path:
    """Write a fitted estimator as a model folder (the keys of ``_SAVED_FIELDS``).

    Returns
    -------
    Path
        The folder.
    """
    names = getattr(estimator, "feature_names_in_", None)
    layout = getattr(estimator, "table_layout_", None)
    meta = {
        "train": estimator.train_config_.to_dict(),
        "estimator": _json_params(estimator.get_params()),
        "scaling": estimator.scaling_,
        "n_features_in": int(estimator.n_features_in_),
        "feature_names": None if names is None else [str(n) for n in names],
        "history": estimator.history_.to_dict(),
        "table": None if layout is None else layout.to_dict(),
    }
    return write_model(folder, estimator.module_, meta)


def _json_params(params: dict[str, Any]) -> dict[str, Any]:
    """Estimator parameters for JSON: ``categorical_features`` as a list of plain values."""
    chosen = params.get("categorical_features")
    if chosen is not None and not isinstance(chosen, str):
        items = np.asarray(chosen, dtype=object).tolist()
        params = {**params, "categorical_features": [_plain(v) for v in items]}
    return params


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _read_layout(data: object, model: ModelConfig, source: Path) -> TableLayout | None:
    """The table layout of ``config.json`` (None for numeric input), matching the model."""
    if data is None:
        if model.categorical_blocks:
            raise ModelFileError(f"{source}: categorical_blocks without a table layout")
        return None
    try:
        layout = TableLayout.from_dict(data)
    except ModelFileError as exc:
        raise ModelFileError(f"{source}: {exc}") from exc
    if layout.blocks != model.categorical_blocks:
        raise ModelFileError(f"{source}: the table layout does not match categorical_blocks")
    return layout


def load(folder: str | os.PathLike[str]) -> Autoencoder:
    """Load a model folder written by :meth:`Autoencoder.save`; nothing in it is executed.

    Raises
    ------
    ModelFileError
        If the folder is missing, a file is truncated or tampered with, or not aekit's.
    """
    from .estimator import Autoencoder
    from .training.history import History

    module, config = read_model(folder)
    source = Path(folder) / "config.json"
    check_fields(config, _SAVED_FIELDS, source, optional=_OPTIONAL_FIELDS)
    params = dict(config["estimator"])
    for name, (since, old_value) in LEGACY_PARAMETERS.items():
        if config["format_version"] < since:
            params.setdefault(name, old_value)
    unknown = sorted(set(params) - set(Autoencoder().get_params()))
    if unknown:
        raise ModelFileError(
            f"{source}: unknown estimator parameter(s) {', '.join(map(repr, unknown))}"
        )
    for key in ("hidden", "image_shape"):
        if isinstance(params.get(key), list):
            params[key] = tuple(params[key])
    est = Autoencoder(**params)
    try:
        train_config = TrainConfig.from_dict(config["train"])
        history = History.from_dict(config["history"])
    except (ConfigError, ModelFileError) as exc:
        raise ModelFileError(f"{source} is incomplete or invalid ({exc})") from exc
    scaling, n_features, names = config["scaling"], config["n_features_in"], config["feature_names"]
    if scaling not in SCALINGS[1:]:
        raise ModelFileError(f"{source}: scaling={scaling!r} is not one of {SCALINGS[1:]}")
    layout = _read_layout(config.get("table"), module.config, source)
    width = n_features if layout is None else layout.width
    if n_features != (n_features if layout is None else layout.n_columns):
        raise ModelFileError(f"{source}: n_features_in does not match the table's columns")
    if width != module.config.input_dim:
        raise ModelFileError(f"{source}: n_features_in does not match the model's input_dim")
    if names is not None and (
        len(names) != n_features or not all(isinstance(n, str) for n in names)
    ):
        raise ModelFileError(f"{source}: feature_names must be {n_features} strings")
    est._set_fitted(module, module.config, train_config, scaling, history)
    est.n_features_in_ = n_features
    est.table_layout_ = layout
    if names is not None:
        est.feature_names_in_ = np.asarray(names, dtype=object)
    return est
