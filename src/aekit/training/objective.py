"""What training minimises: the reconstruction loss, the code penalties (AuxK included).

:class:`Objective` turns one forward pass into the step's loss, and computes the validation
loss. Losses are sums over this rank's rows divided by the global row count, times the world
size: DDP's gradient averaging then yields the gradient of the global mean, so one process
and several compute the same step.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import torch
import torch.nn.functional as F

from .._sparse_net import forward_rows
from ..config import TrainConfig
from ..data.sources import RowSource
from ..data.sparse import source_chunk_rows
from ..model import Hourglass, Output
from ..regularize import dead_unit_code, kl_penalty, l1_penalty
from .distributed import Ranks

__all__ = [
    "DEAD_AFTER_ROWS",
    "Objective",
    "autocast",
    "dead_unit_loss_sum",
    "loss_sum",
    "uses_dead_unit_loss",
]

DEAD_AFTER_ROWS = 2048  # a top-k unit silent for this many training rows counts as dead

_EVAL_ROWS = 4096  # rows per chunk when validating


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """bfloat16 autocast for ``precision="bf16"``, else nothing."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def loss_sum(out: Output, target: torch.Tensor, loss: str) -> torch.Tensor:
    """The reconstruction loss summed over rows and features, in float32."""
    if loss == "bce":
        return F.binary_cross_entropy_with_logits(out.logits.float(), target, reduction="sum")
    return _squared_error_sum(out.recon, target)


def _squared_error_sum(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(recon.float(), target, reduction="sum")


def uses_dead_unit_loss(mcfg: Any) -> bool:
    """AuxK is on for weighted top-k dictionaries."""
    return bool(mcfg.is_dictionary and mcfg.sparsity == "topk" and mcfg.sparsity_weight > 0)


def dead_unit_loss_sum(
    module: Hourglass, out: Output, clean: torch.Tensor, dead: torch.Tensor
) -> torch.Tensor:
    """AuxK: squared error left after adding dead units' best guesses to the reconstruction.

    For a top-k code with a linear decoder (``hidden=()``, the sparse-dictionary setting of
    Gao et al.). ``dead`` marks the units silent for :data:`DEAD_AFTER_ROWS` training rows
    (see :meth:`Objective.dead_units`); each row's largest pre-activations among them form an
    auxiliary code whose decoded contribution ``W z`` is added to the (fixed)
    reconstruction. Only dead units' weights get gradient from this.
    """
    config = module.config
    assert config.sparsity_k is not None
    k_aux = min(config.code_dim, max(2 * config.sparsity_k, config.input_dim // 2))
    aux_code = dead_unit_code(out.pre, dead, k_aux)
    delta = F.linear(aux_code, module.code_layer.weight)
    aux_recon = module.output_activation(out.logits.detach() + delta)
    return _squared_error_sum(aux_recon, clean)


class Objective:
    """The loss a training step minimises, and the validation loss, for one model.

    Kept lean: on a GPU, small models are bound by the Python and kernel launches per step,
    so a plain autoencoder launches nothing for a penalty it does not have.

    Parameters
    ----------
    module : Hourglass
        The model (not a DDP or compiled wrapper: AuxK reads its layers and counters).
    config : TrainConfig
        Its ``loss`` and ``precision`` are used.
    ranks : Ranks
        The processes whose rows make up a global batch.
    device : torch.device
        Where validation rows go.

    Attributes
    ----------
    penalised : bool
        Whether the step adds a code penalty (l1, kl, or AuxK for top-k codes).
    counts_dead_units : bool
        Whether a step updates AuxK's silence counters (``module.rows_since_fired``).
    """

    def __init__(
        self, module: Hourglass, config: TrainConfig, ranks: Ranks, device: torch.device
    ) -> None:
        self.module = module
        self.loss = config.loss
        self.precision = config.precision
        self.ranks = ranks
        self.device = device
        self.counts_dead_units = uses_dead_unit_loss(module.config)
        self.penalised = module.config.sparsity in ("l1", "kl") or self.counts_dead_units

    def __call__(
        self, out: Output, clean: torch.Tensor, local_rows: int, global_rows: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The step's loss, its summed reconstruction loss, and its penalty (or None).

        Parameters
        ----------
        out : Output
            The forward pass of this rank's rows.
        clean : Tensor of shape (local_rows, n_features)
            The scaled, uncorrupted rows: the target.
        local_rows, global_rows : int
            Rows on this rank, and in the global batch over all ranks.
        """
        return self.total(loss_sum(out, clean, self.loss), out, clean, local_rows, global_rows)

    def total(
        self,
        recon_sum: torch.Tensor,
        out: Output,
        clean: torch.Tensor | None,
        local_rows: int,
        global_rows: int,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """:meth:`__call__` from the summed reconstruction loss (the sparse path's too).

        ``clean`` may be None unless AuxK's dead-unit loss needs it.
        """
        width = self.module.config.input_dim
        loss = recon_sum * (self.ranks.world_size / global_rows / width)
        penalty = self.penalty(out, clean, local_rows, global_rows) if self.penalised else None
        if penalty is not None:
            loss = loss + penalty
        return loss, recon_sum, penalty

    def penalty(
        self, out: Output, clean: torch.Tensor | None, local_rows: int, global_rows: int
    ) -> torch.Tensor:
        """The sparsity penalty (AuxK's dead-unit loss for top-k), scaled like the loss."""
        mcfg = self.module.config
        world_size = self.ranks.world_size
        if mcfg.sparsity == "l1":  # a row mean, rescaled like the loss
            share = local_rows * world_size / global_rows
            return mcfg.sparsity_weight * l1_penalty(out.code.float()) * share
        if mcfg.sparsity == "kl":  # a batch statistic
            return mcfg.sparsity_weight * kl_penalty(out.code.float(), mcfg.sparsity_target)
        dead = self.dead_units(out.code, global_rows)  # top-k with AuxK
        assert clean is not None
        aux_sum = dead_unit_loss_sum(self.module, out, clean, dead)
        return mcfg.sparsity_weight * aux_sum * (world_size / global_rows / mcfg.input_dim)

    @torch.no_grad()
    def dead_units(self, code: torch.Tensor, global_rows: int) -> torch.Tensor:
        """Count this step's rows into each top-k unit's silence; return the dead units.

        Under DDP a unit fired if it fired on any rank, so every rank keeps the same counters.
        """
        fired = self.ranks.all_sum((code != 0).any(dim=0).float()) > 0
        counter = self.module.rows_since_fired
        counter.add_(global_rows).masked_fill_(fired, 0)
        return counter > DEAD_AFTER_ROWS

    @torch.no_grad()
    def validation(self, source: RowSource, rows: torch.Tensor) -> tuple[float, float] | None:
        """``(loss, error)`` of ``rows`` over all ranks, or None without rows.

        ``loss`` is the training loss's mean per entry (BCE or squared error); ``error`` the
        mean per-row sum of squared errors in the scaled space, aekit's one error unit, which
        early stopping ranks epochs by whatever the loss. Leaves the model in eval mode.
        """
        if len(rows) == 0:
            return None
        self.module.eval()
        sums = torch.zeros(2, device=self.device, dtype=torch.float64)
        for chunk in self.ranks.share(rows).split(source_chunk_rows(source, _EVAL_ROWS)):
            with autocast(self.device, self.precision):
                out, clean = forward_rows(self.module, source.take(chunk).to(self.device))
            sums[0] += loss_sum(out, clean, self.loss).double()
            sums[1] += _squared_error_sum(out.recon, clean).double()
        loss, error = self.ranks.all_sum(sums).tolist()
        return loss / (len(rows) * source.n_features), error / len(rows)

    @torch.no_grad()
    def row_errors(self, source: RowSource, rows: torch.Tensor) -> torch.Tensor:
        """Each row's squared error in the scaled space (float64), for this rank's share.

        Leaves the model in evaluation mode.
        """
        self.module.eval()
        parts = []
        for chunk in self.ranks.share(rows).split(source_chunk_rows(source, _EVAL_ROWS)):
            with autocast(self.device, self.precision):
                out, clean = forward_rows(self.module, source.take(chunk).to(self.device))
            recon = out.recon
            parts.append((recon.double() - clean.double()).square().sum(dim=1))
        return (
            torch.cat(parts) if parts else torch.zeros(0, device=self.device, dtype=torch.float64)
        )

    def paired_gain(self, before: torch.Tensor, after: torch.Tensor) -> tuple[float, float]:
        """Mean per-row improvement ``before - after`` over all ranks, and its z-score.

        The z-score is the mean over its standard error (paired over the same rows); an
        improvement with no spread at all counts as certain (infinite z).
        """
        diff = before - after
        sums = torch.stack([diff.sum(), diff.square().sum(), diff.new_tensor(float(len(diff)))])
        total, squares, n = self.ranks.all_sum(sums).tolist()
        mean = total / max(n, 1.0)
        variance = max(squares / max(n, 1.0) - mean * mean, 0.0) * n / max(n - 1.0, 1.0)
        error = math.sqrt(variance / max(n, 1.0))
        return mean, (math.inf if mean > 0 else 0.0) if error == 0 else mean / error
