"""The exact squared error of an identity output on sparse rows, in row blocks of the weight.

``Σ ‖x − x̂‖²`` over every entry, with ``x̂ = z Mᵀ + c`` (``M``: the output weights, one row
per feature), is ``‖x̂‖² − 2 x·x̂ + ‖x‖²``: ``‖x̂‖²`` needs only ``Mᵀ M`` and ``Mᵀ c`` (hidden ×
hidden), ``x·x̂`` only the stored entries. The terms cancel where ``x̂`` is close to ``x``, so
they are summed in float64. :class:`GramSquaredError` computes them, and their gradients,
a block of ``M``'s rows at a time: a float64 copy of ``M`` (``width × hidden × 8`` bytes,
434 MB at 100,000 features and 542 hidden units) is never formed, nor the joined ``M`` of a
model with a linear path. Each weight's gradient is written in float32 block by block; with
a ``sink`` the blocks are handed to it (``sink(index, rows, block)``) and no gradient of the
whole weight is kept (see :meth:`aekit.training.optim.LazyAdam.block_step`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch

__all__ = ["BLOCK_BYTES", "BlockSquaredError", "GramSquaredError", "row_blocks"]

BLOCK_BYTES = 4 << 20  # a float64 block of the output weights: 4 MiB
BlockSink = Callable[[int, slice, torch.Tensor], None]


def row_blocks(n_rows: int, row_bytes: int) -> Iterator[slice]:
    """Slices of ``n_rows`` rows, about :data:`BLOCK_BYTES` each."""
    step = max(1, BLOCK_BYTES // max(1, row_bytes))
    for start in range(0, n_rows, step):
        yield slice(start, min(n_rows, start + step))


def _joined(weights: tuple[torch.Tensor, ...], rows: slice) -> torch.Tensor:
    """Rows ``rows`` of the weights side by side, in float64."""
    return torch.cat([w[rows] for w in weights], dim=1).double()


class GramSquaredError(torch.autograd.Function):
    """``Σ (x − z Mᵀ − c)²`` over all entries; ``M = [weights...]`` joined by columns.

    Inputs: ``z`` (rows × hidden, the joined last activations), ``bias`` (``c``, width), the
    stored entries ``(rows, cols, values)`` of the scaled target, a ``sink`` for the
    weights' gradient blocks (or None) and the weight pieces (width × their hidden).
    """

    @staticmethod
    def forward(  # type: ignore[override]  # noqa: D102
        ctx: Any,
        z: torch.Tensor,
        bias: torch.Tensor,
        rows: torch.Tensor,
        cols: torch.Tensor,
        values: torch.Tensor,
        sink: BlockSink | None,
        *weights: torch.Tensor,
    ) -> torch.Tensor:
        z64, b64, v64 = z.double(), bias.double(), values.double()
        hidden = z.shape[1]
        gram = z64.new_zeros(hidden, hidden)
        w_bias = z64.new_zeros(hidden)
        for block in row_blocks(len(bias), hidden * 8):
            w = _joined(weights, block)
            gram.addmm_(w.t(), w)
            w_bias.addmv_(w.t(), b64[block])
        at_cols = torch.cat([w.index_select(0, cols) for w in weights], dim=1).double()
        picked = (at_cols * z64.index_select(0, rows)).sum(dim=1)
        at_entries = picked + b64.index_select(0, cols)  # x̂ at the stored entries
        recon_sq = (
            ((z64 @ gram) * z64).sum() + 2 * (z64 @ w_bias).sum() + len(z) * b64.square().sum()
        )
        loss = recon_sq - 2 * (v64 * at_entries).sum() + v64.square().sum()
        ctx.save_for_backward(z, bias, rows, cols, values, *weights)
        ctx.gram, ctx.w_bias, ctx.sink = gram, w_bias, sink
        return loss.float()

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]  # noqa: D102
        z, bias, rows, cols, values, *weights = ctx.saved_tensors
        g = 2 * grad_out.double()
        z64, b64, v64 = z.double(), bias.double(), values.double()
        # the stored entries' term, -2 Σ v (M[c]·z[r] + c[c]), gathered per touched feature
        touched, where = torch.unique(cols, return_inverse=True)
        at_rows = v64[:, None] * z64.index_select(0, rows)  # nnz × hidden
        entry_w = z64.new_zeros(len(touched), z.shape[1]).index_add_(0, where, at_rows)
        entry_b = z64.new_zeros(len(touched)).index_add_(0, where, v64)
        at_cols = torch.cat([w.index_select(0, cols) for w in weights], dim=1).double()
        grad_z = g * (z64 @ ctx.gram + ctx.w_bias)
        grad_z.index_add_(0, rows, -g * v64[:, None] * at_cols)
        # per block of M's rows: 2 (M zᵀz + c Σz) and 2 (M Σz + n c), less the entries' term
        ztz, z_sum = z64.t() @ z64, z64.sum(dim=0)
        grad_b = torch.empty_like(bias)
        want = ctx.needs_input_grad[6:]
        grads = [
            None if ctx.sink or not w_ else torch.empty_like(w)
            for w, w_ in zip(weights, want, strict=True)
        ]
        widths = [w.shape[1] for w in weights]
        for block in row_blocks(len(bias), z.shape[1] * 8):
            w, b = _joined(weights, block), b64[block]
            gw = w @ ztz + b[:, None] * z_sum
            gb = w @ z_sum + len(z) * b
            inside = (touched >= block.start) & (touched < block.stop)
            local = touched[inside] - block.start
            gw.index_add_(0, local, -entry_w[inside]).mul_(g)
            gb.index_add_(0, local, -entry_b[inside]).mul_(g)
            grad_b[block] = gb
            for index, piece in enumerate(gw.split(widths, dim=1)):
                if not want[index]:
                    continue
                if ctx.sink is not None:
                    ctx.sink(index, block, piece.float())
                else:
                    grads[index][block] = piece
        return (grad_z.to(z.dtype), grad_b, None, None, None, None, *grads)


def _entry_ranges(cols: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The stored entries' order by feature, and that order's sorted features."""
    order = torch.argsort(cols, stable=True)
    return order, cols.index_select(0, order)


class BlockSquaredError(torch.autograd.Function):
    """``Σ (x − z Mᵀ − c)²`` over all entries, ``x̂`` formed a block of features at a time.

    Where ``Mᵀ M`` costs more than ``x̂`` (more hidden units than rows in the batch),
    ``x̂ − x`` is formed block by block (``rows × block``, the stored entries subtracted
    entry by entry as the dense loss does) and squared; the backward pass forms each block
    again and hands its weight gradient to the ``sink``, or writes it into a full gradient.
    Inputs as :class:`GramSquaredError`'s.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        z: torch.Tensor,
        bias: torch.Tensor,
        rows: torch.Tensor,
        cols: torch.Tensor,
        values: torch.Tensor,
        sink: BlockSink | None,
        *weights: torch.Tensor,
    ) -> torch.Tensor:
        """The summed squared error (float64 sums, returned as float32)."""
        total = torch.zeros((), dtype=torch.float64, device=z.device)
        for _, _, diff in _block_diffs(z, bias, rows, cols, values, weights):
            total += diff.square().sum()
        ctx.save_for_backward(z, bias, rows, cols, values, *weights)
        ctx.sink = sink
        return total.float()

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        """Gradients of ``z`` and ``c``; the weights' go to the sink or full gradients."""
        z, bias, rows, cols, values, *weights = ctx.saved_tensors
        want = ctx.needs_input_grad[6:]
        full = [
            None if ctx.sink or not w_ else torch.empty_like(w)
            for w, w_ in zip(weights, want, strict=True)
        ]
        grad_z, grad_b = torch.zeros_like(z), torch.empty_like(bias)
        widths = [w.shape[1] for w in weights]
        for block, joined, diff in _block_diffs(z, bias, rows, cols, values, weights):
            d = diff.mul_(2 * grad_out)
            grad_b[block] = d.sum(dim=0)
            grad_z.addmm_(d, joined)  # (the forward's join of the block's weights, not a new one)
            grad_w = d.t() @ z
            for index, piece in enumerate(grad_w.split(widths, dim=1)):
                if not want[index]:
                    continue
                if ctx.sink is not None:  # a column slice: made contiguous for the kernel
                    ctx.sink(index, block, piece.contiguous())
                else:
                    full[index][block] = piece
        return (grad_z, grad_b, None, None, None, None, *full)


def _block_diffs(
    z: torch.Tensor,
    bias: torch.Tensor,
    rows: torch.Tensor,
    cols: torch.Tensor,
    values: torch.Tensor,
    weights: tuple[torch.Tensor, ...],
) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor]]:
    """``(features, their weights side by side, x̂ − x)`` for each block of features."""
    order, sorted_cols = _entry_ranges(cols)
    blocks = list(row_blocks(len(bias), z.shape[1] * 8))
    bounds = torch.tensor([b.start for b in blocks] + [len(bias)], device=cols.device)
    starts = torch.searchsorted(sorted_cols, bounds).tolist()  # one device sync per pass
    for i, block in enumerate(blocks):
        joined = torch.cat([w[block] for w in weights], dim=1)
        diff = torch.addmm(bias[block], z, joined.t())
        lo, hi = starts[i], starts[i + 1]
        picked = order[lo:hi]
        where = (rows.index_select(0, picked), cols.index_select(0, picked) - block.start)
        diff = diff.index_put(where, -values.index_select(0, picked), accumulate=True)
        yield block, joined, diff
        del joined, diff  # (before the next block's are made)
