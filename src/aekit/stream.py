"""Rows streamed from a ``.npy`` file larger than memory, in shuffled blocks.

A memory map would do the reading, but every page it touches counts as resident memory, so a
pass over a 3 GB file ends with 3 GB resident. :class:`NpyRows` instead reads contiguous
*blocks* of rows with explicit ``readinto`` calls into a few buffers it allocates once, and
shuffles *by block*: each epoch permutes the blocks, groups them into windows of
``window_blocks`` consecutive blocks, and permutes the rows inside each window. A batch thus
mixes rows of a few blocks instead of the whole file (rows far apart in the file meet less
often than under a full shuffle); the order is drawn from the trainer's seeded generator, so
runs and resumed runs repeat exactly.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .data import RowSource
from .errors import DataError, DataTypeError

__all__ = ["NpyRows", "stream_stats"]

_BLOCK_BYTES = 16 * 2**20  # bytes of float32 per block when block_rows is not given


class NpyRows:
    """A :class:`~aekit.data.RowSource` over a ``.npy`` file, read block by block.

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
        self.dtype = dtype
        self.n_rows = int(shape[0])
        self.n_features = int(np.prod(shape[1:]))
        expected = self.offset + self.n_rows * self.n_features * dtype.itemsize
        if self.path.stat().st_size < expected:
            raise DataError(f"{self.path} is truncated: expected at least {expected} bytes")
        if block_rows is None:
            block_rows = _BLOCK_BYTES // (4 * self.n_features)
        if block_rows < 1 or window_blocks < 1:
            raise DataError(
                f"block_rows and window_blocks must be >= 1, got {block_rows}, {window_blocks}"
            )
        self.block_rows = max(1, min(int(block_rows), self.n_rows))
        self.window_blocks = int(window_blocks)
        self._handle: object | None = None
        self._buffer: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.n_rows

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "_handle": None, "_buffer": None}

    # -- order --------------------------------------------------------------------------
    def shuffle(self, rows: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Block-wise shuffled order of ``rows`` (see the module docstring)."""
        block = rows // self.block_rows
        n_blocks = -(-self.n_rows // self.block_rows)
        rank = torch.empty(n_blocks, dtype=torch.int64)
        rank[torch.randperm(n_blocks, generator=generator)] = torch.arange(n_blocks)
        window = rank[block] // self.window_blocks
        key = window * len(rows) + torch.randperm(len(rows), generator=generator)
        return rows[key.argsort()]

    # -- reading ------------------------------------------------------------------------
    def take(self, indices: torch.Tensor) -> torch.Tensor:
        """Rows at ``indices`` as float32, read from disk block by block as needed."""
        indices = indices.to(torch.int64)
        if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= self.n_rows):
            raise DataError(f"row index out of range for {self.n_rows} rows in {self.path}")
        block = indices // self.block_rows
        needed = block.unique().tolist()
        if len(needed) > self._capacity():
            # a caller asking for rows of many blocks at once (e.g. sorted validation chunks)
            return torch.cat([self.take(part) for part in indices.tensor_split(2)])
        self._ensure(needed)
        slot = self._slot_of[block]
        return self._rows.index_select(0, slot * self.block_rows + indices % self.block_rows)

    def _capacity(self) -> int:
        return 2 * self.window_blocks

    def _ensure(self, blocks: list[int]) -> None:
        if self._buffer is None:
            self._buffer = torch.empty(self._capacity() * self.block_rows, self.n_features)
            self._rows = self._buffer
            self._slot_of = torch.full((-(-self.n_rows // self.block_rows),), -1)
            self._held: list[int] = []  # blocks in slots, least recently used first
            self._raw = np.empty(self.block_rows * self.n_features, dtype=self.dtype)
        wanted = set(blocks)
        for b in blocks:
            if b in self._held:
                self._held.remove(b)
                self._held.append(b)
                continue
            if len(self._held) < self._capacity():
                slot = len(self._held)
            else:
                victim = next(v for v in self._held if v not in wanted)
                self._held.remove(victim)
                slot = int(self._slot_of[victim])
                self._slot_of[victim] = -1
            self._read_block(b, slot)
            self._slot_of[b] = slot
            self._held.append(b)

    def _read_block(self, block: int, slot: int) -> None:
        assert self._buffer is not None
        first = block * self.block_rows
        count = min(self.block_rows, self.n_rows - first)
        target = self._buffer[slot * self.block_rows : slot * self.block_rows + count]
        native_f32 = self.dtype == np.dtype(np.float32)
        raw = target.numpy().reshape(-1) if native_f32 else self._raw[: count * self.n_features]
        if self._handle is None:
            self._handle = self.path.open("rb", buffering=0)
        handle = self._handle
        handle.seek(self.offset + first * self.n_features * self.dtype.itemsize)  # type: ignore[attr-defined]
        view = memoryview(raw).cast("B")
        done = 0
        while done < len(view):
            got = handle.readinto(view[done:])  # type: ignore[attr-defined]
            if not got:
                raise DataError(f"{self.path} ended early while reading block {block}")
            done += got
        if not native_f32:
            target.copy_(torch.from_numpy(raw.reshape(count, self.n_features).astype(np.float32)))

    def close(self) -> None:
        """Close the file and free the buffers (they come back on the next read)."""
        if getattr(self, "_handle", None) is not None:
            self._handle.close()  # type: ignore[union-attr]
        self._handle = self._buffer = None

    def __del__(self) -> None:
        self.close()


def stream_stats(source: RowSource, chunk_rows: int = 8192) -> dict[str, np.ndarray]:
    """Per-feature min, max, mean and std of a row source in one streamed pass (float64).

    Raises
    ------
    DataError
        If a value is NaN or infinite (naming the first such row).
    """
    d = source.n_features
    low, high = np.full(d, np.inf), np.full(d, -np.inf)
    mean, m2, count = np.zeros(d), np.zeros(d), 0
    for start in range(0, len(source), chunk_rows):
        stop = min(start + chunk_rows, len(source))
        x = source.take(torch.arange(start, stop)).double().numpy()
        finite = np.isfinite(x)
        if not finite.all():
            row = start + int(np.argwhere(~finite)[0][0])
            where = getattr(source, "path", "the rows")
            raise DataError(
                f"{where} contains NaN or infinity (first at row {row}); drop or impute them"
            )
        low, high = np.minimum(low, x.min(axis=0)), np.maximum(high, x.max(axis=0))
        n = stop - start
        chunk_mean = x.mean(axis=0)
        delta = chunk_mean - mean
        total = count + n
        m2 += ((x - chunk_mean) ** 2).sum(axis=0) + delta**2 * count * n / total
        mean += delta * n / total
        count = total
    std = np.sqrt(m2 / max(count, 1))
    return {"min": low, "max": high, "mean": mean, "std": std}
