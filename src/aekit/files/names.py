"""The column names, or integer column labels, a saved estimator keeps beside its weights.

scikit-learn keeps ``feature_names_in_`` for a DataFrame whose column names are all strings;
aekit also keeps a DataFrame's labels when they are all integers (``_column_labels``, see
:func:`aekit.data.names.integer_labels`), so that a frame given later with those labels in
another order is put back in the fitted order, not read by position. Every saved estimator
(model, detector, imputer folder) writes both fields with :func:`saved_names`, checks them
with :func:`check_saved_names` and sets them back with :func:`adopt_names`. ``column_labels``
came in model format 5, detector format 4 and imputer format 3: an older file has none (its
columns are taken by position, as they were when it was saved).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import ModelFileError

__all__ = [
    "NAME_FIELDS",
    "adopt_fitted_names",
    "adopt_names",
    "check_saved_names",
    "saved_names",
]

# The two keys and their JSON types; "column_labels" is optional (absent before it came in).
NAME_FIELDS: dict[str, tuple[type, ...]] = {
    "feature_names": (list, type(None)),
    "column_labels": (list, type(None)),
}


def saved_names(estimator: Any) -> dict[str, list[Any] | None]:
    """``feature_names`` (strings) and ``column_labels`` (integers) of a fitted estimator."""
    names = getattr(estimator, "feature_names_in_", None)
    labels = getattr(estimator, "_column_labels", None)
    return {
        "feature_names": None if names is None else [str(n) for n in names],
        "column_labels": None if labels is None else [int(n) for n in labels],
    }


def check_saved_names(
    meta: dict[str, Any], n_features: int, source: os.PathLike[str] | str
) -> tuple[list[str] | None, list[int] | None]:
    """The saved ``feature_names`` and ``column_labels`` (types already checked), validated.

    Raises
    ------
    ModelFileError
        Names that are not ``n_features`` strings; labels that are not ``n_features``
        distinct integers, or that come with names.
    """
    names, labels = meta["feature_names"], meta.get("column_labels")
    if names is not None and (
        len(names) != n_features or not all(isinstance(n, str) for n in names)
    ):
        raise ModelFileError(f"{source}: feature_names must be {n_features} strings")
    if labels is not None and (
        names is not None
        or len(labels) != n_features
        or not all(type(n) is int for n in labels)
        or len(set(labels)) != n_features
    ):
        raise ModelFileError(
            f"{source}: column_labels must be {n_features} distinct integers, and "
            "feature_names null"
        )
    return names, labels


def adopt_names(estimator: Any, names: list[str] | None, labels: list[int] | None) -> None:
    """Give a loaded estimator its saved ``feature_names_in_`` and column labels."""
    if names is not None:
        estimator.feature_names_in_ = np.asarray(names, dtype=object)
    if labels is not None:
        estimator._column_labels = list(labels)


def adopt_fitted_names(estimator: Any, source: Any) -> None:
    """Give ``estimator`` the ``feature_names_in_`` and column labels ``source`` was fitted on."""
    names, labels = (getattr(source, n, None) for n in ("feature_names_in_", "_column_labels"))
    adopt_names(estimator, None if names is None else list(names), labels)
