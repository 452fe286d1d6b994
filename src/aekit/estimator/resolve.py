"""The estimator's ``"auto"`` defaults, resolved from the training data's statistics."""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

import numpy as np
import torch

from ..config.configs import INITS, SCALINGS, ModelConfig, TrainConfig, is_linear
from ..config.fields import plain
from ..data import images
from ..data.checks import check_finite_output
from ..data.missing import fill_holes
from ..data.sources import RowSource
from ..data.sparse import CsrRows
from ..errors import AekitWarning, ConfigError, DataError
from ..model.hourglass import Hourglass
from ..model.pca_start import (
    principal_directions,
    sharpen_blocks_,
    sparse_principal_directions,
)
from ..training.trainer import batches_per_epoch, derive_seeds

__all__ = [
    "AUTO_EPOCHS",
    "AUTO_MIN_STEPS",
    "MIN_ROWS",
    "auto_epochs",
    "auto_hidden",
    "categorical_blocks",
    "initial_model",
    "resolve_configs",
]


_PCA_STARTS = ("pca", "auto")  # "auto" outside the estimator's search: PCA's solution

MIN_ROWS = 2  # the fewest training rows fit() (or partial_fit's first call) accepts


def auto_hidden(n_features: int, code_dim: int) -> tuple[int, ...]:
    """The hidden widths ``hidden="auto"`` picks: two layers between the input and the code.

    ``(min(512, max(64, 2·d)), min(256, max(32, d)))`` for ``d`` input features, so 784-pixel
    images get 512-256 and a 13-column table gets 64-32; both layers are at least as wide as
    the code.
    """
    first = min(512, max(64, 2 * n_features, code_dim))
    second = min(256, max(32, n_features, code_dim))
    return (first, second)


AUTO_EPOCHS = 100  # epochs="auto" on data with enough rows: tuned on MNIST (113 steps an epoch)


AUTO_MIN_STEPS = 2_000  # epochs="auto" on small data: at least this many optimiser steps


def auto_epochs(n_rows: int, batch_size: int, val_fraction: float, min_val_rows: int = 0) -> int:
    """The maximum epochs ``epochs="auto"`` picks: 100, or more for at least 2,000 steps.

    The 100 epochs were tuned on MNIST, where an epoch of 7,200 rows in batches of 64 is 113
    optimiser steps. A table of a few hundred rows has 2 to 6 batches an epoch, so 100 epochs
    are only 200 to 600 steps and the model stops under-trained (on wine, 120 rows, without
    batch norm: no better than PCA on its own training rows after 100 epochs). Small data
    therefore gets ``ceil(2000 / batches per epoch)`` epochs; early stopping still ends
    training when the validation loss stops improving. With 20 or more batches an epoch
    (1,280 training rows at the default batch of 64) this is 100.
    """
    steps = batches_per_epoch(n_rows, batch_size, val_fraction, min_val_rows)
    return max(AUTO_EPOCHS, math.ceil(AUTO_MIN_STEPS / steps))


AUTO_CHANNELS = (32, 64)  # hidden="auto" with image_shape: two stride-2 convolutions


def _resolve_auto(name: str, value: Any, auto: bool) -> bool:
    """A bool parameter that may also be ``"auto"`` (resolved to ``auto``)."""
    if isinstance(value, str):
        if value != "auto":
            raise ConfigError(f"{name}={value!r}: expected True, False or 'auto'")
        return auto
    return value


def categorical_blocks(stats: dict[str, np.ndarray]) -> tuple[tuple[int, int], ...]:
    """The one-hot blocks of a table's layout (``stats["categorical_blocks"]``), or ()."""
    blocks = stats.get("categorical_blocks")
    if blocks is None:
        return ()
    return tuple((int(start), int(stop)) for start, stop in np.asarray(blocks).reshape(-1, 2))


def _resolve_missing(missing: Any, has_missing: bool) -> bool:
    """``missing="auto"``: on when the training rows have a missing value; refuse False then."""
    missing = _resolve_auto("missing", missing, has_missing)
    if has_missing and not missing:
        raise DataError(
            "the training rows contain NaN (missing values) but missing=False; pass "
            "missing=True or 'auto' to train with them, or fill them first"
        )
    return bool(missing)


def scaling_params(stats: dict[str, np.ndarray], scaling: str) -> tuple[np.ndarray, np.ndarray]:
    """(offset, scale) with ``scaled = (X - offset) / scale``; constant features get scale 1.

    The columns of one-hot blocks (:func:`categorical_blocks`) keep offset 0 and scale 1.
    """
    d = len(stats["min"])
    if scaling == "standardize":
        offset, scale = stats["mean"], stats["std"]
    elif scaling == "minmax":
        offset, scale = stats["min"], stats["max"] - stats["min"]
    elif scaling == "unit_variance":  # no offset: sparse rows stay sparse
        offset, scale = np.zeros(d), stats["std"]
    elif scaling == "global_minmax":  # one offset and scale for every feature
        low, high = float(np.min(stats["min"])), float(np.max(stats["max"]))
        offset, scale = np.full(d, low), np.full(d, high - low)
    else:
        offset, scale = np.zeros(d), np.ones(d)
    scale = np.where(scale > 1e-12 * np.maximum(1.0, np.abs(offset)), scale, 1.0)
    offset, scale = np.array(offset, dtype=np.float64), np.array(scale, dtype=np.float64)
    for start, stop in categorical_blocks(stats):  # one-hot columns stay 0/1
        offset[start:stop], scale[start:stop] = 0.0, 1.0
    with np.errstate(over="ignore"):
        offset, scale = offset.astype(np.float32), scale.astype(np.float32)
    check_finite_output(np.stack([offset, scale], axis=1), "input scaling", "column")
    return offset, scale


def resolve_configs(
    params: dict[str, Any], stats: dict[str, np.ndarray]
) -> tuple[ModelConfig, TrainConfig, str]:
    """The model and training configs and the scaling an estimator's parameters resolve to.

    ``params`` are the estimator's parameters (``get_params()``); ``stats`` the training
    rows' column statistics (``min``, ``max``, ``n_rows``, ``uint8``); fewer than
    :data:`MIN_ROWS` rows are refused (:class:`~aekit.errors.DataError`). Every ``"auto"`` is
    decided here, from the data, and ``hidden`` given as one int becomes a 1-tuple.
    ``linear_path`` (``init="pca"`` in a deep model without sparsity), ``input_dim`` and
    ``categorical_blocks`` (from the data) are not parameters but set here; NumPy scalars
    become Python values (:func:`~aekit.config.fields.plain`). The seed is
    not passed on as given: ``TrainConfig.random_state`` is the second of two seeds derived
    from ``random_state`` (:func:`~aekit.training.prepare.derive_seeds`; the first seeds the
    network's weights in :func:`initial_model`), None stays None. Every other parameter goes
    into the config field of the same name unchanged, so a config default and an estimator
    default cannot drift apart.
    """
    params = {name: plain(value) for name, value in params.items()}  # np.int64(8) → 8
    if int(stats["n_rows"]) < MIN_ROWS:
        raise DataError(
            f"X has {int(stats['n_rows'])} sample(s) (rows); fitting needs at least "
            f"{MIN_ROWS}: one row has no spread to scale by and nothing to validate on"
        )
    if params["scaling"] not in SCALINGS:
        raise ConfigError(f"scaling={params['scaling']!r} is not one of {', '.join(SCALINGS)}")
    n_features = len(stats["min"])
    in_unit = bool(stats["min"].min() >= 0 and stats["max"].max() <= 1)
    scaling = params["scaling"]
    if scaling == "auto":  # 8-bit data (images) keep their common scale: /255, not z-scores
        scaling = "none" if in_unit else "global_minmax" if stats["uint8"] else "standardize"
        if scaling == "standardize" and bool(stats.get("sparse", False)):
            scaling = "unit_variance"  # centring would densify: the biases carry the mean
    image_shape = images.image_shape(params["image_shape"], n_features)
    hidden = params["hidden"]
    if isinstance(hidden, str):
        if hidden != "auto":
            raise ConfigError(f"hidden={hidden!r}: expected 'auto', an int or a tuple of ints")
        hidden = AUTO_CHANNELS if image_shape else auto_hidden(n_features, params["code_dim"])
    elif isinstance(hidden, (int, np.integer)):
        hidden = (int(hidden),)
    hidden = tuple(hidden)
    unit_after_scaling = scaling in ("minmax", "global_minmax") or (scaling == "none" and in_unit)
    output = params["output"]
    if output == "auto":
        linear = is_linear(hidden, params["activation"], image_shape)
        output = "sigmoid" if unit_after_scaling and not linear else "identity"
    if params["init"] not in INITS:
        raise ConfigError(f"init={params['init']!r} is not one of {', '.join(INITS)}")
    deep = bool(hidden) or image_shape is not None
    resolved = {
        **params,
        "missing": _resolve_missing(params["missing"], bool(stats.get("has_missing", False))),
        # PCA's home in a deep model; linear models and dictionaries start in their own layers
        "linear_path": params["init"] in _PCA_STARTS and deep and params["sparsity"] is None,
        "input_dim": n_features,
        "categorical_blocks": categorical_blocks(stats),
        "hidden": hidden,
        "image_shape": image_shape,
        "output": output,
        "batch_norm": _resolve_auto("batch_norm", params["batch_norm"], unit_after_scaling),
        "loss": ("bce" if output == "sigmoid" else "mse")
        if params["loss"] == "auto"
        else params["loss"],
    }
    if resolved["loss"] == "bce" and not unit_after_scaling:  # BCE has no minimum there
        raise ConfigError(
            f"loss='bce' needs scaled rows in [0, 1], but scaling={scaling!r} leaves these "
            "outside it: use scaling='minmax' (or data in [0, 1]), or loss='mse'"
        )
    auto = params["epochs"] == "auto"  # counted from the settings once they are checked
    resolved["epochs"] = 1 if auto else params["epochs"]
    seed = params["random_state"]
    resolved["random_state"] = None if seed is None else derive_seeds(seed, 2)[1]
    model = ModelConfig(**{f.name: resolved[f.name] for f in dataclasses.fields(ModelConfig)})
    train = TrainConfig(**{f.name: resolved[f.name] for f in dataclasses.fields(TrainConfig)})
    if auto:
        n_rows = int(stats["n_rows"])
        epochs = auto_epochs(n_rows, train.batch_size, train.val_fraction, train.min_val_rows)
        train = dataclasses.replace(train, epochs=epochs)
    return model, train, scaling


def initial_model(
    params: dict[str, Any],
    rows: torch.Tensor | RowSource,
    stats: dict[str, np.ndarray],
    resolved: tuple[ModelConfig, TrainConfig, str] | None = None,
) -> tuple[Hourglass, TrainConfig, str]:
    """The network training starts from, its training config and the scaling used.

    The configs are resolved from the data (:func:`resolve_configs`), the network is built
    from a seed derived from ``random_state``, its input scaling set from ``stats``, and with
    ``init="pca"`` its weights moved to PCA's solution on ``rows`` (in the scaled space).
    ``resolved`` passes configs already resolved from the same ``params`` and ``stats``.

    Raises
    ------
    DataError
        If the scaling overflows float32 for some column.
    """
    model_config, train_config, scaling = resolved or resolve_configs(params, stats)
    init_seed = derive_seeds(params["random_state"], 2)[0]
    module = Hourglass(model_config, torch.Generator().manual_seed(init_seed))
    offset, scale = scaling_params(stats, scaling)
    module.offset.copy_(torch.from_numpy(offset))
    module.scale.copy_(torch.from_numpy(scale))
    mean = torch.from_numpy(np.asarray(stats["mean"], dtype=np.float32))
    module.set_origin_(module.scale_input(mean))
    # Scaling is monotone per column: if the extremes stay finite in float32, all do.
    extremes = torch.from_numpy(np.stack([stats["min"], stats["max"]]).astype(np.float32))
    check_finite_output(module.scale_input(extremes).numpy().T, "input scaling", "column")
    if params["init"] in _PCA_STARTS and module.pca_start is not None:
        fill = None
        if isinstance(rows, CsrRows):  # no holes: sparse rows refuse NaN
            mean, components = sparse_principal_directions(
                rows, module.offset, module.scale, model_config.code_dim, seed=init_seed
            )
        else:
            # Rows with holes: PCA of the scaled rows filled with their observed column
            # means, as aekit.analysis.measure's PCA; the mask indicators encode the fill.
            fill = module.scale_input(mean) if model_config.missing else None

            def scale(rows: torch.Tensor) -> torch.Tensor:
                return fill_holes(module.scale_input(rows), fill)

            mean, components = principal_directions(
                rows, scale, model_config.code_dim, seed=init_seed
            )
        module.start_from_pca_(mean, components, fill)
        if model_config.categorical_blocks and not isinstance(rows, CsrRows):
            sharpen_blocks_(module, module.scale_input(_sample(rows, init_seed)))
    _warn_if_identity_can_be_learned(model_config)
    return module, train_config, scaling


def _sample(rows: torch.Tensor | RowSource, seed: int, size: int = 8192) -> torch.Tensor:
    """At most ``size`` of the rows, drawn with ``seed``, in order (dense, on the CPU)."""
    n = len(rows)
    if n <= size:
        return rows if isinstance(rows, torch.Tensor) else rows.take(torch.arange(n))
    chosen = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:size].sort()[0]
    return rows[chosen] if isinstance(rows, torch.Tensor) else rows.take(chosen)


def _warn_if_identity_can_be_learned(config: ModelConfig) -> None:
    """Warn when a code as wide as the input can copy it, with nothing to stop it."""
    masked = config.missing and config.hide_share > 0  # masking noise on observed entries
    if config.code_dim >= config.input_dim and config.sparsity is None and config.noise is None:
        if masked:
            return
        warnings.warn(
            f"code_dim={config.code_dim} >= {config.input_dim} features without sparsity or "
            "noise: the autoencoder can learn the identity and its code explains nothing; "
            "use a smaller code_dim, or sparsity='topk'/'l1' or noise='masking' to make a "
            "wide code useful",
            AekitWarning,
            stacklevel=5,
        )
