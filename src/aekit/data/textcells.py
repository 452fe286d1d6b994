"""Text cells among numbers: a column of numbers with a few texts (``?``, ``-``) that mark holes.

Read as text, such a column would become categorical: its numbers categories, the marker
cells one category more, kept as they are where a hole would be filled. Every reader of text
(a text table's columns, a parquet file's string columns) refuses it with
:func:`check_text_among_numbers`; texts the caller names as missing-value markers
(``aekit impute --missing-values '?'``) make such a column numbers with holes instead: a
text table's reader is told them (pandas' ``na_values``), a parquet file's string columns go
through :func:`marked_numbers`. A DataFrame's column given to an estimator is refused alike
(:func:`check_marked_column`, from :meth:`aekit.data.tables.TableLayout.fit`).
"""

from __future__ import annotations

import os
from collections.abc import Collection
from typing import Any

import numpy as np

from ..errors import DataError

__all__ = ["check_marked_column", "check_text_among_numbers", "marked_numbers", "marker_cells"]


_FEW_MARKERS = 3  # distinct texts in a column of numbers that read as markers, not categories


def check_text_among_numbers(table: Any, path: str | os.PathLike[str]) -> None:
    """Refuse a column of numbers with a few text cells (``?``, ``-``, ``n.a.``), naming them.

    ``table``: a text table's columns, or a parquet file's (its string columns are looked
    at). A column counts when most of its cells are numbers and at most three distinct texts
    are not.

    Raises
    ------
    DataError
        Naming the column, the texts, their count and first row (0-based, after the header).
    """
    for name in table.columns:
        _refuse(
            _markers(table[name]),
            f"{path} column {str(name)!r}",
            "if it marks a missing value, leave those cells empty (or pass aekit impute "
            "--missing-values {text!r}); else fix them",
        )


def check_marked_column(name: Any, values: Any) -> None:
    """:func:`check_text_among_numbers` for a DataFrame's column given to an estimator.

    Read as categories, its numbers would each be one, the marker cells one more; a
    ``category`` column, or one named in ``categorical_features``, is not checked.

    Raises
    ------
    DataError
        Naming the column, the texts, their count and first row, and the two ways out.
    """
    _refuse(
        _markers(values),
        f"column {name!r}",
        f"if it marks a missing value, make those cells NaN and the column numbers "
        f"(X[{name!r}] = pd.to_numeric(X[{name!r}].replace({{text!r}}, np.nan))); if the "
        "column is categorical, make it a 'category' column or name it in "
        "categorical_features",
    )


def _refuse(found: tuple[str, int, int, str] | None, where: str, advice: str) -> None:
    """Raise the one-line error for a column with marker texts (``found``), if it has any.

    ``advice`` is formatted with the first text as ``text``.
    """
    if found is not None:
        shown, count, first, text = found
        raise DataError(
            f"{where} holds numbers and the text {shown} ({count} cell(s), first at row "
            f"{first}): " + advice.format(text=text)
        )


def _markers(column: Any) -> tuple[str, int, int, str] | None:
    """(the texts shown, their cell count, first row, first text) of a marked column, or None."""
    import pandas as pd

    if not _texts(column):
        return None
    present = column[column.notna()].astype(str)
    numbers = pd.to_numeric(present, errors="coerce").notna().to_numpy()
    texts = present[~numbers]
    if not 2 * numbers.sum() > len(present) or not 0 < texts.nunique() <= _FEW_MARKERS:
        return None
    shown = ", ".join(repr(t) for t in dict.fromkeys(texts))
    first = int(np.flatnonzero(column.index == texts.index[0])[0])
    return shown, len(texts), first, str(texts.iloc[0])


def _texts(column: Any) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column))


def marked_numbers(table: Any, missing: Collection[str]) -> Any:
    """``table`` with each text column of numbers and ``missing`` markers read as numbers.

    A column counts when it holds a ``missing`` text and every other cell present is a
    number: the marked cells become missing (``pd.NA``), the column nullable numbers (as a
    text table's reader makes it with those markers). Other columns are left as they are.

    Parameters
    ----------
    table : DataFrame
        Columns read with their kinds (a parquet file's, nullable dtypes).
    missing : collection of str
        The texts that mark a missing cell.

    Returns
    -------
    DataFrame
        ``table`` itself when no column changed, else a copy.
    """
    import pandas as pd

    out = table
    for name in table.columns:
        column = table[name]
        if not missing or not _texts(column):
            continue
        present = column[column.notna()].astype(str)
        marked = present.isin(set(missing))
        if not marked.any():
            continue
        numbers = pd.to_numeric(present[~marked], errors="coerce").notna().to_numpy()
        if numbers.all():
            out = out.copy() if out is table else out
            holes = column.mask(column.isin(list(missing)))
            out[name] = pd.to_numeric(holes, dtype_backend="numpy_nullable")
    return out


def marker_cells(table: Any, markers: Collection[Any]) -> Any:
    """Which cells of DataFrame ``table`` hold one of ``markers``: a bool DataFrame.

    As ``table.isin(markers)``, but a boolean cell is never a number's marker: Python counts
    ``False == 0`` and ``True == 1``, so ``missing_values=0`` would make every ``False`` of a
    boolean column a hole (a boolean marker, ``False``, still marks them). NA is no marker.
    """
    import pandas as pd

    marked = table.isin(list(markers))
    if any(isinstance(m, (bool, np.bool_)) for m in markers):
        return marked
    for j in np.flatnonzero(marked.to_numpy().any(axis=0)):
        column = table.iloc[:, j]
        if pd.api.types.is_bool_dtype(column.dtype):
            marked.iloc[:, j] = False
        elif column.dtype == object:
            flags = column.map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy(bool)
            marked.iloc[flags, j] = False
    return marked
