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
* :func:`step_l0` counts each row's active latents, ``sum_j H(z_j - theta_j)``, with the
  pseudo-gradient ``-(1 / eps) K((z - theta) / eps)`` to the thresholds: the L0 penalty.

``topk`` codes and AuxK's code of dead latents are :func:`aekit.model.regularize.topk_mask`
and :func:`aekit.model.regularize.dead_unit_code`.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["batch_topk", "jumprelu", "rectangle", "step_l0", "update_threshold"]


def rectangle(x: torch.Tensor) -> torch.Tensor:
    """The rectangle kernel: 1 on (-1/2, 1/2), 0 elsewhere, in ``x``'s dtype."""
    return ((x > -0.5) & (x < 0.5)).to(x.dtype)


class _JumpReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, pre: torch.Tensor, threshold: torch.Tensor, bandwidth: float) -> Any:
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return pre * (pre > threshold).to(pre.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:  # type: ignore[override]
        pre, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_pre = grad * (pre > threshold).to(grad.dtype)
        kernel = rectangle((pre - threshold) / eps)
        grad_threshold = (-(threshold / eps) * kernel * grad).sum(dim=0)
        return grad_pre, grad_threshold, None


class _Step(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, pre: torch.Tensor, threshold: torch.Tensor, bandwidth: float) -> Any:
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return (pre > threshold).to(pre.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:  # type: ignore[override]
        pre, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_threshold = (-(1.0 / eps) * rectangle((pre - threshold) / eps) * grad).sum(dim=0)
        return None, grad_threshold, None


def jumprelu(pre: torch.Tensor, threshold: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """``pre * (pre > threshold)``, with the rectangle-kernel pseudo-gradient to ``threshold``.

    Parameters
    ----------
    pre : Tensor of shape (n_rows, code_dim)
        Pre-activations.
    threshold : Tensor of shape (code_dim,)
        Positive per-latent thresholds.
    bandwidth : float
        Width of the kernel (epsilon).

    Returns
    -------
    Tensor of shape (n_rows, code_dim)
    """
    return _JumpReLU.apply(pre, threshold, bandwidth)


def step_l0(pre: torch.Tensor, threshold: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """Each row's count of latents above their threshold, differentiable in ``threshold``.

    Returns
    -------
    Tensor of shape (n_rows,)
    """
    return _Step.apply(pre, threshold, bandwidth).sum(dim=1)


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


def update_threshold(threshold: torch.Tensor, code: torch.Tensor, rate: float) -> torch.Tensor:
    """BatchTopK's running threshold after one batch: ``(1 - rate) * threshold + rate * m``.

    ``m`` is the smallest positive entry of the batch's code, the smallest kept activation
    (Bussmann et al. 2024); a batch with no positive entry leaves the threshold as it was.
    Computed on the device, with no host synchronisation.

    Parameters
    ----------
    threshold : Tensor of shape ()
    code : Tensor of shape (n_rows, code_dim)
    rate : float
        In [0, 1].

    Returns
    -------
    Tensor of shape ()
    """
    smallest = torch.where(code > 0, code, torch.full_like(code, float("inf"))).min()
    moved = (1 - rate) * threshold + rate * smallest
    return torch.where(torch.isfinite(smallest), moved, threshold)
