"""The rows the estimator takes: checked and converted input, training rows and their stats.

:class:`RowsMixin` gives :class:`~aekit.Autoencoder` its input side: ``_validate`` checks and
converts rows (a table's categorical columns encoded by :mod:`aekit.data.tables`; scipy.sparse
rows kept as CSR, their stored values checked by
:func:`~aekit.data.checks.check_sparse_values`, and refused where categorical columns are
expected), and ``_training_rows`` turns what ``fit`` and
``partial_fit`` get (rows, sparse rows, a path, a row source) into training rows and the column
statistics (:mod:`aekit.data.stats`) the ``"auto"`` defaults are decided from.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_array

from ..data.checks import (
    FLOATS,
    CheckedRows,
    aekit_errors,
    check_n_features,
    check_rows,
    check_table_names,
    refuse_sparse_table,
    validate_rows,
)
from ..data.formats import open_rows, read_table
from ..data.names import forget_names, named_order
from ..data.sources import RowSource, as_tensor
from ..data.sparse import CsrRows, is_sparse
from ..data.stats import array_stats, csr_stats, never_observed, stream_stats
from ..data.tables import fit_layout, needs_layout
from ..errors import AekitWarning, ConfigError, DataTypeError

__all__ = ["EMPTY_COLUMNS", "RowsMixin", "warn_of_empty_columns"]


class RowsMixin:
    """Input checks and training rows of :class:`~aekit.Autoencoder`.

    The estimator provides ``categorical_features``, ``max_categories`` and, once fitted,
    ``n_features_in_`` and ``table_layout_``.
    """

    categorical_features: Any
    max_categories: int
    n_features_in_: int

    def _validate(self, X: Any, *, reset: bool, finite: bool = True) -> np.ndarray:
        """Check and convert input rows: :func:`~aekit.data.checks.validate_rows`.

        :class:`~aekit.data.checks.CheckedRows` (rows an outlier detector checked already)
        are taken as they are. ``finite=False`` leaves the NaN/inf/float32-range checks to
        :meth:`_run`, which makes them chunk by chunk on the float32 tensors it builds anyway
        (one pass, not three); scipy.sparse rows are checked here either way, on their stored
        values.
        """
        if isinstance(X, (str, os.PathLike)):  # fit and partial_fit open paths before this
            raise DataTypeError(
                f"got the path {str(X)!r}: only fit and partial_fit take file paths; "
                "read the rows first (aekit.data.read_array)"
            )
        if isinstance(X, CheckedRows):  # checked once by the caller (an outlier detector)
            return self._adopt_checked(X, reset=reset)
        if reset:  # (a sparse matrix cannot carry categorical columns: refused first)
            refuse_sparse_table(X, needs_layout(X, self.categorical_features))
            self.table_layout_ = fit_layout(X, self.categorical_features, self.max_categories)
        layout = getattr(self, "table_layout_", None)
        refuse_sparse_table(X, layout is not None)
        if layout is None:  # scipy.sparse rows of any format arrive as CSR
            return validate_rows(self, X, reset=reset, finite=finite)
        # the table's columns by name and count; then its encoding, as numbers
        X = check_table_names(self, X, reset=reset)  # (in the fitted column order)
        with aekit_errors():
            X = check_array(layout.encode(X, np.float64), dtype=FLOATS, ensure_all_finite=False)
        if finite:
            check_rows(X)
        return X

    def _adopt_checked(self, X: CheckedRows, *, reset: bool) -> Any:
        """Rows checked by the caller: their feature count recorded or compared, nothing else.

        ``reset`` records a plain (not a table's) feature count, no feature names or column
        labels: the caller that checked them keeps those.
        """
        if reset:
            self.n_features_in_ = X.shape[1]
            self.table_layout_ = None
            forget_names(self)
        else:
            check_n_features(X.shape[1], self.n_features_in_, type(self).__name__)
        return X.as_floats()

    @contextlib.contextmanager
    def _training_rows(
        self, X: Any, *, reset: bool
    ) -> Iterator[tuple[torch.Tensor | RowSource, dict[str, np.ndarray]]]:
        """Training rows (a tensor, or a source streamed from disk) and their column stats.

        A file opened here from a path is closed when the block ends. A fit (``reset``)
        that fails inside the block, or is interrupted, gives the estimator back its
        attributes as they were: else the old model stayed fitted with the new data's
        column names and layout, and took columns by them (codes silently wrong).
        """
        before = dict(vars(self)) if reset else None
        opened = None
        try:
            opened = open_rows(X) if isinstance(X, (str, os.PathLike)) else None
            order = self._file_order(X, getattr(opened, "columns", None), reset=reset)
            if opened is not None and order is not None and order != opened.columns:
                opened.close()  # (read by name)
                opened = open_rows(X, columns=order)
            yield self._rows_and_stats(X if opened is None else opened, reset=reset)
        except BaseException:
            if before is not None:
                vars(self).clear()
                vars(self).update(before)
            raise
        finally:
            if opened is not None:
                opened.close()

    def _file_order(self, path: Any, columns: Any, *, reset: bool) -> list[str] | None:
        """The order to read a named file's ``columns`` in, for an estimator fitted on names.

        None where the file is read by position: a fit (``reset``), a file without column
        names, an estimator fitted without names. Else the fitted names: the file's columns
        are the same names, maybe in another order (other names are refused in one line,
        :func:`~aekit.data.names.named_order`; they were read by position).
        """
        fitted = getattr(self, "feature_names_in_", None)
        if reset or fitted is None or columns is None or not isinstance(path, (str, os.PathLike)):
            return None
        names, who = [str(c) for c in columns], type(self).__name__
        named_order(names, list(fitted), who, what=f"{path}'s columns")
        return [str(n) for n in fitted]

    def _rows_and_stats(
        self, X: Any, *, reset: bool
    ) -> tuple[torch.Tensor | RowSource, dict[str, np.ndarray]]:
        names = None  # a named file's, recorded as a DataFrame's in fit
        if isinstance(X, (str, os.PathLike)):  # a format that is not streamed
            import pandas as pd

            table = read_table(X)
            order = self._file_order(X, table.columns, reset=reset)
            X, names = table.X, table.columns if reset else None
            if order is not None and isinstance(X, np.ndarray):  # by name, not position
                X = pd.DataFrame(X[:, [table.columns.index(n) for n in order]], columns=order)
        if not isinstance(X, RowSource):
            bytes_in = getattr(X, "dtype", None) == np.uint8
            if names is not None and isinstance(X, np.ndarray):
                X = pd.DataFrame(X, columns=names, copy=False)
            X = self._validate(X, reset=reset)
            if is_sparse(X):  # converted to CSR float32 once, batches sliced from it
                rows = CsrRows(X)
                return rows, {**csr_stats(rows), "uint8": np.asarray(False), "sparse": True}
            stats = {**array_stats(X), "uint8": np.asarray(bytes_in)}
            layout = getattr(self, "table_layout_", None)  # absent from older pickles
            if reset:  # a table's encoded columns: each input column's first one
                empty = never_observed(stats)
                empty = empty if layout is None else empty[np.asarray(layout.starts)]
                warn_of_empty_columns(empty, getattr(self, "feature_names_in_", None))
            if layout is not None:
                stats["categorical_blocks"] = np.asarray(layout.blocks).reshape(-1, 2)
            return as_tensor(X), stats
        if not reset:
            check_n_features(X.n_features, self.n_features_in_, type(self).__name__)
        stats: dict[str, np.ndarray] = {}
        if reset and needs_layout(None, self.categorical_features):  # it was ignored
            raise ConfigError(
                "categorical_features needs the rows in memory: a streamed source (a .npy or "
                "parquet file, a shard folder) is read as numbers; load it first (np.load, "
                "pandas; aekit fit --no-stream)"
            )
        if reset:
            self.n_features_in_ = X.n_features
            self.table_layout_ = None
            forget_names(self)
            stats = stream_stats(X)
            warn_of_empty_columns(never_observed(stats), getattr(X, "columns", None))
        stats["n_rows"] = np.asarray(len(X))
        stats["uint8"] = np.asarray(getattr(X, "dtype", None) == np.uint8)
        return X, stats


EMPTY_COLUMNS = ".* no observed value in the training rows"  # the warning's text, to filter


def warn_of_empty_columns(empty: np.ndarray, names: Any, stacklevel: int = 7) -> None:
    """Warn of training columns with no observed value (``empty``): nothing of them is learned.

    ``names`` are the columns' names (None: 0-based indices); ``stacklevel`` points the warning
    at the caller of ``Autoencoder.fit`` by default.
    """
    where = np.flatnonzero(empty)
    if not where.size:
        return
    shown = ", ".join(repr(names[i]) if names is not None else str(i) for i in where[:5])
    shown += f" and {where.size - 5} more" if where.size > 5 else ""
    shown += "" if names is not None else ", 0-based"
    warnings.warn(
        f"{where.size} column(s) have no observed value in the training rows ({shown}): "
        "the model learns nothing of them (each reconstructs as about a constant); drop them",
        AekitWarning,
        stacklevel=stacklevel,  # 7: Autoencoder.fit's caller (through _training_rows' context)
    )
