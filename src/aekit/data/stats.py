"""Per-feature column statistics (min, max, mean, std) of rows in memory, streamed or sparse.

What the input scaling and the ``"auto"`` defaults (:mod:`aekit.estimator.resolve`) are
decided from.
Missing values (NaN) are left out: each statistic is over a column's observed values.
"""

from __future__ import annotations

import numpy as np
import torch

from .checks import check_finite_rows, first_unusable
from .sources import RowSource
from .sparse import CsrRows

__all__ = ["array_stats", "csr_stats", "never_observed", "stream_stats"]

_STAT_VALUES = 2**22  # stored values per chunk when taking a sparse source's statistics


def array_stats(X: np.ndarray) -> dict[str, np.ndarray]:
    """Per-feature min, max, mean and std of rows in memory, and their count.

    What :func:`stream_stats` gives for a streamed source. Missing values (NaN) are left
    out: each statistic is over a column's observed values (a column with none gets min,
    max and mean 0 and std 1), and ``has_missing`` says whether there were any. Sums are
    accumulated in float64 (as :func:`stream_stats` does), returned in ``X``'s dtype: a float32
    accumulator put the mean of 400,000 rows near 10,000 off by 6.5 (and a float32 and a
    float64 copy of the same rows apart).
    """
    low = X.min(axis=0)  # NaN propagates: a column with holes has a NaN minimum
    if not np.isnan(low).any():
        return {
            "n_rows": np.asarray(X.shape[0]),
            "min": low,
            "max": X.max(axis=0),
            "mean": X.mean(axis=0, dtype=np.float64).astype(X.dtype),
            "std": X.std(axis=0, dtype=np.float64).astype(X.dtype),
            "has_missing": np.asarray(False),
        }
    seen = ~np.isnan(X)
    count = seen.sum(axis=0)
    mean = np.where(seen, X, 0.0).sum(axis=0, dtype=np.float64) / np.maximum(count, 1)
    centred = np.where(seen, X - mean.astype(X.dtype), 0.0)
    var = np.square(centred).sum(axis=0, dtype=np.float64) / np.maximum(count, 1)
    empty = count == 0
    return {
        "n_rows": np.asarray(X.shape[0]),
        "min": np.where(empty, 0.0, np.where(seen, X, np.inf).min(axis=0)).astype(X.dtype),
        "max": np.where(empty, 0.0, np.where(seen, X, -np.inf).max(axis=0)).astype(X.dtype),
        "mean": mean.astype(X.dtype),
        "std": np.where(empty, 1.0, np.sqrt(var)).astype(X.dtype),
        "has_missing": np.asarray(True),
    }


def never_observed(stats: dict[str, np.ndarray]) -> np.ndarray:
    """Which columns had no observed value, from :func:`array_stats`'s or :func:`stream_stats`'s.

    Both give such a column min and max 0 and std 1 (scaled as 0 ± 1), which no observed
    column has: one whose values are all 0 has std 0.
    """
    if not bool(stats.get("has_missing", False)):
        return np.zeros(np.shape(stats["min"]), dtype=bool)
    low, high, std = (np.asarray(stats[k]) for k in ("min", "max", "std"))
    return (low == 0) & (high == 0) & (std == 1)


def stream_stats(source: RowSource, chunk_rows: int = 8192) -> dict[str, np.ndarray]:
    """Per-feature min, max, mean and std of a row source in one streamed pass (float64).

    Raises
    ------
    DataError
        If a value is infinite (naming the first such row and column, see
        :func:`aekit.data.checks.check_finite_rows`). NaN is a missing value: statistics
        are over each column's observed values and ``has_missing`` says there were some.
    """
    what = str(getattr(source, "path", None) or "the rows")
    picked = getattr(source, "indices", None)  # a RowSubset's rows of its source
    d = source.n_features
    low, high = np.full(d, np.inf), np.full(d, -np.inf)
    mean, m2, count = np.zeros(d), np.zeros(d), np.zeros(d)
    has_missing = False
    for start in range(0, len(source), chunk_rows):
        stop = min(start + chunk_rows, len(source))
        x = source.take(torch.arange(start, stop)).double().numpy()
        bad = first_unusable(x, allow_nan=True)
        if bad is not None:  # named by its row in the file (a subset's rows are a selection)
            at = start + bad[0]
            number = int(picked[at]) if picked is not None else at
            whole = getattr(source, "source", source)  # a subset's source
            if hasattr(whole, "locate"):  # a folder: the shard's file, and the row in it
                shard, number = whole.locate(number)
                what = str(shard)
            check_finite_rows(x[bad[0] : bad[0] + 1], what, first_row=number, allow_nan=True)
        seen = ~np.isnan(x)
        if seen.all():
            n = np.full(d, float(stop - start))
            chunk_mean = x.mean(axis=0)
            spread = ((x - chunk_mean) ** 2).sum(axis=0)
            low, high = np.minimum(low, x.min(axis=0)), np.maximum(high, x.max(axis=0))
        else:  # missing values: each column's observed entries only
            has_missing = True
            n = seen.sum(axis=0).astype(np.float64)
            chunk_mean = np.where(seen, x, 0.0).sum(axis=0) / np.maximum(n, 1)
            spread = (np.where(seen, x - chunk_mean, 0.0) ** 2).sum(axis=0)
            low = np.minimum(low, np.where(seen, x, np.inf).min(axis=0))
            high = np.maximum(high, np.where(seen, x, -np.inf).max(axis=0))
        delta = chunk_mean - mean
        total = count + n
        safe = np.where(total > 0, total, 1.0)
        m2 += spread + delta**2 * count * n / safe
        mean += delta * n / safe
        count = total
    std = np.sqrt(m2 / np.maximum(count, 1))
    if has_missing:  # a column never observed: scaled as 0 ± 1
        empty = count == 0
        low, high = np.where(empty, 0.0, low), np.where(empty, 0.0, high)
        std = np.where(empty, 1.0, std)
    missing = np.asarray(has_missing)
    return {"min": low, "max": high, "mean": mean, "std": std, "has_missing": missing}


def csr_stats(source: CsrRows) -> dict[str, np.ndarray]:
    """Per-feature min, max, mean and std (float64) of a CSR source, zeros included.

    Chunks of the stored values are added up per column, so memory beyond the matrix is a
    few vectors of the width and one chunk.
    """
    d, n = source.n_features, max(len(source), 1)
    total, squares = np.zeros(d), np.zeros(d)
    stored = np.zeros(d, dtype=np.int64)
    low, high = np.full(d, np.inf), np.full(d, -np.inf)
    cols_all, values_all = source.indices.numpy(), source.data.numpy()
    for lo in range(0, len(values_all), _STAT_VALUES):
        cols = cols_all[lo : lo + _STAT_VALUES]
        values = values_all[lo : lo + _STAT_VALUES].astype(np.float64)
        total += np.bincount(cols, values, minlength=d)
        squares += np.bincount(cols, values * values, minlength=d)
        stored += np.bincount(cols, minlength=d)
        np.minimum.at(low, cols, values)
        np.maximum.at(high, cols, values)
    has_zero = stored < len(source)
    low = np.where(has_zero, np.minimum(low, 0.0), low)
    high = np.where(has_zero, np.maximum(high, 0.0), high)
    mean = total / n
    std = np.sqrt(np.maximum(squares / n - mean * mean, 0.0))
    return {
        "n_rows": np.asarray(len(source)),
        "min": low,
        "max": high,
        "mean": mean,
        "std": std,
        "has_missing": np.asarray(False),  # NaN is refused in sparse rows (check_sparse_values)
    }
