"""The nearest reference rows of the detector's neighbour and density terms, ties by index.

:func:`nearest_squared` finds each row's ``count`` nearest reference rows and their squared
distances, ``|x|² - 2 x·r + |r|²`` in the rows' dtype as the ONNX graph computes them. Which
rows are nearest, and their order, is settled alike in Python and in the graph: reference
rows whose distances are within the formula's rounding of each other (:data:`TIE_SHARE`)
are tied, and among tied rows the lower index comes first. Exact ties are common in tables
of small integers or with repeated rows; before, which of the tied rows counted depended on
the search (a k-d tree, ``torch.topk`` or ONNX Runtime's ``TopK``), and with it the density
term: on a 4-column table of 0/1/2 values the exported detector's scores were up to 5 IQR
units from Python's and flagged up to 29 of 300 new rows differently (now within 0.002,
the rounding of the density term).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["TIE_SHARE", "TREE_MAX_FEATURES", "nearest_squared"]

TREE_MAX_FEATURES = 16  # up to this many features a k-d tree finds the neighbours (not ONNX)
# Squared distances within this share of (|x|² + 1) of the last place's are tied with it: the
# formula's rounding differs between the searches (and ONNX Runtime) by about 1e-7 of
# |x|² + |r|², and distinct distances of real rows are seldom this close
TIE_SHARE = 2.0**-18
_TIE_CHUNK_VALUES = 1 << 24  # rows × reference distances held at once when settling ties


def nearest_squared(
    rows: torch.Tensor, ref: torch.Tensor, count: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared distances and indices of each row's ``count`` nearest ``ref`` rows, nearest first.

    ``rows`` have no holes. The reference rows nearer than the ``count``-th nearest are in;
    those tied with it (within :data:`TIE_SHARE` × ``(|x|² + 1)``, the formula's rounding)
    fill the places left by index, lowest first (:func:`_nearest_of`, the graph's rule in an
    ONNX export). In Python, twice as many candidates come from a k-d tree
    (:func:`_tree_candidates`) or the matrix product; a row whose tie may reach past them
    (many repeated rows) is settled over every reference row, once per distinct row.
    """
    row_norm = rows.square().sum(dim=1, keepdim=True)
    ref_norm = ref.square().sum(dim=1)
    if torch.onnx.is_in_onnx_export() or torch.jit.is_tracing():
        squared = _squared(rows, row_norm, ref, ref_norm)
        return _in_order(*_nearest_of(squared, row_norm, count), row_norm)
    more = min(2 * count, len(ref))
    candidates = _tree_candidates(rows, ref, more)
    if candidates is None:  # every reference row: one matrix product
        squared = _squared(rows, row_norm, ref, ref_norm)
        candidates = torch.topk(squared, more, dim=1, largest=False)[1].sort(dim=1).values
        values = squared.gather(1, candidates)
    else:  # the tree's candidates, measured as the product above measures them
        candidates = candidates.sort(dim=1).values  # by index: ties are settled so
        dots = (ref[candidates] @ rows[:, :, None]).squeeze(2)
        values = (row_norm - 2 * dots + ref_norm[candidates]).clamp_min(0)
    found, at = _nearest_of(values, row_norm, count)
    indices = candidates.gather(1, at)
    if more < len(ref):  # the farthest candidate in the last place's tie: others may be too
        last = found.max(dim=1).values
        width = TIE_SHARE * (row_norm[:, 0] + 1)
        open_ties = torch.nonzero(values.max(dim=1).values <= last + width).flatten()
        if len(open_ties):  # from repeated rows: each distinct row is settled once
            distinct, copy_of = torch.unique(rows[open_ties], dim=0, return_inverse=True)
            settled, settled_at = _settle(distinct, ref, ref_norm, count)
            found[open_ties], indices[open_ties] = settled[copy_of], settled_at[copy_of]
    return _in_order(found, indices, row_norm)


def _squared(
    rows: torch.Tensor, row_norm: torch.Tensor, ref: torch.Tensor, ref_norm: torch.Tensor
) -> torch.Tensor:
    """Squared distances of ``rows`` to every ``ref`` row, as the ONNX graph computes them."""
    return (row_norm - 2 * rows @ ref.T + ref_norm[None, :]).clamp_min(0)


def _settle(
    rows: torch.Tensor, ref: torch.Tensor, ref_norm: torch.Tensor, count: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_nearest_of` over every reference row, in chunks of rows (to bound memory)."""
    row_norm = rows.square().sum(dim=1, keepdim=True)
    step = max(1, _TIE_CHUNK_VALUES // len(ref))
    values, indices = [], []
    for start in range(0, len(rows), step):
        part, norm = rows[start : start + step], row_norm[start : start + step]
        found = _nearest_of(_squared(part, norm, ref, ref_norm), norm, count)
        values.append(found[0])
        indices.append(found[1])
    return torch.cat(values), torch.cat(indices)


def _nearest_of(
    squared: torch.Tensor, row_norm: torch.Tensor, count: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``count`` nearest columns of each row of ``squared`` distances, ties by index.

    Every column nearer than the ``count``-th smallest by more than the tie width is in;
    the columns within the width of it fill the places left, lowest index first (a running
    count of them, no sort of the whole row). Nearest first.
    """
    width = TIE_SHARE * (row_norm + 1)
    last = torch.topk(squared, count, dim=1, largest=False)[0][:, -1:]
    nearer, tied = squared < last - width, (squared - last).abs() <= width
    places = count - nearer.sum(dim=1, keepdim=True)
    chosen = nearer | (tied & (torch.cumsum(tied.to(torch.int64), dim=1) <= places))
    key = torch.where(chosen, squared, torch.full_like(squared, float("inf")))
    return torch.topk(key, count, dim=1, largest=False)


def _in_order(
    values: torch.Tensor, indices: torch.Tensor, row_norm: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's found neighbours nearest first, tied ones (within the width) by index.

    The callers take prefixes of the list (the row itself is left out, the neighbour term
    takes fewer than the density term): a tie's order must not come from the search. A
    neighbour's place is the number of others nearer by more than the width, or tied and
    of a lower index (a few comparisons per row).
    """
    width = (TIE_SHARE * (row_norm + 1))[:, :, None]
    mine, theirs = values[:, :, None], values[:, None, :]
    tied_lower = ((theirs - mine).abs() <= width) & (indices[:, None, :] < indices[:, :, None])
    place = ((theirs < mine - width) | tied_lower).sum(dim=2).to(values.dtype)
    count = values.shape[1]
    key = place * count + torch.arange(count, dtype=values.dtype, device=values.device)
    order = torch.topk(key, count, dim=1, largest=False)[1]  # (unique keys)
    return values.gather(1, order), indices.gather(1, order)


def _tree_candidates(rows: torch.Tensor, ref: torch.Tensor, count: int) -> torch.Tensor | None:
    """Indices of each row's ``count`` nearest ``ref`` rows by a k-d tree, or None.

    None (search every reference row) off the CPU, above :data:`TREE_MAX_FEATURES`
    features, where a tree prunes little, and for rows that overflowed float32 in scaling
    (the tree refuses them; their score is refused after). On narrow tables the tree takes
    the search from ``rows × reference`` distances to about ``log`` of the reference per
    row: on ADBench's smtp (3 columns, 15,000 training rows, 10,000 reference rows) the
    detector's fit spent 9.6 of its 15.7 s in the brute-force search.
    """
    if (
        rows.device.type != "cpu"
        or rows.shape[1] > TREE_MAX_FEATURES
        or not len(rows)
        or not bool(torch.isfinite(rows).all())  # an overflow: refused by the caller
    ):
        return None
    from scipy.spatial import cKDTree

    tree = cKDTree(ref.detach().double().numpy())
    _, index = tree.query(rows.detach().double().numpy(), k=count)
    return torch.from_numpy(np.asarray(index, dtype=np.int64).reshape(len(rows), count))
