"""Measuring codes: THE autoencoder-vs-PCA measurement, principal angles, sparsity metrics.

:func:`measure` is the one autoencoder-vs-PCA measurement: the demo, the CLI (``fit``'s
summary, ``compare``), the report and the benchmarks all call it, directly or through
:func:`compare`. Its errors are aekit's one unit: squared errors per entry in the fitted
model's scaled space, summed over a row and averaged over rows; the PCA baseline is fitted on
the same scaled training rows, so both sides are measured alike. Rows with missing values
(NaN): both sides are measured by :func:`aekit.data.missing.row_squared_error` with the
model's feature groups (observed entries, rescaled by ``n_columns / n_observed_columns``, a
categorical column's one-hot block counting as ONE column), and PCA is fitted on the training
rows with holes filled by their column means.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from sklearn.decomposition import PCA

from ..errors import DataError

__all__ = [
    "Comparison",
    "Measurement",
    "compare",
    "decoder_basis",
    "measure",
    "normalized_mse",
    "pca_error_curve",
    "pca_reconstruction",
    "principal_angles",
    "row_errors",
    "sparsity_stats",
    "split_indices",
    "split_rows",
]


def row_errors(X: np.ndarray, X_hat: np.ndarray) -> np.ndarray:
    """Per-row sum of squared errors, ``Σ_j (x_ij - x̂_ij)²``, in float64."""
    diff = np.asarray(X, dtype=np.float64) - np.asarray(X_hat, dtype=np.float64)
    return np.einsum("ij,ij->i", diff, diff)


def normalized_mse(X: np.ndarray, X_hat: np.ndarray, mean: np.ndarray | None = None) -> float:
    """Error divided by the error of predicting the mean row (0 perfect, 1 no better).

    Parameters
    ----------
    X, X_hat : ndarray of shape (n_samples, n_features)
    mean : ndarray of shape (n_features,), optional
        The baseline row (default: the mean of ``X``; pass the training mean for test data).
    """
    baseline = np.asarray(X, dtype=np.float64).mean(axis=0) if mean is None else mean
    reference = row_errors(X, np.broadcast_to(baseline, np.shape(X))).sum()
    return float(row_errors(X, X_hat).sum() / max(reference, np.finfo(float).tiny))


def pca_reconstruction(
    X_train: np.ndarray, X_test: np.ndarray, n_components: int, *, random_state: int = 0
) -> np.ndarray:
    """Fit PCA on ``X_train`` and return its reconstruction of ``X_test``.

    Holes (NaN) in either are filled with the training rows' observed column means first (0
    where a column has none), as :func:`pca_error_curve` measures rows with holes.
    """
    k = min(n_components, X_train.shape[0], X_train.shape[1])
    X_train, X_test = np.asarray(X_train, np.float64), np.asarray(X_test, np.float64)
    if np.isnan(X_train).any() or np.isnan(X_test).any():
        X_train, means = _mean_filled(X_train)
        X_test = np.where(np.isnan(X_test), means, X_test)
    pca = PCA(n_components=k, random_state=random_state).fit(X_train)
    return pca.inverse_transform(pca.transform(X_test))


def pca_error_curve(
    X_train: np.ndarray,
    X_test: np.ndarray,
    max_components: int,
    *,
    random_state: int = 0,
    groups: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """PCA's mean per-row squared error on ``X_test`` for 1, 2, ... components, in one fit.

    Components are orthonormal, so a row's error with the first ``k`` of them is its
    centred squared norm minus the squares of its first ``k`` coordinates. Rows with missing
    values (NaN) are measured in aekit's error unit,
    :func:`aekit.data.missing.row_squared_error`.

    Parameters
    ----------
    X_train, X_test : ndarray of shape (n_rows, n_features)
        Rows PCA is fitted on, rows it is measured on (NaN where missing).
    max_components : int
        The longest curve wanted.
    random_state : int, default=0
        PCA's seed.
    groups : sequence of int, optional
        One group id per column (:func:`aekit.data.missing.groups_from_blocks`): a group (a
        categorical column's one-hot block) counts as one column when rows with holes are
        rescaled. None: each column its own group. Complete rows do not depend on it.

    Returns
    -------
    n_components : ndarray of shape (k,)
        ``1 .. k`` with ``k = min(max_components, n_train_rows, n_features)``.
    errors : ndarray of shape (k,)
        Mean per-row squared error with that many components.
    """
    k = min(max_components, X_train.shape[0], X_train.shape[1])
    X_test = np.asarray(X_test, dtype=np.float64)
    holes = np.isnan(X_test)
    if np.isnan(X_train).any() or holes.any():
        errors = _pca_curve_with_holes(X_train, X_test, k, random_state, groups)
        return np.arange(1, k + 1), errors
    pca = PCA(n_components=k, random_state=random_state).fit(X_train)
    centred = X_test - pca.mean_
    coords = centred @ pca.components_.T
    total = np.einsum("ij,ij->i", centred, centred)
    errors = total[:, None] - np.cumsum(coords**2, axis=1)
    return np.arange(1, k + 1), np.clip(errors, 0.0, None).mean(axis=0)


def _mean_filled(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``X`` with its holes filled by its observed column means (0 where none), and them."""
    means = np.zeros(X.shape[1])
    seen = ~np.isnan(X)
    np.divide(np.where(seen, X, 0.0).sum(axis=0), seen.sum(axis=0), means, where=seen.any(0))
    return np.where(seen, X, means), means


def _pca_curve_with_holes(
    X_train: np.ndarray,
    X_test: np.ndarray,
    k: int,
    random_state: int,
    groups: Sequence[int] | None,
) -> np.ndarray:
    """PCA's curve on rows with missing values: PCA of mean-filled rows, the one error unit.

    Holes (training and test) are filled with the training rows' observed column means;
    each test row's error is :func:`aekit.data.missing.row_squared_error` of its
    reconstruction (observed entries, rescaled with the feature ``groups``), as the
    autoencoder's is; a row with no observed value is left out of the mean.
    """
    import torch

    from ..data.missing import empty_rows, group_matrix, row_squared_error

    filled, means = _mean_filled(np.asarray(X_train, dtype=np.float64))
    pca = PCA(n_components=k, random_state=random_state).fit(filled)
    members = None if groups is None else group_matrix(tuple(groups)).double()
    target = torch.from_numpy(X_test - pca.mean_)  # centred, NaN where missing
    centred = np.where(np.isnan(X_test), means, X_test) - pca.mean_
    coords = centred @ pca.components_.T
    errors, recon = np.empty(k), np.zeros_like(centred)
    for i in range(k):
        recon += np.outer(coords[:, i], pca.components_[i])
        errors[i] = float(row_squared_error(torch.from_numpy(recon), target, members).sum())
    empty = empty_rows(X_test)  # a row with no observed value measures nothing
    measured = len(X_test) - (0 if empty is None else int(empty.sum()))
    return errors / max(measured, 1)


def principal_angles(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Principal angles, in degrees (ascending), between the column spaces of A and B.

    Parameters
    ----------
    A : ndarray of shape (n_features, k)
    B : ndarray of shape (n_features, m)

    Returns
    -------
    angles : ndarray of shape (min(k, m),)
        0 where the subspaces share a direction, 90 where orthogonal.
    """
    qa, _ = np.linalg.qr(np.asarray(A, dtype=np.float64))
    qb, _ = np.linalg.qr(np.asarray(B, dtype=np.float64))
    cosines = np.linalg.svd(qa.T @ qb, compute_uv=False)
    return np.sort(np.degrees(np.arccos(np.clip(cosines, -1.0, 1.0))))


def decoder_basis(estimator: Any) -> np.ndarray:
    """Columns spanning a linear autoencoder's reconstructions, in the original units.

    For ``hidden=()`` the decoder is one affine map ``x̂ = diag(scale)(W h + b) + offset``;
    the columns of ``diag(scale) W`` span the subspace it reconstructs in (compare it with
    ``PCA.components_.T`` using :func:`principal_angles`).

    Returns
    -------
    basis : ndarray of shape (n_features, code_dim)
    """
    module = estimator.module_
    if not module.config.has_linear_decoder:
        raise ValueError("decoder_basis needs a linear decoder (hidden=())")
    weight = module.decoder[-1].weight.detach().cpu().double().numpy()
    scale = module.scale.detach().cpu().double().numpy()
    return scale[:, None] * weight


def sparsity_stats(codes: np.ndarray, threshold: float = 1e-6) -> dict[str, float]:
    """L0 and dead units of a code matrix.

    Returns
    -------
    dict
        ``l0``: mean number of units with ``|h| > threshold`` per row; ``dead_fraction``:
        share of units never above the threshold on these rows; ``dead_units``: their count.
    """
    active = np.abs(codes) > threshold
    dead = int((~active.any(axis=0)).sum())
    return {
        "l0": float(active.sum(axis=1).mean()) if len(codes) else 0.0,
        "dead_units": dead,
        "dead_fraction": dead / max(codes.shape[1], 1),
    }


@dataclass
class Measurement:
    """A fitted autoencoder and PCA, measured on the same held-out rows in the same unit.

    Errors are mean per-row sums of squared errors in the model's scaled space.
    """

    ae_error: float  # the autoencoder's mean per-row squared error on the test rows
    pca_components: np.ndarray  # 1 .. k components of the PCA curve
    pca_errors: np.ndarray  # PCA's error with that many components (fitted on training rows)
    code_dim: int
    n_train: int
    n_test: int

    @property
    def pca_error(self) -> float | None:
        """PCA's error with as many components as the code has (None if beyond the curve)."""
        k = self.code_dim
        return float(self.pca_errors[k - 1]) if k <= len(self.pca_errors) else None

    @property
    def ratio(self) -> float | None:
        """``ae_error / pca_error`` (below 1: the autoencoder wins)."""
        pca = self.pca_error
        return None if pca is None else self.ae_error / max(pca, 1e-300)

    @property
    def components_to_match(self) -> int | None:
        """The fewest PCA components whose error is at most the autoencoder's (None: more)."""
        matching = self.pca_components[self.pca_errors <= self.ae_error]
        return int(matching[0]) if len(matching) else None


def measure(
    estimator: Any, X_train: Any, X_test: Any, *, max_components: int | None = None
) -> Measurement:
    """Measure a fitted autoencoder against PCA on held-out rows, in the model's scaled space.

    Parameters
    ----------
    estimator : Autoencoder
        Fitted (on ``X_train``, or on rows that include it).
    X_train : array-like of shape (n_train, n_features)
        Rows PCA is fitted on (scaled with the autoencoder's scaling first).
    X_test : array-like of shape (n_test, n_features)
        Held-out rows both are measured on; a row with no observed value is left out (its
        error is NaN), and ``n_test`` counts the rows measured.
    max_components : int, optional
        Length of PCA's error curve (default: the code size).

    Returns
    -------
    Measurement
    """
    from ..data.missing import groups_from_blocks

    config = estimator.model_config_
    code_dim = int(config.code_dim)
    ae_errors = np.asarray(estimator.reconstruction_error(X_test), dtype=np.float64)
    measured = ~np.isnan(ae_errors)  # a row with no observed value measures nothing (NaN)
    if not measured.any():
        raise DataError("no held-out row has an observed value: nothing to measure")
    blocks = config.categorical_blocks  # the model's feature groups (Hourglass.group_members)
    groups = groups_from_blocks(config.input_dim, blocks) if blocks else None
    ks, errors = pca_error_curve(  # (which leaves the same rows out of its mean)
        estimator.scale_rows(X_train),
        estimator.scale_rows(X_test),
        max_components or code_dim,
        groups=groups,
    )
    n_train = X_train.shape[0] if hasattr(X_train, "shape") else len(X_train)  # (sparse: no len)
    return Measurement(float(ae_errors[measured].mean()), ks, errors, code_dim, n_train,
                       int(measured.sum()))  # fmt: skip


@dataclass
class ComparisonRow:
    """One code size of a :func:`compare` run."""

    code_dim: int
    ae_error: float  # mean per-row squared error (scaled space) of the autoencoder, test rows
    pca_error: float  # the same for PCA with as many components
    ratio: float  # ae_error / pca_error (below 1: the autoencoder wins)
    fit_seconds: float  # wall time of the autoencoder fit
    epochs: int  # epochs the autoencoder ran


@dataclass
class Comparison:
    """Autoencoder vs PCA at several code sizes, measured on held-out rows."""

    rows: list[ComparisonRow]
    n_train: int
    n_test: int
    params: dict[str, Any]
    models: list[Any] = field(default_factory=list, repr=False)  # with keep_models=True
    # PCA's error curve (components, errors) up to the largest code size, same unit and rows
    pca_curve: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "rows": [asdict(r) for r in self.rows],
            "n_train": self.n_train,
            "n_test": self.n_test,
            "params": self.params,
        }

    def table(self) -> str:
        """A plain-text table, one line per code size."""
        lines = [f"{'code':>5} {'autoencoder':>12} {'PCA':>12} {'AE/PCA':>7} {'fit s':>7}"]
        lines += [
            f"{r.code_dim:>5} {r.ae_error:>12.4f} {r.pca_error:>12.4f} {r.ratio:>7.3f} "
            f"{r.fit_seconds:>7.1f}"
            for r in self.rows
        ]
        lines.append(
            f"(mean per-row squared error in the model's scaled space on {self.n_test} "
            f"held-out rows; trained on {self.n_train}; PCA fitted on the same scaled rows)"
        )
        return "\n".join(lines)


def split_indices(
    n_rows: int, test_fraction: float, random_state: int | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle-split ``range(n_rows)`` into sorted (train, test) indices; fraction in (0, 1).

    Raises
    ------
    DataError
        Too few rows to keep one for training once one or more are held out.
    """
    order = np.random.default_rng(random_state).permutation(n_rows)
    n_test = max(1, round(n_rows * test_fraction))
    if n_test >= n_rows:
        raise DataError(
            f"{n_rows} row(s) leave none to fit on once {n_test} are held out "
            f"(test fraction {test_fraction}): give more rows"
        )
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def split_rows(
    X: np.ndarray, test_fraction: float, random_state: int | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle-split rows into (train, test); ``test_fraction`` in (0, 1)."""
    train, test = split_indices(len(X), test_fraction, random_state)
    return X[train], X[test]


def compare(
    X_train: np.ndarray,
    X_test: np.ndarray,
    code_dims: Iterable[int],
    *,
    callbacks: Sequence[Any] = (),
    keep_models: bool = False,
    **params: Any,
) -> Comparison:
    """Fit an autoencoder and PCA at each code size on ``X_train``; :func:`measure` on ``X_test``.

    Parameters
    ----------
    X_train, X_test : ndarray of shape (n_rows, n_features)
    code_dims : iterable of int
        Code sizes to try.
    callbacks : sequence of Callback, optional
        Passed to each autoencoder fit (progress bars).
    keep_models : bool, default=False
        Keep the fitted autoencoders in ``Comparison.models`` (one per code size).
    **params
        Extra :class:`~aekit.Autoencoder` arguments (e.g. ``random_state=0``).

    Returns
    -------
    Comparison
    """
    from ..estimator.autoencoder import Autoencoder

    rows, models, curve, n_test = [], [], None, len(X_test)
    code_dims = [int(k) for k in code_dims]
    for k in code_dims:
        tick = time.perf_counter()
        ae = Autoencoder(code_dim=int(k), **params).fit(X_train, callbacks=tuple(callbacks))
        seconds = time.perf_counter() - tick
        found = measure(ae, X_train, X_test, max_components=max(code_dims))
        curve = curve or (found.pca_components, found.pca_errors)  # the scaling is the data's
        n_test = found.n_test  # the rows measured: not those with no observed value
        pca_error = found.pca_error if found.pca_error is not None else float("nan")
        ratio = found.ratio if found.ratio is not None else float("nan")
        rows.append(ComparisonRow(int(k), found.ae_error, pca_error, ratio, seconds, ae.n_iter_))
        if keep_models:
            models.append(ae)
    return Comparison(rows, len(X_train), n_test, dict(params), models, curve)
