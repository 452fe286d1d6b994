"""Whole tables in and out with their column types: what ``aekit impute`` reads and writes.

:func:`read_frame` reads every column of a ``.csv``/``.tsv``/``.txt`` or ``.parquet`` file as a
pandas DataFrame whose columns keep their kinds: an integer column stays integer even where
it has empty cells (pandas' nullable ``Int64``), a text column stays text, a ``true``/``false``
column stays boolean. A ``.npy`` or ``.npz`` file is an ndarray, its dtype kept.
:func:`plain_frame` turns the nullable columns into the NumPy ones the estimators take (NaN
for a missing cell, text and booleans as ``object``); :func:`restore_kinds` turns filled
columns back (an integer column's fills rounded); :func:`write_frame` writes the result in
the format its suffix names (atomically), so ``data.csv`` in gives ``filled.csv`` out with the
same columns, order and kinds.

Missing cells are the ones the readers of :mod:`aekit.data.readers` take as missing: empty,
or ``NA``, ``N/A``, ``NaN``, ``null``, ``None`` (any case).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..files.atomic import atomic_write
from .delimited import MISSING_TEXT
from .formats import check_output, column_names, file_format, read_table, write_array
from .readers import require
from .textcells import check_text_among_numbers, marked_numbers

__all__ = [
    "FRAME_FORMATS",
    "dtype_named",
    "plain_frame",
    "read_frame",
    "restore_kinds",
    "write_frame",
]

FRAME_FORMATS = {"csv": ",", "tsv": "\t", "txt": "\t", "parquet": None}  # read as DataFrames
_ARRAYS = ("npy", "npz")  # read and written as arrays
_NA_TEXT = sorted({v for t in MISSING_TEXT for v in (t, t.upper(), t.title())} - {""})


def read_frame(path: str | os.PathLike[str], missing: Sequence[str] = ()) -> tuple[Any, bool]:
    """Every column of a data file, with its kind; and whether the file names its columns.

    ``missing``: texts that mark a missing cell of a text table, or of a parquet file's string
    column, too (``"?"``, ``"-999"``), so that a column of numbers with such cells is read as
    numbers (:func:`~aekit.data.textcells.marked_numbers`). A column of numbers with a few
    other texts is refused (:func:`~aekit.data.textcells.check_text_among_numbers`); one with
    a number written with a leading zero is text (``02134``). A parquet file's stored index
    (``DataFrame.set_index``) is the frame's index, not a column: :func:`write_frame` keeps it.

    Returns
    -------
    frame : DataFrame or ndarray
        A DataFrame (nullable dtypes) for a text table or parquet file, an ndarray for
        ``.npy``/``.npz``. A text table without a header gets columns ``0, 1, ...``.
    named : bool
        Whether the columns have names from the file (a header, a schema).

    Raises
    ------
    DataError
        Another format (expected ``.csv``, ``.tsv``, ``.txt``, ``.parquet``, ``.npy`` or
        ``.npz``), a sparse ``.npz``, or a file that cannot be read.
    """
    path = Path(path)
    kind = file_format(path).name
    if kind in _ARRAYS:
        X = read_table(path).X
        if not isinstance(X, np.ndarray):
            raise DataError(f"{path} holds sparse rows: impute reads dense rows only")
        return X, False
    if kind not in FRAME_FORMATS:
        raise DataError(
            f"cannot read {path} whole with its column kinds: expected a .csv, .tsv, .txt, "
            f".parquet, .npy or .npz file, got a {kind} file"
        )
    require("pandas", f"reading {path} with its column kinds")
    import pandas as pd

    sep = FRAME_FORMATS[kind]
    names = column_names(path)  # refuses a name given to two columns
    try:
        if sep is None:  # string columns of numbers and markers: numbers, as in a text table
            frame = marked_numbers(_parquet(path), missing)
        else:
            frame = pd.read_csv(
                path, **_text_options(path, sep, names), na_values=[*_NA_TEXT, *missing],
                keep_default_na=True,
            )  # fmt: skip
    except (ValueError, OSError) as exc:
        raise DataError(f"cannot read {path} as a table ({' '.join(str(exc).split())})") from exc
    check_text_among_numbers(frame, path)
    return frame, sep is None or names is not None


def read_verbatim(path: str | os.PathLike[str], columns: Sequence[Any]) -> Any:
    """``columns`` of a text table or parquet file as :func:`read_frame` reads them, but as written.

    No marker and no ``NA``-like text is a missing value: only an empty cell of a text table
    is (and a parquet file's nulls). ``aekit impute`` writes its label and dropped columns so.
    """
    import pandas as pd

    path = Path(path)
    sep = FRAME_FORMATS[file_format(path).name]
    if sep is None:
        return _parquet(path)[list(columns)]
    try:
        return pd.read_csv(
            path, **_text_options(path, sep, column_names(path)), usecols=list(columns),
            keep_default_na=False, na_values={c: [""] for c in columns},
        )  # fmt: skip
    except (ValueError, OSError) as exc:
        raise DataError(f"cannot read {path} as a table ({' '.join(str(exc).split())})") from exc


def _parquet(path: Path) -> Any:
    """A parquet file as a DataFrame with nullable dtypes (a stored index kept as the index)."""
    import pandas as pd

    require("pyarrow", f"reading {path}")
    return pd.read_parquet(path, dtype_backend="numpy_nullable")


def _text_options(path: Path, sep: str, names: list[str] | None) -> dict[str, Any]:
    """``pandas.read_csv``'s options for a text table: header, kinds, numbers as written.

    A column with a number written with a leading zero (``02134``, a code or a postcode) is
    read as text: as an integer it would lose its zeros.
    """
    import pandas as pd

    common = {"sep": sep, "header": None if names is None else 0, "skipinitialspace": True}
    raw = pd.read_csv(path, **common, dtype=str, keep_default_na=False)
    zeros = [c for c in raw.columns if raw[c].str.fullmatch(r"[+-]?0\d+(\.\d*)?").any()]
    return {
        **common, "dtype": dict.fromkeys(zeros, "string"), "dtype_backend": "numpy_nullable",
        "float_precision": "round_trip",  # every observed number exactly as written
    }  # fmt: skip


def plain_frame(frame: Any) -> Any:
    """``frame`` with NumPy dtypes: numbers as float64 (NaN where missing), the rest ``object``.

    Nullable integer and float columns become float64; nullable text and boolean columns
    become ``object`` with NaN in their missing cells; a ``category`` column stays one, and so
    does a date or duration column (which the estimators refuse, naming its dtype).
    """
    import pandas as pd

    out = {}
    for name, column in frame.items():
        dtype = column.dtype
        if isinstance(dtype, pd.CategoricalDtype) or getattr(dtype, "kind", "O") in "mM":
            out[name] = column  # (dates: refused by name and dtype, aekit.data.kinds)
        elif pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
            out[name] = column.astype(object).where(column.notna(), np.nan)
        elif pd.api.types.is_numeric_dtype(dtype):
            out[name] = column.astype("float64")
        else:
            out[name] = column.astype(object).where(column.notna(), np.nan)
    return pd.DataFrame(out, index=frame.index, columns=frame.columns)


def dtype_named(name: str) -> Any:
    """The dtype a saved name (``str(dtype)``) stands for; ``object`` where pandas has none."""
    import pandas as pd

    try:
        return pd.api.types.pandas_dtype(name)
    except TypeError:
        return np.dtype(object)


def restore_kinds(filled: Any, like: Any) -> Any:
    """Filled columns of ``filled`` back in the kinds of ``like`` (the frame as read).

    An integer column's fills are rounded, its observed values kept as read (exact above
    2**53, where a float64 is not); a column that still has a missing cell keeps its
    nullable dtype. Columns of ``like`` absent from ``filled`` are taken from ``like``.
    """
    import pandas as pd

    out = like.copy()
    for name in like.columns:  # a column read nullable and complete: its NumPy kind
        kind = like[name].dtype
        if pd.api.types.is_string_dtype(kind) and not isinstance(kind, np.dtype):
            out[name] = like[name].astype(object).where(like[name].notna(), None)
        elif hasattr(kind, "numpy_dtype") and like[name].notna().all():
            out[name] = like[name].astype(kind.numpy_dtype)
    for name in filled.columns:
        column, kind = filled[name], like[name].dtype
        if pd.api.types.is_integer_dtype(kind) and column.notna().all():
            holes = like[name].isna().to_numpy()  # observed integers as read: a float64
            rounded = np.round(column.astype("float64").to_numpy()[holes])  # loses above 2**53
            column = like[name].copy()
            column[holes] = rounded.astype(getattr(kind, "numpy_dtype", kind))
            column = column.astype(getattr(kind, "numpy_dtype", kind))
        elif pd.api.types.is_bool_dtype(kind) and column.notna().all():
            column = column.astype(bool)
        elif pd.api.types.is_float_dtype(kind) and column.notna().all():
            column = column.astype(getattr(kind, "numpy_dtype", kind))
        elif pd.api.types.is_string_dtype(kind) and not isinstance(kind, np.dtype):
            column = column.astype(object)
        elif not isinstance(kind, pd.CategoricalDtype):
            column = column.astype(kind)
        out[name] = column
    return out


def write_frame(path: str | os.PathLike[str], frame: Any, *, header: bool = True) -> Path:
    """Write a DataFrame or an ndarray to ``path`` in its suffix's format, atomically.

    A DataFrame goes to ``.csv``/``.tsv`` (a header line unless ``header=False``; a named
    index as the first column) or ``.parquet`` (any index but ``0, 1, ...`` stored) with its
    columns' kinds; to ``.npy``/``.npz`` only if every column is a
    number. An ndarray goes to any output format (:func:`~aekit.data.formats.write_array`).

    Raises
    ------
    DataError
        An output :func:`~aekit.data.formats.check_output` refuses, or text columns bound
        for an array format.
    """
    path = check_output(path)
    if isinstance(frame, np.ndarray):
        return write_array(path, frame)
    kind = file_format(path).name
    if kind in _ARRAYS:
        import pandas as pd

        text = [str(c) for c, t in frame.dtypes.items() if not pd.api.types.is_numeric_dtype(t)]
        if text:
            raise DataError(
                f"cannot write the text column(s) {text[:5]} to {path.name}: write a .csv, "
                ".tsv or .parquet file"
            )
        names = [str(c) for c in frame.columns]
        return write_array(path, frame.to_numpy(dtype=np.float64), names if header else None)
    buffer = io.BytesIO()
    named_index = any(n is not None for n in frame.index.names)  # a parquet file's stored one
    if kind == "parquet":  # any index but 0, 1, ... is stored, as pandas stores it
        frame.rename(columns=str).to_parquet(buffer, index=None)
    else:
        frame.to_csv(buffer, sep=FRAME_FORMATS[kind], index=named_index, header=header)
    atomic_write(path, buffer.getvalue())
    return path
