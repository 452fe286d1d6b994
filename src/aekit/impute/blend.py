"""The imputer's validated blend: the autoencoders and the linear chain, weighed on held-out cells.

Where fits are cheap (numeric rows of up to :data:`~aekit.impute.defaults.ENSEMBLE_ENTRIES`
entries, the default autoencoder), :class:`~aekit.impute.AutoencoderImputer` hides a share
of the *observed* cells (:func:`held_out_cells`), fits its autoencoders and the linear chain
(:mod:`aekit.impute.chain`) on the rest, and weighs the two fills by their error on the
hidden cells (:func:`blend_weight`). Both are then used as fitted: no second fit, so the
choice costs the chain's fit and nothing else. The terms:

- **Held-out share** (:data:`HELD_OUT_SHARE`, 10 % of the observed cells): enough cells to
  rank five weights (a 200 × 10 table at 30 % missing gives ~140), few enough that the models
  lose little to train on.
- **Masked like the data's own holes**: a held-out row takes the hole pattern of another
  row drawn at random, so the hidden cells follow the data's missingness (columns that are
  often missing together are hidden together), not a uniform mask the data never shows.
  A column or row keeps at least one observed cell.
- **Weights** (:data:`BLEND_WEIGHTS`): 0, 1/4, 1/2, 3/4, 1 on the autoencoders; the one with the
  least squared error on the hidden cells, each column in units of its observed spread,
  wins (ties: the larger autoencoder weight). Five values, one number chosen from ~100s of
  cells: little room to overfit the held-out cells.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "BLEND_WEIGHTS",
    "HELD_OUT_SHARE",
    "blend_weight",
    "held_out_cells",
    "held_out_errors",
]

HELD_OUT_SHARE = 0.1  # share of the observed cells hidden to weigh the candidates
BLEND_WEIGHTS = (1.0, 0.75, 0.5, 0.25, 0.0)  # the autoencoders' weight; first wins ties


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
