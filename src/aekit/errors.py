"""The one exception family of aekit.

Every error aekit raises on purpose derives from :class:`AekitError`, and also from the
built-in type that scikit-learn and ordinary Python code expect, so ``except ValueError``
keeps working::

    AekitError
    ├── ConfigError            (ValueError)      a parameter is out of range or unknown
    ├── DataError              (ValueError)      NaN/inf, wrong shape, empty, wrong feature count
    ├── DataTypeError          (TypeError)       non-numeric data
    ├── NotFittedError         (sklearn's NotFittedError: ValueError, AttributeError)
    ├── ModelFileError         (ValueError)      a model or checkpoint file is bad
    └── TrainingDivergedError  (FloatingPointError) the loss became NaN or infinite
"""

from __future__ import annotations

from sklearn.exceptions import NotFittedError as _SklearnNotFittedError

__all__ = [
    "AekitError",
    "ConfigError",
    "DataError",
    "DataTypeError",
    "ModelFileError",
    "NotFittedError",
    "TrainingDivergedError",
]


class AekitError(Exception):
    """Base class of every error aekit raises on purpose."""


class ConfigError(AekitError, ValueError):
    """A model or training parameter is invalid."""


class DataError(AekitError, ValueError):
    """Input data is unusable: NaN/inf, wrong rank, empty, or the wrong feature count."""


class DataTypeError(AekitError, TypeError):
    """Input data is not numeric."""


class NotFittedError(AekitError, _SklearnNotFittedError):
    """The estimator is used before ``fit``."""


class ModelFileError(AekitError, ValueError):
    """A model or checkpoint file is missing, truncated, tampered with or of an unknown format."""


class TrainingDivergedError(AekitError, FloatingPointError):
    """The training loss became NaN or infinite."""
