"""aekit: autoencoders as a nonlinear PCA.

Learn a compact code for your data, reconstruct it, denoise it, find sparse features, or
flag rows that don't reconstruct well, with a scikit-learn transformer on PyTorch::

    from aekit import Autoencoder
    ae = Autoencoder(code_dim=8).fit(X)
    codes = ae.transform(X)
    errors = ae.reconstruction_error(X)

Importing :mod:`aekit` is cheap: each public name is imported from its module on first use
(PEP 562), so ``import aekit`` and ``aekit --help`` load neither PyTorch nor scikit-learn.

The package is a stack of families, each knowing only those below it (no import cycles,
checked by ``tests/test_layout.py``): ``config`` → ``files`` → ``data`` → ``model`` →
``training`` → ``sae`` → ``estimator`` → ``anomaly`` → ``impute`` → ``analysis`` → ``export`` →
this package door (:func:`load`) → ``cli``.
Module paths of earlier releases (``aekit.outlier``, ``aekit.detectorfile``,
``aekit.report``, ...) still import: they are names of the modules that now hold their contents
(:data:`MOVED`).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import os
import sys
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .anomaly.detector import AutoencoderOutlierDetector
    from .config.configs import ModelConfig, TrainConfig
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
    from .estimator.autoencoder import Autoencoder
    from .impute import AutoencoderImputer
    from .model.hourglass import Hourglass, Output
    from .sae import SparseAutoencoder
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
    "SparseAutoencoder": "sae",
    "AutoencoderOutlierDetector": "anomaly",
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
    "SparseAutoencoder",
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


def load(path: str | os.PathLike[str]) -> Any:
    """Load whatever kind of aekit estimator was saved in ``path``; nothing in it is executed.

    An imputer folder (``imputer.json`` beside the model) loads as an
    :class:`AutoencoderImputer`, a detector folder (``detector.json``) as an
    :class:`AutoencoderOutlierDetector`, a sparse autoencoder folder (``sae.json``, or
    SAELens's ``cfg.json``) as a :class:`SparseAutoencoder`, a model folder as an
    :class:`Autoencoder`.

    Raises
    ------
    ModelFileError
        If the folder is missing, a file is truncated or tampered with, or not aekit's.
    """
    from .files.layouts import folder_kind

    kind = folder_kind(path)
    if kind == "sae":
        from .sae import SparseAutoencoder

        return SparseAutoencoder.load(path)
    if kind == "imputer":
        from .impute import AutoencoderImputer

        return AutoencoderImputer.load(path)
    if kind == "detector":
        from .anomaly.detector import AutoencoderOutlierDetector

        return AutoencoderOutlierDetector.load(path)
    from .estimator.autoencoder import Autoencoder

    return Autoencoder.load(path)


# Module paths of earlier releases -> the module that holds their contents now.
MOVED = {
    "aekit.estimator_options": "aekit.config.options",
    "aekit.modelfile": "aekit.estimator",
    "aekit.outlier": "aekit.anomaly.detector",
    "aekit.detectorfile": "aekit.anomaly",
    "aekit.regularize": "aekit.model.regularize",
    "aekit.report": "aekit.analysis.report",
    "aekit.plots": "aekit.analysis.plots",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Import an old module path (:data:`MOVED`) as the module that holds it now."""

    def __init__(self) -> None:
        self._specs: dict[str, Any] = {}

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: Any) -> Any:
        module = importlib.import_module(MOVED[spec.name])
        self._specs[module.__name__] = module.__spec__  # the import machinery overwrites it
        return module

    def exec_module(self, module: Any) -> None:
        """Nothing to run (the module ran under its new name); give it back its own spec."""
        module.__spec__ = self._specs[module.__name__]


if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModules())
