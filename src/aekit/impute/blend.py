"""The imputer's validated blend: the autoencoders and the linear chain, weighed on held-out cells.

Where fits are cheap (numeric rows of up to :data:`~aekit.impute.defaults.ENSEMBLE_ENTRIES`
entries and :data:`BLEND_COLUMNS` columns, the default autoencoder),
:class:`~aekit.impute.AutoencoderImputer` hides a share of the *observed* cells
(:func:`held_out_cells`), fits its autoencoders and the linear chain (:mod:`aekit.impute.chain`)
on the rest, and weighs the two fills, each clipped to the columns' observed range as
``transform`` clips it, by their error on the hidden cells (:func:`blend_weight`). The
autoencoders are then kept as fitted (they never see the hidden cells: no second fit of
them); the chain, where it gets a weight, is refitted on every observed cell (a second
chain fit). The terms:

- **Held-out share** (:data:`HELD_OUT_SHARE`, 10 % of the observed cells): enough cells to
  rank five weights (a 200 × 10 table at 30 % missing gives ~140), few enough that the models
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
- **Weights** (:data:`BLEND_WEIGHTS`): 0, 1/4, 1/2, 3/4, 1 on the autoencoders; the one with the
  least squared error on the hidden cells, each column in units of its observed spread,
  wins (ties: the larger autoencoder weight). Five values, one number chosen from ~100s of
  cells: little room to overfit the held-out cells.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .chain import LinearChain, fit_chain
from .defaults import ENSEMBLE_ENTRIES

__all__ = [
    "BLEND_COLUMNS",
    "BLEND_WEIGHTS",
    "HELD_OUT_SHARE",
    "blend_runs",
    "blend_weight",
    "held_out_cells",
    "held_out_errors",
    "weigh_chain",
]

BLEND_COLUMNS = 64  # wider tables skip the blend: the chain grows as columns squared
HELD_OUT_SHARE = 0.1  # share of the observed cells hidden to weigh the candidates
BLEND_WEIGHTS = (1.0, 0.75, 0.5, 0.25, 0.0)  # the autoencoders' weight; first wins ties


def blend_runs(rows: np.ndarray) -> bool:
    """Whether the default imputer weighs the chain on numeric ``rows`` (NaN holes).

    Up to :data:`~aekit.impute.defaults.ENSEMBLE_ENTRIES` entries and :data:`BLEND_COLUMNS`
    columns (the chain's size grows with the columns squared).
    """
    return rows.size <= ENSEMBLE_ENTRIES and rows.shape[1] <= BLEND_COLUMNS


def weigh_chain(
    rows: np.ndarray,
    hidden: np.ndarray,
    members_fill: np.ndarray,
    clip: Callable[[np.ndarray], np.ndarray],
    seed: int | None,
) -> tuple[float, LinearChain | None, list[float]]:
    """The members' weight, the chain blended in (or None) and each weight's held-out RMSE.

    Parameters
    ----------
    rows : ndarray of shape (n_samples, n_features)
        Every observed cell (NaN holes).
    hidden : ndarray of bool
        The held-out cells (:func:`held_out_cells`).
    members_fill : ndarray of shape (n_samples, n_features)
        The members' fill (clipped) of ``rows`` with the ``hidden`` cells hidden.
    clip : callable
        Clips a fill to the columns' observed range, as ``transform`` does: the chain fitted
        on the rest is weighed on the fill that ``transform`` would return.
    seed : int or None
        The chain's ``random_state``.
    """
    train = np.where(hidden, np.nan, rows)
    fills = members_fill, clip(fit_chain(train, seed).fill(train))
    errors, weight = held_out_errors(rows, hidden, *fills), blend_weight(rows, hidden, *fills)
    linear = fit_chain(rows, seed) if weight < 1.0 else None  # refitted on every cell
    return weight, linear, errors


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


def blend_weight(
    truth: np.ndarray, hidden: np.ndarray, autoencoders: np.ndarray, linear: np.ndarray
) -> float:
    """The autoencoders' weight in :data:`BLEND_WEIGHTS` with the least held-out error.

    Parameters
    ----------
    truth : ndarray of shape (n_samples, n_features)
        The rows with the hidden cells' values (NaN elsewhere is ignored).
    hidden : ndarray of bool
        The held-out cells.
    autoencoders, linear : ndarray of shape (n_samples, n_features)
        The two fills of the rows with those cells hidden.
    """
    errors = held_out_errors(truth, hidden, autoencoders, linear)
    return float(BLEND_WEIGHTS[int(np.argmin(errors))])


def held_out_errors(
    truth: np.ndarray, hidden: np.ndarray, autoencoders: np.ndarray, linear: np.ndarray
) -> list[float]:
    """RMSE on the hidden cells (columns in units of their spread) of each blend weight."""
    if not hidden.any():
        return [0.0] * len(BLEND_WEIGHTS)
    with np.errstate(all="ignore"):
        spread = np.nanstd(truth, axis=0)
    unit = np.where(np.isfinite(spread) & (spread > 0), spread, 1.0)
    cols = np.nonzero(hidden)[1]
    value, ae, lin = truth[hidden], autoencoders[hidden], linear[hidden]
    return [
        float(np.sqrt(np.mean(((w * ae + (1 - w) * lin - value) / unit[cols]) ** 2)))
        for w in BLEND_WEIGHTS
    ]
