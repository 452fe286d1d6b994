"""A fitted imputer's ``transform`` as one torch module: what ONNX export writes out.

:class:`FillGraph` maps raw rows with NaN holes to the filled rows that
:meth:`AutoencoderImputer.transform <aekit.AutoencoderImputer.transform>` returns for numeric
rows: each member scales the rows, reconstructs them (holes as 0 plus their mask, as the
members were trained) and unscales; the members' mean reconstruction, clipped to each
column's observed range in ``fit`` (``bounds_``), blended with the linear chain's fill and
the nearest-neighbour fill (each clipped the same way) where the imputer chose them
(``blend_``, ``linear_``, ``neighbours_``: :mod:`aekit.impute.blend`; the chain's steps are
matrix products and Where, the neighbours' distances to the fit rows kept in the graph are
MatMul, TopK and CumSum), then with the extra trees grown on that fill (``trees_``; the
walk down the trees is Gather, GatherElements, LessOrEqual and Where), replaces the holes;
observed entries pass through unchanged; a column with no value in ``fit`` is 0 (or
dropped, as ``transform`` drops it); the missing-indicator columns follow with
``add_indicator=True``. It uses only tensor operations ONNX has (IsNaN, Where, Min/Max,
Gather, TopK), so the exported graph is the same computation.

An imputer fitted on a table with categorical columns is not a :class:`FillGraph`: its holes
become categories decoded from one-hot blocks, which the graph would not reproduce
(:func:`fill_graph` refuses it).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from .blend import mix_fills
from .markers import is_nan_marker
from .neighbours import neighbour_fill
from .trees import ARRAYS, tree_predict

__all__ = ["FillGraph", "fill_graph"]


class FillGraph(nn.Module):
    """Raw rows with NaN holes → the rows with their holes filled.

    Parameters
    ----------
    members : list of Hourglass
        The imputer's autoencoders (trained with ``missing=True``).
    bounds : ndarray of shape (2, n_features)
        Lowest and highest observed value of each column (NaN: unbounded).
    empty : ndarray of bool of shape (n_features,)
        Columns with no observed value in ``fit``: filled with 0.
    keep_empty : bool
        Keep those columns in the output (else dropped).
    flagged : ndarray of int or None
        Columns whose missing indicator is appended (``add_indicator=True``), or None.
    linear : LinearChain or None
        The imputer's linear chain (``linear_``), blended in with weight ``1 - blend``.
    blend : float
        The members' weight (``blend_``).
    neighbours : NeighbourFill or None
        The imputer's nearest-neighbour fill (``neighbours_``), blended in with weight
        ``neighbour_weight``; the chain's weight is ``1 - blend - neighbour_weight``.
    neighbour_weight : float
    marker : float or None
        The imputer's numeric ``missing_values`` where it is not NaN: cells equal to it are
        holes (a NaN cell is one too: the graph cannot refuse it as ``transform`` does). None:
        NaN alone.
    trees : TreeFill or None
        The imputer's extra trees (``trees_``), grown on the rest of the fill and blended in
        with weight ``tree_weight`` against it.
    tree_weight : float
    """

    def __init__(
        self,
        members: list[nn.Module],
        bounds: np.ndarray,
        empty: np.ndarray,
        keep_empty: bool,
        flagged: np.ndarray | None,
        linear: Any = None,
        blend: float = 1.0,
        neighbours: Any = None,
        neighbour_weight: float = 0.0,
        marker: float | None = None,
        trees: Any = None,
        tree_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.marker = marker
        self.tree_weight, self.has_trees = float(tree_weight), trees is not None
        if trees is not None:  # the node arrays: constants of the graph
            self.tree_depth = int(trees.depth)
            for name, value in trees.tensors().items():
                self.register_buffer(f"tree_{name}", value.clone())
        self.members = nn.ModuleList(members)
        self.blend, self.steps = float(blend), [] if linear is None else linear.feature.tolist()
        self.neighbour_weight = float(neighbour_weight)
        self.has_neighbours = neighbours is not None
        if neighbours is not None:  # the fit rows and column means: constants of the graph
            self.register_buffer("donors", torch.as_tensor(neighbours.donors, dtype=torch.float32))
            mean = torch.as_tensor(neighbours.column_mean, dtype=torch.float32)
            self.register_buffer("donor_mean", mean)
            self.donor_shape = tuple(int(n) for n in neighbours.donors.shape)
        self.has_chain = linear is not None  # a chain of no steps (one column) still blends
        if linear is not None:  # the chain's arrays as buffers: constants of the graph
            # centred on whole numbers near the start: products of numbers far from 0 cancel
            # in float32, so each step's intercept takes the centre's share (in float64)
            start, weights = np.asarray(linear.start, np.float64), np.asarray(linear.weights)
            centre = np.round(np.nan_to_num(start))
            columns = np.asarray(linear.feature, dtype=np.int64)
            shifted = np.asarray(linear.intercept) + weights @ centre - centre[columns]
            arrays = {"start": start - centre, "centre": centre, "weights": weights}
            for name, value in (*arrays.items(), ("intercept", shifted)):
                self.register_buffer(f"chain_{name}", torch.as_tensor(value, dtype=torch.float32))
        low = np.nan_to_num(bounds[0], nan=-np.inf)
        high = np.nan_to_num(bounds[1], nan=np.inf)
        self.register_buffer("low", torch.as_tensor(low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(high, dtype=torch.float32))
        self.register_buffer("empty", torch.as_tensor(np.asarray(empty, dtype=bool)))
        kept = np.arange(len(empty)) if keep_empty else np.flatnonzero(~np.asarray(empty))
        self.register_buffer("kept", torch.as_tensor(kept, dtype=torch.long))
        flags = np.zeros(0, dtype=np.int64) if flagged is None else np.asarray(flagged)
        self.register_buffer("flagged", torch.as_tensor(flags, dtype=torch.long))
        self.has_flags = len(flags) > 0  # a Python bool: the traced graph has no branch

    def guess(self, rows: torch.Tensor) -> torch.Tensor:
        """The fill of every cell: the members' mean reconstruction, clipped, blended.

        The mean is in the original units and clipped to ``bounds``; where the imputer has a
        linear chain, its fill (clipped too) is blended in with weight ``1 - blend``.
        """
        total = torch.zeros_like(rows)
        for member in self.members:
            total = total + member.unscale_output(member(member.scale_input(rows)).recon)
        guess = self.clip(total / len(self.members))

        def near() -> torch.Tensor:
            donors, mean = self.donors.to(rows.dtype), self.donor_mean.to(rows.dtype)
            return self.clip(neighbour_fill(rows, donors, mean, self.donor_shape))

        first = mix_fills(
            guess,
            self.blend,
            (lambda: self.clip(self.chain_fill(rows))) if self.has_chain else None,
            near if self.has_neighbours else None,
            self.neighbour_weight,
        )
        if not self.has_trees:
            return first
        return (1.0 - self.tree_weight) * first + self.tree_weight * self.grown(rows, first)

    def grown(self, rows: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
        """The trees' fill (clipped) of ``rows`` whose holes ``first`` fills (``blend.grown``)."""
        start = torch.where(torch.isnan(rows), first, rows)
        arrays = {k: getattr(self, f"tree_{k}") for k in ARRAYS}
        found = self.clip(tree_predict(start, arrays, self.tree_depth, rows.shape[1]))
        return torch.where(torch.isnan(found), first, found)

    def clip(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` within each column's observed range in ``fit`` (``bounds``)."""
        return torch.maximum(torch.minimum(values, self.high), self.low)

    def chain_fill(self, rows: torch.Tensor) -> torch.Tensor:
        """The linear chain's fill, as :meth:`aekit.impute.chain.LinearChain.fill` computes it."""
        holes, centre = torch.isnan(rows), self.chain_centre.to(rows.dtype)
        filled = torch.where(holes, self.chain_start.to(rows.dtype), rows - centre)  # centred
        weights, intercept = self.chain_weights.to(rows.dtype), self.chain_intercept.to(rows.dtype)
        for step, j in enumerate(self.steps):
            guess = filled @ weights[step] + intercept[step]
            column = torch.where(holes[:, j], guess, filled[:, j])
            filled = torch.cat([filled[:, :j], column[:, None], filled[:, j + 1 :]], dim=1)
        return filled + centre

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        """Raw rows (NaN, or the marker, where missing) → filled rows, then the indicator's."""
        if self.marker is not None:  # a Python float: the traced graph has no branch
            rows = torch.where(rows == self.marker, torch.full_like(rows, float("nan")), rows)
        holes = torch.isnan(rows)
        filled = torch.where(holes, self.guess(rows), rows)
        empty_holes = holes & self.empty  # a column empty in fit: 0 in its holes only
        filled = torch.where(empty_holes, torch.zeros((), dtype=rows.dtype), filled)
        out = torch.index_select(filled, 1, self.kept)
        if self.has_flags:
            flags = torch.index_select(holes, 1, self.flagged).to(rows.dtype)
            out = torch.cat([out, flags], dim=1)
        return out


def fill_graph(imputer: Any) -> FillGraph:
    """The :class:`FillGraph` of a fitted :class:`~aekit.AutoencoderImputer` (a CPU float copy).

    Raises
    ------
    ConfigError
        The imputer is not fitted, or fills a table with categorical columns.
    """
    if not hasattr(imputer, "estimators_"):
        raise ConfigError("to_onnx needs a fitted imputer: call fit first")
    if getattr(imputer.estimator_, "table_layout_", None) is not None:
        raise ConfigError(
            "to_onnx exports imputers of numeric rows; this one fills a table with categorical "
            "columns (its holes become categories decoded from one-hot blocks, which the ONNX "
            "file would not do): export an imputer fitted on the numeric columns alone"
        )
    import copy

    members = [copy.deepcopy(m.module_).to("cpu").float().eval() for m in imputer.estimators_]
    indicator = imputer.indicator_
    flagged = None if indicator is None else indicator.features_
    found = imputer._blend()
    marker = imputer.missing_values  # a text one marks a table's cells as they are read
    number = isinstance(marker, numbers.Real) and not is_nan_marker(marker)
    return FillGraph(
        members, imputer.bounds_, imputer._empty, imputer.keep_empty_features, flagged,
        found.linear, found.members, found.neighbours, found.neighbour_weight,
        float(marker) if number else None, found.trees, found.tree_weight,
    )  # fmt: skip
