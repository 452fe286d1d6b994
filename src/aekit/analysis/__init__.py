"""THE error unit and THE AE-vs-PCA measurement; plots and the HTML report.

:mod:`~aekit.analysis.measurement` measures a fitted autoencoder against PCA in one error
unit; :mod:`~aekit.analysis.plots` draws (matplotlib, imported on use);
:mod:`~aekit.analysis.report` writes the HTML report (``aekit report``), and
:mod:`~aekit.analysis.sae_report` a sparse autoencoder's.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .measurement import (
    Comparison,
    Measurement,
    compare,
    decoder_basis,
    measure,
    normalized_mse,
    pca_error_curve,
    pca_reconstruction,
    principal_angles,
    row_errors,
    sparsity_stats,
    split_indices,
    split_rows,
)

if TYPE_CHECKING:
    from .report import Report, build_report
    from .sae_report import build_sae_report

# the reports pull in the plots: loaded on use
_REPORT = {"Report": ".report", "build_report": ".report", "build_sae_report": ".sae_report"}

__all__ = [
    "Comparison",
    "Measurement",
    "Report",
    "build_report",
    "build_sae_report",
    "compare",
    "decoder_basis",
    "measure",
    "normalized_mse",
    "pca_error_curve",
    "pca_reconstruction",
    "principal_angles",
    "row_errors",
    "sparsity_stats",
    "split_indices",
    "split_rows",
]


def __getattr__(name: str) -> Any:
    """Import the report (and its plots) on first use."""
    if name not in _REPORT:
        raise AttributeError(f"module 'aekit.analysis' has no attribute {name!r}")
    value = getattr(importlib.import_module(_REPORT[name], __name__), name)
    globals()[name] = value
    return value
