"""``aekit encode``, ``reconstruct`` and ``score``: a model applied to a data file's rows.

``aekit score`` reads three kinds of MODEL: an autoencoder folder (each row's reconstruction
error), a detector folder (:class:`~aekit.AutoencoderOutlierDetector.save`), or an ``.onnx``
file from ``aekit export`` (:mod:`aekit.cli.export`), run with ONNX Runtime without PyTorch.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from .inputs import (
    by_position,
    checked_output,
    feature_columns,
    map_rows,
    model_and_data,
    model_columns,
    write_rows,
)

# an OUTPUT that is DATA would replace the data with what was computed from it
_ELSEWHERE = "writing there would replace the data; give another OUTPUT"


def cmd_encode(args: argparse.Namespace) -> int:
    """Write the codes of DATA's rows."""
    checked_output(args.output, args.data, "OUTPUT", _ELSEWHERE, models=[args.model])
    with model_and_data(args, stream=True) as (ae, _, data):
        names = list(ae.get_feature_names_out())
        codes = map_rows(data, args.data, ae.transform)
        n = write_rows(args.output, data, codes, len(names), names)
    print(f"wrote {args.output}: {n} codes of {len(names)} numbers")
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    """Write DATA's rows as the model reconstructs them."""
    checked_output(args.output, args.data, "OUTPUT", _ELSEWHERE, models=[args.model])
    with model_and_data(args, stream=True) as (ae, _, data):
        if getattr(ae, "table_layout_", None) is not None:  # a DataFrame, its dtypes kept
            from ..data.frames import write_frame

            write_frame(Path(args.output), ae.reconstruct(data.X))
            print(f"wrote {args.output}: {len(data.X)} reconstructed rows")
            return 0
        parts = map_rows(data, args.data, ae.reconstruct)
        names = getattr(data, "columns", None)  # a table's, or a streamed parquet file's
        n = write_rows(args.output, data, parts, ae.n_features_in_, names)
    print(f"wrote {args.output}: {n} reconstructed rows")
    _note_order(args, names)
    return 0


def _note_order(args: argparse.Namespace, written: Any) -> None:
    """Say where OUTPUT holds no names and its columns, the model's, are DATA's reordered.

    The columns were picked by name in the model's order; a ``.npy`` of them read in DATA's
    order would be mislabelled without a word.
    """
    from ..data.formats import column_names, find_format

    found = find_format(args.output)
    if written is None or found is None or found.named_columns:
        return
    ours = [str(n) for n in written]
    theirs = [n for n in column_names(args.data) or [] if n in set(ours)]
    if theirs != ours and len(theirs) == len(ours):
        listed = ", ".join(repr(n) for n in ours[:8]) + (", ..." if len(ours) > 8 else "")
        print(
            f"aekit: note: {args.output} names no columns: they are in the model's order "
            f"({listed}), not {args.data}'s",
            file=sys.stderr,
        )


def cmd_score(args: argparse.Namespace) -> int:
    """Score DATA's rows with an autoencoder folder, a detector folder or an ONNX file.

    An autoencoder folder writes each row's reconstruction ``error`` (and ``outlier`` with
    ``--threshold`` or ``--contamination``); a detector folder and an ``.onnx`` file (run
    with ONNX Runtime, never importing PyTorch) write ``error``, ``anomaly_score`` and
    ``outlier`` (1 above the detector's threshold, or the one the options set).
    """
    if args.threshold is not None and args.contamination is not None:
        raise ConfigError("give --threshold or --contamination, not both")
    _check_flagging(args)
    if Path(args.model).suffix.lower() == ".onnx":
        return _score_onnx(args)
    from ..anomaly import is_detector

    if is_detector(args.model):
        return _score_detector(args)
    return _score_errors(args)


def _check_flagging(args: argparse.Namespace) -> None:
    """Refuse bad flagging options before any row is scored.

    A ``--threshold`` that is not a finite number (NaN flagged every row, or none), and a
    ``--contamination`` that is neither ``auto`` nor a share in (0, 0.5].
    """
    if args.threshold is not None and not math.isfinite(args.threshold):
        raise ConfigError(f"--threshold must be a finite number, got {args.threshold}")
    share = args.contamination
    if share is None or share.strip().lower() == "auto":
        args.contamination = None if share is None else "auto"
        return
    try:
        args.contamination = float(share)
    except ValueError:
        args.contamination = math.nan
    if not 0 < args.contamination <= 0.5:
        raise ConfigError(f"--contamination must be auto or a share in (0, 0.5], got {share!r}")


def _threshold(args: argparse.Namespace, scores: np.ndarray, default: float | None) -> Any:
    """The score above which a row is flagged (None: no flags).

    ``--contamination``'s share of ``scores``, else ``--threshold``, else ``default`` (a
    detector's own threshold).
    """
    from ..anomaly.threshold import threshold_for

    if args.contamination is not None:
        contamination = args.contamination
        return threshold_for(
            scores, contamination if contamination == "auto" else float(contamination)
        )
    return args.threshold if args.threshold is not None else default


def _score_errors(args: argparse.Namespace) -> int:
    """An autoencoder folder: each row's reconstruction error, flagged above a threshold."""
    from ..data.formats import write_array

    checked_output(args.output, args.data, "OUTPUT", _ELSEWHERE, models=[args.model])
    with model_and_data(args, stream=True) as (ae, _, data):
        parts = map_rows(data, args.data, ae.reconstruction_error)
        errors = np.concatenate([np.asarray(p, dtype=np.float64) for p in parts])
    threshold = _threshold(args, errors, None)
    empty = int(np.isnan(errors).sum())  # rows with no observed value: NaN, nothing measured
    mean = float(np.nanmean(errors)) if empty < len(errors) else float("nan")
    line = f"wrote {args.output}: {len(errors)} rows, mean error {mean:.4g}"
    if empty:
        line += f" ({empty} row(s) with no observed value: error NaN, left out of the mean)"
    if threshold is None:
        write_array(args.output, errors, ["error"])
    else:
        flags = (~(errors <= threshold)).astype(np.float64)  # NaN: flagged, as predict does
        write_array(args.output, np.column_stack([errors, flags]), ["error", "outlier"])
        line += f"; {int(flags.sum())} outliers (error > {threshold:.4g})"
    print(line)
    return 0


def _write_scores(args: argparse.Namespace, table: np.ndarray, default: float | None) -> int:
    """Write ``error``, ``anomaly_score`` and ``outlier``; say how many rows were flagged."""
    from ..data.formats import write_array

    scores = table[:, 1]
    threshold = _threshold(args, scores, default)
    line = f"wrote {args.output}: {len(scores)} rows"
    if threshold is None:
        write_array(args.output, table, ["error", "anomaly_score"])
    else:
        flags = (~(scores <= threshold)).astype(np.float64)  # NaN (nothing observed): flagged
        names = ["error", "anomaly_score", "outlier"]
        write_array(args.output, np.column_stack([table, flags]), names)
        line += f"; {int(flags.sum())} outliers (anomaly score > {threshold:.4g})"
    print(line)
    return 0


def _score_detector(args: argparse.Namespace) -> int:
    from ..anomaly import load_detector

    checked_output(args.output, args.data, "OUTPUT", _ELSEWHERE, models=[args.model])
    detector = load_detector(args.model)

    def both(X: np.ndarray) -> np.ndarray:
        return np.column_stack([detector.reconstruction_error(X), detector.anomaly_score(X)])

    with model_and_data(args, stream=True) as (_, _, data):
        table = np.concatenate(list(map_rows(data, args.data, both)))
    return _write_scores(args, table, detector.threshold_)


def _score_onnx(args: argparse.Namespace) -> int:
    """Score with ONNX Runtime: reads DATA with aekit's readers, imports no torch."""
    from ..data.formats import read_table
    from ..export import OnnxModel

    checked_output(args.output, args.data, "OUTPUT", _ELSEWHERE, models=[args.model])
    if args.stream:
        raise ConfigError("--stream reads with PyTorch's row sources: not with an .onnx MODEL")
    model = OnnxModel(args.model)
    if model.kind == "imputer":
        raise ConfigError(
            f"{args.model} is an imputer's ONNX file: it fills missing values and has no "
            "scores (run it with aekit.export.OnnxModel, or 'aekit impute' on its folder)"
        )
    columns = feature_columns(args, model_columns({}, model), args.label_column)  # by name
    X = by_position(model, read_table(args.data, columns=columns, label_column=args.label_column).X)
    if X.shape[0] == 0 or X.shape[1] != model.n_features:
        raise DataError(
            f"{args.data} has {X.shape[1]} feature columns and {X.shape[0]} rows, the model "
            f"{args.model} expects {model.n_features} columns"
        )
    table = np.concatenate([_onnx_scores(model, part) for part in _dense_blocks(X)])
    return _write_scores(args, table, model.threshold)


_DENSE_BLOCK_VALUES = 2**24  # sparse DATA is scored by ONNX Runtime in dense blocks this big


def _dense_blocks(X: Any) -> Iterator[Any]:
    """``X`` itself, or sparse rows (a scipy CSR) as dense blocks of at most 2**24 values."""
    if not hasattr(X, "indptr"):
        yield X
        return
    step = max(1, _DENSE_BLOCK_VALUES // max(X.shape[1], 1))
    for start in range(0, X.shape[0], step):
        yield X[start : start + step].toarray()


def _onnx_scores(model: Any, X: np.ndarray) -> np.ndarray:
    out = model.run(X)
    return np.column_stack([out["error"], out["anomaly_score"]]).astype(np.float64)
