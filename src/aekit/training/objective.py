"""What training minimises: the reconstruction loss, the code penalties (AuxK included).

A table with categorical columns (``ModelConfig.categorical_blocks``) trains with
cross-entropy on each one-hot block (:func:`categorical_loss_sum`) beside the loss on the
numeric columns; errors (validation, row errors) stay the squared error of every column,
the blocks' being between the one-hot rows and the predicted probabilities.

:class:`Objective` turns one forward pass into the step's loss, and computes the validation
loss. Losses are sums over this rank's rows divided by the global row count, times the world
size: DDP's gradient averaging then yields the gradient of the global mean, so one process
and several compute the same step.

Missing values (a model with ``ModelConfig.missing``): the target's NaN entries count in
no loss (:func:`loss_sum` with ``observed``), and validation rows get the training's masking
noise from a fixed seed, so early stopping ranks epochs by how well held-out observed
entries are rebuilt when hidden. This is where a loss term per output slice goes (the
categorical columns' cross-entropy): :func:`loss_sum` sees the whole output and target.
"""

from __future__ import annotations

import contextlib
import functools
import math
import warnings
from typing import Any

import torch
import torch.nn.functional as F

from ..config.configs import TrainConfig
from ..data.missing import hide_entries, hide_like_rows, row_squared_error
from ..data.sources import RowSource
from ..data.sparse import as_dense, source_chunk_rows
from ..model.hourglass import Hourglass, Output
from ..model.regularize import corrupt, dead_unit_code, kl_penalty, l1_penalty
from ..model.sparse_net import forward_rows
from .distributed import Ranks

__all__ = [
    "DEAD_AFTER_ROWS",
    "Objective",
    "autocast",
    "categorical_loss_sum",
    "cpu_has_bf16",
    "dead_unit_loss_sum",
    "eval_chunk_rows",
    "loss_sum",
    "paired_z",
    "table_loss_sum",
    "uses_dead_unit_loss",
]


def paired_z(before: torch.Tensor, after: torch.Tensor, ranks: Any = None) -> tuple[float, float]:
    """Mean per-row improvement ``before - after`` (over all ``ranks``, if given), its z-score.

    The z-score is the mean over its standard error (paired over the same rows); an
    improvement with no spread at all counts as certain (infinite z).
    """
    diff = before - after
    sums = torch.stack([diff.sum(), diff.square().sum(), diff.new_tensor(float(len(diff)))])
    total, squares, n = (sums if ranks is None else ranks.all_sum(sums)).tolist()
    mean = total / max(n, 1.0)
    variance = max(squares / max(n, 1.0) - mean * mean, 0.0) * n / max(n - 1.0, 1.0)
    error = math.sqrt(variance / max(n, 1.0))
    return mean, (math.inf if mean > 0 else 0.0) if error == 0 else mean / error


def eval_chunk_rows(source: RowSource) -> int:
    """Rows per chunk when validating ``source``'s rows (fewer for wide sparse rows)."""
    return source_chunk_rows(source, _EVAL_ROWS, _EVAL_VALUES)


DEAD_AFTER_ROWS = 2048  # a top-k unit silent for this many training rows counts as dead

_EVAL_ROWS = 4096  # rows per chunk when validating
# ... and at most this many values in a chunk of sparse rows made dense: validation holds
# about four dense arrays of a chunk at once (rows, logits, output, squares), ~16 MB here;
# at DENSE_CHUNK_VALUES they lifted an epoch's peak memory by ~70 MB at 100,000 features
_EVAL_VALUES = 2**20

_VALIDATION_SEED = 20_240_531  # the masking noise of validation rows (models with missing values)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """bfloat16 autocast for ``precision="bf16"``, else nothing.

    On a CPU without bfloat16 instructions (``avx512_bf16``/``amx_bf16``) bf16 is emulated and
    an order of magnitude slower than fp32 (2,133 against 34,373 samples/s in
    ``benchmarks/speed.py`` on an AVX2 CPU): a ``RuntimeWarning`` says so (once per call site).
    """
    if precision == "bf16":
        if device.type == "cpu" and not cpu_has_bf16():
            warnings.warn(
                "precision='bf16' on a CPU without bfloat16 instructions is emulated and much "
                "slower than fp32; use precision='fp32' here",
                RuntimeWarning,
                stacklevel=2,
            )
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether oneDNN runs bfloat16 natively on this CPU (True where it cannot tell)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return True


def loss_sum(
    out: Output,
    target: torch.Tensor,
    loss: str,
    observed: torch.Tensor | None = None,
    dim: tuple[int, ...] | None = None,
) -> torch.Tensor:
    """The reconstruction loss summed over rows and features, in float32.

    ``observed`` (the target's non-NaN entries, for a model with missing values) limits the
    sum to observed entries; None: every entry counts (and the target has no NaN). ``dim``
    sums over those axes only (a stacked ensemble's (members, rows, features) output summed
    over ``(1, 2)``: each member's sum); None: over every axis.
    """
    if observed is not None:
        if loss != "bce":
            return _squared_error_sum(out.recon, target, observed, dim)
        target = torch.where(observed, target, torch.zeros((), dtype=target.dtype))
        each = F.binary_cross_entropy_with_logits(out.logits.float(), target, reduction="none")
        return torch.where(observed, each, torch.zeros((), dtype=each.dtype)).sum(dim)
    if loss == "bce":
        if dim is not None:
            each = F.binary_cross_entropy_with_logits(out.logits.float(), target, reduction="none")
            return each.sum(dim)
        return F.binary_cross_entropy_with_logits(out.logits.float(), target, reduction="sum")
    return _squared_error_sum(out.recon, target, None, dim)


def _squared_error_sum(
    recon: torch.Tensor,
    target: torch.Tensor,
    observed: torch.Tensor | None = None,
    dim: tuple[int, ...] | None = None,
) -> torch.Tensor:
    if observed is None:
        if dim is not None:
            return (recon.float() - target).square().sum(dim)
        return F.mse_loss(recon.float(), target, reduction="sum")
    diff = recon.float() - target
    return torch.where(observed, diff, torch.zeros((), dtype=diff.dtype)).square().sum(dim)


def categorical_loss_sum(
    logits: torch.Tensor,
    target: torch.Tensor,
    blocks: tuple[tuple[int, int], ...],
    observed: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy of each one-hot block's softmax, summed over rows and blocks (float32).

    Parameters
    ----------
    logits : Tensor of shape (n_rows, n_columns)
        The decoder's output before the per-block softmax.
    target : Tensor of shape (n_rows, n_columns)
        The scaled rows: one-hot blocks (all-NaN or all-zero for a missing value, which
        then adds nothing).
    blocks : tuple of (start, stop)
        The blocks (``ModelConfig.categorical_blocks``).
    observed : bool Tensor of shape (n_rows, n_blocks), optional
        Which blocks count (default: every block whose target is not NaN).
    """
    total = logits.new_zeros((), dtype=torch.float32)
    for b, (start, stop) in enumerate(blocks):
        log_p = torch.log_softmax(logits[:, start:stop].float(), dim=1)
        ce = -(torch.nan_to_num(target[:, start:stop].float()) * log_p).sum(dim=1)
        if observed is not None:
            ce = torch.where(observed[:, b], ce, torch.zeros_like(ce))
        total = total + ce.sum()
    return total


@functools.lru_cache(maxsize=16)
def numeric_columns(blocks: tuple[tuple[int, int], ...], width: int) -> torch.Tensor:
    """Indices of the columns outside every block (int64)."""
    keep = torch.ones(width, dtype=torch.bool)
    for start, stop in blocks:
        keep[start:stop] = False
    return keep.nonzero().flatten()


def table_loss_sum(
    out: Output,
    target: torch.Tensor,
    loss: str,
    blocks: tuple[tuple[int, int], ...],
    observed: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`loss_sum` on the numeric columns plus :func:`categorical_loss_sum` on the blocks.

    ``observed`` (the target's non-NaN entries) limits the numeric part to observed entries; a
    block whose target is NaN (a missing category) adds nothing to the cross-entropy.
    """
    if not blocks:
        return loss_sum(out, target, loss, observed)
    numeric = numeric_columns(blocks, target.shape[1]).to(target.device)
    part = Output(out.recon[:, numeric], out.code, out.logits[:, numeric], out.pre)
    seen = None if observed is None else observed[:, numeric]
    return loss_sum(part, target[:, numeric], loss, seen) + categorical_loss_sum(
        out.logits, target, blocks
    )


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
    observed = ~torch.isnan(clean) if config.missing else None
    return _squared_error_sum(aux_recon, clean, observed)


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
        self.blocks = module.config.categorical_blocks  # cross-entropy on these columns
        self.counts_dead_units = uses_dead_unit_loss(module.config)
        self.penalised = module.config.sparsity in ("l1", "kl") or self.counts_dead_units
        self.missing = module.config.missing
        self.val_hidden = config.val_hidden  # validation rows with entries hidden

    def hidden(self, clean: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """The model's input for scaled rows: a share of observed entries hidden (NaN).

        Only for a model with missing values and ``hide_share > 0``; other models get
        ``clean`` itself.
        """
        share = self.module.config.hide_share
        if not self.missing or share == 0:
            return clean
        if self.module.config.hide_pattern == "rows":  # another row's holes
            return hide_like_rows(clean, generator)
        return hide_entries(clean, share, generator, self.module.group_members)

    def inputs(
        self,
        clean: torch.Tensor,
        generator: torch.Generator | None,
        bounds: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """What the network sees in a training step: :meth:`hidden` entries, then the noise.

        ``bounds`` are the scaled rows' per-feature extremes salt-and-pepper noise writes.
        Noise lands on top of the hidden entries: a hole stays a hole whatever noise writes.
        """
        mcfg = self.module.config
        noisy = self.hidden(clean, generator)
        if mcfg.noise is None:
            return noisy
        low, high = bounds if bounds is not None else (None, None)
        corrupted = corrupt(noisy, mcfg.noise, mcfg.noise_level, generator, low=low, high=high)
        return torch.where(noisy.isnan(), noisy, corrupted) if mcfg.missing else corrupted

    def _held_out(
        self, source: RowSource, chunk: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, Output]:
        """A validation chunk: its scaled rows and the model's output (entries hidden).

        Sparse rows stay sparse where the model reads them so (:func:`forward_rows`); a model
        with missing values gets them dense (one chunk), its entries hidden where
        ``TrainConfig.val_hidden`` says so.
        """
        rows = source.take(chunk).to(self.device)
        if not self.missing:
            with autocast(self.device, self.precision):
                out, clean = forward_rows(self.module, rows)
            return clean, out
        clean = self.module.scale_input(as_dense(rows))
        seen = self.hidden(clean, generator) if self.val_hidden else clean
        with autocast(self.device, self.precision):
            out = self.module(seen)
        return clean, out

    def _validation_generator(self) -> torch.Generator:
        """The same hidden entries at every validation (the split's rows, in order)."""
        return torch.Generator(self.device).manual_seed(_VALIDATION_SEED)

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
        observed = ~torch.isnan(clean) if self.missing else None
        recon_sum = table_loss_sum(out, clean, self.loss, self.blocks, observed)
        return self.total(recon_sum, out, clean, local_rows, global_rows)

    def member_sums(self, out: Output, clean: torch.Tensor) -> torch.Tensor:
        """Each member's summed reconstruction loss for a stacked ensemble's plain MLP.

        ``out`` and ``clean`` have a leading member axis (members, rows, features); the
        result has shape (members,). Only for models without categorical blocks (their
        losses sum per block, :func:`table_loss_sum`).
        """
        if self.blocks:
            raise ValueError("member_sums needs a model without categorical blocks")
        observed = ~torch.isnan(clean) if self.missing else None
        return loss_sum(out, clean, self.loss, observed, dim=(1, 2))

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
        early stopping ranks epochs by whatever the loss (rows with holes: observed entries,
        rescaled, see :func:`aekit.data.missing.row_squared_error`; a model with missing values
        and ``TrainConfig.val_hidden`` sees validation rows with ``hide_share`` of their
        entries hidden, the same ones each time). Leaves the model in eval mode.
        """
        if len(rows) == 0:
            return None
        self.module.eval()
        sums = torch.zeros(2, device=self.device, dtype=torch.float64)
        generator = self._validation_generator()
        for chunk in self.ranks.share(rows).split(eval_chunk_rows(source)):
            clean, out = self._held_out(source, chunk, generator)
            if self.missing:
                observed = ~torch.isnan(clean)
                sums[0] += table_loss_sum(out, clean, self.loss, self.blocks, observed).double()
                members = self.module.group_members
                sums[1] += row_squared_error(out.recon, clean, members).sum()
            elif self.loss == "mse" and not self.blocks and out.recon.dtype == clean.dtype:
                # the loss is the error: one sum for both, its squares made in place in the
                # reconstruction (read no more), the values F.mse_loss gives bit for bit
                both = out.recon.sub_(clean).square_().sum().double()
                sums[0] += both
                sums[1] += both
            else:
                sums[0] += table_loss_sum(out, clean, self.loss, self.blocks).double()
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
        generator = self._validation_generator()
        for chunk in self.ranks.share(rows).split(eval_chunk_rows(source)):
            clean, out = self._held_out(source, chunk, generator)
            parts.append(row_squared_error(out.recon, clean, self.module.group_members))
        return (
            torch.cat(parts) if parts else torch.zeros(0, device=self.device, dtype=torch.float64)
        )

    def paired_gain(self, before: torch.Tensor, after: torch.Tensor) -> tuple[float, float]:
        """Mean per-row improvement ``before - after`` over all ranks, and its z-score.

        The z-score is the mean over its standard error (paired over the same rows); an
        improvement with no spread at all counts as certain (infinite z).
        """
        return paired_z(before, after, self.ranks)
