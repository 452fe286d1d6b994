"""The training loop, read top to bottom: fit → epoch → step, calling the callbacks' hooks.

What a step minimises is :mod:`~aekit.training.objective`, the optimiser and schedule
:mod:`~aekit.training.optim`; early stopping, divergence retries, logging, checkpoints and
resuming are :mod:`~aekit.training.callbacks`. Every random draw comes from generators seeded
from ``random_state`` whose states are part of :meth:`Trainer.state_dict`, so a resumed run
repeats the uninterrupted one bit for bit on the CPU. Under ``torchrun`` every rank runs this
code: one global permutation, each global batch split across ranks, gradients averaged by
DDP, the ranks agreeing through :class:`~aekit.training.distributed.Ranks`.

The state is whole only at a *step boundary* (:attr:`Trainer.at_step_boundary`): between
two optimiser steps, the position moved past the last one. Ctrl-C (``KeyboardInterrupt``)
goes to the callbacks' ``on_interrupt`` and is re-raised; a non-finite loss
(:class:`TrainingDivergedError`) to their ``on_diverged``, and is raised unless one of them
loads a good state back.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch.nn.modules.batchnorm import _BatchNorm

from ..config.configs import TrainConfig
from ..data.sources import RowSource, TensorRows, dealt_parts, shuffled
from ..data.sparse import SparseBatch, as_dense
from ..errors import ConfigError, TrainingDivergedError
from ..model.hourglass import Hourglass
from .budget import past_deadline
from .callbacks import Callback, Checkpointer, run_callbacks
from .denormals import flushing_denormals
from .distributed import Ranks
from .history import History
from .objective import Objective, autocast
from .optim import make_optimizer, make_scheduler, step_schedule
from .prepare import (
    as_source,
    batch_count,
    batches_per_epoch,
    check_batch_norm_rows,
    derive_seeds,
    noise_bounds,
    read_counts,
    release_free_heap,
    resolve_device,
    seeded_generator,
    to_device,
    validation_split,
    wrap_network,
)
from .rethreads import rethread
from .run_state import RunState
from .sparse_step import input_path, sparse_loss
from .threads import ThreadChoice, run_threads, using_threads

__all__ = ["Trainer", "batches_per_epoch", "derive_seeds", "resolve_device"]


class Trainer(RunState):
    """Fit an :class:`~aekit.model.Hourglass` to rows.

    Parameters
    ----------
    module : Hourglass
        The network, already built (and its input scaling set).
    config : TrainConfig
        How to train.
    callbacks : sequence of Callback, optional
        Extra hooks (progress bars, loggers...), run with
        :func:`~aekit.training.callbacks.default_callbacks` (early stopping, epoch logging,
        checkpoints) in :attr:`Callback.order <aekit.training.Callback.order>`. An extra
        callback that is an instance of a default one's class replaces it.

    Attributes
    ----------
    history : History
        Filled by :meth:`fit` and :meth:`partial_fit`.
    device : torch.device
        Where training runs.
    ranks : Ranks
        This process's rank among ``world_size`` (0 of 1 without DDP).
    callbacks : list of Callback
        In the order they are called.
    position : dict
        ``{"epoch": epochs done, "batch": batches done in the next}``.
    train_idx, val_idx : Tensor of shape (n_train,) and (n_val,)
        The rows :meth:`fit` trains on and validates on, set when it starts.
    thread_choice : ThreadChoice or None
        The intra-op thread count training runs at, and why (:mod:`~aekit.training.threads`);
        decided before the first step unless set before :meth:`fit` (the estimator decides it
        before the PCA start, which runs at it). ``history.threads``; a resume takes its own.
    """

    def __init__(
        self, module: Hourglass, config: TrainConfig, callbacks: Sequence[Callback] = ()
    ) -> None:
        self.module = module
        self.config = config
        self.device = resolve_device(config.device)
        self.ranks = Ranks.current()
        self.callbacks = run_callbacks(config, callbacks)
        self.history = History()
        self.position = {"epoch": 0, "batch": 0}
        self.thread_choice: ThreadChoice | None = None
        self._stop_reason = ""
        if config.loss == "bce" and module.config.output != "sigmoid":
            raise ConfigError("loss='bce' needs output='sigmoid' (targets in [0, 1])")

    # -- fit --------------------------------------------------------------------------------
    def fit(
        self, data: RowSource | torch.Tensor, *, resume: bool | str | os.PathLike[str] = False
    ) -> History:
        """Train on ``data`` and return the :class:`History`.

        Parameters
        ----------
        data : RowSource or Tensor of shape (n_rows, n_features)
            Raw (unscaled) rows.
        resume : bool or path, default=False
            ``True`` continues from the newest usable checkpoint in ``checkpoint_dir`` (a
            fresh start if there is none); a path names one checkpoint file. The
            :class:`Checkpointer` among the callbacks resumes.

        Raises
        ------
        TrainingDivergedError
            If the loss becomes NaN or infinite (after ``divergence_retries`` retries).
        ModelFileError
            If the checkpoint to resume from is unusable or belongs to another run.
        ConfigError
            On a second call: the first run's history and best weights would carry over.
        KeyboardInterrupt
            Re-raised after the callbacks' ``on_interrupt`` (a checkpoint is written when
            ``checkpoint_dir`` is set).
        """
        if self.history.records or hasattr(self, "optimizer"):  # its history, best weights...
            raise ConfigError("a Trainer trains once: build a new one for another fit")
        source = self._prepare(data)
        checkpointer = next((c for c in self.callbacks if isinstance(c, Checkpointer)), None)
        if resume and checkpointer is None:
            raise ConfigError("resuming needs a Checkpointer among the callbacks")
        # the checkpointer holds its folder and resumes (as asked, or after an elastic restart)
        session = checkpointer.session(self, resume) if checkpointer else contextlib.nullcontext()
        # (after the session: a resume takes its checkpoint's count); both put back on return
        with session, using_threads(run_threads(self, source)), flushing_denormals(self.device):
            self._begin(source)
            try:
                self._fit_epochs(source)
            except KeyboardInterrupt:
                self._notify("on_interrupt")
                raise
            self._finish()
        return self.history

    def _prepare(self, data: RowSource | torch.Tensor) -> RowSource:
        """Set up (:meth:`_setup`), split the rows; the source training reads."""
        cfg = self.config
        source, split_gen = self._setup(data)
        self.source = source  # for callbacks that measure the validation rows (early stopping)
        self.train_idx, self.val_idx = validation_split(
            len(source), cfg.val_fraction, split_gen, cfg.min_val_rows
        )
        check_batch_norm_rows(self.module, len(self.train_idx))
        self.n_batches = batch_count(len(self.train_idx), cfg.batch_size)
        self._bounds = noise_bounds(source, self.train_idx, self.module, self.device)
        return source

    def _begin(self, source: RowSource) -> None:
        """Measure the start (a fresh run's epoch 0), start the clock, call on_train_begin."""
        if self.position == {"epoch": 0, "batch": 0} and self.history.initial is None:
            # The starting model is epoch 0: training is kept only where it beats it.
            tick = time.perf_counter()
            self.history.initial = self._validate(source) if len(self.val_idx) else None
            self.history.setup_seconds["start_validation"] = time.perf_counter() - tick
        release_free_heap()  # what the set-up freed, before the optimiser's state is made
        self._start = time.perf_counter()
        self._notify("on_train_begin")

    def _finish(self) -> None:
        """After the last epoch: why it stopped, on_train_end, the model in evaluation mode."""
        self.history.stop_reason = self._stop_reason or "epochs"
        self._notify("on_train_end")
        self.module.eval()
        self.module.set_generator(None)

    def _fit_epochs(self, source: RowSource) -> None:
        """Epochs until the last, a stop, or a divergence no callback recovers from."""
        while self.position["epoch"] < self.config.epochs and not self._stop_reason:
            try:
                self._fit_epoch(source)
            except TrainingDivergedError as exc:
                # No state to go on from, unless a callback loads one (DivergenceRetry does).
                self._at_boundary = False
                self._notify("on_diverged", error=exc)
                if not self._at_boundary:
                    raise

    def _fit_epoch(self, source: RowSource) -> None:
        """Train (from a resumed batch on), validate, and let the callbacks speak."""
        epoch = self.position["epoch"] + 1
        self._notify("on_epoch_begin", epoch=epoch)
        marks = [getattr(source, "bytes_read", None)]  # bytes this rank read: train, validate
        record = self._train_epoch(source, self.train_idx, self.callbacks, self.config.max_time)
        marks.append(getattr(source, "bytes_read", None))
        self._end_epoch(source, record, marks)

    def _end_epoch(self, source: RowSource, record: dict[str, Any], marks: list[Any]) -> None:
        """Validate, keep the record, let the callbacks speak, step the schedule, maybe stop."""
        record.update(self._validate(source))
        marks.append(getattr(source, "bytes_read", None))
        record.update(read_counts(marks, self.ranks, self.device))
        # From here to the boundary the state moves to the next epoch's start.
        self._at_boundary = False
        self._close_epoch(record)
        self._notify("on_epoch_end", record=record)
        step_schedule(self.scheduler, record)
        more = self.position["epoch"] < self.config.epochs  # (the last: "epochs" ended it)
        if more and self.config.max_time is not None and self.elapsed() > self.config.max_time:
            self.request_stop("max_time")
        if self.ranks.any(bool(self._stop_reason), self.device) and not self._stop_reason:
            self._stop_reason = "max_time"  # another rank's clock ran out
        if not self._stop_reason and more:
            rethread(self)  # a slow epoch, or fewer threads than the budget for a while
        self._at_boundary = True
        self._notify("on_epoch_boundary", epoch=record["epoch"])

    def partial_fit(self, data: RowSource | torch.Tensor) -> dict[str, Any]:
        """One more pass over ``data``, continuing the optimiser: incremental training.

        The first call sets up the optimiser and the generators; later calls keep them, so
        a sequence of calls trains like the epochs of one run, each on new rows (as
        ``IncrementalPCA.partial_fit``), numbered on from :attr:`history`'s epochs, whose
        ``best_epoch`` (after a fit) becomes the latest pass: its weights are the ones held.
        No validation, early stopping, schedule, checkpoint or callback is involved.

        Parameters
        ----------
        data : RowSource or Tensor of shape (n_rows, n_features)
            Raw (unscaled) rows.

        Returns
        -------
        dict
            The pass's record, also appended to :attr:`history`.
        """
        if not hasattr(self, "optimizer"):
            source, _ = self._setup(data)
            self.position["epoch"] = len(self.history)  # after a fit: its epochs, then these
        else:
            source = as_source(data, self.device)
            self.module.set_generator(self.noise_gen)
        rows = torch.arange(len(source))
        check_batch_norm_rows(self.module, len(rows))  # (a chunk of one row)
        self._bounds = noise_bounds(source, rows, self.module, self.device)
        self.position["batch"] = 0
        self.epoch_sums = self._zero_sums()
        with using_threads(run_threads(self, source)), flushing_denormals(self.device):
            record = self._train_epoch(source, rows, ())
        self._close_epoch(record)
        if self.history.best_epoch is not None:
            self.history.best_epoch = record["epoch"]
        self.module.eval()
        self.module.set_generator(None)
        return record

    # -- epoch ------------------------------------------------------------------------------
    def _train_epoch(
        self,
        source: RowSource,
        rows: torch.Tensor,
        callbacks: Sequence[Callback],
        max_time: float | None = None,
    ) -> dict[str, Any]:
        """The steps from :attr:`position` to the end of an epoch over ``rows``; its record.

        The one place an epoch's figures are computed, for :meth:`fit` and
        :meth:`partial_fit` alike (``val_loss`` is left None). ``max_time`` can end the epoch
        early (:func:`~aekit.training.budget.past_deadline`; the run then stops).
        """
        order, first, n_batches = self._epoch_order(source, rows)
        tick = time.perf_counter()
        done = self._train_batches(source, order, (first, n_batches), callbacks, max_time)
        seconds = time.perf_counter() - tick
        return self._epoch_record(rows, first, seconds, source.n_features, done)

    def _epoch_order(self, source: RowSource, rows: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """The epoch's order of ``rows``, the batch to start from and the batch count."""
        n_batches = batch_count(len(rows), self.config.batch_size)
        if self.position["batch"] == 0:  # a resumed epoch keeps the ranks it was dealt to
            self.epoch_parts = dealt_parts(source, self.world_size)
        self.perm_gen.set_state(self.epoch_perm_state)
        batches = (self.config.batch_size, n_batches)
        order = shuffled(source, rows, self.perm_gen, self.epoch_parts, batches)
        return order, self.position["batch"], n_batches

    def _epoch_record(
        self,
        rows: torch.Tensor,
        first: int,
        seconds: float,
        n_features: int,
        done: int | None = None,
    ) -> dict[str, Any]:
        """An epoch's record: ``rows`` from batch ``first`` to ``done`` (all if None)."""
        batch_size = self.config.batch_size
        n_batches = batch_count(len(rows), batch_size)
        done = n_batches if done is None else done
        recon_sum, penalty_sum = self.ranks.all_sum(self.epoch_sums).tolist()  # one host sync
        trained = min(len(rows), done * batch_size)  # fewer where max_time cut the epoch short
        train_loss = recon_sum / (trained * n_features)
        if not math.isfinite(train_loss):
            raise self.diverged_error()
        record = {
            "epoch": self.position["epoch"] + 1,
            "train_loss": train_loss,
            "penalty": penalty_sum / done,
            "val_loss": None,
            "val_error": None,
            "lr": self.optimizer.param_groups[0]["lr"],
            "seconds": seconds,
            "samples_per_s": (trained - first * batch_size) / max(seconds, 1e-9),
        }
        if done < n_batches:
            record["batches"] = done
        return record

    def _validate(self, source: RowSource) -> dict[str, Any]:
        """``val_loss`` and ``val_error`` of the validation rows (None without them)."""
        found = self.objective.validation(source, self.val_idx)
        if found is None:
            return {"val_loss": None, "val_error": None}
        if not all(math.isfinite(v) for v in found):
            raise self.diverged_error()
        return {"val_loss": found[0], "val_error": found[1]}

    def _close_epoch(self, record: dict[str, Any]) -> None:
        """Keep the record and move the state to the next epoch's start."""
        self.history.records.append(record)
        self.position = {"epoch": record["epoch"], "batch": 0}
        self.epoch_sums = self._zero_sums()
        self.epoch_perm_state = self.perm_gen.get_state()

    def _train_batches(
        self,
        source: RowSource,
        order: torch.Tensor,
        steps: tuple[int, int],
        callbacks: Sequence[Callback],
        max_time: float | None,
    ) -> int:
        """Steps ``first`` .. ``n_batches - 1`` of an epoch through the rows in ``order``.

        Returns the batches done: fewer than ``n_batches`` where ``max_time`` ended it early.
        """
        (first, n_batches), batch_size = steps, self.config.batch_size
        seconds = [r["seconds"] for r in self.history.records]  # earlier epochs
        if isinstance(source, TensorRows):  # rows already on the device: so is their order,
            order = order.to(source.data.device)  # one copy an epoch, no host sync a step
        self.net.train()
        for batch in range(first, n_batches):
            end = len(order) if batch == n_batches - 1 else (batch + 1) * batch_size
            rows = order[batch * batch_size : end]
            x = to_device(source.take(self.ranks.share(rows)), self.device)
            self._step(x, len(rows), batch)
            self.position["batch"] = batch + 1
            if self._draws_noise:  # what a checkpoint saved from here draws next
                self._noise_mark = self.noise_gen.get_state()
            self._at_boundary = True
            for cb in callbacks:
                cb.on_batch_end(self, batch=batch + 1, n_batches=n_batches)
            over = past_deadline(max_time, self.elapsed(), seconds, self.world_size)
            if over and batch + 1 < n_batches:
                self.request_stop("max_time")
                return batch + 1
        return n_batches

    # -- step -------------------------------------------------------------------------------
    def _step(self, x: torch.Tensor, global_rows: int, batch: int) -> None:
        """One optimiser step; adds this rank's loss and penalty sums to ``epoch_sums``."""
        module = self.module
        if self._forward_mutates:  # batch norm updates its running statistics here
            self._at_boundary = False
        with autocast(self.device, self.config.precision):
            if isinstance(x, SparseBatch) and self.input_path == "sparse":
                loss, recon_sum, penalty = sparse_loss(self, x, global_rows)
            else:  # dense rows; a sparse batch made dense alone, never the whole matrix
                x = as_dense(x)
                clean = x if self._unscaled else module.scale_input(x)
                noisy = self.objective.inputs(clean, self.noise_gen, self._bounds)
                out = self.net(noisy)
                loss, recon_sum, penalty = self.objective(out, clean, len(x), global_rows)
        if self.device.type == "cpu" and not math.isfinite(loss.item()):  # free on the CPU
            raise self.diverged_error(step=batch + 1)
        self.optimizer.zero_grad(set_to_none=True)
        self._at_boundary = False  # the weights change from here (the sparse path's output
        loss.backward()  # layers step in the backward pass) until the position moves
        self.optimizer.step()
        module.normalize_decoder_()
        self.epoch_sums[0].add_(recon_sum.detach())  # float64 on the device: no host sync
        if penalty is not None:
            self.epoch_sums[1].add_(penalty.detach())

    # -- set-up -----------------------------------------------------------------------------
    def _setup(self, data: RowSource | torch.Tensor) -> tuple[RowSource, torch.Generator]:
        """Move model and rows to the device, seed the generators, build the optimiser."""
        cfg = self.config
        source, module = as_source(data, self.device), self.module.to(self.device)
        self.ranks.check_same_data(source, module)  # before DDP sends rank 0's weights
        seeds = self.ranks.from_main(derive_seeds(cfg.random_state, 3))
        split_gen = seeded_generator(seeds[0], torch.device("cpu"))
        self.perm_gen = seeded_generator(seeds[1], torch.device("cpu"))
        self.noise_gen = seeded_generator(seeds[2], self.device)
        module.set_generator(self.noise_gen)
        self.net = wrap_network(module, self.ranks, self.device, compile=cfg.compile)
        self.input_path = input_path(source, module, cfg, self.ranks.world_size)
        lazy = self.input_path == "sparse" and cfg.sparse_optimizer == "lazy"
        self.optimizer = make_optimizer(module, cfg, lazy=lazy)
        self.scheduler = make_scheduler(self.optimizer, cfg)
        self.objective = Objective(module, cfg, self.ranks, self.device)
        # The run's state between two steps: what a checkpoint holds (see state_dict).
        self.position = {"epoch": 0, "batch": 0}
        self.epoch_sums = self._zero_sums()  # summed loss and penalty of the epoch so far
        self.epoch_perm_state = self.perm_gen.get_state()  # draws the next epoch's order
        self.epoch_parts = 1  # the ranks this epoch's blocks are dealt to (data/shares.py)
        self.elapsed_before, self._start = 0.0, time.perf_counter()
        self._noise_mark = self.noise_gen.get_state()  # the noise state at the boundary
        mcfg = module.config
        hides = mcfg.missing and mcfg.hide_share > 0
        self._draws_noise = mcfg.noise is not None or mcfg.dropout > 0 or hides
        # Batch norm's running statistics and AuxK's dead-unit counters change in a step
        # before the weights do: an interrupt there cannot be saved consistently.
        self._forward_mutates = self.objective.counts_dead_units or any(
            isinstance(m, _BatchNorm) for m in module.modules()
        )
        self._at_boundary = True
        # (x - 0) / 1 == x exactly: skip the two element-wise passes for unscaled inputs.
        self._unscaled = bool((module.offset == 0).all() and (module.scale == 1).all())
        return source, split_gen

    def _zero_sums(self) -> torch.Tensor:
        return torch.zeros(2, device=self.device, dtype=torch.float64)

    def _notify(self, hook: str, **kwargs: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, **kwargs)

    # -- what callbacks read ----------------------------------------------------------------
    @property
    def world_size(self) -> int:
        """The number of training processes (1 without DDP)."""
        return self.ranks.world_size

    @property
    def is_main(self) -> bool:
        """True on rank 0 (or without DDP): the process that logs and saves."""
        return self.ranks.is_main

    @property
    def step(self) -> int:
        """Optimiser steps taken so far in the whole run."""
        return self.position["epoch"] * self.n_batches + self.position["batch"]

    @property
    def running_loss(self) -> float:
        """Mean training loss of this rank's rows in the epoch so far (a host sync)."""
        rows = min(len(self.train_idx), self.position["batch"] * self.config.batch_size)
        local_rows = max(1, rows // self.world_size)
        return float(self.epoch_sums[0]) / (local_rows * self.module.config.input_dim)

    @property
    def at_step_boundary(self) -> bool:
        """True where :meth:`state_dict` is the state after the last finished step."""
        return self._at_boundary

    def request_stop(self, reason: str) -> None:
        """Ask the loop to end after the current epoch."""
        self._stop_reason = self._stop_reason or reason

    def elapsed(self) -> float:
        """Seconds spent training, earlier runs of a resumed training included."""
        return self.elapsed_before + time.perf_counter() - self._start

    def diverged_error(self, step: int | None = None) -> TrainingDivergedError:
        """The error for a loss that is no longer finite in this epoch (at ``step``)."""
        where = f"epoch {self.position['epoch'] + 1}"
        where += f", step {step}" if step is not None else ""
        lr = self.optimizer.param_groups[0]["lr"]
        folder = self.config.checkpoint_dir
        hint = f"; the last good checkpoint is kept in {folder}" if folder else ""
        return TrainingDivergedError(
            f"training diverged at {where}: the loss is not finite (lr={lr:g}); lower the "
            f"learning rate, set divergence_retries, or check the input scaling{hint}"
        )
