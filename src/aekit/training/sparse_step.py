"""Which path sparse training rows take, and the loss of a step on the sparse path.

A run on a :class:`~aekit.data.sparse.CsrRows` source takes one of two paths, decided once
by :func:`input_path` (``TrainConfig.sparse_path``) and recorded (``Trainer.input_path``, the
estimator's ``input_path_``, and the log):

* ``"sparse"``: each batch stays sparse; the first layer costs ``nnz × hidden`` and its
  weights move only in the batch's columns (:mod:`aekit.model.sparse_net`,
  :class:`~aekit.training.optim.LazyAdam`); the loss is exact over all entries.
* ``"densify"``: each batch (never the whole matrix) becomes a dense ``batch × width`` tensor
  and trains as dense rows do.

``"auto"`` takes the sparse path for sparse rows whose density is at most
:data:`SPARSE_MAX_DENSITY`, in one process (DDP densifies each batch: its gradient
all-reduce wants dense gradients), with a multilayer encoder (not convolutions), no missing
values (``missing=True``) nor categorical blocks (:func:`aekit.model.sparse_net.sparse_blocker`),
and noise that keeps sparsity (none, or masking: of the stored values only). Dense rows take
the dense path (``"dense"``).
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from ..config.configs import TrainConfig
from ..data.sparse import CsrRows, SparseBatch
from ..errors import ConfigError
from ..model.hourglass import Hourglass, Output
from ..model.sparse_net import (
    exact_squared_error,
    gram_is_cheaper,
    scaled_batch,
    scaled_dense,
    sparse_blocker,
    sparse_encode_pre,
)
from .objective import loss_sum
from .protocol import TrainerLike

__all__ = ["SPARSE_MAX_DENSITY", "input_path", "sparse_loss"]

# sparse_path="auto": denser rows are densified batch by batch. Dense BLAS does a multiply-add
# many times faster than sparse kernels: one step (512-256-30, batch 64, one CPU thread, a busy
# machine) on 784-wide rows took 2.3 times the dense step's at 19 % non-zero (MNIST) and 1.6
# times at 5 %; on 5,000-wide rows at 1 % it took 0.77 times (benchmarks/sparse.py, speed).
SPARSE_MAX_DENSITY = 0.03

logger = logging.getLogger("aekit")


def _blocker(module: Hourglass, world_size: int) -> str | None:
    """Why the sparse path cannot be taken, or None."""
    config = module.config
    model_blocker = sparse_blocker(module)  # conv, missing values, categorical blocks
    if model_blocker is not None:
        return model_blocker
    if config.noise not in (None, "masking"):
        return f"noise={config.noise!r} changes the zeros"
    if world_size > 1:
        return "DDP all-reduces dense gradients"
    return None


def input_path(source: Any, module: Hourglass, config: TrainConfig, world_size: int) -> str:
    """``"dense"``, ``"sparse"`` or ``"densify"``: how a run's batches are fed (logged).

    Raises
    ------
    ConfigError
        ``sparse_path="sparse"`` where the sparse path cannot be taken.
    """
    rows = getattr(source, "source", source)  # a RowSubset's underlying rows
    if not isinstance(rows, CsrRows):
        return "dense"
    blocker = _blocker(module, world_size)
    if config.sparse_path == "sparse" and blocker is not None:
        raise ConfigError(f"sparse_path='sparse' is not possible here: {blocker}")
    if config.sparse_path == "densify" or blocker is not None:
        path = "densify"
    elif config.sparse_path == "sparse" or rows.density <= SPARSE_MAX_DENSITY:
        path = "sparse"
    else:
        path = "densify"
    why = blocker or f"density {rows.density:.3g}, sparse_path={config.sparse_path!r}"
    logger.info("sparse input, %s path (%s)", path, why)
    return path


def sparse_loss(
    trainer: TrainerLike, batch: SparseBatch, global_rows: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The step's loss, summed reconstruction loss and penalty, for a sparse batch.

    As :class:`~aekit.training.objective.Objective` computes them for the same rows dense;
    masking noise zeroes a ``noise_level`` share of the stored values (masking a zero
    changes nothing, so this is the dense masking's distribution).
    """
    module, objective = trainer.module, trainer.objective
    config = module.config
    scaled = scaled_batch(module, batch)
    noisy = scaled
    if config.noise == "masking":
        draw = torch.rand(scaled.nnz, generator=trainer.noise_gen, device=scaled.device)
        noisy = scaled.with_values(scaled.values.masked_fill(draw < config.noise_level, 0.0))
    lazy = trainer.config.sparse_optimizer == "lazy"
    column_step = getattr(trainer.optimizer, "column_step", None) if lazy else None
    pre = sparse_encode_pre(module, noisy, lazy=lazy, column_step=column_step)
    code = module.code_activation(pre)
    exact = config.output == "identity" and objective.loss == "mse"
    if exact and not objective.counts_dead_units:
        gram = gram_is_cheaper(module, len(batch))
        fused = lazy and trainer.optimizer.defaults.get("fused")  # block steps: fused kernel
        block_step = getattr(trainer.optimizer, "block_step", None) if fused else None
        recon_sum = exact_squared_error(module, code, scaled, gram=gram, block_step=block_step)
        out, clean = Output(code, code, code, pre), None  # penalties read only code and pre
    else:
        logits = module.decode_logits(code)
        out = Output(module.output_activation(logits), code, logits, pre)
        clean = scaled_dense(module, scaled)
        recon_sum = loss_sum(out, clean, objective.loss)
    return objective.total(recon_sum, out, clean, len(batch), global_rows)
