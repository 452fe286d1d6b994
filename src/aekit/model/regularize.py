"""Code penalties and input corruption: small pure functions the model and trainer call.

Everything random takes an explicit :class:`torch.Generator`, so a seeded run never touches
the global random state.
"""

from __future__ import annotations

import torch

from ..data.missing import hide_entries, random_entries

__all__ = ["corrupt", "dead_unit_code", "kl_penalty", "l1_penalty", "topk_mask"]

_EPS = 1e-6


def l1_penalty(code: torch.Tensor) -> torch.Tensor:
    """Return the row-mean L1 norm of the code, ``mean_i ‖h_i‖₁``.

    Parameters
    ----------
    code : Tensor of shape (n_rows, code_dim)

    Returns
    -------
    Tensor
        A scalar.
    """
    return code.abs().sum(dim=1).mean()


def kl_penalty(code: torch.Tensor, target: float) -> torch.Tensor:
    """Return ``Σ_j KL(ρ ‖ ρ̂_j)`` for sigmoid codes, ρ̂_j the mean activation of unit j.

    Parameters
    ----------
    code : Tensor of shape (n_rows, code_dim)
        Activations in (0, 1).
    target : float
        The target mean activation ρ, in (0, 1).

    Returns
    -------
    Tensor
        A scalar, zero when every unit's mean activation equals ``target``.
    """
    rho_hat = code.mean(dim=0).clamp(_EPS, 1 - _EPS)
    rho = torch.as_tensor(target, dtype=rho_hat.dtype, device=rho_hat.device)
    kl = rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))
    return kl.sum()


def topk_mask(code: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest entries of each row and set the others to zero.

    Parameters
    ----------
    code : Tensor of shape (n_rows, code_dim)
    k : int
        Entries kept per row, ``1 <= k <= code_dim``.

    Returns
    -------
    Tensor of shape (n_rows, code_dim)
        Exactly ``k`` entries per row come from ``code`` (ties broken by position); gradients
        flow through the kept entries only.
    """
    values, indices = code.topk(k, dim=1)
    return torch.zeros_like(code).scatter(1, indices, values)


def dead_unit_code(pre: torch.Tensor, dead: torch.Tensor, k: int) -> torch.Tensor:
    """Keep each row's ``k`` largest pre-activations among dead units, zero everywhere else.

    The auxiliary code of the AuxK loss (Gao et al. 2024, "Scaling and evaluating sparse
    autoencoders"): dead units are asked to explain what the live code left unexplained, which
    gives them gradient again. Values are not rectified, so a unit whose pre-activation is
    negative on every row still learns.

    Parameters
    ----------
    pre : Tensor of shape (n_rows, code_dim)
        Code before the activation.
    dead : Tensor of shape (code_dim,), bool
        Units that have not fired for a while.
    k : int
        Entries kept per row, ``1 <= k <= code_dim``; fewer when fewer units are dead.

    Returns
    -------
    Tensor of shape (n_rows, code_dim)
    """
    masked = pre.masked_fill(~dead, float("-inf"))
    values, indices = masked.topk(k, dim=1)
    values = torch.where(torch.isfinite(values), values, torch.zeros_like(values))
    return torch.zeros_like(pre).scatter(1, indices, values)


def corrupt(
    x: torch.Tensor,
    kind: str,
    level: float,
    generator: torch.Generator | None = None,
    *,
    low: torch.Tensor | None = None,
    high: torch.Tensor | None = None,
) -> torch.Tensor:
    """Return a corrupted copy of ``x`` for denoising training.

    Parameters
    ----------
    x : Tensor of shape (n_rows, n_features)
        Clean (scaled) input.
    kind : {"gaussian", "masking", "salt_and_pepper"}
        ``gaussian`` adds N(0, level²) noise; ``masking`` sets a random ``level`` fraction of
        the entries to 0; ``salt_and_pepper`` sets a random ``level`` fraction of the entries
        to each feature's training minimum or maximum (half each, at random).
    level : float
        σ for ``gaussian``, the corrupted fraction otherwise.
    generator : torch.Generator, optional
        Source of randomness (on ``x``'s device).
    low, high : Tensor of shape (n_features,), optional
        Per-feature minimum and maximum for ``salt_and_pepper`` (default 0 and 1).

    Returns
    -------
    Tensor of shape (n_rows, n_features)
    """
    if kind == "gaussian":
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return x + level * noise
    if kind == "masking":
        return hide_entries(x, level, generator, fill=0.0)
    if kind == "salt_and_pepper":
        hit = random_entries(x, level, generator)
        salt = torch.rand(x.shape, generator=generator, device=x.device) < 0.5
        lo = torch.zeros((), dtype=x.dtype, device=x.device) if low is None else low
        hi = torch.ones((), dtype=x.dtype, device=x.device) if high is None else high
        flipped = torch.where(salt, hi.expand_as(x), lo.expand_as(x))
        return torch.where(hit, flipped, x)
    raise ValueError(f"unknown corruption {kind!r}")
