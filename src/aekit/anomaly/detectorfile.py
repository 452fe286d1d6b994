"""Detector folders: a model folder plus the outlier detector's own files, no pickle.

A fitted :class:`~aekit.AutoencoderOutlierDetector` saves as::

    folder/
      config.json, weights.safetensors   the first autoencoder: a model folder every aekit
                                         command reads (encode, reconstruct, report...)
      members/1/, members/2/, ...        the other autoencoders, model folders too
      detector.safetensors               the score's statistics: feature weights, code mean
                                         and precision, each term's median and IQR
      detector.json                      format and version, the detector's parameters (and
                                         the given estimator's, version 5), its threshold,
                                         pooling shape and terms, and the SHA-256 of
                                         detector.safetensors

``detector.json`` is written last, so an interrupted save is caught by its checksum. Loading
parses JSON and safetensors only (the autoencoders through
:meth:`Autoencoder.load <aekit.Autoencoder.load>`), through :mod:`aekit.files`. This module
reads and checks the layout; :meth:`AutoencoderOutlierDetector.load
<aekit.AutoencoderOutlierDetector.load>` builds the detector from it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import ModelFileError
from ..estimator.autoencoder import Autoencoder
from ..estimator.modelfile import given_estimator, json_params
from ..files import (
    atomic_files,
    check_fields,
    check_header,
    check_tensors,
    json_bytes,
    parse_safetensors,
    read_checked,
    read_json,
    saved_folder,
    sha256,
    tensor_bytes,
)
from ..files.layouts import DETECTOR_NAME, check_can_save, member_folder, read_member_folder
from ..files.names import NAME_FIELDS, check_saved_names, saved_names
from .scorer import AnomalyScorer

__all__ = [
    "DETECTOR_NAME",
    "STATS_NAME",
    "SavedDetector",
    "detector_feature_names",
    "read_detector",
    "save_detector",
]

STATS_NAME = "detector.safetensors"
# 2: the neighbour term (n_reference); 3: density; 4: column_labels (a DataFrame's integers);
# 5: estimator_params (the given estimator's own; absent: its first member's, cloned)
_FORMAT, _VERSION = "aekit-detector", 5

# Keys of detector.json and their JSON types.
_FIELDS: dict[str, type | tuple[type, ...]] = {
    "format": str, "format_version": int, "aekit_version": str, "params": dict,
    "estimator_given": bool, "n_members": int, "image_shape": (list, type(None)),
    "code_term": bool, "n_reference": int, "threshold": float, "stats_sha256": str,
    "n_features_in": int, "density_term": bool, **NAME_FIELDS,
    "estimator_params": (dict, type(None)),
}  # fmt: skip
_PARAMS: dict[str, type | tuple[type, ...]] = {
    "n_estimators": int, "code_term": (bool, str), "neighbour_term": (bool, str),
    "density_term": (bool, str), "image_shape": (str, list, type(None)),
    "contamination": (str, float), "prefit": bool, "random_state": (int, type(None)),
}  # fmt: skip


def save_detector(
    detector: Any, folder: str | os.PathLike[str], *, overwrite: bool = False
) -> Path:
    """Write a fitted detector as a detector folder (see the module docstring).

    A folder that already holds a saved model or detector is refused unless ``overwrite``
    (:func:`aekit.files.layouts.check_can_save`).

    Returns
    -------
    Path
        The folder.
    """
    folder = Path(folder)
    check_can_save(folder, overwrite)
    with saved_folder(folder) as staged:  # the whole folder, or (failed, killed) none
        _write_detector(detector, staged)
    return folder


def _write_detector(detector: Any, folder: Path) -> None:
    for i, member in enumerate(detector.estimators_):
        member.save(member_folder(folder, i), overwrite=True)  # the folder is checked above
    scorer = detector.scorer_
    stats = {
        name: buffer.float()
        for name, buffer in scorer.named_buffers()
        if not name.startswith("members.")
    }
    raw = tensor_bytes(stats)
    params = {key: detector.get_params()[key] for key in _PARAMS}
    params = json_params(params)  # (a RandomState is saved as None, as an estimator's is)
    if isinstance(params["image_shape"], tuple):
        params["image_shape"] = list(params["image_shape"])
    if not isinstance(params["contamination"], str):
        params["contamination"] = float(params["contamination"])
    meta = {
        "format": _FORMAT,
        "format_version": _VERSION,
        "aekit_version": __version__,
        "params": params,
        "estimator_given": detector.estimator is not None,
        "estimator_params": _given_params(detector),
        "n_members": len(detector.estimators_),
        "image_shape": None if scorer.image_shape is None else list(scorer.image_shape),
        "code_term": scorer.code_term,
        "n_reference": scorer.n_reference,
        "density_term": scorer.density_term,
        "threshold": float(detector.threshold_),
        "n_features_in": int(detector.n_features_in_),
        **saved_names(detector),
        "stats_sha256": sha256(raw),
    }
    with atomic_files(folder) as put:  # both or neither
        put(STATS_NAME, raw)
        put(DETECTOR_NAME, json_bytes(meta))


def _given_params(detector: Any) -> dict[str, Any] | None:
    """The given (unfitted) autoencoder's parameters; None without one, or with ``prefit``."""
    given = detector.estimator
    if given is None or detector.prefit or not isinstance(given, Autoencoder):
        return None
    return json_params(given.get_params())


def _read_meta(folder: Path) -> dict[str, Any]:
    path = folder / DETECTOR_NAME
    if not os.path.lexists(path):
        raise ModelFileError(f"no detector in {folder} (missing {DETECTOR_NAME})")
    meta = read_json(path)  # a JSON object, or one ModelFileError naming the file
    check_header(meta, path, _FORMAT, _VERSION)
    # added in formats 2 (neighbour), 3 (density), 4 (labels), 5; absent from older folders
    optional = ("n_reference", "density_term", "column_labels", "estimator_params")
    check_fields(meta, _FIELDS, path, optional=optional)
    check_fields(meta["params"], _PARAMS, path, optional=("neighbour_term", "density_term"))
    meta.setdefault("n_reference", 0)
    meta.setdefault("density_term", False)
    meta["params"].setdefault("neighbour_term", False)
    meta["params"].setdefault("density_term", False)
    _check_values(meta, path)
    return meta


def _check_values(meta: dict[str, Any], path: Path) -> None:
    """Refuse values of ``detector.json`` that no fitted detector holds (types are checked).

    The threshold must be finite (NaN would flag every row, or none); the members as many as
    the parameters ask for (one when ``prefit``); the parameters in the detector's ranges;
    ``n_reference`` 0 or at least 2 (a fitted detector never keeps one lone neighbour: a row
    equal to it leaves itself out and has none);
    the pooling shape three positive sizes whose product is the input width.
    """
    params, shape = meta["params"], meta["image_shape"]
    members = 1 if params["prefit"] else params["n_estimators"]
    contamination, seed = params["contamination"], params["random_state"]
    in_range = isinstance(contamination, float) and 0 < contamination <= 0.5
    checks = [  # (name, stored value, what it must be, whether it is)
        ("threshold", meta["threshold"], "a finite number", math.isfinite(meta["threshold"])),
        ("n_members", meta["n_members"], f"{members} (n_estimators, or 1 with prefit)",
         meta["n_members"] == members >= 1),
        ("contamination", contamination, "'auto' or a number in (0, 0.5]",
         contamination == "auto" or in_range),
        ("code_term", params["code_term"], "true, false or 'auto'",
         params["code_term"] in (True, False, "auto")),
        ("neighbour_term", params["neighbour_term"], "true, false or 'auto'",
         params["neighbour_term"] in (True, False, "auto")),
        ("density_term", params["density_term"], "true, false or 'auto'",
         params["density_term"] in (True, False, "auto")),
        ("n_reference", meta["n_reference"], "0 or an int in [2, 2**31)",
         meta["n_reference"] == 0 or 2 <= meta["n_reference"] < 2**31),
        ("random_state", seed, "null or an int in [0, 2**63)", seed is None or 0 <= seed < 2**63),
        ("params.image_shape", params["image_shape"], "'auto', null or a list",
         params["image_shape"] == "auto" or not isinstance(params["image_shape"], str)),
        ("image_shape", shape, f"null or 3 positive sizes of {meta['n_features_in']} values",
         shape is None or (
             len(shape) == 3
             and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape)
             and math.prod(shape) == meta["n_features_in"])),
    ]  # fmt: skip
    for name, value, expected, ok in checks:
        if not ok:
            raise ModelFileError(f"{path}: {name} must be {expected}, got {value!r:.60}")


def detector_feature_names(folder: str | os.PathLike[str]) -> list[str] | None:
    """The column names a saved detector was fitted on (None: unnamed), from its JSON alone.

    Its autoencoders are fitted on the detector's checked rows and carry no names: the
    commands that apply a detector folder's model pick DATA's columns by these.

    Raises
    ------
    ModelFileError
        ``detector.json`` is missing or not a valid detector file.
    """
    names = _read_meta(Path(folder))["feature_names"]
    return None if names is None else [str(n) for n in names]


@dataclass
class SavedDetector:
    """A detector folder read and checked, for :meth:`AutoencoderOutlierDetector.load`.

    Attributes
    ----------
    params : dict
        The detector's parameters (tuples restored; ``estimator`` not yet set).
    estimator_given : bool
        Whether the saved detector was given an ``estimator``.
    members : list of Autoencoder
        The fitted autoencoders, the folder's own model first.
    scorer : AnomalyScorer
        The score's statistics, loaded, in eval mode.
    threshold : float
    feature_names : list of str or None
    column_labels : list of int or None
        A DataFrame's integer column labels (format 4; None: taken by position).
    estimator : Autoencoder or None
        The estimator the detector was given, unfitted, from its stored parameters (format
        5); None where none was given (or ``prefit``) or stored.
    """

    params: dict[str, Any]
    estimator_given: bool
    members: list[Autoencoder]
    scorer: AnomalyScorer
    threshold: float
    feature_names: list[str] | None
    column_labels: list[int] | None = None
    estimator: Any = None


def read_detector(folder: str | os.PathLike[str]) -> SavedDetector:
    """Read and check a detector folder written by :func:`save_detector`.

    Raises
    ------
    ModelFileError
        If a file is missing, truncated, tampered with, or not aekit's.
    """
    folder = Path(folder)
    meta = _read_meta(folder)
    members = [Autoencoder.load(read_member_folder(folder, i)) for i in range(meta["n_members"])]
    widths = {(m.n_features_in_, m.model_config_.code_dim) for m in members}
    if len(widths) != 1 or meta["n_features_in"] != members[0].n_features_in_:
        raise ModelFileError(f"{folder}: the detector's autoencoders do not fit together")
    shape = None if meta["image_shape"] is None else tuple(meta["image_shape"])
    try:
        scorer = AnomalyScorer(
            [m.module_ for m in members],
            shape,
            meta["code_term"],
            meta["n_reference"],
            meta["density_term"],
        )
    except (RuntimeError, ValueError, TypeError, OverflowError) as exc:
        raise ModelFileError(f"{folder}: image_shape {shape} does not fit the model") from exc
    stats_path = folder / STATS_NAME
    raw = read_checked(stats_path, meta["stats_sha256"], DETECTOR_NAME)
    stats = parse_safetensors(raw, stats_path)
    expected = {k: v for k, v in scorer.state_dict().items() if not k.startswith("members.")}
    check_tensors(expected, stats, stats_path)
    scorer.load_state_dict(stats, strict=False)
    params = dict(meta["params"])
    if isinstance(params["image_shape"], list):
        params["image_shape"] = tuple(params["image_shape"])
    names, labels = check_saved_names(meta, members[0].n_features_in_, folder)
    given = given_estimator(meta.get("estimator_params"), folder / DETECTOR_NAME, Autoencoder)
    return SavedDetector(
        params, meta["estimator_given"], members, scorer.eval(), meta["threshold"], names, labels,
        given,
    )  # fmt: skip
