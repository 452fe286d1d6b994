"""The imputer's ``missing_values`` marker, holes marked in sparse rows, empty columns."""

from __future__ import annotations

import numbers
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.checks import (
    check_float32_range,
    check_observed,
    check_sparse_values,
    check_table_names,
    validate_named,
    validate_rows,
)
from ..data.names import fitted_labels
from ..data.sparse import is_sparse
from ..data.textcells import marked_numbers, marker_cells
from ..errors import AekitWarning, ConfigError, DataError, DataTypeError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "is_nan_marker",
    "mark_sparse_holes",
    "marked_cells",
    "marked_rows",
    "numeric_marker",
    "warn_empty",
]


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


def marked_rows(estimator: Any, X: Any, missing_values: Any, *, reset: bool) -> Any:
    """An imputer's checked float rows with every missing value as NaN (infinity refused).

    ``estimator`` records the feature count and names (``reset``: in ``fit``) as
    scikit-learn's validation does.

    ``scipy.sparse`` rows come back as a CSR copy whose stored holes are NaN.
    """
    marker = numeric_marker(missing_values)
    nan_marker = is_nan_marker(marker)
    sparse_rows = is_sparse(X)
    if sparse_rows and not nan_marker and marker == 0:
        raise ConfigError(
            "missing_values=0 cannot mark holes in scipy.sparse rows (every implicit "
            "zero would be one): densify the rows (X.toarray()) or use another marker"
        )
    if sparse_rows:  # NaN marks a hole here too: scikit-learn's conversion, then marking
        X = validate_named(
            estimator,
            X,
            reset=reset,
            accept_sparse="csr",
            dtype=[np.float64, np.float32],
            ensure_all_finite=False,  # NaN allowed, infinity refused when marking
            copy=True,
        )
        mark_sparse_holes(X, marker)
        return X
    # NaN allowed (a missing value) unless another marker is: then refused before marking
    X = validate_rows(
        estimator, X, reset=reset, sparse=False, finite=nan_marker, copy=not nan_marker,
        observed=False,
    )  # fmt: skip
    if not nan_marker:
        check_float32_range(X)  # NaN is not the missing-value marker here
        X[marker == X] = np.nan
    if reset:  # holes everywhere: nothing to learn from (transform fills them)
        check_observed(X)
    return X


def marked_cells(imputer: Any, X: Any, *, reset: bool) -> pd.DataFrame:
    """``X`` as a DataFrame copy, columns checked, ``imputer.missing_values`` cells as NaN.

    The columns are checked against the imputer's (:func:`~aekit.data.checks.check_table_names`);
    an integer column with a marked cell becomes its nullable kind (``Int64``...), and a text
    column of numbers with text-marker cells (``"?"``) nullable numbers, as ``aekit impute``
    reads a file (:func:`~aekit.data.textcells.marked_numbers`), not categories.
    """
    import pandas as pd
    from scipy import sparse

    if sparse.issparse(X):
        raise DataTypeError(
            "categorical_features needs dense rows or a DataFrame, got a scipy.sparse "
            "matrix: densify it first (X.toarray())"
        )
    X = check_table_names(imputer, X, reset=reset)  # (in the fitted column order)
    if isinstance(X, pd.DataFrame):
        table = X.copy()
    else:  # a copy (pandas may share the array), by position: labelled as fitted
        table = pd.DataFrame(np.array(X), columns=None if reset else fitted_labels(imputer))
    if isinstance(imputer.missing_values, str):  # "?" among numbers: a column of numbers
        table = marked_numbers(table, [imputer.missing_values])
    if not is_nan_marker(imputer.missing_values):
        marked = marker_cells(table, [imputer.missing_values])  # (NA in nullable columns: no)
        for j in np.flatnonzero(marked.to_numpy().any(axis=0)):
            kind = table.dtypes.iloc[j]  # NaN would make an integer column a float one
            if isinstance(kind, np.dtype) and kind.kind in "iu":  # int64 -> Int64 ...
                nullable = kind.name.replace("ui", "UI").replace("in", "In")
                table[table.columns[j]] = table.iloc[:, j].astype(nullable)
            table.iloc[marked.iloc[:, j].to_numpy(), j] = np.nan
    return table
