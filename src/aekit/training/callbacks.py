"""Training callbacks: the hooks :class:`~aekit.training.Trainer` calls, and the default ones.

Every run has :func:`default_callbacks`: :class:`EarlyStopping`, :class:`DivergenceRetry`
(with ``divergence_retries``), :class:`LogProgress` (with ``verbose``) and
:class:`Checkpointer`, which alone saves checkpoints and resumes from them. Hooks take
keyword arguments and ``**kwargs``, so that a hook can be given more later without breaking
the callbacks written against it. :class:`Callback` (:mod:`.hooks`) and :class:`EarlyStopping`
(:mod:`.early_stopping`) live in modules of their own and are imported from here too.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..config.configs import TrainConfig
from ..errors import ConfigError, ModelFileError, TrainingDivergedError
from ..files.folderlock import folder_lock
from .checkpoint import (
    all_finite,
    check_resumable,
    check_state,
    checkpoint_path,
    clone_state,
    find_checkpoint,
    prune_checkpoints,
    read_checkpoint,
    refuse_fresh_run,
    write_checkpoint,
)
from .distributed import elastic_restart, fault_hook, run_id
from .early_stopping import EarlyStopping
from .hooks import Callback
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
        before = trainer.elapsed_before  # the clock runs on: the state's time is counted
        trainer.load_state_dict(self._start)
        trainer.elapsed_before = before
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
            else:
                trainer.ranks.agree(lambda: refuse_fresh_run(folder))
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
        if not all_finite(trainer.module, sums):  # same verdict on every rank
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
