"""The per-epoch record of a training run."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from .._atomic import atomic_write
from ..errors import ModelFileError
from ..modelfile import check_fields

__all__ = ["History", "monitored_loss"]


def monitored_loss(record: dict[str, Any]) -> float:
    """The loss a run watches in an epoch's record: validation loss, else training loss.

    Early stopping keeps the epoch where it is lowest; a plateau schedule steps on it.
    """
    val = record["val_loss"]
    return float(record["train_loss"] if val is None else val)


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
    def from_dict(cls, data: object) -> History:
        """Inverse of :meth:`to_dict`; refuses anything else with :class:`ModelFileError`."""
        fields = {"records": list, "best_epoch": (int, type(None)), "stop_reason": str}
        data = check_fields(data, fields, "history", optional=("best_epoch", "stop_reason"))
        if not all(isinstance(r, dict) for r in data["records"]):
            raise ModelFileError("history: 'records' must be a list of JSON objects")
        return cls(list(data["records"]), data.get("best_epoch"), data.get("stop_reason", ""))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the history as JSON (atomically)."""
        atomic_write(path, json.dumps(self.to_dict(), indent=2).encode())
