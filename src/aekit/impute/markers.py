"""The imputer's ``missing_values`` marker, holes marked in sparse rows, empty columns."""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np

from ..data.checks import check_sparse_values
from ..errors import AekitWarning, DataError, DataTypeError

__all__ = ["is_nan_marker", "mark_sparse_holes", "numeric_marker", "warn_empty"]


def mark_sparse_holes(X: Any, marker: Any) -> None:
    """Make the stored entries of CSR rows ``X`` equal to ``marker`` NaN; check the others.

    Infinity and values beyond float32 are refused naming their row and column
    (:func:`~aekit.data.checks.check_sparse_values`); so is a NaN when it is not the marker.
    """
    if not is_nan_marker(marker):
        if np.isnan(X.data).any():
            raise DataError(
                f"Input X contains NaN but missing_values={marker!r}: pass "
                "missing_values=np.nan, or fill those entries first"
            )
        X.data[X.data == marker] = np.nan
    holes = np.isnan(X.data)
    probe = X.copy()
    probe.data[holes] = 0.0  # a hole is no unusable value
    check_sparse_values(probe)


def numeric_marker(value: Any) -> Any:
    """``missing_values`` for numeric rows: a number or NaN; text is a DataTypeError."""
    if is_nan_marker(value) or (isinstance(value, numbers.Real) and not isinstance(value, str)):
        return value
    raise DataTypeError(
        f"missing_values={value!r} is a {type(value).__name__} but X is numeric: no entry "
        "can equal it; pass a number (or np.nan), as scikit-learn's imputers require"
    )


def is_nan_marker(value: Any) -> bool:
    """Whether the ``missing_values`` marker is NaN (float NaN, ``pd.NA`` or None)."""
    if value is None:
        return True
    if isinstance(value, numbers.Real):
        return bool(np.isnan(value))
    return str(value) == "<NA>"


def warn_empty(empty: np.ndarray, names: Any, keep: bool) -> None:
    """Warn of the columns with no observed value in ``fit`` and what ``transform`` does."""
    if not empty.any():
        return
    which = np.flatnonzero(empty)
    shown = [str(names[j]) for j in which] if names is not None else which.tolist()
    done = (
        "kept in the output and filled with 0"
        if keep
        else "dropped from the output (keep_empty_features=True keeps them, filled with 0)"
    )
    warnings.warn(
        f"column(s) {shown} have no observed value in fit: {done}", AekitWarning, stacklevel=3
    )
