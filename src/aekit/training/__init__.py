"""Training: the loop, what it minimises, its callbacks, checkpoints and DDP.

- :mod:`~aekit.training.trainer`: :class:`Trainer`, the loop read top to bottom.
- :mod:`~aekit.training.ensemble`: an ensemble's trainers in lock step over one stacked network.
- :mod:`~aekit.training.objective`: reconstruction loss, code penalties, validation loss.
- :mod:`~aekit.training.optim`: optimiser, parameter groups, schedule.
- :mod:`~aekit.training.callbacks`: hooks; early stopping, logging, checkpoints and resuming.
- :mod:`~aekit.training.progress`: a terminal progress bar and Ctrl-C at a step boundary.
- :mod:`~aekit.training.checkpoint`: the checkpoint file format.
- :mod:`~aekit.training.history`: the per-epoch record.
- :mod:`~aekit.training.distributed`: ``torchrun`` / DDP sessions, agreement between ranks.
- :mod:`~aekit.training.threads`: how many CPU threads a run uses (the policy, the probe);
  :mod:`~aekit.training.cpus`: the CPUs a process may use (affinity, cgroup quota).
"""

from .callbacks import Callback, Checkpointer, EarlyStopping, LogProgress, default_callbacks
from .history import History
from .trainer import Trainer

__all__ = [
    "Callback",
    "Checkpointer",
    "EarlyStopping",
    "History",
    "LogProgress",
    "Trainer",
    "default_callbacks",
]
