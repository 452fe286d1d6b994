"""The training loop: batches by tensor slicing, validation, early stopping, checkpoints, DDP.

Read :meth:`Trainer.fit` top to bottom: split, then per epoch shuffle, step through batches,
validate, let the callbacks speak (early stopping, checkpoints, progress), step the schedule.

Every random draw comes from generators seeded from ``TrainConfig.random_state``; their
states are part of each checkpoint, so a resumed run repeats the uninterrupted one bit for
bit on the CPU. Under ``torchrun`` the same code runs on every rank: one global permutation,
each global batch split across ranks, gradients averaged by DDP, rank 0 alone saving and
logging.

A checkpoint is the state at a step boundary. Ctrl-C (``KeyboardInterrupt``; aekit installs
no signal handler) is caught, the state of the last finished step is saved, and the
interrupt re-raised; only an interrupt that lands inside the optimiser update (or a batch-norm
forward pass), where the weights are half-way between two steps, leaves the last periodic
checkpoint to resume from. A non-finite loss raises :class:`TrainingDivergedError` without
saving, so the last checkpoint on disk is always a finite one.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..config import TrainConfig
from ..data.sources import RowSource, TensorRows, shuffled
from ..errors import ConfigError, DataError, ModelFileError, TrainingDivergedError
from ..model import Hourglass
from ..modelfile import check_tensors
from ..regularize import corrupt, kl_penalty, l1_penalty
from .callbacks import Callback, Checkpointer, EarlyStopping, LogProgress
from .checkpoint import (
    CHECKPOINT_FORMAT,
    check_like,
    check_optimizer_state,
    check_state,
    checkpoint_path,
    clone_state,
    find_checkpoint,
    prune_checkpoints,
    read_checkpoint,
    write_checkpoint,
)
from .history import History
from .objective import _dead_unit_loss_sum, _loss_sum, _uses_dead_unit_loss
from .optim import _make_optimizer, _make_scheduler

__all__ = ["Trainer", "batches_per_epoch", "derive_seeds", "resolve_device"]


logger = logging.getLogger("aekit")


_EVAL_ROWS = 4096  # rows per chunk when evaluating


# Training-config fields a resumed run must share with the checkpoint to repeat the run.
_RESUME_KEYS = ("batch_size", "val_fraction", "random_state", "optimizer", "lr_schedule", "loss")


_DEAD_AFTER_ROWS = 2048  # a top-k unit silent for this many training rows counts as dead


def resolve_device(name: str) -> torch.device:
    """Turn ``"auto"`` into CUDA, then Apple MPS, then CPU; check any other name."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"device={name!r} is not a torch device ({exc})") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} asked for, but CUDA is not available here")
    if device.type == "cuda" and device.index is None:  # tensors report cuda:N, never cuda
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def derive_seeds(random_state: int | None, count: int) -> list[int]:
    """Return ``count`` independent 63-bit seeds from one seed (fresh entropy if None)."""
    words = np.random.SeedSequence(random_state).generate_state(2 * count, dtype=np.uint32)
    return [int(words[2 * i]) << 31 ^ int(words[2 * i + 1]) for i in range(count)]


def _generator(seed: int, device: torch.device) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def _distributed() -> tuple[int, int]:
    """(rank, world size) of the running process group, or (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class Trainer:
    """Fit an :class:`~aekit.model.Hourglass` to rows.

    Parameters
    ----------
    module : Hourglass
        The network, already built (and its input scaling set).
    config : TrainConfig
        How to train.
    callbacks : sequence of Callback, optional
        Extra hooks (progress bars, loggers...). Early stopping, checkpoints and epoch logging
        are added from ``config``.

    Attributes
    ----------
    history : History
        Filled by :meth:`fit`.
    device : torch.device
        Where training runs.
    """

    def __init__(
        self, module: Hourglass, config: TrainConfig, callbacks: Sequence[Callback] = ()
    ) -> None:
        self.module = module
        self.config = config
        self.device = resolve_device(config.device)
        self.rank, self.world_size = _distributed()
        self.early_stopping = EarlyStopping(config.patience, config.min_delta)
        self.callbacks: list[Callback] = [self.early_stopping, *callbacks]
        if config.verbose:
            self.callbacks.append(LogProgress())
        if config.checkpoint_dir is not None:
            self.callbacks.append(Checkpointer())
        self.history = History()
        self.pending_checkpoint = False
        self._stop_reason = ""
        if config.loss == "bce" and module.config.output != "sigmoid":
            raise ConfigError("loss='bce' needs output='sigmoid' (targets in [0, 1])")

    @property
    def is_main(self) -> bool:
        """True on rank 0 (or without DDP): the process that logs and saves."""
        return self.rank == 0

    def request_stop(self, reason: str) -> None:
        """Ask the loop to end after the current epoch."""
        self._stop_reason = self._stop_reason or reason

    # -- fit ------------------------------------------------------------------------------
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
            fresh start if there is none); a path names one checkpoint file.

        Raises
        ------
        TrainingDivergedError
            If the loss becomes NaN or infinite (after ``divergence_retries`` retries).
        ModelFileError
            If the checkpoint to resume from is unusable or belongs to another run.
        KeyboardInterrupt
            Re-raised after writing a checkpoint (when ``checkpoint_dir`` is set).
        """
        cfg = self.config
        if resume is True and cfg.checkpoint_dir is None:
            raise ConfigError("resume=True needs checkpoint_dir (where the checkpoints are)")
        source, split_gen = self._setup(data)
        self.train_idx, self.val_idx = _split(len(source), cfg.val_fraction, split_gen)
        if self.module.config.batch_norm and len(self.train_idx) < 2:
            raise DataError(
                f"batch_norm=True needs at least 2 training rows, got {len(self.train_idx)} "
                "sample(s); pass batch_norm=False for a single sample"
            )
        self.n_batches = _batch_count(len(self.train_idx), cfg.batch_size)
        self._bounds = self._noise_bounds(source, self.train_idx)
        if resume:
            self._resume(resume, len(source))
        self._start = time.perf_counter()
        for cb in self.callbacks:
            cb.on_train_begin(self)
        try:
            self._loop_with_retries(source)
        except KeyboardInterrupt:
            self._checkpoint_on_interrupt()
            raise
        for cb in self.callbacks:
            cb.on_train_end(self)
        self.module.eval()
        self.module.set_generator(None)
        return self.history

    @property
    def step(self) -> int:
        """Optimiser steps taken so far in the whole run."""
        return self.position["epoch"] * self.n_batches + self.position["batch"]

    def partial_fit(self, data: RowSource | torch.Tensor) -> dict[str, Any]:
        """One more pass over ``data``, continuing the optimiser: incremental training.

        The first call sets up the optimiser and the generators; later calls keep them, so
        a sequence of calls trains like the epochs of one run, each on new rows (as
        ``IncrementalPCA.partial_fit``). No validation, early stopping, schedule or
        checkpoint is involved.

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
        else:
            source = self._as_source(data)
            self.module.set_generator(self.noise_gen)
        rows = torch.arange(len(source))
        self._bounds = self._noise_bounds(source, rows)
        epoch = self.position["epoch"] + 1
        n_batches = _batch_count(len(rows), self.config.batch_size)
        tick = time.perf_counter()
        self.epoch_sums = self._zero_sums()
        self._train_batches(source, self._shuffled(source, rows), epoch, 0, n_batches)
        sse, penalty = self._all_sum(self.epoch_sums).tolist()
        record = self._record(epoch, sse / (len(rows) * source.n_features), penalty / n_batches)
        record["seconds"] = time.perf_counter() - tick
        record["samples_per_s"] = len(rows) / max(record["seconds"], 1e-9)
        if not math.isfinite(record["train_loss"]):
            self._diverged(epoch, None)
        self.history.records.append(record)
        self.position = {"epoch": epoch, "batch": 0}
        self.epoch_sums = self._zero_sums()
        self.module.eval()
        self.module.set_generator(None)
        return record

    def _setup(self, data: RowSource | torch.Tensor) -> tuple[RowSource, torch.Generator]:
        """Move model and rows to the device, seed the generators, build the optimiser."""
        cfg = self.config
        source = self._as_source(data)
        module = self.module.to(self.device)
        seeds = self._agree_on_seeds()
        split_gen = _generator(seeds[0], torch.device("cpu"))
        self.perm_gen = _generator(seeds[1], torch.device("cpu"))
        self.noise_gen = _generator(seeds[2], self.device)
        module.set_generator(self.noise_gen)
        self.net: nn.Module = module
        if self.world_size > 1:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(module, device_ids=device_ids)
        if cfg.compile:  # the compiled wrapper shares the module's parameters
            self.net = torch.compile(self.net)
        self.optimizer = _make_optimizer(module, cfg)
        self.scheduler = _make_scheduler(self.optimizer, cfg)
        # The run's state between two steps: what a checkpoint holds (see state_dict).
        self.position = {"epoch": 0, "batch": 0}  # epochs done, batches done in the next
        self.epoch_sums = self._zero_sums()  # summed loss and penalty of the epoch so far
        self.epoch_perm_state = self.perm_gen.get_state()  # draws the next epoch's order
        self.elapsed_before = 0.0
        self._noise_mark = self.noise_gen.get_state()
        self._draws_noise = module.config.noise is not None or module.config.dropout > 0
        # Batch norm's running statistics and AuxK's dead-unit counters change in a step
        # before the weights do: an interrupt there cannot be saved consistently.
        self._forward_mutates = any(isinstance(m, _BatchNorm) for m in module.modules()) or (
            _uses_dead_unit_loss(module.config)
        )
        mcfg = module.config
        self._penalised = mcfg.sparsity in ("l1", "kl") or _uses_dead_unit_loss(mcfg)
        self._consistent = True  # False while the state is between two steps' values
        self._epoch_start: dict[str, Any] | None = None  # where a divergence retry restarts
        # (x - 0) / 1 == x exactly: skip the two element-wise passes for unscaled inputs.
        self._unscaled = bool((module.offset == 0).all() and (module.scale == 1).all())
        return source, split_gen

    def _as_source(self, data: RowSource | torch.Tensor) -> RowSource:
        """Wrap a tensor as rows; in-memory rows move to the training device once."""
        source = TensorRows(data) if isinstance(data, torch.Tensor) else data
        if isinstance(source, TensorRows):
            source.to(self.device)
        return source

    def _noise_bounds(
        self, source: RowSource, rows: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Per-feature min and max of the scaled rows, for salt-and-pepper noise (else None)."""
        if self.module.config.noise != "salt_and_pepper":
            return None
        return _feature_bounds(source, rows, self.module, self.device)

    def _shuffled(self, source: RowSource, rows: torch.Tensor) -> torch.Tensor:
        """One epoch's order of ``rows``, drawn from the trainer's permutation generator."""
        return shuffled(source, rows, self.perm_gen)

    def _record(self, epoch: int, train_loss: float, penalty: float) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "train_loss": train_loss,
            "penalty": penalty,
            "val_loss": None,
            "lr": self.optimizer.param_groups[0]["lr"],
            "seconds": 0.0,
            "samples_per_s": 0.0,
        }

    def _loop_with_retries(self, source: RowSource) -> None:
        """Run :meth:`_loop`; on divergence restart the epoch at a lower rate if allowed."""
        retries = self.config.divergence_retries
        while True:
            try:
                self._loop(source, keep_epoch_start=retries > 0)
                return
            except TrainingDivergedError as exc:
                if not retries:
                    raise
                retries -= 1
                assert self._epoch_start is not None
                self._consistent = False
                self._load_state(self._epoch_start, "the epoch's start")
                self._scale_lr(self.config.divergence_lr_factor)
                self._consistent = True
                logger.warning(
                    "%s; retrying from the start of epoch %d with lr=%g (%d retries left)",
                    str(exc).split(":")[0],
                    self.position["epoch"] + 1,
                    self.optimizer.param_groups[0]["lr"],
                    retries,
                )

    def _loop(self, source: RowSource, *, keep_epoch_start: bool = False) -> None:
        cfg = self.config
        n_train, n_batches = len(self.train_idx), self.n_batches
        while self.position["epoch"] < cfg.epochs and not self._stop_reason:
            if keep_epoch_start:  # what a divergence retry goes back to
                self._epoch_start = clone_state(self.state_dict())
            epoch = self.position["epoch"] + 1
            self.perm_gen.set_state(self.epoch_perm_state)
            order = self._shuffled(source, self.train_idx)
            for cb in self.callbacks:
                cb.on_epoch_begin(self, epoch)
            tick = time.perf_counter()
            first = self.position["batch"]
            self._train_batches(source, order, epoch, first, n_batches)
            seconds = time.perf_counter() - tick
            recon_sum, penalty_sum = self._all_sum(self.epoch_sums).tolist()  # one host sync
            train_loss = recon_sum / (n_train * source.n_features)
            if not math.isfinite(train_loss):
                self._diverged(epoch, None)
            record = self._record(epoch, train_loss, penalty_sum / n_batches)
            record["val_loss"] = self._validate(source)
            record["seconds"] = seconds
            record["samples_per_s"] = (n_batches - first) * cfg.batch_size / max(seconds, 1e-9)
            # From here to the checkpoint the state moves to the next epoch's start; an
            # interrupt in between cannot be saved consistently.
            self._consistent = False
            self.history.records.append(record)
            self.position = {"epoch": epoch, "batch": 0}
            self.epoch_sums = self._zero_sums()
            self.epoch_perm_state = self.perm_gen.get_state()
            for cb in self.callbacks:
                cb.on_epoch_end(self, record)
            self._step_schedule(record)
            if cfg.max_time is not None and self.elapsed() > cfg.max_time:
                self.request_stop("max_time")
            self._agree_on_stop()
            self._consistent = True
            if self.pending_checkpoint:
                self.save_checkpoint()
        self.history.stop_reason = self._stop_reason or "epochs"

    def _zero_sums(self) -> torch.Tensor:
        return torch.zeros(2, device=self.device, dtype=torch.float64)

    def _mark_consistent(self) -> None:
        """Note that the state is that of a step boundary again (what a checkpoint holds)."""
        if self._draws_noise:
            self._noise_mark = self.noise_gen.get_state()
        self._consistent = True

    def _train_batches(
        self, source: RowSource, order: torch.Tensor, epoch: int, first: int, n_batches: int
    ) -> None:
        """Steps ``first`` .. ``n_batches - 1`` of an epoch through the rows in ``order``."""
        batch_size = self.config.batch_size
        if isinstance(source, TensorRows):  # rows already on the device: so is their order,
            order = order.to(source.data.device)  # one copy an epoch, no host sync a step
        self.net.train()
        for batch in range(first, n_batches):
            end = len(order) if batch == n_batches - 1 else (batch + 1) * batch_size
            rows = order[batch * batch_size : end]
            local = rows.tensor_split(self.world_size)[self.rank] if self.world_size > 1 else rows
            x = source.take(local)
            if x.device != self.device:  # streamed rows: from the CPU, pinned for a GPU
                if self.device.type == "cuda":  # so the copy overlaps the previous step
                    x = x.pin_memory()
                x = x.to(self.device, non_blocking=True)
            self._step(x, len(rows), epoch, batch)
            self.position["batch"] = batch + 1
            self._mark_consistent()
            for cb in self.callbacks:
                cb.on_batch_end(self, batch + 1, n_batches)

    def _step(self, x: torch.Tensor, global_rows: int, epoch: int, batch: int) -> None:
        """One optimiser step; adds this rank's loss and penalty sums to ``epoch_sums``.

        Kept lean: on a GPU, small models are bound by the Python and kernel launches per
        step, so a plain autoencoder launches nothing for a penalty it does not have.
        """
        module, cfg, mcfg = self.module, self.config, self.module.config
        if self._forward_mutates:  # batch norm updates its running statistics here
            self._consistent = False
        with self._autocast():
            clean = x if self._unscaled else module.scale_input(x)
            noisy = clean
            if mcfg.noise is not None:
                low, high = self._bounds if self._bounds is not None else (None, None)
                noisy = corrupt(
                    clean, mcfg.noise, mcfg.noise_level, self.noise_gen, low=low, high=high
                )
            out = self.net(noisy)
            recon_sum = _loss_sum(out, clean, cfg.loss)
            # Losses are sums over this rank's rows divided by the global row count, times
            # the world size: DDP's gradient averaging then yields the global mean's gradient.
            loss = recon_sum * (self.world_size / global_rows / clean.shape[1])
            penalty = self._penalty(out, clean, len(x), global_rows) if self._penalised else None
            if penalty is not None:
                loss = loss + penalty
        if self.device.type == "cpu" and not math.isfinite(loss.item()):  # free on the CPU
            self._diverged(epoch, batch + 1)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self._consistent = False  # the weights change from here until the position moves
        self.optimizer.step()
        module.normalize_decoder_()
        self.epoch_sums[0].add_(recon_sum.detach())  # float64 on the device: no host sync
        if penalty is not None:
            self.epoch_sums[1].add_(penalty.detach())

    def _penalty(
        self, out: Any, clean: torch.Tensor, local_rows: int, global_rows: int
    ) -> torch.Tensor:
        """The sparsity penalty (AuxK's dead-unit loss for top-k), scaled like the loss."""
        mcfg = self.module.config
        if mcfg.sparsity == "l1":  # a row mean, rescaled like the loss
            share = local_rows * self.world_size / global_rows
            return mcfg.sparsity_weight * l1_penalty(out.code.float()) * share
        if mcfg.sparsity == "kl":  # a batch statistic
            return mcfg.sparsity_weight * kl_penalty(out.code.float(), mcfg.sparsity_target)
        dead = self._dead_units(out.code, global_rows)  # top-k with AuxK
        aux_sum = _dead_unit_loss_sum(self.module, out, clean, dead)
        return mcfg.sparsity_weight * aux_sum * (self.world_size / global_rows / clean.shape[1])

    @torch.no_grad()
    def _dead_units(self, code: torch.Tensor, global_rows: int) -> torch.Tensor:
        """Count this step's rows into each top-k unit's silence; return the dead units.

        Under DDP a unit fired if it fired on any rank, so every rank keeps the same counters.
        """
        fired = self._all_sum((code != 0).any(dim=0).float()) > 0
        counter = self.module.rows_since_fired
        counter.add_(global_rows).masked_fill_(fired, 0)
        return counter > _DEAD_AFTER_ROWS

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.config.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @torch.no_grad()
    def _validate(self, source: RowSource) -> float | None:
        if len(self.val_idx) == 0:
            return None
        self.module.eval()
        local = self.val_idx.tensor_split(self.world_size)[self.rank]
        total = torch.zeros((), device=self.device, dtype=torch.float64)
        for chunk in local.split(_EVAL_ROWS):
            clean = self.module.scale_input(source.take(chunk).to(self.device))
            with self._autocast():
                out = self.module(clean)
            total += _loss_sum(out, clean, self.config.loss).double()
        value = float(self._all_sum(total)) / (len(self.val_idx) * source.n_features)
        if not math.isfinite(value):
            self._diverged(self.position["epoch"] + 1, None)
        return value

    def _step_schedule(self, record: dict[str, Any]) -> None:
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            monitored = (
                record["val_loss"] if record["val_loss"] is not None else record["train_loss"]
            )
            self.scheduler.step(monitored)
        elif self.scheduler is not None:
            with warnings.catch_warnings():  # a run resumed at an epoch's end steps no optimiser
                warnings.filterwarnings("ignore", "Detected call of `lr_scheduler")
                self.scheduler.step()

    def elapsed(self) -> float:
        """Seconds spent training, earlier runs of a resumed training included."""
        return self.elapsed_before + time.perf_counter() - self._start

    # -- distributed agreement ------------------------------------------------------------
    def _all_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.world_size > 1:
            tensor = tensor.clone()
            dist.all_reduce(tensor)
        return tensor

    def _agree_on_seeds(self) -> list[int]:
        seeds = derive_seeds(self.config.random_state, 3)
        if self.world_size > 1:
            holder = [seeds]
            dist.broadcast_object_list(holder, src=0)
            seeds = holder[0]
        return seeds

    def _agree_on_stop(self) -> None:
        """Under DDP, stop on every rank when any rank asks (e.g. its clock ran out)."""
        if self.world_size == 1:
            return
        flag = torch.tensor([1.0 if self._stop_reason else 0.0], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item() and not self._stop_reason:
            self._stop_reason = "max_time"

    # -- divergence -----------------------------------------------------------------------
    def _diverged(self, epoch: int, step: int | None) -> None:
        where = f"epoch {epoch}" + (f", step {step}" if step is not None else "")
        lr = self.optimizer.param_groups[0]["lr"]
        hint = (
            f"; the last good checkpoint is kept in {self.config.checkpoint_dir}"
            if self.config.checkpoint_dir
            else ""
        )
        raise TrainingDivergedError(
            f"training diverged at {where}: the loss is not finite (lr={lr:g}); lower the "
            f"learning rate, set divergence_retries, or check the input scaling{hint}"
        )

    def _scale_lr(self, factor: float) -> None:
        """Multiply the learning rate, and the schedule's base rates, by ``factor``."""
        for group in self.optimizer.param_groups:
            group["lr"] *= factor
            if "initial_lr" in group:
                group["initial_lr"] *= factor
        if self.scheduler is not None:
            for name in ("base_lrs", "_last_lr"):
                if hasattr(self.scheduler, name):
                    values = getattr(self.scheduler, name)
                    setattr(self.scheduler, name, [v * factor for v in values])

    # -- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this run exactly, as of the last finished step.

        Under DDP ``epoch_sums`` is this rank's share; :meth:`save_checkpoint` stores the
        sum over ranks.
        """
        return {
            "format": CHECKPOINT_FORMAT,
            "model_config": self.module.config.to_dict(),
            "train_config": self.config.to_dict(),
            "module": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "callbacks": {type(cb).__name__: cb.state_dict() for cb in self.callbacks},
            "position": dict(self.position),
            "epoch_sums": self.epoch_sums,
            "epoch_perm_state": self.epoch_perm_state,
            "noise_state": self._noise_mark,
            "history": self.history.to_dict(),
            "stop_reason": self._stop_reason,
            "elapsed": self.elapsed(),
            "n_rows": len(self.train_idx) + len(self.val_idx),
        }

    def save_checkpoint(self) -> Path | None:
        """Write a checkpoint to ``checkpoint_dir`` (rank 0) and prune old ones.

        Called on every rank under DDP (the epoch's loss sums are added up across ranks).

        Raises
        ------
        TrainingDivergedError
            Instead of writing weights that are no longer finite.
        """
        self.pending_checkpoint = False
        if self.config.checkpoint_dir is None:
            return None
        sums = self._all_sum(self.epoch_sums)
        finite = all(bool(torch.isfinite(p).all()) for p in self.module.parameters())
        if not (finite and bool(torch.isfinite(sums).all())):  # same verdict on every rank
            self._diverged(self.position["epoch"] + 1, None)
        if not self.is_main:
            return None
        state = {**self.state_dict(), "epoch_sums": sums}
        path = checkpoint_path(self.config.checkpoint_dir, **self.position)
        write_checkpoint(path, state)
        prune_checkpoints(self.config.checkpoint_dir, self.config.keep_checkpoints)
        logger.debug("checkpoint written: %s", path)
        return path

    def _checkpoint_on_interrupt(self) -> None:
        folder = self.config.checkpoint_dir
        if folder is None:
            return
        if not self._consistent or self.world_size > 1:
            why = "inside an optimiser update" if self.world_size == 1 else "under DDP"
            logger.warning(
                "interrupted %s, where no consistent state can be saved; resume=True continues "
                "from the last checkpoint in %s",
                why,
                folder,
            )
            return
        try:
            path = self.save_checkpoint()
        except TrainingDivergedError as exc:
            logger.warning("interrupted, but not saved: %s", exc)
            return
        logger.warning(
            "interrupted at epoch %d, batch %d: checkpoint saved to %s; continue with "
            "resume=True (aekit fit --resume)",
            self.position["epoch"] + 1,
            self.position["batch"],
            path,
        )

    def _resume(self, resume: bool | str | os.PathLike[str], n_rows: int) -> None:
        if resume is True:
            found = find_checkpoint(self.config.checkpoint_dir)
            if found is None:
                logger.info("no checkpoint to resume from; starting afresh")
                return
            path, state = found
        else:
            path = Path(resume)
            state = check_state(read_checkpoint(path), path)
        if state["model_config"] != self.module.config.to_dict():
            raise ModelFileError(f"{path} was written for a different model configuration")
        if state["n_rows"] != n_rows:
            raise ModelFileError(f"{path} was written for {state['n_rows']} rows, not {n_rows}")
        ours = self.config.to_dict()
        for key in _RESUME_KEYS:
            if state["train_config"].get(key) != ours[key]:
                raise ModelFileError(
                    f"{path} was written with {key}={state['train_config'].get(key)!r}, "
                    f"this run has {key}={ours[key]!r}"
                )
        self._load_state(state, path)
        logger.info("resumed from %s (epoch %d, batch %d)", path, *self.position.values())

    def _load_state(self, state: dict[str, Any], source: str | os.PathLike[str]) -> None:
        """Restore :meth:`state_dict` output; anything that does not fit is a ModelFileError."""
        check_tensors(self.module.state_dict(), state["module"], source)
        best = state["callbacks"].get("EarlyStopping", {}).get("best_state")
        if best is not None:
            check_tensors(self.module.state_dict(), best, f"{source} (best weights)")
        if state["position"]["batch"] > self.n_batches:
            raise ModelFileError(f"{source}: position {state['position']} is past the epoch")
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        fresh = _make_optimizer(self.module, self.config).state_dict()
        fresh["param_groups"] = self.optimizer.state_dict()["param_groups"]
        check_optimizer_state(fresh, state["optimizer"], params, f"{source} optimizer")
        if self.scheduler is not None:
            check_like(self.scheduler.state_dict(), state["scheduler"], f"{source} scheduler")
        try:
            self.module.load_state_dict(state["module"])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scheduler is not None and state["scheduler"] is not None:
                self.scheduler.load_state_dict(state["scheduler"])
            for cb in self.callbacks:
                if type(cb).__name__ in state["callbacks"]:
                    cb.load_state_dict(state["callbacks"][type(cb).__name__])
            self.epoch_perm_state = state["epoch_perm_state"].clone()
            self.perm_gen.set_state(self.epoch_perm_state)
            self.noise_gen.set_state(state["noise_state"])
            sums = state["epoch_sums"].to(self.device, torch.float64).reshape(2)
        except (KeyError, ValueError, TypeError, IndexError, RuntimeError) as exc:
            raise ModelFileError(f"{source} does not fit this training run ({exc})") from exc
        self._noise_mark = self.noise_gen.get_state()
        self.position = dict(state["position"])
        # Under DDP rank 0 carries the sums so far, so that adding up the ranks counts them once.
        self.epoch_sums = sums if self.is_main else self._zero_sums()
        self.history = History.from_dict(clone_state(state["history"]))
        self._stop_reason = state["stop_reason"]
        self.elapsed_before = float(state["elapsed"])


def _n_val(n: int, fraction: float) -> int:
    """Rows held out for validation: none when a side would be empty."""
    n_val = int(n * fraction)
    return n_val if 1 <= n_val < n else 0


def _split(n: int, fraction: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted (train, validation) row indices; no validation when a side would be empty."""
    n_val = _n_val(n, fraction)
    if n_val == 0:
        return torch.arange(n), torch.arange(0)
    perm = torch.randperm(n, generator=gen)
    return perm[n_val:].sort().values, perm[:n_val].sort().values


def batches_per_epoch(n_rows: int, batch_size: int, val_fraction: float) -> int:
    """Optimiser steps in one epoch of :meth:`Trainer.fit` on ``n_rows`` rows (all ranks)."""
    return _batch_count(n_rows - _n_val(n_rows, val_fraction), batch_size)


def _batch_count(n_rows: int, batch_size: int) -> int:
    """Batches per epoch; a last batch of one row joins the one before (batch norm needs 2)."""
    n_batches = max(1, math.ceil(n_rows / batch_size))
    return n_batches - 1 if n_batches > 1 and n_rows % batch_size == 1 else n_batches


def _feature_bounds(
    source: RowSource, rows: torch.Tensor, module: Hourglass, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature min and max of the *scaled* rows (salt-and-pepper corrupts scaled input)."""
    lows, highs = [], []
    with torch.no_grad():
        for chunk in rows.split(_EVAL_ROWS * 4):
            x = module.scale_input(source.take(chunk).to(device))
            lows.append(x.min(dim=0).values)
            highs.append(x.max(dim=0).values)
    return torch.stack(lows).min(dim=0).values, torch.stack(highs).max(dim=0).values
