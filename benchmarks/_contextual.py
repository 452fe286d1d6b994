"""Contextual anomalies for ``benchmarks/adbench.py --protocol contextual``.

A contextual anomaly is a row whose values are each normal on their own but not together.
:func:`swap_features` makes them: in a share of the test rows, two columns picked at random
per row take their values from other rows (one donor row per column, drawn among the rows
whose value in that column differs), so every column keeps its marginal distribution and only
the joint structure breaks. :func:`contextual_split` trains on half of the normal rows (one
class) and tests on the other half with 5 % of its rows swapped that way.

The tables: scikit-learn's bundled ones (every row counts as normal, the class column unused)
and the normal rows of each ADBench ``.npz`` table, at most 5,000 of them, subsampled with the
seed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from sklearn import datasets
from sklearn.preprocessing import StandardScaler

MAX_NORMAL_ROWS = 5_000
SWAP_FRACTION = 0.05
SKLEARN_TABLES: dict[str, Callable[[], np.ndarray]] = {
    "sklearn breast_cancer": lambda: datasets.load_breast_cancer().data,
    "sklearn wine": lambda: datasets.load_wine().data,
    "sklearn diabetes": lambda: datasets.load_diabetes().data,
    "sklearn digits": lambda: datasets.load_digits().data,
    "sklearn iris": lambda: datasets.load_iris().data,
}


def swap_features(
    X: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A copy of ``X`` with two features of ``fraction`` of its rows taken from other rows.

    For each chosen row (at least one), two distinct columns are drawn at random among those
    that vary in ``X``; each takes the value that a donor row has in that column, the donor
    drawn at random among the other rows whose value there differs from the row's own, so the
    row really changes. Donors are read from the unmodified ``X``.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
        Rows of normal data, at least 2 rows and 2 varying columns.
    fraction : float
        Share of the rows to alter, in (0, 1].
    rng : numpy.random.Generator
        The source of every random choice (the result is fixed by its seed).

    Returns
    -------
    altered : ndarray of shape (n_rows, n_features)
        The rows, with the chosen ones altered.
    labels : ndarray of int, shape (n_rows,)
        1 where a row was altered, else 0.
    """
    X = np.asarray(X)
    varying = np.flatnonzero(np.ptp(X, axis=0) > 0) if len(X) else np.array([], dtype=int)
    if X.ndim != 2 or len(X) < 2 or len(varying) < 2:
        raise ValueError(f"expected at least 2 rows and 2 varying columns, got shape {X.shape}")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    n = max(1, round(fraction * len(X)))
    chosen = rng.choice(len(X), n, replace=False)
    altered = X.copy()
    for row in chosen:
        for col in rng.choice(varying, 2, replace=False):
            donors = np.flatnonzero(X[:, col] != X[row, col])
            altered[row, col] = X[rng.choice(donors), col]
    labels = np.zeros(len(X), dtype=int)
    labels[chosen] = 1
    return altered, labels


def scaled(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both blocks, columns constant on ``train`` dropped, standardized on ``train``, float32."""
    varying = train.std(axis=0) > 0
    scaler = StandardScaler().fit(train[:, varying])
    return (
        scaler.transform(train[:, varying]).astype(np.float32),
        scaler.transform(test[:, varying]).astype(np.float32),
    )


def contextual_split(X: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Training rows, test rows with 5 % swapped, and their labels, for one seed.

    At most :data:`MAX_NORMAL_ROWS` rows are kept (drawn with the seed); half train, the other
    half tests after :func:`swap_features`; scaled as :func:`scaled` says.
    """
    rng = np.random.default_rng(seed)
    if len(X) > MAX_NORMAL_ROWS:
        X = X[np.sort(rng.choice(len(X), MAX_NORMAL_ROWS, replace=False))]
    order = rng.permutation(len(X))
    half = len(X) // 2
    train = X[order[:half]]
    test, labels = swap_features(X[order[half:]], SWAP_FRACTION, rng)
    train_s, test_s = scaled(train, test)
    return {"train": train_s, "test": test_s, "labels": labels}


def contextual_tables(
    data: Path, names: list[str] | None, load: Callable[[Path], tuple[np.ndarray, np.ndarray]]
) -> Iterator[tuple[str, np.ndarray]]:
    """(name, normal rows) of scikit-learn's tables, then of each ADBench table in ``data``."""
    for name, get in SKLEARN_TABLES.items():
        if not names or name in names or name.split()[-1] in names:
            yield name, np.asarray(get(), dtype=np.float64)
    for path in sorted(Path(data).glob("*.npz")):
        if not names or path.stem in names:
            X, y = load(path)
            yield path.stem, X[y == 0]
