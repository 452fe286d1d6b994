"""THE defaults: every field of the model and training configs and the estimator's options.

:mod:`~aekit.config.fields` describes a field (its default and its one line of text) and
checks values; :mod:`~aekit.config.configs` holds :class:`ModelConfig` and
:class:`TrainConfig`; :mod:`~aekit.config.options` the estimator's own options, whose
``"auto"`` values are resolved from the data. Importing this family loads no torch.
"""

from .configs import (
    ACTIVATIONS,
    INITS,
    LOSSES,
    NOISES,
    SCALINGS,
    SCHEDULES,
    SPARSITIES,
    ModelConfig,
    Option,
    TrainConfig,
    fill_parameters,
    is_linear,
    option,
)
from .options import RESOLVED_FIELDS, EstimatorOptions, estimator_defaults

__all__ = [
    "ACTIVATIONS",
    "INITS",
    "LOSSES",
    "NOISES",
    "RESOLVED_FIELDS",
    "SCALINGS",
    "SCHEDULES",
    "SPARSITIES",
    "EstimatorOptions",
    "ModelConfig",
    "Option",
    "TrainConfig",
    "estimator_defaults",
    "fill_parameters",
    "is_linear",
    "option",
]
