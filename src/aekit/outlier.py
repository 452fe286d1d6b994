"""``AutoencoderOutlierDetector``: anomalies are the rows an autoencoder reconstructs badly.

It follows scikit-learn's outlier-detector conventions (those of ``IsolationForest``):
``fit`` learns what normal rows look like and a threshold, ``predict`` says +1 (inlier) or
−1 (outlier), ``score_samples`` is higher for more normal rows, and ``decision_function`` is
``score_samples - offset_``, negative for outliers.
"""

from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin, clone
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from .errors import ConfigError, DataError, NotFittedError
from .estimator import Autoencoder

__all__ = ["AutoencoderOutlierDetector", "threshold_for"]

_TUKEY = 1.5  # "auto": threshold = Q3 + 1.5·IQR of the training errors (Tukey's fence)


class AutoencoderOutlierDetector(OutlierMixin, BaseEstimator):
    """Outlier detection by reconstruction error, following ``IsolationForest``'s conventions.

    An autoencoder learns to reconstruct the training rows; rows it reconstructs much worse
    are flagged. The score is aekit's one error unit: a row's sum of squared errors in the
    model's scaled space (``score_samples`` is minus it), so every feature weighs by its
    spread rather than its units (in aekit 0.1 it was summed in the original units, where one
    wide column could make up nearly all of it).

    Parameters
    ----------
    estimator : Autoencoder or None, default=None
        The autoencoder to train (cloned in ``fit``); None means ``Autoencoder()``.
    contamination : "auto" or float, default="auto"
        Expected share of outliers in the training rows, in (0, 0.5]: the threshold is the
        error that many rows exceed. ``"auto"``: Tukey's fence on the training errors,
        ``Q3 + 1.5·IQR``.
    prefit : bool, default=False
        True: ``estimator`` is already fitted; ``fit`` only sets the threshold from ``X``.

    Attributes
    ----------
    estimator_ : Autoencoder
        The fitted autoencoder.
    threshold_ : float
        Rows with a reconstruction error above it are outliers.
    offset_ : float
        ``-threshold_``: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of features seen in ``fit``.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from aekit import Autoencoder, AutoencoderOutlierDetector
    >>> X = load_digits().data / 16.0
    >>> ae = Autoencoder(code_dim=8, epochs=5, random_state=0)
    >>> detector = AutoencoderOutlierDetector(ae, contamination=0.05).fit(X)
    >>> labels = detector.predict(X)  # +1 inlier, -1 outlier
    >>> int((labels == -1).sum())
    90
    """

    _parameter_constraints: dict[str, list[Any]] = {
        "estimator": [HasMethods(["fit", "reconstruction_error"]), None],
        "contamination": [StrOptions({"auto"}), Interval(Real, 0, 0.5, closed="right")],
        "prefit": ["boolean"],
    }

    def __init__(
        self,
        estimator: Autoencoder | None = None,
        *,
        contamination: str | float = "auto",
        prefit: bool = False,
    ) -> None:
        self.estimator = estimator
        self.contamination = contamination
        self.prefit = prefit

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags

    def fit(self, X: Any, y: None = None) -> AutoencoderOutlierDetector:
        """Fit the autoencoder (unless ``prefit``) and set the threshold from ``X``'s errors.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training rows, mostly normal.
        y : None
            Ignored.

        Returns
        -------
        self : AutoencoderOutlierDetector
        """
        self._validate_params()
        if self.prefit:
            if self.estimator is None or not hasattr(self.estimator, "n_features_in_"):
                raise NotFittedError("prefit=True needs a fitted estimator")
            self.estimator_ = self.estimator
            X = validate_data(self, X, dtype=[np.float64, np.float32])
            if X.shape[1] != self.estimator_.n_features_in_:
                raise DataError(
                    f"X has {X.shape[1]} features, the estimator expects "
                    f"{self.estimator_.n_features_in_}"
                )
        else:
            X = validate_data(self, X, dtype=[np.float64, np.float32])
            base = Autoencoder() if self.estimator is None else self.estimator
            self.estimator_ = clone(base).fit(X)
        errors = np.asarray(self.estimator_.reconstruction_error(X), dtype=np.float64)
        self.threshold_ = threshold_for(errors, self.contamination)
        self.offset_ = -self.threshold_
        return self

    def reconstruction_error(self, X: Any) -> np.ndarray:
        """Per-row sum of squared errors in the model's scaled space.

        Returns
        -------
        errors : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return np.asarray(self.estimator_.reconstruction_error(X), dtype=np.float64)

    def score_samples(self, X: Any) -> np.ndarray:
        """Minus the reconstruction error: the lower, the more abnormal.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
        """
        return -self.reconstruction_error(X)

    def decision_function(self, X: Any) -> np.ndarray:
        """``score_samples(X) - offset_``: negative for outliers, positive for inliers.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
        """
        return self.score_samples(X) - self.offset_

    def predict(self, X: Any) -> np.ndarray:
        """+1 for inliers, −1 for outliers (error above ``threshold_``).

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        return np.where(self.decision_function(X) >= 0, 1, -1)


def threshold_for(errors: np.ndarray, contamination: str | float = "auto") -> float:
    """The reconstruction error above which a row counts as an outlier.

    Parameters
    ----------
    errors : ndarray of shape (n_samples,)
        Per-row errors of the reference rows.
    contamination : "auto" or float in (0, 0.5], default="auto"
        A float flags that share of the reference rows; ``"auto"`` is Tukey's fence,
        ``Q3 + 1.5·IQR``.

    Returns
    -------
    threshold : float
    """
    if contamination == "auto":
        q1, q3 = np.percentile(errors, [25, 75])
        return float(q3 + _TUKEY * (q3 - q1))
    if isinstance(contamination, str) or not 0 < float(contamination) <= 0.5:
        raise ConfigError(f"contamination must be 'auto' or in (0, 0.5], got {contamination!r}")
    return float(np.percentile(errors, 100.0 * (1.0 - float(contamination))))
