"""The imputer family: :class:`AutoencoderImputer` and its folder layout.

:mod:`~aekit.impute.imputer` holds the estimator (scikit-learn's imputer API, holes filled by
a denoising autoencoder); :mod:`~aekit.impute.imputerfile` the imputer folder it saves to and
loads from (``imputer.json`` beside model folders, no pickle).
"""

from .imputer import (
    IMPUTER_DEFAULTS,
    AutoencoderImputer,
    hide_share_for,
    imputer_autoencoder,
    shared_scale,
)

__all__ = [
    "IMPUTER_DEFAULTS",
    "AutoencoderImputer",
    "hide_share_for",
    "imputer_autoencoder",
    "shared_scale",
]
