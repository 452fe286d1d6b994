"""PCA of the training rows in the model's scaled space: where ``init="pca"`` starts training.

The rows come from any row source (in memory or streamed from disk) and are read in chunks,
centred implicitly (the mean is subtracted chunk by chunk, never from a copy of the data).
Up to :data:`EXACT_MAX_FEATURES` features the directions are the eigenvectors of the exact
covariance (one d × d matrix, one pass); wider data never forms it: a randomized subspace
iteration multiplies the centred rows by a thin basis, a few passes over the data.

The start is a fixed cost of every fit, so it is kept proportional to the work (issue 28).
From :data:`FAST_MIN_FEATURES` features on, the covariance comes from one pass of float32
products on rows shifted by the first chunk's mean (each chunk's d × d product summed in
float64; twice as fast as float64 products, and far more precise than a start needs), and
where the code is much narrower than the input the leading eigenvectors come from a subspace
iteration on that d × d matrix, run until its Ritz values settle, instead of a full ``eigh``
(784 features, 30 directions: about a tenth of the work). Below that width everything is
float64 and ``eigh``, as exact as scikit-learn's PCA.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from ..data.missing import row_squared_error
from ..data.sources import RowSource, TensorRows
from ..data.sparse import CsrRows

__all__ = [
    "BLOCK_SHARPNESS",
    "EXACT_MAX_FEATURES",
    "FAST_MIN_FEATURES",
    "principal_directions",
    "sharpen_blocks_",
    "sparse_principal_directions",
]

EXACT_MAX_FEATURES = 10_000  # wider: no d × d covariance, subspace iteration instead
SPARSE_EXACT_MAX_FEATURES = 2048  # the same for sparse rows, whose d × d covariance would
# dwarf the matrix (10,000 features: 800 MB and minutes of eigh, for a CSR of a few MB)
FAST_MIN_FEATURES = 256  # this wide or wider: float32 products, subspace iteration on Cov
_CHUNK_ROWS = 8192
_OVERSAMPLE = 10  # extra basis vectors of the subspace iteration
_ITERATIONS = 7  # passes of the subspace iteration (each one pass over the rows)
_SETTLED = 1e-10  # the iteration on a covariance stops when its Ritz values move less
_MAX_SWEEPS = 100  # ... or after this many products with it
# A categorical block's softmax starts at PCA's reconstruction to first order, times one of
# these (the least error on the training rows, block by block; 1: the expansion itself).
BLOCK_SHARPNESS = (1.0, 1.25, 1.5, 2.0, 3.0)


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
    fast = d >= FAST_MIN_FEATURES
    if fast and d <= EXACT_MAX_FEATURES:
        mean, covariance = _shifted_moments(source, scale)
        return mean, _directions(lambda basis: covariance, d, k, seed)
    sums = (
        c.sum(dim=0).double() if fast else c.double().sum(dim=0) for c in _chunks(source, scale)
    )
    mean = sum(sums, torch.zeros(d, dtype=torch.float64)) / n

    def covariance_times(basis: torch.Tensor | None) -> torch.Tensor:
        """``Cov @ basis`` (or the covariance itself for ``None``), one pass over the rows."""
        total = None
        for chunk in _chunks(source, scale):
            centred = chunk.double() - mean
            if basis is None and fast:  # float32 products, summed in float64
                centred = centred.float()
                part = (centred.T @ centred).double()
            else:
                part = centred.T @ (centred if basis is None else centred @ basis)
            total = part if total is None else total + part
        assert total is not None
        return total / n

    return mean, _directions(covariance_times, d, k, seed)


def sparse_principal_directions(
    rows: CsrRows, offset: torch.Tensor, scale: torch.Tensor, n_components: int, *, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`principal_directions` of sparse rows scaled as ``(x - offset) / scale``.

    Never densified: the covariance (or its product with a thin basis) comes from sparse
    products of the rows divided by the scale, ``Xᵀ X / n − μ μᵀ``, centred implicitly
    (the offset cancels out of it).
    """
    n, d = len(rows), rows.n_features
    k = min(n_components, n, d)
    inverse = 1.0 / scale.double().numpy()
    chunk_rows = _CHUNK_ROWS * 8  # sparse rows: a chunk holds few values

    def scaled_chunks() -> Iterator[Any]:
        for start in range(0, n, chunk_rows):
            chunk = rows.scipy_rows(start, min(n, start + chunk_rows)).astype(np.float64)
            yield chunk @ sp.diags_array(inverse)

    raw_mean = sum((np.asarray(c.sum(axis=0)).ravel() for c in scaled_chunks()), np.zeros(d))
    raw_mean = torch.from_numpy(raw_mean / n)

    def covariance_times(basis: torch.Tensor | None) -> torch.Tensor:
        total = np.zeros((d, d) if basis is None else tuple(basis.shape))
        for chunk in scaled_chunks():
            if basis is None:
                total += (chunk.T @ chunk).toarray()
            else:
                total += chunk.T @ (chunk @ basis.numpy())
        second = torch.from_numpy(total) / n
        if basis is None:
            return second - torch.outer(raw_mean, raw_mean)
        return second - torch.outer(raw_mean, raw_mean @ basis)

    mean = raw_mean - (offset.double() * torch.from_numpy(inverse))
    return mean, _directions(covariance_times, d, k, seed, SPARSE_EXACT_MAX_FEATURES)


def _directions(
    covariance_times: Callable[[torch.Tensor | None], torch.Tensor],
    d: int,
    k: int,
    seed: int,
    exact_max: int | None = None,
) -> torch.Tensor:
    """The ``k`` leading eigenvectors of the covariance, as rows, signed as scikit-learn's.

    Exact up to ``exact_max`` features (default :data:`EXACT_MAX_FEATURES`), else by
    subspace iteration.
    """
    if d <= (EXACT_MAX_FEATURES if exact_max is None else exact_max):
        covariance = covariance_times(None)
        if d >= FAST_MIN_FEATURES and k > 0 and 4 * (k + max(k, _OVERSAMPLE)) <= d:
            components = _leading_eigenvectors(covariance, k, seed)
        else:
            _, vectors = torch.linalg.eigh(covariance)
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
    return components * torch.where(signs == 0, 1.0, signs).to(components)


def _leading_eigenvectors(covariance: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """The ``k`` leading eigenvectors of a symmetric matrix, as rows, largest first.

    A subspace iteration on the matrix itself (``2k`` columns, at least ``k`` +
    :data:`_OVERSAMPLE`, seeded),
    multiplied and orthonormalised until the ``k`` leading Ritz values change by less than
    :data:`_SETTLED` of the largest (at most :data:`_MAX_SWEEPS` products); then the
    Rayleigh-Ritz step gives the directions.
    """
    generator = torch.Generator().manual_seed(seed)
    width = k + max(k, _OVERSAMPLE)  # a wide basis: fewer products (the gap to 2k is wider)
    start = torch.randn(covariance.shape[0], width, generator=generator, dtype=torch.float64)
    basis, ritz = torch.linalg.qr(start)[0], None
    for _ in range(_MAX_SWEEPS):
        product = covariance @ basis
        values = torch.linalg.eigvalsh(basis.T @ product)[-k:]
        settled = ritz is not None and bool(
            (values - ritz).abs().max() <= _SETTLED * values.abs().max()
        )
        basis, ritz = torch.linalg.qr(product)[0], values
        if settled:
            break
    _, vectors = torch.linalg.eigh(basis.T @ covariance @ basis)
    return (basis @ vectors[:, -k:].flip(1)).T


def _shifted_moments(
    source: RowSource, scale: Callable[[torch.Tensor], torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance of the scaled rows in one pass, float32 products summed in float64.

    Each chunk is shifted by the first chunk's mean (float32) before its ``d × d`` product,
    so the products are of nearly centred rows, as precise as exact centring; the shift's
    residual mean is taken out at the end (``Cov = YᵀY / n − ȳ ȳᵀ`` for the shifted rows
    ``Y``). One read of the rows instead of two (a mean pass, then a centred pass), and no
    float64 copy of each chunk.
    """
    shift: torch.Tensor | None = None
    sums: torch.Tensor | None = None
    gram: torch.Tensor | None = None
    for chunk in _chunks(source, scale):
        chunk = chunk.float()
        if shift is None:
            shift = chunk.mean(dim=0)
        shifted = chunk - shift
        # summed in float32 and then widened: the shifted rows are nearly centred, so their
        # sum is small, and a float64-accumulating sum is 8x slower (60 ms on 8,000 x 784)
        part_sum, part_gram = shifted.sum(dim=0).double(), (shifted.T @ shifted)
        sums = part_sum if sums is None else sums + part_sum
        gram = part_gram.double() if gram is None else gram + part_gram.double()
    assert shift is not None and sums is not None and gram is not None
    n = len(source)
    residual = sums / n
    return shift.double() + residual, gram / n - torch.outer(residual, residual)


def _chunks(
    source: RowSource, scale: Callable[[torch.Tensor], torch.Tensor]
) -> Iterator[torch.Tensor]:
    """The scaled rows in order, chunk by chunk, on the CPU (float32, as the model sees them)."""
    for start in range(0, len(source), _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, len(source))
        with torch.no_grad():
            yield scale(source.take(torch.arange(start, stop))).to("cpu")


@torch.no_grad()
def sharpen_blocks_(module: Any, rows: torch.Tensor) -> tuple[float, ...]:
    """Scale each categorical block's PCA start by the :data:`BLOCK_SHARPNESS` that fits best.

    A softmax cannot output PCA's reconstruction ``r`` of a one-hot block exactly; the start
    (:meth:`aekit.model.Hourglass.start_from_pca_`) matches it to first order around the
    block's mean, ``log m + (r - m) / m``, and is too soft where ``r`` is near a category. Each
    block in turn takes the factor on ``(r - m) / m`` whose start has the least error on
    ``rows`` (scaled training rows, NaN where missing) in aekit's unit
    (:func:`aekit.data.missing.row_squared_error`), the other blocks' factors held.

    Returns
    -------
    tuple of float
        The factor of each block (empty where the model has no block or no PCA start).
    """
    config = module.config
    if not config.categorical_blocks or module.pca_start not in ("exact", "logit"):
        return ()
    decoder = module.linear_decoder if config.linear_path else module.decoder[-1]
    n, first = config.code_dim, decoder.weight[:, : config.code_dim].clone()
    was_training = module.training
    module.eval()
    chosen = []
    for start, stop in config.categorical_blocks:
        errors = []
        for factor in BLOCK_SHARPNESS:
            decoder.weight[start:stop, :n] = factor * first[start:stop]
            recon = module(rows).recon
            errors.append(float(row_squared_error(recon, rows, module.group_members).sum()))
        chosen.append(BLOCK_SHARPNESS[int(np.argmin(errors))])
        decoder.weight[start:stop, :n] = chosen[-1] * first[start:stop]
    module.train(was_training)
    return tuple(chosen)
