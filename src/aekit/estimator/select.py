"""``init="auto"``: the start chosen by cross-fitting where fits are cheap.

On small in-memory data (:func:`selection_applies`) the rows are dealt into folds
(:func:`cross_fit_folds`); for each fold, a model trained from PCA's solution (with its own
``improvement_z`` guard, as ``init="pca"`` trains) and one trained from a random start are
fitted on the other folds, so every row is validated once, by models that never saw it. The
random start is taken only where it beats the PCA start by :data:`SELECT_Z` standard errors
of the per-row differences, paired over all the rows: not the few dozen rows of one
validation split, so the test has power on small tables. The estimator then fits once more,
on all the rows, from the chosen start: that fit is exactly ``init="pca"``'s or
``init="random"``'s. Larger data, streamed or sparse rows, DDP, sparse codes and checkpointed
runs, and fits given a fixed budget (``epochs`` other than ``"auto"``, or ``max_time``) skip
the search: one fit from PCA's solution. :class:`Selection` is the record the fitted
estimator keeps (``history_.initial["selection"]``).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import torch

from ..data.missing import row_squared_error
from ..data.sources import RowSource
from ..model.hourglass import Hourglass
from ..model.sparse_net import forward_rows
from ..training.distributed import Ranks
from ..training.objective import paired_z
from ..training.prepare import derive_seeds
from ..training.threads import ThreadChoice
from ..training.trainer import Trainer
from .resolve import initial_model, resolve_configs

__all__ = [
    "SELECT_MAX_ENTRIES",
    "SELECT_MAX_ROWS",
    "Selection",
    "cross_fit_folds",
    "select_start",
    "selection_applies",
]

logger = logging.getLogger("aekit")

SELECT_MAX_ROWS = 2_000  # init="auto" searches on at most this many rows...
SELECT_MAX_ENTRIES = 40_000  # ... and rows × columns: above, one fit from PCA's solution
_MIN_ROWS = 30  # fewer rows: folds of a few rows rank starts by noise; PCA's start alone
# Folds: 5 up to 300 rows, else 3. A fold fit sees (k - 1) / k of the rows, and a random
# start gains more from rows than PCA's does: with 2 folds on 350-row tables the search chose
# PCA where full-data fits from the random start won on held-out rows (benchmarks/tabular.py).
_FOLDS_SMALL, _FOLDS_LARGE, _FOLDS_SWITCH = 5, 3, 300
SELECT_Z = 2.0  # the random start is taken where it validates better by this many std. errors
CANDIDATES = ("pca", "random")


@dataclasses.dataclass
class Selection:
    """What ``init="auto"`` decided, and why (JSON-ready through :meth:`to_dict`).

    Attributes
    ----------
    rule : str
        ``"cross-fit"`` (the search ran), or why one fit from PCA's solution was made without
        it: ``"large"``, ``"few-rows"``, ``"streamed"``, ``"sparse-code"``, ``"distributed"``,
        ``"checkpointed"`` or ``"budget"`` (``epochs`` or ``max_time`` given).
    init : str
        The start of the final fit: ``"pca"`` or ``"random"``.
    folds : int
        Folds of the search (0 without it).
    errors : dict
        Mean cross-fitted error per row of the model trained from each start (``"pca"``,
        ``"random"``), in the scaled space, as ``reconstruction_error`` measures it.
    z : float
        The random start's paired improvement over the PCA start, in standard errors
        (negative where it is worse).
    """

    rule: str
    init: str = "pca"
    folds: int = 0
    errors: dict[str, float] = dataclasses.field(default_factory=dict)
    z: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dataclasses.asdict(self)


def selection_applies(params: dict[str, Any], rows: Any, stats: dict[str, np.ndarray]) -> str:
    """``"cross-fit"`` where ``init="auto"`` searches, else the rule that skips the search."""
    n_rows, n_features = int(stats["n_rows"]), len(stats["min"])
    if not isinstance(rows, torch.Tensor) or rows.layout != torch.strided:
        return "streamed"
    if params["sparsity"] is not None:
        return "sparse-code"  # dictionaries and top-k codes have starts of their own
    if params["checkpoint_dir"] is not None:
        return "checkpointed"
    if params["epochs"] != "auto" or params["max_time"] is not None:
        return "budget"  # a fixed epoch count or time is the budget of one fit
    if Ranks.current().world_size > 1:
        return "distributed"
    if n_rows > SELECT_MAX_ROWS or n_rows * n_features > SELECT_MAX_ENTRIES:
        return "large"
    if n_rows < _MIN_ROWS:
        return "few-rows"
    return "cross-fit"


def cross_fit_folds(n_rows: int, seed: int | None) -> list[np.ndarray]:
    """Sorted row indices of each fold: 5 folds up to 300 rows, else 3, dealt at random."""
    k = _FOLDS_SMALL if n_rows <= _FOLDS_SWITCH else _FOLDS_LARGE
    order = np.random.default_rng(derive_seeds(seed, 1)[0]).permutation(n_rows)
    return [np.sort(order[i::k]) for i in range(k)]


def select_start(
    params: dict[str, Any],
    rows: torch.Tensor | RowSource,
    stats: dict[str, np.ndarray],
    threads: ThreadChoice | None = None,
) -> tuple[dict[str, Any], Selection]:
    """The parameters of the final fit for ``init="auto"``, and the record of the choice.

    ``params`` are the estimator's parameters with ``random_state`` already a seed (or
    None); the returned ones have ``init`` set to ``"pca"`` or ``"random"``. Each fold fit
    draws its own seed from ``random_state``, so a fixed seed repeats the choice.
    """
    rule = selection_applies(params, rows, stats)
    if rule != "cross-fit":
        return {**params, "init": "pca"}, Selection(rule)
    assert isinstance(rows, torch.Tensor)
    n_rows = len(rows)
    folds = cross_fit_folds(n_rows, params["random_state"])
    seeds = derive_seeds(params["random_state"], 2 * len(folds) + 1)[1:]
    found = {name: torch.zeros(n_rows, dtype=torch.float64) for name in CANDIDATES}
    for i, held in enumerate(folds):
        train = np.setdiff1d(np.arange(n_rows), held)
        for j, init in enumerate(CANDIDATES):
            fold_params = {**params, "init": init, "random_state": seeds[2 * i + j], "verbose": 0}
            found[init][held] = _fold_errors(fold_params, rows, stats, train, held, threads)
    _, z = paired_z(found["pca"], found["random"])
    chosen = "random" if z >= SELECT_Z else "pca"
    means = {name: float(v.mean()) for name, v in found.items()}
    logger.info(
        "init='auto': %d-fold cross-fitted error per row: PCA start %.4g, random start %.4g "
        "(%.2f standard errors apart; %g needed): the %s start is kept",
        len(folds), means["pca"], means["random"], z, SELECT_Z, chosen,
    )  # fmt: skip
    record = Selection("cross-fit", chosen, len(folds), means, max(min(z, 1e9), -1e9))
    return {**params, "init": chosen}, record


def _fold_errors(
    params: dict[str, Any],
    rows: torch.Tensor,
    stats: dict[str, np.ndarray],
    train: np.ndarray,
    held: np.ndarray,
    threads: ThreadChoice | None,
) -> torch.Tensor:
    """Per-row errors on ``held`` of the model trained on ``train`` from ``params["init"]``."""
    train_rows, held_rows = rows[torch.from_numpy(train)], rows[torch.from_numpy(held)]
    fold_stats = {**stats, "n_rows": np.asarray(len(train))}
    resolved = resolve_configs(params, fold_stats)
    module, train_config, _ = initial_model(params, train_rows, fold_stats, resolved)
    trainer = Trainer(module, train_config)
    trainer.thread_choice = threads
    trainer.fit(train_rows)
    return _row_errors(trainer.module, held_rows)


@torch.no_grad()
def _row_errors(module: Hourglass, rows: torch.Tensor) -> torch.Tensor:
    """The module's error on each row, as ``reconstruction_error`` measures it (float64, CPU).

    Nothing is hidden: a row with holes is measured on its observed entries.
    """
    module.eval()
    device = next(module.parameters()).device
    out, scaled = forward_rows(module, rows.to(device))
    return row_squared_error(out.recon, scaled, module.group_members).double().cpu()
