"""Training callbacks: hooks the trainer calls, and the ones it adds from its config."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from .trainer import Trainer

__all__ = ["Callback", "Checkpointer", "EarlyStopping", "LogProgress"]


logger = logging.getLogger("aekit")


class Callback:
    """Hooks called by :class:`Trainer`; override the ones you need.

    A callback with state that must survive a resume implements :meth:`state_dict` and
    :meth:`load_state_dict` (tensors and JSON scalars only).
    """

    def on_train_begin(self, trainer: Trainer) -> None:
        """Before the first epoch (also after a resume)."""

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None:
        """Before each epoch (``epoch`` is 1-based)."""

    def on_batch_end(self, trainer: Trainer, batch: int, n_batches: int) -> None:
        """After each optimiser step (``batch`` counts from 1)."""

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """After validation; ``trainer.request_stop(reason)`` ends training here."""

    def on_train_end(self, trainer: Trainer) -> None:
        """After the last epoch, also when training stops early."""

    def state_dict(self) -> dict[str, Any]:
        """State to keep in checkpoints."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""


class EarlyStopping(Callback):
    """Stop when the monitored loss stops improving, and keep the best weights.

    Monitors the validation loss, or the training loss when there is no validation split.

    Parameters
    ----------
    patience : int or None
        Epochs without improvement before stopping; None never stops (the best weights are
        still restored at the end).
    min_delta : float, default=0.0
        Relative improvement that counts as progress.
    """

    def __init__(self, patience: int | None, min_delta: float = 0.0) -> None:
        self.patience = patience
        self.min_delta = min_delta
        self.best = math.inf
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self.best_state: dict[str, torch.Tensor] | None = None

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """Track the best epoch; ask to stop after ``patience`` epochs without progress."""
        value = record["val_loss"] if record["val_loss"] is not None else record["train_loss"]
        if value < self.best * (1 - self.min_delta):
            self.best, self.best_epoch, self.bad_epochs = value, record["epoch"], 0
            self.best_state = {
                k: v.detach().clone() for k, v in trainer.module.state_dict().items()
            }
        else:
            self.bad_epochs += 1
            if self.patience is not None and self.bad_epochs >= self.patience:
                trainer.request_stop("early_stopping")

    def on_train_end(self, trainer: Trainer) -> None:
        """Load the best weights back into the model."""
        if self.best_state is not None:
            trainer.module.load_state_dict(self.best_state)
        trainer.history.best_epoch = self.best_epoch

    def state_dict(self) -> dict[str, Any]:
        """Best loss, epoch, patience counter and weights."""
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "best_state": self.best_state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.best = float(state["best"])
        self.best_epoch = state["best_epoch"]
        self.bad_epochs = int(state["bad_epochs"])
        self.best_state = state["best_state"]


class LogProgress(Callback):
    """Log one line per epoch to the ``aekit`` logger (rank 0 only)."""

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """Log the epoch's figures."""
        if not trainer.is_main:
            return
        val = record["val_loss"]
        logger.info(
            "epoch %d/%d  train %.6g  val %s  lr %.3g  %.0f samples/s",
            record["epoch"],
            trainer.config.epochs,
            record["train_loss"],
            "-" if val is None else f"{val:.6g}",
            record["lr"],
            record["samples_per_s"],
        )


class Checkpointer(Callback):
    """Write a resumable checkpoint every ``checkpoint_every`` epochs (``TrainConfig``).

    With ``checkpoint_every_steps`` also every that many optimiser steps, mid-epoch; a step
    count that falls on the end of an epoch is saved after the epoch's validation instead.
    """

    def on_batch_end(self, trainer: Trainer, batch: int, n_batches: int) -> None:
        """Save mid-epoch when the global step count is a multiple of the step interval."""
        every = trainer.config.checkpoint_every_steps
        if every is None or trainer.step % every:
            return
        if batch < n_batches:
            trainer.save_checkpoint()
        else:
            trainer.pending_checkpoint = True

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """Save when the epoch number is a multiple of ``checkpoint_every``."""
        if record["epoch"] % trainer.config.checkpoint_every == 0:
            trainer.pending_checkpoint = True
