"""What the estimator adds to the configs: the ``"auto"`` defaults and the one parameter table.

:class:`EstimatorOptions` holds the estimator parameters whose defaults are decided from the
training data (or that have no home in a config); :func:`estimator_defaults` joins them with
the fields of :class:`~aekit.ModelConfig` and :class:`~aekit.TrainConfig` into the one table
the estimator's signature, its docstring and the CLI's options come from.
"""

from __future__ import annotations

from dataclasses import dataclass

from .configs import INITS, SCALINGS, ModelConfig, TrainConfig
from .fields import Option, describe, documented, option

__all__ = ["RESOLVED_FIELDS", "EstimatorOptions", "estimator_defaults"]


@documented
@dataclass(frozen=True)
class EstimatorOptions:
    """What :class:`~aekit.Autoencoder` adds to the configs: defaults resolved from the data.

    Each field here either has no home in a config (``scaling``, ``transform_batch_size``)
    or replaces a config field's fixed default with one chosen from the training data in
    ``fit`` (``"auto"``). Every other estimator parameter is a :class:`ModelConfig` or
    :class:`TrainConfig` field with that field's default (see :func:`estimator_defaults`).

    Parameters
    ----------
    {parameters}
    """

    code_dim: int = option(2, ModelConfig.__dataclass_fields__["code_dim"].metadata["doc"])
    hidden: str | tuple[int, ...] | int = option(
        "auto",
        "Encoder hidden widths, outermost first; the decoder mirrors them. 'auto' picks two "
        "layers from the feature count (min(512, max(64, 2d)), min(256, max(32, d))); () "
        "means no hidden layer, and with activation='identity' gives the linear autoencoder, "
        "which finds PCA's subspace. With image_shape these are convolution channels "
        "(auto: 32, 64).",
    )
    image_shape: str | tuple[int, ...] | None = option(
        None,
        "Treat rows as images, (channels, height, width) flattened channel-first (or "
        "(height, width)): the encoder becomes stride-2 convolutions and the decoder "
        "transposed convolutions. 'auto': one square channel (784 features → 28×28).",
    )
    output: str = option(
        "auto",
        "Output activation, 'identity' or 'sigmoid'. 'auto': sigmoid when the scaled training "
        "data lies in [0, 1] (and the model is not linear), identity otherwise.",
    )
    batch_norm: bool | str = option(
        "auto",
        "Batch normalisation after each hidden layer. 'auto': on when the scaled training "
        "data lies in [0, 1] (images: it roughly halves the epochs needed on MNIST), off "
        "otherwise (on standardized tables it widens the gap between training and held-out "
        "error).",
    )
    scaling: str = option(
        "auto",
        "Input scaling learned in fit and inverted on the way back. global_minmax maps the "
        "data's overall range to [0, 1] with one offset and scale for every feature (right "
        "for images); unit_variance divides each feature by its standard deviation without "
        "centring (keeps sparse rows sparse; its errors equal standardize's, the biases "
        "carry the mean). 'auto': global_minmax for uint8 data, none when the data already "
        "lies in [0, 1], standardize otherwise (unit_variance for scipy.sparse input). Errors "
        "are measured in this scaled space.",
        choices=SCALINGS,
    )
    loss: str = option(
        "auto",
        "Reconstruction loss while training, 'mse' or 'bce' (needs a sigmoid output). "
        "'auto': bce with a sigmoid output, mse otherwise. Errors are always reported as "
        "squared error.",
    )
    epochs: int | str = option(
        "auto",
        "Maximum epochs; early stopping usually ends sooner. 'auto': 100, or on small data "
        "enough epochs for 2,000 optimiser steps.",
    )
    init: str = option(
        "auto",
        "Where training starts. 'auto' (the default): cross-fitting where fits are cheap "
        "(in-memory rows, 30 to 2,000 rows and at most 40,000 entries, epochs='auto' and no "
        "max_time, no sparse code, one process, no checkpoint_dir): the rows are dealt into 5 "
        "folds; on the other folds a model is trained from PCA's solution (early stopping "
        "alone) and one from a random start, so that every row is validated once by each and "
        "by PCA's solution itself. The trained PCA start is kept where it beats PCA's solution "
        "by improvement_z (2) standard errors paired over all the rows, the random start where "
        "it beats the better of those two so; the final model is then fitted on all the rows "
        "as the chosen one ('random', or 'pca' with improvement_z=0), else as 'pca'. "
        "Elsewhere, one fit as 'pca'. Which rule decided is recorded in the fit's history, "
        "initial['selection'] "
        "(aekit.estimator.select). 'pca': at PCA's solution, computed from all the training "
        "rows in the scaled space: with an identity output the first model reconstructs "
        "exactly as PCA with code_dim components does (a linear path beside the nonlinear "
        "layers, whose last layers start at zero), early stopping counts that start as epoch "
        "0, so training is kept only where it beats PCA on the validation rows "
        "(improvement_z). With a sigmoid output the decoder starts at PCA's first-order "
        "equivalent in logits; an L1 dictionary starts at ± principal directions (exactly PCA "
        "with code_dim // 2 components); top-k and KL codes keep the random start (see the "
        "user guide). 'random': PyTorch's default initialisation (aekit 0.1's only start; use "
        "it to watch a linear autoencoder find PCA's subspace).",
        choices=INITS,
    )
    missing: bool | str = option(
        "auto",
        "Missing values (NaN, pd.NA) in the rows: the model sees each missing entry as 0 in "
        "the scaled space plus a mask indicator, its loss counts observed entries only and "
        "training hides hide_share of the observed entries. 'auto': on when the training "
        "rows have a missing value. Errors of rows with holes are summed over the observed "
        "entries and rescaled by n_features / n_observed.",
    )
    transform_batch_size: int = option(
        4096, "Rows per chunk in transform and friends, so memory stays flat."
    )
    categorical_features: str | None = option(
        None,
        "Integer-coded columns to treat as categorical (a DataFrame's category, text and bool "
        "columns always are): names or 0-based indices, a list or one comma-separated string, "
        "or a boolean mask. Each enters as a one-hot block and leaves through a softmax; "
        "reconstruct then returns a DataFrame with the input's dtypes (an array for arrays). "
        "Unseen categories are treated as missing, with a warning (aekit.data.tables).",
    )
    max_categories: int = option(
        50,
        "The most distinct values a categorical column may have: fit refuses a column with "
        "more (a free-text or identifier column), naming it.",
    )


def estimator_defaults() -> dict[str, Option]:
    """Every estimator parameter: ``{name: (default, doc, choices)}``, the one table.

    The model and training configs' fields (less ``input_dim``), with the fields of
    :class:`EstimatorOptions` taking the place of those of the same name. The estimator's
    signature, its docstring and the CLI's options are all checked against or built from it.
    """
    table = {**describe(ModelConfig), **describe(TrainConfig)}
    for name in RESOLVED_FIELDS:
        del table[name]
    table.update(describe(EstimatorOptions))
    return table


# Config fields the estimator derives rather than takes: the data's width, the linear path
# that init="pca" puts PCA's solution in, and the one-hot blocks of a table's layout.
RESOLVED_FIELDS = ("input_dim", "linear_path", "categorical_blocks")
