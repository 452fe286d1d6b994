"""Each rank's share of a streamed epoch: shuffled blocks dealt to the ranks.

What "the same training" means for N ranks
------------------------------------------
An epoch of a block-streamed source (:mod:`aekit.data.stream`) is drawn from the run's seeded
generator, the same draws whatever N is:

1. the blocks (parquet row groups, ``.npy`` row ranges) are permuted, and grouped into
   windows of ``window_blocks`` consecutive blocks of that order;
2. each row gets a random key, and rows are ordered by (window, key): the rows of a window
   are shuffled together.

With one rank that is the epoch's order (as before dealing existed). With N ranks, the
training rows, taken in the permuted block order (file order inside a block), are cut into N
consecutive parts, part ``r`` holding exactly the rows rank ``r`` takes over the epoch; each
part is ordered by (window, key) as above. The global batches are those of one process (the
trainer's ``batch_size`` and batch count): global batch ``b`` of ``L`` rows is the union of
rank ``r``'s next ``L // N`` rows (one more for the first ``L % N`` ranks), which is exactly
how the trainer splits a global batch across ranks (``Tensor.tensor_split``). So every rank
takes the same number of steps, whatever the shard sizes: the parts are equalised by
*splitting blocks* at the cut points (a block cut between two ranks is read by both), never
by padding or dropping rows. Rank ``r`` reads the blocks of one contiguous run of the
permuted order: about 1/N of the bytes, plus at most the two blocks at its ends.

:func:`deal` returns the global order; the trainer hands rank ``r`` its share of each
global batch, and one process that sets the source's ``parts`` to N replays the N-rank run
(the same global batches, so the same weights up to float summation order).
"""

from __future__ import annotations

import torch

__all__ = ["deal", "part_sizes"]


def part_sizes(n_rows: int, parts: int, batches: tuple[int, int]) -> torch.Tensor:
    """Rows rank ``r`` takes from each global batch: an (n_batches, parts) table.

    ``batches`` is ``(batch_size, n_batches)``: batch ``b`` holds ``batch_size`` rows, the last
    one the rest (the trainer's rule), each split as ``tensor_split`` splits it.
    """
    batch_size, n_batches = batches
    lengths = torch.full((n_batches,), batch_size, dtype=torch.int64)
    lengths[-1] = n_rows - (n_batches - 1) * batch_size
    extra = (torch.arange(parts) < (lengths % parts)[:, None]).to(torch.int64)
    return (lengths // parts)[:, None] + extra


def deal(
    block: torch.Tensor,
    n_blocks: int,
    window_blocks: int,
    generator: torch.Generator,
    parts: int = 1,
    batches: tuple[int, int] | None = None,
) -> torch.Tensor:
    """An epoch's order of rows (positions into ``block``), dealt to ``parts`` ranks.

    Parameters
    ----------
    block : Tensor of int64, shape (n_rows,)
        The block of each row, rows in file order.
    n_blocks, window_blocks : int
        Blocks of the source, and blocks shuffled together.
    generator : torch.Generator
        Draws the block permutation and the row keys (the same draws for any ``parts``).
    parts : int, default=1
        Ranks the rows are dealt to.
    batches : (int, int), optional
        ``(batch_size, n_batches)`` of the epoch; needed when ``parts > 1``.

    Returns
    -------
    Tensor of int64, shape (n_rows,)
        Positions in the global order: global batch ``b`` is the union of each rank's share,
        rank 0's first (see the module docstring).
    """
    n = len(block)
    position = torch.empty(n_blocks, dtype=torch.int64)
    position[torch.randperm(n_blocks, generator=generator)] = torch.arange(n_blocks)
    key = (position[block] // window_blocks) * n + torch.randperm(n, generator=generator)
    order = key.argsort()
    if parts == 1 or n == 0:
        return order
    if batches is None:
        raise ValueError("dealing rows to several ranks needs (batch_size, n_batches)")
    sizes = part_sizes(n, parts, batches)
    # the rows in permuted block order, cut into consecutive parts of each rank's total
    along = position[block].argsort(stable=True)
    part = torch.empty(n, dtype=torch.int64)
    part[along] = torch.repeat_interleave(torch.arange(parts), sizes.sum(dim=0))
    order = order[part[order].argsort(stable=True)]  # by part, then (window, key)
    # each part's rows go to its share of the global batches, in turn
    batch = torch.arange(len(sizes))
    batch_of = torch.cat([torch.repeat_interleave(batch, sizes[:, r]) for r in range(parts)])
    slot = batch_of * parts + part[order]
    return order[slot.argsort(stable=True)]
