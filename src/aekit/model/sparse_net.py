"""The network on sparse rows: a first layer whose cost follows the non-zeros, an exact loss.

A :class:`~aekit.data.sparse.SparseBatch` never becomes a dense ``batch × width`` input:

* **First layer.** Each layer that reads the input (the encoder's first linear layer, and the
  linear path's encoder) multiplies the stored values only: ``nnz × hidden`` work, by
  :class:`SparseLinear`. Its weight gradient touches only the columns of features present in
  the batch; with ``lazy=True`` it is kept aside as ``(columns, hidden × columns)``
  (:func:`lazy_grads`), and :class:`~aekit.training.optim.LazyAdam` applies it to those
  columns only (training hands it to the optimiser a block of 64 rows at a time during the
  backward pass instead, ``column_step``: never held whole). Input scaling divides the
  stored values by each feature's scale; an offset (a centred scaling) cannot be subtracted
  from a sparse row without densifying it, so it goes through the layer's bias instead:
  ``W (x - o) / s + b = W (x / s) + (b - W o / s)`` (implicit centring, as scikit-learn's
  PCA does for sparse input). ``scaling="auto"`` picks scalings without an offset for
  sparse input, so that term is normally absent; with one the ``W o / s`` product costs
  ``width × hidden`` a step (still exact).
* **Output side.** The loss is over all entries, zeros included, and equals the dense path's.
  For an identity output and squared error, ``‖x − x̂‖² = ‖x̂‖² − 2 x·x̂ + ‖x‖²`` with
  ``x̂ = z Mᵀ + c``: ``‖x̂‖²`` needs ``Mᵀ M`` (hidden × hidden) and ``x·x̂`` only the stored
  entries (:func:`exact_squared_error`). ``Mᵀ M`` costs ``width × hidden²`` against the dense
  ``batch × width × hidden``, so it is used where the hidden width is at most the batch
  (:func:`gram_is_cheaper`); either way the result is exact, and both work through the
  output weights a block of features at a time (:mod:`~aekit.model.gram_error`): with the
  lazy optimiser each block's gradient is applied as it is made, so no gradient of the
  ``width × hidden`` output weights is held. Other outputs (sigmoid, BCE) are
  computed densely per batch, ``batch × width`` values, which the loss over all entries
  needs anyway.

Only a plain numeric MLP reads sparse rows so (:func:`reads_sparse`): a model with missing
values (its encoder also reads the mask of holes: twice the columns), with a table's
categorical blocks (softmax outputs, cross-entropy), or with a convolutional encoder gets
each sparse batch made dense, one batch at a time (:func:`forward_rows`, :func:`encode_rows`;
training: :func:`aekit.training.sparse_step.input_path`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.sparse import SparseBatch
from .gram_error import BlockSquaredError, GramSquaredError
from .hourglass import Hourglass, Output

__all__ = [
    "LAZY_BLOCK_VALUES",
    "SparseLinear",
    "aligned_row_blocks",
    "encode_rows",
    "exact_squared_error",
    "first_layers",
    "forward_rows",
    "gram_is_cheaper",
    "input_shift",
    "lazy_grads",
    "reads_sparse",
    "scaled_batch",
    "scaled_dense",
    "sparse_blocker",
    "sparse_encode_pre",
    "sparse_forward",
]


# values in each block of the first layer's column gradient and lazy step (the temporaries)
LAZY_BLOCK_VALUES = 1 << 16
ColumnSink = Callable[[torch.Tensor, slice, torch.Tensor], None]


class SparseLinear(torch.autograd.Function):
    """``rows @ weightᵀ`` for a CSR batch: ``nnz × out`` work forward and backward.

    The weight's gradient is nonzero only in the batch's columns. With a ``sink`` (a list:
    the weight's :func:`lazy_grads`) it is appended there as ``(columns, out × columns
    gradient)`` and autograd gets none, for :class:`~aekit.training.optim.LazyAdam` to apply
    to those columns only (a sparse COO gradient would need a sort of ``out × columns``
    entries each step); with a callable ``sink`` (``sink(columns, rows, gradient)``, the
    optimiser's :meth:`~aekit.training.optim.LazyAdam.column_step`) the gradient is made and
    handed over a block of the weight's rows at a time (:func:`aligned_row_blocks`), never
    whole; without, it is returned dense (for dense Adam).
    """

    @staticmethod
    def forward(  # type: ignore[override]  # noqa: D102
        ctx: Any,
        weight: torch.Tensor,
        rows: torch.Tensor,
        cols: torch.Tensor,
        values: torch.Tensor,
        n_rows: int,
        sink: list[tuple[torch.Tensor, torch.Tensor]] | ColumnSink | None,
    ) -> torch.Tensor:
        ctx.save_for_backward(weight, rows, cols, values)
        ctx.sink, ctx.n_rows = sink, n_rows
        batch = _coo(rows, cols, values.to(weight.dtype), (n_rows, weight.shape[1]))
        return torch.sparse.mm(batch, weight.t())

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]  # noqa: D102
        weight, rows, cols, values = ctx.saved_tensors
        touched, where = torch.unique(cols, return_inverse=True)
        transposed = _coo(where, rows, values.to(grad_out.dtype), (len(touched), ctx.n_rows))
        if callable(ctx.sink):  # the same values, a block of rows (of ``grad_out``'s columns)
            transposed = transposed.coalesce()  # (what each product would do again)
            for block in aligned_row_blocks(grad_out.shape[1], len(touched)):
                part = torch.sparse.mm(transposed, grad_out[:, block].contiguous())
                ctx.sink(touched, block, part.t())
            return None, None, None, None, None, None
        grouped = torch.sparse.mm(transposed, grad_out).t()  # out × touched (a view: no copy)
        if ctx.sink is not None:
            ctx.sink.append((touched, grouped))
            return None, None, None, None, None, None
        grad = weight.new_zeros(weight.shape).index_copy_(1, touched, grouped)
        return grad, None, None, None, None, None


def aligned_row_blocks(n_rows: int, row_values: int) -> Iterator[slice]:
    """Slices of ``n_rows`` rows of ``row_values`` values: whole multiples of 64 rows.

    Each holds about :data:`LAZY_BLOCK_VALUES` values (at least 64 rows). A block of a
    contiguous ``n_rows × row_values`` tensor then starts at a multiple of 64 values, so
    element-wise kernels split each block into vector and scalar parts exactly where they
    split the whole: a computation done block by block gives the same bits.
    """
    step = 64 * max(1, LAZY_BLOCK_VALUES // (64 * max(1, row_values)))
    for start in range(0, n_rows, step):
        yield slice(start, min(n_rows, start + step))


def _coo(
    rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]
) -> torch.Tensor:
    """A sparse COO matrix (torch's sparse × dense kernels: no gather-scatter by hand)."""
    index = torch.stack([rows, cols])
    return torch.sparse_coo_tensor(index, values, shape, check_invariants=False)


def lazy_grads(weight: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The column gradients :class:`SparseLinear` left on ``weight`` since the last step."""
    sink = weight.__dict__.get("lazy_grads")
    if sink is None:
        sink = weight.__dict__["lazy_grads"] = []
    return sink


def first_layers(module: Hourglass) -> list[nn.Linear]:
    """The linear layers that read the input rows (empty for a convolutional encoder)."""
    if module.config.image_shape is not None:
        return []
    layers = [module.encoder[0]]
    if module.config.linear_path:
        layers.append(module.linear_encoder)
    return [layer for layer in layers if isinstance(layer, nn.Linear)]


def sparse_blocker(module: Hourglass) -> str | None:
    """Why ``module`` cannot read sparse rows without densifying them, or None."""
    config = module.config
    if config.image_shape is not None:
        return "a convolutional encoder reads dense images"
    if config.missing:
        return "missing=True: the encoder also reads the mask of holes"
    if config.categorical_blocks:
        return "categorical blocks: softmax outputs and cross-entropy"
    return None


def reads_sparse(module: Hourglass) -> bool:
    """Whether ``module`` takes sparse batches as they are (see :func:`sparse_blocker`)."""
    return sparse_blocker(module) is None


def input_shift(module: Hourglass) -> torch.Tensor | None:
    """``offset / scale`` (plus a centred dictionary's origin), or None where it is zero.

    What the scaled rows are short of when the stored values are only divided by the scale.
    """
    shift = module.offset / module.scale
    nonzero = bool((module.offset != 0).any())
    if module.centred:
        return shift + module.origin()
    return shift if nonzero else None


def scaled_batch(module: Hourglass, batch: SparseBatch) -> SparseBatch:
    """The batch's stored values divided by their features' scales (no offset)."""
    return batch.with_values(batch.values / module.scale.index_select(0, batch.cols))


def _sparse_layer(
    layer: nn.Linear,
    batch: SparseBatch,
    shift: torch.Tensor | None,
    lazy: bool,
    column_step: Callable[..., None] | None = None,
) -> torch.Tensor:
    """``layer(x - shift)`` for the sparse scaled rows ``x``."""
    sink: list[tuple[torch.Tensor, torch.Tensor]] | ColumnSink | None = None
    if lazy and torch.is_grad_enabled():
        sink = lazy_grads(layer.weight)
        if column_step is not None and shift is None:  # (a shift gives a dense part too)
            sink = functools.partial(column_step, layer.weight)
    out = SparseLinear.apply(layer.weight, batch.rows(), batch.cols, batch.values, len(batch), sink)
    bias = layer.bias if shift is None else layer.bias - F.linear(shift, layer.weight)
    return out + bias


def sparse_encode_pre(
    module: Hourglass,
    batch: SparseBatch,
    *,
    lazy: bool = False,
    column_step: Callable[..., None] | None = None,
) -> torch.Tensor:
    """Codes before the code activation, from sparse scaled rows (``x / scale``).

    Equals ``module.encode_pre(module.scale_input(x))`` on the dense rows. ``lazy``: the
    layers reading the rows keep their column gradients aside (:func:`lazy_grads`); with
    ``column_step(weight, columns, rows, gradient)`` as well (the lazy optimiser's
    :meth:`~aekit.training.optim.LazyAdam.column_step`), the backward pass hands them to it
    a block of rows at a time instead, where the layer's weight gets no other gradient.
    """
    shift = input_shift(module)
    first, *_ = first_layers(module)
    pre = module.encoder[1:](_sparse_layer(first, batch, shift, lazy, column_step))
    if module.config.linear_path:
        pre = pre + _sparse_layer(module.linear_encoder, batch, shift, lazy, column_step)
    return pre


def scaled_dense(module: Hourglass, batch: SparseBatch) -> torch.Tensor:
    """The scaled rows of a (scaled) sparse batch as a dense tensor: one batch's worth."""
    dense = batch.dense()
    shift = module.offset / module.scale
    return dense - shift if bool((module.offset != 0).any()) else dense


def sparse_forward(module: Hourglass, batch: SparseBatch) -> tuple[Output, torch.Tensor]:
    """The forward pass of raw sparse rows, and the dense scaled rows (the target)."""
    scaled = scaled_batch(module, batch)
    pre = sparse_encode_pre(module, scaled)
    code = module.code_activation(pre)
    logits = module.decode_logits(code)
    return Output(module.output_activation(logits), code, logits, pre), scaled_dense(module, scaled)


def forward_rows(
    module: Hourglass, rows: torch.Tensor | SparseBatch
) -> tuple[Output, torch.Tensor]:
    """The forward pass of raw rows, dense or sparse, and their scaled dense form."""
    if isinstance(rows, SparseBatch):
        if reads_sparse(module):
            return sparse_forward(module, rows)
        rows = rows.dense()
    clean = module.scale_input(rows)
    return module(clean), clean


def encode_rows(module: Hourglass, rows: torch.Tensor | SparseBatch) -> torch.Tensor:
    """Codes of raw rows, dense or sparse (densified only where :func:`reads_sparse` is not)."""
    if isinstance(rows, SparseBatch):
        if reads_sparse(module):
            return module.code_activation(sparse_encode_pre(module, scaled_batch(module, rows)))
        rows = rows.dense()
    return module.encode(module.scale_input(rows))


def gram_is_cheaper(module: Hourglass, batch_rows: int) -> bool:
    """Whether ``Mᵀ M`` (width × hidden²) costs less than ``x̂`` (batch × width × hidden)."""
    hidden = module.decoder[-1].in_features + (
        module.config.code_dim if module.config.linear_path else 0
    )
    return hidden <= batch_rows


def exact_squared_error(
    module: Hourglass,
    code: torch.Tensor,
    scaled: SparseBatch,
    *,
    gram: bool,
    block_step: Callable[[torch.Tensor, slice, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """``Σ (x_scaled − x̂)²`` over every entry of the batch, zeros included (identity output).

    ``scaled`` holds the rows divided by their scales (the offset, if any, is folded into the
    output bias). With ``gram`` the reconstruction is never formed: ``‖x̂‖²`` comes from
    ``Mᵀ M`` and ``x·x̂`` from the stored entries; else ``x̂`` is formed (batch × width) and the
    stored entries subtracted from it entry by entry, as the dense loss does (the same
    rounding), a block of features at a time. Both equal the dense squared error.
    ``block_step(weight, rows, grad)``: the output weights' gradients go to it a block of
    rows at a time during the backward pass (an optimiser's step), never whole (see
    :mod:`~aekit.model.gram_error`).
    """
    rows, cols, values = scaled.rows(), scaled.cols, scaled.values.float()
    shifted = bool((module.offset != 0).any())  # x_scaled = x/s - shift: the bias absorbs it
    z, pieces, bias = output_pieces(module, code)
    if shifted:
        bias = bias + module.offset / module.scale
    sink = None
    if block_step is not None and torch.is_grad_enabled():

        def sink(index: int, rows: slice, grad: torch.Tensor) -> None:
            block_step(pieces[index], rows, grad)

    kind = GramSquaredError if gram else BlockSquaredError
    return kind.apply(z, bias, rows, cols, values, sink, *pieces)


def output_pieces(
    module: Hourglass, code: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """``(z, [M's pieces], c)``, ``decode_logits(code) == z @ M.T + c``: the last inputs.

    ``z`` joins the decoder's last hidden activations and (with a linear path) the code;
    ``M`` is their output weights side by side (kept apart: each is a parameter), ``c`` the
    summed biases.
    """
    last = module.decoder[-1]
    z = module.decoder[:-1](code)
    if not module.config.linear_path:
        return z, [last.weight], last.bias
    lin = module.linear_decoder
    return torch.cat([z, code], dim=1), [last.weight, lin.weight], last.bias + lin.bias
