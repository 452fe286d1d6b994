"""Anomaly detection: rows that autoencoders reconstruct badly.

:class:`AutoencoderOutlierDetector` (:mod:`~aekit.anomaly.detector`) fits an ensemble of
autoencoders and a threshold; :mod:`~aekit.anomaly.scorer` computes its score terms (the same
module ONNX export writes out), :mod:`~aekit.anomaly.threshold` turns training scores into a
threshold, and :mod:`~aekit.anomaly.detectorfile` is the detector's folder layout.

The threshold rule loads no torch (``aekit score`` on an ONNX file uses it); the rest is
imported on first use (PEP 562).
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from ..files.layouts import DETECTOR_NAME, is_detector
from .threshold import threshold_for

if TYPE_CHECKING:
    from .detector import (
        AutoencoderOutlierDetector,
        detector_autoencoder,
        detector_batch_size,
        detector_code_dim,
        detector_density_term,
    )

_LAZY = {
    "AutoencoderOutlierDetector": ".detector",
    "detector_autoencoder": ".detector",
    "detector_batch_size": ".detector",
    "detector_code_dim": ".detector",
    "detector_density_term": ".detector",
}

__all__ = [
    "DETECTOR_NAME",
    "AutoencoderOutlierDetector",
    "detector_autoencoder",
    "detector_batch_size",
    "detector_code_dim",
    "detector_density_term",
    "is_detector",
    "load_detector",
    "threshold_for",
]


def load_detector(folder: str | os.PathLike[str]) -> AutoencoderOutlierDetector:
    """Load a detector folder written by :meth:`AutoencoderOutlierDetector.save`.

    The same as :meth:`AutoencoderOutlierDetector.load` (and :func:`aekit.load` on a detector
    folder); kept under this name, which earlier releases documented as
    ``aekit.detectorfile.load_detector``.

    Raises
    ------
    ModelFileError
        If a file is missing, truncated, tampered with, or not aekit's.
    """
    from .detector import AutoencoderOutlierDetector

    return AutoencoderOutlierDetector.load(folder)


def __getattr__(name: str) -> Any:
    """Import the detector (and so torch) on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module 'aekit.anomaly' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value
