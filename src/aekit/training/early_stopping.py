"""Early stopping: stop when training stops improving, and keep the best weights."""

from __future__ import annotations

import logging
import math
from typing import Any

from .history import monitored_loss
from .hooks import Callback
from .kept_weights import KeptWeights
from .protocol import TrainerLike

__all__ = ["EarlyStopping"]

logger = logging.getLogger("aekit")


class EarlyStopping(Callback):
    """Stop when the monitored loss stops improving, and keep the best weights.

    Monitors the validation error (squared error in the scaled space, whatever the training
    loss), or the training loss when there is no validation split. With validation rows the
    starting model is epoch 0 (:attr:`History.initial`): when no epoch beats it, its weights
    are kept and ``best_epoch`` is 0 (with ``init="pca"``: PCA's solution).

    Patience counts epochs without progress of the best *trained* epoch: the start is the bar
    for the weights kept, not for when to stop. A start fitted on every row (PCA's solution,
    validation rows included) is in-sample on the validation rows: its validation error was 2
    to 13 % below that of PCA fitted on the training rows alone (wine, diabetes and breast
    cancer at small codes). The first epochs, trained on those rows alone, give that edge up,
    so their validation error rises above the start's for a few epochs while the training
    loss falls, and a patience counted from the start stopped many runs there, before
    training reached what it would find (on small tables a few batches an epoch: 10 epochs
    are 20 optimiser steps on wine).

    Parameters
    ----------
    patience : int or None
        Epochs without improvement of the best trained epoch before stopping; None never
        stops (the best weights are still restored at the end).
    min_delta : float, default=0.0
        Relative improvement that counts as progress.
    """

    order = -10

    def __init__(
        self, patience: int | None, min_delta: float = 0.0, improvement_z: float = 0.0
    ) -> None:
        self.patience = patience
        self.min_delta = min_delta
        self.improvement_z = improvement_z
        self.initial_state: KeptWeights | None = None
        self.best = math.inf
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self.best_trained = math.inf  # the best epoch after the start: patience's bar
        self.best_state: KeptWeights | None = None
        self.monitor = "val_error"  # "val_loss" when resumed from an aekit 0.1 checkpoint

    def on_train_begin(self, trainer: TrainerLike, **kwargs: Any) -> None:
        """Count the starting model as epoch 0, the first best (on a fresh start)."""
        initial = trainer.history.initial
        if initial is not None and self.best_epoch is None:
            self.best, self.best_epoch = float(initial["val_error"]), 0
            self.best_state = self.initial_state = KeptWeights(trainer.module.state_dict())

    def on_epoch_end(self, trainer: TrainerLike, *, record: dict[str, Any], **kwargs: Any) -> None:
        """Track the best epoch; ask to stop after ``patience`` epochs without progress."""
        value = monitored_loss(record, self.monitor)
        if value < self.best * (1 - self.min_delta):
            self.best, self.best_epoch = value, record["epoch"]
            self.best_state = None  # the old copy goes first (a new best is a new copy)
            self.best_state = KeptWeights(trainer.module.state_dict())
        if value < self.best_trained * (1 - self.min_delta):
            self.best_trained, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
            if self.patience is not None and self.bad_epochs >= self.patience:
                trainer.request_stop("early_stopping")

    def on_train_end(self, trainer: TrainerLike, **kwargs: Any) -> None:
        """Load the best weights back (the start's, unless training beat it clearly)."""
        if self.best_epoch and self.initial_state is not None and self.improvement_z > 0:
            self._keep_start_unless_clearly_beaten(trainer)
        if self.best_state is not None:
            self.best_state.load_into(trainer.module)
        trainer.history.best_epoch = self.best_epoch
        if self.best_epoch == 0 and trainer.is_main:
            logger.info(
                "no epoch beat the starting model on the validation rows: it is kept (epoch 0%s)",
                ", PCA's solution" if getattr(trainer.module, "pca_started", False) else "",
            )

    def _keep_start_unless_clearly_beaten(self, trainer: TrainerLike) -> None:
        """Compare the best epoch with the start row by row on the validation rows."""
        assert self.best_state is not None and self.initial_state is not None
        rows = trainer.val_idx
        self.best_state.load_into(trainer.module)
        after = trainer.objective.row_errors(trainer.source, rows)
        self.initial_state.load_into(trainer.module)
        before = trainer.objective.row_errors(trainer.source, rows)
        gain, z = trainer.objective.paired_gain(before, after)
        if trainer.history.initial is not None:
            trainer.history.initial.update(best_epoch_gain=gain, best_epoch_z=min(z, 1e9))
        if z < self.improvement_z:
            if trainer.is_main:
                logger.info(
                    "epoch %d beat the starting model by %.3g per validation row, within noise "
                    "(%.2f standard errors < improvement_z=%g): the start is kept",
                    self.best_epoch, gain, z, self.improvement_z,
                )  # fmt: skip
            self.best_epoch, self.best_state = 0, self.initial_state

    def state_dict(self) -> dict[str, Any]:
        """Best loss, epoch, patience counter and weights."""
        initial, same = self.initial_state, self.initial_state is self.best_state
        best = self.best_state and self.best_state.tensors()
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "best_trained": self.best_trained,
            "best_state": best,
            "initial_state": best if same else initial and initial.tensors(),
            "monitor": self.monitor,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.best = float(state["best"])
        self.best_epoch = state["best_epoch"]
        self.bad_epochs = int(state["bad_epochs"])
        # older checkpoints have none: their patience counted from the best, start included
        self.best_trained = float(state.get("best_trained", state["best"]))
        best, initial = state["best_state"], state.get("initial_state")  # 0.1: no start kept
        self.best_state = None if best is None else KeptWeights.held(best)
        same = initial is best  # one copy, as before the checkpoint
        self.initial_state = self.best_state if same else initial and KeptWeights.held(initial)
        self.monitor = state.get("monitor", "val_loss")  # aekit 0.1 ranked by the loss
