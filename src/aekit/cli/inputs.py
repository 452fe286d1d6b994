"""Reading DATA and model folders for the commands, and writing their outputs.

Columns by name
---------------
A model knows the columns it was fitted on by name when it was fitted on named columns:
``fit.json`` records them for a folder written by ``aekit fit``, and a model saved from
Python after fitting on a DataFrame keeps its ``feature_names_in_`` (:func:`model_columns`).
When DATA names its columns too (a header, a schema), :func:`feature_columns` picks the
model's columns from it by name: another order is reordered silently; a column the model
needs but DATA lacks (missing, or renamed) is one error naming it and the expected columns;
a column DATA has beyond the model's is refused unless it is left out (``--label-column``,
``--drop COL``, the label column recorded at fit time). DATA without names (``.npy``) is
taken by position, and its width checked.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError, DataTypeError, ModelFileError

__all__ = [
    "FIT_INFO",
    "HOLDOUT",
    "at_most",
    "by_position",
    "checked_output",
    "feature_columns",
    "fingerprint",
    "fit_info",
    "is_frame",
    "map_rows",
    "model_and_data",
    "model_columns",
    "npy_bytes",
    "open_streamed",
    "read_data",
    "rows_at",
    "write_png",
    "write_rows",
]

FIT_INFO = "fit.json"  # beside the model: where its data came from and the held-out rows


HOLDOUT = "holdout.npy"


_SPARSE_CHUNK_ROWS = 65536  # sparse DATA: rows per chunk of results (fewer for wide rows)


_STREAM_BYTES = 2**30  # --stream's default: stream .npy / .parquet files larger than this


def read_data(path: str, columns: list[str] | None, label_column: str | None) -> Any:
    """DATA read into memory as a :class:`~aekit.data.Table`, refused if empty or infinite.

    Empty cells (NaN) are missing values, which the model handles. A table with text columns
    (X a DataFrame) is checked by the estimator once encoded; sparse rows (a CSR ``X``) by
    :func:`~aekit.data.checks.check_sparse_values`, which refuses NaN too.
    """
    from ..data.checks import check_finite_rows, check_sparse_values
    from ..data.formats import read_table
    from ..data.sparse import is_sparse

    table = read_table(path, columns=columns, label_column=label_column)
    if table.X.shape[0] == 0 or table.X.shape[1] == 0:
        raise DataError(f"{path} has no data ({table.X.shape[0]} rows, {table.X.shape[1]} columns)")
    if is_sparse(table.X):
        check_sparse_values(table.X, what=str(path))
    elif not is_frame(table.X):
        check_finite_rows(np.asarray(table.X), what=str(path), allow_nan=True)
    return table


def is_frame(X: Any) -> bool:
    """Whether rows are a pandas DataFrame (a table with text columns), without importing pandas."""
    return type(X).__name__ == "DataFrame" and hasattr(X, "iloc")


def fingerprint(X: Any) -> str:
    """SHA-256 of the rows as float32: tells whether a file holds the fit-time data.

    ``X`` is an array or a streamed source (hashed chunk by chunk: the same digest).
    """
    if isinstance(X, np.ndarray):
        return hashlib.sha256(np.ascontiguousarray(X, dtype=np.float32).tobytes()).hexdigest()
    if is_frame(X):  # a table with text columns: pandas' hash of its values, row by row
        import pandas as pd

        return hashlib.sha256(pd.util.hash_pandas_object(X, index=False).to_numpy()).hexdigest()
    digest = hashlib.sha256()
    if hasattr(X, "indptr"):  # a CSR matrix: its three arrays
        for part in (X.indptr.astype(np.int64), X.indices.astype(np.int64), X.data):
            digest.update(np.ascontiguousarray(part, dtype=part.dtype).tobytes())
        return digest.hexdigest()
    for _, rows in X.chunks():
        digest.update(rows.numpy().tobytes())
    return digest.hexdigest()


def open_streamed(data: str, stream: bool | None, columns: Any, label_column: str | None) -> Any:
    """DATA as a source read from disk block by block, or None (``stream``: ``--stream``)."""
    from ..data.formats import STREAM_SUFFIXES, can_stream, data_bytes, names_columns, open_rows
    from ..data.readers import StreamedTextError

    path = Path(data)
    if not can_stream(path):
        if stream:
            suffixes = " and ".join(STREAM_SUFFIXES)
            raise ConfigError(f"--stream reads {suffixes} files, not {path.name}")
        return None
    big = data_bytes(path) > _STREAM_BYTES  # a dataset folder: all its shards
    if not (stream or (stream is None and big)):
        return None
    if not names_columns(path) and (columns is not None or label_column is not None):
        what = "folder of .npy files" if path.is_dir() else f"{path.suffix} file"
        raise ConfigError(
            f"a streamed {what} is read with all its columns: drop --columns and "
            "--label-column, or pass --no-stream to read it into memory"
        )
    try:
        source: Any = open_rows(path, columns=columns, label_column=label_column)
    except StreamedTextError as exc:
        raise DataTypeError(
            f"{exc}; pick numeric columns (--columns), name it as the label column "
            "(--label-column), or pass --no-stream to read it into memory"
        ) from exc
    if len(source) == 0 or source.n_features == 0:
        source.close()
        raise DataError(f"{path} has no data ({len(source)} rows, {source.n_features} columns)")
    return source


def rows_at(X: Any, index: np.ndarray) -> np.ndarray:
    """Rows ``index`` (sorted) of an array or a streamed source, as an array."""
    if isinstance(X, np.ndarray) or hasattr(X, "indptr"):  # an array, or CSR rows
        return X[index]
    if is_frame(X):
        return X.iloc[index]
    import torch

    return X.take(torch.from_numpy(index.astype(np.int64))).numpy()


def checked_output(
    output: str, data: str, what: str, refusal: str, *, models: Sequence[str | None] = ()
) -> Path:
    """``output`` checked as an output path, and refused where it is the DATA file itself.

    :func:`~aekit.data.formats.check_output`'s checks; then an ``output`` that is DATA under
    any name (a link, ``./``), which writing it would replace, is refused (``what`` names
    the output in the message, ``"OUTPUT"``; ``refusal`` says what to do instead), and so is
    one in a dataset folder or glob DATA, which would be read as one of its shards, and one
    inside a model folder of ``models`` (it could replace a file the model loads from).

    Raises
    ------
    ConfigError
        ``output`` is DATA, would be one of its shards, or is in a model folder.
    """
    import os

    from ..data.formats import check_output, is_dataset

    path = check_output(output)
    if path.exists() and Path(data).exists() and os.path.samefile(path, data):
        raise ConfigError(f"{what} is DATA ({data}): {refusal}")
    refuse_in_models(path, what, models)
    if not is_dataset(data):  # (a file: data.folders, which imports torch, is not needed)
        return path
    from ..data.folders import would_be_shard

    if would_be_shard(path, data):
        raise ConfigError(
            f"{what} ({output}) is in the dataset {data}: it would be read as one of its "
            "shards next time (or replace one); write it elsewhere"
        )
    return path


def _refuse_twice(columns: Sequence[Any]) -> None:
    """Refuse ``--columns`` that name a column twice (by name or position)."""
    twice = sorted({str(c) for c in columns if list(columns).count(c) > 1})
    if twice:
        raise ConfigError(f"--columns names {_listed(twice)} more than once")


def refuse_in_models(path: Path, what: str, models: Sequence[str | None]) -> None:
    """Refuse an output ``path`` inside one of the saved ``models`` folders (None: none).

    A folder counts where it holds a model's config (``config.json``, ``sae.json``,
    SAELens's ``cfg.json``); another folder is left to the loader's own error.
    """
    from ..files.layouts import MODEL_CONFIG_NAME, SAE_NAME, SAELENS_CONFIG_NAME

    names = (MODEL_CONFIG_NAME, SAE_NAME, SAELENS_CONFIG_NAME)
    for model in models:
        if model is None or not any((Path(model) / n).exists() for n in names):
            continue
        if _inside(path, Path(model)):
            raise ConfigError(
                f"{what} ({path}) is in the model folder {model}: it could replace a file "
                "the model is loaded from; write it elsewhere"
            )


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` (existing or not) lies in ``folder``, links resolved."""
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def at_most(index: np.ndarray, count: int, seed: int) -> np.ndarray:
    """``index`` itself, or a seeded sorted sample of ``count`` of its entries."""
    if len(index) <= count:
        return index
    return np.sort(np.random.default_rng(seed).choice(index, count, replace=False))


def fit_info(model: str) -> dict[str, Any]:
    """The ``fit.json`` beside a model (``{}`` when there is none)."""
    path = Path(model) / FIT_INFO
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{path} is not valid JSON ({exc})") from exc
    return info if isinstance(info, dict) else {}


def model_columns(info: dict[str, Any], model: Any) -> list[str] | None:
    """The names of the columns ``model`` was fitted on, or None if they had none.

    ``fit.json``'s (``info``) for a folder written by ``aekit fit``, else the model's own
    ``feature_names_in_`` (an estimator fitted on a DataFrame, then saved) or the
    ``feature_names`` an ONNX file records.
    """
    columns = info.get("columns")
    if isinstance(columns, list) and columns:
        return [str(c) for c in columns]
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        names = getattr(model, "feature_names", None)
    return None if names is None else [str(n) for n in names]


def _listed(names: Sequence[Any], most: int = 8) -> str:
    shown = ", ".join(repr(str(n)) for n in names[:most])
    return shown + (f", ... ({len(names)} in all)" if len(names) > most else "")


def feature_columns(
    args: argparse.Namespace,
    expected: list[str] | None = None,
    label_column: str | None = None,
    fit_label: str | None = None,
) -> Sequence[str | int] | None:
    """The feature columns to read from ``args.data``: by name where both sides have names.

    Parameters
    ----------
    args : argparse.Namespace
        ``data``, ``columns`` (``--columns``), ``drop`` (``--drop``) and ``model``.
    expected : list of str, optional
        The model's columns by name (:func:`model_columns`); None for a model fitted on
        unnamed columns, or when fitting.
    label_column : str, optional
        The column that is a label, left out of the features.
    fit_label : str, optional
        The label column recorded at fit time: left out too when DATA has it.

    Returns
    -------
    list or None
        Columns for :func:`~aekit.data.formats.read_table` (None: all but the label).

    Raises
    ------
    DataError
        A column the model needs is missing, renamed, or left out; DATA has columns the model
        was not fitted on and they are not left out (see the module docstring).
    ConfigError
        ``--drop`` on a file without column names, or naming a column it does not have.
    """
    from ..data.formats import column_names, names_columns

    drop = list(getattr(args, "drop", None) or [])
    names = column_names(args.data)
    told = args.columns is not None or drop
    if names is None and expected is not None and not told and names_columns(args.data):
        return expected  # names read with the rows (.h5ad, 10x): the reader picks the model's
    if names is None:  # no names: by position (the width is checked once the rows are read)
        if drop:
            raise ConfigError(
                f"--drop picks columns by name, and {args.data} does not name its columns "
                "(pick them by 0-based index with --columns)"
            )
        _refuse_twice([str(c) for c in args.columns or []])
        return args.columns
    unknown = [c for c in drop if c not in names]
    if unknown:
        raise ConfigError(f"--drop {_listed(unknown)}: {args.data} has no such column")
    if args.columns is not None:
        candidate = [names[int(c)] if c not in names and str(c).isdigit() and int(c) < len(names)
                     else str(c) for c in args.columns]  # fmt: skip
        _refuse_twice(candidate)
        candidate = [c for c in candidate if c not in drop]
        if not candidate:
            left = ": --drop leaves none of them" if drop else " names no column"
            raise ConfigError(f"--columns {_listed(args.columns)}{left}")
    else:
        left_out = {label_column, *drop}
        if fit_label is not None and (expected is None or fit_label not in expected):
            left_out.add(fit_label)
        candidate = [n for n in names if n not in left_out]
        if not candidate:
            raise ConfigError(f"{args.data}: --label-column and --drop leave no feature column")
    if expected is None:
        return candidate if args.columns is not None or drop else None
    model = getattr(args, "model", "the model")
    missing = [c for c in expected if c not in candidate]
    extra = [c for c in candidate if c not in expected]
    left = [c for c in missing if c in names]
    if left:
        raise DataError(
            f"column(s) {_listed(left)} of {args.data} are features of the model {model}: "
            "they cannot be left out (--label-column, --drop, --columns)"
        )
    if missing and extra:
        raise DataError(
            f"{args.data} lacks the column(s) {_listed(missing)} that the model {model} was "
            f"fitted on and has {_listed(extra)} instead (renamed?); expected the columns "
            f"{_listed(expected)}"
        )
    if missing:
        raise DataError(
            f"{args.data} lacks the column(s) {_listed(missing)} that the model {model} was "
            f"fitted on (expected the columns {_listed(expected)})"
        )
    if extra:
        raise DataError(
            f"{args.data} has column(s) {_listed(extra)} that the model {model} was not "
            "fitted on: leave them out with --drop COL (or --label-column COL)"
        )
    return expected


@contextlib.contextmanager
def model_and_data(
    args: argparse.Namespace, label_column: str | None = None, *, stream: bool = False
) -> Iterator[tuple[Any, dict[str, Any], Any]]:
    """Load the model, then DATA with the model's columns by name; check the feature count.

    Yields ``(model, fit info, data)``: DATA as a :class:`~aekit.data.Table`, or with
    ``stream`` (and ``--stream``, or a big file) as a source read block by block, closed
    when the block ends. ``label_column`` (default ``--label-column``) is left out of the
    features; the columns are chosen by :func:`feature_columns`. Inside the block,
    scikit-learn's "X does not have valid feature names" warning is silenced: the columns
    were matched by name here, or DATA has none and its width is checked.
    """
    from ..anomaly.detectorfile import detector_feature_names
    from ..data.names import first_text
    from ..estimator import load
    from ..files.layouts import folder_kind
    from ..impute.imputerfile import imputer_feature_names

    kind = folder_kind(args.model)
    if kind == "sae":  # its codes and figures come from the SAE's own API and report
        raise ConfigError(
            f"{args.model} holds a sparse autoencoder (SAE), not an autoencoder: measure it "
            f"with 'aekit report {args.model} ACTIVATIONS -o DIR', encode with "
            "aekit.sae.SparseAutoencoder.load(...).transform"
        )
    ae = load(args.model)  # a detector's or an imputer's first autoencoder
    info = fit_info(args.model)
    if label_column is None:
        label_column = args.label_column
    if kind != "model" and not info.get("columns"):  # the detector's or imputer's names
        names = {"detector": detector_feature_names, "imputer": imputer_feature_names}[kind]
        info = {**info, "columns": names(args.model)}
    expected = model_columns(info, ae)
    columns = feature_columns(args, expected, label_column, info.get("label_column"))
    source = open_streamed(args.data, args.stream, columns, label_column) if stream else None
    try:
        data = source if source is not None else read_data(args.data, columns, label_column)
        if source is None and is_frame(data.X) and getattr(ae, "table_layout_", None) is None:
            text = first_text(data.X)  # a numeric model: a text column named, not numbered
            if text is not None:
                raise DataTypeError(
                    f"non-numeric input: {args.data} {text}; the model {args.model} was "
                    "fitted on numbers only"
                )
            data.X = data.X.to_numpy()
        n_features = source.n_features if source is not None else data.X.shape[1]
        if n_features != ae.n_features_in_:
            raise DataError(
                f"{args.data} has {n_features} feature columns, the model {args.model} "
                f"expects {ae.n_features_in_}"
            )
        if source is None:
            data.X = by_position(ae, data.X)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "X does not have valid feature names")
            yield ae, info, data
    finally:
        if source is not None:
            source.close()


def by_position(model: Any, X: Any) -> Any:
    """DATA's table given the integer column labels ``model`` was fitted on, by position.

    A model fitted in Python on a DataFrame labelled by integers matches a DataFrame's labels
    (:func:`aekit.data.names.in_labelled_order`); a file's columns have names or none, never
    those labels, so the commands take them by position, as for a model fitted without names.
    """
    labels = getattr(model, "_column_labels", getattr(model, "column_labels", None))  # ONNX's
    return X.set_axis(labels, axis=1) if labels is not None and is_frame(X) else X


def map_rows(data: Any, path: str, fn: Any) -> Iterator[np.ndarray]:
    """``fn`` of DATA's rows: all at once for a table, block by block for a streamed source.

    A streamed block is checked for infinity as it comes (rows numbered in the file); NaN
    is a missing value.
    """
    from ..data.checks import check_finite_rows
    from ..data.formats import Table
    from ..data.sparse import chunk_rows_for

    if isinstance(data, Table) and hasattr(data.X, "indptr"):  # sparse: dense results
        step = chunk_rows_for(data.X.shape[1], _SPARSE_CHUNK_ROWS)  # come chunk by chunk
        for start in range(0, data.X.shape[0], step):
            yield fn(data.X[start : start + step])
        return
    if isinstance(data, Table):
        yield fn(data.X)
        return
    for first, rows in data.chunks():
        part = rows.numpy()
        check_finite_rows(part, what=path, first_row=first, allow_nan=True)
        yield fn(part)


def write_rows(
    path: str, data: Any, parts: Iterator[np.ndarray], n_columns: int, names: Any
) -> int:
    """Write the ``parts`` (DATA's rows, in order) to ``path`` as float32, one at a time."""
    from ..data.formats import Table, row_writer

    n_rows = data.X.shape[0] if isinstance(data, Table) else len(data)
    with row_writer(path, n_rows, n_columns, names, dtype=np.float32) as write:
        for part in parts:
            write(part)
    return n_rows


def write_png(path: Path, draw: Any, *what: Any) -> bool:
    """Write a figure if matplotlib is there; say so and go on if it is not."""
    from ..analysis.plots import require_matplotlib
    from ..files.atomic import atomic_write

    try:
        require_matplotlib()
    except ConfigError as exc:
        print(f"aekit: note: {path.name} skipped: {exc}", file=sys.stderr)
        return False
    atomic_write(path, draw(*what))
    return True


def npy_bytes(array: np.ndarray) -> bytes:
    """``array`` as the bytes of a ``.npy`` file (for an atomic write)."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()
