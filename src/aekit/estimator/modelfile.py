"""Model folders: ``config.json`` plus ``weights.safetensors``, written atomically, no pickle.

A model folder holds ``config.json`` (format version, model and training configuration,
feature names, aekit version, the SHA-256 of the weights) and ``weights.safetensors`` (the
module's tensors, input scaling included). Other tools may add files beside them. Loading
parses JSON and safetensors only (:mod:`aekit.files`); nothing in a file is ever executed.
This module checks and reads the layout; :meth:`Autoencoder.save` and
:meth:`Autoencoder.load` build the estimator from it.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._version import __version__
from ..config.configs import SCALINGS, ModelConfig, TrainConfig
from ..data.tables import TableLayout
from ..errors import AekitError, ConfigError, ModelFileError
from ..files import (
    check_fields,
    check_tensors,
    parse_safetensors,
    read_checked_folder,
    write_checked_folder,
)
from ..files.names import NAME_FIELDS, check_saved_names, saved_names
from ..model.hourglass import Hourglass
from ..training.history import History

__all__ = [
    "CONFIG_NAME",
    "FORMAT_VERSION",
    "LEGACY_PARAMETERS",
    "WEIGHTS_NAME",
    "SavedEstimator",
    "build_module",
    "checked_params",
    "estimator_meta",
    "given_estimator",
    "json_params",
    "read_estimator",
    "read_model",
    "write_model",
]


# 2: errors in the scaled space; estimator parameters may be absent (below)
# 3: val_hidden (a model with holes validates on its rows as given)
# 4: hide_pattern (absent: "entries", the old behaviour)
# 5: column_labels (a DataFrame's integer labels; absent: columns taken by position)
FORMAT_VERSION = 5

# Estimator parameters added after format 1, with the value that gives an older folder the
# behaviour it was saved with: ``{name: (format_version that added it, the old behaviour)}``.
# A parameter whose estimator default is already the old behaviour needs no entry.
LEGACY_PARAMETERS: dict[str, tuple[int, Any]] = {"init": (2, "random"), "val_hidden": (3, True)}


CONFIG_NAME = "config.json"


WEIGHTS_NAME = "weights.safetensors"


_MODEL_FORMAT = "aekit-model"


# Keys of a saved model's config.json (see Autoencoder.save) and their JSON types.
_SAVED_FIELDS: dict[str, type | tuple[type, ...]] = {
    "format": str, "format_version": int, "aekit_version": str, "model": dict,
    "weights_sha256": str, "train": dict, "estimator": dict, "scaling": str,
    "n_features_in": int, "history": dict, "table": (dict, type(None)), **NAME_FIELDS,
}  # fmt: skip
# added later: absent from older folders (numeric input; columns taken by position)
_OPTIONAL_FIELDS = ("table", "column_labels")


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
    head = {
        "format": _MODEL_FORMAT,
        "format_version": FORMAT_VERSION,
        "aekit_version": __version__,
        "model": module.config.to_dict(),
    }
    # Both or neither replaced, config last naming the checksum of its weights (files docs).
    names = (CONFIG_NAME, WEIGHTS_NAME)
    return write_checked_folder(folder, names, module.state_dict(), head, meta)


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
    names = (CONFIG_NAME, WEIGHTS_NAME)
    config, raw = read_checked_folder(folder, names, _MODEL_FORMAT, FORMAT_VERSION, "model")
    tensors = parse_safetensors(raw, folder / WEIGHTS_NAME)
    module = build_module(config.get("model"), tensors, folder)
    return module, config


def build_module(
    model_config: object, tensors: dict[str, torch.Tensor], source: os.PathLike[str] | str
) -> Hourglass:
    """Rebuild a network from its config dict and tensors, checking every key and shape."""
    try:
        mconfig = ModelConfig.from_dict(model_config)
    except AekitError as exc:
        raise ModelFileError(f"{source}: invalid model config: {exc}") from exc
    try:
        with torch.device("meta"):  # shapes only: a config inflated by tampering allocates nothing
            expected = Hourglass(mconfig).state_dict()
    except (RuntimeError, TypeError, ValueError, OverflowError) as exc:
        raise ModelFileError(f"{source}: the model config describes no buildable network") from exc
    check_tensors(expected, tensors, source)
    module = Hourglass(mconfig)
    scale = tensors["scale"]
    if not bool((scale > 0).all()):
        raise ModelFileError(f"{source}: the input scale must be positive everywhere")
    module.load_state_dict(tensors)
    return module.eval()


def estimator_meta(estimator: Any) -> dict[str, Any]:
    """What a fitted :class:`~aekit.Autoencoder` stores beside its network (``_SAVED_FIELDS``).

    Returns
    -------
    dict
        JSON-ready: training config, parameters, scaling, features, history, table layout.
    """
    layout = getattr(estimator, "table_layout_", None)
    meta = {
        "train": estimator.train_config_.to_dict(),
        "estimator": json_params(estimator.get_params()),
        "scaling": estimator.scaling_,
        "n_features_in": int(estimator.n_features_in_),
        **saved_names(estimator),
        "history": estimator.history_.to_dict(),
        "table": None if layout is None else layout.to_dict(),
    }
    return meta


def json_params(params: dict[str, Any]) -> dict[str, Any]:
    """Estimator parameters for JSON: ``categorical_features`` as a list of plain values.

    A ``numpy.random.RandomState`` as ``random_state`` is stored as None: its state is not
    a parameter a later fit could repeat (the fitted weights are saved whatever the seed).
    """
    if isinstance(params.get("random_state"), np.random.RandomState):
        params = {**params, "random_state": None}
    chosen = params.get("categorical_features")
    if chosen is not None and not isinstance(chosen, str):
        items = np.asarray(chosen, dtype=object).tolist()
        params = {**params, "categorical_features": [_plain(v) for v in items]}
    return params


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


# Parameters whose stored value legitimately differs from the model config field of the same
# name: the image shape (given in any of the forms aekit.data.images accepts).
_RESOLVED_ELSEWHERE = ("image_shape",)


def checked_params(params: dict[str, Any], known: set[str], source: Path) -> dict[str, Any]:
    """Stored estimator parameters made the estimator's: unknown names refused, tuples back.

    ``checkpoint_dir`` becomes None: a path is the caller's choice, never a file's (a refit
    of a loaded model writes no checkpoints until the caller sets it again).

    Raises
    ------
    ModelFileError
        A parameter the estimator does not have.
    """
    unknown = sorted(set(params) - known)
    if unknown:
        raise ModelFileError(
            f"{source}: unknown estimator parameter(s) {', '.join(map(repr, unknown))}"
        )
    params = dict(params)
    for key in ("hidden", "image_shape"):
        if isinstance(params.get(key), list):
            params[key] = tuple(params[key])
    if "checkpoint_dir" in params:
        params["checkpoint_dir"] = None
    return params


def given_estimator(stored: object, source: Path, kind: type) -> Any:
    """The unfitted estimator a saved detector or imputer was given, from its parameters.

    ``stored``: ``json_params(estimator.get_params())`` as the file keeps it, or None (none
    given, or a folder older than the field): then None. ``kind``: its class
    (:class:`~aekit.Autoencoder`).

    Raises
    ------
    ModelFileError
        ``stored`` is not an object, or names a parameter the Autoencoder does not have.
    """
    if stored is None:
        return None
    if not isinstance(stored, dict):
        raise ModelFileError(f"{source}: estimator_params must be an object or null")
    return kind(**checked_params(stored, set(kind().get_params()), source))


def _check_params_match(params: dict[str, Any], model: ModelConfig, source: Path) -> None:
    """Refuse stored estimator parameters that disagree with the model config they built.

    Every parameter is copied into the config field of the same name unless it is ``"auto"``
    (:func:`~aekit.estimator.resolve.resolve_configs`), so any other difference is a tampered
    file: ``get_params`` and a refit would otherwise describe another model than the weights.
    (Training parameters are not compared: an older folder's training config keeps the
    behaviour it was written with, ``TrainConfig.ABSENT_MEANS``; a refit checks them anew.)
    """
    resolved = model.to_dict()
    for name, value in params.items():
        if name not in resolved or name in _RESOLVED_ELSEWHERE or value == "auto":
            continue
        stored = [value] if name == "hidden" and type(value) is int else value
        same_kind = isinstance(stored, bool) == isinstance(resolved[name], bool)
        if stored != resolved[name] or not same_kind:
            raise ModelFileError(
                f"{source}: estimator parameter {name}={value!r:.60} does not match the saved "
                f"model's {name}={resolved[name]!r:.60}"
            )


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


@dataclass
class SavedEstimator:
    """A model folder read and checked, ready for :meth:`Autoencoder.load` to adopt.

    Attributes
    ----------
    module : Hourglass
        The network, on the CPU, in eval mode.
    params : dict
        The estimator's parameters (tuples restored, legacy parameters filled in).
    train_config : TrainConfig
    scaling : str
    history : History
    n_features_in : int
    feature_names : list of str or None
    table_layout : TableLayout or None
    column_labels : list of int or None
        A DataFrame's integer column labels (format 5; None: taken by position).
    """

    module: Hourglass
    params: dict[str, Any]
    train_config: TrainConfig
    scaling: str
    history: History
    n_features_in: int
    feature_names: list[str] | None
    table_layout: TableLayout | None
    column_labels: list[int] | None = None


def read_estimator(folder: str | os.PathLike[str], known_params: set[str]) -> SavedEstimator:
    """Read and check a model folder written by :meth:`Autoencoder.save`; nothing is executed.

    Parameters
    ----------
    folder : path
    known_params : set of str
        The estimator's parameter names: any other stored parameter is refused.

    Notes
    -----
    Stored estimator parameters must agree with the saved model config (every one that is
    not ``"auto"``), and ``checkpoint_dir`` is reset to None in both the parameters and the
    training config: a path is the caller's choice at refit, never taken from a file.

    Raises
    ------
    ModelFileError
        If the folder is missing, a file is truncated or tampered with, or not aekit's.
    """
    module, config = read_model(folder)
    source = Path(folder) / "config.json"
    check_fields(config, _SAVED_FIELDS, source, optional=_OPTIONAL_FIELDS)
    params = dict(config["estimator"])
    for name, (since, old_value) in LEGACY_PARAMETERS.items():
        if config["format_version"] < since:
            params.setdefault(name, old_value)
    checked = checked_params(params, known_params, source)
    try:
        train_config = TrainConfig.from_dict(config["train"])
        history = History.from_dict(config["history"])
    except (ConfigError, ModelFileError) as exc:
        raise ModelFileError(f"{source} is incomplete or invalid ({exc})") from exc
    _check_params_match(params, module.config, source)  # as stored: lists
    params = checked
    train_config = dataclasses.replace(train_config, checkpoint_dir=None)
    scaling, n_features = config["scaling"], config["n_features_in"]
    if scaling not in SCALINGS[1:]:
        raise ModelFileError(f"{source}: scaling={scaling!r} is not one of {SCALINGS[1:]}")
    layout = _read_layout(config.get("table"), module.config, source)
    width = n_features if layout is None else layout.width
    if n_features != (n_features if layout is None else layout.n_columns):
        raise ModelFileError(f"{source}: n_features_in does not match the table's columns")
    if width != module.config.input_dim:
        raise ModelFileError(f"{source}: n_features_in does not match the model's input_dim")
    names, labels = check_saved_names(config, n_features, source)
    return SavedEstimator(
        module, params, train_config, scaling, history, n_features, names, layout, labels
    )
