"""The imputer family: :class:`AutoencoderImputer` and its folder layout.

:mod:`~aekit.impute.imputer` holds the estimator (scikit-learn's imputer API, holes filled by
a denoising autoencoder); :mod:`~aekit.impute.defaults` the autoencoder it trains unless given
one; :mod:`~aekit.impute.imputerfile` the imputer folder it saves to and loads from
(``imputer.json`` beside model folders, no pickle); :mod:`~aekit.impute.graph` its ``transform``
as one torch module, for ONNX export.
"""

from .defaults import (
    IMPUTER_DEFAULTS,
    code_width_for,
    hide_pattern_for,
    hide_share_for,
    imputer_autoencoder,
    patience_for,
    shared_scale,
)
from .graph import FillGraph, fill_graph
from .imputer import AutoencoderImputer
from .imputerfile import IMPUTER_NAME, SavedImputer, read_imputer, save_imputer

__all__ = [
    "IMPUTER_DEFAULTS",
    "IMPUTER_NAME",
    "AutoencoderImputer",
    "FillGraph",
    "SavedImputer",
    "code_width_for",
    "fill_graph",
    "hide_pattern_for",
    "hide_share_for",
    "imputer_autoencoder",
    "patience_for",
    "read_imputer",
    "save_imputer",
    "shared_scale",
]
