"""What several test modules share: a fast training setup, file writers, callbacks, probes.

Test modules import it as ``from tests.helpers import FAST`` (``tests`` is a package and
pytest runs from the repository root); no test module imports another one or ``conftest``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from aekit.training.callbacks import Callback

__all__ = [
    "DOCS_TIMES",
    "FAST",
    "InterruptAt",
    "chromium",
    "cuda_available",
    "interrupted_and_resumed",
    "score_in_worker",
    "write_parquet",
]

# Few epochs, a fixed seed, the CPU: enough to exercise a code path in well under a second.
FAST = {"epochs": 5, "batch_size": 64, "random_state": 0, "device": "cpu"}


# tests/test_docs.py stores the docs build's and each gallery example's time here;
# conftest prints it at the end of the run.
DOCS_TIMES = pytest.StashKey[str]()


def write_parquet(path: Path, X: np.ndarray, group_rows: int, **extra: np.ndarray) -> Path:
    """Write ``X`` as columns ``x0, x1, ...`` (plus ``extra``) in row groups of ``group_rows``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {f"x{i}": X[:, i] for i in range(X.shape[1])} | extra
    pq.write_table(pa.table(columns), path, row_group_size=group_rows)
    return path


class InterruptAt(Callback):
    """Raise KeyboardInterrupt as Ctrl-C would, at a chosen global step or epoch start."""

    def __init__(self, step: int | None = None, epoch: int | None = None) -> None:
        self.step, self.epoch = step, epoch

    def on_batch_end(self, trainer, batch, n_batches, **kwargs):
        if trainer.step == self.step:
            raise KeyboardInterrupt

    def on_epoch_begin(self, trainer, epoch, **kwargs):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def chromium() -> str | None:
    """The path of a Chromium browser on ``PATH``, or None (tests marked ``browser`` skip)."""
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)


def cuda_available() -> bool:
    """True where PyTorch sees a CUDA GPU (tests marked ``gpu`` skip otherwise)."""
    import torch

    return torch.cuda.is_available()


def interrupted_and_resumed(params: dict, X: object, folder: Path, step: int) -> tuple:
    """``(uninterrupted fit, fit interrupted by Ctrl-C at ``step`` and resumed)`` of ``X``."""
    import pytest

    from aekit import Autoencoder
    from aekit.training.checkpoint import latest_checkpoint

    reference = Autoencoder(**params).fit(X)
    with pytest.raises(KeyboardInterrupt):
        Autoencoder(**params, checkpoint_dir=str(folder)).fit(X, callbacks=(InterruptAt(step),))
    assert latest_checkpoint(folder) is not None
    return reference, Autoencoder(**params, checkpoint_dir=str(folder)).fit(X, resume=True)


def score_in_worker(folder: str, rows: object) -> object:
    """``aekit.load(folder).score_samples(rows)``: run in a ``spawn`` process pool's worker
    (a module-level function, importable there), as docs/user_guide/model_files.rst says."""
    import aekit

    return aekit.load(folder).score_samples(rows)
