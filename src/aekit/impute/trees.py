"""The imputer's tree candidate: one round of extra-trees regressions on the blend's fill.

:class:`TreeFill` holds, for every column, :data:`TREES` extremely randomized regression
trees (scikit-learn's ``ExtraTreesRegressor``) that predict the column from all the others,
trained on the rows that observe it, the other columns' holes filled by the imputer's blend
of autoencoders, chain and neighbours (:mod:`aekit.impute.blend`). A hole's tree fill is the
mean of its column's trees on the row so filled; :class:`~aekit.impute.AutoencoderImputer`
weighs it against that blend on the held-out cells, as it weighs the blend's own parts.

Why it is there: on small clustered tables a column is a step function of the others that
neither a smooth reconstruction nor a linear chain draws, and an iterative imputer with
extra-trees regressors (MissForest's idea) beat the blend by more than 10 % in 15 cells of
``benchmarks/impute.py`` (glass, Stamps, vowels, wine, penguins). One round started from the
blend's fill, not ten rounds from the column means, costs one forest a column.

The trees are kept as plain arrays (:meth:`TreeFill.arrays`: every tree's nodes one after
another; nothing is pickled) and :func:`tree_predict` walks them with tensor operations ONNX
has (Gather, GatherElements, LessOrEqual, Where, MatMul): the one code for ``transform``
(float64 rows) and :class:`~aekit.impute.graph.FillGraph` (float32). A split sends a row left
where its value, as a float32, is at most the threshold; thresholds are stored as the
largest float32 not above scikit-learn's float64 one, so a row takes the path scikit-learn's
own ``predict`` gives it (which compares float32 values too).

The columns' forests grow in threads (:func:`fit_workers`): the same trees in any number.

Size: a tree of ``n`` rows and leaves of one row has about ``2 n`` nodes; leaves are made
large enough (:func:`leaf_rows`) that the candidate stays within :data:`NODE_BUDGET` nodes
(36 bytes a node: about 36 MB as saved arrays, and as the ONNX graph's constants).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import ModelFileError
from ..training.cpus import usable_cpus

__all__ = ["ARRAYS", "NODE_BUDGET", "TREES", "TreeFill", "leaf_rows", "tree_predict"]

TREES = 30  # trees a column (50: within 0.004 RMSE on 10 grid cells, 1.7 x the time)
MAX_FEATURES = 1.0  # share of the other columns a split draws from (0.5: worse in 8 of 12 cells)
NODE_BUDGET = 1_000_000  # nodes over every column's trees (leaf_rows keeps within it)
CHUNK_CELLS = 4_000_000  # rows x trees walked at once in TreeFill.fill
_DTYPES = {  # each saved array's dtype
    "roots": np.int64, "column": np.int64, "feature": np.int64, "threshold": np.float32,
    "left": np.int64, "right": np.int64, "value": np.float64,
}  # fmt: skip
ARRAYS = tuple(_DTYPES)  # the node arrays' names
_TORCH = {np.int64: torch.int64, np.float32: torch.float32, np.float64: torch.float64}
_NODE = ("feature", "threshold", "left", "right", "value")  # one entry a node
MAX_DEPTH = 10_000  # the deepest tree a file may hold


def leaf_rows(n_rows: int, n_columns: int) -> int:
    """The fewest rows a leaf holds so that every column's trees stay within the budget.

    A tree grown to leaves of ``m`` rows on ``n`` rows has at most ``2 n / m`` nodes;
    ``n_columns`` columns of :data:`TREES` trees have at most ``2 n TREES n_columns / m``.
    """
    return max(1, -(-2 * n_rows * TREES * n_columns // NODE_BUDGET))


def tree_predict(
    rows: torch.Tensor, arrays: dict[str, torch.Tensor], depth: int, n_features: int
) -> torch.Tensor:
    """Each column's mean over its trees on complete ``rows``; NaN where it has none.

    Parameters
    ----------
    rows : Tensor of shape (n_rows, n_features)
        Rows with every cell filled.
    arrays : dict of Tensor
        :meth:`TreeFill.arrays` as tensors (``threshold`` float32, indices int64).
    depth : int
        The deepest tree's depth (the walk's steps; a leaf points to itself).
    n_features : int

    Returns
    -------
    Tensor of shape (n_rows, n_features)
    """
    node = _walk(rows.to(torch.float32), arrays["roots"], arrays, depth)
    leaf = _at(arrays["value"], node).to(rows.dtype)
    share = torch.nn.functional.one_hot(arrays["column"], n_features).to(rows.dtype)
    count = share.sum(dim=0)
    nan = torch.full((), float("nan"), dtype=rows.dtype)
    return torch.where(count > 0, (leaf @ share) / count.clamp_min(1), nan)


def _walk(
    values: torch.Tensor,
    roots: torch.Tensor,
    arrays: dict[str, torch.Tensor],
    depth: int,
    *,
    early: bool = False,
) -> torch.Tensor:
    """The leaf each row of float32 ``values`` reaches in each tree of ``roots``: (rows, trees).

    ``early``: stop once every walk is at a leaf (a check every few steps; not in a traced
    graph, which walks ``depth`` steps).
    """
    feature, threshold = arrays["feature"], arrays["threshold"]
    left, right = arrays["left"], arrays["right"]
    node = roots.expand(values.shape[0], -1)
    for step in range(depth):
        seen = torch.gather(values, 1, _at(feature, node))
        node = torch.where(seen <= _at(threshold, node), _at(left, node), _at(right, node))
        if early and step % 4 == 3 and bool((_at(left, node) == node).all()):
            break
    return node


def _at(array: torch.Tensor, node: torch.Tensor) -> torch.Tensor:
    """``array[node]`` for a 2-D ``node``, as one flat gather (several times faster)."""
    return array.index_select(0, node.reshape(-1)).reshape(node.shape)


@dataclass
class TreeFill:
    """Every column's extra trees as node arrays, the nodes of all trees one after another.

    Attributes
    ----------
    roots : ndarray of int64 of shape (n_trees,)
        Each tree's first node.
    column : ndarray of int64 of shape (n_trees,)
        The column each tree predicts.
    feature : ndarray of int64 of shape (n_nodes,)
        The column a split compares (0 at a leaf).
    threshold : ndarray of float32 of shape (n_nodes,)
        Left where the value is at most this (a leaf: +inf).
    left, right : ndarray of int64 of shape (n_nodes,)
        The children (a leaf: itself).
    value : ndarray of float64 of shape (n_nodes,)
        The prediction at a leaf.
    depth : int
        The deepest tree's depth.
    """

    roots: np.ndarray
    column: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    depth: int

    @classmethod
    def fit(cls, start: np.ndarray, rows: np.ndarray, seed: int | None) -> TreeFill | None:
        """Trees of every column with two observed values, on ``start``'s other columns.

        None where no column has trees (one column; or none with two values).

        Parameters
        ----------
        start : ndarray of shape (n_samples, n_features)
            ``rows`` with every hole filled (the blend's fill).
        rows : ndarray of shape (n_samples, n_features)
            The observed values (NaN holes): each column's trees learn them.
        seed : int or None
            The forests' ``random_state``.
        """
        d = rows.shape[1]
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ARRAYS}
        depth, offset = 0, 0
        columns = [j for j in range(d) if d > 1 and np.count_nonzero(~np.isnan(rows[:, j])) > 1]
        for j, forest in zip(columns, _grow(start, rows, columns, seed), strict=True):
            other = np.r_[0:j, j + 1 : d]
            for tree in forest.estimators_:
                t = tree.tree_
                here = np.arange(t.node_count) + offset
                split = t.children_left >= 0
                parts["roots"].append(np.array([offset]))
                parts["column"].append(np.array([j]))
                parts["feature"].append(np.where(split, other[np.maximum(t.feature, 0)], 0))
                parts["threshold"].append(np.where(split, _float32_below(t.threshold), np.inf))
                parts["left"].append(np.where(split, t.children_left + offset, here))
                parts["right"].append(np.where(split, t.children_right + offset, here))
                parts["value"].append(t.value.reshape(t.node_count))
                depth, offset = max(depth, int(t.max_depth)), offset + t.node_count
        if not parts["roots"]:
            return None
        joined = {k: np.concatenate(v).astype(_DTYPES[k]) for k, v in parts.items()}
        return cls.from_arrays(joined, depth, d, "fitted trees")

    def fill(self, start: np.ndarray, holes: np.ndarray | None = None) -> np.ndarray:
        """Each column's tree fill of complete rows ``start``, float64.

        ``holes`` (bool, ``start``'s shape): the cells wanted (the trees walk only the rows
        with a hole in a column); None: every cell. NaN where not wanted or no trees.
        """
        start = np.asarray(start, dtype=np.float64)
        wanted = np.ones(start.shape, bool) if holes is None else np.asarray(holes, bool)
        out = np.full_like(start, np.nan)
        arrays = self.tensors()
        values = torch.from_numpy(start).to(torch.float32)
        with torch.no_grad():
            for j in np.unique(self.column):
                roots = arrays["roots"][torch.from_numpy(self.column == j)]
                rows = np.flatnonzero(wanted[:, j])
                step = max(1, CHUNK_CELLS // len(roots))
                for first in range(0, len(rows), step):
                    part = torch.from_numpy(rows[first : first + step])
                    node = _walk(values[part], roots, arrays, self.depth, early=True)
                    out[part.numpy(), j] = _at(arrays["value"], node).mean(dim=1).numpy()
        return out

    @classmethod
    def from_tensors(
        cls, tensors: dict[str, torch.Tensor], depth: Any, n_features: int, where: str
    ) -> TreeFill:
        """:meth:`from_arrays` of tensors read from a file: each of its saved dtype first."""
        arrays = {}
        for key, kind in _DTYPES.items():
            got = tensors.get(key)
            if not isinstance(got, torch.Tensor) or got.dtype != _TORCH[kind]:
                raise ModelFileError(f"{where}: trees: {key!r} must be a {np.dtype(kind)} array")
            arrays[key] = got.numpy()
        return cls.from_arrays(arrays, depth, n_features, where)

    def tensors(self) -> dict[str, torch.Tensor]:
        """The node arrays as tensors (:func:`tree_predict`'s ``arrays``)."""
        return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in self.arrays().items()}

    def arrays(self) -> dict[str, np.ndarray]:
        """The node arrays by name (what an imputer folder saves)."""
        return {k: getattr(self, k) for k in ARRAYS}

    @property
    def n_nodes(self) -> int:
        """How many nodes all the trees hold."""
        return len(self.value)

    @classmethod
    def from_arrays(
        cls, arrays: dict[str, Any], depth: Any, n_features: int, where: str
    ) -> TreeFill:
        """Rebuild from :meth:`arrays` (and ``depth``), checked: what any walk can trust.

        Each array is one-dimensional, of its saved dtype; every node index is in range, a
        tree's nodes point forward, a leaf (and only a leaf) points to itself from both
        sides, columns are below ``n_features``, values finite, thresholds not NaN, and
        ``depth`` is the deepest tree's depth, counted from the arrays (a walk of ``depth``
        steps ends at a leaf: fewer would return inner nodes' values, more cost time).

        Raises
        ------
        ModelFileError
            One line naming the first array that is missing, of another shape or dtype, or
            out of range, or a ``depth`` the trees do not have.
        """
        prefix = f"{where}: trees"
        for key, kind in _DTYPES.items():
            got = arrays.get(key)
            if not isinstance(got, np.ndarray) or got.ndim != 1 or got.dtype != kind:
                raise ModelFileError(f"{prefix}: {key!r} must be a 1-D {np.dtype(kind)} array")
        if isinstance(depth, bool) or not isinstance(depth, int) or not 0 <= depth <= MAX_DEPTH:
            raise ModelFileError(f"{prefix}: depth must be an int in [0, {MAX_DEPTH}]")
        roots, column, feature = arrays["roots"], arrays["column"], arrays["feature"]
        left, right, value = arrays["left"], arrays["right"], arrays["value"]
        n = len(value)
        if len(roots) != len(column) or any(len(arrays[k]) != n for k in _NODE):
            raise ModelFileError(f"{prefix}: arrays of unequal lengths")
        here = np.arange(n)
        ok = (
            all(((a >= 0) & (a < n)).all() for a in (roots, left, right))
            and ((column >= 0) & (column < n_features)).all()
            and ((feature >= 0) & (feature < n_features)).all()
            and (left >= here).all()
            and (right >= here).all()
            and ((left == here) == (right == here)).all()
            and np.isfinite(value).all()
            and not np.isnan(arrays["threshold"]).any()
        )
        if not ok:
            raise ModelFileError(f"{prefix}: a node index, column or value out of range")
        if _depth(roots, left, right) != depth:
            raise ModelFileError(f"{prefix}: depth {depth} is not the trees' depth")
        return cls(roots, column, feature, arrays["threshold"], left, right, value, depth)


def fit_workers(n_tasks: int) -> int:
    """Threads that grow the columns' forests: the CPUs usable here, at most torch's count.

    ``torch.set_num_threads`` is how a user limits aekit's threads (the members train at
    most at that count), and the forests follow it.
    """
    return max(1, min(n_tasks, usable_cpus(), torch.get_num_threads()))


def _grow(
    start: np.ndarray, rows: np.ndarray, columns: list[int], seed: int | None
) -> Iterator[Any]:
    """Each of ``columns``' fitted ``ExtraTreesRegressor`` (:meth:`TreeFill.fit`), in order.

    The forests grow in threads, a column each (:func:`fit_workers`; scikit-learn grows a
    tree without Python's lock), and each forest draws from its own ``random_state`` (``seed``;
    where None, a seed a column drawn in turn from NumPy's global state), so they are the
    same trees in any number of threads (synthetic rows, 30 % holes, on 2
    cores: 1,456 x 12 in 1.46 s in one thread, 0.97 s in two; 2,114 x 21 in 4.6 s and 2.8 s).
    They are yielded as they are taken (the executor lets go of a forest once yielded), so
    :meth:`TreeFill.fit` holds a few scikit-learn forests at a time, not every column's.
    """
    from sklearn.ensemble import ExtraTreesRegressor
    from sklearn.utils import check_random_state

    d, leaf = rows.shape[1], leaf_rows(*rows.shape)
    # seed None: each column's seed drawn here, in order, from NumPy's global state (which
    # the forests would otherwise draw from in whatever order the threads run)
    seeds = [seed] * len(columns)
    if seed is None:
        seeds = list(check_random_state(None).randint(2**31, size=len(columns)))

    def grow(at: int) -> Any:
        j = columns[at]
        seen = ~np.isnan(rows[:, j])
        forest = ExtraTreesRegressor(
            n_estimators=TREES,
            min_samples_leaf=leaf,
            max_features=MAX_FEATURES,
            random_state=int(seeds[at]),
            n_jobs=1,
        )
        return forest.fit(start[seen][:, np.r_[0:j, j + 1 : d]], rows[seen, j])

    workers = fit_workers(len(columns))
    if workers == 1:
        yield from map(grow, range(len(columns)))
        return
    with ThreadPoolExecutor(workers) as pool:
        yield from pool.map(grow, range(len(columns)))


def _depth(roots: np.ndarray, left: np.ndarray, right: np.ndarray) -> int:
    """Steps from the roots to the deepest leaf (level by level; -1 beyond :data:`MAX_DEPTH`)."""
    leaf = left == np.arange(len(left))
    level = np.unique(roots)
    for steps in range(MAX_DEPTH + 1):
        inner = level[~leaf[level]]
        if not len(inner):
            return steps
        level = np.unique(np.concatenate([left[inner], right[inner]]))
    return -1


def _float32_below(threshold: np.ndarray) -> np.ndarray:
    """The largest float32 at most each float64 ``threshold``: ``x <= t`` kept for float32 x."""
    rounded = threshold.astype(np.float32)
    above = rounded.astype(np.float64) > threshold
    rounded[above] = np.nextafter(rounded[above], np.float32(-np.inf))
    return rounded
