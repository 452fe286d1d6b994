"""The imputer's local candidate: each hole the mean of its nearest rows' values, as ONNX can.

:class:`NeighbourFill` fills a hole as scikit-learn's ``KNNImputer()`` does with its defaults:
among the rows seen in ``fit`` that observe the hole's column, the :data:`NEIGHBOURS` nearest
by the NaN-Euclidean distance (over the coordinates both rows observe, scaled up by the share
they observe) give the mean of their values; a row that shares no observed column with any of
them gets the column's observed mean. :func:`neighbour_fill` is that computation in tensor
operations ONNX has (MatMul, TopK, CumSum, Where), the one code for ``transform`` (float64)
and for :class:`~aekit.impute.graph.FillGraph` (float32).

Why it is there: at few holes a row's nearest complete neighbours are close and many, and a
local average beats both a global linear model and a smooth reconstruction on clustered tables
(pendigits, vowels, Stamps at 10 % missing: ``KNNImputer`` was the best peer on
``benchmarks/impute.py``). :class:`~aekit.impute.AutoencoderImputer` weighs it beside the
autoencoders and the linear chain on held-out cells (:mod:`aekit.impute.blend`), so it only
counts where it fills those cells better.

Cost: the distances of ``q`` rows to the ``n`` fit rows, ``q × n`` numbers per chunk of rows
(``transform`` works in chunks of :data:`CHUNK_ROWS`; an ONNX graph takes the batch it is
given whole); the fit rows are kept (the blend runs up to 100,000 entries).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import ModelFileError
from .chain import check_json_numbers

__all__ = ["CHUNK_ROWS", "NEIGHBOURS", "NeighbourFill", "neighbour_fill"]

NEIGHBOURS = 5  # KNNImputer's default
CHUNK_ROWS = 1024  # rows per distance block in ``NeighbourFill.fill``


def neighbour_fill(
    rows: torch.Tensor, donors: torch.Tensor, column_mean: torch.Tensor, shape: tuple[int, int]
) -> torch.Tensor:
    """Every cell of ``rows`` filled from the ``k`` nearest ``donors`` observing its column.

    Parameters
    ----------
    rows : Tensor of shape (n_rows, n_features)
        NaN where missing.
    donors : Tensor of shape (n_donors, n_features)
        The rows seen in ``fit``, NaN where missing.
    column_mean : Tensor of shape (n_features,)
        Each column's observed mean in ``fit`` (the fill where no donor shares a column).
    shape : tuple of int
        ``(n_donors, n_features)`` as Python ints (an ONNX trace keeps them constants).

    Returns
    -------
    Tensor of shape (n_rows, n_features)
        A fill for every cell (observed ones included; the caller keeps those).
    """
    seen, given = ~torch.isnan(rows), ~torch.isnan(donors)
    zero = torch.zeros((), dtype=rows.dtype)
    # centred first: |x|² + |y|² - 2x·y cancels in float32 where a column's mean is far
    # larger than its spread (an offset of 1,000 picked other donors than float64 did); on
    # a whole number, so that integer columns keep exact distances and ties (float32 and
    # float64 alike: the donors ONNX picks among equally near ones are transform's)
    centre = torch.round(torch.nan_to_num(column_mean.to(rows.dtype)))
    x, y = torch.where(seen, rows - centre, zero), torch.where(given, donors - centre, zero)
    s, g = seen.to(rows.dtype), given.to(rows.dtype)
    squared = (x * x) @ g.T + s @ (y * y).T - 2.0 * (x @ y.T)  # over shared columns only
    shared = s @ g.T
    width = float(shape[1])
    inf = torch.full((), float("inf"), dtype=rows.dtype)
    distance = torch.where(shared > 0, squared.clamp_min(0) * width / shared.clamp_min(1), inf)
    distance = torch.where(torch.isnan(distance), inf, distance)  # inf - inf in float32: none
    count = min(NEIGHBOURS, shape[0])
    columns = []
    for j in range(shape[1]):
        near = torch.where(given[:, j][None, :], distance, inf)
        total, found = _nearest_sum(near, y[:, j], count)
        mean = total / found.clamp_min(1) + centre[j]
        columns.append(torch.where(found > 0, mean, column_mean[j].to(rows.dtype)))
    return torch.stack(columns, dim=1)


def _nearest_sum(
    distance: torch.Tensor, values: torch.Tensor, count: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The sum of the nearest donors' ``values`` and how many there are (:func:`_nearest`).

    An exported graph takes the mask of :func:`_nearest` for every row; in Python ``topk``'s
    own pick is kept where it is the same set (no donor left out at the ``count``-th
    distance), and only the other rows take the mask: the same donors, fewer passes.
    """
    if torch.jit.is_tracing():
        chosen = _nearest(distance, count).to(values.dtype)
        return chosen @ values, chosen.sum(dim=1)
    top, index = torch.topk(distance, count, dim=1, largest=False)
    valid = torch.isfinite(top).to(values.dtype)
    total, found = (values[index] * valid).sum(dim=1), valid.sum(dim=1)
    kth = top[:, -1:]
    left_out = (distance == kth).sum(dim=1) > (top == kth).sum(dim=1)
    ambiguous = torch.nonzero(left_out & torch.isfinite(kth[:, 0]))[:, 0]
    if len(ambiguous):
        chosen = _nearest(distance[ambiguous], count).to(values.dtype)
        total[ambiguous], found[ambiguous] = chosen @ values, chosen.sum(dim=1)
    return total, found


def _nearest(distance: torch.Tensor, count: int) -> torch.Tensor:
    """Each row's ``count`` finite least distances, as a mask; ties go to the lower index.

    ``topk`` gives the ``count``-th least distance; every closer donor is taken and the rest
    from the donors at that distance, lowest index first. ``topk``'s own order among equal
    values differs between torch and ONNX runtimes (donors at equal distances are common in
    integer columns), and the mask does not depend on it: ``transform`` and the exported
    graph pick the same donors.
    """
    kth = torch.topk(distance, count, dim=1, largest=False).values[:, -1:]
    closer, tied = distance < kth, distance == kth
    room = count - closer.to(distance.dtype).sum(dim=1, keepdim=True)
    first = torch.cumsum(tied.to(distance.dtype), dim=1) <= room
    return (closer | (tied & first)) & torch.isfinite(distance)


@dataclass
class NeighbourFill:
    """The fit rows and column means :func:`neighbour_fill` needs, and ``fill`` in chunks.

    Attributes
    ----------
    donors : ndarray of shape (n_donors, n_features)
        The rows seen in ``fit`` (NaN where missing), float64.
    column_mean : ndarray of shape (n_features,)
        Each column's observed mean (0 for a column with no value).
    """

    donors: np.ndarray
    column_mean: np.ndarray

    @classmethod
    def from_rows(cls, rows: np.ndarray) -> NeighbourFill:
        """The candidate fitted on ``rows`` (NaN holes): the rows themselves and their means."""
        # a C-ordered copy: the means summed as a loaded folder's rows sum them (a sum's
        # rounding follows the memory order; a view of a frame gave means 1 ulp apart)
        donors = np.array(rows, dtype=np.float64, order="C")
        seen = ~np.isnan(donors)
        totals = np.where(seen, donors, 0.0).sum(axis=0)
        mean = np.where(seen.any(axis=0), totals / np.maximum(seen.sum(axis=0), 1), 0.0)
        return cls(donors, mean)

    def fill(self, rows: np.ndarray) -> np.ndarray:
        """Every cell of ``rows`` (NaN where missing) filled from its nearest donors, float64."""
        rows = np.asarray(rows, dtype=np.float64)
        donors, mean = torch.from_numpy(self.donors), torch.from_numpy(self.column_mean)
        out = np.empty_like(rows)
        with torch.no_grad():
            for start in range(0, len(rows), CHUNK_ROWS):
                part = torch.from_numpy(rows[start : start + CHUNK_ROWS])
                found = neighbour_fill(part, donors, mean, self.donors.shape)
                out[start : start + CHUNK_ROWS] = found.numpy()
        return out

    def to_json(self) -> list[list[float | None]]:
        """The donors as JSON rows (a hole as null); the means follow from them."""
        return [[None if np.isnan(v) else float(v) for v in row] for row in self.donors]

    @classmethod
    def from_json(cls, saved: Any, n_features: int, where: str) -> NeighbourFill:
        """Rebuild from :meth:`to_json`'s rows: at least one, each ``n_features`` numbers or null.

        Raises
        ------
        ModelFileError
            One line naming what is not a list of rows of finite numbers (or null).
        """
        name = f"{where}: 'neighbours' rows"
        if not isinstance(saved, list) or not saved:
            raise ModelFileError(f"{name} must be a non-empty list of rows")
        for row in saved:
            check_json_numbers(row, n_features, name, null=True)
        return cls.from_rows(np.array(saved, dtype=np.float64).reshape(len(saved), n_features))
