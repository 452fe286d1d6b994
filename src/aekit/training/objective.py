"""What training minimises: the reconstruction loss and the code penalties (AuxK included)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..model import Hourglass
from ..regularize import dead_unit_code


def _loss_sum(out: Any, target: torch.Tensor, loss: str) -> torch.Tensor:
    if loss == "bce":
        return F.binary_cross_entropy_with_logits(out.logits.float(), target, reduction="sum")
    return _squared_error_sum(out.recon, target)


def _squared_error_sum(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(recon.float(), target, reduction="sum")


def _uses_dead_unit_loss(mcfg: Any) -> bool:
    """AuxK is on for weighted top-k codes with a linear decoder."""
    return mcfg.sparsity == "topk" and mcfg.sparsity_weight > 0 and not mcfg.hidden


def _dead_unit_loss_sum(
    module: Hourglass, out: Any, clean: torch.Tensor, dead: torch.Tensor
) -> torch.Tensor:
    """AuxK: squared error left after adding dead units' best guesses to the reconstruction.

    For a top-k code with a linear decoder (``hidden=()``, the sparse-dictionary setting of
    Gao et al.). ``dead`` marks the units silent for ``_DEAD_AFTER_ROWS`` training rows (see
    :meth:`Trainer._dead_units`); each row's largest pre-activations among them form an
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
