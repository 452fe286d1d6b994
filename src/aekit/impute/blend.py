"""The imputer's validated blend: autoencoders, chain and neighbours, weighed on held-out cells.

Where fits are cheap (numeric rows of up to :data:`~aekit.impute.defaults.ENSEMBLE_ENTRIES`
entries and :data:`BLEND_COLUMNS` columns, the default autoencoder),
:class:`~aekit.impute.AutoencoderImputer` hides a share of the *observed* cells
(:func:`held_out_cells`), fits its autoencoders, the linear chain (:mod:`aekit.impute.chain`)
and the nearest-neighbour fill (:mod:`aekit.impute.neighbours`) on the rest, and weighs the
three fills, each clipped to the columns' observed range as ``transform`` clips it, by their
error on the hidden cells (:func:`blend_weights`). The autoencoders are then kept as fitted
(they never see the hidden cells: no second fit of them); the chain and the neighbours,
where they get a weight, are refitted on every observed cell (a second chain fit; the
neighbours are the rows themselves). The terms:

- **Held-out share** (:data:`HELD_OUT_SHARE`, 10 % of the observed cells): enough cells to
  rank the weights (a 200 × 10 table at 30 % missing gives ~140), few enough that the models
  lose little to train on.
- **Masked like the data's own holes**: a held-out row takes the hole pattern of another
  row drawn at random, so the hidden cells follow the data's missingness (columns that are
  often missing together are hidden together), not a uniform mask the data never shows.
  A column or row keeps at least one observed cell.
- **Columns** (:data:`BLEND_COLUMNS`, 64): the chain regresses every column on all the
  others for up to 10 rounds, so its fit, its saved steps (``imputer.json``) and its ONNX
  graph grow with the square of the columns (measured: 60 rows x 200 columns took 10 s and
  wrote 8.9 MB of JSON; 1,000 columns would be ~200 MB and a 10,000-step graph, fitted twice).
  Up to 64 columns (digits' 8 x 8 images) it is at most 640 steps and about 1 MB (60 x 64
  at 20 % missing: 512 steps, 0.75 MB, fitted in 6.7 s on a loaded machine, OMP at 1).
- **Weights** (:data:`BLEND_WEIGHTS`): the autoencoders', the chain's and the neighbours'
  weights in quarters summing to one (15 triples). The neighbours joined the autoencoders and
  the chain on the grid's *decide* tables (``benchmarks/impute.py``; seed 0; 10 and 30 %
  holes; MCAR, MAR and MNAR): with the least-error triple chosen, the mean RMSE ratio to the
  best peer went from 0.973 to 0.966 over 54 cells (11 better, 7 worse; at 10 % holes
  0.989 → 0.976, at 30 % unchanged).
- **The prior** (:data:`PRIOR`, ¼ autoencoders, ½ chain, ¼ neighbours) is kept unless a
  triple's squared error on the hidden cells is lower by :data:`BLEND_Z` (2) standard errors
  of the paired difference; then the least-error triple of those wins. A few hundred hidden
  cells rank 15 triples poorly: on glass at 30 % MCAR (214 rows, ~100 hidden cells) the
  least-error triple was the autoencoders alone (held-out RMSE 0.740 against the chain's
  0.974) where on the true holes they reached 0.829 and the chain 0.601. Measured as each
  cell's RMSE over the best of the 15 triples on its true holes (seed 0, 10 and 30 %, the
  three mechanisms; one-off scripts, not a ``benchmarks/`` command): on the decide tables
  (wine, glass, Pima, yeast, Waveform, Cardiotocography, thyroid, Wilt; 48 cells) the
  least-error rule averaged 1.032, the prior alone 1.029 (the best fixed triple) and the rule
  1.023; confirmed on the confirm tables (diabetes, breast cancer, penguins, Stamps, breastw,
  letter, vowels, WDBC, WPBC; 54 cells): 1.021 against 1.019, the worst cell 1.187 against
  1.091. Wider data keeps the autoencoders where they are shown better (letter: alone in
  every cell).
- **Trees on the blend** (:mod:`aekit.impute.trees`): extra trees grown on the chosen
  blend's fill of the rows are weighed against that fill on the same hidden cells, in
  quarters (:data:`TREE_WEIGHTS`), :data:`TREE_PRIOR` (half and half) kept unless another
  share is better by :data:`BLEND_Z` standard errors; where they get a share they are grown
  again on every observed cell, from the refitted blend's fill. Chosen on the grid's decide
  tables (seed 0, 10/30/50 %, three mechanisms: wine, glass, Pima, yeast, thyroid and part
  of Wilt, 47 cells; one-off scripts): the mean RMSE ratio to the best peer (extra trees
  included) went from 1.006 without trees to 0.984 with this rule (0.998 with no trees
  unless shown better, 0.983 with half and half always), the cells above 1.10 from 5 to 1.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .chain import LinearChain, fit_chain
from .defaults import ENSEMBLE_ENTRIES
from .neighbours import NeighbourFill
from .trees import TreeFill

__all__ = [
    "BLEND_COLUMNS",
    "BLEND_WEIGHTS",
    "BLEND_Z",
    "HELD_OUT_SHARE",
    "PRIOR",
    "TREE_PRIOR",
    "TREE_WEIGHTS",
    "Blend",
    "blend_runs",
    "blend_weights",
    "held_out_cells",
    "held_out_errors",
    "mix_fills",
    "weigh_candidates",
]

BLEND_COLUMNS = 64  # wider tables skip the blend: the chain grows as columns squared
HELD_OUT_SHARE = 0.1  # share of the observed cells hidden to weigh the candidates
# (autoencoders, chain, neighbours) in quarters; the first of equal errors wins
BLEND_WEIGHTS = tuple(
    (a / 4, c / 4, (4 - a - c) / 4) for a in range(4, -1, -1) for c in range(4 - a, -1, -1)
)
PRIOR = (0.25, 0.5, 0.25)  # the blend kept unless the held-out cells show a better one
BLEND_Z = 2.0  # ... by this many standard errors of the paired difference
TREE_WEIGHTS = tuple((1 - t / 4, t / 4) for t in range(5))  # (the blend, its trees)
TREE_PRIOR = (0.5, 0.5)  # the trees' share kept unless the held-out cells show a better one


@dataclass
class Blend:
    """What the imputer blends with its autoencoders' fill, and the weights.

    Attributes
    ----------
    members : float
        The autoencoders' weight (1.0: their fill alone).
    linear : LinearChain or None
        The linear chain, with weight ``1 - members - neighbour_weight``.
    neighbours : NeighbourFill or None
        The nearest-neighbour fill, with weight ``neighbour_weight``.
    neighbour_weight : float
    trees : TreeFill or None
        The extra trees grown on that blend's fill (:mod:`aekit.impute.trees`), with weight
        ``tree_weight`` against it.
    tree_weight : float
    """

    members: float = 1.0
    linear: LinearChain | None = None
    neighbours: NeighbourFill | None = None
    neighbour_weight: float = 0.0
    trees: TreeFill | None = None
    tree_weight: float = 0.0

    def fill(
        self, rows: np.ndarray, members_fill: np.ndarray, clip: Callable[[np.ndarray], np.ndarray]
    ) -> np.ndarray:
        """The blended fill of ``rows`` (NaN holes) given the members' (clipped) fill."""
        chain = self.linear
        near = self.neighbours
        first = mix_fills(
            members_fill,
            self.members,
            None if chain is None else lambda: clip(chain.fill(np.asarray(rows, np.float64))),
            None if near is None else lambda: clip(near.fill(rows)),
            self.neighbour_weight,
        )
        if self.trees is None:
            return first
        return (1.0 - self.tree_weight) * first + self.tree_weight * grown(
            self.trees, rows, first, clip
        )


def grown(
    trees: TreeFill,
    rows: np.ndarray,
    first: np.ndarray,
    clip: Callable[[np.ndarray], np.ndarray],
    wanted: np.ndarray | None = None,
) -> np.ndarray:
    """The trees' fill (clipped) of the holes of ``rows`` (NaN), which ``first`` fills.

    ``wanted``: the cells the trees fill (None: every hole). Elsewhere, and in a column
    without trees (fewer than two values in ``fit``), ``first``.
    """
    holes = np.isnan(rows)
    found = clip(trees.fill(np.where(holes, first, rows), holes if wanted is None else wanted))
    return np.where(np.isnan(found), first, found)


def mix_fills(
    members_fill: Any,
    members: float,
    chain_fill: Callable[[], Any] | None,
    neighbours_fill: Callable[[], Any] | None,
    neighbour_weight: float,
) -> Any:
    """The blend of the members' fill with the chain's and the neighbours' (each clipped).

    ``members`` weighs the members' fill, ``neighbour_weight`` the neighbours', and the chain
    takes the rest; ``chain_fill`` and ``neighbours_fill`` compute their fills (None: not
    blended). Arithmetic only, so NumPy arrays (``transform``) and torch tensors (the ONNX
    graph, :class:`~aekit.impute.graph.FillGraph`) blend by the same code.
    """
    if chain_fill is None and neighbours_fill is None:
        return members_fill
    out = members * members_fill
    if chain_fill is not None:
        out = out + (1.0 - members - neighbour_weight) * chain_fill()
    if neighbours_fill is not None:
        out = out + neighbour_weight * neighbours_fill()
    return out


def blend_runs(rows: np.ndarray) -> bool:
    """Whether the default imputer weighs the chain on numeric ``rows`` (NaN holes).

    Up to :data:`~aekit.impute.defaults.ENSEMBLE_ENTRIES` entries and :data:`BLEND_COLUMNS`
    columns (the chain's size grows with the columns squared).
    """
    return rows.size <= ENSEMBLE_ENTRIES and rows.shape[1] <= BLEND_COLUMNS


def weigh_candidates(
    rows: np.ndarray,
    hidden: np.ndarray,
    members_fill: np.ndarray,
    clip: Callable[[np.ndarray], np.ndarray],
    seed: int | None,
    members_fill_all: np.ndarray | None = None,
) -> tuple[Blend, list[float]]:
    """The blend chosen on the held-out cells, and each weight triple's held-out RMSE.

    The weight triple of autoencoders, chain and neighbours is chosen first
    (:func:`blend_weights`); then, where ``members_fill_all`` is given, extra trees grown on
    that blend's fill of the rows (:mod:`aekit.impute.trees`) are weighed against it on the
    same cells (:data:`TREE_WEIGHTS`, :data:`TREE_PRIOR`) and, where they get a weight,
    grown again on every observed cell.

    Parameters
    ----------
    rows : ndarray of shape (n_samples, n_features)
        Every observed cell (NaN holes).
    hidden : ndarray of bool
        The held-out cells (:func:`held_out_cells`).
    members_fill : ndarray of shape (n_samples, n_features)
        The members' fill (clipped) of ``rows`` with the ``hidden`` cells hidden.
    clip : callable
        Clips a fill to the columns' observed range, as ``transform`` does: the chain and the
        neighbours fitted on the rest are weighed on the fill ``transform`` would return.
    seed : int or None
        The chain's and the trees' ``random_state``.
    members_fill_all : ndarray of shape (n_samples, n_features) or None
        The members' fill (clipped) of ``rows`` themselves; None: no trees.
    """
    train = np.where(hidden, np.nan, rows)
    chain, near = (
        clip(fit_chain(train, seed).fill(train)),
        clip(NeighbourFill.from_rows(train).fill(train)),
    )
    errors = _cell_errors(rows, hidden, members_fill, chain, near)
    members, linear, neighbours = _choose(errors)
    found = Blend(
        members,
        fit_chain(rows, seed) if linear > 0 else None,  # refitted on every observed cell
        NeighbourFill.from_rows(rows) if neighbours > 0 else None,
        neighbours,
    )
    if members_fill_all is not None:
        first = members * members_fill + linear * chain + neighbours * near
        trees = TreeFill.fit(np.where(np.isnan(train), first, train), train, seed)
        if trees is not None:  # columns with two observed values
            tried = _cell_errors(rows, hidden, first, grown(trees, train, first, clip, hidden))
            weight = _choose(tried, TREE_WEIGHTS, TREE_PRIOR)[1]
            if weight > 0:  # grown again on every observed cell
                whole = found.fill(rows, members_fill_all, clip)
                found.trees = TreeFill.fit(np.where(np.isnan(rows), whole, rows), rows, seed)
                found.tree_weight = weight if found.trees is not None else 0.0
    return found, _rmse(errors)


def held_out_cells(rows: np.ndarray, seed: int) -> np.ndarray:
    """Observed cells of ``rows`` to hide: about :data:`HELD_OUT_SHARE` of them.

    Rows are picked at random; each hides the cells that a randomly drawn row is missing
    (where it has them). Rows of complete data (no holes at all) hide cells at random.

    Returns
    -------
    ndarray of bool, the shape of ``rows``
    """
    rng = np.random.default_rng(seed)
    observed = ~np.isnan(rows)
    missing_share = 1.0 - observed.mean() if rows.size else 0.0
    if missing_share > 0:
        donors = rng.integers(0, len(rows), len(rows))
        picked = rng.random(len(rows)) < min(1.0, HELD_OUT_SHARE / missing_share)
        hidden = np.zeros_like(observed)
        hidden[picked] = ~observed[donors[picked]] & observed[picked]
    else:
        hidden = rng.random(rows.shape) < HELD_OUT_SHARE
    hidden[hidden.sum(axis=1) >= observed.sum(axis=1)] = False  # a row keeps a cell
    hidden[:, (observed & ~hidden).sum(axis=0) < 1] = False  # so does a column
    return hidden


def blend_weights(
    truth: np.ndarray,
    hidden: np.ndarray,
    autoencoders: np.ndarray,
    linear: np.ndarray,
    neighbours: np.ndarray,
) -> tuple[float, float, float]:
    """The weight triple: :data:`PRIOR`, unless the held-out cells show a better one.

    A triple replaces the prior only where its squared error on the hidden cells is lower
    by :data:`BLEND_Z` standard errors (paired over the cells); of those, the one with the
    least error wins (ties: the first in :data:`BLEND_WEIGHTS`).

    Parameters
    ----------
    truth : ndarray of shape (n_samples, n_features)
        The rows with the hidden cells' values (NaN elsewhere is ignored).
    hidden : ndarray of bool
        The held-out cells.
    autoencoders, linear, neighbours : ndarray of shape (n_samples, n_features)
        The three fills of the rows with those cells hidden.
    """
    return _choose(_cell_errors(truth, hidden, autoencoders, linear, neighbours))


def _choose(
    errors: np.ndarray,
    weights: tuple[tuple[float, ...], ...] = BLEND_WEIGHTS,
    start: tuple[float, ...] = PRIOR,
) -> tuple[float, ...]:
    """:func:`blend_weights` from the fills' errors on the hidden cells (:func:`_cell_errors`).

    ``weights`` are the candidate weightings of the fills, ``start`` the one kept unless
    another is shown better.
    """
    squared = (np.asarray(weights) @ errors) ** 2
    if squared.shape[1] < 2:
        return start
    prior = weights.index(start)
    gain = squared - squared[prior]
    spread = gain.std(axis=1, ddof=1) / np.sqrt(squared.shape[1])
    shown = gain.mean(axis=1) < -BLEND_Z * spread
    shown[prior] = True
    candidates = np.flatnonzero(shown)
    return weights[int(candidates[np.argmin(squared[candidates].mean(axis=1))])]


def held_out_errors(
    truth: np.ndarray,
    hidden: np.ndarray,
    autoencoders: np.ndarray,
    linear: np.ndarray,
    neighbours: np.ndarray,
) -> list[float]:
    """RMSE on the hidden cells (columns in units of their spread) of each weight triple."""
    return _rmse(_cell_errors(truth, hidden, autoencoders, linear, neighbours))


def _rmse(errors: np.ndarray) -> list[float]:
    """:func:`held_out_errors` from the fills' errors on the hidden cells."""
    if not errors.shape[1]:
        return [0.0] * len(BLEND_WEIGHTS)
    squared = (np.asarray(BLEND_WEIGHTS) @ errors) ** 2
    return [float(e) for e in np.sqrt(squared.mean(axis=1))]


def _cell_errors(truth: np.ndarray, hidden: np.ndarray, *fills: np.ndarray) -> np.ndarray:
    """Each fill's error on the hidden cells, columns in units of their observed spread.

    Returns
    -------
    ndarray of shape (n_fills, n_hidden_cells)
    """
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an empty column: NaN, unit 1 below
        spread = np.nanstd(truth, axis=0)
    unit = np.where(np.isfinite(spread) & (spread > 0), spread, 1.0)
    cols = np.nonzero(hidden)[1]
    return np.stack([(f[hidden] - truth[hidden]) / unit[cols] for f in fills])
