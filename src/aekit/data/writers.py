"""Writers of rows, one per output format; :mod:`aekit.data.formats` picks one by suffix.

A *sink* writes rows into an open binary file, chunk by chunk: it is made with
``sink(handle, column_names, n_rows, dtype)``, then gets ``write(rows)`` calls and one
``close()``. :func:`write_rows` runs a sink inside an atomic file, so an output appears complete
or not at all.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import DataError
from ..files.atomic import atomic_file

__all__ = ["NpySink", "NpzSink", "ParquetSink", "RowSink", "TextSink", "write_rows"]


class RowSink(Protocol):
    """What :func:`write_rows` needs from a format's writer."""

    def write(self, rows: np.ndarray) -> None:
        """Append rows of shape (n, n_columns) in the sink's dtype."""
        ...

    def close(self) -> None:
        """Finish the file (a footer, say); the handle itself stays open."""
        ...


class NpySink:
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
        """Append the rows' bytes."""
        self.handle.write(np.ascontiguousarray(rows).data)

    def close(self) -> None:
        """Nothing to finish: the header announced the shape."""


class NpzSink:
    """A ``.npz`` file holding one dense array ``X`` (what ``np.savez(path, X=rows)`` writes).

    The rows stream into the zip entry as a ``.npy`` file (stored, not compressed, like
    ``np.savez``), so outputs larger than memory can be written. Dense on purpose: the
    commands write codes, errors and reconstructions, which are dense even for sparse input
    (a reconstruction predicts every entry). ``np.load(path)["X"]`` and
    :func:`aekit.data.read_array` read it back; the column names are not kept.
    """

    def __init__(self, handle: Any, names: list[str], n_rows: int, dtype: np.dtype) -> None:
        import zipfile

        self.archive = zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED)
        self.entry = self.archive.open("X.npy", "w", force_zip64=True)
        self.rows = NpySink(self.entry, names, n_rows, dtype)

    def write(self, rows: np.ndarray) -> None:
        """Append the rows' bytes to the ``X.npy`` entry."""
        self.rows.write(rows)

    def close(self) -> None:
        """Finish the entry and write the zip's directory."""
        self.entry.close()
        self.archive.close()


class TextSink:
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
        """Append one line per row."""
        text = io.StringIO()
        np.savetxt(text, rows, delimiter=self.sep, fmt=self.fmt)
        self.handle.write(text.getvalue().encode())

    def close(self) -> None:
        """Nothing to finish: every line is complete."""


class ParquetSink:
    """A ``.parquet`` file: each chunk of rows becomes row groups of one float column each."""

    def __init__(self, handle: Any, names: list[str], n_rows: int, dtype: np.dtype) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.names = names
        self.schema = pa.schema([(n, pa.from_numpy_dtype(dtype)) for n in names])
        self.writer = pq.ParquetWriter(handle, self.schema)

    def write(self, rows: np.ndarray) -> None:
        """Append the rows as row groups (one per chunk, so the file streams again)."""
        import pyarrow as pa

        columns = {n: rows[:, i] for i, n in enumerate(self.names)}
        self.writer.write_table(pa.table(columns, schema=self.schema))

    def close(self) -> None:
        """Write the footer."""
        self.writer.close()


@contextlib.contextmanager
def write_rows(
    path: Path,
    sink: Callable[..., RowSink],
    n_rows: int,
    n_columns: int,
    column_names: Sequence[str] | None = None,
    dtype: Any = np.float64,
) -> Iterator[Callable[[Any], None]]:
    """Write ``n_rows`` rows to ``path`` through ``sink``, chunk by chunk, atomically.

    The block gets a function that appends rows (an array of shape (rows, n_columns), or
    (rows,) for one column). The file appears complete when the block ends without an
    exception, or not at all.

    Raises
    ------
    DataError
        If the rows written do not add up to ``n_rows`` by ``n_columns``.
    """
    names = [str(n) for n in column_names] if column_names is not None else None
    names = names or [f"x{i}" for i in range(n_columns)]
    if len(names) != n_columns:
        raise DataError(f"{len(names)} column names for {n_columns} columns")
    dtype = np.dtype(dtype)
    written = 0
    with atomic_file(path) as handle:
        rows_sink = sink(handle, names, n_rows, dtype)

        def write(rows: Any) -> None:
            nonlocal written
            rows = np.asarray(rows, dtype=dtype)
            rows = rows[:, None] if rows.ndim == 1 else rows
            if rows.ndim != 2 or rows.shape[1] != n_columns or written + len(rows) > n_rows:
                raise DataError(
                    f"cannot write rows of shape {rows.shape} to {path}: {written} of "
                    f"{n_rows} rows of {n_columns} columns are written"
                )
            rows_sink.write(rows)
            written += len(rows)

        try:
            yield write
        finally:
            rows_sink.close()
        if written != n_rows:
            raise DataError(f"{path}: {written} rows written, {n_rows} announced")
