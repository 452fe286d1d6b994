"""Sparse rows (``scipy.sparse``) without ever densifying the whole matrix.

:class:`CsrRows` is the row source of a CSR matrix: it keeps the matrix's three arrays
(``indptr``, ``indices``, ``data``: shared, not copied, where they are already of the right
dtype) and slices batches out of them as :class:`SparseBatch` objects, a CSR batch of torch
tensors (:func:`aekit.data.stats.csr_stats` takes their column statistics), and
:func:`dense_chunks` turns a sparse matrix into dense row blocks of bounded size for the
computations whose result is dense anyway.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

__all__ = [
    "DENSE_CHUNK_VALUES",
    "CsrRows",
    "SparseBatch",
    "as_dense",
    "chunk_rows_for",
    "is_sparse",
    "source_chunk_rows",
]

DENSE_CHUNK_VALUES = 2**22  # a dense block made from sparse rows holds at most this many values


def is_sparse(X: Any) -> bool:
    """Whether ``X`` is a ``scipy.sparse`` matrix or array (any format)."""
    return bool(sp.issparse(X))


def chunk_rows_for(n_features: int, rows: int, values: int = DENSE_CHUNK_VALUES) -> int:
    """At most ``rows`` rows, fewer so that a dense block of them holds at most ``values``."""
    return max(1, min(rows, values // max(n_features, 1)))


def source_chunk_rows(source: Any, rows: int, values: int = DENSE_CHUNK_VALUES) -> int:
    """Rows per evaluation chunk of a source: ``rows``, fewer for sparse rows (densified).

    A chunk of sparse rows holds at most ``values`` values once dense.
    """
    inner = getattr(source, "source", source)  # a RowSubset's rows
    return chunk_rows_for(source.n_features, rows, values) if isinstance(inner, CsrRows) else rows


class SparseBatch:
    """A batch of rows in CSR form, as torch tensors on one device.

    Parameters
    ----------
    crow : Tensor of shape (n_rows + 1,), int64
        Where each row's entries start in ``cols`` and ``values``.
    cols : Tensor of shape (nnz,), int64
        Column of each stored entry.
    values : Tensor of shape (nnz,), float32
        The stored values.
    n_features : int
        The width of the rows.
    """

    def __init__(
        self, crow: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, n_features: int
    ) -> None:
        self.crow, self.cols, self.values = crow, cols, values
        self.n_features = int(n_features)
        self._rows: torch.Tensor | None = None

    @classmethod
    def from_scipy(cls, X: Any) -> SparseBatch:
        """A batch holding the rows of a scipy CSR matrix (values as float32)."""
        X = sp.csr_array(X)
        return cls(
            torch.from_numpy(np.asarray(X.indptr, dtype=np.int64)),
            torch.from_numpy(np.asarray(X.indices, dtype=np.int64)),
            torch.from_numpy(np.asarray(X.data, dtype=np.float32)),
            X.shape[1],
        )

    def __len__(self) -> int:
        return int(self.crow.shape[0]) - 1

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_rows, n_features)``, as a dense batch's."""
        return (len(self), self.n_features)

    @property
    def device(self) -> torch.device:
        """Where the batch's tensors are."""
        return self.values.device

    @property
    def nnz(self) -> int:
        """Stored entries."""
        return int(self.values.shape[0])

    def rows(self) -> torch.Tensor:
        """The row of each stored entry (int64, computed once)."""
        if self._rows is None:
            counts = self.crow[1:] - self.crow[:-1]
            self._rows = torch.repeat_interleave(
                torch.arange(len(self), device=self.device), counts
            )
        return self._rows

    def with_values(self, values: torch.Tensor) -> SparseBatch:
        """The same pattern with other values (scaled, masked)."""
        batch = SparseBatch(self.crow, self.cols, values, self.n_features)
        batch._rows = self._rows
        return batch

    def to(self, device: torch.device, non_blocking: bool = False) -> SparseBatch:
        """The batch on ``device``."""
        if device == self.device:
            return self
        moved = (t.to(device, non_blocking=non_blocking) for t in (self.crow, self.cols))
        crow, cols = moved
        values = self.values.to(device, non_blocking=non_blocking)
        return SparseBatch(crow, cols, values, self.n_features)

    def pin_memory(self) -> SparseBatch:
        """The batch in pinned host memory (for an asynchronous copy to a GPU)."""
        return SparseBatch(
            self.crow.pin_memory(),
            self.cols.pin_memory(),
            self.values.pin_memory(),
            self.n_features,
        )

    def padded(self, n_rows: int) -> SparseBatch:
        """The batch with empty rows added up to ``n_rows`` rows."""
        extra = n_rows - len(self)
        if extra <= 0:
            return self
        crow = torch.cat([self.crow, self.crow[-1:].expand(extra)])
        return SparseBatch(crow, self.cols, self.values, self.n_features)

    def dense(self) -> torch.Tensor:
        """The rows as a dense float32 tensor (for one batch, never the whole matrix)."""
        out = torch.zeros(self.shape, dtype=self.values.dtype, device=self.device)
        return out.index_put_((self.rows(), self.cols), self.values, accumulate=True)

    def squared_norms(self) -> torch.Tensor:
        """Each row's sum of squared values, float64."""
        sums = torch.zeros(len(self), dtype=torch.float64, device=self.device)
        return sums.index_add_(0, self.rows(), self.values.double().square())


def as_dense(rows: torch.Tensor | SparseBatch) -> torch.Tensor:
    """Rows as a dense tensor: a :class:`SparseBatch` made dense (one batch), else as given."""
    return rows.dense() if isinstance(rows, SparseBatch) else rows


class CsrRows:
    """A CSR matrix as a row source: batches are sliced from its arrays, never densified.

    Parameters
    ----------
    X : scipy.sparse matrix or array
        Any format; converted to CSR with float32 values once (the arrays of a CSR float32
        matrix are shared, not copied). Duplicate entries are summed first.

    Attributes
    ----------
    n_features : int
    nbytes : int
        The bytes of the three arrays held.
    """

    def __init__(self, X: Any) -> None:
        X = sp.csr_array(X)
        if not X.has_canonical_format:
            X = X.copy()
            X.sum_duplicates()
        self.shape = X.shape
        self.n_features = int(X.shape[1])
        self.indptr = torch.from_numpy(np.asarray(X.indptr, dtype=np.int64))
        self.indices = torch.from_numpy(np.asarray(X.indices))
        self.data = torch.from_numpy(np.asarray(X.data, dtype=np.float32))
        self.nbytes = sum(t.numel() * t.element_size() for t in self._arrays())

    def _arrays(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.indptr, self.indices, self.data

    def __len__(self) -> int:
        return int(self.shape[0])

    @property
    def density(self) -> float:
        """Stored entries over all entries."""
        return int(self.data.shape[0]) / max(1, len(self) * self.n_features)

    def take(self, indices: torch.Tensor) -> SparseBatch:
        """The rows at ``indices`` as a :class:`SparseBatch` on the CPU."""
        indices = indices.to("cpu", torch.int64)
        starts = self.indptr[indices]
        counts = self.indptr[indices + 1] - starts
        crow = torch.zeros(len(indices) + 1, dtype=torch.int64)
        torch.cumsum(counts, 0, out=crow[1:])
        nnz = int(crow[-1])
        shift = torch.repeat_interleave(starts - crow[:-1], counts, output_size=nnz)
        where = torch.arange(nnz, dtype=torch.int64) + shift
        cols = self.indices[where].to(torch.int64)
        return SparseBatch(crow, cols, self.data[where], self.n_features)

    def scipy_rows(self, start: int, stop: int) -> sp.csr_array:
        """Rows ``start:stop`` as a scipy CSR array sharing this source's arrays."""
        lo, hi = int(self.indptr[start]), int(self.indptr[stop])
        indptr = (self.indptr[start : stop + 1] - lo).numpy()
        return sp.csr_array(
            (self.data[lo:hi].numpy(), self.indices[lo:hi].numpy(), indptr),
            shape=(stop - start, self.n_features),
        )


def dense_chunks(X: Any, chunk_rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(first row, dense float block)`` over a sparse matrix, blocks of bounded size."""
    X = sp.csr_array(X)
    step = chunk_rows_for(X.shape[1], chunk_rows)
    for start in range(0, X.shape[0], step):
        yield start, X[start : start + step].toarray()
