"""The field's figures of an SAE, by the field's names.

Without ground truth (any activations):

* ``explained_variance``: ``1 - sum ||x - x_hat||^2 / sum ||x - mean(x)||^2`` over the rows
  (the mean over the rows evaluated); ``fvu`` is ``1 - explained_variance``;
* ``l0``: mean number of active latents (code > 0) per row;
* ``dead_fraction``: share of latents never active over the rows evaluated (``history_``
  counts over the last ``dead_rows`` training rows instead);
* ``shrinkage``: mean ``||x_hat|| / ||x||`` over the rows of positive norm (SAELens's
  ``l2_ratio``): below 1 when codes
  shrink, as an L1 penalty makes them.

With ground truth: the true feature directions ``true_features`` (n_true x n_features) and,
for F1, which features are active in each row (``true_codes``, n_rows x n_true, active where
> 0), as SAELens's SynthSAEBench generator gives them:

* ``mcc``: the decoder rows and the true directions, both of unit norm, are matched one to
  one by the Hungarian algorithm (:func:`scipy.optimize.linear_sum_assignment`) maximising
  the summed cosine; MCC is the mean cosine of the matched pairs (``min(code_dim, n_true)``
  of them): 1 when every true feature has its own latent pointing along it;
* ``f1``: each latent is paired with the true feature its decoder row is closest to (largest
  cosine); its F1 is that of "latent active" against "feature active" over the rows; ``f1``
  is the mean over latents (a dead latent scores 0);
* ``uniqueness``: distinct true features among the latents' closest ones, divided by
  ``min(code_dim, n_true)``: 1 when no two latents settle on the same feature.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..data.checks import check_finite_rows, check_sparse_values
from ..errors import DataError

__all__ = [
    "RunningMetrics",
    "check_true_codes",
    "check_true_features",
    "cosine_matrix",
    "dead_fraction",
    "explained_variance",
    "l0",
    "mcc",
    "shrinkage",
    "uniqueness",
]


def _np(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if hasattr(value, "toarray"):  # scipy.sparse codes
        return value.toarray()
    return np.asarray(value)


def explained_variance(x: Any, x_hat: Any) -> float:
    """``1 - sum ||x - x_hat||^2 / sum ||x - mean(x)||^2`` over the rows."""
    x, x_hat = _np(x).astype(np.float64), _np(x_hat).astype(np.float64)
    total = ((x - x.mean(axis=0)) ** 2).sum()
    return float(1.0 - ((x - x_hat) ** 2).sum() / total) if total > 0 else float("nan")


def l0(codes: Any) -> float:
    """Mean count of active latents (> 0) per row."""
    return float((_np(codes) > 0).sum(axis=1).mean())


def dead_fraction(codes: Any) -> float:
    """Share of latents never active over these rows."""
    return float(1.0 - (_np(codes) > 0).any(axis=0).mean())


def _norm_ratios(x: np.ndarray, x_hat: np.ndarray) -> np.ndarray:
    """``||x_hat|| / ||x||`` of the rows of positive norm."""
    norms = np.linalg.norm(x, axis=1)
    keep = norms > 0
    return np.linalg.norm(x_hat[keep], axis=1) / norms[keep]


def shrinkage(x: Any, x_hat: Any) -> float:
    """Mean ``||x_hat|| / ||x||`` over the rows of positive norm."""
    ratios = _norm_ratios(_np(x), _np(x_hat))
    return float(ratios.mean()) if len(ratios) else float("nan")


def check_true_features(true_features: Any, n_features: int) -> np.ndarray:
    """``true_features`` as float64, refused unless of shape (n_true, n_features) and finite.

    Raises
    ------
    DataError
        Another shape, or a NaN or infinite entry.
    """
    b = _np(true_features).astype(np.float64)
    if b.ndim != 2 or b.shape[1] != n_features:
        raise DataError(
            f"true_features must be of shape (n_true, {n_features}), got {tuple(b.shape)}"
        )
    check_finite_rows(b, "true_features")
    return b


def cosine_matrix(decoder: Any, true_features: Any) -> np.ndarray:
    """Cosines between each decoder row and each true direction: (code_dim, n_true)."""
    a = _np(decoder).astype(np.float64)
    b = check_true_features(true_features, a.shape[-1])
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T


def check_true_codes(true_codes: Any, n_rows: int, n_true: int) -> None:
    """Refuse ``true_codes`` (dense or scipy.sparse) not of shape (n_rows, n_true), or unusable.

    Raises
    ------
    DataError
        Another shape, or a NaN or infinite entry (named with its row and column).
    """
    shape = tuple(getattr(true_codes, "shape", np.shape(true_codes)))
    if shape != (n_rows, n_true):
        raise DataError(f"true_codes must be of shape ({n_rows}, {n_true}), got {shape}")
    if hasattr(true_codes, "indptr"):
        check_sparse_values(true_codes, "true_codes")
    else:
        check_finite_rows(np.asarray(true_codes), "true_codes")


def mcc(decoder: Any, true_features: Any) -> float:
    """Mean cosine of the decoder rows matched one to one to the true directions (Hungarian)."""
    from scipy.optimize import linear_sum_assignment

    cos = cosine_matrix(decoder, true_features)
    rows, cols = linear_sum_assignment(cos, maximize=True)
    return float(cos[rows, cols].mean())


def uniqueness(decoder: Any, true_features: Any) -> float:
    """Distinct closest true features over the latents, divided by ``min(code_dim, n_true)``."""
    cos = cosine_matrix(decoder, true_features)
    return float(len(np.unique(cos.argmax(axis=1))) / min(cos.shape))


class RunningMetrics:
    """The figures of the module docstring, added up chunk by chunk over rows of any number.

    Parameters
    ----------
    code_dim : int
    match : ndarray of int, shape (code_dim,), optional
        Each latent's closest true feature (for F1).
    """

    def __init__(self, code_dim: int, match: np.ndarray | None = None) -> None:
        self.n = 0
        self.sse = self.sum_sq = 0.0
        self.sum_x: np.ndarray | None = None
        self.active = 0.0
        self.ratio = 0.0
        self.nonzero = 0
        self.fired = np.zeros(code_dim, dtype=bool)
        self.match = match
        self.tp = np.zeros(code_dim)
        self.fp = np.zeros(code_dim)
        self.fn = np.zeros(code_dim)

    def add(self, x: Any, x_hat: Any, codes: Any, true_codes: Any = None) -> None:
        """Add a chunk of rows, their reconstructions and codes (and true activity)."""
        x, x_hat, on = _np(x).astype(np.float64), _np(x_hat).astype(np.float64), _np(codes) > 0
        self.n += len(x)
        self.sse += float(((x - x_hat) ** 2).sum())
        self.sum_sq += float((x**2).sum())
        self.sum_x = x.sum(axis=0) if self.sum_x is None else self.sum_x + x.sum(axis=0)
        self.active += float(on.sum())
        ratios = _norm_ratios(x, x_hat)
        self.ratio += float(ratios.sum())
        self.nonzero += len(ratios)
        self.fired |= on.any(axis=0)
        if self.match is not None and true_codes is not None:
            truth = _np(true_codes)[:, self.match] > 0
            self.tp += (on & truth).sum(axis=0)
            self.fp += (on & ~truth).sum(axis=0)
            self.fn += (~on & truth).sum(axis=0)

    def result(self) -> dict[str, float]:
        """``explained_variance``, ``fvu``, ``l0``, ``dead_fraction``, ``shrinkage`` (, ``f1``)."""
        n = max(self.n, 1)
        mean = self.sum_x / n if self.sum_x is not None else 0.0
        total = self.sum_sq - n * float(np.dot(mean, mean))
        fvu = self.sse / total if total > 0 else float("nan")
        out = {
            "explained_variance": 1.0 - fvu,
            "fvu": fvu,
            "l0": self.active / n,
            "dead_fraction": float(1.0 - self.fired.mean()),
            "shrinkage": self.ratio / self.nonzero if self.nonzero else float("nan"),
        }
        if self.match is not None and (self.tp + self.fp + self.fn).sum() > 0:
            denominator = np.maximum(2 * self.tp + self.fp + self.fn, 1)
            out["f1"] = float((2 * self.tp / denominator).mean())
        return out
