"""From parsed options to library arguments."""

from __future__ import annotations

import argparse
from typing import Any


class InterruptedRunError(Exception):
    """Ctrl-C ended a command; the message says how to go on."""


def _estimator_params(args: argparse.Namespace) -> dict[str, Any]:
    """Autoencoder arguments from the shared training options."""
    names = (
        "hidden", "activation", "batch_norm", "dropout", "scaling", "loss", "epochs",
        "batch_size", "lr", "lr_schedule", "weight_decay", "val_fraction", "max_time",
        "precision",
    )  # fmt: skip
    params: dict[str, Any] = {
        name: getattr(args, name) for name in names if getattr(args, name) is not None
    }
    if args.patience is not None:
        params["patience"] = args.patience if args.patience > 0 else None
    params.update(random_state=args.seed, device=args.device)
    if args.compile:
        params["compile"] = True
    params.update(args.sparsity or {})
    params.update(args.noise or {})
    if args.sparsity_weight is not None:
        params["sparsity_weight"] = args.sparsity_weight
    return params


def _callbacks(args: argparse.Namespace) -> tuple[Any, ...]:
    from ..training.progress import ProgressBar

    return () if args.quiet else (ProgressBar(),)
