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

__all__ = ["LinearChain", "check_json_numbers", "fit_chain"]

_FLOAT_MAX = float(np.finfo(np.float64).max)  # a Python float: compared exactly with any int


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

        Every value is checked as JSON gave it, before numpy converts anything (which would
        turn ``1.7`` or ``true`` into the column 1 and ``"2"`` into the number 2): ``start``
        is ``n_features`` numbers, ``feature`` column indices (ints, not bools) below
        ``n_features``, ``weights`` one row of ``n_features`` numbers per step, ``intercept``
        one number per step; every number finite.

        Raises
        ------
        ModelFileError
            One line naming the first field that is missing, of the wrong type or shape, not
            finite, or a column out of range.
        """
        prefix = f"{where}: 'linear'"
        if not isinstance(saved, dict):
            raise ModelFileError(f"{prefix} must be a JSON object, got {type(saved).__name__}")
        for key in ("start", "feature", "weights", "intercept"):
            if not isinstance(saved.get(key), list):
                raise ModelFileError(
                    f"{prefix}[{key!r}] must be a list, got {saved.get(key)!r:.40}"
                )
        feature = saved["feature"]
        bad = [j for j in feature if not _is_int(j) or not 0 <= j < n_features]
        if bad:
            raise ModelFileError(
                f"{prefix}['feature'] must be column indices in [0, {n_features}), "
                f"got {bad[0]!r:.40}"
            )
        n_steps = len(feature)
        rows = saved["weights"]
        if len(rows) != n_steps or not all(isinstance(r, list) for r in rows):
            raise ModelFileError(f"{prefix}['weights'] must be {n_steps} lists (one a step)")
        check_json_numbers(saved["start"], n_features, f"{prefix}['start']")
        check_json_numbers(saved["intercept"], n_steps, f"{prefix}['intercept']")
        for row in rows:
            check_json_numbers(row, n_features, f"{prefix}['weights'] rows")
        return cls(
            start=np.asarray(saved["start"], dtype=np.float64),
            feature=np.asarray(feature, dtype=np.int64).reshape(n_steps),
            weights=np.asarray(rows, dtype=np.float64).reshape(n_steps, n_features),
            intercept=np.asarray(saved["intercept"], dtype=np.float64).reshape(n_steps),
        )


def _is_int(value: object) -> bool:
    """A JSON integer (a bool is not one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_json_numbers(values: Any, length: int, name: str, *, null: bool = False) -> None:
    """Refuse ``values`` unless a list of ``length`` finite JSON numbers (no bools, no text).

    ``null``: a JSON null (a hole) is allowed too.
    """
    if not isinstance(values, list) or len(values) != length:
        got = len(values) if isinstance(values, list) else type(values).__name__
        raise ModelFileError(f"{name} must be {length} numbers, got {got}")
    for value in values:
        if value is None and null:
            continue
        if not (isinstance(value, (int, float)) and not isinstance(value, bool)) or not (
            abs(value) < _FLOAT_MAX  # finite (an int beyond float64 is not)
        ):
            raise ModelFileError(f"{name} must be finite numbers, got {value!r:.40}")


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
        imputer.fit(np.array(rows, dtype=np.float64))  # a copy: it writes 0 into empty columns
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
