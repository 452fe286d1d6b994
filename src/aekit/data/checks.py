"""The input check: shape, numeric dtype, NaN and infinity, float32's range.

The NaN policy: data rows (what ``fit``, ``transform`` and friends, the streamed sources
and the CLI read) may hold NaN, aekit's missing value (``pd.NA`` becomes NaN on the way
in); the functions that check them take ``allow_nan=True``. Infinity and values beyond
float32's range are refused everywhere, and NaN is refused where it has no meaning: in
codes, in computed results, and inside scipy.sparse input (:func:`check_sparse_values`, the
one check of sparse rows: an absent entry there means 0, so a stored NaN has no consistent
meaning; missing values come in dense rows).

Every path into aekit (the estimators, the ONNX runner, the streamed sources, the CLI) checks
rows with the functions here: :func:`validate_rows` is the estimators' one input check
(conversion, shape, feature count and names, then the values; a DataFrame's columns matched
by name, put in the fitted order when only their order differs: :func:`validate_named`),
:func:`check_table_names` its
counterpart for tables encoded afterwards, and :func:`checked_array` the same check for callers
without a scikit-learn estimator (:class:`aekit.export.OnnxModel`); rows that passed it are
handed on as :class:`CheckedRows`, which the estimators take without checking them again.

One core, :func:`first_unusable`, finds the first entry aekit cannot compute
with (NaN, infinity, or a value beyond the range of float32, which aekit computes in), and one
message, :func:`unusable_message`, says where it is, what it is and what to do, so a bad value
reads the same wherever it comes in::

    rows.npy contains NaN (first at row 150, column 3); drop or impute those values first
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from ..errors import DataError, DataTypeError
from .names import aekit_errors, in_fitted_order, in_named_order, validate_named

if TYPE_CHECKING:  # torch and scikit-learn are imported where used: the ONNX runner needs neither
    import torch

__all__ = [
    "FLOATS",
    "CheckedRows",
    "aekit_errors",
    "as_codes",
    "check_finite_chunk",
    "check_finite_output",
    "check_finite_rows",
    "check_float32_range",
    "check_n_features",
    "check_observed",
    "check_rows",
    "check_sparse_values",
    "check_table_names",
    "checked_array",
    "first_unusable",
    "in_fitted_order",
    "refuse_sparse_table",
    "unusable_message",
    "validate_named",
    "validate_rows",
]


FLOATS = [np.float64, np.float32]  # input dtypes kept as they are; others become float64


FLOAT32_MAX = float(np.finfo(np.float32).max)


def first_unusable(
    values: np.ndarray | torch.Tensor, *, float32: bool = False, allow_nan: bool = False
) -> tuple[int, ...] | None:
    """Index of the first entry (in row-major order) that is NaN or infinite, or None.

    Parameters
    ----------
    values : ndarray or Tensor
        Rows, or any array; a tensor is looked at where it is (a GPU checks its own copy).
    float32 : bool, default=False
        Also find finite values beyond float32's range (±3.4e38) in float64 arrays. Float32
        arrays and tensors cannot hold such values: their finiteness is all there is to check.
    allow_nan : bool, default=False
        NaN is a missing value, not an unusable one: only infinity (and, with ``float32``,
        values beyond its range) is found.

    Returns
    -------
    tuple of int or None
        ``(row, column)`` for 2-D values; None when every entry is usable.
    """
    # NaN and infinity propagate into a sum: a finite sum (one fast reduction, no copy) clears
    # the values; only a non-finite one (or an overflowing sum of huge values) is looked at.
    torch = sys.modules.get("torch")  # a tensor exists only once torch was imported
    if torch is not None and isinstance(values, torch.Tensor):
        if bool(torch.isfinite(values.sum())) or bool(torch.isfinite(values).all()):
            return None
        bad = torch.isinf(values) if allow_nan else ~torch.isfinite(values)
        found = torch.nonzero(bad)
        return tuple(int(i) for i in found[0]) if len(found) else None
    values = np.asarray(values)
    if values.dtype.kind != "f" or values.size == 0:  # integers and booleans always fit
        return None
    limit = FLOAT32_MAX if float32 and values.dtype.itemsize > 4 else None
    with np.errstate(all="ignore"):
        if limit is None:
            if np.isfinite(values.sum()):
                return None
            bad = np.isinf(values) if allow_nan else ~np.isfinite(values)
        else:  # two reductions, no |values| copy; NaN fails both comparisons
            if -limit <= values.min() and values.max() <= limit:
                return None
            bad = np.abs(values) > limit if allow_nan else ~(np.abs(values) <= limit)
    found = np.argwhere(bad)
    return tuple(int(i) for i in found[0]) if len(found) else None


def unusable_message(
    what: str,
    value: float,
    row: int,
    column: int | str | None = None,
    *,
    during: str | None = None,
) -> str:
    """The one line that names an unusable entry, its position, its kind and what to do.

    Parameters
    ----------
    what : str
        Whose entry it is: ``"Input X"``, a file's path. For a computed result (``during``
        given), what its index counts: ``"row"`` or ``"column"``.
    value : float
        The entry: NaN, infinite, or finite but beyond float32's range.
    row : int
        Its row (numbered in the whole file for a chunk of one).
    column : int or str, optional
        Its column: a 0-based index, or a name (quoted in the message).
    during : str, optional
        The computation whose float32 result overflowed (``"the network"``): the message
        then blames the input's scale, not its values.

    Returns
    -------
    str
    """
    if during is not None:
        return (
            f"{what} {row} overflows float32 in {during}; rescale the data (aekit computes "
            "in float32)"
        )
    shown = repr(column) if isinstance(column, str) else column
    at = f"row {row}" if column is None else f"row {row}, column {shown}"
    if np.isnan(value) or np.isinf(value):
        kind = "NaN" if np.isnan(value) else "infinity"
        return f"{what} contains {kind} (first at {at}); drop or impute those values first"
    return (
        f"{what} contains a value beyond float32's range of ±{FLOAT32_MAX:.3g} (first at {at}: "
        f"{value:.3g}); aekit computes in float32: rescale the data"
    )


def _raise_at(where: tuple[int, ...], values: Any, what: str, first_row: int = 0) -> None:
    row, column = where[0], where[1] if len(where) > 1 else None
    raise DataError(unusable_message(what, float(values[where]), first_row + row, column))


def check_finite_rows(
    array: np.ndarray,
    what: str = "input",
    first_row: int = 0,
    *,
    float32: bool = False,
    allow_nan: bool = False,
) -> None:
    """Raise :class:`DataError` naming the first entry that is NaN or infinity.

    Parameters
    ----------
    array : ndarray
        The rows, or a chunk of a larger file's rows.
    what : str, default="input"
        The rows' name in the message (a file's path, ``"Input X"``).
    first_row : int, default=0
        The number of the array's first row, for a chunk of a larger file.
    float32 : bool, default=False
        Also refuse values beyond float32's range (see :func:`first_unusable`).
    allow_nan : bool, default=False
        Let NaN (a missing value) through; infinity is still refused.
    """
    where = first_unusable(array, float32=float32, allow_nan=allow_nan)
    if where is not None:
        _raise_at(where, array, what, first_row)


def check_float32_range(X: np.ndarray, what: str = "Input X", *, allow_nan: bool = False) -> None:
    """Refuse NaN, infinity, and values that float32, which the network computes in, cannot hold.

    The whole input check on validated rows, in one pass that copies nothing; data rows pass
    ``allow_nan=True`` (NaN is a missing value).
    """
    check_finite_rows(X, what, float32=True, allow_nan=allow_nan)


def check_sparse_values(X: Any, what: str = "Input X") -> None:
    """The one check of scipy.sparse rows: their stored values (implicit zeros are usable).

    Every path that takes sparse rows (the estimator, the detector, the CLI and its sparse
    files) calls it on the CSR matrix. NaN is refused (an absent entry means 0, so a stored
    NaN cannot stand for a missing value consistently: aekit takes missing values in dense
    rows only), and so are infinity and values beyond float32's range, naming their row and
    column.

    Raises
    ------
    DataError
        For a stored NaN, infinity, or value beyond float32's range.
    """
    data = np.asarray(X.data)
    where = first_unusable(data, float32=True)
    if where is None:
        return
    position = where[0]
    row = int(np.searchsorted(np.asarray(X.indptr), position, side="right")) - 1
    column = int(np.asarray(X.indices)[position])
    value = float(data[position])
    if np.isnan(value):
        raise DataError(
            f"{what}: sparse input contains NaN (first at row {row}, column {column}); "
            "aekit takes missing values (NaN) in dense input only: densify it (X.toarray()) "
            "or fill those entries first"
        )
    raise DataError(unusable_message(what, value, row, column))


def check_rows(X: Any, what: str = "Input X") -> None:
    """The input check on validated data rows, dense or scipy.sparse (CSR).

    Dense rows: :func:`check_float32_range` with NaN allowed (a missing value); sparse rows:
    :func:`check_sparse_values` on their stored values (NaN refused there).
    """
    if sp.issparse(X):
        check_sparse_values(X, what)
    else:
        check_float32_range(X, what, allow_nan=True)


def refuse_sparse_table(X: Any, categorical: bool) -> None:
    """Refuse scipy.sparse rows where a table's categorical columns are expected.

    A sparse matrix holds numbers only; categorical columns (``categorical_features``, or a
    model fitted on a table with them) come in a DataFrame.

    Raises
    ------
    DataTypeError
        If ``categorical`` and ``X`` is a scipy.sparse matrix or array.
    """
    if categorical and sp.issparse(X):
        raise DataTypeError(
            "scipy.sparse input cannot carry categorical columns (categorical_features, or a "
            "model fitted on a table with them): pass a DataFrame, or one-hot encode the "
            "categories into numeric columns and fit on those"
        )


def check_finite_chunk(batch: torch.Tensor, part: np.ndarray, start: int) -> None:
    """Refuse infinity or values float32 cannot hold in a chunk of input rows (NaN: missing).

    ``batch`` is ``part`` as float32 (values beyond its range became infinite); the message
    quotes ``part``'s own value, numbered from ``start``.
    """
    where = first_unusable(batch, allow_nan=True)
    if where is not None:
        _raise_at(where, part, "Input X", start)


def check_finite_output(
    out: np.ndarray, during: str, what: str = "row", *, allow_nan: bool = False
) -> None:
    """Refuse results that overflowed (inputs far larger than anything seen in ``fit``).

    ``what`` is what the first index of ``out`` counts (``"row"``, ``"column"``);
    ``allow_nan`` lets missing values through (scaled rows keep their holes).
    """
    where = first_unusable(out, allow_nan=allow_nan)
    if where is not None:
        raise DataError(unusable_message(what, float(out[where]), where[0], during=during))


def as_codes(X: Any, code_dim: int) -> np.ndarray:
    """Check codes like input rows (any number of rows, ``code_dim`` columns)."""
    from sklearn.utils.validation import check_array

    with aekit_errors():
        codes = check_array(X, dtype=FLOATS, ensure_min_samples=0, input_name="codes")
    if codes.shape[1] != code_dim:
        raise DataError(f"codes must have shape (n_samples, {code_dim}), got {codes.shape}")
    check_float32_range(codes, "codes")
    return codes


class CheckedRows:
    """Rows that passed :func:`validate_rows`, handed to an estimator that need not check them.

    The outlier detector checks its input once and gives its ensemble members (aekit
    Autoencoders) the checked rows wrapped in this; a member's own input check then only
    takes their feature count (and, on ``reset``, forgets feature names: the detector keeps
    them) instead of converting and scanning the rows again. Values deferred to the chunked
    check of inference (``finite=False``) are still checked there, once.

    Parameters
    ----------
    rows : ndarray or scipy.sparse CSR matrix
        The checked rows, as :func:`validate_rows` returned them.
    """

    __slots__ = ("rows",)

    def __init__(self, rows: Any) -> None:
        self.rows = rows

    @property
    def dtype(self) -> np.dtype:
        """The rows' dtype (``uint8`` rows stay 8-bit until the estimator converts them)."""
        return np.dtype(self.rows.dtype)

    @property
    def shape(self) -> tuple[int, ...]:
        """The rows' shape."""
        return tuple(self.rows.shape)

    def as_floats(self) -> Any:
        """The rows in a dtype of :data:`FLOATS`: float rows as they are, others as float64."""
        if self.rows.dtype in FLOATS:
            return self.rows
        return self.rows.astype(np.float64)


def check_n_features(n_features: int, expected: int, who: str) -> None:
    """Refuse rows whose column count is not the fitted one, in scikit-learn's words.

    Raises
    ------
    DataError
        ``X has 4 features, but Autoencoder is expecting 5 features as input``.
    """
    if n_features != expected:
        raise DataError(
            f"X has {n_features} features, but {who} is expecting {expected} features as input"
        )


def validate_rows(
    estimator: Any,
    X: Any,
    *,
    reset: bool,
    dtype: Any = FLOATS,
    sparse: bool = True,
    finite: bool = True,
    copy: bool = False,
    observed: bool = True,
) -> Any:
    """THE input check of aekit's estimators: converted, shaped, named and valued rows.

    scikit-learn's ``validate_data`` converts the rows (to ``dtype``; scipy.sparse rows of any
    format to CSR, where ``sparse``), checks their shape and, against the fitted estimator,
    their feature count and names (``reset`` records them instead); its errors become
    aekit's (:func:`aekit_errors`). NaN is a missing value: scikit-learn's finiteness check
    is off and :func:`check_rows` refuses infinity and values beyond float32's range (NaN
    too in sparse rows).

    Parameters
    ----------
    estimator : BaseEstimator
        The estimator whose ``n_features_in_`` and ``feature_names_in_`` are set or checked.
    X : array-like or sparse matrix
        The rows.
    reset : bool
        True in ``fit``: record the feature count and names; False: check them.
    dtype : dtype or list of dtypes, default=FLOATS
        Dtypes kept as they are (the first for any other).
    sparse : bool, default=True
        Accept scipy.sparse rows (as CSR).
    finite : bool, default=True
        Check the values of dense rows here; False leaves them to the chunked check of
        inference (:func:`check_finite_chunk`: one pass, not two). Sparse rows' stored values
        are checked either way.
    copy : bool, default=False
        Return a copy even where no conversion was needed (the caller writes into it).
    observed : bool, default=True
        Refuse dense rows whose every entry is NaN (:func:`check_observed`); False where such
        rows have a meaning (the holes an imputer fills).

    Returns
    -------
    ndarray or scipy.sparse CSR matrix

    Raises
    ------
    DataError, DataTypeError
        For rows of the wrong shape, feature count or names, non-numeric rows, and
        unusable values (named with their row and column).
    """
    X = validate_named(
        estimator, X, reset=reset, dtype=dtype, accept_sparse="csr" if sparse else False,
        ensure_all_finite=False, copy=copy,
    )  # fmt: skip
    if finite or sp.issparse(X):  # sparse rows always: the check reads the stored values
        check_rows(X)
    if observed:
        check_observed(X)
    return X


def check_observed(X: Any, what: str = "X") -> None:
    """Refuse dense rows in which every entry is NaN: nothing to fit, encode or score.

    Reads rows in blocks until one holds an observed value (the first, mostly).

    Raises
    ------
    DataError
        ``X`` has entries and every one of them is NaN.
    """
    if sp.issparse(X) or getattr(X, "dtype", None) is None or X.dtype.kind != "f" or not X.size:
        return
    step = max(1, (1 << 16) // max(X.shape[-1], 1))
    if not any(not np.isnan(X[i : i + step]).all() for i in range(0, len(X), step)):
        raise DataError(
            f"{what} has no observed value: all {X.size} entries are NaN (aekit's missing "
            "value); give rows with at least one number"
        )


def check_table_names(estimator: Any, X: Any, *, reset: bool) -> Any:
    """:func:`validate_rows` for a table encoded afterwards: its feature count and names only.

    Returns the table, its columns in the fitted order (:func:`in_fitted_order`).
    """
    return validate_named(estimator, X, reset=reset, skip_check_array=True)


def checked_array(
    X: Any, n_features: int, who: str, names: Sequence[str] | None = None
) -> np.ndarray:
    """The input check for a runner without an estimator (an ONNX file): dense rows only.

    The conversion and messages of :func:`validate_rows` (any number of rows, including
    none), the feature count by :func:`check_n_features`, the values by :func:`check_rows`;
    a DataFrame's columns are taken by the ``names`` the runner was saved with, where it has
    them (:func:`~aekit.data.names.in_named_order`), else by position.

    Raises
    ------
    DataError, DataTypeError
        For sparse or non-numeric rows, a shape other than ``(n_rows, n_features)``, columns
        other than ``names``, and unusable values.
    """
    from sklearn.utils.validation import check_array

    X = in_named_order(X, names, who)
    if sp.issparse(X):
        raise DataTypeError(f"{who} takes dense rows: densify them first (X.toarray())")
    with aekit_errors():
        rows = check_array(X, dtype=FLOATS, ensure_all_finite=False, ensure_min_samples=0)
    check_n_features(rows.shape[1], n_features, who)
    check_rows(rows)
    return rows
