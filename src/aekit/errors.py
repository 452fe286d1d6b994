"""The one exception family of aekit, and its warning.

Every error aekit raises on purpose derives from :class:`AekitError`, and also from the
built-in type that scikit-learn and ordinary Python code expect, so ``except ValueError``
keeps working::

    AekitError
    ├── ConfigError            (ValueError)      a parameter is out of range or unknown
    ├── DataError              (ValueError)      NaN/inf, wrong shape, empty, wrong feature count
    ├── DataTypeError          (TypeError)       non-numeric data
    ├── NotFittedError         (sklearn's NotFittedError: ValueError, AttributeError)
    ├── ModelFileError         (ValueError)      a model or checkpoint file is bad
    ├── OutputError            (OSError)         a file cannot be written: full disk, read-only
    │   └── FolderInUseError                     another run holds the output folder
    └── TrainingDivergedError  (FloatingPointError) the loss became NaN or infinite

    AekitWarning (UserWarning)                   a setting that works but is likely a mistake

:class:`NotFittedError` is made on first use (PEP 562), so that importing this module, which
the command line's ``--help`` does, loads no scikit-learn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sklearn.exceptions import NotFittedError as _SklearnNotFittedError

__all__ = [
    "AekitError",
    "AekitWarning",
    "ConfigError",
    "DataError",
    "DataTypeError",
    "FolderInUseError",
    "ModelFileError",
    "NotFittedError",
    "OutputError",
    "TrainingDivergedError",
]


class AekitError(Exception):
    """Base class of every error aekit raises on purpose."""


class AekitWarning(UserWarning):
    """A setting that works but is likely a mistake (say, a code as wide as the input)."""


class ConfigError(AekitError, ValueError):
    """A model or training parameter is invalid."""


class DataError(AekitError, ValueError):
    """Input data is unusable: NaN/inf, wrong rank, empty, or the wrong feature count."""


class DataTypeError(AekitError, TypeError):
    """Input data is not numeric."""


class ModelFileError(AekitError, ValueError):
    """A model or checkpoint file is missing, truncated, tampered with or of an unknown format."""


class OutputError(AekitError, OSError):
    """A file cannot be written: the disk is full, the folder read-only or forbidden.

    The message names the path; the file that was there before is left as it was.
    """


class FolderInUseError(OutputError):
    """Another run (its process and host in the message) is writing to the same folder."""


class TrainingDivergedError(AekitError, FloatingPointError):
    """The training loss became NaN or infinite."""


if TYPE_CHECKING:

    class NotFittedError(AekitError, _SklearnNotFittedError):
        """The estimator is used before ``fit``."""


def __getattr__(name: str) -> Any:
    if name != "NotFittedError":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from sklearn.exceptions import NotFittedError as _SklearnNotFittedError

    class NotFittedError(AekitError, _SklearnNotFittedError):  # type: ignore[no-redef]
        """The estimator is used before ``fit``."""

    NotFittedError.__module__ = __name__
    globals()["NotFittedError"] = NotFittedError
    return NotFittedError
