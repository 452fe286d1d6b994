"""The per-epoch record of a training run."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from ..errors import ModelFileError
from ..files.atomic import atomic_write
from ..files.core import check_fields

__all__ = ["History", "monitored_loss"]


def monitored_loss(record: dict[str, Any], monitor: str = "val_error") -> float:
    """What a run watches in an epoch's record: the validation error, else the training loss.

    The validation error is aekit's one error unit (squared error in the scaled space, summed
    over a row), whatever the training loss; records of aekit 0.1 (without it) fall back on
    the validation loss, and so does a run resumed from an aekit 0.1 checkpoint
    (``monitor="val_loss"``), whose best loss is in that unit. Early stopping keeps the epoch
    where it is lowest; a plateau schedule steps on it.
    """
    for key in (monitor, "val_loss"):
        if record.get(key) is not None:
            return float(record[key])
    return float(record["train_loss"])


@dataclass
class History:
    """Per-epoch figures of a training run.

    Attributes
    ----------
    records : list of dict
        One dict per epoch: ``epoch`` (1-based), ``train_loss`` (reconstruction loss on the
        training rows), ``penalty`` (code penalty), ``val_loss`` (the training loss on the
        validation rows; None without validation), ``val_error`` (their mean per-row squared
        error in the scaled space), ``lr``, ``seconds`` and ``samples_per_s``.
    best_epoch : int or None
        The epoch whose weights were kept: 0 for the model training started from (its
        validation figures are in ``initial``) when no epoch beat it.
    initial : dict or None
        ``val_loss`` and ``val_error`` of the model before the first step (None when
        training had no validation rows).
    stop_reason : str
        ``"epochs"``, ``"early_stopping"`` or ``"max_time"``.
    threads : int or None
        The intra-op thread count the run trained at (results differ in the last bits between
        counts; a resumed run reuses it); None in histories written before aekit recorded it.
    setup_seconds : dict of str to float
        Wall-clock seconds spent before the first step, by part: ``"threads"`` (choosing the
        thread count, its probe included), ``"start"`` (building the starting model, the PCA
        start included) and ``"start_validation"`` (the starting model's validation figures);
        the parts a run had (empty in histories written before aekit recorded them).
    """

    records: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    stop_reason: str = ""
    initial: dict[str, Any] | None = None
    threads: int | None = None
    setup_seconds: dict[str, float] = field(default_factory=dict)

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
            "initial": None if self.initial is None else dict(self.initial),
            "threads": self.threads,
            "setup_seconds": dict(self.setup_seconds),
        }

    @classmethod
    def from_dict(cls, data: object) -> History:
        """Inverse of :meth:`to_dict`; refuses anything else with :class:`ModelFileError`."""
        fields = {
            "records": list,
            "best_epoch": (int, type(None)),
            "stop_reason": str,
            "initial": (dict, type(None)),
            "threads": (int, type(None)),
            "setup_seconds": dict,
        }
        # aekit 0.1 wrote no "initial", aekit 0.2 no "threads", and older files no "setup_seconds"
        optional = ("best_epoch", "stop_reason", "initial", "threads", "setup_seconds")
        data = check_fields(data, fields, "history", optional=optional)
        if not all(isinstance(r, dict) for r in data["records"]):
            raise ModelFileError("history: 'records' must be a list of JSON objects")
        if data.get("threads") is not None and data["threads"] < 1:
            raise ModelFileError(f"history: 'threads' must be >= 1, got {data['threads']}")
        setup = data.get("setup_seconds", {})
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in setup.values()):
            raise ModelFileError("history: 'setup_seconds' must map names to numbers of seconds")
        return cls(
            list(data["records"]),
            data.get("best_epoch"),
            data.get("stop_reason", ""),
            data.get("initial"),
            data.get("threads"),
            {str(k): float(v) for k, v in setup.items()},
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the history as JSON (atomically)."""
        atomic_write(path, json.dumps(self.to_dict(), indent=2).encode())
