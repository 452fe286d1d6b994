"""ONNX export for deployment, and running an exported model without PyTorch.

:func:`to_onnx` writes a fitted :class:`~aekit.Autoencoder` or
:class:`~aekit.AutoencoderOutlierDetector` as **one self-contained ONNX file** (weights
inside, no external-data sidecar). Its input ``rows`` is a float32 array of shape
``(n_rows, n_features)`` in the original units; its outputs are

- ``code`` (n_rows, code_dim): the (first) autoencoder's code, as ``transform`` gives it;
- ``reconstruction`` (n_rows, n_features): its reconstruction in the original units;
- ``error`` (n_rows,): its reconstruction error in the model's scaled space, aekit's one unit
  (``Autoencoder.reconstruction_error``), NaN for a row with no observed value;
- ``anomaly_score`` (n_rows,): higher is more anomalous. A detector's
  :meth:`~aekit.AutoencoderOutlierDetector.anomaly_score` (scaling, residual weights or
  pooling, the code term and the ensemble included); for an autoencoder, ``error``.

A fitted :class:`~aekit.AutoencoderImputer` exports instead as a graph with one output,
``filled`` (n_rows, n_features_out): the input rows, NaN where a value is missing, with their
holes filled as :meth:`~aekit.AutoencoderImputer.transform` fills them (the members' mean
reconstruction after the same scaling, clipped to each column's observed range; observed
entries unchanged; see :mod:`aekit.impute.graph`). An imputer fitted on a table with
categorical columns is refused with one line: its holes become categories, which the graph
does not decode.

The file's metadata records the aekit version, the feature count and names, what was
exported and a detector's threshold. :class:`OnnxModel` runs such a file with ONNX Runtime
and NumPy alone: this module imports torch only inside :func:`to_onnx`. Both need the
``onnx`` extra (``pip install aekit[onnx]``).
"""

from __future__ import annotations

import copy
import io
import json
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._version import __version__
from .errors import ConfigError, DataError, ModelFileError
from .files.atomic import atomic_write

__all__ = ["IMPUTER_OUTPUTS", "INPUT", "OUTPUTS", "OnnxModel", "to_onnx"]

INPUT = "rows"
OUTPUTS = ("code", "reconstruction", "error", "anomaly_score")
IMPUTER_OUTPUTS = ("filled",)  # an imputer's graph: the rows with their holes filled
OPSET = 17
_CHUNK_ROWS = 4096  # OnnxModel.run feeds the session this many rows at a time
_MAX_BYTES = 2**31 - 1  # protobuf's limit: one self-contained file holds less than 2 GiB


def _require(package: str) -> Any:
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError:
        raise ConfigError(
            f"{package} is not installed: pip install 'aekit[onnx]' (onnx and onnxruntime)"
        ) from None


def _scorer_of(model: Any, feature_names: Any) -> tuple[Any, dict[str, str]]:
    """The torch module to export (a CPU copy) and the metadata that describes it."""
    from .anomaly.detector import AutoencoderOutlierDetector
    from .anomaly.scorer import AnomalyScorer
    from .estimator.autoencoder import Autoencoder
    from .impute import AutoencoderImputer, fill_graph

    if isinstance(model, AutoencoderImputer):
        graph = fill_graph(model)
        meta = {"kind": "imputer", "outputs": ", ".join(IMPUTER_OUTPUTS)}
        return graph, meta | _described(model, feature_names)
    if isinstance(model, AutoencoderOutlierDetector):
        if getattr(model, "scorer_", None) is None:
            raise ConfigError("to_onnx needs a detector fitted with aekit Autoencoders")
        scorer, first = model.scorer_, model.estimator_
        meta = {"kind": "detector", "threshold": repr(float(model.threshold_))}
    elif isinstance(model, Autoencoder):
        if not hasattr(model, "module_"):
            raise ConfigError("to_onnx needs a fitted autoencoder: call fit first")
        scorer = AnomalyScorer([model.module_], image_shape=None, code_term=False)  # = error
        first, meta = model, {"kind": "autoencoder"}
    else:
        raise ConfigError(
            f"to_onnx exports an Autoencoder, AutoencoderOutlierDetector or "
            f"AutoencoderImputer, not {type(model).__name__}"
        )
    if getattr(first, "table_layout_", None) is not None:
        raise ConfigError(
            "to_onnx exports models of numeric rows; this one encodes a table with categorical "
            "columns (one-hot blocks), which the ONNX file would not"
        )
    meta |= {"outputs": ", ".join(OUTPUTS)} | _described(first, feature_names, model)
    return copy.deepcopy(scorer).to("cpu").float().eval(), meta


def _described(fitted: Any, feature_names: Any, owner: Any = None) -> dict[str, str]:
    """The metadata every export records: the aekit version, the feature count and names.

    Without names, the integer column labels the estimator (``owner``, else ``fitted``) was
    fitted on, if any, as ``column_labels``: :meth:`OnnxModel.run` reads a DataFrame by them.
    """
    source = fitted if owner is None else owner  # a detector keeps the names, not its members
    names = getattr(source, "feature_names_in_", None) if feature_names is None else feature_names
    if names is not None and len(names) != fitted.n_features_in_:
        raise ConfigError(f"{len(names)} feature names for {fitted.n_features_in_} features")
    if names is not None and len({str(n) for n in names}) < len(names):
        raise ConfigError("feature_names must be distinct: a name given twice names no column")
    meta = {
        "aekit_version": __version__,
        "n_features": str(int(fitted.n_features_in_)),
        "feature_names": json.dumps(None if names is None else [str(n) for n in names]),
    }
    labels = getattr(source, "_column_labels", None)
    if names is None and labels is not None:
        meta["column_labels"] = json.dumps([int(n) for n in labels])
    return meta


def to_onnx(
    model: Any, path: str | os.PathLike[str], *, feature_names: Sequence[str] | None = None
) -> Path:
    """Write a fitted autoencoder or outlier detector as one self-contained ONNX file.

    Parameters
    ----------
    model : Autoencoder, AutoencoderOutlierDetector or AutoencoderImputer
        Fitted. Its network, input scaling and (for a detector) the whole anomaly score are
        exported, or an imputer's whole ``transform``; see the module docstring for the
        outputs.
    path : path
        The ``.onnx`` file to write (atomically); its folder is created if missing.
    feature_names : sequence of str, optional
        The input columns' names, recorded in the file's metadata (``aekit score`` picks
        them from a named table); default: the names ``model`` was fitted with, if any.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    ConfigError
        If ``onnx`` is not installed, the model is not fitted or not aekit's, it models a
        table with categorical columns, or it is too large for one file (2 GiB).
    """
    onnx = _require("onnx")
    import torch

    scorer, meta = _scorer_of(model, feature_names)
    outputs = meta["outputs"].split(", ")
    example = torch.zeros(2, int(meta["n_features"]))
    axes = {INPUT: {0: "n_rows"}} | {name: {0: "n_rows"} for name in outputs}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript-based exporter writes one file with no extra dependency; torch
        # marks it deprecated in favour of the dynamo exporter (which needs onnxscript).
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            scorer,
            (example,),
            buffer,
            input_names=[INPUT],
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    onnx.helper.set_model_props(proto, meta)
    proto.doc_string = f"aekit {__version__}: {meta['kind']} with outputs {meta['outputs']}"
    onnx.checker.check_model(proto)
    raw = proto.SerializeToString()
    if len(raw) > _MAX_BYTES:
        raise ConfigError(f"the model needs {len(raw)} bytes: over ONNX's 2 GiB for one file")
    path = Path(path)
    atomic_write(path, raw)
    return path


class OnnxModel:
    """An ONNX file from :func:`to_onnx`, run with ONNX Runtime on NumPy rows (no torch).

    Parameters
    ----------
    path : path
        The ``.onnx`` file.

    Attributes
    ----------
    kind : {"detector", "autoencoder", "imputer"}
        What was exported.
    outputs : tuple of str
        Its outputs: :data:`OUTPUTS`, or an imputer's :data:`IMPUTER_OUTPUTS`.
    n_features : int
        Columns each row must have.
    feature_names : list of str or None
        The training columns' names, when it had any.
    column_labels : list of int or None
        The training columns' integer labels (a DataFrame of unnamed columns), when it had
        them and no names.
    threshold : float or None
        A detector's threshold on ``anomaly_score`` (rows above it are outliers).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        ort = _require("onnxruntime")
        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"no ONNX file at {path}")
        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelFileError(f"{path} is not a valid ONNX model ({exc})") from exc
        meta = self.session.get_modelmeta().custom_metadata_map
        outputs = [o.name for o in self.session.get_outputs()]
        if "n_features" not in meta or tuple(outputs) not in (OUTPUTS, IMPUTER_OUTPUTS):
            raise ModelFileError(f"{path} was not written by aekit's to_onnx")
        self.outputs = tuple(outputs)
        self.kind: str = meta.get("kind", "autoencoder")
        kinds = ("imputer",) if self.outputs == IMPUTER_OUTPUTS else ("autoencoder", "detector")
        if self.kind not in kinds:
            raise ModelFileError(
                f"{path}: kind {self.kind!r:.40} in the metadata does not fit its outputs "
                f"(expected {' or '.join(kinds)})"
            )
        self.n_features = _n_features(meta["n_features"], self.session.get_inputs()[0], path)
        self.feature_names = _labels(meta.get("feature_names"), self.n_features, path, str)
        self.column_labels = _labels(meta.get("column_labels"), self.n_features, path, int)
        self.threshold = _threshold(meta.get("threshold"), path)

    def run(self, X: Any) -> dict[str, np.ndarray]:
        """All outputs for rows ``X`` (fed as float32, in chunks of 4,096 rows).

        Four for an autoencoder or detector (:data:`OUTPUTS`); ``filled`` for an imputer.

        Raises
        ------
        DataError, DataTypeError
            The estimators' input check (:func:`aekit.data.checks.checked_array`): if ``X``
            is not 2-D with ``n_features`` numeric columns, or holds infinity or a value
            beyond float32's range (NaN is a missing value, scored on the observed entries);
            a DataFrame whose columns are not ``feature_names`` (the same names in another
            order are put in the exported order; an array is taken by position).

        Notes
        -----
        ``reconstruction`` and ``filled`` have their columns in the exported order
        (``feature_names``), whatever the order of a DataFrame's; for ``filled``, the whole
        answer of an imputer's graph, an AekitWarning says so where the orders differ.
        """
        from .data.checks import checked_array
        from .data.names import warn_of_fitted_order

        names = self.feature_names if self.feature_names is not None else self.column_labels
        if self.outputs == IMPUTER_OUTPUTS:  # (a model's reconstruction: said above)
            warn_of_fitted_order(X, names, "run's 'filled'")
        rows = checked_array(X, self.n_features, "the ONNX model", names)
        rows = np.ascontiguousarray(rows, dtype=np.float32)  # checked: within float32's range
        parts = [
            self.session.run(None, {INPUT: rows[start : start + _CHUNK_ROWS]})
            for start in range(0, max(len(rows), 1), _CHUNK_ROWS)
        ]
        out = {name: np.concatenate([p[i] for p in parts]) for i, name in enumerate(self.outputs)}
        _check_overflow(out, rows)
        return out


def _check_overflow(out: dict[str, np.ndarray], rows: np.ndarray) -> None:
    """Refuse outputs that overflowed float32, as the estimators do (:class:`DataError`).

    Infinity is never an answer, nor NaN for a row with an observed value (NaN is the
    score of a row without one: the graph's ``inf - inf`` must not pass for it).
    """
    from .data.checks import unusable_message

    observed = ~np.isnan(rows).all(axis=1)
    for name, values in out.items():
        flat = values.reshape(len(values), int(np.prod(values.shape[1:])))
        bad = np.isinf(flat).any(axis=1) | (observed & np.isnan(flat).any(axis=1))
        if bad.any():
            row = int(np.argmax(bad))
            value = float(flat[row][~np.isfinite(flat[row])][0])
            raise DataError(
                unusable_message("row", value, row, during=f"the ONNX model's {name!r}")
            )


def _n_features(text: str, graph_input: Any, path: Path) -> int:
    """``n_features`` from ONNX metadata: a positive int, the graph's input width.

    Raises
    ------
    ModelFileError
        Text that is not a decimal int, a number out of range, or one other than the width
        of the graph's input (where the graph fixes it).
    """
    width = graph_input.shape[-1] if graph_input.shape else None
    value = int(text) if text.isascii() and text.isdigit() and len(text) <= 10 else 0
    if not 0 < value < 2**31 or (isinstance(width, int) and width != value):
        raise ModelFileError(
            f"{path}: n_features {text!r:.40} in the metadata is not the input width "
            f"of the graph ({width})"
        )
    return value


def _labels(text: str | None, n_features: int, path: Path, kind: type) -> list[Any] | None:
    """``feature_names`` (``kind`` str) or ``column_labels`` (int) from ONNX metadata.

    None (absent or null), or ``n_features`` distinct values of ``kind``.

    Raises
    ------
    ModelFileError
        Text that is not such a JSON list.
    """
    if text is None:
        return None
    try:
        names = json.loads(text)
    except (ValueError, RecursionError):
        names = 0  # refused below
    if names is None:
        return None
    from .data.names import label_kind

    if label_kind(names, n_features) is not kind:
        field, what = ("feature_names", "strings") if kind is str else ("column_labels", "integers")
        raise ModelFileError(
            f"{path}: {field} in the metadata must be a JSON list of {n_features} distinct {what}"
        )
    return names


def _threshold(text: str | None, path: Path) -> float | None:
    """The threshold stored in ONNX metadata: a finite number, or None where none is stored.

    Raises
    ------
    ModelFileError
        Text that is not a number, or NaN or infinity (which would flag every row or none).
    """
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ModelFileError(
            f"{path}: threshold {text!r:.40} in the metadata is not a finite number"
        )
    return value
