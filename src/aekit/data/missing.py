"""Missing values (NaN) inside the model: its input, its error unit and its masking noise.

The one home of what a hole in a row means, in the model's scaled space:

- **Input** (:func:`with_indicators`): a missing entry is filled with 0 (the training mean
  for standardized columns) and, for a model trained with missing values
  (``ModelConfig.missing``), flagged by a mask indicator: the encoder sees ``[filled, mask]``,
  twice the columns, so it can tell a hole from a real 0.
- **Error unit** (:func:`row_squared_error`): the squared error summed over a row's
  *observed* entries, times ``n_columns / n_observed_columns``: a row with holes is measured
  on the scale of a complete row (its observed entries' mean error, times the width), so
  errors and anomaly scores of rows with and without holes are comparable. A complete row's
  error is the plain sum, bit for bit. A row with no observed entry adds 0 to a training
  loss; the errors and scores handed to users make it NaN (:func:`empty_rows`).
- **Masking noise** (:func:`hide_entries`): training hides a share of the observed entries
  (they become NaN in the input) and the loss counts every observed entry, hidden ones
  included, so the model learns to fill what is missing.

Feature groups: ``groups`` (one integer id per input column, ids ``0 .. n_groups - 1``) marks
columns that are one column of the user's table (a categorical column's one-hot block). A
group is hidden whole, counts as ONE column in ``n_columns / n_observed_columns``, and is
observed when any of its entries is (a missing category is the whole block NaN). ``None``:
every column is its own group.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = [
    "empty_rows",
    "fill_holes",
    "group_matrix",
    "groups_from_blocks",
    "hide_entries",
    "hide_like_rows",
    "observed_share",
    "random_entries",
    "row_squared_error",
    "with_indicators",
]


def fill_holes(x: torch.Tensor, fill: torch.Tensor | None = None) -> torch.Tensor:
    """``x`` with NaN entries replaced by 0, or by ``fill`` (one value per column).

    0 is the model's input (exported to ONNX as IsNaN + Where); ``fill`` the observed column
    means, where a PCA start is fitted on mean-filled rows as the PCA it is measured against.
    """
    value = torch.zeros((), dtype=x.dtype, device=x.device) if fill is None else fill.to(x)
    return torch.where(torch.isnan(x), value, x)


def with_indicators(x: torch.Tensor) -> torch.Tensor:
    """``[fill_holes(x), isnan(x)]``: the input of a model trained with missing values.

    Joined on the last (feature) axis, so rows with leading axes (a stacked ensemble's
    members, :mod:`aekit.model.stacked`) work too. Image rows become images after this, the
    mask a second set of channels.
    """
    holes = torch.isnan(x)
    return torch.cat([fill_holes(x), holes.to(x.dtype)], dim=-1)


def group_matrix(
    groups: tuple[int, ...] | torch.Tensor, device: torch.device | None = None
) -> torch.Tensor:
    """The ``(n_columns, n_groups)`` 0/1 membership matrix of ``groups``, as float32.

    On the meta device (the shape check of a model folder) only the shape is made: ``one_hot``
    there imports ``torch._dynamo`` (about 3 s at every load of a model with categorical
    columns) and ``scatter_``'s meta check sympy (0.5 s); elsewhere ``scatter_`` fills it.
    """
    n_groups = int(max(groups)) + 1  # from the ids themselves: no device sync, meta-safe
    ids = torch.as_tensor(groups, dtype=torch.long, device=device)
    members = torch.zeros(len(ids), n_groups, dtype=torch.float32, device=ids.device)
    if members.is_meta:  # shapes only: there are no values to fill
        return members
    return members.scatter_(1, ids[:, None], 1.0)


def groups_from_blocks(input_dim: int, blocks: tuple[tuple[int, int], ...]) -> tuple[int, ...]:
    """Feature groups from one-hot blocks ``(start, stop)``, numbered in column order.

    A block (``ModelConfig.categorical_blocks``) is one group, every other column its own.
    """
    group, ids, column = 0, [], 0
    for start, stop in sorted(blocks):
        for _ in range(column, start):
            ids.append(group)
            group += 1
        ids.extend([group] * (stop - start))
        group, column = group + 1, stop
    ids.extend(range(group, group + input_dim - column))
    return tuple(ids)


def empty_rows(X: Any) -> np.ndarray | None:
    """Which rows of ``X`` have no observed value (all NaN); None where none can be.

    Dense float arrays only: scipy.sparse rows hold no hole, and other inputs (a table
    before its encoding) are checked once encoded. Nothing in such a row shows how well it is
    reconstructed, so its error and score are NaN, not the 0 of an empty sum.
    """
    if not isinstance(X, np.ndarray) or X.dtype.kind != "f" or X.ndim != 2:
        return None
    empty = np.isnan(X).all(axis=1) if X.shape[1] else np.zeros(len(X), dtype=bool)
    return empty if empty.any() else None


def observed_share(holes: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
    """``n_columns / n_observed_columns`` of each row (float64; 1 for complete rows).

    ``holes`` is the rows' NaN mask; ``members`` a :func:`group_matrix` (None: each column its
    own group). A row with no observed column gets 0 (its error is 0).
    """
    observed = ~holes
    if members is None:
        n_columns = holes.shape[1]
        count = observed.sum(dim=1)
    else:
        n_columns = members.shape[1]
        count = ((observed.to(members.dtype) @ members) > 0).sum(dim=1)
    count = count.double()
    return torch.where(count > 0, n_columns / count.clamp_min(1.0), torch.zeros_like(count))


def row_squared_error(
    recon: torch.Tensor,
    target: torch.Tensor,
    members: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Aekit's error unit: each row's squared error over observed entries, rescaled.

    Parameters
    ----------
    recon, target : Tensor of shape (n_rows, n_features)
        Reconstruction and scaled rows (NaN where missing), in the scaled space.
    members : Tensor, optional
        A :func:`group_matrix` (None: each column its own group).
    weight : Tensor of shape (n_features,), optional
        Per-entry weights of the squared errors (the anomaly score's).
    dtype : torch.dtype, default=torch.float64
        What the errors are computed in.
    """
    holes = torch.isnan(target)
    diff = recon.to(dtype) - target.to(dtype)
    squared = torch.where(holes, torch.zeros((), dtype=diff.dtype, device=diff.device), diff)
    squared = squared.square()
    if weight is not None:
        squared = squared * weight
    return squared.sum(dim=1) * observed_share(holes, members).to(dtype)


def random_entries(
    x: torch.Tensor,
    share: float,
    generator: torch.Generator | None,
    members: torch.Tensor | None = None,
) -> torch.Tensor:
    """A random ``share`` of the entries of ``x`` (whole groups), as a boolean mask.

    The one draw of masking noise: one uniform number per row and group (per entry without
    ``members``), on ``x``'s device; an entry is hit where its number is below ``share``.
    """
    n_groups = x.shape[1] if members is None else members.shape[1]
    draw = torch.rand((x.shape[0], n_groups), generator=generator, device=x.device)
    hit = draw < share
    if members is not None:
        hit = (hit.to(members.dtype) @ members.T) > 0
    return hit


def hide_like_rows(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """A copy of ``x`` where each row also misses the entries a row drawn at random misses.

    The draw: one row index per row (with replacement, the row itself possible), on ``x``'s
    device. Holes are NaN; a categorical column's one-hot group is missing as a whole, so
    whole groups are hidden.
    """
    donors = torch.randint(0, len(x), (len(x),), generator=generator, device=x.device)
    return x.masked_fill(torch.isnan(x[donors]), float("nan"))


def hide_entries(
    x: torch.Tensor,
    share: float,
    generator: torch.Generator | None,
    members: torch.Tensor | None = None,
    *,
    fill: float = float("nan"),
) -> torch.Tensor:
    """A copy of ``x`` with a random ``share`` of its entries (whole groups) set to ``fill``.

    NaN (the default) hides them as missing values: entries already missing stay missing.
    ``fill=0.0`` is the ``"masking"`` noise of denoising autoencoders
    (:func:`aekit.model.regularize.corrupt`). The draw is :func:`random_entries`.
    """
    return x.masked_fill(random_entries(x, share, generator, members), fill)
