"""Text tables (``.csv``, ``.tsv``, ``.txt``): the header, the numbers, the text columns.

:func:`read_delimited` is the reader :mod:`aekit.data.formats` picks for a text table. A first
row that is not all numbers (empty cells aside) is a header; every row must have the header's
number of fields, whichever columns are read; ``#`` is text, not a comment; a file whose first
line another separator splits is refused, naming it. Cells that are
empty or read ``NA``, ``N/A``, ``NaN``, ``null`` or ``None`` (any case; :data:`MISSING_TEXT`)
are missing values.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AekitError, DataError, DataTypeError
from .readers import Columns, Label, Table, as_labels, pick_columns, require
from .textcells import check_text_among_numbers

__all__ = ["MISSING_TEXT", "TEXT_ENCODING", "delimited_names", "read_delimited"]

TEXT_ENCODING = "utf-8-sig"  # a leading byte-order mark (Excel's "CSV UTF-8") is not text
MISSING_TEXT = frozenset({"", "na", "n/a", "nan", "null", "none"})  # empty cells → NaN
_OTHER_SEPARATORS = {",": "','", ";": "';'", "\t": "tabs", None: "spaces"}


def read_delimited(path: Path, columns: Columns, label_column: Label, *, sep: str) -> Table:
    """A text table with fields separated by ``sep``; a header row is detected."""
    first, names = _header(path, sep)
    label_idx, feature_idx = pick_columns(path, names, len(first), columns, label_column)
    skip = int(names is not None)
    if feature_idx != list(range(len(first))):  # loadtxt checks the widths of whole rows only
        ragged = _ragged_row(path, sep, skip, len(first))
        if ragged is not None:
            raise ragged
    options = {
        "delimiter": sep, "skiprows": skip, "quotechar": '"', "encoding": TEXT_ENCODING,
        "comments": None,  # a cell may start with "#": text, as pandas reads it
    }  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "input contained no data" → checked below
        try:
            labels = None
            if label_idx is not None:
                raw = np.loadtxt(path, ndmin=1, dtype=str, usecols=[label_idx], **options)
                labels = as_labels(raw)
            if feature_idx:
                every = feature_idx == list(range(len(first)))
                X = _read_numbers(path, None if every else feature_idx, options)
            else:
                X = np.empty((0 if labels is None else len(labels), 0))
        except ValueError as exc:
            problem = _explain_bad_text(path, sep, skip, len(first), feature_idx, names)
            if not isinstance(problem, DataTypeError):
                raise problem from exc
            X = _read_text_columns(path, sep, names, feature_idx)
    if X.shape[0] == 0 and (labels is None or len(labels) == 0):
        raise DataError(f"{path} has no data rows")
    feature_names = None if names is None else [names[i] for i in feature_idx]
    return Table(X, labels, feature_names)


def _header(path: Path, sep: str) -> tuple[list[str], list[str] | None]:
    """The first row of a text table, and its names if it is a header.

    A header is a row with a field that is neither a number nor empty, or ``0,1,...,n-1``
    over 3 columns or more (pandas' header of unnamed columns), or that with an empty first
    field (pandas' row index, which would be read as a feature: a DataError, as is an empty
    file and any other header leaving a column unnamed). A row of numbers with empty cells
    is data with holes. A first line that another separator splits (``np.savetxt``'s spaces
    in a ``.txt``, ``;`` in a ``.csv``) is a DataError naming it (:func:`_check_separator`).
    """
    try:
        with path.open(encoding=TEXT_ENCODING, newline="") as handle:
            rows = csv.reader(handle, delimiter=sep)
            first, second = next(rows, []), next(rows, [])
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path} as text ({exc})") from exc
    if not first or first == [""]:
        raise DataError(f"{path} is empty")
    _check_separator(path, sep, first, second)
    fields = [c.strip() for c in first]
    unnamed = [str(i) for i in range(len(fields))]
    pandas_labels = len(fields) >= 3 and fields == unnamed
    pandas_index = len(fields) >= 2 and fields[0] == "" and fields[1:] == unnamed[:-1]
    numbers = [c for c in fields if c]
    if numbers and all(map(_is_number, numbers)) and not (pandas_labels or pandas_index):
        return first, None
    if "" in fields:
        at = fields.index("")
        hint = "pandas writes its row index so (DataFrame.to_csv without index=False): save "
        hint = hint + "without it, or name the column" if at == 0 else "name it"
        raise DataError(f"{path}: column {at} of the header has no name; {hint}")
    return first, fields


def _check_separator(path: Path, sep: str, first: list[str], second: list[str]) -> None:
    """Refuse a one-field ``first`` row that another separator splits, where the file shows it.

    It does where the parts are numbers, the next row has several fields, or the next row
    splits into as many parts: then the file is not one column (a header ``house price``
    over one column of numbers is).
    """
    for other, shown in _OTHER_SEPARATORS.items():
        parts = first[0].split(other) if len(first) == 1 and other != sep else []
        if len(parts) < 2:
            continue
        alike = len(second) == 1 and len(second[0].split(other)) == len(parts)
        if all(map(_is_number, parts)) or len(second) > 1 or alike:
            raise DataError(
                f"{path} reads as one column whose first line {shown} split into "
                f"{len(parts)} fields: aekit reads the fields of a "
                f"{path.suffix.lower() or 'text'} file separated by {_OTHER_SEPARATORS[sep]}"
            )


def delimited_names(path: Path, *, sep: str) -> list[str] | None:
    """The header names of a text table (None when its first row is numbers): one line read."""
    return _header(path, sep)[1]


def _read_text_columns(
    path: Path, sep: str, names: list[str] | None, feature_idx: list[int]
) -> Any:
    """The feature columns of a text table with text in them, as a pandas DataFrame."""
    require("pandas", f"reading the text columns of {path}")
    import pandas as pd

    try:
        table = pd.read_csv(
            path, sep=sep, header=None if names is None else 0, usecols=feature_idx,
            skipinitialspace=True,
        )  # fmt: skip
    except (ValueError, OSError) as exc:
        raise DataError(f"cannot read {path} as a table ({exc})") from exc
    if names is None:
        table.columns = list(range(table.shape[1]))
    check_text_among_numbers(table, path)
    return table.iloc[:, [sorted(feature_idx).index(i) for i in feature_idx]]


def _read_numbers(path: Path, usecols: list[int] | None, options: dict[str, Any]) -> np.ndarray:
    """The numeric cells of a text table; empty (or NA, null) cells become NaN, missing values.

    The fast reader first; a file it refuses is read again cell by cell with missing cells.
    """
    try:
        return np.loadtxt(path, ndmin=2, dtype=np.float64, usecols=usecols, **options)
    except ValueError:
        return np.loadtxt(
            path, ndmin=2, dtype=np.float64, usecols=usecols, converters=_cell, **options
        )


def _cell(text: str) -> float:
    return np.nan if text.strip().lower() in MISSING_TEXT else float(text)


def _rows(path: Path, sep: str, skip: int) -> Any:
    """``(line, fields)`` of each non-blank row after the first ``skip`` lines."""
    with path.open(encoding=TEXT_ENCODING, newline="") as handle:
        for line, row in enumerate(csv.reader(handle, delimiter=sep), start=1):
            if line > skip and row:
                yield line, row


def _ragged_row(path: Path, sep: str, skip: int, width: int) -> DataError | None:
    """The first row whose number of fields is not ``width`` (the first row's), or None."""
    for line, row in _rows(path, sep, skip):
        if len(row) != width:
            return DataError(f"{path} line {line} has {len(row)} fields, expected {width}")
    return None


def _explain_bad_text(
    path: Path, sep: str, skip: int, width: int, feature_idx: list[int], names: list[str] | None
) -> AekitError:
    """Find the first ragged row or non-numeric cell and say where it is."""
    for line, row in _rows(path, sep, skip):
        if len(row) != width:
            return DataError(f"{path} line {line} has {len(row)} fields, expected {width}")
        for i in feature_idx:
            if not _is_number(row[i]) and row[i].strip().lower() not in MISSING_TEXT:
                column = repr(names[i]) if names else f"{i} (0-based)"
                return DataTypeError(
                    f"{path} column {column} holds a non-numeric value {row[i]!r} at "
                    f"line {line}; pick numeric columns or name it as the label column"
                )
    return DataError(f"{path} is not a numeric table with fields separated by {sep!r}")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
