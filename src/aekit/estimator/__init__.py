"""``Autoencoder``: the scikit-learn estimator, its ``"auto"`` rules, inference and its file.

:mod:`~aekit.estimator.autoencoder` is the estimator, a thin adapter: it resolves the
``"auto"`` parameters from the data (:mod:`~aekit.estimator.resolve`), builds configs and a
:class:`~aekit.Hourglass`, and trains it with a :class:`~aekit.Trainer`;
:mod:`~aekit.estimator.rows` takes its input, :mod:`~aekit.estimator.inference` runs the
network in chunks, :mod:`~aekit.estimator.modelfile` is the model folder's layout, and
:mod:`~aekit.estimator.ensemble` fits an ensemble's members in one pass.
"""

from __future__ import annotations

import os

from .autoencoder import Autoencoder
from .modelfile import CONFIG_NAME, FORMAT_VERSION, WEIGHTS_NAME

__all__ = ["CONFIG_NAME", "FORMAT_VERSION", "WEIGHTS_NAME", "Autoencoder", "load"]


def load(folder: str | os.PathLike[str]) -> Autoencoder:
    """Load a model folder as an :class:`Autoencoder` (:meth:`Autoencoder.load`).

    A detector folder loads as its first autoencoder here; :func:`aekit.load` returns
    whatever kind was saved.
    """
    return Autoencoder.load(folder)
