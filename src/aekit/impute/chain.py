"""The imputer's linear candidate: chained Bayesian ridge regressions, replayed as arrays.

:func:`fit_chain` fits scikit-learn's ``IterativeImputer(BayesianRidge())`` (its defaults:
column means first, then up to 10 rounds in which every column is regressed on all the
others and its holes refilled) and keeps what its ``transform`` applies as plain arrays
(:class:`LinearChain`): the start (each column's observed mean) and, step by step, which
column is refilled and the linear map that refills it. :meth:`LinearChain.fill` replays
those steps on new rows with numpy (:class:`~aekit.impute.graph.FillGraph` with tensor
operations ONNX has: MatMul, Where), and :meth:`LinearChain.to_json` / :meth:`LinearChain.from_json`
save it in ``imputer.json`` (JSON keeps a float64 exactly): nothing is pickled.

Why it is there: on near-linear tables (breast cancer, WDBC, WPBC, glass) the chained
regressions beat the autoencoder on ``benchmarks/impute.py``, and they recover scikit-learn's
low-rank test matrices almost exactly, which no one-pass network fill does
(``tests/test_impute_recovery.py``). :class:`~aekit.impute.AutoencoderImputer` blends it with
the autoencoders by a weight chosen on held-out observed cells (:mod:`aekit.impute.blend`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelFileError

__all__ = ["LinearChain", "fit_chain"]


@dataclass
class LinearChain:
    """Chained linear refills of holes, as ``IterativeImputer.transform`` applies them.

    Attributes
    ----------
    start : ndarray of shape (n_features,)
        Each column's first fill (its observed mean; 0 for a column with no value).
    feature : ndarray of int of shape (n_steps,)
        The column each step refills.
    weights : ndarray of shape (n_steps, n_features)
        Each step's coefficients on the current rows (0 on its own column).
    intercept : ndarray of shape (n_steps,)
    """

    start: np.ndarray
    feature: np.ndarray
    weights: np.ndarray
    intercept: np.ndarray

    def fill(self, rows: np.ndarray) -> np.ndarray:
        """``rows`` (NaN where missing) with every hole refilled by the chain, in float64."""
        holes = np.isnan(rows)
        filled = np.where(holes, self.start, rows).astype(np.float64)
        for j, w, b in zip(self.feature, self.weights, self.intercept, strict=True):
            filled[:, j] = np.where(holes[:, j], filled @ w + b, filled[:, j])
        return filled

    def to_json(self) -> dict[str, Any]:
        """The chain as a JSON object (lists of floats and ints)."""
        return {
            "start": self.start.tolist(),
            "feature": self.feature.tolist(),
            "weights": self.weights.tolist(),
            "intercept": self.intercept.tolist(),
        }

    @classmethod
    def from_json(cls, saved: Any, n_features: int, where: str) -> LinearChain:
        """Rebuild a chain from :meth:`to_json`'s object, checked against ``n_features``.

        Raises
        ------
        ModelFileError
            A field missing, of the wrong shape, not finite, or a column index out of range.
        """
        try:
            start = np.asarray(saved["start"], dtype=np.float64)
            feature = np.asarray(saved["feature"], dtype=np.int64).reshape(-1)
            weights = np.asarray(saved["weights"], dtype=np.float64).reshape(len(feature), -1)
            intercept = np.asarray(saved["intercept"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{where}: 'linear' is not a saved linear chain ({exc})") from None
        shapes_ok = start.shape == (n_features,) and intercept.shape == feature.shape
        if not shapes_ok or weights.shape[1:] != (n_features,):
            raise ModelFileError(f"{where}: 'linear' does not fit {n_features} columns")
        finite = all(np.isfinite(a).all() for a in (start, weights, intercept))
        if not finite or ((feature < 0) | (feature >= n_features)).any():
            raise ModelFileError(f"{where}: 'linear' holds non-finite values or bad columns")
        return cls(start, feature, weights, intercept)


def fit_chain(rows: np.ndarray, random_state: int | None) -> LinearChain:
    """Fit ``IterativeImputer(BayesianRidge())`` on ``rows`` (NaN holes) and keep its steps.

    Empty columns are kept (filled with 0, as ``keep_empty_features=True`` does), so the
    steps index the input's columns.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer
    from sklearn.linear_model import BayesianRidge

    imputer = IterativeImputer(BayesianRidge(), random_state=random_state, keep_empty_features=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # ran its 10 rounds: still usable
        imputer.fit(rows)
    d = rows.shape[1]
    steps = imputer.imputation_sequence_
    weights = np.zeros((len(steps), d))
    for i, step in enumerate(steps):
        weights[i, step.neighbor_feat_idx] = step.estimator.coef_
    return LinearChain(
        start=np.asarray(imputer.initial_imputer_.statistics_, dtype=np.float64),
        feature=np.array([s.feat_idx for s in steps], dtype=np.int64),
        weights=weights,
        intercept=np.array([float(s.estimator.intercept_) for s in steps]),
    )
