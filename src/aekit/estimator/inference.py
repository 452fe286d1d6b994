"""Inference in chunks: a fitted network applied to many rows with flat memory.

Every method of the estimator that runs the network (``transform``, ``inverse_transform``,
``reconstruct``, ``reconstruction_error``) goes through :func:`run_in_chunks`, so rows are
checked, padded and copied to the device the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_array

from ..data.checks import FLOATS, aekit_errors, as_codes, check_finite_chunk, check_finite_output
from ..data.missing import empty_rows, row_squared_error
from ..data.names import fitted_labels, warn_of_fitted_order
from ..data.sources import as_tensor
from ..data.sparse import SparseBatch, as_dense, chunk_rows_for, is_sparse
from ..errors import ConfigError, DataError
from ..model.hourglass import Hourglass
from ..model.sparse_net import forward_rows

__all__ = [
    "DENSE_OUTPUT_LIMIT_BYTES",
    "ERROR_UNITS",
    "ROW_BLOCK",
    "InferenceMixin",
    "check_dense_output",
    "pad_rows",
    "run_in_chunks",
]

ROW_BLOCK = 16  # inference pads batches to whole blocks of rows (see pad_rows)
ERROR_UNITS = ("scaled", "original")  # reconstruction_error(units=...): scaled is THE unit


DENSE_OUTPUT_LIMIT_BYTES = 8 * 2**30
"""The largest dense result (rows × features) the estimator returns in memory: 8 GiB.

``reconstruct``, ``inverse_transform``, ``scale_rows`` and ``unscale_rows`` refuse beyond it
(``reconstruct`` of 1,000,000 sparse rows × 100,000 features would be 400 GB); the CLI's
``aekit reconstruct`` writes any size to a file chunk by chunk. Raise it by assigning
``aekit.estimator.inference.DENSE_OUTPUT_LIMIT_BYTES``.
"""


def check_dense_output(n_rows: int, n_features: int, dtype: Any, what: str) -> None:
    """Refuse a dense result above :data:`DENSE_OUTPUT_LIMIT_BYTES`, saying what to do instead.

    Raises
    ------
    DataError
    """
    size = n_rows * n_features * np.dtype(dtype).itemsize
    if size > DENSE_OUTPUT_LIMIT_BYTES:
        raise DataError(
            f"{what} would return a dense {n_rows} × {n_features} array of {size / 1e9:.3g} GB, "
            f"above the in-memory limit of {DENSE_OUTPUT_LIMIT_BYTES / 1e9:.3g} GB "
            "(aekit.estimator.inference.DENSE_OUTPUT_LIMIT_BYTES); call it on fewer rows at a "
            "time, or "
            "let `aekit reconstruct` write the rows to a file chunk by chunk"
        )


def pad_rows(batch: torch.Tensor, block: int = ROW_BLOCK) -> torch.Tensor:
    """Pad to a whole number of ``block`` rows (at least one block).

    Matrix-multiply kernels pick their code path by the row count, and a path for a few rows
    rounds differently; with padded blocks a row's result never depends on how many rows
    came with it, so ``transform`` of a subset equals the subset of ``transform``.
    """
    n = batch.shape[0]
    padded = max(block, -(-n // block) * block)
    if padded == n:
        return batch
    if isinstance(batch, SparseBatch):
        return batch.padded(padded)
    return torch.cat([batch, batch.new_zeros((padded - n, *batch.shape[1:]))])


def run_in_chunks(
    module: Hourglass,
    X: np.ndarray,
    fn: Callable[[torch.Tensor], torch.Tensor],
    out_dtype: np.dtype,
    chunk_rows: int,
    *,
    check_input: bool = False,
    holes_out: bool = False,
    sparse: bool = False,
) -> np.ndarray:
    """Apply ``fn`` (raw rows as a float32 tensor → tensor) to ``X`` chunk by chunk.

    The module runs in eval mode without autograd; results come back to the CPU as float32
    (float64 where ``fn`` returns float64) and then as ``out_dtype``. ``check_input`` refuses
    infinity and values beyond float32's range, chunk by chunk, on the device (NaN is a
    missing value); ``holes_out`` lets NaN through into the results (scaled rows keep their
    holes), which are otherwise refused as an overflow. A ``scipy.sparse`` ``X`` (checked
    already, :func:`~aekit.data.checks.check_sparse_values`) reaches ``fn`` as
    :class:`~aekit.data.sparse.SparseBatch` chunks with ``sparse=True``, else as dense
    chunks of bounded size.

    Raises
    ------
    ConfigError
        If ``chunk_rows`` is not a positive integer.
    DataError
        For a bad input value, or a result that overflows float32.
    """
    if (
        isinstance(chunk_rows, bool)
        or not isinstance(chunk_rows, (int, np.integer))
        or chunk_rows < 1
    ):
        raise ConfigError(f"transform_batch_size must be a positive integer, got {chunk_rows!r}")
    device = module.offset.device
    was_training = module.training
    module.eval()
    chunks = []
    with torch.inference_mode():  # one (empty) chunk for no rows: the width is still right
        sparse_rows = is_sparse(X)
        step = chunk_rows_for(X.shape[1], chunk_rows) if sparse_rows else chunk_rows
        for start in range(0, max(X.shape[0], 1), step):
            part = X[start : start + step]
            if sparse_rows:  # its values were checked whole
                batch = SparseBatch.from_scipy(part).to(device)
                batch = batch if sparse else batch.dense()
                out = fn(pad_rows(batch))[: part.shape[0]]
                chunks.append(out.to("cpu", _kind(out)).numpy())
                continue
            with np.errstate(over="ignore"):  # beyond float32 becomes inf: refused below
                batch = as_tensor(part).to(device)
            if check_input:  # on the device: a GPU checks its copy faster than the CPU
                check_finite_chunk(batch, part, start)
            out = fn(pad_rows(batch))[: len(part)]
            chunks.append(out.to("cpu", _kind(out)).numpy())
    module.train(was_training)
    result = np.concatenate(chunks)
    check_finite_output(result, "the network", allow_nan=holes_out)
    with np.errstate(over="ignore"):
        result = result.astype(out_dtype, copy=False)
    return result


def _kind(out: torch.Tensor) -> torch.dtype:
    return torch.float64 if out.dtype == torch.float64 else torch.float32


class InferenceMixin:
    """What a fitted :class:`~aekit.Autoencoder` computes: codes, reconstructions, errors.

    The estimator provides ``module_``, ``model_config_``, ``n_features_in_``,
    ``transform_batch_size``, ``_check_fitted`` and ``_validate``.
    """

    def _run(
        self,
        X: np.ndarray,
        fn: Any,
        out_dtype: np.dtype,
        *,
        check_input: bool = False,
        holes_out: bool = False,
    ) -> np.ndarray:
        return run_in_chunks(
            self.module_,
            X,
            fn,
            out_dtype,
            self.transform_batch_size,
            check_input=check_input,
            holes_out=holes_out,
            sparse=True,
        )

    def _warn_of_order(self, X: Any, what: str) -> None:
        """Warn where ``what`` returns a reordered DataFrame's columns in the fitted order.

        (:func:`~aekit.data.names.warn_of_fitted_order`; a table fitted with categorical
        columns comes back as a labelled DataFrame, or at its encoded width: nothing said.)
        """
        if getattr(self, "table_layout_", None) is None:
            warn_of_fitted_order(X, fitted_labels(self), what, stacklevel=3)

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Decode codes back into rows in the original units.

        Parameters
        ----------
        X : array-like of shape (n_samples, code_dim)
            Codes, e.g. from :meth:`transform`.

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features_in_), or DataFrame
            A DataFrame with the input's columns and dtypes when fitted on a table with
            categorical columns (each category the most probable one).
        """
        self._check_fitted()
        codes = as_codes(X, self.model_config_.code_dim)
        check_dense_output(len(codes), self.n_features_in_, codes.dtype, "inverse_transform")
        module = self.module_
        rows = self._run(codes, lambda c: module.unscale_output(module.decode(c)), codes.dtype)
        return self._as_table(rows, X)

    def reconstruct(self, X: Any) -> np.ndarray:
        """Encode and decode rows: ``inverse_transform(transform(X))`` in one pass.

        Returns
        -------
        X_reconstructed : ndarray of shape (n_samples, n_features_in_), or DataFrame
            As :meth:`inverse_transform` returns it.
        """
        self._check_fitted()
        self._warn_of_order(X, "reconstruct")
        given, X = X, self._validate(X, reset=False, finite=False)
        check_dense_output(X.shape[0], X.shape[1], X.dtype, "reconstruct")
        module = self.module_

        def recon(rows: torch.Tensor) -> torch.Tensor:
            return module.unscale_output(forward_rows(module, rows)[0].recon)

        return self._as_table(self._run(X, recon, X.dtype, check_input=True), given)

    def reconstruct_scaled(self, X: Any) -> np.ndarray:
        """Reconstructions in the model's scaled space (:meth:`scale_rows`'s), not decoded.

        Returns
        -------
        X_reconstructed : ndarray of shape (n_samples, model_config_.input_dim), float64
            What the network outputs: a categorical column's one-hot block holds its
            categories' probabilities. ``reconstruct`` is :meth:`unscale_rows` of it, decoded.
        """
        self._check_fitted()
        self._warn_of_order(X, "reconstruct_scaled")
        X = self._validate(X, reset=False, finite=False)
        width = self.model_config_.input_dim
        check_dense_output(X.shape[0], width, np.float64, "reconstruct_scaled")
        module = self.module_
        return self._run(
            X,
            lambda rows: forward_rows(module, rows)[0].recon,
            np.dtype(np.float64),
            check_input=True,
        )

    def _as_table(self, rows: np.ndarray, given: Any = None) -> Any:
        """Model rows back as the input's table (categories by the largest probability).

        Unchanged for numeric input; a DataFrame (or an object array) for a table fitted with
        categorical columns (:meth:`aekit.data.tables.TableLayout.decode`), with the index
        of ``given`` (the input) where that is a DataFrame: assigned back, rows align.
        """
        layout = getattr(self, "table_layout_", None)
        if layout is None:
            return rows
        table, index = layout.decode(rows), getattr(given, "index", None)
        return table.set_axis(index) if hasattr(table, "set_axis") and index is not None else table

    def scale_rows(self, X: Any) -> np.ndarray:
        """Rows in the model's scaled space, where it trains and errors are measured.

        Returns
        -------
        X_scaled : ndarray of shape (n_samples, n_features_in_), float64
            ``(X - offset) / scale`` with the scaling learned in ``fit`` (``scaling_``);
            missing entries stay NaN.
        """
        self._check_fitted()
        self._warn_of_order(X, "scale_rows")
        X = self._validate(X, reset=False, finite=False)
        check_dense_output(X.shape[0], X.shape[1], np.float64, "scale_rows")
        module = self.module_

        def scale(rows: torch.Tensor | SparseBatch) -> torch.Tensor:
            return module.scale_input(as_dense(rows))

        return self._run(X, scale, np.dtype(np.float64), check_input=True, holes_out=True)

    def unscale_rows(self, X_scaled: Any) -> np.ndarray:
        """Rows of the scaled space back in the original units: the inverse of :meth:`scale_rows`.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features_in_), float64
        """
        self._check_fitted()
        with aekit_errors():  # scaled rows carry no feature names: check them as an array
            rows = check_array(
                X_scaled, dtype=FLOATS, ensure_min_samples=0, ensure_all_finite=False
            )
        width = self.model_config_.input_dim  # n_features_in_, or a table's encoded width
        if rows.shape[1] != width:
            raise DataError(f"X_scaled has {rows.shape[1]} columns, expected {width}")
        check_dense_output(rows.shape[0], rows.shape[1], np.float64, "unscale_rows")
        unscale = self.module_.unscale_output
        return self._run(rows, unscale, np.dtype(np.float64), check_input=True, holes_out=True)

    def reconstruction_error(self, X: Any, *, units: str = "scaled") -> np.ndarray:
        """Each row's sum of squared reconstruction errors: aekit's one error unit.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        units : {"scaled", "original"}, default="scaled"
            ``"scaled"``: squared errors per entry in the model's scaled space (see
            :meth:`scale_rows`), summed over the row: each feature weighs by its spread, not
            its units, and a PCA fitted on the same scaled rows is measured alike. A
            categorical column adds the squared error between its one-hot row and the
            predicted probabilities (between 0 and 2).
            ``"original"``: the same sum in the data's own units.

            A row with missing values (NaN) is measured on its observed entries: their sum
            of squared errors times ``n_features / n_observed`` (a categorical column's
            one-hot block counts as one feature), so rows with and without holes are on one
            scale; a complete row's error is the plain sum, and a row with no observed
            entry has error NaN (nothing in it is measured). Missing entries are what
            :meth:`reconstruct` fills in.

        Returns
        -------
        errors : ndarray of shape (n_samples,)
            Same float dtype as ``X`` (float64 for other dtypes).
        """
        self._check_fitted()
        if units not in ERROR_UNITS:
            raise ConfigError(f"units={units!r} is not one of {', '.join(ERROR_UNITS)}")
        X = self._validate(X, reset=False, finite=False)
        module = self.module_
        original = units == "original"

        def squared_error(rows: torch.Tensor) -> torch.Tensor:
            out, scaled = forward_rows(module, rows)
            recon = out.recon
            if original:
                scaled, recon = as_dense(rows), module.unscale_output(recon)
            return row_squared_error(recon, scaled, module.group_members)

        errors = self._run(X, squared_error, X.dtype, check_input=True)
        check_finite_output(errors, "its float32 error (pass float64 rows)")
        empty = empty_rows(X)
        if empty is not None:  # nothing observed, nothing measured (not the empty sum's 0)
            errors[empty] = np.nan
        return errors

    def score_samples(self, X: Any) -> np.ndarray:
        """Minus each row's reconstruction error (scaled space): higher means more normal.

        NaN for a row with no observed value, as :meth:`reconstruction_error`.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
        """
        return -self.reconstruction_error(X)

    def score(self, X: Any, y: None = None) -> float:
        """Minus the mean reconstruction error (scaled space), as scikit-learn scores go.

        The mean is over the rows with an observed value (NaN if there is none).

        Returns
        -------
        score : float
        """
        scores = self.score_samples(X)
        measured = scores[~np.isnan(scores)]
        return float(measured.mean()) if measured.size else float("nan")
