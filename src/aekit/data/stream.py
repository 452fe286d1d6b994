"""Rows streamed from a ``.npy`` or parquet file larger than memory, in shuffled blocks.

A memory map would do the reading, but every page it touches counts as resident memory, so a
pass over a 3 GB file ends with 3 GB resident. The sources here instead read *blocks* of rows
into a few buffers allocated once, and shuffle *by block*: each epoch permutes the blocks,
groups them into windows of ``window_blocks`` consecutive blocks, and permutes the rows inside
each window. A batch thus mixes rows of a few blocks instead of the whole file (rows far apart
in the file meet less often than under a full shuffle); the order is drawn from the trainer's
seeded generator, so runs and resumed runs repeat exactly. Under DDP the shuffled blocks are
dealt to the ranks, each reading only its share (:mod:`aekit.data.shares`); every source counts
the bytes it reads (:attr:`BlockRows.bytes_read`).

:class:`NpyRows` reads contiguous blocks of a ``.npy`` file with explicit ``readinto`` calls;
:class:`ParquetRows` reads one parquet row group per block with pyarrow.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError, DataTypeError
from .readers import open_parquet, parquet_columns, read_npy, read_parquet
from .shares import deal
from .sources import RowSubset
from .stats import array_stats, stream_stats  # their home before 0.2; kept importable

__all__ = [
    "BlockRows",
    "NpyRows",
    "ParquetRows",
    "RowSubset",
    "array_stats",
    "stream_stats",
]

_BLOCK_BYTES = 16 * 2**20  # bytes of float32 per block when block_rows is not given


class BlockRows:
    """Base of the streamed row sources: blocks of rows, their shuffle and their buffers.

    A subclass sets ``path``, ``n_rows``, ``n_features``, ``dtype`` and ``window_blocks``,
    calls :meth:`_set_blocks` with the first row of each block and the bytes each takes on
    disk, and implements :meth:`_read_block` (fill a buffer slot with one block) and
    :meth:`_close_file`.

    Attributes
    ----------
    bytes_read : int
        Bytes this source has read from disk so far (blocks as stored: a ``.npy`` block's
        bytes, a parquet row group's compressed column chunks). The page cache hides re-reads
        from ``/proc``; this counts what the reader asked for.
    parts : int or None
        The number of ranks an epoch's blocks are dealt to (:mod:`aekit.data.shares`); None,
        the default, means the run's world size. Set it to N in one process to replay the
        order of an N-rank run.
    """

    path: Path
    n_rows: int
    n_features: int
    dtype: np.dtype
    window_blocks: int
    bytes_read: int = 0
    parts: int | None = None

    def _set_blocks(self, starts: np.ndarray, nbytes: np.ndarray) -> None:
        """Blocks begin at rows ``starts`` (increasing, the first 0) and take ``nbytes``."""
        self.block_bytes = np.asarray(nbytes, dtype=np.int64)
        self._starts = torch.as_tensor(np.append(starts, self.n_rows), dtype=torch.int64)
        self.n_blocks = len(starts)
        self.block_rows = max(1, int((self._starts[1:] - self._starts[:-1]).max()))  # slot size
        self._buffer: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.n_rows

    def _fit_window(self, window_blocks: int, max_buffer_bytes: int) -> None:
        """Shrink ``window_blocks`` so the buffers fit ``max_buffer_bytes`` (row groups)."""
        group_bytes = self.block_rows * self.n_features * 4
        fit = max(1, max_buffer_bytes // (2 * group_bytes))
        self.window_blocks = int(min(window_blocks, fit))
        if self.capacity * group_bytes > max_buffer_bytes:
            raise DataError(
                f"{self.path} has row groups of up to {self.block_rows} rows "
                f"({group_bytes / 2**20:.0f} MiB as float32), too large to stream within "
                f"{max_buffer_bytes / 2**20:.0f} MiB; rewrite it with smaller row groups "
                "(pyarrow.parquet.write_table(..., row_group_size=N)) or read it whole"
            )

    def __getstate__(self) -> dict[str, object]:
        """The source without its open file and buffers: they come back on the next read."""
        state = dict(self.__dict__)
        for name in self._transient():
            state[name] = None
        return state

    def _transient(self) -> tuple[str, ...]:
        """The open file and the buffers: never pickled, dropped by :meth:`close`."""
        return ("_buffer",)

    def _block_of(self, rows: torch.Tensor) -> torch.Tensor:
        return torch.searchsorted(self._starts, rows, right=True) - 1

    # -- order --------------------------------------------------------------------------
    def shuffle(
        self,
        rows: torch.Tensor,
        generator: torch.Generator,
        parts: int = 1,
        batches: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Block-wise shuffled order of ``rows``, dealt to ``parts`` ranks.

        ``batches`` is ``(batch_size, n_batches)`` of the epoch (needed when ``parts > 1``):
        see :func:`aekit.data.shares.deal`. (The trainer passes :attr:`parts` when it is set,
        else its world size.)
        """
        block = self._block_of(rows)
        return rows[deal(block, self.n_blocks, self.window_blocks, generator, parts, batches)]

    # -- reading ------------------------------------------------------------------------
    def take(self, indices: torch.Tensor) -> torch.Tensor:
        """Rows at ``indices`` as float32, read from disk block by block as needed."""
        indices = indices.to(torch.int64)
        if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= self.n_rows):
            raise DataError(f"row index out of range for {self.n_rows} rows in {self.path}")
        block = self._block_of(indices)
        needed = block.unique().tolist()
        if len(needed) > self.capacity:
            # a caller asking for rows of many blocks at once (e.g. sorted validation chunks)
            return torch.cat([self.take(part) for part in indices.tensor_split(2)])
        buffer = self._ensure(needed)
        slot = self._slot_of[block]
        return buffer.index_select(0, slot * self.block_rows + indices - self._starts[block])

    def chunks(self) -> Iterator[tuple[int, torch.Tensor]]:
        """``(first row, rows)`` for each block in file order: one sequential pass."""
        for block in range(self.n_blocks):
            first, stop = int(self._starts[block]), int(self._starts[block + 1])
            if stop > first:
                yield first, self.take(torch.arange(first, stop))

    @property
    def capacity(self) -> int:
        """Blocks held in memory at once."""
        return min(2 * self.window_blocks, self.n_blocks)

    def _ensure(self, blocks: list[int]) -> torch.Tensor:
        """Read ``blocks`` into buffer slots (evicting the least recently used); the buffer."""
        if self._buffer is None:
            self._buffer = torch.empty(self.capacity * self.block_rows, self.n_features)
            self._slot_of = torch.full((self.n_blocks,), -1)
            self._held: list[int] = []  # blocks in slots, least recently used first
        wanted = set(blocks)
        for b in blocks:
            if b in self._held:
                self._held.remove(b)
                self._held.append(b)
                continue
            if len(self._held) < self.capacity:
                slot = len(self._held)
            else:
                victim = next(v for v in self._held if v not in wanted)
                self._held.remove(victim)
                slot = int(self._slot_of[victim])
                self._slot_of[victim] = -1
            first, stop = int(self._starts[b]), int(self._starts[b + 1])
            start = slot * self.block_rows
            self._read_block(b, self._buffer[start : start + stop - first])
            self.bytes_read += int(self.block_bytes[b])
            self._slot_of[b] = slot
            self._held.append(b)
        return self._buffer

    def _read_block(self, block: int, target: torch.Tensor) -> None:
        raise NotImplementedError

    def _close_file(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Close the file and free the buffers (they come back on the next read)."""
        self._close_file()
        for name in self._transient():
            setattr(self, name, None)

    def __del__(self) -> None:
        self.close()


class NpyRows(BlockRows):
    """A :class:`~aekit.data.RowSource` over a ``.npy`` file, read block by block.

    As a kind of shard of a dataset folder (:mod:`aekit.data.folders`), its class attributes
    say what :data:`aekit.data.formats.FORMATS` says of the format: ``name``, ``suffix``,
    ``named_columns`` and ``read`` (the whole file as a :class:`~aekit.data.readers.Table`).

    Parameters
    ----------
    path : str or path-like
        A C-ordered numeric ``.npy`` file of 2-D rows (more dimensions are flattened).
    block_rows : int or None, default=None
        Rows per block (the unit of reading and of shuffling); None picks ~16 MiB blocks.
    window_blocks : int, default=4
        Blocks whose rows are shuffled together; memory use is about
        ``2 * window_blocks * block_rows * n_features * 4`` bytes.

    Attributes
    ----------
    n_features : int
        Values per row.
    """

    name = "npy"
    suffix = ".npy"
    named_columns = False
    read = staticmethod(read_npy)

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        block_rows: int | None = None,
        window_blocks: int = 4,
    ) -> None:
        self.path = Path(path)
        try:
            with self.path.open("rb") as handle:
                version = np.lib.format.read_magic(handle)
                read_header = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shape, fortran, dtype = read_header(handle)
                self.offset = handle.tell()
        except (OSError, ValueError) as exc:
            raise DataError(f"{self.path} is not a readable .npy file ({exc})") from exc
        if dtype.kind not in "biuf" or dtype.hasobject:
            raise DataTypeError(f"{self.path} holds {dtype} data, expected numbers")
        if len(shape) < 2 or fortran:
            raise DataError(
                f"{self.path} must hold C-ordered rows of shape (n_rows, n_features), "
                f"got shape {shape}{' in Fortran order' if fortran else ''}"
            )
        self.dtype, self.shape = dtype, tuple(shape)
        self.n_rows = int(shape[0])
        self.n_features = int(np.prod(shape[1:]))
        if self.n_features == 0:
            raise DataError(f"{self.path} has no data ({self.n_rows} rows, 0 columns)")
        expected = self.offset + self.n_rows * self.n_features * dtype.itemsize
        if self.path.stat().st_size < expected:
            raise DataError(f"{self.path} is truncated: expected at least {expected} bytes")
        if block_rows is None:
            block_rows = _BLOCK_BYTES // (4 * self.n_features)
        if block_rows < 1 or window_blocks < 1:
            raise DataError(
                f"block_rows and window_blocks must be >= 1, got {block_rows}, {window_blocks}"
            )
        self.window_blocks = int(window_blocks)
        self._handle: Any = None
        starts = np.arange(0, max(self.n_rows, 1), max(1, int(block_rows)))
        row_bytes = self.n_features * dtype.itemsize
        self._set_blocks(starts, np.diff(np.append(starts, self.n_rows)) * row_bytes)
        self._raw: np.ndarray | None = None  # a block as read, when it is not float32

    def _transient(self) -> tuple[str, ...]:
        return ("_buffer", "_handle", "_raw")

    def _read_block(self, block: int, target: torch.Tensor) -> None:
        first, count = int(self._starts[block]), len(target)
        native_f32 = self.dtype == np.dtype(np.float32)
        if native_f32:
            raw = target.numpy().reshape(-1)
        else:
            if self._raw is None:
                self._raw = np.empty(self.block_rows * self.n_features, dtype=self.dtype)
            raw = self._raw[: count * self.n_features]
        if self._handle is None:
            self._handle = self.path.open("rb", buffering=0)
        self._handle.seek(self.offset + first * self.n_features * self.dtype.itemsize)
        view = memoryview(raw).cast("B")
        done = 0
        while done < len(view):
            got = self._handle.readinto(view[done:])
            if not got:
                raise DataError(f"{self.path} ended early while reading block {block}")
            done += got
        if not native_f32:
            target.copy_(torch.from_numpy(raw.reshape(count, self.n_features).astype(np.float32)))

    def _close_file(self) -> None:
        if getattr(self, "_handle", None) is not None:
            self._handle.close()
        self._handle = None


class ParquetRows(BlockRows):
    """A :class:`~aekit.data.RowSource` over the numeric columns of a parquet file.

    Each block is one row group: pyarrow reads a row group whole, so memory follows the
    largest row group, not the file. Write big files with row groups of a few MiB to a few
    hundred MiB (``pyarrow.parquet.write_table(..., row_group_size=rows)``).

    Parameters
    ----------
    path : str or path-like
        A parquet file (needs pyarrow: ``pip install 'aekit[parquet]'``).
    columns : sequence of str or int, optional
        Feature columns, by name or 0-based index (default: all but ``label_column``), as in
        :func:`aekit.data.read_table`.
    label_column : str or int, optional
        A column left out of the features (it may hold text).
    window_blocks : int, default=4
        Row groups whose rows are shuffled together.
    max_buffer_bytes : int, default=1 GiB
        Bound on the float32 buffers (``2 * window_blocks`` row groups): ``window_blocks``
        shrinks to fit it, down to one row group (then it may hold two).

    Attributes
    ----------
    n_features : int
        Values per row.
    columns : list of str
        Names of the feature columns.

    Raises
    ------
    DataError
        pyarrow missing, not a parquet file, no such column, or a row group too large for
        ``max_buffer_bytes``.
    DataTypeError
        A feature column is not numeric.
    """

    name = "parquet"
    suffix = ".parquet"
    named_columns = True
    read = staticmethod(read_parquet)

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        columns: Sequence[str | int] | None = None,
        label_column: str | int | None = None,
        window_blocks: int = 4,
        max_buffer_bytes: int = 2**30,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"no such file: {self.path}")
        if window_blocks < 1:
            raise DataError(f"window_blocks must be >= 1, got {window_blocks}")
        self._file: Any = open_parquet(self.path)
        try:
            self._layout(columns, label_column, window_blocks, max_buffer_bytes)
        except BaseException:
            self._close_file()
            raise

    def _layout(
        self,
        columns: Sequence[str | int] | None,
        label_column: str | int | None,
        window_blocks: int,
        max_buffer_bytes: int,
    ) -> None:
        """Pick the feature columns; one block per (non-empty) row group; size the window."""
        schema = self._file.schema_arrow
        _, feature_idx = parquet_columns(self.path, schema, columns, label_column)
        if not feature_idx:
            raise DataError(f"{self.path} has no feature columns left to train on")
        self.columns = [str(schema.names[i]) for i in feature_idx]
        self.dtype = np.result_type(*(schema.field(i).type.to_pandas_dtype() for i in feature_idx))
        meta = self._file.metadata
        sizes = np.array([meta.row_group(g).num_rows for g in range(meta.num_row_groups)])
        self.n_rows, self.n_features = int(sizes.sum()), len(feature_idx)
        if self.n_rows == 0:
            raise DataError(f"{self.path} has no data rows")
        # empty row groups would be empty blocks: keep the others, and their file indices
        self._groups = np.flatnonzero(sizes)
        nbytes = [  # what read_row_group fetches: the feature columns' chunks
            sum(meta.row_group(int(g)).column(i).total_compressed_size for i in feature_idx)
            for g in self._groups
        ]
        self._set_blocks(np.concatenate([[0], np.cumsum(sizes[self._groups])[:-1]]), nbytes)
        self._fit_window(window_blocks, max_buffer_bytes)

    def _transient(self) -> tuple[str, ...]:
        return ("_buffer", "_file")

    def _read_block(self, block: int, target: torch.Tensor) -> None:
        import pyarrow as pa

        if self._file is None:
            self._file = open_parquet(self.path)
        try:
            group = self._file.read_row_group(int(self._groups[block]), columns=self.columns)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"cannot read row group {block} of {self.path} ({exc})") from exc
        if group.num_rows != len(target):
            raise DataError(
                f"{self.path} row group {block} holds {group.num_rows} rows, "
                f"its metadata says {len(target)}"
            )
        out = target.numpy()
        for j, column in enumerate(group.columns):  # nulls become NaN, caught by stream_stats
            out[:, j] = column.cast(pa.float32(), safe=False).to_numpy()

    def _close_file(self) -> None:
        if getattr(self, "_file", None) is not None:
            self._file.close()
        self._file = None
