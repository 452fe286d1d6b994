"""The training loop: batches by tensor slicing, validation, early stopping, checkpoints, DDP.

Read :meth:`Trainer.fit` top to bottom: split, then per epoch shuffle, step through batches,
validate, let the callbacks speak (early stopping, checkpoints, progress), step the schedule.

Every random draw comes from generators seeded from ``TrainConfig.random_state``; their
states are part of each checkpoint, so a resumed run repeats the uninterrupted one bit for
bit on the CPU. Under ``torchrun`` the same code runs on every rank: one global permutation,
each global batch split across ranks, gradients averaged by DDP, rank 0 alone saving and
logging.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .config import TrainConfig
from .data import RowSource, TensorRows
from .errors import ConfigError, DataError, ModelFileError, TrainingDivergedError
from .io import atomic_write, read_checkpoint, write_checkpoint
from .model import Hourglass
from .regularize import corrupt, dead_unit_code, kl_penalty, l1_penalty

__all__ = [
    "Callback",
    "Checkpointer",
    "EarlyStopping",
    "History",
    "LogProgress",
    "Trainer",
    "derive_seeds",
    "resolve_device",
]

logger = logging.getLogger("aekit")

_EVAL_ROWS = 4096  # rows per chunk when evaluating
_DEAD_AFTER_ROWS = 2048  # a top-k unit silent for this many training rows counts as dead
_CHECKPOINT_GLOB = "checkpoint-*.safetensors"


# -- small helpers ------------------------------------------------------------------------
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


# -- history ------------------------------------------------------------------------------
@dataclass
class History:
    """Per-epoch figures of a training run.

    Attributes
    ----------
    records : list of dict
        One dict per epoch: ``epoch`` (1-based), ``train_loss`` (reconstruction loss on the
        training rows), ``penalty`` (code penalty), ``val_loss`` (None without validation),
        ``lr``, ``seconds`` and ``samples_per_s``.
    best_epoch : int or None
        The epoch whose weights were kept.
    stop_reason : str
        ``"epochs"``, ``"early_stopping"`` or ``"max_time"``.
    """

    records: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    stop_reason: str = ""

    @property
    def train_loss(self) -> list[float]:
        """Training loss per epoch."""
        return [r["train_loss"] for r in self.records]

    @property
    def val_loss(self) -> list[float | None]:
        """Validation loss per epoch (None where there was no validation)."""
        return [r["val_loss"] for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "records": [dict(r) for r in self.records],
            "best_epoch": self.best_epoch,
            "stop_reason": self.stop_reason,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        """Inverse of :meth:`to_dict`."""
        return cls(list(data["records"]), data.get("best_epoch"), data.get("stop_reason", ""))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the history as JSON (atomically)."""
        atomic_write(path, json.dumps(self.to_dict(), indent=2).encode())


# -- callbacks ----------------------------------------------------------------------------
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
    """Write a resumable checkpoint every ``TrainConfig.checkpoint_every`` epochs."""

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """Save when the epoch number is a multiple of ``checkpoint_every``."""
        if record["epoch"] % trainer.config.checkpoint_every == 0:
            trainer.pending_checkpoint = True


# -- the trainer --------------------------------------------------------------------------
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
            ``True`` continues from the newest valid checkpoint in ``checkpoint_dir`` (a
            fresh start if there is none); a path names one checkpoint file.

        Raises
        ------
        TrainingDivergedError
            If the loss becomes NaN or infinite.
        KeyboardInterrupt
            Re-raised after writing a checkpoint (when ``checkpoint_dir`` is set).
        """
        cfg = self.config
        source = TensorRows(data) if isinstance(data, torch.Tensor) else data
        if isinstance(source, TensorRows):
            source.to(self.device)
        module = self.module.to(self.device)
        seeds = self._agree_on_seeds()
        split_gen = _generator(seeds[0], torch.device("cpu"))
        self.perm_gen = _generator(seeds[1], torch.device("cpu"))
        self.noise_gen = _generator(seeds[2], self.device)
        module.set_generator(self.noise_gen)
        self.train_idx, self.val_idx = _split(len(source), cfg.val_fraction, split_gen)
        if module.config.batch_norm and len(self.train_idx) < 2:
            raise DataError(
                f"batch_norm=True needs at least 2 training rows, got {len(self.train_idx)} "
                "sample(s); pass batch_norm=False for a single sample"
            )
        self.net: nn.Module = module
        if self.world_size > 1:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(module, device_ids=device_ids)
        self.optimizer = _make_optimizer(module, cfg)
        self.scheduler = _make_scheduler(self.optimizer, cfg)
        self.position = {"epoch": 0, "batch": 0}
        self.running = {"sse": 0.0, "penalty": 0.0}
        self.epoch_perm_state = self.perm_gen.get_state()
        self.elapsed_before = 0.0
        self._bounds = _feature_bounds(source, self.train_idx) if module.config.noise else None
        if resume:
            self._resume(resume, len(source))
        self._start = time.perf_counter()
        for cb in self.callbacks:
            cb.on_train_begin(self)
        try:
            self._loop(source)
        except KeyboardInterrupt:
            self._checkpoint_on_interrupt()
            raise
        for cb in self.callbacks:
            cb.on_train_end(self)
        module.eval()
        module.set_generator(None)
        return self.history

    def _loop(self, source: RowSource) -> None:
        cfg = self.config
        n_train = len(self.train_idx)
        n_batches = _batch_count(n_train, cfg.batch_size)
        while self.position["epoch"] < cfg.epochs and not self._stop_reason:
            epoch = self.position["epoch"] + 1
            if self.position["batch"] == 0:
                self.epoch_perm_state = self.perm_gen.get_state()
                self.running = {"sse": 0.0, "penalty": 0.0}
            else:  # resuming mid-epoch: replay the epoch's permutation
                self.perm_gen.set_state(self.epoch_perm_state)
            order = self.train_idx[torch.randperm(n_train, generator=self.perm_gen)]
            for cb in self.callbacks:
                cb.on_epoch_begin(self, epoch)
            tick = time.perf_counter()
            sse = torch.zeros((), device=self.device, dtype=torch.float64)
            penalty = torch.zeros((), device=self.device, dtype=torch.float64)
            self.net.train()
            first = self.position["batch"]
            for batch in range(first, n_batches):
                end = n_train if batch == n_batches - 1 else (batch + 1) * cfg.batch_size
                rows = order[batch * cfg.batch_size : end]
                local = rows.tensor_split(self.world_size)[self.rank]
                self._in_step = True
                step_sse, step_penalty = self._step(source.take(local), len(rows), epoch, batch)
                self._in_step = False
                sse += step_sse
                penalty += step_penalty
                self.position["batch"] = batch + 1
                self._partial = (sse, penalty)
                for cb in self.callbacks:
                    cb.on_batch_end(self, batch + 1, n_batches)
            seconds = time.perf_counter() - tick
            totals = self._all_sum(torch.stack([sse, penalty]))
            self.running["sse"] += float(totals[0])
            self.running["penalty"] += float(totals[1])
            train_loss = self.running["sse"] / (n_train * source.n_features)
            if not math.isfinite(train_loss):
                self._diverged(epoch, None)
            record = {
                "epoch": epoch,
                "train_loss": train_loss,
                "penalty": self.running["penalty"] / n_batches,
                "val_loss": self._validate(source),
                "lr": self.optimizer.param_groups[0]["lr"],
                "seconds": seconds,
                "samples_per_s": (n_batches - first) * cfg.batch_size / max(seconds, 1e-9),
            }
            self.history.records.append(record)
            self.position = {"epoch": epoch, "batch": 0}
            for cb in self.callbacks:
                cb.on_epoch_end(self, record)
            self._step_schedule(record)
            if cfg.max_time is not None and self.elapsed() > cfg.max_time:
                self.request_stop("max_time")
            self._agree_on_stop()
            if self.pending_checkpoint:
                self.save_checkpoint()
        self.history.stop_reason = self._stop_reason or "epochs"

    def _step(
        self, x: torch.Tensor, global_rows: int, epoch: int, batch: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimiser step; returns this rank's summed reconstruction loss and penalty."""
        module, cfg, mcfg = self.module, self.config, self.module.config
        # Losses are sums over this rank's rows divided by the global row count, times the
        # world size: DDP's gradient averaging then yields the gradient of the global mean.
        share = len(x) * self.world_size / global_rows
        with self._autocast():
            clean = module.scale_input(x)
            noisy = clean
            if mcfg.noise is not None:
                low, high = self._bounds if self._bounds is not None else (None, None)
                noisy = corrupt(
                    clean, mcfg.noise, mcfg.noise_level, self.noise_gen, low=low, high=high
                )
            out = self.net(noisy)
            recon_sum = _loss_sum(out, clean, cfg.loss)
            # The L1 penalty is a row mean (rescaled like the loss); KL is a batch statistic.
            penalty = _penalty(out.code, mcfg) * (share if mcfg.sparsity == "l1" else 1.0)
            if mcfg.sparsity == "topk" and mcfg.sparsity_weight > 0 and not mcfg.hidden:
                aux_sum = _dead_unit_loss_sum(module, out, clean)
                penalty = penalty + mcfg.sparsity_weight * aux_sum * (
                    self.world_size / global_rows / clean.shape[1]
                )
            loss = recon_sum * (self.world_size / global_rows / clean.shape[1]) + penalty
        if self.device.type == "cpu" and not torch.isfinite(loss):  # free on the CPU
            self._diverged(epoch, batch + 1)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        module.normalize_decoder_()
        return recon_sum.detach().double(), penalty.detach().double()

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
            clean = self.module.scale_input(source.take(chunk))
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
        hint = (
            f"; the last good checkpoint is kept in {self.config.checkpoint_dir}"
            if self.config.checkpoint_dir
            else ""
        )
        raise TrainingDivergedError(
            f"training diverged at {where}: the loss is not finite (lr={self.config.lr:g}); "
            f"lower the learning rate or check the input scaling{hint}"
        )

    # -- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this run exactly."""
        return {
            "format": "aekit-checkpoint",
            "model_config": self.module.config.to_dict(),
            "train_config": self.config.to_dict(),
            "module": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "callbacks": {type(cb).__name__: cb.state_dict() for cb in self.callbacks},
            "position": dict(self.position),
            "running": dict(self.running),
            "epoch_perm_state": self.epoch_perm_state,
            "perm_state": self.perm_gen.get_state(),
            "noise_state": self.noise_gen.get_state(),
            "history": self.history.to_dict(),
            "elapsed": self.elapsed(),
            "n_rows": len(self.train_idx) + len(self.val_idx),
        }

    def save_checkpoint(self) -> Path | None:
        """Write a checkpoint to ``checkpoint_dir`` (rank 0) and prune old ones."""
        self.pending_checkpoint = False
        if self.config.checkpoint_dir is None or not self.is_main:
            return None
        folder = Path(self.config.checkpoint_dir)
        pos = self.position
        path = folder / f"checkpoint-e{pos['epoch']:06d}-b{pos['batch']:06d}.safetensors"
        write_checkpoint(path, self.state_dict())
        for old in sorted(folder.glob(_CHECKPOINT_GLOB))[: -self.config.keep_checkpoints]:
            old.unlink(missing_ok=True)
        logger.debug("checkpoint written: %s", path)
        return path

    def _checkpoint_on_interrupt(self) -> None:
        if self.config.checkpoint_dir is None:
            return
        if getattr(self, "_in_step", False):
            logger.warning(
                "interrupted during an optimiser step: resume continues from the last "
                "checkpoint in %s",
                self.config.checkpoint_dir,
            )
            return
        if self.position["batch"] > 0 and hasattr(self, "_partial"):
            sse, penalty = self._partial
            self.running = {
                "sse": self.running["sse"] + float(self._all_sum(sse)),
                "penalty": self.running["penalty"] + float(self._all_sum(penalty)),
            }
        path = self.save_checkpoint()
        if path is not None:
            logger.warning("interrupted: checkpoint saved to %s; resume with resume=True", path)

    def _resume(self, resume: bool | str | os.PathLike[str], n_rows: int) -> None:
        path = latest_checkpoint(self.config.checkpoint_dir) if resume is True else Path(resume)
        if path is None:
            logger.info("no checkpoint to resume from; starting afresh")
            return
        state = read_checkpoint(path)
        if state.get("model_config") != self.module.config.to_dict():
            raise ModelFileError(f"{path} was written for a different model configuration")
        if state.get("n_rows") != n_rows:
            raise ModelFileError(
                f"{path} was written for {state.get('n_rows')} rows, the data has {n_rows}"
            )
        self.module.load_state_dict(state["module"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        for cb in self.callbacks:
            if type(cb).__name__ in state["callbacks"]:
                cb.load_state_dict(state["callbacks"][type(cb).__name__])
        self.position = {k: int(v) for k, v in state["position"].items()}
        self.running = {k: float(v) for k, v in state["running"].items()}
        self.epoch_perm_state = state["epoch_perm_state"]
        self.perm_gen.set_state(state["perm_state"])
        self.noise_gen.set_state(state["noise_state"])
        self.history = History.from_dict(state["history"])
        self.elapsed_before = float(state["elapsed"])
        logger.info(
            "resumed from %s (epoch %d, batch %d)",
            path,
            self.position["epoch"],
            self.position["batch"],
        )


def latest_checkpoint(folder: str | os.PathLike[str] | None) -> Path | None:
    """The newest readable checkpoint in ``folder``; corrupt ones are skipped with a warning."""
    if folder is None or not Path(folder).is_dir():
        return None
    for path in sorted(Path(folder).glob(_CHECKPOINT_GLOB), reverse=True):
        try:
            read_checkpoint(path)
        except ModelFileError as exc:
            logger.warning("skipping unreadable checkpoint %s: %s", path, exc)
            continue
        return path
    return None


# -- pieces of a step ---------------------------------------------------------------------
def _split(n: int, fraction: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted (train, validation) row indices; no validation when a side would be empty."""
    n_val = int(n * fraction)
    if n_val < 1 or n - n_val < 1:
        return torch.arange(n), torch.arange(0)
    perm = torch.randperm(n, generator=gen)
    return perm[n_val:].sort().values, perm[:n_val].sort().values


def _batch_count(n_rows: int, batch_size: int) -> int:
    """Batches per epoch; a last batch of one row joins the one before (batch norm needs 2)."""
    n_batches = max(1, math.ceil(n_rows / batch_size))
    return n_batches - 1 if n_batches > 1 and n_rows % batch_size == 1 else n_batches


def _feature_bounds(source: RowSource, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature min and max of the scaled training rows (for salt-and-pepper noise)."""
    lows, highs = [], []
    for chunk in rows.split(_EVAL_ROWS * 4):
        x = source.take(chunk)
        lows.append(x.min(dim=0).values)
        highs.append(x.max(dim=0).values)
    return torch.stack(lows).min(dim=0).values, torch.stack(highs).max(dim=0).values


def _loss_sum(out: Any, target: torch.Tensor, loss: str) -> torch.Tensor:
    if loss == "bce":
        return F.binary_cross_entropy_with_logits(out.logits.float(), target, reduction="sum")
    return _squared_error_sum(out.recon, target)


def _squared_error_sum(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (recon.float() - target).pow(2).sum()


def _penalty(code: torch.Tensor, mcfg: Any) -> torch.Tensor:
    if mcfg.sparsity == "l1":
        return mcfg.sparsity_weight * l1_penalty(code.float())
    if mcfg.sparsity == "kl":
        return mcfg.sparsity_weight * kl_penalty(code.float(), mcfg.sparsity_target)
    return torch.zeros((), device=code.device)


def _dead_unit_loss_sum(module: Hourglass, out: Any, clean: torch.Tensor) -> torch.Tensor:
    """AuxK: squared error left after adding dead units' best guesses to the reconstruction.

    For a top-k code with a linear decoder (``hidden=()``, the sparse-dictionary setting of
    Gao et al.). Units that have not fired for ``_DEAD_AFTER_ROWS`` training rows are dead;
    each row's largest pre-activations among them form an auxiliary code whose decoded
    contribution ``W z`` is added to the (fixed) reconstruction. Only dead units' weights get
    gradient from this.
    """
    config = module.config
    assert config.sparsity_k is not None
    with torch.no_grad():
        fired = (out.code != 0).any(dim=0)
        counter = module.rows_since_fired
        counter.add_(len(clean)).masked_fill_(fired, 0)
        dead = counter > _DEAD_AFTER_ROWS
    k_aux = min(config.code_dim, max(2 * config.sparsity_k, config.input_dim // 2))
    aux_code = dead_unit_code(out.pre, dead, k_aux)
    delta = F.linear(aux_code, module.code_layer.weight)
    aux_recon = module.output_activation(out.logits.detach() + delta)
    return _squared_error_sum(aux_recon, clean)


def _make_optimizer(module: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    kind = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return kind(module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def _make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> Any:
    if cfg.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    if cfg.lr_schedule == "plateau":
        patience = max(1, (cfg.patience or 10) // 3)
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=patience)
    return None
