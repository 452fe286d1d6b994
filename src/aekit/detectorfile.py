"""Detector folders: a model folder plus the outlier detector's own files, no pickle.

A fitted :class:`~aekit.AutoencoderOutlierDetector` saves as::

    folder/
      config.json, weights.safetensors   the first autoencoder: a model folder every aekit
                                         command reads (encode, reconstruct, report...)
      members/1/, members/2/, ...        the other autoencoders, model folders too
      detector.safetensors               the score's statistics: feature weights, code mean
                                         and precision, each term's median and IQR
      detector.json                      format and version, the detector's parameters, its
                                         threshold, pooling shape and terms, and the SHA-256
                                         of detector.safetensors

``detector.json`` is written last, so an interrupted save is caught by its checksum. Loading
parses JSON and safetensors only (the autoencoders through :func:`aekit.modelfile.load`).
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
from sklearn.base import clone

from ._atomic import atomic_files
from ._scorer import AnomalyScorer
from ._version import __version__
from .errors import ModelFileError
from .modelfile import check_fields, check_tensors, load, read_json, save

if TYPE_CHECKING:
    from .outlier import AutoencoderOutlierDetector

__all__ = ["DETECTOR_NAME", "STATS_NAME", "is_detector", "load_detector", "save_detector"]

DETECTOR_NAME = "detector.json"
STATS_NAME = "detector.safetensors"
_FORMAT, _VERSION = "aekit-detector", 1

# Keys of detector.json and their JSON types.
_FIELDS: dict[str, type | tuple[type, ...]] = {
    "format": str, "format_version": int, "aekit_version": str, "params": dict,
    "estimator_given": bool, "n_members": int, "image_shape": (list, type(None)),
    "code_term": bool, "threshold": float, "stats_sha256": str,
    "n_features_in": int, "feature_names": (list, type(None)),
}  # fmt: skip
_PARAMS: dict[str, type | tuple[type, ...]] = {
    "n_estimators": int, "code_term": (bool, str), "image_shape": (str, list, type(None)),
    "contamination": (str, float), "prefit": bool, "random_state": (int, type(None)),
}  # fmt: skip


def is_detector(folder: str | os.PathLike[str]) -> bool:
    """True when ``folder`` holds a saved detector (not just an autoencoder)."""
    return (Path(folder) / DETECTOR_NAME).is_file()


def _member_folder(folder: Path, i: int) -> Path:
    return folder if i == 0 else folder / "members" / str(i)


def save_detector(detector: AutoencoderOutlierDetector, folder: str | os.PathLike[str]) -> Path:
    """Write a fitted detector as a detector folder (see the module docstring).

    Returns
    -------
    Path
        The folder.
    """
    folder = Path(folder)
    for i, member in enumerate(detector.estimators_):
        save(member, _member_folder(folder, i))
    scorer = detector.scorer_
    stats = {
        name: buffer.detach().to("cpu", torch.float32).contiguous()
        for name, buffer in scorer.named_buffers()
        if not name.startswith("members.")
    }
    raw = save_safetensors_bytes(stats)
    names = getattr(detector, "feature_names_in_", None)
    params = {key: detector.get_params()[key] for key in _PARAMS}
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
        "n_members": len(detector.estimators_),
        "image_shape": None if scorer.image_shape is None else list(scorer.image_shape),
        "code_term": scorer.code_term,
        "threshold": float(detector.threshold_),
        "n_features_in": int(detector.n_features_in_),
        "feature_names": None if names is None else [str(n) for n in names],
        "stats_sha256": hashlib.sha256(raw).hexdigest(),
    }
    with atomic_files(folder) as put:  # both or neither
        put(STATS_NAME, raw)
        put(DETECTOR_NAME, (json.dumps(meta, indent=2) + "\n").encode())
    return folder


def _read_meta(folder: Path) -> dict[str, Any]:
    path = folder / DETECTOR_NAME
    if not path.is_file():
        raise ModelFileError(f"no detector in {folder} (missing {DETECTOR_NAME})")
    meta = read_json(path)  # a JSON object, or one ModelFileError naming the file
    if meta.get("format") != _FORMAT:
        raise ModelFileError(f"{path} is not an aekit detector file")
    if not isinstance(meta.get("format_version"), int) or meta["format_version"] > _VERSION:
        raise ModelFileError(
            f"{path} has format_version {meta.get('format_version')!r}; this aekit reads up "
            f"to {_VERSION} (upgrade aekit)"
        )
    check_fields(meta, _FIELDS, path)
    check_fields(meta["params"], _PARAMS, path)
    if meta["n_members"] < 1:
        raise ModelFileError(f"{path}: n_members must be at least 1")
    return meta


def load_detector(folder: str | os.PathLike[str]) -> AutoencoderOutlierDetector:
    """Load a detector folder written by :meth:`AutoencoderOutlierDetector.save`.

    Raises
    ------
    ModelFileError
        If a file is missing, truncated, tampered with, or not aekit's.
    """
    from .outlier import AutoencoderOutlierDetector

    folder = Path(folder)
    meta = _read_meta(folder)
    members = [load(_member_folder(folder, i)) for i in range(meta["n_members"])]
    widths = {(m.n_features_in_, m.model_config_.code_dim) for m in members}
    if len(widths) != 1 or meta["n_features_in"] != members[0].n_features_in_:
        raise ModelFileError(f"{folder}: the detector's autoencoders do not fit together")
    shape = None if meta["image_shape"] is None else tuple(meta["image_shape"])
    try:
        scorer = AnomalyScorer([m.module_ for m in members], shape, meta["code_term"])
    except (RuntimeError, ValueError) as exc:
        raise ModelFileError(f"{folder}: image_shape {shape} does not fit the model") from exc
    stats_path = folder / STATS_NAME
    try:
        raw = stats_path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"cannot read {stats_path}: {exc.strerror or exc}") from exc
    if hashlib.sha256(raw).hexdigest() != meta["stats_sha256"]:
        raise ModelFileError(f"{stats_path} does not match the checksum in {DETECTOR_NAME}")
    try:
        stats = load_safetensors_bytes(raw)
    except (SafetensorError, ValueError, RuntimeError, OSError) as exc:
        raise ModelFileError(f"{stats_path} is not a valid safetensors file ({exc})") from exc
    expected = {k: v for k, v in scorer.state_dict().items() if not k.startswith("members.")}
    check_tensors(expected, stats, stats_path)
    scorer.load_state_dict(stats, strict=False)
    params = dict(meta["params"])
    if isinstance(params["image_shape"], list):
        params["image_shape"] = tuple(params["image_shape"])
    if params["prefit"]:
        params["estimator"] = members[0]
    elif meta["estimator_given"]:
        params["estimator"] = clone(members[0])
    detector = AutoencoderOutlierDetector(**params)
    detector._adopt(members, scorer.eval())
    detector._set_threshold_value(meta["threshold"])
    detector.n_features_in_ = members[0].n_features_in_
    names = meta["feature_names"]
    if names is not None:
        if len(names) != detector.n_features_in_ or not all(isinstance(n, str) for n in names):
            raise ModelFileError(
                f"{folder}: feature_names must be {detector.n_features_in_} strings"
            )
        detector.feature_names_in_ = np.asarray(names, dtype=object)
    return detector
