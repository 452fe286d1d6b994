"""What a callback, a step or a thread probe may use of a trainer: a small ``Protocol``.

Callbacks (:mod:`~aekit.training.callbacks`, :mod:`~aekit.training.progress`), the sparse step
and the thread probe are written against :class:`TrainerLike` instead of importing
:class:`~aekit.training.Trainer`, which imports them: the loop knows its parts, the parts know
only this description of the loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np
    import torch

    from ..config.configs import TrainConfig
    from ..data.sources import RowSource
    from ..errors import TrainingDivergedError
    from ..model.hourglass import Hourglass
    from .distributed import Ranks
    from .history import History
    from .objective import Objective

__all__ = ["TrainerLike"]


class TrainerLike(Protocol):
    """The trainer as its callbacks see it (:class:`~aekit.training.Trainer` is one)."""

    config: TrainConfig
    module: Hourglass
    device: torch.device
    history: History
    ranks: Ranks
    callbacks: list[Any]
    position: dict[str, int]
    source: RowSource
    train_idx: np.ndarray
    val_idx: np.ndarray
    n_batches: int
    objective: Objective
    optimizer: torch.optim.Optimizer
    scheduler: Any
    noise_gen: torch.Generator
    epoch_sums: torch.Tensor
    thread_choice: Any
    elapsed_before: float  # seconds trained before this process's clock started

    @property
    def world_size(self) -> int:
        """The number of training processes (1 without DDP)."""

    @property
    def is_main(self) -> bool:
        """True on rank 0 (or without DDP)."""

    @property
    def step(self) -> int:
        """Optimiser steps taken so far in the whole run."""

    @property
    def running_loss(self) -> float:
        """The mean training loss of the epoch so far."""

    @property
    def at_step_boundary(self) -> bool:
        """True where :meth:`state_dict` is the state after the last finished step."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the run exactly."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""

    def request_stop(self, reason: str) -> None:
        """Ask the loop to end after the current epoch."""

    def diverged_error(self, step: int | None = None) -> TrainingDivergedError:
        """The error for a loss that is no longer finite in this epoch."""
