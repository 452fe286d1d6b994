"""aekit: autoencoders as a nonlinear PCA.

Learn a compact code for your data, reconstruct it, denoise it, find sparse features, or
flag rows that don't reconstruct well, with a scikit-learn transformer on PyTorch::

    from aekit import Autoencoder
    ae = Autoencoder(code_dim=8).fit(X)
    codes = ae.transform(X)
    errors = ae.reconstruction_error(X)
"""

__version__ = "0.1.0"

from .config import ModelConfig, TrainConfig
from .errors import (
    AekitError,
    ConfigError,
    DataError,
    DataTypeError,
    ModelFileError,
    NotFittedError,
    TrainingDivergedError,
)
from .estimator import Autoencoder, load
from .model import Hourglass, Output
from .outlier import AutoencoderOutlierDetector
from .train import Callback, EarlyStopping, History, Trainer

__all__ = [
    "AekitError",
    "Autoencoder",
    "AutoencoderOutlierDetector",
    "Callback",
    "ConfigError",
    "DataError",
    "DataTypeError",
    "EarlyStopping",
    "History",
    "Hourglass",
    "ModelConfig",
    "ModelFileError",
    "NotFittedError",
    "Output",
    "TrainConfig",
    "Trainer",
    "TrainingDivergedError",
    "__version__",
    "load",
]
