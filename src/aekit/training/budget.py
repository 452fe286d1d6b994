"""When a run's wall-clock budget (``max_time``) ends an epoch before its last step.

The budget is checked at the end of every epoch (training stops after the epoch that exceeds
it) and, from the second epoch on, after every step: :func:`past_deadline` ends an epoch early
once the budget is overrun by half the median epoch's seconds so far. A run so overshoots
``max_time`` by at most about half an epoch, one step and the validation, even where its last
epoch is slower than the others (a neighbour's load, or a slowdown).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

__all__ = ["past_deadline"]


def past_deadline(
    max_time: float | None, elapsed: float, epoch_seconds: Sequence[float], world_size: int = 1
) -> bool:
    """Whether an epoch in progress should end now, ``elapsed`` seconds into the run.

    Parameters
    ----------
    max_time : float or None
        The budget (None: no budget, never).
    elapsed : float
        Seconds of training so far.
    epoch_seconds : sequence of float
        The seconds of the epochs done (none: the first epoch, which sets the median, runs
        whole).
    world_size : int, default=1
        Training processes; under DDP an epoch always runs whole (the ranks would have to
        agree at every step), and the budget is checked at its end.
    """
    if max_time is None or not epoch_seconds or world_size > 1:
        return False
    return elapsed > max_time + 0.5 * statistics.median(epoch_seconds)
