"""Readers of data files, one per format; :mod:`aekit.data.formats` picks one by suffix.

Each reader takes ``(path, columns, label_column)`` and returns a :class:`Table`: the numeric
feature columns, the label column if one was asked for, and the column names if the file has
them. Arrays (``.npy``, ``.npz``, IDX) have unnamed columns, picked by 0-based index; text
tables (``.csv``, ``.tsv``; their reader is :mod:`aekit.data.delimited`) and parquet files
name theirs. A text table or parquet file
whose feature columns hold text (or, in parquet, categories) gives X as a pandas DataFrame
instead, for :mod:`aekit.data.tables` to encode.

No file makes aekit allocate what its header merely claims: a ``.npy`` header must describe
the bytes the file holds; the arrays of a ``.npz`` archive (compressed or not) and a
(gzipped) IDX file are checked, from their headers, against
:func:`~aekit.data.limits.max_input_bytes` before anything is unpacked, so a zip bomb is one
:class:`~aekit.errors.DataError`.
"""

from __future__ import annotations

import gzip
import importlib
import os
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, DataTypeError
from .limits import check_npz, check_unpacked_size, declared_bytes, npy_header
from .textcells import check_text_among_numbers

__all__ = [
    "StreamedTextError",
    "Table",
    "as_labels",
    "check_text_among_numbers",
    "open_parquet",
    "parquet_columns",
    "parquet_names",
    "pick_columns",
    "read_idx",
    "read_idx_table",
    "read_npy",
    "read_npz",
    "read_parquet",
    "require",
]

Columns = Sequence[str | int] | None  # feature columns to keep, by name or 0-based index
Label = str | int | None  # the label column, by name or 0-based index


@dataclass
class Table:
    """Rows read from a file: the numeric features, and optionally labels and column names.

    Attributes
    ----------
    X : ndarray, DataFrame or scipy.sparse CSR array of shape (n_rows, n_features)
        The feature columns (``.npy`` files stay memory-mapped when no column is picked); a
        DataFrame where some hold text (CSV, parquet), read by pandas; a CSR array from
        sparse files (:mod:`aekit.data.sparse_files`).
    labels : ndarray of shape (n_rows,) or None
        The label column, when one was asked for (integers where all values are whole
        numbers, strings otherwise).
    columns : list of str or None
        Names of the feature columns, when the file names them (CSV header, parquet).
    """

    X: Any
    labels: np.ndarray | None = None
    columns: list[str] | None = None


_EXTRAS = {
    "pyarrow": "parquet",
    "pandas": "parquet",
    "anndata": "h5ad",
}  # optional packages, and the aekit extra that installs each


def require(package: str, doing: str) -> None:
    """Raise :class:`DataError` naming the extra to install unless ``package`` imports."""
    try:
        importlib.import_module(package)
    except ImportError:
        extra = _EXTRAS[package]
        raise DataError(f"{doing} needs {package}: pip install 'aekit[{extra}]'") from None


# -- arrays: .npy, .npz, IDX ------------------------------------------------------------------
def read_npy(path: Path, columns: Columns, label_column: Label) -> Table:
    """A ``.npy`` file, memory-mapped, after checking its header against its size."""
    try:
        with open(path, "rb") as handle:
            shape, dtype = npy_header(handle, path)
            held = os.fstat(handle.fileno()).st_size - handle.tell()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not dtype.hasobject and declared_bytes(shape, dtype) != held:
        raise DataError(
            f"{path}: its header declares shape {shape} of {dtype} "
            f"({declared_bytes(shape, dtype):,} bytes), the file holds {held:,}"
        )
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise DataError(f"{path} is not a numeric .npy file ({exc})") from exc
    return _array_table(path, array, columns, label_column)


def read_npz(path: Path, columns: Columns, label_column: Label) -> Table:
    """A ``.npz`` archive: its array ``X``, or else its first array (checked: :func:`check_npz`)."""
    check_npz(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            if not names:
                raise DataError(f"{path} holds no arrays")
            array = archive["X" if "X" in names else names[0]]
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path} is not a readable .npz file ({exc})") from exc
    return _array_table(path, array, columns, label_column)


_IDX_DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not.

    Returns
    -------
    ndarray
        With the file's shape, e.g. ``(10000, 28, 28)`` uint8 for MNIST images.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read(4)
            if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
                raise DataError(f"{path} is not an IDX file (bad magic number)")
            raw += handle.read(4 * raw[3])
            dtype = np.dtype(_IDX_DTYPES[raw[2]])
            header = 4 + 4 * raw[3]
            dims = range(raw[3])
            shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in dims)
            expected = header + declared_bytes(shape, dtype)
            check_unpacked_size(path, expected, f"its header's shape {shape}")
            raw += handle.read(expected - len(raw) + 1)  # one more: padding is caught
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot read IDX file {path}: {exc}") from exc
    if len(raw) != expected:
        raise DataError(f"{path} is truncated or padded: {len(raw)} bytes, expected {expected}")
    return (
        np.frombuffer(raw, dtype=dtype, offset=header)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )


def read_idx_table(path: Path, columns: Columns, label_column: Label) -> Table:
    """An IDX file as rows: images flattened, one label per row for a label file."""
    return _array_table(path, read_idx(path), columns, label_column)


def _array_table(path: Path, array: np.ndarray, columns: Columns, label_column: Label) -> Table:
    """Rows of a numeric array (images flattened), with columns picked by index."""
    if array.dtype.kind not in "biuf":
        raise DataTypeError(f"{path} holds {array.dtype} data, expected numbers")
    if array.ndim == 0:
        raise DataError(f"{path} holds one number (a 0-d array), expected rows")
    if array.ndim == 1:
        array = array[:, None]
    elif array.ndim > 2:
        array = array.reshape(array.shape[0], -1)
    if columns is None and label_column is None:
        return Table(array)
    label_idx, feature_idx = _pick_columns(path, None, array.shape[1], columns, label_column)
    labels = None if label_idx is None else _as_labels(np.asarray(array[:, label_idx]))
    return Table(np.asarray(array[:, feature_idx]), labels)


def _pick_columns(
    path: Path,
    names: list[str] | None,
    n_columns: int,
    columns: Columns,
    label_column: Label,
) -> tuple[int | None, list[int]]:
    """(label index, feature indices) from names or 0-based indices."""

    def index(spec: str | int) -> int:
        if names is not None and spec in names:
            return names.index(str(spec))
        text = str(spec).strip()
        if text.lstrip("-").isdigit() and 0 <= int(text) < n_columns:
            return int(text)
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "") if names else ""
        known = f"columns: {shown}" if names else f"{n_columns} unnamed columns, 0-based"
        raise DataError(f"{path} has no column {spec!r} ({known})")

    label_idx = None if label_column is None else index(label_column)
    if columns is None:
        features = [i for i in range(n_columns) if i != label_idx]
    else:
        features = [index(c) for c in columns]
        if label_idx is not None and label_idx in features:
            raise DataError(f"column {label_column!r} of {path} cannot be a feature and the label")
    return label_idx, features


def _as_labels(values: np.ndarray) -> np.ndarray:
    """Integers where every label is a whole number, floats or strings otherwise."""
    if values.dtype.kind in "biu":
        return values.astype(np.int64)
    try:
        numbers = values.astype(np.float64)
    except ValueError:
        return values.astype(str)
    if np.isfinite(numbers).all() and (numbers == np.round(numbers)).all():
        return numbers.astype(np.int64)
    return numbers


# -- parquet -----------------------------------------------------------------------------------
def parquet_names(path: Path) -> list[str]:
    """The column names of a parquet file, from its schema (no rows read)."""
    return [str(n) for n in open_parquet(path).schema_arrow.names]


def open_parquet(path: Path) -> Any:
    """A ``pyarrow.parquet.ParquetFile`` over ``path``, with aekit's errors.

    Raises
    ------
    DataError
        pyarrow is missing (naming the extra to install) or the file is not parquet.
    """
    require("pyarrow", f"reading {path}")
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"cannot read {path} as parquet ({exc})") from exc


class StreamedTextError(DataTypeError):
    """A streamed file's feature column holds text or another non-numeric kind.

    Streamed rows are numbers only; read into memory, a file's text columns are encoded
    (:mod:`aekit.data.tables`). The commands that can read it so say how (``--no-stream``).
    """


def parquet_columns(
    path: Path, schema: Any, columns: Columns, label_column: Label, *, text: bool = False
) -> tuple[int | None, list[int]]:
    """(label index, feature indices) of a parquet schema; the features must be numeric.

    With ``text``, string and dictionary (categorical) feature columns are allowed too. The
    default features leave out the label and the row index pandas stored (a DataFrame whose
    index is not ``0..n-1``, after a filter or a sample, keeps it as a column).

    Raises
    ------
    DataError
        No such column.
    DataTypeError
        A feature column holds something other than integers, floats or booleans (a
        :class:`StreamedTextError` without ``text``).
    """
    names = [str(n) for n in schema.names]
    label_idx, feature_idx = _pick_columns(path, names, len(names), columns, label_column)
    if columns is None:
        index = _pandas_index_columns(schema)
        feature_idx = [i for i in feature_idx if names[i] not in index]
    for i in feature_idx:
        kind = schema.field(i).type
        if not _numeric_type(kind) and not (text and _is_text(kind)):
            found = f"{path} column {names[i]!r} holds {kind} values, expected numbers"
            if not text:  # what to do instead is the caller's (aekit fit: --no-stream)
                raise StreamedTextError(f"{found}: a streamed file's columns must be numeric")
            raise DataTypeError(f"{found}; pick numeric columns or name it as the label column")
    return label_idx, feature_idx


def _numbers(column: Any) -> np.ndarray:
    """A parquet column of numbers as an array (decimals as float64, not ``Decimal`` objects)."""
    import pyarrow as pa

    if pa.types.is_decimal(column.type):  # through their text: each as written (0.35, where
        text = column.cast(pa.string()).to_numpy(zero_copy_only=False)  # a cast gives 0.35...03)
        return text.astype(np.float64)  # (a null, None, becomes NaN)
    return column.to_numpy()


def _numeric_type(kind: Any) -> bool:
    """Integers, floats, decimals and booleans: a parquet column read as numbers."""
    import pyarrow as pa

    return bool(
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_decimal(kind)
        or pa.types.is_boolean(kind)
    )


def _is_text(kind: Any) -> bool:
    import pyarrow as pa

    return bool(
        pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_dictionary(kind)
    )


def _pandas_index_columns(schema: Any) -> set[str]:
    """The columns of a parquet schema that hold a pandas row index (its pandas metadata)."""
    try:
        meta = schema.pandas_metadata or {}
    except (ValueError, TypeError):  # metadata that is not pandas' JSON: no index known
        return set()
    listed = meta.get("index_columns", []) if isinstance(meta, dict) else []
    return {str(c) for c in listed if isinstance(c, str)} if isinstance(listed, list) else set()


def read_parquet(path: Path, columns: Columns, label_column: Label) -> Table:
    """A parquet file, read whole (needs pyarrow); text columns make X a DataFrame."""
    parquet = open_parquet(path)
    import pyarrow as pa

    schema = parquet.schema_arrow
    label_idx, feature_idx = parquet_columns(path, schema, columns, label_column, text=True)
    try:
        table = parquet.read()
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"cannot read {path} as parquet ({exc})") from exc
    if any(_is_text(schema.field(i).type) for i in feature_idx):
        X = table.select(feature_idx).to_pandas()
        check_text_among_numbers(X, path)  # a string column of numbers and a few markers
    else:
        features = [_numbers(table.column(i)) for i in feature_idx]
        X = np.column_stack(features) if features else np.empty((table.num_rows, 0))
    labels = None
    if label_idx is not None:
        labels = _as_labels(np.asarray(table.column(label_idx).to_numpy(zero_copy_only=False)))
    return Table(X, labels, [str(schema.names[i]) for i in feature_idx])


pick_columns = _pick_columns  # for the sparse readers (aekit.data.sparse_files)
as_labels = _as_labels
