"""The imputer's defaults: the autoencoder it trains unless given one, and its ensemble size.

What won ``benchmarks/impute.py``; :class:`~aekit.impute.AutoencoderImputer` documents them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..estimator.autoencoder import Autoencoder
from ..training.prepare import batches_per_epoch

__all__ = [
    "ENSEMBLE_ENTRIES",
    "IMPUTER_DEFAULTS",
    "WIDE",
    "code_width_for",
    "hidden_width_for",
    "hide_pattern_for",
    "hide_share_for",
    "imputer_autoencoder",
    "patience_for",
    "shared_scale",
]

# The autoencoder the imputer trains unless given one: what won benchmarks/impute.py.
IMPUTER_DEFAULTS: dict[str, Any] = {
    "hidden": (256, 256),
    "missing": True,
    "patience": 20,
    "improvement_z": 0.0,
    "val_hidden": True,  # validate by filling hidden entries: the imputer's aim
    "min_val_rows": 20,
    "init": "pca",  # what benchmarks/impute.py measured: one fit from PCA's solution
}

PATIENCE_STEPS = 150  # early stopping waits at least this many optimiser steps (patience_for)
ENSEMBLE_ENTRIES = 100_000  # n_estimators="auto": 5 members up to this many entries, else 1
WIDE = 256  # hidden units where no linear chain is blended in (tables, wide or long rows)
FULL_CODE_COLUMNS = 10  # up to this many columns the code is as wide as the rows
MAX_CODE = 64  # the widest code the imputer trains by default


def imputer_autoencoder(
    X: np.ndarray, random_state: int | None = None, *, blended: bool = False
) -> Autoencoder:
    """The autoencoder :class:`AutoencoderImputer` trains by default on rows ``X``.

    :data:`IMPUTER_DEFAULTS` with hidden layers sized to the columns where the linear chain is
    blended in (``blended``, :func:`hidden_width_for`; else :data:`WIDE` units), a code as
    wide as the rows up to 10 columns and half as wide beyond (2 to 64 units,
    :func:`code_width_for`), early stopping's patience in steps rather than epochs
    on small tables (:func:`patience_for`), masking noise that follows the rows' missing
    share and holes (:func:`hide_share_for`, :func:`hide_pattern_for`) and, for image-like
    rows (:func:`shared_scale`), one global scale for every column.
    """
    width = hidden_width_for(X) if blended else WIDE
    return Autoencoder(
        code_dim=code_width_for(X),
        hide_share=hide_share_for(X),
        hide_pattern=hide_pattern_for(X),
        scaling="global_minmax" if shared_scale(X) else "auto",
        random_state=random_state,
        **{**IMPUTER_DEFAULTS, "hidden": (width, width), "patience": patience_for(X)},
    )


def code_width_for(X: np.ndarray) -> int:
    """The code's width on rows ``X``: one unit a column up to 10 columns, half beyond (2-64).

    The imputer starts from PCA's solution of its code's width. At the rows' full width that
    start is the identity, which copies a hidden entry's placeholder instead of predicting it
    from the other columns, and training did not always leave it: on digits (61 columns,
    30 % MCAR) the full-width code reached RMSE 0.859 where ``KNNImputer`` reaches 0.630; half
    as wide, 0.554. Few columns carry little redundancy to compress, and there half a code
    lost. Chosen on the imputation grid's *decide* tables (30 % holes, seed 0, RMSE of half a
    code over the full one): above 10 columns (wine, digits, Waveform, Cardiotocography,
    landsat) better in 11 of 15 cells, mean 0.952; at 5 to 8 columns (glass, Pima, yeast,
    thyroid, Wilt) better in 5 of 15, mean 1.008. Checked on the *confirm* tables above 10
    columns (breast cancer, letter, vowels, WDBC, WPBC, SpamBase, pendigits): better in 18 of
    21 cells, mean 0.970 (one-off runs under load; the grid's figures are in
    ``docs/benchmarks.rst``).
    """
    columns = X.shape[1]
    width = columns if columns <= FULL_CODE_COLUMNS else -(-columns // 2)
    return int(min(MAX_CODE, max(2, width)))


def hidden_width_for(X: np.ndarray) -> int:
    """The hidden layers' width on rows ``X`` where the chain is blended in: 4 a column, 32-256.

    The work follows the table: on wine (13 columns, 30 % MCAR) five members of 52 units fit
    about 3 x faster than of 256 (3.6 s against 10.5 s, under load) at RMSE 0.752 against
    0.740, and the linear chain blended in (:mod:`aekit.impute.blend`) covers what narrow
    layers miss on near-linear tables; 64 columns and more keep 256. Where no chain is
    blended in (tables with categorical columns, rows past the blend's size limits) the
    layers keep :data:`WIDE` units: on the four categorical tables of
    ``benchmarks/impute.py`` (30 % MCAR, 3 seeds) narrow layers lost 4.7 points of
    accuracy on iris and 3.3 on cars and won 1.0 on penguins and 0.8 on seattle_weather.
    """
    return int(min(WIDE, max(32, 4 * X.shape[1])))


def patience_for(X: np.ndarray) -> int:
    """Early stopping's patience on rows ``X``: 20 epochs, or :data:`PATIENCE_STEPS` steps.

    A table of a few hundred rows has 3 to 7 batches an epoch, so 20 epochs are 60 to 140
    optimiser steps, and its 20 validation rows make the loss noisy: training stopped early on
    a lucky epoch. Waiting 150 steps instead (wine, 3 batches an epoch: 50 epochs) took one
    model from RMSE 0.876 to 0.773 at 30 % MCAR (the ensemble of 5 with 20 epochs: 0.770) and
    glass from 0.866 to 0.811, at MNAR no worse; tables with 8 or more batches an epoch keep 20.
    """
    defaults = Autoencoder()
    steps = batches_per_epoch(
        len(X), defaults.batch_size, defaults.val_fraction, IMPUTER_DEFAULTS["min_val_rows"]
    )
    return max(int(IMPUTER_DEFAULTS["patience"]), -(-PATIENCE_STEPS // max(steps, 1)))


def hide_share_for(X: np.ndarray) -> float:
    """The masking noise for rows ``X``: 1.25 × their missing share, within [0.15, 0.5].

    Measured at 10 % MCAR on breast cancer (one model): hiding 15 % of the observed entries
    gave RMSE 0.427, 30 % 0.438, 50 % 0.501; at 40 % MCAR on wine 50 % beat 30 % (0.795 vs
    0.844): few holes want little masking, many holes more. Where the rows have holes the
    members hide other rows' holes instead (:func:`hide_pattern_for`), and this share only
    turns the hiding on.
    """
    share = float(np.isnan(X).mean()) if X.size else 0.0
    return float(np.clip(1.25 * share, 0.15, 0.5))


def hide_pattern_for(X: np.ndarray) -> str:
    """Which entries training hides on rows ``X``: other rows' holes where ``X`` has some.

    ``"rows"`` (:func:`aekit.data.missing.hide_like_rows`): each training row also misses
    what a row drawn at random misses, so the members practise filling the holes the data
    has: a whole block where blocks are missing, a column's share where it is often missing.
    On MNIST with a 14 × 14 quadrant missing in half the images it took one model's RMSE on
    the missing pixels from 0.247 (random entries) to 0.170 (KNN: 0.204). On the imputation
    grid's random holes it is neutral (30 %, seed 0, RMSE ratio to random entries: decide
    tables 1.003 on average over 15 cells, confirm tables 0.995 over 15; the worst cells
    breast cancer MNAR 1.065 and digits MCAR 1.040, the best glass MCAR 0.924). Adding random
    entries on top of the pattern was worse (digits MCAR 0.672 → 1.00). Rows without any
    hole have no pattern to copy: ``"entries"``, a random :func:`hide_share_for` of them.
    """
    return "rows" if X.size and bool(np.isnan(X).any()) else "entries"


def shared_scale(X: np.ndarray) -> bool:
    """Whether rows look like pixel intensities: non-negative, most columns reaching one top.

    Such columns are measured on one scale; standardizing each (a rarely inked pixel gets a
    tiny spread) blows rare values up and costs imputation badly (digits: 0.73 instead of
    0.49 standardized RMSE at 20 % MCAR).
    """
    with np.errstate(all="ignore"):
        low, high = np.nanmin(X) if X.size else 0.0, np.nanmax(X) if X.size else 0.0
        tops = np.nanmax(np.where(np.isnan(X), -np.inf, X), axis=0)
    return bool(low >= 0 and high > 0 and np.median(tops) == high)
