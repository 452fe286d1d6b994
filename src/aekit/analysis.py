"""Measuring codes: PCA baseline, principal angles, error and sparsity metrics, comparisons.

:func:`compare` is the one autoencoder-vs-PCA comparison that the demo, the CLI, the report
and the benchmarks call.

Every error here is aekit's one unit: the per-row sum of squared errors in the original units,
averaged over rows when a single number is reported.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from sklearn.decomposition import PCA

__all__ = [
    "Comparison",
    "compare",
    "decoder_basis",
    "normalized_mse",
    "pca_reconstruction",
    "principal_angles",
    "row_errors",
    "sparsity_stats",
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
    """Fit PCA on ``X_train`` and return its reconstruction of ``X_test``."""
    k = min(n_components, X_train.shape[0], X_train.shape[1])
    pca = PCA(n_components=k, random_state=random_state).fit(X_train)
    return pca.inverse_transform(pca.transform(X_test))


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
    if module.config.hidden:
        raise ValueError("decoder_basis needs a linear autoencoder (hidden=())")
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
class ComparisonRow:
    """One code size of a :func:`compare` run."""

    code_dim: int
    ae_error: float  # mean per-row squared error of the autoencoder on the test rows
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
    estimators: list[Any] = field(default_factory=list, repr=False)  # fitted, one per row

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
            f"(mean per-row squared error on {self.n_test} held-out rows; "
            f"trained on {self.n_train})"
        )
        return "\n".join(lines)


def split_rows(
    X: np.ndarray, test_fraction: float, random_state: int | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle-split rows into (train, test); ``test_fraction`` in (0, 1)."""
    rng = np.random.default_rng(random_state)
    order = rng.permutation(len(X))
    n_test = max(1, round(len(X) * test_fraction))
    return X[np.sort(order[n_test:])], X[np.sort(order[:n_test])]


def compare(
    X_train: np.ndarray,
    X_test: np.ndarray,
    code_dims: Iterable[int],
    *,
    callbacks: Sequence[Any] = (),
    **params: Any,
) -> Comparison:
    """Fit an autoencoder and PCA at each code size on ``X_train``; measure on ``X_test``.

    Parameters
    ----------
    X_train, X_test : ndarray of shape (n_rows, n_features)
    code_dims : iterable of int
        Code sizes to try.
    callbacks : sequence of Callback, optional
        Passed to each autoencoder fit (progress bars).
    **params
        Extra :class:`~aekit.Autoencoder` arguments (e.g. ``random_state=0``).

    Returns
    -------
    Comparison
        Its ``estimators`` hold the fitted autoencoders (not part of :meth:`~Comparison.to_dict`).
    """
    from .estimator import Autoencoder

    rows, estimators = [], []
    for k in code_dims:
        tick = time.perf_counter()
        ae = Autoencoder(code_dim=int(k), **params).fit(X_train, callbacks=tuple(callbacks))
        seconds = time.perf_counter() - tick
        ae_error = float(ae.reconstruction_error(X_test).mean())
        pca_error = float(row_errors(X_test, pca_reconstruction(X_train, X_test, int(k))).mean())
        rows.append(
            ComparisonRow(
                int(k), ae_error, pca_error, ae_error / max(pca_error, 1e-300), seconds, ae.n_iter_
            )
        )
        estimators.append(ae)
    return Comparison(rows, len(X_train), len(X_test), dict(params), estimators)
