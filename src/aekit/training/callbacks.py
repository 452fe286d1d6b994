"""Training callbacks: the hooks :class:`~aekit.training.Trainer` calls, and the default ones.

Every run has :func:`default_callbacks`: :class:`EarlyStopping`, :class:`DivergenceRetry`
(with ``divergence_retries``), :class:`LogProgress` (with ``verbose``) and
:class:`Checkpointer`, which alone saves checkpoints and resumes from them. Hooks take
keyword arguments and ``**kwargs``, so that a hook can be given more later without breaking
the callbacks written against it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch

from ..config.configs import TrainConfig
from ..errors import ConfigError, ModelFileError, TrainingDivergedError
from ..files.folderlock import folder_lock
from .checkpoint import (
    check_resumable,
    check_state,
    checkpoint_path,
    clone_state,
    find_checkpoint,
    prune_checkpoints,
    read_checkpoint,
    write_checkpoint,
)
from .distributed import elastic_restart, fault_hook, run_id
from .history import monitored_loss
from .kept_weights import KeptWeights
from .optim import scale_lr
from .protocol import TrainerLike

__all__ = [
    "Callback",
    "Checkpointer",
    "DivergenceRetry",
    "EarlyStopping",
    "LogProgress",
    "default_callbacks",
    "run_callbacks",
]


logger = logging.getLogger("aekit")


class Callback:
    """Hooks called by :class:`~aekit.training.Trainer`; override the ones you need.

    Hooks are called with keyword arguments; accept ``**kwargs`` for any added later. A
    callback with state that must survive a resume implements :meth:`state_dict` and
    :meth:`load_state_dict` (tensors and JSON scalars only).

    Attributes
    ----------
    order : int
        Callbacks run by ascending ``order``, then in the order given: divergence retries
        (-20) and early stopping (-10) before yours (0), epoch logging (10) and checkpoints
        (20) after them, so that a checkpoint holds what every other callback did.
    """

    order: ClassVar[int] = 0

    def on_train_begin(self, trainer: TrainerLike, **kwargs: Any) -> None:
        """Before the first epoch (also after a resume)."""

    def on_epoch_begin(self, trainer: TrainerLike, *, epoch: int, **kwargs: Any) -> None:
        """Before each epoch (``epoch`` is 1-based)."""

    def on_batch_end(
        self, trainer: TrainerLike, *, batch: int, n_batches: int, **kwargs: Any
    ) -> None:
        """After each optimiser step (``batch`` counts from 1): a step boundary."""

    def on_epoch_end(self, trainer: TrainerLike, *, record: dict[str, Any], **kwargs: Any) -> None:
        """After validation; ``trainer.request_stop(reason)`` ends training here."""

    def on_epoch_boundary(self, trainer: TrainerLike, *, epoch: int, **kwargs: Any) -> None:
        """After :meth:`on_epoch_end`, the schedule step and the ranks' agreement to stop.

        The state is the next epoch's start: a step boundary, where checkpoints are taken.
        """

    def on_interrupt(self, trainer: TrainerLike, **kwargs: Any) -> None:
        """On Ctrl-C (``KeyboardInterrupt``) during the epochs; it is re-raised after."""

    def on_diverged(
        self, trainer: TrainerLike, *, error: TrainingDivergedError, **kwargs: Any
    ) -> None:
        """On a non-finite loss; ``error`` is raised after, unless a callback recovers.

        A callback recovers by loading a good state back (``trainer.load_state_dict``);
        training then goes on from there.
        """

    def on_train_end(self, trainer: TrainerLike, **kwargs: Any) -> None:
        """After the last epoch, also when training stops early."""

    def state_dict(self) -> dict[str, Any]:
        """State to keep in checkpoints."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""


class EarlyStopping(Callback):
    """Stop when the monitored loss stops improving, and keep the best weights.

    Monitors the validation error (squared error in the scaled space, whatever the training
    loss), or the training loss when there is no validation split. With validation rows the
    starting model is epoch 0 (:attr:`History.initial`): when no epoch beats it, its weights
    are kept and ``best_epoch`` is 0 (with ``init="pca"``: PCA's solution).

    Parameters
    ----------
    patience : int or None
        Epochs without improvement before stopping; None never stops (the best weights are
        still restored at the end).
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
            self.best, self.best_epoch, self.bad_epochs = value, record["epoch"], 0
            self.best_state = None  # the old copy goes first (a new best is a new copy)
            self.best_state = KeptWeights(trainer.module.state_dict())
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
            "best_state": best,
            "initial_state": best if same else initial and initial.tensors(),
            "monitor": self.monitor,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.best = float(state["best"])
        self.best_epoch = state["best_epoch"]
        self.bad_epochs = int(state["bad_epochs"])
        best, initial = state["best_state"], state.get("initial_state")  # 0.1: no start kept
        self.best_state = None if best is None else KeptWeights.held(best)
        same = initial is best  # one copy, as before the checkpoint
        self.initial_state = self.best_state if same else initial and KeptWeights.held(initial)
        self.monitor = state.get("monitor", "val_loss")  # aekit 0.1 ranked by the loss


class DivergenceRetry(Callback):
    """Run a diverged epoch again from its start, with the learning rate scaled down.

    Parameters
    ----------
    retries : int
        Retries in one :meth:`Trainer.fit`; the divergence after the last one is raised.
    lr_factor : float
        What each retry multiplies the learning rate (and the schedule's) by.
    """

    order = -20

    def __init__(self, retries: int, lr_factor: float) -> None:
        self.retries = retries
        self.lr_factor = lr_factor
        self._left = retries
        self._start: dict[str, Any] | None = None

    def on_train_begin(self, trainer: TrainerLike, **kwargs: Any) -> None:
        """Every fit has its own retries."""
        self._left = self.retries

    def on_epoch_begin(self, trainer: TrainerLike, *, epoch: int, **kwargs: Any) -> None:
        """Keep a copy of the state at the epoch's start (while retries are left)."""
        self._start = clone_state(trainer.state_dict()) if self._left else None

    def on_diverged(
        self, trainer: TrainerLike, *, error: TrainingDivergedError, **kwargs: Any
    ) -> None:
        """Go back to the epoch's start at a lower learning rate, if a retry is left."""
        if self._start is None:
            return
        self._left -= 1
        trainer.load_state_dict(self._start)
        scale_lr(trainer.optimizer, trainer.scheduler, self.lr_factor)
        logger.warning(
            "%s; retrying from the start of epoch %d with lr=%g (%d retries left)",
            str(error).split(":")[0],
            trainer.position["epoch"] + 1,
            trainer.optimizer.param_groups[0]["lr"],
            self._left,
        )


class LogProgress(Callback):
    """Log one line per epoch to the ``aekit`` logger (rank 0 only)."""

    order = 10

    def on_epoch_end(self, trainer: TrainerLike, *, record: dict[str, Any], **kwargs: Any) -> None:
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
    """Save resumable checkpoints to ``checkpoint_dir``, and resume from them (``TrainConfig``).

    Saves every ``checkpoint_every`` epochs, and with ``checkpoint_every_steps`` also every
    that many optimiser steps, mid-epoch (a step count that falls on the end of an epoch is
    saved with the epoch, after validation); keeps the ``keep_checkpoints`` newest. On Ctrl-C
    it saves the state of the last finished step (under DDP the ranks agree on that step
    first, see :class:`~aekit.training.progress.StopOnSignal`). Without ``checkpoint_dir`` it
    saves nothing, but still resumes from a named checkpoint file.

    For the whole of a fit, rank 0 holds the folder's lock (:mod:`aekit.files.folderlock`): a
    second run writing the same folder is refused. Checkpoints written under ``torchrun``
    carry its launch id; when torchrun restarts the group after a failure
    (``--max-restarts``), the restarted run resumes from that launch's newest checkpoint on
    its own, and never from another run's left in the folder.
    """

    order = 20

    def __init__(self) -> None:
        self._due = False  # a save is due at the next epoch boundary
        self._saved_at: dict[str, int] | None = None  # the position of the last save

    @contextlib.contextmanager
    def session(
        self, trainer: TrainerLike, resume: bool | str | os.PathLike[str]
    ) -> Iterator[None]:
        """Hold the folder's lock, resume as asked (or after an elastic restart), then train.

        Called by :meth:`Trainer.fit <aekit.training.Trainer.fit>` on every rank, around
        its epochs.

        Raises
        ------
        FolderInUseError
            If another run holds ``checkpoint_dir`` (on every rank).
        """
        folder = trainer.config.checkpoint_dir
        launch = elastic_restart()
        with contextlib.ExitStack() as stack:

            def lock() -> None:  # rank 0 writes the folder; every rank hears a refusal
                stack.enter_context(folder_lock(folder))

            def own_newest() -> Path | None:  # rank 0 picks, every rank reads the same file
                found = find_checkpoint(folder, launch)
                return None if found is None else found[0]

            if folder is not None:
                trainer.ranks.agree(lock)
            if launch is not None and folder is not None:
                path = trainer.ranks.agree(own_newest)
                if path is not None:  # an earlier attempt of this launch saved: go on
                    logger.info("torchrun restarted the group: resuming from %s", path)
                    resume = path
            if resume:
                self.resume(trainer, resume)
            yield

    def on_batch_end(
        self, trainer: TrainerLike, *, batch: int, n_batches: int, **kwargs: Any
    ) -> None:
        """Save mid-epoch when the global step count is a multiple of the step interval."""
        every = trainer.config.checkpoint_every_steps
        if every is not None and trainer.step % every == 0:
            if batch < n_batches:
                self.save(trainer)
            else:
                self._due = True
        fault_hook(trainer.ranks.rank, trainer.step)

    def on_epoch_end(self, trainer: TrainerLike, *, record: dict[str, Any], **kwargs: Any) -> None:
        """Note a save when the epoch number is a multiple of ``checkpoint_every``."""
        if record["epoch"] % trainer.config.checkpoint_every == 0:
            self._due = True

    def on_epoch_boundary(self, trainer: TrainerLike, **kwargs: Any) -> None:
        """Save if a save is due (the epoch's, or a step count that ended the epoch)."""
        if self._due:
            self.save(trainer)

    def on_interrupt(self, trainer: TrainerLike, **kwargs: Any) -> None:
        """Save the last step boundary's state, unless the interrupt landed off a boundary.

        Under DDP nothing is saved here (a collective in an exception handler can hang):
        the ranks saved together before raising, if they agreed to stop.
        """
        folder = trainer.config.checkpoint_dir
        if folder is None:
            return
        saved = self._saved_at == trainer.position and trainer.at_step_boundary
        if not saved and (not trainer.at_step_boundary or trainer.world_size > 1):
            why = "inside an optimiser update" if trainer.world_size == 1 else "under DDP"
            logger.warning(
                "interrupted %s, where no consistent state can be saved; resume=True continues "
                "from the last checkpoint in %s",
                why,
                folder,
            )
            return
        try:
            path = checkpoint_path(folder, **trainer.position) if saved else self.save(trainer)
        except TrainingDivergedError as exc:
            logger.warning("interrupted, but not saved: %s", exc)
            return
        if trainer.is_main:
            logger.warning(
                "interrupted at epoch %d, batch %d: checkpoint saved to %s; continue with "
                "resume=True (aekit fit --resume)",
                trainer.position["epoch"] + 1,
                trainer.position["batch"],
                path,
            )

    def save(self, trainer: TrainerLike) -> Path | None:
        """Write the trainer's state to ``checkpoint_dir`` (rank 0) and prune old files.

        Called on every rank under DDP (the epoch's loss sums are added up across ranks).

        Raises
        ------
        TrainingDivergedError
            Instead of writing weights or loss sums that are no longer finite.
        OutputError
            If the file system refuses the write (full, read-only); on every rank.
        """
        self._due = False
        folder = trainer.config.checkpoint_dir
        if folder is None:
            return None
        sums = trainer.ranks.all_sum(trainer.epoch_sums)
        finite = all(bool(torch.isfinite(p).all()) for p in trainer.module.parameters())
        if not (finite and bool(torch.isfinite(sums).all())):  # same verdict on every rank
            raise trainer.diverged_error()
        path = checkpoint_path(folder, **trainer.position)

        def write() -> None:  # rank 0; a refused write (full disk) stops every rank
            write_checkpoint(path, {**trainer.state_dict(), "epoch_sums": sums}, run_id())
            prune_checkpoints(folder, trainer.config.keep_checkpoints)
            logger.debug("checkpoint written: %s", path)

        trainer.ranks.agree(write)
        self._saved_at = dict(trainer.position)
        return path if trainer.is_main else None

    def resume(self, trainer: TrainerLike, where: bool | str | os.PathLike[str]) -> None:
        """Restore the trainer's state from a checkpoint, after checking it fits the run.

        Parameters
        ----------
        trainer : Trainer
            Set up for its run (split, optimiser), before its first epoch.
        where : True or path
            ``True``: the newest usable checkpoint in ``checkpoint_dir`` (a fresh start if
            there is none); a path: that checkpoint file.

        Raises
        ------
        ConfigError
            ``True`` without a ``checkpoint_dir``.
        ModelFileError
            If the file is unusable or belongs to another run.
        """
        if where is True:
            if trainer.config.checkpoint_dir is None:
                raise ConfigError("resume=True needs checkpoint_dir (where the checkpoints are)")
            found = find_checkpoint(trainer.config.checkpoint_dir)
            if found is None:
                logger.info("no checkpoint to resume from; starting afresh")
                return
            path, state = found
        else:
            path = Path(where)
            state = check_state(read_checkpoint(path), path)
        params = [p for group in trainer.optimizer.param_groups for p in group["params"]]
        current = trainer.state_dict()
        check_resumable(state, current, params=params, n_batches=trainer.n_batches, source=path)
        try:
            trainer.load_state_dict(state)
        except ModelFileError:
            raise
        except (KeyError, ValueError, TypeError, IndexError, RuntimeError) as exc:
            raise ModelFileError(f"{path} does not fit this training run ({exc})") from exc
        logger.info("resumed from %s (epoch %d, batch %d)", path, *trainer.position.values())


def default_callbacks(config: TrainConfig) -> list[Callback]:
    """The callbacks a run has from its config.

    Early stopping, divergence retries (``divergence_retries``), epoch logging
    (``verbose``) and checkpoints.
    """
    early = EarlyStopping(config.patience, config.min_delta, config.improvement_z)
    callbacks: list[Callback] = [early]
    if config.divergence_retries:
        callbacks.append(DivergenceRetry(config.divergence_retries, config.divergence_lr_factor))
    if config.verbose:
        callbacks.append(LogProgress())
    return [*callbacks, Checkpointer()]


def run_callbacks(config: TrainConfig, extra: Sequence[Callback] = ()) -> list[Callback]:
    """A run's callbacks: :func:`default_callbacks` and ``extra``, in :attr:`~Callback.order`.

    An extra callback that is an instance of a default one's class takes its place: pass an
    ``EarlyStopping`` (or a subclass of it) to replace the one built from ``config``.
    """
    defaults = [
        cb for cb in default_callbacks(config) if not any(isinstance(e, type(cb)) for e in extra)
    ]
    return sorted([*defaults, *extra], key=lambda cb: getattr(cb, "order", 0))
