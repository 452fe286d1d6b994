"""Activation batches for SAE training: arrays, files larger than memory, any iterable of arrays.

:func:`activation_source` turns what :meth:`SparseAutoencoder.fit
<aekit.sae.SparseAutoencoder.fit>` is given into one of three sources, each yielding an
epoch's batches as float32 tensors, never the whole dataset at once:

* :class:`ArrayBatches`: an array in memory (numpy, torch), shuffled in full each epoch;
* :class:`BlockBatches`: a streamed file or folder of :mod:`aekit.data` (a ``.npy`` file,
  also given as a ``numpy.memmap`` of one; parquet; a folder or glob of ``.npy``, parquet
  or ``.safetensors`` shards), read block by block and shuffled by block windows
  (:mod:`aekit.data.stream`), so a 20 GB file trains in a few hundred MB;
* :class:`IterableBatches`: any iterable of 2-D arrays (a generator of model activations,
  a data loader), re-cut into batches of ``batch_size`` rows, in the order given.

**Order and resuming.** The array and block sources draw an epoch's order from the trainer's
generator and can start an epoch at any batch: the trainer stores the generator's state at
the epoch's start and the batches done, and a resumed run replays the same order from there
(bit for bit). An iterable is replayed by iterating it again from its start and skipping the
rows already trained on, so give a re-iterable one (a list, an object whose ``__iter__``
starts over, or a function returning a fresh iterator); a one-shot iterator (``iter(x) is
x``) is taken as positioned where the stopped run left it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.checks import first_unusable, unusable_message
from ..data.formats import open_rows
from ..data.names import check_unique_names, column_labels, in_named_order
from ..data.safetensors_rows import SafetensorsRows, is_safetensors_dataset
from ..data.stream import BlockRows, NpyRows
from ..errors import DataError, DataTypeError

__all__ = [
    "ArrayBatches",
    "BlockBatches",
    "IterableBatches",
    "activation_rows",
    "activation_source",
    "check_activations",
]


def activation_rows(value: Any, where: str) -> torch.Tensor:
    """A 2-D float32 tensor of rows from an array-like, or one clear error."""
    if not isinstance(value, torch.Tensor):
        value = np.asarray(value)
        if value.dtype.kind == "O":  # numbers held as Python objects (a DataFrame's)
            try:
                value = value.astype(np.float64)
            except (TypeError, ValueError) as exc:
                raise DataTypeError(f"{where} holds non-numeric objects ({exc})") from exc
        if value.dtype.kind not in "biuf":  # text, dates, complex numbers
            raise DataTypeError(f"{where} holds {value.dtype} values, expected numbers")
    tensor = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
    if tensor.ndim != 2:
        raise DataError(
            f"{where} must be rows of shape (n_rows, n_features), got {tuple(tensor.shape)}"
        )
    if tensor.is_complex():
        raise DataTypeError(f"{where} holds {tensor.dtype} values, expected real numbers")
    return tensor.detach().to("cpu", torch.float32)


def check_activations(
    batch: torch.Tensor,
    what: str,
    rows: int | torch.Tensor = 0,
    in_order: Callable[[], Iterable[tuple[int, torch.Tensor]]] | None = None,
) -> torch.Tensor:
    """``batch`` itself, or a :class:`DataError` naming the first NaN or infinity.

    An activation has no missing value: NaN is refused like infinity (and like a value beyond
    float32's range, which became infinite on the way in), with the row it has in the data.

    Parameters
    ----------
    batch : Tensor of shape (n_rows, n_features)
        Float32 rows.
    what : str
        Whose rows they are in the message (a file's path, ``"X"``).
    rows : int or Tensor, default=0
        The data's number of the batch's first row, or of each of its rows (a shuffled batch).
    in_order : callable, optional
        The data's rows in order, as ``(first row, rows)`` parts: once ``batch`` holds an
        unusable value, they are read (only then) so that the message names the data's first.
    """
    where = first_unusable(batch)
    if where is None:
        return batch
    for first, part in in_order() if in_order is not None else ():
        check_activations(part, what, first)
    row = int(rows[where[0]]) if isinstance(rows, torch.Tensor) else rows + where[0]
    raise DataError(unusable_message(what, float(batch[where]), row, where[1]))


class ArrayBatches:
    """An in-memory array's rows, a full random permutation per epoch.

    Parameters
    ----------
    data : ndarray, DataFrame or Tensor of shape (n_rows, n_features)

    Attributes
    ----------
    labels : list of str or int, or None
        A DataFrame's column labels (all strings or all integers), read by name later.
    """

    def __init__(self, data: Any) -> None:
        self.labels = column_labels(data)
        if isinstance(data, np.memmap):
            _check_rows_shape(data.shape, "X")
        self.data = data if isinstance(data, np.memmap) else activation_rows(data, "X")
        self.n_rows, self.n_features = int(data.shape[0]), int(np.prod(data.shape[1:]))
        if self.n_rows == 0:
            raise DataError("X has no rows")

    def _take(self, index: torch.Tensor) -> torch.Tensor:
        if isinstance(self.data, np.memmap):  # rows of a raw memory map, read in file order
            index = index.sort().values
            rows = activation_rows(self.data[index.numpy()].reshape(len(index), -1), "X")
        else:
            rows = self.data.index_select(0, index)
        return check_activations(rows, "X", index, self._in_order)

    def _in_order(self) -> Iterator[tuple[int, torch.Tensor]]:
        step = max(1, 2**22 // max(self.n_features, 1))  # 16 MiB of float32 at a time
        for first in range(0, self.n_rows, step):
            part = self.data[first : first + step]
            if isinstance(part, np.memmap):
                part = activation_rows(part.reshape(len(part), -1), "X")
            yield first, part

    def epoch(
        self, generator: torch.Generator, batch_size: int, skip: int
    ) -> Iterator[torch.Tensor]:
        """The epoch's batches after the first ``skip``, in an order drawn from ``generator``."""
        order = torch.randperm(self.n_rows, generator=generator)
        for start in range(skip * batch_size, self.n_rows, batch_size):
            yield self._take(order[start : start + batch_size])

    def first_rows(self, generator: torch.Generator, n_rows: int) -> torch.Tensor:
        """The first ``n_rows`` of the epoch ``generator`` would draw (left unchanged)."""
        clone = torch.Generator().set_state(generator.get_state())
        return self._take(torch.randperm(self.n_rows, generator=clone)[:n_rows])


class BlockBatches:
    """A streamed source's rows (:class:`~aekit.data.stream.BlockRows`), shuffled by block.

    Parameters
    ----------
    rows : BlockRows
        A ``.npy``, parquet, ``.safetensors`` or shard-folder source.

    Attributes
    ----------
    labels : list of str or None
        The names of a parquet source's feature columns (None for unnamed rows).
    """

    def __init__(self, rows: BlockRows) -> None:
        self.rows = rows
        names = getattr(rows, "columns", None)
        self.labels = None if names is None else [str(name) for name in names]
        self.n_rows, self.n_features = len(rows), int(rows.n_features)
        if self.n_rows == 0:
            raise DataError(f"{rows.path} has no rows")

    def _order(self, generator: torch.Generator) -> torch.Tensor:
        return self.rows.shuffle(torch.arange(self.n_rows), generator)

    def _take(self, index: torch.Tensor) -> torch.Tensor:
        rows = self.rows.take(index)
        return check_activations(rows, str(self.rows.path), index, self.rows.chunks)

    def epoch(
        self, generator: torch.Generator, batch_size: int, skip: int
    ) -> Iterator[torch.Tensor]:
        """The epoch's batches after the first ``skip``, in a block-shuffled order."""
        order = self._order(generator)
        for start in range(skip * batch_size, self.n_rows, batch_size):
            yield self._take(order[start : start + batch_size])

    def first_rows(self, generator: torch.Generator, n_rows: int) -> torch.Tensor:
        """The first ``n_rows`` of the epoch ``generator`` would draw (left unchanged)."""
        clone = torch.Generator().set_state(generator.get_state())
        return self._take(self._order(clone)[:n_rows])


class IterableBatches:
    """Rows of an iterable of 2-D arrays, re-cut into batches, in the order given.

    Parameters
    ----------
    data : iterable of array-like, or a callable returning one
        Each item holds some rows (shape ``(n, n_features)``).

    Attributes
    ----------
    labels : list of str or int, or None
        The first item's column labels when it is a DataFrame: every later DataFrame is put
        in their order (other labels refused, :func:`~aekit.data.names.in_named_order`).
    """

    n_rows: int | None = None
    labels: list[Any] | None = None

    def __init__(self, data: Iterable[Any] | Callable[[], Iterable[Any]]) -> None:
        self.data = data
        self._pending: list[torch.Tensor] = []  # rows read ahead from a one-shot iterator
        self._iterator: Iterator[Any] | None = None
        first = self._first_item()
        self.n_features = int(first.shape[1])

    @property
    def one_shot(self) -> bool:
        """True when the iterable cannot be iterated again (an iterator)."""
        return not callable(self.data) and iter(self.data) is self.data  # type: ignore[arg-type]

    def _fresh(self) -> Iterator[Any]:
        source = self.data() if callable(self.data) else self.data
        return iter(source)

    def _items(self) -> Iterator[torch.Tensor]:
        if self.one_shot:
            while self._pending:
                yield self._pending.pop(0)
            self._iterator = self._iterator or self._fresh()
            items = self._iterator
        else:
            items = self._fresh()
        for item in items:
            check_unique_names(item)
            if not hasattr(self, "n_features"):  # the first item: its labels, if a frame's
                self.labels = column_labels(item)
            item = in_named_order(
                item,
                self.labels,
                "this SparseAutoencoder",
                what="a batch of the iterable's columns",
            )
            rows = check_activations(
                activation_rows(item, "a batch of the iterable"), "a batch of the iterable"
            )
            expected = getattr(self, "n_features", rows.shape[1])
            if rows.shape[1] != expected:
                raise DataError(
                    f"a batch of the iterable has {rows.shape[1]} features, the first had "
                    f"{expected}"
                )
            yield rows

    def _first_item(self) -> torch.Tensor:
        items = self._items()
        first = next(items, None)
        if first is None:
            raise DataError("the iterable of activations yields no rows")
        if self.one_shot:
            self._pending.insert(0, first)
        return first

    def epoch(
        self, generator: torch.Generator, batch_size: int, skip: int
    ) -> Iterator[torch.Tensor]:
        """Batches of ``batch_size`` rows (the last may be short), skipping ``skip`` batches."""
        to_skip = 0 if self.one_shot else skip * batch_size
        held: list[torch.Tensor] = []
        count = 0
        for item in self._items():
            if to_skip:
                dropped = min(to_skip, len(item))
                item, to_skip = item[dropped:], to_skip - dropped
            held.append(item)
            count += len(item)
            while count >= batch_size:
                rows = torch.cat(held)
                yield rows[:batch_size]
                held, count = [rows[batch_size:]], count - batch_size
        if count:
            yield torch.cat(held)

    def first_rows(self, generator: torch.Generator, n_rows: int) -> torch.Tensor:
        """The first ``n_rows`` rows (read ahead and kept for training from a one-shot iterator)."""
        taken: list[torch.Tensor] = []
        count = 0
        items = self._items()
        for item in items:
            taken.append(item)
            count += len(item)
            if count >= n_rows:
                break
        if self.one_shot:
            self._pending = taken + self._pending
        return torch.cat(taken)[:n_rows]


Source = ArrayBatches | BlockBatches | IterableBatches


def activation_source(data: Any) -> Source:
    """The batch source for ``data`` (see the module docstring for what is accepted).

    Raises
    ------
    DataError
        A path that is no streamed format, an empty source, rows that are not 2-D numbers.
    """
    if isinstance(data, (ArrayBatches, BlockBatches, IterableBatches)):
        return data
    if isinstance(data, BlockRows):
        return BlockBatches(data)
    if isinstance(data, (str, os.PathLike)):
        if is_safetensors_dataset(data):
            return BlockBatches(SafetensorsRows(data))
        rows = open_rows(data)
        if rows is None:
            raise DataError(
                f"{data} is not a streamed format (a .npy or parquet file, or a folder or glob "
                "of .npy, parquet or .safetensors shards)"
            )
        _check_rows_shape(getattr(rows, "shape", (rows.n_rows, rows.n_features)), str(data))
        return BlockBatches(rows)
    if isinstance(data, np.memmap) and isinstance(data.filename, (str, os.PathLike)):
        path = Path(data.filename)
        if path.suffix == ".npy" and data.ndim == 2:
            rows = NpyRows(path)
            if (rows.n_rows, rows.n_features) == data.shape:
                return BlockBatches(rows)
    if isinstance(data, (np.ndarray, torch.Tensor)) or hasattr(data, "__array__"):
        return ArrayBatches(data)
    if isinstance(data, (list, tuple)) and data and np.ndim(data[0]) < 2:
        return ArrayBatches(np.asarray(data))  # a list of rows, not of batches
    if callable(data) or isinstance(data, Iterable):
        return IterableBatches(data)
    raise DataError(
        f"cannot train on a {type(data).__name__}: expected rows, a path or an iterable"
    )


def _check_rows_shape(shape: tuple[int, ...], what: str) -> None:
    """Refuse an array that is not 2-D rows.

    A cache of (batch, seq, d_model) activations would otherwise train as fewer, wider rows.
    """
    if len(shape) != 2:
        raise DataError(
            f"{what} has shape {tuple(shape)}: an SAE trains on rows of shape (n_rows, "
            f"d_model); reshape it to (-1, {shape[-1]}) for rows of {shape[-1]} features"
        )
