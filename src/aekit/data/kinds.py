"""What a table's column is, from its dtype (and an ``object`` column's values): the one home.

Every path that takes a pandas DataFrame asks here what each column is:

- **numbers** (:func:`holds_numbers`): integer and float dtypes (NumPy's, pandas' nullable
  ``Int64``/``Float64``, pyarrow's, pyarrow decimals), and an ``object`` column whose every
  present value is a number (Python or NumPy ints and floats, ``Decimal``), as pandas'
  ``infer_objects`` and scikit-learn read it; not booleans, which are categorical;
- **dates and times** (:func:`refuse_times`): datetime (tz-aware too), timedelta, period and
  pyarrow date/time/duration columns, and ``object`` columns of such values: refused, naming
  the column (aekit does not guess what a date means as a number);
- anything else (text, ``category``, booleans, mixed values) is categorical
  (:mod:`aekit.data.tables`).

:func:`column_numbers` is THE conversion of a column taken as numbers into float64, NaN for
every missing cell (NaN, None, ``pd.NA``, ``NaT``): dates and times refused by
:func:`refuse_times`, a cell that is not a number named with its row (:func:`first_text`).
:func:`numeric_frame` applies it to the columns of a DataFrame whose dtype scikit-learn's
conversion would not read as numbers, before that conversion.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ..errors import DataError, DataTypeError

__all__ = [
    "column_numbers",
    "first_text",
    "holds_numbers",
    "is_number_dtype",
    "numeric_frame",
    "refuse_times",
]

# pandas' infer_dtype of an object column's present values
_NUMBER_VALUES = frozenset({"integer", "floating", "mixed-integer-float", "decimal"})
_TIME_VALUES = frozenset(
    {"datetime64", "datetime", "date", "timedelta64", "timedelta", "time", "period"}
)


def _inferred(values: Any) -> str:
    """What an ``object`` column's present values are, in pandas' ``infer_dtype`` words.

    ``"empty"`` for a column of another dtype, as for one with no present value.
    """
    import pandas as pd

    if getattr(values.dtype, "kind", "O") != "O" or isinstance(values.dtype, pd.CategoricalDtype):
        return "empty"
    return str(pd.api.types.infer_dtype(values, skipna=True))


def is_number_dtype(dtype: Any) -> bool:
    """Integers and floats (NumPy, nullable, pyarrow, pyarrow decimals); not booleans."""
    import pandas as pd

    if isinstance(dtype, pd.CategoricalDtype):
        return False
    kind = getattr(dtype, "kind", "O")
    if kind in "iuf":
        return True
    return kind == "O" and not isinstance(dtype, np.dtype) and pd.api.types.is_numeric_dtype(dtype)


def holds_numbers(values: Any) -> bool:
    """Whether a column (a pandas Series) is numbers: by its dtype, or its values if ``object``.

    An ``object`` column counts when every present value is an int, a float or a ``Decimal``
    (booleans do not count: ``[True, 1]`` stays categorical); one with no present value does
    not.
    """
    if is_number_dtype(values.dtype):
        return True
    inferred = _inferred(values)
    if inferred in _NUMBER_VALUES:
        return True
    if inferred != "mixed":  # (Decimal beside floats is "mixed" to pandas)
        return False
    present = values[values.notna()]
    return all(
        isinstance(v, numbers.Number) and not isinstance(v, (bool, np.bool_, complex))
        for v in present
    )


def refuse_times(name: Any, values: Any) -> None:
    """Refuse a column of dates, times, durations or periods (or complex numbers), naming it.

    By dtype (datetime64, tz-aware, timedelta64, period, pyarrow timestamp/date/time/duration,
    complex) or, for an ``object`` column, by its values (``datetime.date``, ``Timestamp``...).

    Raises
    ------
    DataTypeError
        ``column 'when' holds datetime64[ns] values: aekit does not encode dates, ...``.
    """
    import pandas as pd

    dtype = values.dtype
    time_dtype = getattr(dtype, "kind", "O") in "mMc" or isinstance(
        dtype, (pd.PeriodDtype, pd.DatetimeTZDtype)
    )
    if time_dtype or _arrow_time(dtype):
        found = f"{dtype} values"
    elif _inferred(values) in _TIME_VALUES:
        found = f"{_inferred(values)} values (dtype object)"
    else:
        return
    raise DataTypeError(
        f"column {name!r} holds {found}: aekit does not encode dates, times or complex "
        "numbers; turn them into numbers first (a timestamp, a day of the year) or drop the "
        "column"
    )


def _arrow_time(dtype: Any) -> bool:
    """A pyarrow time-of-day column (kind ``O`` to pandas, unlike pyarrow dates and stamps)."""
    import pandas as pd

    if not isinstance(dtype, pd.ArrowDtype):
        return False
    import pyarrow as pa

    return bool(pa.types.is_temporal(dtype.pyarrow_dtype))


def column_numbers(values: Any, name: Any) -> np.ndarray:
    """A column taken as numbers, as float64 with NaN for every missing cell.

    ``values``: a pandas Series of any dtype (``category`` columns give their values, not
    their codes; booleans 0 and 1; numeric text its numbers).

    Raises
    ------
    DataTypeError
        A column of dates, times or durations (:func:`refuse_times`).
    DataError
        A cell that is not a number, named with its row (:func:`first_text`).
    """
    refuse_times(name, values)
    try:
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        found = first_text(values.to_frame(name)) or f"column {name!r}: {exc}"
        raise DataError(f"non-numeric input: {found}") from exc


def numeric_frame(X: Any) -> Any:
    """A DataFrame whose every column scikit-learn reads as numbers; other input unchanged.

    The columns whose dtype is neither numbers nor booleans (text, ``object``, ``category``,
    dates) go through :func:`column_numbers`: so a date column is refused by name, not
    read as nanoseconds or refused in NumPy's words, and ``pd.NA`` in a text column of
    numbers is a missing value. Frames of numbers come back as they are (no copy).
    """
    import pandas as pd

    if not isinstance(X, pd.DataFrame):
        return X
    other = [
        j
        for j, dtype in enumerate(X.dtypes)
        if not (is_number_dtype(dtype) or pd.api.types.is_bool_dtype(dtype))
    ]
    if not other:
        return X
    X = X.copy(deep=False)
    for j in other:
        X.isetitem(j, column_numbers(X.iloc[:, j], X.columns[j]))
    return X


def first_text(rows: Any) -> str | None:
    """Where a table's first non-numeric cell is: ``"column 'b' holds 'x' (first at row 0)"``.

    ``rows``: a DataFrame, or a 2-D array of objects (columns numbered from 0); None for
    anything else, or when every cell reads as a number.
    """
    named = getattr(rows, "columns", None) is not None
    if not named and not (isinstance(rows, np.ndarray) and rows.dtype.kind == "O"):
        return None
    import pandas as pd

    rows = rows if named else pd.DataFrame(np.atleast_2d(rows))
    for j, name in enumerate(rows.columns):
        column = rows.iloc[:, j]
        if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
            continue
        try:
            numbers = pd.to_numeric(column.astype(object), errors="coerce")
        except (TypeError, ValueError):  # cells pandas cannot even try (lists, dicts)
            numbers = pd.Series(np.nan, index=column.index)
        bad = np.flatnonzero((numbers.isna() & column.notna()).to_numpy())
        if len(bad):
            shown = repr(name) if isinstance(name, str) else name
            value = repr(column.iloc[bad[0]])[:40]
            return f"column {shown} holds {value} (first at row {bad[0]}), not a number"
    return None
