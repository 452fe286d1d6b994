"""Inference in chunks: a fitted network applied to many rows with flat memory.

Every method of the estimator that runs the network (``transform``, ``inverse_transform``,
``reconstruct``, ``reconstruction_error``) goes through :func:`run_in_chunks`, so rows are
checked, padded and copied to the device the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .data.checks import check_finite_chunk, check_finite_output
from .data.sources import as_tensor
from .errors import ConfigError
from .model import Hourglass

__all__ = ["ROW_BLOCK", "pad_rows", "run_in_chunks"]

ROW_BLOCK = 16  # inference pads batches to whole blocks of rows (see pad_rows)


def pad_rows(batch: torch.Tensor, block: int = ROW_BLOCK) -> torch.Tensor:
    """Pad to a whole number of ``block`` rows (at least one block).

    Matrix-multiply kernels pick their code path by the row count, and a path for a few rows
    rounds differently; with padded blocks a row's result never depends on how many rows
    came with it, so ``transform`` of a subset equals the subset of ``transform``.
    """
    n = batch.shape[0]
    padded = max(block, -(-n // block) * block)
    if padded == n:
        return batch
    return torch.cat([batch, batch.new_zeros((padded - n, *batch.shape[1:]))])


def run_in_chunks(
    module: Hourglass,
    X: np.ndarray,
    fn: Callable[[torch.Tensor], torch.Tensor],
    out_dtype: np.dtype,
    chunk_rows: int,
    *,
    check_input: bool = False,
) -> np.ndarray:
    """Apply ``fn`` (raw rows as a float32 tensor → tensor) to ``X`` chunk by chunk.

    The module runs in eval mode without autograd; results come back to the CPU as float32
    (float64 where ``fn`` returns float64) and then as ``out_dtype``. ``check_input`` refuses
    NaN, infinity and values beyond float32's range, chunk by chunk, on the device.

    Raises
    ------
    ConfigError
        If ``chunk_rows`` is not a positive integer.
    DataError
        For a bad input value, or a result that overflows float32.
    """
    if (
        isinstance(chunk_rows, bool)
        or not isinstance(chunk_rows, (int, np.integer))
        or chunk_rows < 1
    ):
        raise ConfigError(f"transform_batch_size must be a positive integer, got {chunk_rows!r}")
    device = module.offset.device
    was_training = module.training
    module.eval()
    chunks = []
    with torch.inference_mode():  # one (empty) chunk for no rows: the width is still right
        for start in range(0, max(X.shape[0], 1), chunk_rows):
            part = X[start : start + chunk_rows]
            with np.errstate(over="ignore"):  # beyond float32 becomes inf: refused below
                batch = as_tensor(part).to(device)
            if check_input:  # on the device: a GPU checks its copy faster than the CPU
                check_finite_chunk(batch, part, start)
            out = fn(pad_rows(batch))[: len(part)]
            kind = torch.float64 if out.dtype == torch.float64 else torch.float32
            chunks.append(out.to("cpu", kind).numpy())
    module.train(was_training)
    result = np.concatenate(chunks)
    check_finite_output(result, "the network")
    with np.errstate(over="ignore"):
        result = result.astype(out_dtype, copy=False)
    return result
