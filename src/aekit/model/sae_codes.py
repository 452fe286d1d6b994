"""The codes of sparse autoencoders for interpretability: BatchTopK, JumpReLU and their gradients.

Small pure functions on a batch of pre-activations ``pre`` (rows x latents), used by
:class:`~aekit.model.sae_dictionary.SparseDictionary`:

* :func:`batch_topk` keeps the ``k x batch`` largest activations of the *whole batch*
  (Bussmann et al. 2024, "BatchTopK sparse autoencoders"): rows share a budget of ``k`` on
  average, so an easy row may use fewer latents and a hard one more.
* :func:`jumprelu` is ``z * H(z - theta)`` with a per-latent threshold ``theta``; its
  threshold gets the pseudo-gradient of Rajamanoharan et al. 2024 ("Jumping ahead"): the
  Heaviside step's derivative replaced by a rectangle kernel of width ``bandwidth``,
  ``d/d theta = -(theta / eps) K((z - theta) / eps)``; ``z`` gets the plain gradient where the
  latent is on (no straight-through estimate for ``z``).
* :class:`SparseCode` holds a top-k family code as its kept entries only and decodes them
  with :func:`torch.nn.functional.embedding_bag` (``n_rows x k x d_in`` work, not
  ``n_rows x code_dim x d_in``): what training uses (:func:`topk_sparse`,
  :func:`batch_topk_sparse`).
* :func:`step_l0` counts each row's active latents, ``sum_j H(z_j - theta_j)``, with the
  pseudo-gradient ``-(1 / eps) K((z - theta) / eps)`` to the thresholds: the L0 penalty.

``topk`` codes and AuxK's code of dead latents are :func:`aekit.model.regularize.topk_mask`
and :func:`aekit.model.regularize.dead_unit_code`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

__all__ = [
    "SparseCode",
    "batch_topk",
    "batch_topk_sparse",
    "entries_above",
    "jumprelu",
    "kept_pre_activations",
    "rectangle",
    "smallest_positive",
    "step_l0",
    "topk_sparse",
    "update_threshold",
]


def rectangle(x: torch.Tensor) -> torch.Tensor:
    """The rectangle kernel: 1 on (-1/2, 1/2), 0 elsewhere, in ``x``'s dtype."""
    return ((x > -0.5) & (x < 0.5)).to(x.dtype)


def _in_window(pre: torch.Tensor, threshold: torch.Tensor, eps: float) -> torch.Tensor:
    """Where the rectangle kernel ``K((pre - threshold) / eps)`` is 1 (a bool mask)."""
    return (pre - threshold).abs_() < eps / 2


class _JumpReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, pre: torch.Tensor, threshold: torch.Tensor, bandwidth: float) -> Any:
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return torch.where(pre > threshold, pre, 0.0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:  # type: ignore[override]
        pre, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_pre = torch.where(pre > threshold, grad, 0.0)
        window = torch.where(_in_window(pre, threshold, eps), grad, 0.0)
        return grad_pre, -(threshold / eps) * window.sum_to_size(threshold.shape), None


class _Step(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, pre: torch.Tensor, threshold: torch.Tensor, bandwidth: float) -> Any:
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return (pre > threshold).sum(dim=-1).to(pre.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:  # type: ignore[override]
        pre, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        # d count_i / d theta_j = -(1/eps) K((pre_ij - theta_j) / eps): grad is per row
        window = torch.where(_in_window(pre, threshold, eps), grad[..., None], 0.0)
        return None, -(1.0 / eps) * window.sum_to_size(threshold.shape), None


def jumprelu(pre: torch.Tensor, threshold: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """``pre * (pre > threshold)``, with the rectangle-kernel pseudo-gradient to ``threshold``.

    Parameters
    ----------
    pre : Tensor of shape (n_rows, code_dim)
        Pre-activations.
    threshold : Tensor of shape (code_dim,), or of ``pre``'s shape
        Positive per-latent thresholds (or each entry's, e.g. the thresholds of the columns
        of a :class:`SparseCode`'s kept entries: ``pre`` of shape (n_entries,) then).
    bandwidth : float
        Width of the kernel (epsilon).

    Returns
    -------
    Tensor of ``pre``'s shape
    """
    return _JumpReLU.apply(pre, threshold, bandwidth)


def step_l0(pre: torch.Tensor, threshold: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """Each row's count of latents above their threshold, differentiable in ``threshold``.

    ``threshold`` is per latent, shape (code_dim,), or per entry (``pre``'s shape); a 1-D
    ``pre`` is one row (e.g. a :class:`SparseCode`'s flat kept entries: their total count).

    Returns
    -------
    Tensor of shape (n_rows,), or () for a 1-D ``pre``
    """
    return _Step.apply(pre, threshold, bandwidth)


def entries_above(pre: torch.Tensor, above: torch.Tensor) -> SparseCode:
    """The entries of ``pre`` where ``above`` is True, as a :class:`SparseCode`.

    Flat, sorted by row (``torch.nonzero``'s order), with every row's offset (a row with no
    entry is an empty bag). The values carry no graph: see :func:`kept_pre_activations`.
    JumpReLU's training code keeps the entries above ``threshold - bandwidth / 2``: those with
    a value or a pseudo-gradient; the others give neither.

    Parameters
    ----------
    pre : Tensor of shape (n_rows, code_dim)
    above : Tensor of bool, shape (n_rows, code_dim)
    """
    rows, cols = torch.nonzero(above, as_tuple=True)
    counts = torch.bincount(rows, minlength=pre.shape[0])
    return SparseCode(pre[rows, cols].detach(), cols, torch.cumsum(counts, 0) - counts)


class SparseCode(NamedTuple):
    """A code as its kept entries: ``values`` at columns ``cols``, row by row.

    With ``offsets`` None, ``values`` and ``cols`` are (n_rows, k): row ``i`` keeps
    ``values[i]`` at ``cols[i]``. Otherwise they are flat, sorted by row, and row ``i`` keeps
    the entries ``offsets[i]:offsets[i + 1]`` (``offsets`` has ``n_rows`` entries, the
    first 0, as :func:`torch.nn.functional.embedding_bag` takes them).
    """

    values: torch.Tensor
    cols: torch.Tensor
    offsets: torch.Tensor | None

    def decode(self, weight: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """``code @ weight`` from the kept entries only (those of columns ``start:stop``).

        ``n_rows x k x n_features`` work instead of ``n_rows x code_dim x n_features``; the
        gradients reach ``values`` and the rows of ``weight`` that were used.
        """
        values = self.values
        if start > 0 or stop is not None:
            inside = (self.cols >= start) & (self.cols < (stop or weight.shape[0]))
            values = values * inside.to(values.dtype)
        return F.embedding_bag(
            self.cols, weight, self.offsets, mode="sum", per_sample_weights=values
        )

    def active(self, code_dim: int) -> torch.Tensor:
        """Whether each latent fired (a positive kept value) in any row: (code_dim,) bool."""
        hits = torch.zeros(code_dim, dtype=self.values.dtype, device=self.values.device)
        on = (self.values > 0).to(self.values.dtype).reshape(-1)
        return hits.index_add_(0, self.cols.reshape(-1), on) > 0

    def l0_sum(self) -> torch.Tensor:
        """Positive kept values in all: the batch's total L0."""
        return (self.values > 0).sum()

    def row_index(self) -> torch.Tensor:
        """The row of each kept entry, flat (in the order of ``values.reshape(-1)``)."""
        if self.offsets is None:
            n_rows, k = self.cols.shape
            return torch.arange(n_rows, device=self.cols.device).repeat_interleave(k)
        ends = torch.cat([self.offsets[1:], self.offsets.new_tensor([self.cols.numel()])])
        rows = torch.arange(len(self.offsets), device=self.cols.device)
        return rows.repeat_interleave(ends - self.offsets)


class _KeptPre(torch.autograd.Function):
    """Pre-activations at a code's kept entries; the backward pass touches those entries only."""

    @staticmethod
    def forward(ctx: Any, centered: Any, w_enc: Any, b_enc: Any, code: Any, pre: Any) -> Any:
        ctx.save_for_backward(centered, w_enc)
        ctx.code = code
        return pre.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:  # type: ignore[override]
        centered, w_enc = ctx.saved_tensors
        code: SparseCode = ctx.code
        cols, flat = code.cols.reshape(-1), grad.reshape(-1)
        n_rows, code_dim = centered.shape[0], w_enc.shape[1]
        grad_centered = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:  # sum over a row's entries of grad * W_enc[:, col]
            weights = SparseCode(grad, code.cols, code.offsets)
            grad_centered = weights.decode(w_enc.T.contiguous())
        if ctx.needs_input_grad[1]:  # (code_dim x n_rows sparse) @ centered, transposed
            index = torch.stack([cols, code.row_index()])
            sparse = torch.sparse_coo_tensor(
                index, flat, (code_dim, n_rows), check_invariants=False
            )
            grad_w = torch.sparse.mm(sparse, centered).T
        if ctx.needs_input_grad[2]:
            grad_b = torch.zeros(code_dim, dtype=grad.dtype, device=grad.device)
            grad_b.index_add_(0, cols, flat)
        return grad_centered, grad_w, grad_b, None, None


def kept_pre_activations(
    centered: torch.Tensor, w_enc: torch.Tensor, b_enc: torch.Tensor, code: SparseCode
) -> torch.Tensor:
    """``(centered W_enc + b_enc)`` at ``code``'s kept entries, shaped as ``code.values``.

    ``code.values`` must hold those pre-activations, computed without a graph; the result
    carries the graph to ``centered``, ``W_enc`` and ``b_enc``, and its backward pass costs
    ``kept entries x n_features`` instead of the dense ``n_rows x code_dim x n_features``
    (the weight gradient is a sparse-dense product, the input gradient an embedding bag).
    """
    return _KeptPre.apply(centered, w_enc, b_enc, code, code.values)


def topk_sparse(acts: torch.Tensor, k: int) -> SparseCode:
    """The ``k`` largest entries of each row, as a :class:`SparseCode` (no dense code built)."""
    values, cols = acts.topk(k, dim=1, sorted=False)
    return SparseCode(values, cols, None)


def batch_topk_sparse(acts: torch.Tensor, k: int) -> SparseCode:
    """:func:`batch_topk`'s kept entries as a :class:`SparseCode`, sorted by row."""
    n_rows, code_dim = acts.shape
    kept = min(k * n_rows, acts.numel())
    values, flat = acts.reshape(-1).topk(kept, sorted=False)
    flat, order = flat.sort()
    rows = torch.div(flat, code_dim, rounding_mode="floor")
    counts = torch.bincount(rows, minlength=n_rows)
    offsets = torch.cumsum(counts, 0) - counts
    return SparseCode(values[order], flat - rows * code_dim, offsets)


def batch_topk(acts: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k * n_rows`` largest entries of the whole batch, zero the others.

    Parameters
    ----------
    acts : Tensor of shape (n_rows, code_dim)
        Non-negative activations (ReLU of the pre-activations).
    k : int
        Average kept entries per row.

    Returns
    -------
    Tensor of shape (n_rows, code_dim)
        Gradients flow through the kept entries only; ties are broken by position.
    """
    flat = acts.reshape(-1)
    kept = min(k * acts.shape[0], flat.numel())
    values, indices = flat.topk(kept, sorted=False)
    return torch.zeros_like(flat).scatter(0, indices, values).reshape(acts.shape)


def smallest_positive(values: torch.Tensor) -> torch.Tensor:
    """The smallest positive entry of ``values`` (infinity when none is), on the device."""
    return torch.where(values > 0, values, torch.full_like(values, float("inf"))).min()


def update_threshold(threshold: torch.Tensor, smallest: torch.Tensor, rate: float) -> torch.Tensor:
    """BatchTopK's running threshold after one batch: ``(1 - rate) * threshold + rate * m``.

    ``m`` (``smallest``) is the smallest positive activation the batch kept
    (:func:`smallest_positive`; Bussmann et al. 2024); an infinite ``m`` (nothing kept) leaves
    the threshold as it was. Computed on the device, with no host synchronisation.

    Parameters
    ----------
    threshold, smallest : Tensor of shape ()
    rate : float
        In [0, 1].

    Returns
    -------
    Tensor of shape ()
    """
    moved = (1 - rate) * threshold + rate * smallest
    return torch.where(torch.isfinite(smallest), moved, threshold)
