"""Input errors in aekit's words, and THE match of an input's column names with the fitted ones.

:func:`aekit_errors` turns scikit-learn's input-check errors into aekit's, one line each;
:func:`validate_named` is scikit-learn's ``validate_data`` on rows whose columns were first
put in the fitted order where only the order differed (:func:`in_fitted_order`). Every
estimator's name check goes through it (:func:`aekit.data.checks.validate_rows` and
:func:`aekit.data.checks.check_table_names`).

scikit-learn keeps names only when they are all strings; a DataFrame whose column labels are
all integers has them kept here too (``_column_labels``: :func:`integer_labels`), so that the
same labels in another order are put in the fitted order and other labels refused
(:func:`in_labelled_order`), not read by position.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..errors import AekitError, AekitWarning, DataError, DataTypeError
from .kinds import first_text, numeric_frame

__all__ = [
    "aekit_errors",
    "check_distinct_names",
    "check_unique_names",
    "column_labels",
    "first_text",
    "fitted_labels",
    "forget_names",
    "in_fitted_order",
    "in_labelled_order",
    "in_named_order",
    "integer_labels",
    "label_kind",
    "named_order",
    "refuse_other_columns",
    "validate_named",
    "warn_of_fitted_order",
]


@contextlib.contextmanager
def aekit_errors(rows: Any = None) -> Iterator[None]:
    """Turn scikit-learn's input-check errors into aekit's, each in one line.

    ``rows``: the input being checked; where it holds text, the message names its first
    cell that is not a number, by column (a DataFrame's name) and row (:func:`first_text`).
    """
    try:
        with np.errstate(all="ignore"):  # inf - inf in its finiteness check: no warning
            yield
    except AekitError:  # aekit's own, one line already (a date column named by TableLayout)
        raise
    except TypeError as exc:  # cells that are no text either (a dict): scikit-learn's words
        raise DataTypeError(f"non-numeric input: {_one_line(exc)}") from exc
    except ValueError as exc:
        finiteness = "contains NaN" in str(exc) or "contains infinity" in str(exc)
        if not finiteness and ("could not convert" in str(exc) or "dtype" in str(exc)):
            found = first_text(rows) or _one_line(exc)
            raise DataError(f"non-numeric input: {found}") from exc
        raise DataError(_one_line(exc)) from exc


def _one_line(exc: Exception) -> str:
    """scikit-learn's message without the data it quotes: first line, plus a reshape hint."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    text = lines[0].rstrip(":")
    if text.startswith("The feature names should match"):  # which names: all its lines
        parts: list[str] = []
        for line in lines:
            if line.startswith("- ") and parts:  # a name under "...unseen at fit time:"
                parts[-1] += (" " if parts[-1].endswith(":") else ", ") + line[2:]
            else:
                parts.append(line)
        return " ".join(p if p.endswith(".") else p + "." for p in parts)
    if len(lines) > 1 and lines[-1].startswith("Reshape"):
        text += ". " + lines[-1]
    return text


def validate_named(estimator: Any, X: Any, *, reset: bool, **checks: Any) -> Any:
    """scikit-learn's ``validate_data`` on rows put in the fitted column order first.

    THE place where aekit's estimators compare an input's column names with the fitted ones:
    :func:`in_fitted_order`, a DataFrame's columns that are not numbers made numbers (or
    refused, by name) by :func:`~aekit.data.kinds.numeric_frame` unless
    ``skip_check_array``, then ``validate_data(estimator, X, reset=reset, **checks)``,
    its errors made aekit's (:func:`aekit_errors`): a renamed, missing or extra column is
    one line naming it.
    """
    from sklearn.utils.validation import validate_data

    if isinstance(X, (str, os.PathLike)):  # not a row of one text cell
        raise DataTypeError(
            f"got the path {str(X)!r}: {type(estimator).__name__} takes rows, not a file; read "
            "them into a DataFrame or an array first (pandas.read_parquet, aekit.data.read_array)"
        )
    check_unique_names(X)
    _check_label_kinds(X)
    if not reset:
        X = in_fitted_order(X, getattr(estimator, "feature_names_in_", None))
        X = in_labelled_order(X, getattr(estimator, "_column_labels", None))
    if not checks.get("skip_check_array"):  # text, category and date columns: named here
        X = numeric_frame(X)
    with aekit_errors(X):
        rows = validate_data(estimator, X, reset=reset, **checks)
    if reset:
        labels = integer_labels(X)
        if labels is not None:
            estimator._column_labels = labels
        elif hasattr(estimator, "_column_labels"):
            del estimator._column_labels
    return rows


def _check_label_kinds(X: Any) -> None:
    """Refuse column labels mixing text with other kinds (scikit-learn's TypeError), in one line.

    Labels neither text nor integers (a MultiIndex's tuples, floats, dates, booleans) are
    refused too: scikit-learn keeps no names for them, so the columns would be taken by
    position whatever their order later.
    """
    labels = _frame_columns(X) or []
    kinds = sorted({type(name).__name__ for name in labels})
    if len(kinds) > 1 and any(isinstance(name, str) for name in labels):
        raise DataError(
            f"X's column labels mix text with other kinds ({', '.join(kinds)}): make them all "
            "text (X.columns = X.columns.astype(str)) or all integers"
        )
    plain = (str, int, np.integer)
    odd = [n for n in labels if not isinstance(n, plain) or isinstance(n, (bool, np.bool_))]
    if odd:
        raise DataError(
            f"X's column labels must be text or integers, got {type(odd[0]).__name__} "
            f"{odd[0]!r:.40}: name the columns with text (a MultiIndex's: X.columns = "
            "['_'.join(map(str, c)) for c in X.columns])"
        )


def forget_names(estimator: Any) -> None:
    """Drop the names and integer labels recorded by an earlier fit (rows without names)."""
    for name in ("feature_names_in_", "_column_labels"):
        if hasattr(estimator, name):
            delattr(estimator, name)


def check_unique_names(X: Any) -> None:
    """Refuse a DataFrame that has a column name more than once, naming it.

    Raises
    ------
    DataError
        ``X`` names two of its columns alike (which of them would a name pick?).
    """
    columns = _frame_columns(X)
    if columns is not None:
        check_distinct_names(columns, "X")


def check_distinct_names(names: Sequence[Any], what: str) -> None:
    """Refuse column names (a DataFrame's, a file's header) that repeat a name, naming it.

    Parameters
    ----------
    names : sequence
        The column names, in order.
    what : str
        Whose columns they are in the message (``"X"``, a file's path).

    Raises
    ------
    DataError
        A name is given to more than one column.
    """
    if len(set(names)) == len(names):
        return
    seen: set[Any] = set()
    repeated = list(dict.fromkeys(n for n in names if n in seen or seen.add(n)))
    shown = ", ".join(repr(name) for name in repeated[:5])
    raise DataError(
        f"{what} has the column name(s) {shown} more than once: give each column its own"
    )


def in_fitted_order(X: Any, fitted: Any) -> Any:
    """A DataFrame's columns put in the ``fitted`` order when only their order differs.

    Anything else (no fitted names, other, missing, extra or repeated names, rows without
    names) comes back unchanged, for scikit-learn's name check to refuse or take.
    """
    names = _frame_columns(X)
    if fitted is None or names is None or len(names) != len(fitted):
        return X
    wanted = list(fitted)
    if names == wanted or not all(isinstance(name, str) for name in names):
        return X
    same = len(set(names)) == len(names) and set(names) == set(wanted)
    return _in_order(X, wanted) if same else X


def fitted_labels(estimator: Any) -> Any:
    """The column labels ``estimator`` was fitted on, or None (rows without labels).

    ``feature_names_in_``, else the integer labels it keeps (``_column_labels``).
    """
    names = getattr(estimator, "feature_names_in_", None)
    return names if names is not None else getattr(estimator, "_column_labels", None)


def integer_labels(X: Any) -> list[int] | None:
    """A DataFrame's column labels when every one is an integer (Python's or numpy's), else None.

    scikit-learn keeps no ``feature_names_in_`` for them; aekit keeps them as
    ``_column_labels`` (:func:`validate_named`). A bool is not an integer label here.
    """
    labels = _frame_columns(X)
    if not labels:
        return None
    if all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in labels):
        return [int(n) for n in labels]
    return None


def _frame_columns(X: Any) -> list[Any] | None:
    """A pandas or polars DataFrame's column labels, a pyarrow Table's; None otherwise.

    (A pyarrow Table's ``columns`` are its data, not its names: ``column_names``.)
    """
    kind, module = type(X).__name__, type(X).__module__
    if kind == "Table" and module.startswith("pyarrow"):
        return list(X.column_names)
    if kind == "DataFrame" and (hasattr(X, "iloc") or module.startswith("polars")):
        return list(X.columns)
    return None


def _in_order(X: Any, wanted: list[Any]) -> Any:
    """A table's columns ``wanted``, in that order (pandas' ``X[wanted]``, else ``select``)."""
    return X[wanted] if hasattr(X, "iloc") else X.select(wanted)


def column_labels(X: Any) -> list[str] | list[int] | None:
    """A DataFrame's column labels when all are strings or all integers, else None.

    What a runner without scikit-learn's name check records to read a DataFrame by its
    columns later (:func:`in_named_order`); rows without labels (arrays), or labels of
    mixed types, are taken by position. (A pyarrow Table's or a polars DataFrame's names
    are all strings.)
    """
    columns = _frame_columns(X)
    if not columns:
        return None
    if all(isinstance(name, str) for name in columns):
        return columns
    return integer_labels(X)


def _is_label(name: Any, like: Any) -> bool:
    """Whether ``name`` is a label of ``like``'s kind: text, or an integer (not a bool).

    ``False`` is not the label ``0``, nor ``0.0``.
    """
    if isinstance(like, str):
        return isinstance(name, str)
    return isinstance(name, (int, np.integer)) and not isinstance(name, (bool, np.bool_))


def label_kind(labels: Any, n_features: int) -> type | None:
    """The kind of a saved file's column labels: ``str``, ``int`` or None (not valid labels).

    Valid labels are a list of ``n_features`` distinct labels all of one kind (an integer is
    not a bool).
    """
    if not isinstance(labels, list) or len(labels) != n_features:
        return None
    for kind in (str, int):
        if all(isinstance(n, kind) and not isinstance(n, bool) for n in labels):
            return kind if len(set(labels)) == n_features else None
    return None


def in_labelled_order(X: Any, fitted: Sequence[int] | None) -> Any:
    """A DataFrame put in the ``fitted`` integer-label order; other labels refused, in one line.

    Rows without labels (an array) are taken by position, as before; a DataFrame with the
    fitted labels in the fitted order comes back unchanged.

    Raises
    ------
    DataError
        The DataFrame's column labels are not the fitted ones (other, missing or extra
        labels, or labels of another type).
    """
    labels = _frame_columns(X)
    if fitted is None or labels is None:
        return X
    wanted = list(fitted)
    if integer_labels(X) is not None and set(labels) == set(wanted):
        return X if labels == wanted else _in_order(X, wanted)
    known, integers = set(wanted), integer_labels(X) is not None
    unseen = [n for n in labels if not integers or n not in known]
    raise DataError(
        f"X's column labels should match the integer labels seen in fit "
        f"({_listed(wanted)}); {_differences(unseen, labels, wanted)}"
    )


def in_named_order(
    X: Any, names: Sequence[Any] | None, who: str, *, what: str = "X's columns"
) -> Any:
    """A DataFrame put in the order of the column ``names`` a runner was saved with.

    For a runner without an estimator (an ONNX file's ``feature_names``): rows without
    column labels (an array), or a runner without names, are taken by position; a DataFrame
    with the same names in another order is reordered; any other labels are refused.
    ``what`` names the columns in the message (``"X's columns"``), ``who`` the runner.

    Raises
    ------
    DataError
        The DataFrame's columns are not ``names`` (other, missing, extra or repeated ones).
    """
    labels = _frame_columns(X)
    if names is None or not len(names) or labels is None:  # (an ndarray of names too)
        return X
    order = named_order(labels, names, who, what=what)
    return X if order is None else _in_order(X, order)


def named_order(
    labels: Sequence[Any], names: Sequence[Any], who: str, *, what: str = "X's columns"
) -> list[Any] | None:
    """How to read columns ``labels`` by the fitted ``names``: None (as they are), or the order.

    The rule of :func:`in_named_order`, on a table's labels or a file's column names: the
    same names in the same order are read as they are, in another order put in the fitted
    order (the list returned); any other labels are refused, ``what`` and ``who`` named.

    Raises
    ------
    DataError
        ``labels`` are not ``names`` (other, missing, extra or repeated ones).
    """
    labels, wanted = list(labels), list(names)
    kindred = [n for n in labels if _is_label(n, wanted[0])]  # labels of the fitted kind
    if len(kindred) == len(labels) and labels == wanted:
        return None
    if len(kindred) == len(labels) == len(set(labels)) and set(labels) == set(wanted):
        return wanted
    check_distinct_names(labels, "X")
    known = set(wanted)
    unseen = [n for n in labels if not (_is_label(n, wanted[0]) and n in known)]
    raise DataError(
        f"{what} should match the columns {who} was fitted on ({_listed(wanted)}); "
        f"{_differences(unseen, kindred, wanted)}"
    )


def refuse_other_columns(
    written: Sequence[Any] | None,
    ours: Sequence[Any] | None,
    source: Any,
    error: type[Exception],
    *,
    what: str = "X's columns",
) -> None:
    """Refuse to resume a checkpoint (``source``) on columns other than those it was written on.

    ``written`` are the checkpoint's column names, ``ours`` the data's. Where either has none
    (rows without names, a checkpoint older than the field) there is nothing to compare: the
    columns are taken by position, as before. Other names are :func:`named_order`'s
    DataError; the same names in another order are ``error``: a run resumes on its own order.
    """
    if written is None or ours is None or list(written) == list(ours):
        return
    named_order(ours, written, f"the run that wrote {source}", what=what)  # other names: said
    raise error(
        f"{source} was written for the same columns in another order: resume on {what} in "
        "the order of that run"
    )


def warn_of_fitted_order(
    X: Any, fitted: Sequence[Any] | None, what: str, *, stacklevel: int = 2
) -> None:
    """Warn that ``what``'s columns come in the ``fitted`` order where ``X``'s differ.

    The estimators read a DataFrame whose columns are the fitted ones in another order by
    name; an output with one unlabelled column per feature (a reconstruction, an imputer's
    fill) then comes in the fitted order, which ``pd.DataFrame(out, columns=X.columns)`` would
    mislabel without a word. Nothing is said for rows without labels, columns in the fitted
    order, or other labels (the input check refuses those). ``stacklevel`` is that of a
    ``warnings.warn`` in the caller: 2 points at the caller's caller.
    """
    labels = _frame_columns(X)
    if fitted is None or labels is None or len(fitted) == 0:
        return
    wanted = list(fitted)
    try:  # THE rule of what is the same columns in another order
        reordered = named_order(labels, wanted, "the estimator") is not None
    except AekitError:  # other labels: the input check refuses them, in its own words
        return
    if reordered:
        warnings.warn(
            f"X's columns are the fitted ones in another order: {what} returns its columns in "
            f"the fitted order ({_listed(wanted)}), not X's: label them in that order, not by "
            "X.columns",
            AekitWarning,
            stacklevel=stacklevel + 1,
        )


def _differences(unseen: Sequence[Any], labels: Sequence[Any], wanted: Sequence[Any]) -> str:
    """What a frame's column labels have that the fitted ones lack, and the other way round."""
    given = set(labels)
    missing = [n for n in wanted if n not in given]
    found = [f"unseen at fit time: {_listed(unseen)}"] if unseen else []
    found += [f"missing: {_listed(missing)}"] if missing else []
    return "; ".join(found)


def _listed(labels: Sequence[Any]) -> str:
    shown = ", ".join(repr(n) for n in labels[:5])
    return shown + (f", ... ({len(labels)} in all)" if len(labels) > 5 else "")
