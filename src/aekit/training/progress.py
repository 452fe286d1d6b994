"""Training callbacks for a terminal: a live progress bar, and Ctrl-C at a step boundary.

:class:`ProgressBar` draws a tqdm bar on a terminal (epoch, rows done, running training
loss, last validation loss, samples/s and the time left) and writes one plain line per epoch
when the output is not a terminal or tqdm is missing. :class:`StopOnSignal` turns the first
Ctrl-C or SIGTERM into a ``KeyboardInterrupt`` raised at a batch end (under DDP, the same
one on every rank), so the interrupt checkpoint is taken between two optimiser steps; in
one process a second Ctrl-C interrupts at once. The library never installs a signal handler
itself; the CLI does, around ``fit``.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import IO, Any

from .callbacks import Callback
from .protocol import TrainerLike

__all__ = ["ProgressBar", "StopOnSignal", "format_seconds"]


def format_seconds(seconds: float) -> str:
    """``75`` → ``"1m15s"``, ``3725`` → ``"1h02m"``, ``9`` → ``"9s"``, NaN → ``"?"``."""
    if not math.isfinite(seconds):
        return "?"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class ProgressBar(Callback):
    """Show training progress on ``stream`` (standard error by default).

    Parameters
    ----------
    stream : text stream, optional
        Where to write (default ``sys.stderr``).
    bar : bool or None, default=None
        True draws a tqdm bar, False writes one line per epoch, None picks the bar when
        ``stream`` is a terminal and tqdm is installed.
    """

    def __init__(self, stream: IO[str] | None = None, *, bar: bool | None = None) -> None:
        self.stream = stream
        self.bar = bar
        self._tqdm: Any = None
        self._last_val: float | None = None

    def _out(self) -> IO[str]:
        return self.stream if self.stream is not None else sys.stderr

    def on_train_begin(self, trainer: TrainerLike, **kwargs: Any) -> None:
        """Decide between bar and lines; note where the run starts (resumes count)."""
        if self.bar is None:
            self.bar = _isatty(self._out()) and _has_tqdm()
        self._begin = time.perf_counter()
        self._first_epoch = trainer.position["epoch"]
        if trainer.is_main:
            print(
                f"training on {len(trainer.train_idx)} rows ({len(trainer.val_idx)} for "
                f"validation), up to {trainer.config.epochs} epochs, on {trainer.device}",
                file=self._out(),
                flush=True,
            )

    def on_epoch_begin(self, trainer: TrainerLike, *, epoch: int, **kwargs: Any) -> None:
        """Open this epoch's bar."""
        self._epoch = epoch
        if not self.bar or not trainer.is_main:
            return
        from tqdm.auto import tqdm

        n_rows = len(trainer.train_idx)
        done = min(n_rows, trainer.position["batch"] * trainer.config.batch_size)
        self._tqdm = tqdm(
            total=n_rows,
            initial=done,
            desc=f"epoch {epoch}/{trainer.config.epochs}",
            unit="row",
            unit_scale=True,
            leave=False,
            file=self._out(),
            bar_format="{desc}: {percentage:3.0f}%|{bar:20}| {n_fmt}/{total_fmt} "
            "[{elapsed}<{remaining}, {rate_fmt}{postfix}]",
        )
        self._postfix_at = 0.0

    def on_batch_end(
        self, trainer: TrainerLike, *, batch: int, n_batches: int, **kwargs: Any
    ) -> None:
        """Advance the bar; refresh the running loss at most twice a second."""
        if self._tqdm is None:
            return
        rows = min(len(trainer.train_idx), batch * trainer.config.batch_size)
        self._tqdm.update(rows - self._tqdm.n)
        now = time.perf_counter()
        if now - self._postfix_at < 0.5 and batch < n_batches:
            return
        self._postfix_at = now
        fields = [f"loss {trainer.running_loss:.4g}"]
        if self._last_val is not None:
            fields.append(f"val {self._last_val:.4g}")
        fields.append(f"ETA ≤ {format_seconds(self._eta(trainer, batch / n_batches))}")
        # Draw the epoch's last state even when tqdm's own refresh interval has not passed.
        self._tqdm.set_postfix_str(", ".join(fields), refresh=batch == n_batches)

    def on_epoch_end(self, trainer: TrainerLike, *, record: dict[str, Any], **kwargs: Any) -> None:
        """Close the bar; write the epoch's line."""
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None
        self._last_val = record["val_loss"]
        if not trainer.is_main:
            return
        val = record["val_loss"]
        line = (
            f"epoch {record['epoch']}/{trainer.config.epochs}  "
            f"train {record['train_loss']:.5g}  val {'-' if val is None else f'{val:.5g}'}  "
            f"{record['samples_per_s']:,.0f} samples/s  "
            f"ETA ≤ {format_seconds(self._eta(trainer, 1.0))}"
        )
        print(line, file=self._out(), flush=True)

    def on_train_end(self, trainer: TrainerLike, **kwargs: Any) -> None:
        """Close a bar left open (training stopped mid-epoch)."""
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None

    def _eta(self, trainer: TrainerLike, epoch_fraction: float) -> float:
        """Seconds left if every remaining epoch runs (early stopping may end sooner)."""
        done = self._epoch - 1 - self._first_epoch + epoch_fraction
        if done <= 0:
            return math.nan
        per_epoch = (time.perf_counter() - self._begin) / done
        return per_epoch * (trainer.config.epochs - (self._epoch - 1 + epoch_fraction))


class StopOnSignal(Callback):
    """Turn Ctrl-C (SIGINT) or SIGTERM into a ``KeyboardInterrupt`` at a step boundary.

    In one process the first signal stops training at the next batch end, where the
    checkpointer saves the last finished step; a second one interrupts at once.

    Under DDP (``torchrun``) every rank must have this callback. The ranks may be a step
    apart when the signal lands, and it may reach one rank only, or reach each twice (a
    terminal's Ctrl-C goes to torchrun and to its workers, and torchrun passes it on): so a
    signal only sets a wish, and at every step boundary the ranks vote on it without
    blocking (:class:`~aekit.training.distributed.StopVote`). At the boundary after the
    first wish every rank stops; they save that step's state together, in the ordinary flow
    of the loop (no collective inside an exception handler), then raise. That takes one or
    two steps and one checkpoint write, well within the grace period torchrun's agent
    gives its workers between its SIGTERM and its SIGKILL (``--shutdown-timeout``, 30 s by
    default).

    Attributes
    ----------
    requested : bool
        True once a signal arrived.
    """

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self) -> None:
        self.requested = False
        self._vote: Any = None

    def request(self, signum: int | None = None, frame: object = None) -> None:
        """Signal handler: ask to stop; in one process a second call interrupts at once."""
        if self.requested and not _in_group():
            raise KeyboardInterrupt
        self.requested = True

    def on_batch_end(self, trainer: TrainerLike, *args: Any, **kwargs: Any) -> None:
        """Raise ``KeyboardInterrupt`` here, between two steps, once stopping was agreed."""
        if trainer.world_size == 1:
            if self.requested:
                raise KeyboardInterrupt
            return
        from .callbacks import Checkpointer
        from .distributed import StopVote

        if self._vote is None:
            self._vote = StopVote()
        if self._vote.poll(self.requested):
            self._vote = None
            for callback in trainer.callbacks:  # every rank, together: the save is collective
                if isinstance(callback, Checkpointer):
                    callback.save(trainer)
            raise KeyboardInterrupt

    def on_train_end(self, trainer: TrainerLike, **kwargs: Any) -> None:
        """Collect the ranks' last vote."""
        if self._vote is not None:
            self._vote.close()
            self._vote = None

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopOnSignal]:
        """Route SIGINT and SIGTERM to :meth:`request` inside the block (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {
            name: signal.signal(getattr(signal, name), self.request) for name in self.SIGNALS
        }
        try:
            yield self
        finally:
            for name, handler in previous.items():
                signal.signal(getattr(signal, name), handler)


def _in_group() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _isatty(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _has_tqdm() -> bool:
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True
