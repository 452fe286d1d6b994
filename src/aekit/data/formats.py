"""Data files: readers and writers by file suffix.

Reading: ``.npy``, ``.npz``, ``.csv``/``.tsv`` (optionally gzipped), ``.parquet`` and MNIST's
IDX files (``*-ubyte``, optionally gzipped). Writing: ``.npy``, ``.csv``, ``.tsv`` and
``.parquet``, atomically, in chunks.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import gzip
import io
import os
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_file, check_writable_folder
from ..errors import AekitError, DataError, DataTypeError

__all__ = [
    "OUTPUT_SUFFIXES",
    "Table",
    "check_output",
    "open_parquet",
    "parquet_columns",
    "read_array",
    "read_idx",
    "read_labels",
    "read_table",
    "row_writer",
    "write_array",
]


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
            raw = handle.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read IDX file {path}: {exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(f"{path} is truncated or padded: {len(raw)} bytes, expected {expected}")
    return (
        np.frombuffer(raw, dtype=dtype, offset=header)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )


def _is_idx(path: Path) -> bool:
    name = path.name.removesuffix(".gz")
    return name.endswith((".idx", "-ubyte")) or ".idx" in path.suffixes


@dataclass
class Table:
    """Rows read from a file: the numeric features, and optionally labels and column names.

    Attributes
    ----------
    X : ndarray of shape (n_rows, n_features)
        The feature columns (``.npy`` files stay memory-mapped when no column is picked).
    labels : ndarray of shape (n_rows,) or None
        The label column, when one was asked for (integers where all values are whole
        numbers, strings otherwise).
    columns : list of str or None
        Names of the feature columns, when the file names them (CSV header, parquet).
    """

    X: np.ndarray
    labels: np.ndarray | None = None
    columns: list[str] | None = None


def read_array(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a 2-D numeric array from ``.npy``, ``.npz``, ``.csv``/``.tsv``, ``.parquet`` or IDX.

    Images are flattened to one row each. ``.npy`` files are memory-mapped.

    Raises
    ------
    DataError
        Missing file, unknown format, or content that is not a numeric table.
    """
    return read_table(path).X


def read_table(
    path: str | os.PathLike[str],
    *,
    columns: Sequence[str | int] | None = None,
    label_column: str | int | None = None,
) -> Table:
    """Read rows from a file, picking feature columns and a label column by name or index.

    Parameters
    ----------
    path : path
        ``.npy`` (memory-mapped), ``.npz`` (array ``X`` or the first one), ``.csv``,
        ``.tsv``/``.txt`` (a header row is detected), ``.parquet`` (needs pyarrow) or MNIST
        IDX (``.idx``, ``-ubyte``, gzipped or not; images are flattened).
    columns : sequence of str or int, optional
        Feature columns to keep, by header name or 0-based index (default: all but the label).
    label_column : str or int, optional
        A column to return as ``labels`` instead of as a feature; it may hold text.

    Returns
    -------
    Table

    Raises
    ------
    DataError
        Missing or unreadable file, unknown format, unknown column.
    DataTypeError
        A feature column is not numeric (the message names it).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"no such file: {path}")
    if path.is_dir():
        raise DataError(f"{path} is a folder, expected a data file")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv", ".txt") and not _is_idx(path):
        return _read_delimited(path, "," if suffix == ".csv" else "\t", columns, label_column)
    if suffix == ".parquet":
        return _read_parquet(path, columns, label_column)
    array = _read_binary(path, suffix)
    if array.dtype.kind not in "biuf":
        raise DataTypeError(f"{path} holds {array.dtype} data, expected numbers")
    if array.ndim == 1:
        array = array[:, None]
    elif array.ndim > 2:
        array = array.reshape(array.shape[0], -1)
    if columns is None and label_column is None:
        return Table(array)
    label_idx, feature_idx = _pick_columns(path, None, array.shape[1], columns, label_column)
    labels = None if label_idx is None else _as_labels(np.asarray(array[:, label_idx]))
    return Table(np.asarray(array[:, feature_idx]), labels)


def read_labels(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one label per row from a file with a single column (IDX labels, .npy, .csv...)."""
    table = read_table(path) if Path(path).suffix.lower() not in (".csv", ".tsv") else None
    if table is None:  # text labels are allowed: read the only column as labels
        table = read_table(path, label_column=0, columns=[])
        return table.labels  # type: ignore[return-value]
    if table.X.shape[1] != 1:
        raise DataError(f"{path} has {table.X.shape[1]} columns, expected one label per row")
    return _as_labels(np.asarray(table.X[:, 0]))


def _read_binary(path: Path, suffix: str) -> np.ndarray:
    if _is_idx(path):
        return read_idx(path)
    if suffix == ".npy":
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            raise DataError(f"{path} is not a numeric .npy file ({exc})") from exc
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                names = list(archive.files)
                if not names:
                    raise DataError(f"{path} holds no arrays")
                return archive["X" if "X" in names else names[0]]
        except (ValueError, OSError, zipfile.BadZipFile) as exc:
            raise DataError(f"{path} is not a readable .npz file ({exc})") from exc
    raise DataError(
        f"unknown file format {suffix or path.name!r} for {path} "
        "(expected .npy, .npz, .csv, .tsv, .parquet or MNIST IDX)"
    )


def _pick_columns(
    path: Path,
    names: list[str] | None,
    n_columns: int,
    columns: Sequence[str | int] | None,
    label_column: str | int | None,
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


def _read_delimited(
    path: Path,
    sep: str,
    columns: Sequence[str | int] | None,
    label_column: str | int | None,
) -> Table:
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            first = next(csv.reader(handle, delimiter=sep), [])
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path} as text ({exc})") from exc
    if not first or first == [""]:
        raise DataError(f"{path} is empty")
    names = None if all(_is_number(c) for c in first) else [c.strip() for c in first]
    label_idx, feature_idx = _pick_columns(path, names, len(first), columns, label_column)
    skip = int(names is not None)
    every = feature_idx == list(range(len(first)))  # then ragged rows are an error
    options = {"delimiter": sep, "skiprows": skip, "quotechar": '"'}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "input contained no data" → checked below
        try:
            labels = None
            if label_idx is not None:
                raw = np.loadtxt(path, ndmin=1, dtype=str, usecols=[label_idx], **options)
                labels = _as_labels(raw)
            if feature_idx:
                X = np.loadtxt(
                    path, ndmin=2, dtype=np.float64, usecols=None if every else feature_idx,
                    **options,
                )  # fmt: skip
            else:
                X = np.empty((0 if labels is None else len(labels), 0))
        except ValueError as exc:
            raise _explain_bad_text(path, sep, skip, feature_idx, names) from exc
    if X.shape[0] == 0 and (labels is None or len(labels) == 0):
        raise DataError(f"{path} has no data rows")
    feature_names = None if names is None else [names[i] for i in feature_idx]
    return Table(X, labels, feature_names)


def _explain_bad_text(
    path: Path, sep: str, skip: int, feature_idx: list[int], names: list[str] | None
) -> AekitError:
    """Find the first ragged row or non-numeric cell and say where it is."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = csv.reader(handle, delimiter=sep)
        width = None
        for line, row in enumerate(rows, start=1):
            if line <= skip or not row:
                continue
            width = width or len(row)
            if len(row) != width:
                return DataError(f"{path} line {line} has {len(row)} fields, expected {width}")
            for i in feature_idx:
                if not _is_number(row[i]):
                    column = repr(names[i]) if names else f"{i} (0-based)"
                    return DataTypeError(
                        f"{path} column {column} holds a non-numeric value {row[i]!r} at "
                        f"line {line}; pick numeric columns or name it as the label column"
                    )
    return DataError(f"{path} is not a numeric table")


def open_parquet(path: Path) -> Any:
    """A ``pyarrow.parquet.ParquetFile`` over ``path``, with aekit's errors.

    Raises
    ------
    DataError
        pyarrow is missing (naming the extra to install) or the file is not parquet.
    """
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"reading {path} needs pyarrow: pip install 'aekit[parquet]'") from None
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"cannot read {path} as parquet ({exc})") from exc


def parquet_columns(
    path: Path,
    schema: Any,
    columns: Sequence[str | int] | None,
    label_column: str | int | None,
) -> tuple[int | None, list[int]]:
    """(label index, feature indices) of a parquet schema; the features must be numeric.

    Raises
    ------
    DataError
        No such column.
    DataTypeError
        A feature column holds something other than integers, floats or booleans.
    """
    import pyarrow as pa

    names = [str(n) for n in schema.names]
    label_idx, feature_idx = _pick_columns(path, names, len(names), columns, label_column)
    for i in feature_idx:
        kind = schema.field(i).type
        if not (
            pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
        ):
            raise DataTypeError(
                f"{path} column {names[i]!r} holds {kind} values, "
                "expected numbers; pick numeric columns or name it as the label column"
            )
    return label_idx, feature_idx


def _read_parquet(
    path: Path, columns: Sequence[str | int] | None, label_column: str | int | None
) -> Table:
    import pyarrow as pa

    parquet = open_parquet(path)
    schema = parquet.schema_arrow
    label_idx, feature_idx = parquet_columns(path, schema, columns, label_column)
    try:
        table = parquet.read()
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"cannot read {path} as parquet ({exc})") from exc
    features = [table.column(i).to_numpy() for i in feature_idx]
    X = np.column_stack(features) if features else np.empty((table.num_rows, 0))
    labels = None
    if label_idx is not None:
        labels = _as_labels(np.asarray(table.column(label_idx).to_numpy(zero_copy_only=False)))
    return Table(X, labels, [str(schema.names[i]) for i in feature_idx])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


OUTPUT_SUFFIXES = (".npy", ".csv", ".tsv", ".parquet")


def check_output(path: str | os.PathLike[str]) -> Path:
    """Check an output path before any work: known format, writable folder, not a folder.

    Raises
    ------
    DataError
        Unknown extension (expected one of ``OUTPUT_SUFFIXES``), a folder in the way, an
        unwritable place, or ``.parquet`` without pyarrow.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise DataError(
            f"cannot write {path}: unknown output format {suffix or path.name!r} "
            f"(expected {', '.join(OUTPUT_SUFFIXES)})"
        )
    if path.is_dir():
        raise DataError(f"cannot write {path}: it is a folder")
    check_writable_folder(path.parent)
    if suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise DataError(f"writing {path} needs pyarrow: pip install 'aekit[parquet]'") from None
    return path


def write_array(
    path: str | os.PathLike[str], array: Any, column_names: Sequence[str] | None = None
) -> Path:
    """Write rows to ``.npy``, ``.csv``/``.tsv`` (with a header) or ``.parquet``, atomically.

    The format follows the extension; the file appears complete or not at all.

    Parameters
    ----------
    path : path
        Output file (checked with :func:`check_output`).
    array : array-like of shape (n_rows, n_columns) or (n_rows,)
        Numbers to write.
    column_names : sequence of str, optional
        Header names for text and parquet files (default ``x0``, ``x1``...).

    Returns
    -------
    Path
    """
    array = np.asarray(array)
    if array.ndim == 1:
        array = array[:, None]
    with row_writer(path, *array.shape, column_names, dtype=array.dtype) as write:
        write(array)
    return Path(path)


@contextlib.contextmanager
def row_writer(
    path: str | os.PathLike[str],
    n_rows: int,
    n_columns: int,
    column_names: Sequence[str] | None = None,
    *,
    dtype: Any = np.float64,
) -> Iterator[Callable[[Any], None]]:
    """Write ``n_rows`` rows chunk by chunk, in the format of :func:`write_array`.

    The block gets a function that appends rows (an array of shape (rows, n_columns), or
    (rows,) for one column). The file appears complete when the block ends without an
    exception, or not at all; an older file at ``path`` stays until then. Memory holds one
    chunk at a time, so outputs larger than memory can be written.

    Raises
    ------
    DataError
        If the rows written do not add up to ``n_rows`` by ``n_columns``.
    """
    path = check_output(path)
    names = [str(n) for n in column_names] if column_names is not None else None
    names = names or [f"x{i}" for i in range(n_columns)]
    if len(names) != n_columns:
        raise DataError(f"{len(names)} column names for {n_columns} columns")
    dtype = np.dtype(dtype)
    written = 0
    with atomic_file(path) as handle:
        sink = _ROW_SINKS[path.suffix.lower()](handle, names, n_rows, dtype)

        def write(rows: Any) -> None:
            nonlocal written
            rows = np.asarray(rows, dtype=dtype)
            rows = rows[:, None] if rows.ndim == 1 else rows
            if rows.ndim != 2 or rows.shape[1] != n_columns or written + len(rows) > n_rows:
                raise DataError(
                    f"cannot write rows of shape {rows.shape} to {path}: {written} of "
                    f"{n_rows} rows of {n_columns} columns are written"
                )
            sink.write(rows)
            written += len(rows)

        try:
            yield write
        finally:
            sink.close()
        if written != n_rows:
            raise DataError(f"{path}: {written} rows written, {n_rows} announced")


class _NpySink:
    """A ``.npy`` file: the header (with the announced shape), then the rows' bytes."""

    def __init__(self, handle: Any, names: list[str], n_rows: int, dtype: np.dtype) -> None:
        self.handle = handle
        header = {
            "descr": np.lib.format.dtype_to_descr(dtype),
            "fortran_order": False,
            "shape": (n_rows, len(names)),
        }
        np.lib.format.write_array_header_1_0(handle, header)

    def write(self, rows: np.ndarray) -> None:
        self.handle.write(np.ascontiguousarray(rows).data)

    def close(self) -> None:
        pass


class _TextSink:
    """A ``.csv`` or ``.tsv`` file with a header line; floats with digits to read back exactly."""

    def __init__(
        self, handle: Any, names: list[str], n_rows: int, dtype: np.dtype, *, sep: str = ","
    ) -> None:
        self.handle = handle
        self.sep = sep
        self.fmt = f"%.{9 if dtype == np.float32 else 17}g"
        text = io.StringIO()
        csv.writer(text, delimiter=self.sep, lineterminator="\n").writerow(names)
        handle.write(text.getvalue().encode())

    def write(self, rows: np.ndarray) -> None:
        text = io.StringIO()
        np.savetxt(text, rows, delimiter=self.sep, fmt=self.fmt)
        self.handle.write(text.getvalue().encode())

    def close(self) -> None:
        pass


class _ParquetSink:
    """A ``.parquet`` file: each chunk of rows becomes row groups of one float column each."""

    def __init__(self, handle: Any, names: list[str], n_rows: int, dtype: np.dtype) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.names = names
        self.schema = pa.schema([(n, pa.from_numpy_dtype(dtype)) for n in names])
        self.writer = pq.ParquetWriter(handle, self.schema)

    def write(self, rows: np.ndarray) -> None:
        import pyarrow as pa

        columns = {n: rows[:, i] for i, n in enumerate(self.names)}
        self.writer.write_table(pa.table(columns, schema=self.schema))

    def close(self) -> None:
        self.writer.close()


_ROW_SINKS: dict[str, Callable[..., Any]] = {
    ".npy": _NpySink,
    ".csv": _TextSink,
    ".tsv": functools.partial(_TextSink, sep="\t"),
    ".parquet": _ParquetSink,
}
