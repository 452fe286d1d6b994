"""The network: the hourglass, its sparse first layer, code penalties and the PCA start.

:mod:`~aekit.model.hourglass` is the MLP or convolutional :class:`Hourglass` built from a
:class:`~aekit.ModelConfig`; :mod:`~aekit.model.sparse_net` runs its first layer on
``scipy.sparse`` rows; :mod:`~aekit.model.regularize` holds the code penalties and input
corruption; :mod:`~aekit.model.pca_start` computes the principal directions a model starts from;
:mod:`~aekit.model.stacked` runs an ensemble's members as one network with stacked weights.
"""

from .hourglass import Hourglass, Output, softmax_blocks

__all__ = ["Hourglass", "Output", "softmax_blocks"]
