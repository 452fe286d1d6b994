"""aekit: autoencoders as a nonlinear PCA.

Learn a compact code for your data, reconstruct it, denoise it, find sparse features, or
flag rows that don't reconstruct well, with a scikit-learn transformer on PyTorch::

    from aekit import Autoencoder
    ae = Autoencoder(code_dim=8).fit(X)
    codes = ae.transform(X)
    errors = ae.reconstruction_error(X)

Importing :mod:`aekit` is cheap: each public name is imported from its module on first use
(PEP 562), so ``import aekit`` and ``aekit --help`` load neither PyTorch nor scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .config import ModelConfig, TrainConfig
    from .errors import (
        AekitError,
        AekitWarning,
        ConfigError,
        DataError,
        DataTypeError,
        FolderInUseError,
        ModelFileError,
        NotFittedError,
        OutputError,
        TrainingDivergedError,
    )
    from .estimator import Autoencoder
    from .impute import AutoencoderImputer
    from .model import Hourglass, Output
    from .modelfile import load
    from .outlier import AutoencoderOutlierDetector
    from .training import Callback, EarlyStopping, History, Trainer

# public name -> the module that defines it
_HOMES = {
    "ModelConfig": "config",
    "TrainConfig": "config",
    "AekitError": "errors",
    "AekitWarning": "errors",
    "ConfigError": "errors",
    "DataError": "errors",
    "DataTypeError": "errors",
    "FolderInUseError": "errors",
    "ModelFileError": "errors",
    "NotFittedError": "errors",
    "OutputError": "errors",
    "TrainingDivergedError": "errors",
    "Autoencoder": "estimator",
    "AutoencoderImputer": "impute",
    "Hourglass": "model",
    "Output": "model",
    "load": "modelfile",
    "AutoencoderOutlierDetector": "outlier",
    "Callback": "training",
    "EarlyStopping": "training",
    "History": "training",
    "Trainer": "training",
}

__all__ = [
    "AekitError",
    "AekitWarning",
    "Autoencoder",
    "AutoencoderImputer",
    "AutoencoderOutlierDetector",
    "Callback",
    "ConfigError",
    "DataError",
    "DataTypeError",
    "EarlyStopping",
    "FolderInUseError",
    "History",
    "Hourglass",
    "ModelConfig",
    "ModelFileError",
    "NotFittedError",
    "Output",
    "OutputError",
    "TrainConfig",
    "Trainer",
    "TrainingDivergedError",
    "__version__",
    "load",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'aekit' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})
