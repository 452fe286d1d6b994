"""The input checks: shape, numeric dtype, NaN and infinity, float32's range.

Every path into aekit (the estimator, the streamed sources, the CLI) checks rows with the
functions here, so a bad value gets the same one-line :class:`~aekit.DataError` wherever it
comes in.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_array

from ..errors import DataError, DataTypeError

__all__ = ["check_finite_rows"]


_FLOATS = [np.float64, np.float32]  # input dtypes kept as they are; others become float64


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_finite_rows(array: np.ndarray, what: str = "input", first_row: int = 0) -> None:
    """Raise :class:`DataError` naming the first row that holds NaN or infinity.

    ``first_row`` is the number of the array's first row, for a chunk of a larger file.
    """
    finite = np.isfinite(array)
    if not finite.all():
        bad = np.argwhere(~finite)[0]
        kind = "NaN" if np.isnan(array[tuple(bad)]) else "infinity"
        raise DataError(
            f"{what} contains {kind} (first at row {first_row + bad[0]}, column {bad[-1]}); "
            "drop or impute those values first"
        )


@contextlib.contextmanager
def _aekit_errors() -> Iterator[None]:
    """Turn scikit-learn's input-check errors into aekit's, each in one line."""
    try:
        with np.errstate(all="ignore"):  # inf - inf in its finiteness check: no warning
            yield
    except TypeError as exc:
        raise DataTypeError(f"non-numeric input: {_one_line(exc)}") from exc
    except ValueError as exc:
        if "could not convert" in str(exc) or "dtype" in str(exc):
            raise DataError(f"non-numeric input: {_one_line(exc)}") from exc
        raise DataError(_one_line(exc)) from exc


def _one_line(exc: Exception) -> str:
    """scikit-learn's message without the data it quotes: first line, plus a reshape hint."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    text = lines[0].rstrip(":")
    if len(lines) > 1 and lines[-1].startswith("Reshape"):
        text += ". " + lines[-1]
    return text


def _check_float32_range(X: np.ndarray) -> None:
    """Refuse values that float32, which the network computes in, cannot hold."""
    if X.dtype == np.float32:  # finite (checked before) float32 values always fit
        return
    if X.size and max(float(X.max()), -float(X.min())) > _FLOAT32_MAX:  # no |X| copy
        row, col = np.argwhere(np.abs(X) > _FLOAT32_MAX)[0]
        raise DataError(
            f"value {X[row, col]:.3g} at row {row}, column {col} is beyond float32's range "
            f"(±{_FLOAT32_MAX:.3g}), which aekit computes in; rescale the data"
        )


def _check_finite_chunk(batch: torch.Tensor, part: np.ndarray, start: int) -> None:
    """Refuse NaN, infinity, or values float32 cannot hold in a chunk of input rows."""
    # NaN and infinity propagate into a sum: a finite sum (one fast reduction) clears the
    # chunk; only a non-finite one (or an overflowing sum of huge values) is looked at closely.
    if bool(torch.isfinite(batch.sum())) or bool(torch.isfinite(batch).all()):
        return
    row, col = (int(i) for i in np.argwhere(~np.isfinite(batch.cpu().numpy()))[0])
    value = part[row, col]
    if np.isnan(value):
        kind = "NaN"
    elif np.isinf(value):
        kind = "infinity"
    else:
        kind = f"the value {value:.3g}, beyond float32's range (±{_FLOAT32_MAX:.3g})"
    raise DataError(
        f"Input X contains {kind} at row {start + row}, column {col}; aekit computes in "
        "float32: drop, impute or rescale those values"
    )


def _check_finite_output(out: np.ndarray, during: str, what: str = "row") -> None:
    """Refuse results that overflowed (inputs far larger than anything seen in ``fit``)."""
    if not np.isfinite(out).all():
        index = int(np.argwhere(~np.isfinite(out))[0][0])
        raise DataError(
            f"{what} {index} overflows float32 in {during}; rescale the data (aekit "
            "computes in float32)"
        )


def _as_codes(X: Any, code_dim: int) -> np.ndarray:
    """Check codes like input rows (any number of rows, ``code_dim`` columns)."""
    with _aekit_errors():
        codes = check_array(X, dtype=_FLOATS, ensure_min_samples=0, input_name="codes")
    if codes.shape[1] != code_dim:
        raise DataError(f"codes must have shape (n_samples, {code_dim}), got {codes.shape}")
    _check_float32_range(codes)
    return codes
