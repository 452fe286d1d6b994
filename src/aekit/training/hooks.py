"""The hooks :class:`~aekit.training.Trainer` calls: the :class:`Callback` base class.

Its own module so that the callbacks built on it (:mod:`.early_stopping`, :mod:`.callbacks`)
can live apart; import it from :mod:`aekit.training` or :mod:`aekit.training.callbacks`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..errors import TrainingDivergedError
from .protocol import TrainerLike

__all__ = ["Callback"]


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
