"""ONE table of data file formats: what each file suffix reads, writes and streams with.

=========  ====================  =====  =====  ======  =============
format     suffixes              read   write  stream  named columns
=========  ====================  =====  =====  ======  =============
npy        ``.npy``              yes    yes    yes     no
npz        ``.npz``              yes    yes    no      no
mtx        ``.mtx`` (sparse)     yes    no     no      no
h5ad       ``.h5ad`` (sparse)    yes    no     no      yes (var_names)
csv        ``.csv``              yes    yes    no      yes (header)
tsv        ``.tsv``              yes    yes    no      yes (header)
txt        ``.txt`` (tabs)       yes    no     no      yes (header)
parquet    ``.parquet``          yes    yes    yes     yes (schema)
idx        ``-ubyte``, ``.idx``  yes    no     no      no
10x        a 10x folder          yes    no     no      yes (features)
folder     a folder, a glob      yes    no     yes     as its shards
=========  ====================  =====  =====  ======  =============

IDX is MNIST's format, recognised by its file name (``train-images-idx3-ubyte``), gzipped or
not; parquet needs pyarrow (``pip install 'aekit[parquet]'``). A *folder* (or a glob pattern)
of ``.parquet`` or ``.npy`` shards is one dataset (:mod:`aekit.data.folders`: the layouts
Spark and Dask write, its row order, its schema check). A CSV, TSV or parquet file whose
feature columns hold text is read whole, with pandas, as a DataFrame (never streamed).

A ``.npz`` written by ``scipy.sparse.save_npz`` and Matrix Market files are sparse; a
``.npz`` aekit writes holds one dense array ``X`` (:class:`~aekit.data.writers.NpzSink`). A folder
laid out as 10x Genomics writes a matrix (``matrix.mtx.gz``, ``features.tsv.gz``,
``barcodes.tsv.gz``) is the ``10x`` format, not a dataset of shards: it reads as one table, a
row per cell. Sparse formats give a ``scipy.sparse`` CSR array
(:mod:`aekit.data.sparse_files`); ``.h5ad`` needs anndata (``pip install 'aekit[h5ad]'``).
Everything that depends on a file's format asks this table, through :func:`file_format`,
:func:`find_format`, :func:`can_stream`, :func:`names_columns` and :func:`check_output`, and
never looks at a suffix itself. The readers are in :mod:`aekit.data.readers`, the writers in
:mod:`aekit.data.writers`, the streamed sources in :mod:`aekit.data.stream`.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError
from ..files.atomic import check_writable_folder
from .delimited import delimited_names, read_delimited
from .names import check_distinct_names
from .readers import (
    Table,
    parquet_names,
    read_idx,
    read_idx_table,
    read_npy,
    read_parquet,
    require,
)
from .sparse_files import is_10x_folder, read_10x, read_any_npz, read_h5ad, read_mtx
from .writers import NpySink, NpzSink, ParquetSink, RowSink, TextSink, write_rows

if TYPE_CHECKING:
    from .stream import BlockRows

__all__ = [
    "FORMATS",
    "OUTPUT_SUFFIXES",
    "STREAM_SUFFIXES",
    "FileFormat",
    "Table",
    "can_stream",
    "check_output",
    "column_names",
    "data_bytes",
    "file_format",
    "find_format",
    "is_dataset",
    "names_columns",
    "open_rows",
    "read_array",
    "read_idx",
    "read_labels",
    "read_table",
    "row_writer",
    "write_array",
]


@dataclass(frozen=True)
class FileFormat:
    """A data file format: the suffixes that name it and what aekit can do with it.

    Attributes
    ----------
    name : str
        Short name (``"npy"``, ``"csv"``...).
    suffixes : tuple of str
        Endings of the file name, lower case: ``(".npy",)``; ``("-ubyte", ".idx")`` for IDX.
    read : callable
        ``read(path, columns, label_column)`` returns a :class:`Table` of the file's rows.
    sink : callable or None
        ``sink(handle, column_names, n_rows, dtype)`` returns a writer of rows into an open
        binary file (see :mod:`aekit.data.writers`); None for a format aekit only reads.
    stream : callable or None
        ``stream(path, columns, label_column)`` returns a source that reads the file block by
        block (see :mod:`aekit.data.stream`); None for a format read whole.
    named_columns : bool
        The file names its columns (a header row, a schema): columns are picked by name.
    gzipped : bool
        The file may also be gzipped, its name then ending in ``.gz``.
    needs : str or None
        An optional package the format needs (``"pyarrow"``).
    dataset : bool
        A folder or glob of files of another format, not a file (:mod:`aekit.data.folders`);
        whether it names its columns is its files' format's answer (:func:`names_columns`).
    folder : callable or None
        ``folder(path)`` tells a folder of this format by what it holds (a 10x Genomics
        matrix); such a folder is one table, not a dataset of shards.
    names : callable or None
        ``names(path)`` reads the column names alone (a header line, a schema), or None
        where the file has none; None for a format whose names are read with its rows.
    """

    name: str
    suffixes: tuple[str, ...]
    read: Callable[[Path, Sequence[str | int] | None, str | int | None], Table]
    sink: Callable[..., RowSink] | None = None
    stream: Callable[[Path, Sequence[str | int] | None, str | int | None], BlockRows] | None = None
    named_columns: bool = False
    gzipped: bool = False
    needs: str | None = None
    dataset: bool = False
    folder: Callable[[Path], bool] | None = None
    names: Callable[[Path], list[str] | None] | None = None

    def matches(self, path: str | os.PathLike[str]) -> bool:
        """Whether the file name ends in one of the suffixes (a dataset: see :func:`is_dataset`)."""
        if self.folder is not None:
            return self.folder(Path(path))
        if self.dataset:
            return is_dataset(path)
        name = Path(path).name.lower()
        if self.gzipped:
            name = name.removesuffix(".gz")
        return name.endswith(self.suffixes)

    def listed(self) -> str:
        """The suffixes as a message shows them: ``.npy``; ``-ubyte[.gz], .idx[.gz]``."""
        if self.folder is not None:
            return f"a {self.name} folder"
        if self.dataset:
            return "a folder or glob of .parquet or .npy files"
        return ", ".join(s + "[.gz]" * self.gzipped for s in self.suffixes)


# The streamed sources and dataset folders load torch: imported when a file is opened, so
# reading the table (``aekit --help``, ``aekit score`` on an ONNX file) loads no torch.
def _npy_rows(path: Path, columns: Any, label_column: Any) -> BlockRows:
    """A ``.npy`` file streams with all its columns (they have no names to pick by)."""
    from .stream import NpyRows

    return NpyRows(path)


def _parquet_rows(path: Path, columns: Any, label_column: Any) -> BlockRows:
    from .stream import ParquetRows

    return ParquetRows(path, columns=columns, label_column=label_column)


def _folder_rows(path: Path, columns: Any, label_column: Any) -> BlockRows:
    from .folders import ShardedRows

    return ShardedRows(path, columns=columns, label_column=label_column)


def _read_folder(path: Path, columns: Any, label_column: Any) -> Table:
    from .folders import read_folder

    return read_folder(path, columns, label_column)


def is_dataset(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a dataset: a folder, or a glob pattern that is not a file."""
    path = Path(path)
    return path.is_dir() or (any(c in str(path) for c in "*?[") and not path.exists())


def data_bytes(path: str | os.PathLike[str]) -> int:
    """Bytes of a data file, or of all the shards of a dataset folder or glob."""
    from .folders import list_shards

    if is_dataset(path):
        return sum(file.stat().st_size for file in list_shards(path))
    path = Path(path)
    return path.stat().st_size if path.is_file() else 0


FORMATS: tuple[FileFormat, ...] = (
    # first: Spark names its output folders data.parquet/ (a 10x Genomics folder is a table)
    FileFormat("10x", (), read_10x, named_columns=True, folder=is_10x_folder),
    FileFormat("folder", (), _read_folder, stream=_folder_rows, dataset=True),
    FileFormat("npy", (".npy",), read_npy, NpySink, _npy_rows),
    FileFormat("npz", (".npz",), read_any_npz, NpzSink),
    FileFormat("mtx", (".mtx",), read_mtx, gzipped=True),
    FileFormat("h5ad", (".h5ad",), read_h5ad, named_columns=True, needs="anndata"),
    FileFormat(
        "csv",
        (".csv",),
        functools.partial(read_delimited, sep=","),
        TextSink,
        named_columns=True,
        names=functools.partial(delimited_names, sep=","),
    ),
    FileFormat(
        "tsv",
        (".tsv",),
        functools.partial(read_delimited, sep="\t"),
        functools.partial(TextSink, sep="\t"),
        named_columns=True,
        names=functools.partial(delimited_names, sep="\t"),
    ),
    FileFormat(
        "txt",
        (".txt",),
        functools.partial(read_delimited, sep="\t"),
        named_columns=True,
        names=functools.partial(delimited_names, sep="\t"),
    ),
    FileFormat(
        "parquet",
        (".parquet",),
        read_parquet,
        ParquetSink,
        _parquet_rows,
        named_columns=True,
        needs="pyarrow",
        names=parquet_names,
    ),
    FileFormat("idx", ("-ubyte", ".idx"), read_idx_table, gzipped=True),
)

OUTPUT_SUFFIXES = tuple(s for f in FORMATS if f.sink is not None for s in f.suffixes)
STREAM_SUFFIXES = tuple(s for f in FORMATS if f.stream is not None for s in f.suffixes)


def find_format(path: str | os.PathLike[str]) -> FileFormat | None:
    """The format of ``path`` by its name (a folder or glob: ``folder``), or None."""
    return next((f for f in FORMATS if f.matches(path)), None)


def file_format(path: str | os.PathLike[str]) -> FileFormat:
    """The format of ``path`` by its name.

    Raises
    ------
    DataError
        Naming the unknown suffix and the known ones.
    """
    found = find_format(path)
    if found is None:
        path = Path(path)
        raise DataError(
            f"unknown file format {path.suffix.lower() or path.name!r} for {path} "
            f"(expected {', '.join(f.listed() for f in FORMATS)})"
        )
    return found


def can_stream(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is of a format read block by block (False for unknown formats)."""
    found = find_format(path)
    return found is not None and found.stream is not None


def names_columns(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is of a format that names its columns (False for unknown formats).

    A dataset folder or glob names them as its shards' format does.

    Raises
    ------
    DataError
        A dataset without shards, or with files that are not shards of one format.
    """
    found = find_format(path)
    if found is not None and found.dataset:
        from .folders import list_shards, shard_format

        return shard_format(list_shards(path), path).named_columns
    return found is not None and found.named_columns


def column_names(path: str | os.PathLike[str]) -> list[str] | None:
    """The names of a data file's columns, read without its rows; None if it has none.

    A text table without a header row, an array format, and the formats whose names come
    with their rows (``.h5ad``, 10x folders) give None; a dataset folder or glob gives its
    first shard's names (every shard has the same schema, :mod:`aekit.data.folders`).

    Raises
    ------
    DataError
        A missing or unreadable file, or one that names two columns alike.
    """
    found = find_format(path)
    if found is not None and found.dataset and names_columns(path):
        from .folders import list_shards

        return column_names(list_shards(path)[0])
    if found is None or found.names is None:
        return None
    path = Path(path)
    if not path.exists():
        raise DataError(f"no such file: {path}")
    names = found.names(path)
    if names is not None:  # a name picks one column: which, if two have it?
        check_distinct_names(names, str(path))
    return names


def read_array(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a 2-D numeric array from any format of :data:`FORMATS`.

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
        ``.npy`` (memory-mapped), ``.npz`` (array ``X`` or the first one; a
        ``scipy.sparse.save_npz`` file is sparse), ``.csv``, ``.tsv``/``.txt`` (a header
        row is detected), ``.parquet`` (needs pyarrow), MNIST IDX (``.idx``, ``-ubyte``,
        gzipped or not; images are flattened), the sparse ``.mtx`` (Matrix Market),
        ``.h5ad`` (needs anndata) and 10x Genomics folders (a scipy.sparse CSR ``X``), or
        a folder or glob of ``.parquet`` or ``.npy`` shards (:mod:`aekit.data.folders`).
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
    if not path.exists() and not is_dataset(path):
        raise DataError(f"no such file: {path}")
    return file_format(path).read(path, columns, label_column)


def read_labels(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one label per row from a file with a single column (IDX labels, .npy, .csv...).

    Labels may be text where the format allows it (``.csv``, parquet); whole numbers become
    integers.

    Raises
    ------
    DataError
        The file has more than one column, or cannot be read.
    """
    table = read_table(path, label_column=0)
    if table.X.shape[1] != 0:
        raise DataError(f"{path} has {1 + table.X.shape[1]} columns, expected one label per row")
    return table.labels  # type: ignore[return-value]


def check_output(path: str | os.PathLike[str]) -> Path:
    """Check an output path before any work: known format, writable folder, not a folder.

    Raises
    ------
    DataError
        Unknown extension (expected one of ``OUTPUT_SUFFIXES``), a folder in the way, an
        unwritable place, or ``.parquet`` without pyarrow.
    """
    return _output(path)[0]


def _output(path: str | os.PathLike[str]) -> tuple[Path, Callable[..., RowSink]]:
    """:func:`check_output`'s checks; the path, and its format's writer."""
    path = Path(path)
    found = next((f for f in FORMATS if f.sink is not None and f.matches(path)), None)
    if found is None:
        raise DataError(
            f"cannot write {path}: unknown output format {path.suffix.lower() or path.name!r} "
            f"(expected {', '.join(OUTPUT_SUFFIXES)})"
        )
    if path.is_dir():
        raise DataError(f"cannot write {path}: it is a folder")
    check_writable_folder(path.parent)
    if found.needs is not None:
        require(found.needs, f"writing {path}")
    return path, found.sink


def write_array(
    path: str | os.PathLike[str], array: Any, column_names: Sequence[str] | None = None
) -> Path:
    """Write rows to ``.npy``, ``.npz``, ``.csv``/``.tsv`` (a header) or ``.parquet``, atomically.

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


def row_writer(
    path: str | os.PathLike[str],
    n_rows: int,
    n_columns: int,
    column_names: Sequence[str] | None = None,
    *,
    dtype: Any = np.float64,
) -> contextlib.AbstractContextManager[Callable[[Any], None]]:
    """Write ``n_rows`` rows chunk by chunk, in the format of :func:`write_array`.

    The block gets a function that appends rows (an array of shape (rows, n_columns), or
    (rows,) for one column). The file appears complete when the block ends without an
    exception, or not at all; an older file at ``path`` stays until then. Memory holds one
    chunk at a time, so outputs larger than memory can be written.

    Raises
    ------
    DataError
        An output path :func:`check_output` refuses, or rows that do not add up to
        ``n_rows`` by ``n_columns``.
    """
    path, sink = _output(path)
    return write_rows(path, sink, n_rows, n_columns, column_names, dtype)


def open_rows(
    path: str | os.PathLike[str],
    *,
    columns: Sequence[str | int] | None = None,
    label_column: str | int | None = None,
) -> BlockRows | None:
    """A streamed source for a path of a streamed format (``.npy``, ``.parquet``), else None.

    ``columns`` and ``label_column`` pick columns of a format that names them (see
    :class:`ParquetRows`); a ``.npy`` source always has all its columns. The formats are those
    of :data:`aekit.data.formats.FORMATS` with a ``stream``.
    """
    found = find_format(path)
    if found is None or found.stream is None:
        return None
    return found.stream(Path(path), columns, label_column)
