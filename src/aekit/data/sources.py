"""Row sources: what the trainer draws batches from.

A *row source* is anything with ``__len__``, ``n_features`` and ``take(indices)`` returning a
float32 tensor of those rows. :class:`TensorRows` serves in-memory data by tensor indexing
(no per-sample collation); :class:`RowSubset` is a view of some rows of another source;
files larger than memory are sources too (:mod:`aekit.data.stream`).
"""

from __future__ import annotations

import warnings
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from ..errors import DataError

__all__ = [
    "RowSource",
    "RowSubset",
    "TensorRows",
    "as_tensor",
    "dealt_parts",
    "row_order",
    "shuffled",
]


@runtime_checkable
class RowSource(Protocol):
    """What the trainer needs from a dataset."""

    n_features: int

    def __len__(self) -> int:
        """Number of rows."""
        ...

    def take(self, indices: torch.Tensor) -> torch.Tensor:
        """Return the rows at ``indices`` (a 1-D int64 CPU tensor) as float32 on the device."""
        ...


class TensorRows:
    """In-memory rows, optionally kept on the training device.

    Parameters
    ----------
    data : Tensor of shape (n_rows, n_features)
        Converted to float32.
    """

    def __init__(self, data: torch.Tensor) -> None:
        if data.ndim != 2:
            raise DataError(f"expected a 2-D array of rows, got shape {tuple(data.shape)}")
        self.data = data.to(torch.float32)
        self.n_features = int(data.shape[1])

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def to(self, device: torch.device) -> TensorRows:
        """Move the rows to ``device`` once, so batches are sliced there."""
        self.data = self.data.to(device)
        return self

    def take(self, indices: torch.Tensor) -> torch.Tensor:
        """Gather rows by index."""
        return self.data.index_select(0, indices.to(self.data.device))


class RowSubset:
    """Some rows of another source, without copying them: a train / held-out split of a file.

    Parameters
    ----------
    source : RowSource
        The rows to pick from (e.g. an :class:`NpyRows`).
    indices : array-like of int
        Rows of ``source`` to keep, each at most once; kept in increasing order.

    Notes
    -----
    The subset shuffles the way its source does (block-wise for a file), so an epoch over
    it still reads the file block by block.
    """

    def __init__(self, source: RowSource, indices: Any) -> None:
        index = torch.as_tensor(np.asarray(indices), dtype=torch.int64).flatten().sort().values
        if len(index) and (int(index[0]) < 0 or int(index[-1]) >= len(source)):
            raise DataError(f"row index out of range for {len(source)} rows")
        if len(index) > 1 and not bool((index[1:] > index[:-1]).all()):
            raise DataError("RowSubset indices must not repeat")
        self.source, self.indices = source, index
        self.n_features = source.n_features
        self.dtype = getattr(source, "dtype", None)
        self.path = getattr(source, "path", None)
        self.columns = getattr(source, "columns", None)  # the same columns, fewer rows

    def __len__(self) -> int:
        return len(self.indices)

    def take(self, indices: torch.Tensor) -> torch.Tensor:
        """Rows at positions ``indices`` of the subset."""
        return self.source.take(self.indices[indices.to(torch.int64)])

    def shuffle(
        self,
        rows: torch.Tensor,
        generator: torch.Generator,
        parts: int = 1,
        batches: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """The source's shuffled (and dealt) order of these rows, as positions in the subset."""
        order = shuffled(self.source, self.indices[rows], generator, parts, batches)
        return torch.searchsorted(self.indices, order)

    @property
    def bytes_read(self) -> int | None:
        """The source's count of bytes read from disk (None for rows in memory)."""
        return getattr(self.source, "bytes_read", None)

    @property
    def parts(self) -> int | None:
        """The source's :attr:`~aekit.data.stream.BlockRows.parts`.

        No such attribute when the source deals no rows.
        """
        return self.source.parts  # type: ignore[attr-defined, no-any-return]

    def close(self) -> None:
        """Close the source (if it has a file open)."""
        close = getattr(self.source, "close", None)
        if close is not None:
            close()


def shuffled(
    source: RowSource,
    rows: torch.Tensor,
    generator: torch.Generator,
    parts: int = 1,
    batches: tuple[int, int] | None = None,
) -> torch.Tensor:
    """An epoch's order of ``rows``: the source's own shuffle, else a plain permutation.

    A file source shuffles by blocks and deals them to ``parts`` ranks, ``batches`` being
    ``(batch_size, n_batches)`` (see :mod:`aekit.data.shares`); rows in memory ignore
    ``parts`` (every rank holds them all). Both draw from ``generator``.
    """
    shuffle = getattr(source, "shuffle", None)
    if shuffle is not None:
        return shuffle(rows, generator) if parts == 1 else shuffle(rows, generator, parts, batches)
    return rows[torch.randperm(len(rows), generator=generator)]


def row_order(source: RowSource) -> str:
    """How :func:`shuffled` draws an epoch of ``source``: ``"blocks"`` or ``"rows"``.

    ``"blocks"`` for a file source's own shuffle (a subset's is its source's), ``"rows"``
    for a plain permutation of rows in memory. A checkpoint records it: a resume drawn the
    other way would train some rows of the interrupted epoch twice, others never.
    """
    while isinstance(source, RowSubset):
        source = source.source
    return "blocks" if hasattr(source, "shuffle") else "rows"


def dealt_parts(source: RowSource, world_size: int) -> int:
    """The ranks an epoch of ``source`` is dealt to.

    1 for a source that does not deal its rows (rows in memory: every rank holds them all);
    else the source's ``parts`` (a replay's setting) or the world size.
    """
    if not hasattr(source, "parts"):
        return 1
    return getattr(source, "parts", None) or world_size


def as_tensor(array: np.ndarray) -> torch.Tensor:
    """Rows as a float32 tensor that shares ``array``'s memory where it can.

    aekit never writes to its input rows, so a read-only array (``np.load``'s memory map,
    say) is shared as is rather than copied, and without torch's warning about it.
    """
    array = np.ascontiguousarray(array, dtype=np.float32)
    if array.flags.writeable:
        return torch.from_numpy(array)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        return torch.from_numpy(array)
