"""``aekit export``, and ``aekit score`` on detectors and ONNX files.

``aekit export MODEL -o model.onnx`` writes a model folder (an autoencoder's, or a saved
:class:`~aekit.AutoencoderOutlierDetector`'s) as one ONNX file (:func:`aekit.export.to_onnx`).
``aekit score`` reads three kinds of MODEL: an autoencoder folder (each row's reconstruction
error, as before: :func:`aekit.cli.apply.cmd_score`), a detector folder, or an ``.onnx`` file,
which is run with ONNX Runtime and never imports PyTorch. The last two write the columns
``error``, ``anomaly_score`` and ``outlier`` (1 for rows above the detector's threshold, or
the one ``--threshold``/``--contamination`` sets).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError

__all__ = ["cmd_export", "cmd_score", "register"]


def register(command: Any, sub: Any) -> None:
    """Add ``export`` to the parser and let ``score`` read detectors and ONNX files.

    ``command`` is the parser's helper that adds a subcommand; ``sub`` its subparsers.
    """
    p = command(
        "export", cmd_export, "write a model folder as one self-contained ONNX file",
        "aekit export model/ -o model.onnx", [],
    )  # fmt: skip
    p.add_argument("model", metavar="MODEL", help="model or detector folder")
    p.add_argument("-o", "--output", required=True, metavar="FILE.onnx", help="ONNX file")
    score = sub.choices["score"]
    score.set_defaults(func=cmd_score)
    score.description += (
        " MODEL may also be a detector folder (AutoencoderOutlierDetector.save) or an .onnx "
        "file from 'aekit export', run with onnxruntime and without PyTorch; both write "
        "error, anomaly_score and outlier columns."
    )


def cmd_export(args: argparse.Namespace) -> int:
    """Write MODEL (an autoencoder or detector folder) as one ONNX file."""
    from .. import load
    from ..anomaly import is_detector
    from ..export import to_onnx
    from .inputs import fit_info, model_columns

    output = Path(args.output)
    if output.suffix.lower() != ".onnx":
        raise ConfigError(f"the output must be an .onnx file, got {output.name}")
    detector = is_detector(args.model)
    model = load(args.model)
    columns = model_columns(fit_info(args.model), model)  # recorded: score picks by name
    to_onnx(model, output, feature_names=columns)
    kind = "detector" if detector else "autoencoder"
    print(f"wrote {output}: the {kind} in {args.model} ({output.stat().st_size:,} bytes)")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """Score DATA's rows with an autoencoder folder, a detector folder or an ONNX file."""
    if args.threshold is not None and args.contamination is not None:
        raise ConfigError("give --threshold or --contamination, not both")
    if Path(args.model).suffix.lower() == ".onnx":
        return _score_onnx(args)
    from ..anomaly import is_detector

    if is_detector(args.model):
        return _score_detector(args)
    from .apply import cmd_score as score_errors

    return score_errors(args)


def _write_scores(args: argparse.Namespace, table: np.ndarray, default: float | None) -> int:
    """Write ``error``, ``anomaly_score`` and ``outlier``; say how many rows were flagged."""
    from ..anomaly.threshold import threshold_for
    from ..data.formats import write_array

    scores = table[:, 1]
    threshold = args.threshold if args.threshold is not None else default
    if args.contamination is not None:
        contamination = args.contamination
        share = contamination if contamination == "auto" else float(contamination)
        threshold = threshold_for(scores, share)
    line = f"wrote {args.output}: {len(scores)} rows"
    if threshold is None:
        write_array(args.output, table, ["error", "anomaly_score"])
    else:
        flags = (scores > threshold).astype(np.float64)
        names = ["error", "anomaly_score", "outlier"]
        write_array(args.output, np.column_stack([table, flags]), names)
        line += f"; {int(flags.sum())} outliers (anomaly score > {threshold:.4g})"
    print(line)
    return 0


def _score_detector(args: argparse.Namespace) -> int:
    from ..anomaly import load_detector
    from ..data.formats import check_output
    from .inputs import map_rows, model_and_data

    check_output(args.output)
    detector = load_detector(args.model)

    def both(X: np.ndarray) -> np.ndarray:
        return np.column_stack([detector.reconstruction_error(X), detector.anomaly_score(X)])

    with model_and_data(args, stream=True) as (_, _, data):
        table = np.concatenate(list(map_rows(data, args.data, both)))
    return _write_scores(args, table, detector.threshold_)


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


def _score_onnx(args: argparse.Namespace) -> int:
    """Score with ONNX Runtime: reads DATA with aekit's readers, imports no torch."""
    from ..data.formats import check_output, read_table
    from ..export import OnnxModel
    from .inputs import feature_columns, model_columns

    check_output(args.output)
    if args.stream:
        raise ConfigError("--stream reads with PyTorch's row sources: not with an .onnx MODEL")
    model = OnnxModel(args.model)
    columns = feature_columns(args, model_columns({}, model), args.label_column)  # by name
    X = read_table(args.data, columns=columns, label_column=args.label_column).X
    if X.shape[0] == 0 or X.shape[1] != model.n_features:
        raise DataError(
            f"{args.data} has {X.shape[1]} feature columns and {X.shape[0]} rows, the model "
            f"{args.model} expects {model.n_features} columns"
        )
    table = np.concatenate([_onnx_scores(model, part) for part in _dense_blocks(X)])
    return _write_scores(args, table, model.threshold)
