"""Where an anomaly score becomes an outlier: the one rule, without torch.

:mod:`aekit.anomaly.detector` re-exports :func:`threshold_for`; ``aekit score`` on an ONNX
file uses it from here, so scoring an exported model never imports PyTorch.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, DataError

__all__ = ["threshold_for"]

_TUKEY = 1.5  # "auto": threshold = Q3 + 1.5·IQR of the reference scores (Tukey's fence)


def threshold_for(errors: np.ndarray, contamination: str | float = "auto") -> float:
    """The score above which a row counts as an outlier.

    Parameters
    ----------
    errors : ndarray of shape (n_samples,)
        Per-row anomaly scores (or reconstruction errors) of the reference rows; NaN (a row
        with no observed value) is left out.
    contamination : "auto" or float in (0, 0.5], default="auto"
        A float flags that share of the reference rows; ``"auto"`` is Tukey's fence,
        ``Q3 + 1.5·IQR``.

    Returns
    -------
    threshold : float

    Raises
    ------
    DataError
        No score to set it from (every one NaN, or none).
    """
    errors = np.asarray(errors, dtype=np.float64)
    errors = errors[~np.isnan(errors)]
    if not errors.size:
        raise DataError("no row with an observed value to set the threshold from")
    if contamination == "auto":
        q1, q3 = np.percentile(errors, [25, 75])
        return float(q3 + _TUKEY * (q3 - q1))
    if isinstance(contamination, str) or not 0 < float(contamination) <= 0.5:
        raise ConfigError(f"contamination must be 'auto' or in (0, 0.5], got {contamination!r}")
    return float(np.percentile(errors, 100.0 * (1.0 - float(contamination))))
