"""AutoencoderImputer: scikit-learn's imputer API, holes filled by a denoising autoencoder.

The imputer composes an :class:`~aekit.Autoencoder` trained with missing values
(``missing=True``): each training batch hides ``hide_share`` of the observed entries and the
loss counts every observed entry, so the network learns to rebuild an entry from the others.
``transform`` keeps the observed entries as given and fills each hole with the model's
reconstruction (one pass; its own imputations are never fed back).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.impute import MissingIndicator
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted, validate_data

from .data.checks import aekit_errors, check_float32_range, refuse_sparse_nan
from .errors import ConfigError
from .estimator import Autoencoder

__all__ = ["IMPUTER_DEFAULTS", "AutoencoderImputer", "imputer_autoencoder"]

# The autoencoder the imputer trains unless given one: what won benchmarks/impute.py.
IMPUTER_DEFAULTS: dict[str, Any] = {
    "hidden": (256, 256),
    "missing": True,
    "hide_share": 0.3,
    "patience": 20,
    "improvement_z": 0.0,
}


def imputer_autoencoder(n_features: int, random_state: int | None = None) -> Autoencoder:
    """The autoencoder :class:`AutoencoderImputer` trains by default on ``n_features`` columns.

    :data:`IMPUTER_DEFAULTS` with a code as wide as ``max(2, n_features // 2)`` (at most 64).
    """
    code_dim = int(min(64, max(2, n_features // 2)))
    return Autoencoder(code_dim=code_dim, random_state=random_state, **IMPUTER_DEFAULTS)


class AutoencoderImputer(TransformerMixin, BaseEstimator):
    """Fill missing values with a denoising autoencoder's reconstruction.

    A drop-in for scikit-learn's imputers (``SimpleImputer``, ``KNNImputer``,
    ``IterativeImputer``): use it in a ``Pipeline`` before any estimator. Observed entries
    are returned as given; each missing entry becomes the autoencoder's reconstruction of
    it from the row's observed entries.

    The default autoencoder (:func:`imputer_autoencoder`) is what won
    ``benchmarks/impute.py``: two hidden layers of 256 units, a code of ``n_features // 2``
    units (2 to 64), masking noise hiding 30 % of the observed entries in each training
    batch (``hide_share=0.3``; without it the model imputes much worse), the loss on every
    observed entry, mask indicators in the input, early stopping on held-out rows with
    entries hidden the same way (``patience=20``, ``improvement_z=0``) and the other
    :class:`~aekit.Autoencoder` defaults (a PCA start, ``epochs="auto"``, images in [0, 1]
    kept at their one global scale).

    Parameters
    ----------
    estimator : Autoencoder, optional
        The autoencoder to train (cloned, with ``missing=True``). None: the default above.
    missing_values : float, int or None, default=np.nan
        The placeholder of a missing value; every entry equal to it is imputed.
    add_indicator : bool, default=False
        Append ``MissingIndicator``'s columns (features with a missing value in ``fit``).
    keep_empty_features : bool, default=False
        As ``SimpleImputer``: a column with no observed value in ``fit`` is dropped from the
        output, or with ``True`` kept and filled with 0.
    random_state : int, optional
        Seed of the default autoencoder (ignored when ``estimator`` is given: set its own).

    Attributes
    ----------
    estimator_ : Autoencoder
        The fitted autoencoder.
    indicator_ : MissingIndicator or None
        The missing-value indicator (``add_indicator=True``).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined when ``X`` has feature names.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.linear_model import LogisticRegression
    >>> model = make_pipeline(AutoencoderImputer(), LogisticRegression())  # doctest: +SKIP
    """

    def __init__(
        self,
        estimator: Autoencoder | None = None,
        *,
        missing_values: float | int | None = np.nan,
        add_indicator: bool = False,
        keep_empty_features: bool = False,
        random_state: int | None = None,
    ) -> None:
        self.estimator = estimator
        self.missing_values = missing_values
        self.add_indicator = add_indicator
        self.keep_empty_features = keep_empty_features
        self.random_state = random_state

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    # -- input ----------------------------------------------------------------------------
    def _rows(self, X: Any, *, reset: bool) -> np.ndarray:
        """Checked float rows with every missing value as NaN (infinity refused)."""
        refuse_sparse_nan(X)
        nan_marker = _is_nan(self.missing_values)
        with aekit_errors():
            X = validate_data(
                self,
                X,
                reset=reset,
                dtype=[np.float64, np.float32],
                ensure_all_finite=False,  # NaN allowed, infinity refused below
                copy=not nan_marker,
            )
        if not nan_marker:
            check_float32_range(X)  # NaN is not the missing-value marker here
            X[X == self.missing_values] = np.nan
        check_float32_range(X, allow_nan=True)
        return X

    # -- fit / transform --------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> AutoencoderImputer:
        """Train the autoencoder on the rows' observed entries.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows with missing values (``missing_values``).
        y : None
            Ignored.

        Returns
        -------
        self : AutoencoderImputer
        """
        if not isinstance(self.add_indicator, (bool, np.bool_)):
            raise ConfigError(f"add_indicator must be True or False, got {self.add_indicator!r}")
        rows = self._rows(X, reset=True)
        if self.estimator is None:
            estimator = imputer_autoencoder(rows.shape[1], self.random_state)
        else:
            estimator = clone(self.estimator).set_params(missing=True)
        self.estimator_ = estimator.fit(rows)
        self._empty = np.isnan(rows).all(axis=0)
        self.indicator_ = None
        if self.add_indicator:
            self.indicator_ = MissingIndicator(missing_values=np.nan, error_on_new=False)
            self.indicator_.fit(rows)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Fill the missing entries of ``X`` with the autoencoder's reconstruction.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        X_imputed : ndarray of shape (n_samples, n_features_out)
            Observed entries as given, holes filled; columns empty in ``fit`` dropped
            (unless ``keep_empty_features``), then the indicator's columns if asked for.
        """
        check_is_fitted(self, "estimator_")
        rows = self._rows(X, reset=False)
        holes = np.isnan(rows)
        filled = np.where(holes, self.estimator_.reconstruct(rows), rows)
        filled[:, self._empty] = 0.0
        if not self.keep_empty_features:
            filled = filled[:, ~self._empty]
        if self.indicator_ is not None:
            flags = self.indicator_.transform(rows).astype(filled.dtype)
            filled = np.hstack([filled, flags])
        return filled

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the output columns: the kept input features, then the indicator's.

        Returns
        -------
        names : ndarray of str
        """
        check_is_fitted(self, "estimator_")
        names = _check_feature_names_in(self, input_features)
        kept = names if self.keep_empty_features else names[~self._empty]
        if self.indicator_ is None:
            return kept
        flagged = self.indicator_.get_feature_names_out(names)
        return np.concatenate([kept, flagged])


def _is_nan(value: Any) -> bool:
    """Whether the ``missing_values`` marker is NaN (float NaN, ``pd.NA`` or None)."""
    if value is None:
        return True
    if isinstance(value, numbers.Real):
        return bool(np.isnan(value))
    return str(value) == "<NA>"
