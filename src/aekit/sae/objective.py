"""What one SAE training step minimises, and the figures it adds up for ``history_``.

The reconstruction error is the field's: each row's squared error summed over its values,
averaged over the rows (SAELens's ``mse_loss``), in the scaled space. Per architecture:

* **Matryoshka** (Bussmann et al. 2025, Nabeshima 2024): for each prefix width ``m`` of
  :meth:`~aekit.config.sae.SAEConfig.prefix_widths`, the reconstruction from the first ``m``
  latents alone (plus ``b_dec``) has its own error; the loss is their sum (the full
  dictionary's error is the last term). The code is BatchTopK's.
* **JumpReLU**: ``+ sparsity_coef * L0``, L0 through :func:`~aekit.model.sae_codes.step_l0`
  (over the kept entries alone when the code is a :class:`~aekit.model.sae_codes.SparseCode`).
* **L1**: ``+ sparsity_coef * sum |code|`` (decoder rows have unit norm, so this is the
  decoder-norm-weighted L1 of SAELens's standard SAE).
* **AuxK** (top-k family, Gao et al. 2024): the ``aux_k`` largest pre-activations of the
  dead latents (no activity over ``dead_rows`` rows) reconstruct the detached residual
  ``x - x_hat``; ``+ aux_coef * ||e - e_hat||^2 / ||e - mean(e)||^2``. The loop computes
  it only while some latent is dead (checked every few steps, see :mod:`aekit.sae.loop`).

The top-k family's code is decoded from its kept entries only
(:class:`~aekit.model.sae_codes.SparseCode`): the dense ``rows x code_dim`` code is never
built in training.
"""

from __future__ import annotations

import torch

from ..model.sae_codes import SparseCode, smallest_positive, step_l0
from ..model.sae_dictionary import SparseDictionary

__all__ = ["STAT_NAMES", "step_loss"]

# The per-step figures summed on the device between two records of history_.
STAT_NAMES = (
    "rows",
    "sse",
    "sst",
    "l0",
    "shrinkage",
    "nonzero_rows",  # rows of positive norm: the shrinkage's denominator
    "loss",
    "aux_loss",
    "sparsity_loss",
)


def step_loss(
    module: SparseDictionary, x: torch.Tensor, dead: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The loss of a batch and what the loop keeps of it.

    Parameters
    ----------
    module : SparseDictionary
    x : Tensor of shape (n_rows, n_features)
        Rows in the scaled space.
    dead : Tensor of int64, shape (n_dead,), or None
        The dead latents (AuxK's), at least one; None: no AuxK term.

    Returns
    -------
    loss : Tensor of shape ()
    fired : Tensor of shape (code_dim,), bool
        Latents active in some row of the batch.
    smallest : Tensor of shape ()
        The smallest positive code value of the batch (infinity if none, and for the codes
        other than the top-k family's, which need none).
    stats : Tensor of shape (len(STAT_NAMES),)
        Detached sums over the batch, in the order of :data:`STAT_NAMES`.
    """
    config = module.config
    code, pre, centered = module.train_code(x)
    recon = module.b_dec.expand_as(x)
    rows = module.decoder_rows()
    loss = x.new_zeros(())
    start = 0
    for width in config.prefix_widths():
        if isinstance(code, SparseCode):
            stop = None if width == config.code_dim else width
            part = code.decode(rows, start, stop)
        else:
            part = code[:, start:width] @ rows[start:width]
        recon = recon + part
        loss = loss + (recon - x).pow(2).sum(dim=1).mean()
        start = width
    residual = x - recon
    sparsity = x.new_zeros(())
    if config.architecture == "jumprelu":
        thresholds, eps = module.jumprelu_thresholds(), config.jumprelu_bandwidth
        if isinstance(code, SparseCode):  # pre: the kept entries' pre-activations
            l0 = step_l0(pre, thresholds[code.cols], eps) / len(x)
        else:
            l0 = step_l0(pre, thresholds, eps).mean()
        sparsity = config.sparsity_coef * l0
    elif config.architecture == "l1":
        sparsity = config.sparsity_coef * code.sum(dim=1).mean()  # type: ignore[union-attr]
    aux = x.new_zeros(())
    if dead is not None:
        aux = config.aux_coef * auxk_loss(module, pre, centered, residual.detach(), dead)
    total = loss + sparsity + aux
    with torch.no_grad():
        smallest = x.new_tensor(float("inf"))
        if isinstance(code, SparseCode):
            fired, active = code.active(config.code_dim), code.l0_sum().to(x.dtype)
            if config.uses_batch_threshold():
                smallest = smallest_positive(code.values.detach())  # BatchTopK's threshold
        else:  # JumpReLU, ReLU: no running threshold
            on = code.detach() > 0
            fired, active = on.any(dim=0), on.sum().to(x.dtype)
        sse = residual.pow(2).sum()
        sst = (x - x.mean(dim=0)).pow(2).sum()
        norms = x.norm(dim=1)
        ratio = torch.where(norms > 0, recon.norm(dim=1) / norms.clamp_min(1e-30), 0.0)
        n = x.new_tensor(float(len(x)))
        counted = (norms > 0).sum().to(x.dtype)
        stats = [n, sse, sst, active, ratio.sum(), counted, total * n, aux * n, sparsity * n]
    return total, fired, smallest, torch.stack(stats).detach()


def auxk_loss(
    module: SparseDictionary,
    pre: torch.Tensor,
    centered: torch.Tensor,
    residual: torch.Tensor,
    dead: torch.Tensor,
) -> torch.Tensor:
    """AuxK's normalised error of the dead latents' reconstruction of ``residual``.

    ``dead`` lists the dead latents; their ``min(aux_k, n_dead)`` largest ReLU
    pre-activations per row are the auxiliary code (the top-k over their columns only),
    whose gradient reaches the encoder through those entries alone.
    """
    config = module.config
    aux_k = min(config.aux_k or max(1, module.n_features // 2), len(dead))
    with torch.no_grad():
        values, picked = pre.index_select(1, dead).topk(aux_k, dim=1, sorted=False)
    kept = SparseCode(values, dead[picked], None)
    values = module.kept_values(centered, kept, module.decoder_gains()).relu()
    error = kept._replace(values=values).decode(module.decoder_rows()) - residual
    error = error.pow(2).sum(1).mean()
    scale = (residual - residual.mean(dim=0)).pow(2).sum(dim=1).mean().clamp_min(1e-12)
    return error / scale
