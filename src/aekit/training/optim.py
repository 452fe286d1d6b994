"""Optimiser, parameter groups and learning-rate schedule of a training run."""

from __future__ import annotations

import warnings
from typing import Any

import torch

from ..config import TrainConfig
from ..model import Hourglass
from .history import monitored_loss

__all__ = ["make_optimizer", "make_scheduler", "param_groups", "scale_lr", "step_schedule"]


def make_optimizer(module: Hourglass, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam(W) with the fused kernel (one pass over all parameters) where the device has it.

    The fused and the for-each implementations keep the same state, so checkpoints move
    between them; the per-tensor loop PyTorch picks by default on the CPU is the slowest.
    Weight decay spares a top-k code's own layers (see :func:`param_groups`).
    """
    kind = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    groups = param_groups(module, cfg.weight_decay)
    try:
        return kind(groups, lr=cfg.lr, fused=True)
    except RuntimeError:  # a device without fused Adam (e.g. MPS on older PyTorch)
        return kind(groups, lr=cfg.lr, foreach=True)


def param_groups(module: Hourglass, weight_decay: float) -> list[dict[str, Any]]:
    """One group with ``weight_decay``; for top-k codes, a second one without it.

    A top-k unit that is not among a row's k largest gets no reconstruction gradient, so the
    weight decay is all its encoder row and decoder column see; Adam divides that gradient by
    its own running scale and shrinks them by about ``lr`` per step however small the decay.
    On MNIST (1,024 units, k = 32) that silenced over half the units within four epochs, past
    what the AuxK loss could revive. The code's own layers therefore train without decay.
    """
    exempt = module.code_parameters() if module.config.sparsity == "topk" else []
    ids = {id(p) for p in exempt}
    decayed = [p for p in module.parameters() if id(p) not in ids]
    groups = [{"params": decayed, "weight_decay": weight_decay}]
    if exempt:
        groups.append({"params": exempt, "weight_decay": 0.0})
    return [g for g in groups if g["params"]]


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> Any:
    """The ``lr_schedule``: cosine annealing over ``epochs``, halving on a plateau, or None."""
    if cfg.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    if cfg.lr_schedule == "plateau":
        patience = max(1, (cfg.patience or 10) // 3)
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=patience)
    return None


def step_schedule(scheduler: Any, record: dict[str, Any]) -> None:
    """Step ``scheduler`` (if any) at the end of the epoch ``record`` describes.

    A plateau schedule watches the loss early stopping watches (:func:`monitored_loss`).
    """
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(monitored_loss(record))
    elif scheduler is not None:
        with warnings.catch_warnings():  # a run resumed at an epoch's end steps no optimiser
            warnings.filterwarnings("ignore", "Detected call of `lr_scheduler")
            scheduler.step()


def scale_lr(optimizer: torch.optim.Optimizer, scheduler: Any, factor: float) -> None:
    """Multiply the learning rate, and the schedule's base rates, by ``factor``.

    What a divergence retry does before it runs the epoch again.
    """
    for group in optimizer.param_groups:
        group["lr"] *= factor
        if "initial_lr" in group:
            group["initial_lr"] *= factor
    if scheduler is not None:
        for name in ("base_lrs", "_last_lr"):
            if hasattr(scheduler, name):
                values = getattr(scheduler, name)
                setattr(scheduler, name, [v * factor for v in values])
