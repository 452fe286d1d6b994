"""Imputer folders: model folders plus the imputer's own ``imputer.json``, no pickle.

A fitted :class:`~aekit.impute.AutoencoderImputer` saves as (the detector's layout, see
:mod:`aekit.anomaly.detectorfile`)::

    folder/
      config.json, weights.safetensors   the first autoencoder: a model folder every aekit
                                         command reads (encode, reconstruct, report...)
      members/1/, members/2/, ...        the other autoencoders, model folders too
      imputer.json                       format "aekit-imputer" and its version, the imputer's
                                         parameters, its fitted state (each column's observed
                                         range, the columns empty in fit, the indicator's
                                         columns, whether it fills a table), the feature names
                                         and dtypes, how many autoencoders there are, and
                                         (version 2) the blend: the members' weight and the
                                         linear chain's steps (:mod:`aekit.impute.chain`);
                                         (version 4) the nearest-neighbour fill's weight and
                                         its rows (:mod:`aekit.impute.neighbours`); (version
                                         5) the extra trees' weight, depth and checksum;
                                         (version 6) the given estimator's parameters
      trees.safetensors                  (version 5, where the blend has trees) the trees'
                                         node arrays (:mod:`aekit.impute.trees`)

The fitted state is a few numbers per column, stored in ``imputer.json`` itself (JSON keeps a
float64 exactly; NaN, "no bound", as null). ``imputer.json`` is written last, after the
members, so a folder without it is not an imputer; each member is checked by its own
checksum. Loading parses JSON and safetensors only (the autoencoders through
:meth:`Autoencoder.load <aekit.Autoencoder.load>`), through :mod:`aekit.files`. This module
reads and checks the layout; :meth:`AutoencoderImputer.load
<aekit.impute.AutoencoderImputer.load>` builds the imputer from it.
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import ModelFileError
from ..estimator.autoencoder import Autoencoder
from ..estimator.modelfile import given_estimator, json_params
from ..files import (
    atomic_files,
    check_fields,
    check_header,
    json_bytes,
    parse_safetensors,
    read_checked,
    read_json,
    saved_folder,
    sha256,
    tensor_bytes,
)
from ..files.layouts import IMPUTER_NAME, check_can_save, member_folder, read_member_folder
from ..files.names import NAME_FIELDS, check_saved_names, saved_names
from .chain import LinearChain
from .neighbours import NeighbourFill
from .trees import TreeFill

__all__ = ["IMPUTER_NAME", "SavedImputer", "imputer_feature_names", "read_imputer", "save_imputer"]

# 2: the blend (absent in 1: the members alone); 3: column_labels (a DataFrame's integers);
# 4: neighbours (absent in 1-3: no nearest-neighbour fill); 5: trees (absent in 1-4: none);
# 6: estimator_params (the given estimator's own; absent in 1-5: its first member's, cloned)
_FORMAT, _VERSION = "aekit-imputer", 6
TREES_NAME = "trees.safetensors"

# Keys of imputer.json and their JSON types.
_FIELDS: dict[str, type | tuple[type, ...]] = {
    "format": str, "format_version": int, "aekit_version": str, "params": dict,
    "estimator_given": bool, "n_members": int, "n_features_in": int,
    **NAME_FIELDS, "dtypes": (list, type(None)), "table": bool,
    "empty": list, "low": list, "high": list, "indicator_features": (list, type(None)),
    "blend": (int, float), "linear": (dict, type(None)),  # format version 2
    "neighbours": (dict, type(None)),  # format version 4: {"weight": w, "rows": [...]}
    "trees": (dict, type(None)),  # format version 5: {"weight", "depth", "sha256"}
    "estimator_params": (dict, type(None)),  # format version 6
}  # fmt: skip
_PARAMS: dict[str, type | tuple[type, ...]] = {
    "missing_values": (int, float, str, type(None)), "add_indicator": bool,
    "categorical_features": (list, str, type(None)), "keep_empty_features": bool,
    "n_estimators": (int, str), "random_state": (int, type(None)),
}  # fmt: skip


def _numbers(values: np.ndarray) -> list[float | None]:
    """Floats for JSON, NaN as null."""
    return [None if np.isnan(v) else float(v) for v in values]


def _json_marker(value: Any) -> int | float | str | None:
    """``missing_values`` for JSON: text and numbers as they are, NaN (or None, pd.NA) as null."""
    if isinstance(value, str):
        return value
    if isinstance(value, numbers.Real) and not np.isnan(value):
        return value.item() if isinstance(value, np.generic) else value
    return None


def save_imputer(imputer: Any, folder: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write a fitted imputer as an imputer folder (see the module docstring).

    A folder that already holds a saved model, detector or imputer is refused unless
    ``overwrite`` (:func:`aekit.files.layouts.check_can_save`).

    Returns
    -------
    Path
        The folder.
    """
    folder = Path(folder)
    check_can_save(folder, overwrite)
    with saved_folder(folder) as staged:  # the whole folder, or (failed, killed) none
        _write_imputer(imputer, staged)
    return folder


def _write_imputer(imputer: Any, folder: Path) -> None:
    for i, member in enumerate(imputer.estimators_):
        member.save(member_folder(folder, i), overwrite=True)  # the folder is checked above
    params = json_params(imputer.get_params(deep=False))
    params = {key: params[key] for key in _PARAMS}
    params["missing_values"] = _json_marker(params["missing_values"])
    indicator = imputer.indicator_
    meta = {
        "format": _FORMAT,
        "format_version": _VERSION,
        "aekit_version": __version__,
        "params": params,
        "estimator_given": imputer.estimator is not None,
        "estimator_params": None
        if imputer.estimator is None
        else json_params(imputer.estimator.get_params()),
        "n_members": len(imputer.estimators_),
        "n_features_in": int(imputer.n_features_in_),
        **saved_names(imputer),
        "dtypes": getattr(imputer, "_dtypes", None),
        "table": bool(imputer._table),
        "empty": [bool(e) for e in imputer._empty],
        "low": _numbers(imputer.bounds_[0]),
        "high": _numbers(imputer.bounds_[1]),
        "indicator_features": None if indicator is None else [int(j) for j in indicator.features_],
        "blend": float(getattr(imputer, "blend_", 1.0)),
        "linear": None if getattr(imputer, "linear_", None) is None else imputer.linear_.to_json(),
        "neighbours": _neighbours_json(imputer),
        "trees": None,
    }
    trees = getattr(imputer, "trees_", None)
    with atomic_files(folder) as put:
        if trees is not None:  # the arrays first: imputer.json, written last, names them
            raw = tensor_bytes(trees.tensors())
            meta["trees"] = {
                "weight": float(imputer.tree_weight_), "depth": trees.depth, "sha256": sha256(raw),
            }  # fmt: skip
            put(TREES_NAME, raw)
        put(IMPUTER_NAME, json_bytes(meta))


def _neighbours_json(imputer: Any) -> dict[str, Any] | None:
    near = getattr(imputer, "neighbours_", None)
    if near is None:
        return None
    return {"weight": float(imputer.neighbour_weight_), "rows": near.to_json()}


@dataclass
class SavedImputer:
    """An imputer folder read and checked, for :meth:`AutoencoderImputer.load`.

    Attributes
    ----------
    params : dict
        The imputer's parameters (``estimator`` not yet set; a NaN marker as ``np.nan``).
    estimator_given : bool
        Whether the saved imputer was given an ``estimator``.
    members : list of Autoencoder
        The fitted autoencoders, the folder's own model first.
    table : bool
        Whether it fills a table (its members encode categorical columns).
    empty : ndarray of bool
        The columns with no observed value in ``fit``.
    bounds : ndarray of shape (2, n_features_in)
        Each column's observed range (NaN: no bound).
    indicator_features : list of int or None
        The missing indicator's columns (None: no indicator).
    feature_names : list of str or None
    dtypes : list of str or None
        The input DataFrame's column dtypes in ``fit`` (None for other input).
    blend : float
        The members' weight in the fill (1.0 in format version 1: the members alone).
    linear : LinearChain or None
        The linear chain blended in (:mod:`aekit.impute.chain`), or None.
    column_labels : list of int or None
        A DataFrame's integer column labels (format 3; None: taken by position).
    neighbours : NeighbourFill or None
        The nearest-neighbour fill blended in (format 4), or None.
    neighbour_weight : float
        Its weight (0.0 before format 4).
    trees : TreeFill or None
        The extra trees blended in (format 5), or None.
    tree_weight : float
        Their weight against the rest of the fill (0.0 before format 5).
    estimator : Autoencoder or None
        The estimator the imputer was given, unfitted, from its stored parameters (format
        6); None where none was given or stored.
    """

    params: dict[str, Any]
    estimator_given: bool
    members: list[Autoencoder]
    table: bool
    empty: np.ndarray
    bounds: np.ndarray
    indicator_features: list[int] | None
    feature_names: list[str] | None
    dtypes: list[str] | None
    blend: float = 1.0
    linear: LinearChain | None = None
    column_labels: list[int] | None = None
    neighbours: NeighbourFill | None = None
    neighbour_weight: float = 0.0
    trees: TreeFill | None = None
    tree_weight: float = 0.0
    estimator: Any = None


def _read_meta(folder: Path) -> dict[str, Any]:
    path = folder / IMPUTER_NAME
    if not path.is_file():
        raise ModelFileError(f"no imputer in {folder} (missing {IMPUTER_NAME})")
    meta = read_json(path)  # a JSON object, or one ModelFileError naming the file
    check_header(meta, path, _FORMAT, _VERSION)
    check_fields(
        meta,
        _FIELDS,
        path,
        optional=("blend", "linear", "column_labels", "neighbours", "trees", "estimator_params"),
    )
    check_fields(meta["params"], _PARAMS, path)
    n = meta["n_features_in"]
    if meta["n_members"] < 1 or n < 1:
        raise ModelFileError(f"{path}: n_members and n_features_in must be at least 1")
    lists = {"empty": (bool,), "low": (int, float, type(None)), "high": (int, float, type(None))}
    for key, types in lists.items():
        values = meta[key]
        if len(values) != n or not all(_typed(v, types) for v in values):
            raise ModelFileError(f"{path}: {key!r} must be {n} values of {types[0].__name__}")
    check_saved_names(meta, n, path)
    dtypes = meta["dtypes"]
    if dtypes is not None and (len(dtypes) != n or not all(isinstance(v, str) for v in dtypes)):
        raise ModelFileError(f"{path}: 'dtypes' must be {n} strings")
    flagged = meta["indicator_features"]
    if flagged is not None and not all(_typed(j, (int,)) and 0 <= j < n for j in flagged):
        raise ModelFileError(f"{path}: indicator_features must be column indices below {n}")
    _check_values(meta, path)
    blend = meta.setdefault("blend", 1.0)  # format version 1: the members alone
    if not (_typed(blend, (int, float)) and 0.0 <= blend <= 1.0):
        raise ModelFileError(f"{path}: 'blend' must be a number in [0, 1], got {blend!r:.40}")
    near = meta.setdefault("neighbours", None)  # before format 4: none
    weight = 0.0
    if near is not None:
        weight = near.get("weight") if set(near) == {"weight", "rows"} else None
        if not (_typed(weight, (int, float)) and 0.0 < weight <= 1.0 - blend + 1e-12):
            raise ModelFileError(
                f"{path}: 'neighbours' must hold 'weight' in (0, 1 - blend] and 'rows'"
            )
        meta["neighbours"] = (NeighbourFill.from_json(near["rows"], n, str(path)), float(weight))
    linear = meta.setdefault("linear", None)
    if linear is not None:
        meta["linear"] = LinearChain.from_json(linear, n, str(path))
    elif blend + weight < 1.0:
        raise ModelFileError(f"{path}: 'blend' below 1 needs the 'linear' chain it weighs")
    return meta


def _check_values(meta: dict[str, Any], path: Path) -> None:
    """Refuse values of ``imputer.json`` that no fitted imputer holds (types are checked).

    The bounds must be finite where stored (a NaN bound would fill NaN), the members as many
    as ``n_estimators`` asks for, the seed in range.
    """
    params = meta["params"]
    members, seed = params["n_estimators"], params["random_state"]
    for key in ("low", "high"):
        if not all(v is None or math.isfinite(v) for v in meta[key]):
            raise ModelFileError(f"{path}: {key!r} must be finite numbers or null")
    if members != "auto" and not (_typed(members, (int,)) and members == meta["n_members"]):
        raise ModelFileError(
            f"{path}: n_estimators {members!r:.40} must be 'auto' or n_members "
            f"({meta['n_members']})"
        )
    if seed is not None and not (_typed(seed, (int,)) and 0 <= seed < 2**63):
        raise ModelFileError(f"{path}: random_state must be null or an int in [0, 2**63)")


def imputer_feature_names(folder: str | os.PathLike[str]) -> list[str] | None:
    """The column names a saved imputer was fitted on (None: unnamed), from its JSON alone.

    Its autoencoders carry no names: the commands that apply an imputer folder's model
    pick DATA's columns by these.

    Raises
    ------
    ModelFileError
        ``imputer.json`` is missing or not a valid imputer file.
    """
    return _read_meta(Path(folder))["feature_names"]


def _typed(value: object, types: tuple[type, ...]) -> bool:
    """``isinstance`` where a bool is not an int or float unless asked for."""
    return isinstance(value, types) and (bool in types or not isinstance(value, bool))


def read_imputer(folder: str | os.PathLike[str]) -> SavedImputer:
    """Read and check an imputer folder written by :func:`save_imputer`.

    Raises
    ------
    ModelFileError
        If a file is missing, truncated, tampered with, or not aekit's.
    """
    folder = Path(folder)
    meta = _read_meta(folder)
    members = [Autoencoder.load(read_member_folder(folder, i)) for i in range(meta["n_members"])]
    widths = {m.n_features_in_ for m in members}
    if widths != {meta["n_features_in"]}:
        raise ModelFileError(f"{folder}: the imputer's autoencoders do not fit its columns")
    if meta["table"] != all(getattr(m, "table_layout_", None) is not None for m in members):
        raise ModelFileError(f"{folder}: 'table' does not match the autoencoders' layouts")
    params = dict(meta["params"])
    if params["missing_values"] is None:
        params["missing_values"] = np.nan
    if isinstance(params["categorical_features"], list):
        params["categorical_features"] = tuple(params["categorical_features"])
    bounds = np.array([meta["low"], meta["high"]], dtype=np.float64)  # None → NaN
    return SavedImputer(
        params=params,
        estimator_given=meta["estimator_given"],
        estimator=given_estimator(meta.get("estimator_params"), folder / IMPUTER_NAME, Autoencoder),
        members=members,
        table=meta["table"],
        empty=np.array(meta["empty"], dtype=bool),
        bounds=bounds,
        indicator_features=meta["indicator_features"],
        feature_names=meta["feature_names"],
        dtypes=meta["dtypes"],
        blend=float(meta["blend"]),
        linear=meta["linear"],
        column_labels=meta.get("column_labels"),
        **_saved_neighbours(meta["neighbours"]),
        **_saved_trees(folder, meta.get("trees"), meta["n_features_in"]),
    )


def _saved_neighbours(found: tuple[NeighbourFill, float] | None) -> dict[str, Any]:
    if found is None:
        return {}
    return {"neighbours": found[0], "neighbour_weight": found[1]}


def _saved_trees(folder: Path, saved: Any, n_features: int) -> dict[str, Any]:
    """The trees named in ``imputer.json`` (format 5), read from their checked arrays."""
    if saved is None:  # before format 5, or no trees
        return {}
    where = folder / IMPUTER_NAME
    weight = saved.get("weight") if set(saved) == {"weight", "depth", "sha256"} else None
    if not (_typed(weight, (int, float)) and 0.0 < weight <= 1.0):
        raise ModelFileError(f"{where}: 'trees' must hold 'weight' in (0, 1], 'depth', 'sha256'")
    raw = read_checked(folder / TREES_NAME, saved["sha256"], str(where))
    tensors = parse_safetensors(raw, folder / TREES_NAME)
    trees = TreeFill.from_tensors(tensors, saved["depth"], n_features, str(folder / TREES_NAME))
    return {"trees": trees, "tree_weight": float(weight)}
