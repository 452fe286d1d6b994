"""PCA of the training rows in the model's scaled space: where ``init="pca"`` starts training.

The rows come from any row source (in memory or streamed from disk) and are read in chunks,
centred implicitly (the mean is subtracted chunk by chunk, never from a copy of the data).
Up to :data:`EXACT_MAX_FEATURES` features the directions are the eigenvectors of the exact
covariance (one d × d matrix, one pass); wider data never forms it: a randomized subspace
iteration multiplies the centred rows by a thin basis, a few passes over the data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from .data.sources import RowSource, TensorRows

__all__ = ["EXACT_MAX_FEATURES", "principal_directions"]

EXACT_MAX_FEATURES = 10_000  # wider: no d × d covariance, subspace iteration instead
_CHUNK_ROWS = 8192
_OVERSAMPLE = 10  # extra basis vectors of the subspace iteration
_ITERATIONS = 7  # passes of the subspace iteration (each one pass over the rows)


def principal_directions(
    rows: RowSource | torch.Tensor,
    scale: Callable[[torch.Tensor], torch.Tensor],
    n_components: int,
    *,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and principal directions of ``scale(rows)``, in float64.

    Parameters
    ----------
    rows : RowSource or Tensor of shape (n_rows, n_features)
        Raw training rows (validation rows included: PCA is what users compare with).
    scale : callable
        Raw rows → the model's scaled space (``Hourglass.scale_input``).
    n_components : int
        Directions wanted (fewer come back when rows or features are fewer).
    seed : int, default=0
        Seed of the random start of the subspace iteration (wide data only).

    Returns
    -------
    mean : Tensor of shape (n_features,)
    components : Tensor of shape (k, n_features)
        Orthonormal rows, largest variance first, each signed so that its largest entry is
        positive (as scikit-learn's PCA), ``k = min(n_components, n_rows, n_features)``.
    """
    source = TensorRows(rows) if isinstance(rows, torch.Tensor) else rows
    n, d = len(source), source.n_features
    k = min(n_components, n, d)
    mean = sum((chunk.sum(dim=0) for chunk in _chunks(source, scale)), torch.zeros(d)) / n
    mean = mean.double()

    def covariance_times(basis: torch.Tensor | None) -> torch.Tensor:
        """``Cov @ basis`` (or the covariance itself for ``None``), one pass over the rows."""
        total = None
        for chunk in _chunks(source, scale):
            centred = chunk - mean
            part = centred.T @ (centred if basis is None else centred @ basis)
            total = part if total is None else total + part
        assert total is not None
        return total / n

    if d <= EXACT_MAX_FEATURES:
        _, vectors = torch.linalg.eigh(covariance_times(None))
        components = vectors[:, -k:].flip(1).T if k else vectors[:, :0].T
    else:
        generator = torch.Generator().manual_seed(seed)
        width = min(d, k + _OVERSAMPLE)
        basis = torch.linalg.qr(torch.randn(d, width, generator=generator, dtype=torch.float64))[0]
        for _ in range(_ITERATIONS):
            basis = torch.linalg.qr(covariance_times(basis))[0]
        _, vectors = torch.linalg.eigh(basis.T @ covariance_times(basis))
        components = (basis @ vectors[:, -k:].flip(1)).T
    signs = torch.sign(components.gather(1, components.abs().argmax(dim=1, keepdim=True)))
    return mean, components * torch.where(signs == 0, 1.0, signs).to(components)


def _chunks(
    source: RowSource, scale: Callable[[torch.Tensor], torch.Tensor]
) -> Iterator[torch.Tensor]:
    """The scaled rows in order, chunk by chunk, as float64 on the CPU."""
    for start in range(0, len(source), _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, len(source))
        with torch.no_grad():
            yield scale(source.take(torch.arange(start, stop))).to("cpu", torch.float64)
