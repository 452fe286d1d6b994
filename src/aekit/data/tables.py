"""Tables with categorical columns: one-hot blocks into the model, categories back out.

A :class:`TableLayout` is fitted from a pandas DataFrame (``category``, text, ``bool`` and mixed
``object`` columns are categorical; numeric ones, and ``object`` columns of numbers alone, are
numeric: :func:`~aekit.data.kinds.holds_numbers`) or from an array whose integer-coded
columns ``categorical_features`` names (by index, by name, or as a boolean mask, as scikit-learn's
``HistGradientBoosting*`` take it). :meth:`TableLayout.encode` expands each categorical column
into a one-hot block of float columns (numeric columns pass through), the rows the network
sees; :meth:`TableLayout.decode` takes each block's most probable category and gives back the
input's columns, in their order, with their dtypes (a ``category`` column with the same
categories, ``bool``, ``object``, strings; numeric columns come back as floats, a
reconstruction being no integer).

Rules, stated once here:

- **Missing values** (NaN, None, ``pd.NA``) in a categorical column make its whole block NaN;
  the input check then treats those entries as missing.
- **Unseen categories** at ``encode`` (a value absent when the layout was fitted) are treated as
  missing too, with an :class:`~aekit.errors.AekitWarning` naming the column and the values.
- **Too many categories**: a column with more than ``max_categories`` distinct values (a
  free-text or identifier column) is a :class:`~aekit.errors.DataError` naming the column and
  its count.
- **Dates and times** (datetime, timedelta, period columns, ``object`` columns of dates),
  at ``fit`` and where a numeric column gets them at ``encode``, are a
  :class:`~aekit.errors.DataTypeError` naming the column
  (:func:`~aekit.data.kinds.refuse_times`): turn them into numbers first (a
  timestamp, a day of the year) or drop them.

The layout is JSON (:meth:`TableLayout.to_dict`, saved in a model's ``config.json``): the
categories are JSON strings, numbers and booleans, nothing is pickled.
"""

from __future__ import annotations

import math
import numbers
import re
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import AekitWarning, ConfigError, DataError, DataTypeError, ModelFileError
from .kinds import column_numbers, holds_numbers, is_number_dtype, refuse_times
from .names import check_unique_names
from .readers import require
from .textcells import check_marked_column

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MAX_CATEGORIES", "Column", "TableLayout", "fit_layout", "needs_layout"]

MAX_CATEGORIES = 50  # the estimator's default max_categories (config/options.py)

_SHOWN = 5  # values named in a message about unseen categories


@dataclass(frozen=True)
class Column:
    """One input column: numeric, or categorical with its categories (one-hot block order).

    Attributes
    ----------
    name : str or int
        The column's name (an array's columns are named by their 0-based index).
    dtype : str
        The input's dtype, restored by :meth:`TableLayout.decode` (``"category"``,
        ``"bool"``, ``"object"``, ``"str"``, ``"int64"``...).
    categories : tuple or None
        The categories of a categorical column (None for a numeric one).
    ordered : bool
        A ``category`` dtype's ``ordered`` flag.
    """

    name: str | int
    dtype: str
    categories: tuple[Any, ...] | None = None
    ordered: bool = False

    @property
    def width(self) -> int:
        """Columns it takes in the encoded rows: 1, or one per category."""
        return 1 if self.categories is None else len(self.categories)


class TableLayout:
    """How a table's columns map to the model's float columns, and back.

    Parameters
    ----------
    columns : sequence of Column
        The input columns, in order.
    frame : bool
        Fitted from a DataFrame: :meth:`decode` returns one (an array otherwise).
    """

    def __init__(self, columns: Sequence[Column], frame: bool) -> None:
        self.columns = tuple(columns)
        self.frame = bool(frame)
        starts = np.cumsum([0, *(c.width for c in self.columns)])
        self.starts = starts[:-1]
        self.width = int(starts[-1])

    # -- fitting -------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        X: Any,
        categorical_features: Any = None,
        max_categories: int = MAX_CATEGORIES,
    ) -> TableLayout:
        """The layout of ``X``: its categorical columns and their categories.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
        categorical_features : None, sequence of str or int, boolean mask, or str
            Columns to treat as categorical besides those a DataFrame's dtypes make
            categorical: names, 0-based indices, a boolean mask over the columns, or a
            comma-separated string of names or indices (the command line's form).
        max_categories : int
            The most distinct values a categorical column may have.

        Raises
        ------
        DataError
            A column with more than ``max_categories`` values, or a category that is not
            a string, number or boolean.
        DataTypeError
            A date/time (or complex) column.
        ConfigError
            ``categorical_features`` names no column of ``X``.
        """
        if (
            isinstance(max_categories, bool)
            or not isinstance(max_categories, (int, np.integer))
            or max_categories < 1
        ):
            raise ConfigError(f"max_categories must be a positive integer, got {max_categories!r}")
        require("pandas", "a table with categorical columns")
        import pandas as pd

        frame = isinstance(X, pd.DataFrame)
        table = _as_frame(X)
        chosen = _chosen(table, categorical_features)
        columns = [_fit_column(name, table[name], name in chosen, max_categories) for name in table]
        return cls(columns, frame)

    # -- what the model needs -------------------------------------------------------------
    @property
    def n_columns(self) -> int:
        """Number of input columns."""
        return len(self.columns)

    @property
    def names(self) -> list[str | int]:
        """The input columns' names."""
        return [c.name for c in self.columns]

    @property
    def blocks(self) -> tuple[tuple[int, int], ...]:
        """``(start, stop)`` of each categorical column's one-hot block in the encoded rows."""
        return tuple(
            (int(s), int(s) + c.width)
            for s, c in zip(self.starts, self.columns, strict=True)
            if c.categories is not None
        )

    # -- encoding ---------------------------------------------------------------------------
    def encode(self, X: Any, dtype: Any = np.float32) -> np.ndarray:
        """Rows → the model's float columns: one-hot blocks for categorical columns.

        A missing value makes its block NaN; an unseen category too, with an
        :class:`~aekit.errors.AekitWarning` naming the column and the values.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_columns)
            Columns by name for a DataFrame fitted from a DataFrame, by position otherwise.
        dtype : numpy dtype, default=float32

        Returns
        -------
        ndarray of shape (n_samples, width)
        """
        import pandas as pd

        table = _as_frame(X)
        if table.shape[1] != self.n_columns:
            raise DataError(f"X has {table.shape[1]} columns, the layout {self.n_columns}")
        if self.frame and isinstance(X, pd.DataFrame) and all(n in table for n in self.names):
            table = table[self.names]
        out = np.zeros((len(table), self.width), dtype=dtype)
        for j, (start, column) in enumerate(zip(self.starts, self.columns, strict=True)):
            values = table.iloc[:, j]
            if column.categories is None:
                out[:, start] = column_numbers(values, column.name)
            else:
                out[:, start : start + column.width] = _one_hot(values, column)
        return out

    def as_numbers(self, table: pd.DataFrame, encoded: np.ndarray) -> pd.DataFrame:
        """A copy of ``table`` whose numeric columns given in another dtype are float64.

        A column numeric in the layout that came as text, booleans or ``object`` values gets
        its numbers from ``encoded`` (:meth:`encode` of ``table``), so that numbers can be
        written into it (the imputer's fills); columns of numbers keep their dtype.
        """
        out = table.copy()
        for j, (start, column) in enumerate(zip(self.starts, self.columns, strict=True)):
            if column.categories is None and not is_number_dtype(out.dtypes.iloc[j]):
                out.isetitem(j, encoded[:, start])
        return out

    def decode(self, encoded: np.ndarray) -> pd.DataFrame | np.ndarray:
        """Encoded rows (or reconstructions) → the input's columns and dtypes.

        Each block's largest entry picks the category (probabilities or one-hot alike).
        Returns a DataFrame when the layout was fitted from one, else an array (float where
        every column is numeric, object otherwise).
        """
        import pandas as pd

        encoded = np.asarray(encoded)
        if encoded.ndim != 2 or encoded.shape[1] != self.width:
            raise DataError(f"expected rows of {self.width} encoded columns, got {encoded.shape}")
        data = {}
        for start, column in zip(self.starts, self.columns, strict=True):
            part = encoded[:, start : start + column.width]
            data[column.name] = _decoded(part, column)
        table = pd.DataFrame(data, columns=self.names)
        return table if self.frame else table.to_numpy()

    # -- JSON -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``config.json`` stores)."""
        return {
            "frame": self.frame,
            "columns": [
                {
                    "name": c.name,
                    "dtype": c.dtype,
                    "categories": None if c.categories is None else list(c.categories),
                    "ordered": c.ordered,
                }
                for c in self.columns
            ],
        }

    @classmethod
    def from_dict(cls, data: object) -> TableLayout:
        """Rebuild from :meth:`to_dict` output, refusing anything else.

        Raises
        ------
        ModelFileError
            A missing or mistyped key.
        """
        ok = isinstance(data, dict) and set(data) == {"frame", "columns"}
        ok = ok and isinstance(data["frame"], bool) and isinstance(data["columns"], list)
        if not ok:
            raise ModelFileError("the table layout must be {'frame': bool, 'columns': [...]}")
        return cls([_column_from_dict(c) for c in data["columns"]], data["frame"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TableLayout) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        kinds = sum(c.categories is not None for c in self.columns)
        return f"TableLayout({self.n_columns} columns, {kinds} categorical, width {self.width})"


def needs_layout(X: Any, categorical_features: Any = None) -> bool:
    """Whether ``X`` has categorical columns: a layout must encode it for the model.

    True when ``categorical_features`` names columns, or ``X`` is a DataFrame with a column
    that is not numbers (:func:`~aekit.data.kinds.holds_numbers`: category, text, booleans,
    mixed values, or a date/time column, which :meth:`TableLayout.fit` refuses by name).
    """
    if _given(categorical_features):
        return True
    pd = sys.modules.get("pandas")  # without pandas imported, X is no DataFrame
    if pd is None or not isinstance(X, pd.DataFrame):
        return False
    return not all(holds_numbers(X.iloc[:, j]) for j in range(X.shape[1]))


def fit_layout(X: Any, categorical_features: Any, max_categories: int) -> TableLayout | None:
    """The layout of ``X`` where it needs one (:func:`needs_layout`), else None."""
    if not needs_layout(X, categorical_features):
        return None
    return TableLayout.fit(X, categorical_features, max_categories)


# -- helpers -----------------------------------------------------------------------------------
def _given(categorical_features: Any) -> bool:
    if categorical_features is None:
        return False
    if isinstance(categorical_features, str):
        return bool(categorical_features.strip())
    if not hasattr(categorical_features, "__len__"):  # 1, True, 1.0: not a list of columns
        raise ConfigError(
            f"categorical_features={categorical_features!r} must be a list of column names, "
            "positions or a boolean mask (e.g. [1]), or a comma-separated string"
        )
    return bool(len(categorical_features))


def _as_frame(X: Any) -> pd.DataFrame:
    import pandas as pd

    if isinstance(X, pd.DataFrame):
        check_unique_names(X)
        return X
    array = np.asarray(X)
    if array.ndim != 2:
        raise DataError(f"expected a 2-D table, got an array of shape {array.shape}")
    return pd.DataFrame(array)


def _chosen(table: pd.DataFrame, spec: Any) -> set[Any]:
    """The column names ``categorical_features`` picks."""
    if not _given(spec):
        return set()
    names = list(table.columns)
    if isinstance(spec, str):
        spec = [s.strip() for s in spec.split(",") if s.strip()]
        spec = [int(s) if s.isdigit() and s not in names else s for s in spec]
    values = np.asarray(spec)
    if values.dtype == bool:
        if len(values) != len(names):
            raise ConfigError(
                f"categorical_features is a mask of {len(values)} entries, X has "
                f"{len(names)} columns"
            )
        return {n for n, keep in zip(names, values, strict=True) if keep}
    chosen = set()
    for item in spec:
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            if not 0 <= item < len(names):
                raise ConfigError(
                    f"categorical_features: no column {item} (X has {len(names)} columns)"
                )
            chosen.add(names[int(item)])
        elif item in names:
            chosen.add(item)
        else:
            raise ConfigError(f"categorical_features: X has no column {item!r}")
    return chosen


def _fit_column(name: Any, values: pd.Series, chosen: bool, max_categories: int) -> Column:
    import pandas as pd

    if not isinstance(name, (str, int, np.integer)) or isinstance(name, bool):
        raise DataError(f"column names must be strings or integers, got {name!r}")
    name = name if isinstance(name, str) else int(name)
    dtype = values.dtype
    refuse_times(name, values)
    if not chosen and holds_numbers(values):
        return Column(name, str(dtype))
    if isinstance(dtype, pd.CategoricalDtype):
        categories, ordered = list(dtype.categories), bool(dtype.ordered)
    else:
        if not chosen:  # numbers with a few texts ("?"): holes, not categories
            check_marked_column(name, values)
        present = values[values.notna()]
        try:
            present = present.unique()
        except TypeError:  # unhashable cells (dicts, lists): not categories
            odd = next(v for v in present if not isinstance(v, (str, numbers.Number)))
            raise DataTypeError(
                f"column {name!r} holds {type(odd).__name__} values such as {odd!r:.40}: a "
                "category must be a string, a number or a boolean"
            ) from None
        categories, ordered = _sorted(list(present)), False
    if len(categories) > max_categories:
        grouped = [
            m for v in categories if isinstance(v, str) and (m := _GROUPED.fullmatch(v.strip()))
        ]
        raise DataError(
            f"column {name!r} has {len(categories)} distinct values, more than "
            f"max_categories={max_categories}: "
            + (
                f"numbers written with thousands separators (such as {grouped[0][0]!r})? "
                f"read them as numbers first (pandas.read_csv(..., "
                f"thousands={grouped[0][1][0]!r}"
                + (", decimal=','" if (grouped[0][2] or "").startswith(",") else "")
                + "))"
                if len(grouped) * 2 > len(categories)
                else "a free-text or identifier column? drop it, or raise max_categories"
            )
        )
    if not categories:
        raise DataError(f"column {name!r} has no values (every entry is missing)")
    return Column(name, str(dtype), tuple(_json_scalar(name, v) for v in categories), ordered)


_GROUPED = re.compile(r"[+-]?\d{1,3}([,.' ]\d{3})+([.,]\d+)?")  # '1,234.5', '1.234,5'


def _sorted(values: list[Any]) -> list[Any]:
    try:
        return sorted(values)
    except TypeError:  # mixed types: by type name, then value
        return sorted(values, key=lambda v: (type(v).__name__, str(v)))


def _json_scalar(name: Any, value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise DataError(f"column {name!r} has the category {value!r}: categories must be finite")
    if not isinstance(value, (str, bool, int, float)):
        raise DataError(
            f"column {name!r} has the category {value!r} ({type(value).__name__}): categories "
            "must be strings, numbers or booleans"
        )
    return value


def _kind(values: list[Any]) -> str | None:
    """``"text"`` or ``"numbers"`` where every value is one of them, else None."""
    numbers = all(isinstance(v, (int, float, np.number)) and type(v) is not bool for v in values)
    return "text" if all(isinstance(v, str) for v in values) else "numbers" if numbers else None


def _one_hot(values: pd.Series, column: Column) -> np.ndarray:
    import pandas as pd

    categories = list(column.categories or ())
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(object)
    codes = pd.Index(categories, dtype=object).get_indexer(values.astype(object))
    missing = np.asarray(values.isna())
    unseen = (codes < 0) & ~missing
    if unseen.any():
        found = list(dict.fromkeys(values[unseen].tolist()))
        shown = ", ".join(map(repr, found[:_SHOWN])) + (", ..." if len(found) > _SHOWN else "")
        kinds = [_kind(found), _kind(categories)]  # "1" in one file, 1.0 in another
        if unseen.sum() == (~missing).sum() and None not in kinds and kinds[0] != kinds[1]:
            raise DataError(
                f"column {column.name!r}: none of its values ({shown}, {kinds[0]}) was seen in "
                f"fit, whose categories were {kinds[1]}: store the column as one kind in both"
            )
        warnings.warn(
            f"column {column.name!r}: {len(found)} value(s) not seen in fit ({shown}) in "
            f"{int(unseen.sum())} row(s), treated as missing",
            AekitWarning,
            stacklevel=4,
        )
    block = np.zeros((len(codes), len(categories)))
    known = codes >= 0
    block[np.flatnonzero(known), codes[known]] = 1.0
    block[~known] = np.nan
    return block


def _decoded(part: np.ndarray, column: Column) -> Any:
    import pandas as pd

    if column.categories is None:
        return part[:, 0].astype(np.float32 if column.dtype == "float32" else np.float64)
    index = np.argmax(np.nan_to_num(part, nan=-np.inf), axis=1)
    categories = list(column.categories)
    if column.dtype == "category":
        dtype = pd.CategoricalDtype(categories, ordered=column.ordered)
        return pd.Categorical.from_codes(index, dtype=dtype)
    values = np.empty(len(categories), dtype=object)
    values[:] = categories
    picked = values[index]
    if column.dtype == "object":
        return pd.Series(picked, dtype=object)
    return pd.Series(list(picked)).astype(column.dtype)


def _column_from_dict(data: object) -> Column:
    keys = {"name", "dtype", "categories", "ordered"}
    if not isinstance(data, dict) or set(data) != keys:
        raise ModelFileError(f"a table column must have the keys {sorted(keys)}, got {data!r:.80}")
    name, dtype, categories, ordered = (data[k] for k in ("name", "dtype", "categories", "ordered"))
    ok = isinstance(name, (str, int)) and not isinstance(name, bool) and isinstance(dtype, str)
    ok = ok and isinstance(ordered, bool)
    ok = ok and (
        categories is None
        or (
            isinstance(categories, list)
            and categories
            and all(isinstance(v, (str, int, float, bool)) for v in categories)
        )
    )
    if not ok:
        raise ModelFileError(f"invalid table column {data!r:.80}")
    return Column(name, dtype, None if categories is None else tuple(categories), ordered)
