"""What a run is set up with: device, seeded generators, rows, their split and batches.

Small pure functions the :class:`~aekit.training.Trainer` calls before its first epoch (and
the estimator, to know an epoch's length before training).
"""

from __future__ import annotations

import ctypes
import math
import sys

import numpy as np
import torch
from torch import nn

from ..data.sources import RowSource, TensorRows
from ..data.sparse import as_dense, source_chunk_rows
from ..errors import ConfigError, DataError
from ..model.hourglass import Hourglass
from .distributed import Ranks

__all__ = [
    "as_source",
    "batch_count",
    "batches_per_epoch",
    "derive_seeds",
    "member_seeds",
    "noise_bounds",
    "read_counts",
    "release_free_heap",
    "resolve_device",
    "seed_from",
    "seeded_generator",
    "to_device",
    "validation_split",
    "wrap_network",
]

_BOUNDS_ROWS = 16384  # rows per chunk when finding the feature bounds


def resolve_device(name: str) -> torch.device:
    """Turn ``"auto"`` into CUDA, then Apple MPS, then CPU; check any other name."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"device={name!r} is not a torch device ({exc})") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} asked for, but CUDA is not available here")
    if device.type == "cuda" and device.index is None:  # tensors report cuda:N, never cuda
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def _seed_words(random_state: int | None, count: int) -> np.ndarray:
    """``count`` 32-bit words of NumPy's ``SeedSequence(random_state)``: every seed's source."""
    return np.random.SeedSequence(random_state).generate_state(count, dtype=np.uint32)


def derive_seeds(random_state: int | None, count: int) -> list[int]:
    """Return ``count`` independent 63-bit seeds from one seed (fresh entropy if None).

    What a run draws its generators from (the trainer's three, the estimator's "auto" rules).
    """
    words = _seed_words(random_state, 2 * count)
    return [int(words[2 * i]) << 31 ^ int(words[2 * i + 1]) for i in range(count)]


def seed_from(random_state: object) -> int | None:
    """THE conversion of scikit-learn's ``random_state`` forms to aekit's integer seed.

    An ``int`` in ``[0, 2**63)`` is kept and None stays None (fresh entropy where it is
    used); a :class:`numpy.random.RandomState` gives one integer drawn from it, which
    advances it as scikit-learn's estimators do (two fits with one ``RandomState`` differ;
    both are reproduced by a ``RandomState`` seeded the same). Estimators call this once per
    fit, before anything derives seeds (:func:`derive_seeds`).

    Raises
    ------
    ConfigError
        Anything else (a negative or bool number, a float, a ``numpy.random.Generator``).
    """
    if random_state is None:
        return None
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    whole = isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool)
    if whole and 0 <= random_state < 2**63:
        return int(random_state)
    raise ConfigError(
        "random_state must be a non-negative integer, None or a numpy.random.RandomState, "
        f"got {random_state!r}"
    )


def member_seeds(seed: object, n: int) -> list[int | None]:
    """Seeds of ``n`` ensemble members: ``seed``, then seeds drawn from it (None: all None).

    The first member keeps ``seed`` itself, so an ensemble of one is the plain estimator;
    the outlier detector's and the imputer's members are seeded so. A ``RandomState`` first
    gives one integer seed (:func:`seed_from`).
    """
    seed = seed_from(seed)
    if seed is None:
        return [None] * n
    return [seed, *(int(s) for s in _seed_words(seed, n)[1:])]


def seeded_generator(seed: int, device: torch.device) -> torch.Generator:
    """A torch generator on ``device``, seeded with ``seed``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def wrap_network(
    module: Hourglass, ranks: Ranks, device: torch.device, *, compile: bool
) -> nn.Module:
    """What a step calls forward: ``module``, in DDP across ranks, compiled if asked.

    The wrappers share the module's parameters.
    """
    net: nn.Module = module
    if ranks.world_size > 1:
        device_ids = [device.index] if device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(module, device_ids=device_ids)
    if compile:
        net = torch.compile(net)
    return net


def as_source(data: RowSource | torch.Tensor, device: torch.device) -> RowSource:
    """Wrap a tensor as rows; in-memory rows move to the training device once."""
    source = TensorRows(data) if isinstance(data, torch.Tensor) else data
    if isinstance(source, TensorRows):
        source.to(device)
    return source


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch on ``device``; streamed rows come from the CPU, pinned for a GPU.

    Pinned, the copy is asynchronous and overlaps the previous step.
    """
    if x.device != device:
        if device.type == "cuda":
            x = x.pin_memory()
        x = x.to(device, non_blocking=True)
    return x


def _n_val(n: int, fraction: float, min_rows: int) -> int:
    """Rows held out for validation: none when a side would be empty.

    ``int(n * fraction)``, but with a fraction above 0 at least ``min(min_rows, n // 4)``: a
    dozen rows rank epochs by noise (iris's 10 % is 15 rows), and early stopping keeps the
    wrong one.
    """
    n_val = int(n * fraction)
    if fraction > 0:
        n_val = max(n_val, min(min_rows, n // 4))
    return n_val if 1 <= n_val < n else 0


def validation_split(
    n: int, fraction: float, gen: torch.Generator, min_rows: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted (train, validation) row indices; no validation when a side would be empty.

    The trainer's held-out rows, drawn with the run's generator; a user's train/test split
    of rows is :func:`aekit.analysis.split_rows`.
    """
    n_val = _n_val(n, fraction, min_rows)
    if n_val == 0:
        return torch.arange(n), torch.arange(0)
    perm = torch.randperm(n, generator=gen)
    return perm[n_val:].sort().values, perm[:n_val].sort().values


def batches_per_epoch(
    n_rows: int, batch_size: int, val_fraction: float, min_val_rows: int = 0
) -> int:
    """Optimiser steps in one epoch of :meth:`Trainer.fit` on ``n_rows`` rows (all ranks)."""
    return batch_count(n_rows - _n_val(n_rows, val_fraction, min_val_rows), batch_size)


def check_batch_norm_rows(module: Hourglass, n_rows: int) -> None:
    """Refuse fewer than 2 training rows for a model with batch norm (one row has no spread).

    Raises
    ------
    DataError
        Naming the count and the way out (``batch_norm=False``).
    """
    if module.config.batch_norm and n_rows < 2:
        raise DataError(
            f"batch_norm=True needs at least 2 training rows, got {n_rows} sample(s); pass "
            "batch_norm=False for a single sample"
        )


def batch_count(n_rows: int, batch_size: int) -> int:
    """Batches per epoch; a last batch of one row joins the one before (batch norm needs 2)."""
    n_batches = max(1, math.ceil(n_rows / batch_size))
    return n_batches - 1 if n_batches > 1 and n_rows % batch_size == 1 else n_batches


def noise_bounds(
    source: RowSource, rows: torch.Tensor, module: Hourglass, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Per-feature min and max of the *scaled* rows, for salt-and-pepper noise (else None).

    Salt-and-pepper noise corrupts the scaled input, to these values.
    """
    if module.config.noise != "salt_and_pepper":
        return None
    lows, highs = [], []
    with torch.no_grad():
        for chunk in rows.split(source_chunk_rows(source, _BOUNDS_ROWS)):
            x = module.scale_input(as_dense(source.take(chunk)).to(device))
            lows.append(x.min(dim=0).values)
            highs.append(x.max(dim=0).values)
    return torch.stack(lows).min(dim=0).values, torch.stack(highs).max(dim=0).values


def read_counts(
    marks: list[int | None], ranks: Ranks, device: torch.device
) -> dict[str, list[int]]:
    """Bytes each rank read in an epoch's training steps and in its validation.

    ``marks`` is this rank's source's ``bytes_read`` before training, after it and after
    validating (None for rows in memory: then ``{}``). Collective under DDP (one all-reduce).
    """
    if marks[0] is None:
        return {}
    counts = torch.zeros(2, ranks.world_size, dtype=torch.int64, device=device)
    counts[:, ranks.rank] = torch.tensor([marks[1] - marks[0], marks[2] - marks[1]])
    train, val = ranks.all_sum(counts).tolist()
    return {"bytes_read": train, "val_bytes_read": val}


def release_free_heap() -> None:
    """Give the heap's free pages back to the system before training (glibc only).

    The set-up before the first step (the PCA start, the start's validation) allocates and
    frees blocks of a few MB to tens of MB; glibc keeps much of that freed memory in its
    heap, resident, where the training state (Adam's moments, as large as the network
    twice) is allocated anew beside it. ``malloc_trim(0)`` returns it: 226 MB at 100,000
    features (``benchmarks/sparse.py``, memory). A no-op elsewhere.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # musl and other C libraries have no malloc_trim
        return
    trim(0)
