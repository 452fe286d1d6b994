"""Denormal numbers flushed to zero while training on the CPU, and the mode put back after.

A float32 below 1.2e-38 in magnitude is *denormal*; x86 CPUs compute with such operands many
times slower than with normal numbers (microcode assists). Training can make them as it goes:
a sigmoid output pushed towards 0 (logits below about -87, where ``exp`` underflows through
the denormal range; sparse 0/1 data pushes most outputs there), Adam's first moment decaying
by ``beta1`` in the steps where a weight gets no gradient. A bag-of-words run slowed from 5 s
to 78 s an epoch over 8 epochs, and stayed flat with ``torch.set_flush_denormal(True)``
(issue 28; ``benchmarks/epochs.py`` measures both paths with and without flushing).

:func:`flushing_denormals` turns the CPU's flush-to-zero / denormals-are-zero mode on for a
fit (:data:`FLUSH`) and puts the previous mode back when the fit returns. The results differ
from an unflushed run only where a value would have been below 1.2e-38, and repeat bit for
bit from run to run. The mode is per thread: it reaches torch's intra-op worker threads only
where they started after it was set, so with several threads the main thread's share of
the work is flushed for sure (one thread, the usual choice under load, is flushed entirely).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["FLUSH", "flushes_denormals", "flushing_denormals"]

FLUSH = True  # fits on the CPU flush denormals (a benchmark turns it off to compare)

_TINY = 1e-39  # a denormal float32


def flushes_denormals() -> bool:
    """Whether this thread's CPU mode flushes denormal float32 numbers to zero now."""
    return bool(torch.full((1,), _TINY).mul_(1.0).item() == 0.0)


@contextlib.contextmanager
def flushing_denormals(device: torch.device, enabled: bool | None = None) -> Iterator[None]:
    """Run the block with denormals flushed to zero on the CPU; the previous mode back after.

    Nothing changes for another device, where ``enabled`` (default :data:`FLUSH`) is false,
    or where the CPU has no such mode (``torch.set_flush_denormal`` says so).
    """
    enabled = FLUSH if enabled is None else enabled
    if device.type != "cpu" or not enabled or flushes_denormals():
        yield
        return
    if not torch.set_flush_denormal(True):  # no flush-to-zero on this CPU
        yield
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(False)
