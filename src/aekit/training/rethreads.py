"""Probing the thread count again between epochs, so a passing load does not set a whole run.

:func:`~aekit.training.threads.choose_threads` probes before the first step. A neighbour busy
at that moment makes fewer threads look as fast as more; a neighbour that gets busy later
makes the chosen threads wait for each other. At each epoch boundary of a CPU run whose count
came from a probe, :func:`reprobe_reason` asks for a fresh probe (never a reused one) when

* the epoch just done took :data:`SLOW` times the median of the epochs before it (a load came,
  or the count no longer suits the machine), or
* the count is below the run's budget and the probe is :data:`REPROBE_SECONDS` old (the load
  that made fewer threads as fast may have passed);

:func:`rethread` then switches the run to the count the probe gives, from the next epoch on,
logs it and records it as ``history.threads`` (what a resumed run continues at). A probe
costs a few dozen steps of a throwaway model; at most one a :data:`REPROBE_SECONDS` while
below the budget, so well under 1 % of a long run.

Results differ in the last bits between thread counts: a run whose count changed repeats
another run bit for bit only where both changed at the same epochs. An explicit count
(``threads=N``, ``OMP_NUM_THREADS``...) and a resumed run's recorded count are never probed,
nor is a DDP run (its ranks would have to agree).
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Sequence

import torch

from .protocol import TrainerLike
from .threads import ThreadChoice, _first_rows, _probed, ladder, probed_choice

__all__ = ["REPROBE_SECONDS", "SLOW", "reprobe_reason", "rethread"]

logger = logging.getLogger("aekit")

SLOW = 1.5  # an epoch this many times the median of those before it asks for a new probe
REPROBE_SECONDS = 30.0  # a count below the budget is probed again after this long


def reprobe_reason(choice: ThreadChoice, epoch_seconds: Sequence[float], now: float) -> str | None:
    """Why the thread count should be probed again after the last epoch; None if not.

    Parameters
    ----------
    choice : ThreadChoice
        The run's current count; only a probed one (``choice.seconds``) is probed again.
    epoch_seconds : sequence of float
        The seconds of the epochs done, the last one just now.
    now : float
        ``time.monotonic()`` now (a test passes its own clock).
    """
    if not choice.seconds or choice.budget <= 1:
        return None
    if len(epoch_seconds) >= 2:
        before = statistics.median(epoch_seconds[:-1])
        if epoch_seconds[-1] > SLOW * before:
            ratio = epoch_seconds[-1] / max(before, 1e-9)
            return f"the last epoch took {ratio:.1f} times the median before it"
    age = now - choice.probed_at
    if choice.count < choice.budget and age >= REPROBE_SECONDS:
        return f"{choice.count} of {choice.budget} threads, probed {age:.0f} s ago"
    return None


def rethread(trainer: TrainerLike) -> None:
    """At an epoch boundary: probe again if :func:`reprobe_reason` asks, and switch counts.

    The new count is set at once (torch's own count is still put back when the fit
    returns) and recorded in ``trainer.thread_choice`` and ``trainer.history.threads``.
    """
    choice = trainer.thread_choice
    if choice is None or trainer.world_size > 1 or trainer.device.type != "cpu":
        return
    seconds = [r["seconds"] for r in trainer.history.records]
    why = reprobe_reason(choice, seconds, time.monotonic())
    if why is None:
        return
    config, model_config = trainer.config, trainer.module.config
    batch = _first_rows(trainer.source, config.batch_size)
    if len(batch) < 2:
        return
    counts = ladder(choice.budget)  # members: the stack an ensemble trains in one pass, if so
    timings, _ = _probed(model_config, config, batch, counts, fresh=True, members=choice.members)
    fresh = probed_choice(choice, timings, 0.0)
    trainer.thread_choice = fresh
    if fresh.count != choice.count:
        torch.set_num_threads(fresh.count)
        trainer.history.threads = fresh.count
        logger.info(
            "probed the threads again (%s): %d intra-op thread(s) from epoch %d on, was %d; %s",
            *(why, fresh.count, len(seconds) + 1, choice.count, fresh.reason),
        )
