"""A training run's state between two steps, as a :class:`~aekit.training.Trainer` saves it.

:class:`RunState` gives the trainer :meth:`~RunState.state_dict` and
:meth:`~RunState.load_state_dict`: everything a checkpoint holds
(:mod:`~aekit.training.checkpoint` is its file format) to continue a run exactly.
"""

from __future__ import annotations

from typing import Any

import torch

from ..data.sources import row_order
from .checkpoint import build_state, clone_state
from .history import History

__all__ = ["RunState"]


class RunState:
    """The state methods of :class:`~aekit.training.Trainer` (a mixin of its attributes)."""

    module: Any
    optimizer: Any
    scheduler: Any
    callbacks: list[Any]
    config: Any
    position: dict[str, int]
    epoch_sums: torch.Tensor
    epoch_perm_state: torch.Tensor
    epoch_parts: int
    perm_gen: torch.Generator
    noise_gen: torch.Generator
    history: History
    train_idx: torch.Tensor
    val_idx: torch.Tensor
    device: torch.device
    elapsed_before: float
    _noise_mark: torch.Tensor
    _stop_reason: str
    _at_boundary: bool
    column_names: list[Any] | None = None  # the data's (set by the estimator), checkpointed
    source: Any = None  # the rows being trained on

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this run exactly, as of the last step boundary.

        Under DDP ``epoch_sums`` is this rank's share (a checkpoint stores the sum over ranks).
        """
        return build_state(
            model_config=self.module.config.to_dict(),
            train_config=self.config.to_dict(),
            module=self.module.state_dict(),
            optimizer=self.optimizer.state_dict(),
            scheduler=None if self.scheduler is None else self.scheduler.state_dict(),
            callbacks={type(cb).__name__: cb.state_dict() for cb in self.callbacks},
            position=dict(self.position),
            epoch_sums=self.epoch_sums,
            epoch_perm_state=self.epoch_perm_state,
            dealt_to=self.epoch_parts,
            noise_state=self._noise_mark,
            history=self.history.to_dict(),
            stop_reason=self._stop_reason,
            elapsed=self.elapsed(),
            n_rows=len(self.train_idx) + len(self.val_idx),
            column_names=self.column_names,
            row_order=row_order(self.source),
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (a file's is checked by the checkpointer first)."""
        self._at_boundary = False
        self.module.load_state_dict(state["module"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        for cb in self.callbacks:
            if type(cb).__name__ in state["callbacks"]:
                cb.load_state_dict(state["callbacks"][type(cb).__name__])
        self.epoch_perm_state = state["epoch_perm_state"].clone()
        self.perm_gen.set_state(self.epoch_perm_state)
        self.epoch_parts = int(state.get("dealt_to", 1))  # older files: blocks were not dealt
        self.noise_gen.set_state(state["noise_state"])
        self._noise_mark = self.noise_gen.get_state()
        sums = state["epoch_sums"].to(self.device, torch.float64).reshape(2)
        # Under DDP rank 0 carries the sums so far, so that adding up the ranks counts them once.
        self.epoch_sums = sums if self.is_main else self._zero_sums()
        self.position = dict(state["position"])
        self.history = History.from_dict(clone_state(state["history"]))
        self._stop_reason = state["stop_reason"]
        self.elapsed_before = float(state["elapsed"])
        self._at_boundary = True
