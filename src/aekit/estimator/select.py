"""``init="auto"``: the start chosen by cross-fitting where fits are cheap.

On small in-memory data (:func:`selection_applies`) the rows are dealt into 5 folds
(:func:`cross_fit_folds`); for each fold, two candidate models are fitted on the other folds:
one trained from PCA's solution with early stopping alone (no ``improvement_z`` guard) and one
trained from a random start. Every row is then validated once by each candidate, by models
that never saw it, and once by PCA's solution fitted on the same other folds (the trained
PCA start's epoch 0, free). Each step away from PCA's solution then needs ``improvement_z``
(2) standard errors of the per-row differences, paired over all the rows (not the few dozen rows
of one validation split, so the test has power on small tables): the trained PCA start is
taken where it beats PCA's solution so, the random start where it beats the better of those
two so (:func:`_steps`); otherwise the model is trained from PCA's solution under its own
``improvement_z`` guard, as ``init="pca"`` trains. The estimator then fits once more, on all
the rows, as the chosen candidate: that fit is exactly ``init="random"``'s, or
``init="pca"``'s with ``improvement_z=0`` (the search has already shown that training from
PCA's solution beats it on rows it never saw) or with the estimator's own. The fold fits
train in rounds (:data:`_ROUNDS`), a round's fits as one stacked network
(:func:`_fold_errors`): the PCA start on every fold, then the random start, the search's
dearest, on 2 folds, and on the other 3 unless it trails the PCA side by ``improvement_z``
standard errors on those 2 (then it is not taken). Larger data,
streamed or sparse rows, DDP, sparse codes and checkpointed runs, and fits given a fixed budget
(``epochs`` other than ``"auto"``, or ``max_time``) skip the search: one fit from PCA's
solution. :class:`Selection` is the record the fitted estimator keeps
(``history_.initial["selection"]``).
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
from ..model.stacked import runs_on_member_axis
from ..training.distributed import Ranks
from ..training.ensemble import fit_together, stack_refusal
from ..training.objective import paired_z
from ..training.prepare import derive_seeds
from ..training.threads import ThreadChoice
from ..training.trainer import Trainer
from .resolve import initial_model, resolve_configs

__all__ = [
    "CANDIDATES",
    "SELECT_MAX_ENTRIES",
    "SELECT_MAX_ROWS",
    "Selection",
    "cross_fit_folds",
    "row_groups",
    "select_start",
    "selection_applies",
]

logger = logging.getLogger("aekit")

SELECT_MAX_ROWS = 2_000  # init="auto" searches on at most this many rows...
SELECT_MAX_ENTRIES = 40_000  # ... and rows × columns: above, one fit from PCA's solution
_MIN_ROWS = 30  # fewer rows: folds of a few rows rank starts by noise; PCA's start alone
# Every fold fit sees 4/5 of the rows: a trained start gains more from rows than PCA's
# solution does, so fewer folds (3 above 300 rows, aekit 0.2) understate what training gives.
# On small data a fit is about 2,000 optimiser steps whatever its rows (resolve.auto_epochs),
# so the search costs some ten fits on any table it runs on.
_FOLDS = 5
# The candidates: the parameters each one's fits change. PCA's start is trained with early
# stopping alone: the cross-fit, over every row, makes the test of its improvement_z guard
# (one validation split of a few dozen rows) with more power, at the same threshold.
CANDIDATES: dict[str, dict[str, Any]] = {
    "pca": {"init": "pca", "improvement_z": 0.0},
    "random": {"init": "random"},
}
REFERENCE = "pca_solution"  # PCA's solution fitted on the other folds, untrained
# The fold fits' rounds: (start, folds). The stop's check sees the PCA start on all 5 folds.
# Fitting the random start on every fold at once (no stop) took it in 3 of the 126 fits of
# benchmarks/tabular.py where it trailed on its first 2 folds and led on all 5 (z = 2.9 to
# 4.1): all 3 worse on the 80/20 split, one miss more.
_ROUNDS = (("pca", tuple(range(_FOLDS))), ("random", (0, 1)), ("random", tuple(range(2, _FOLDS))))


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
        Mean cross-fitted error per row, in the scaled space, as ``reconstruction_error``
        measures it, of PCA's solution (``"pca_solution"``) and of the model trained from
        each start (``"pca"``, ``"random"``). Records of aekit 0.2 have no ``"pca_solution"``.
    z : float
        The paired z-score of the search's last step taken (the random start over the better
        PCA-side model, or the trained PCA start over PCA's solution); where neither was taken,
        the better trained start's over PCA's solution (negative where it is worse). In
        records of aekit 0.2: the random start's over the PCA start's trained, guarded model.
    improvement_z : float or None
        The final fit's ``improvement_z`` where the search set it: 0 when the trained PCA
        start won (the search made the guard's test already); None: the estimator's own.
    random_folds : int
        Folds the random start was fitted on: 2 where it already trailed the PCA side by
        ``improvement_z`` standard errors on its first 2 folds (its errors are then those
        rows' mean), else every fold. Its fits are the search's dearest: they train longest.
    """

    rule: str
    init: str = "pca"
    folds: int = 0
    errors: dict[str, float] = dataclasses.field(default_factory=dict)
    z: float = 0.0
    improvement_z: float | None = None
    random_folds: int = 0

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
    if n_rows < _MIN_ROWS or len(np.unique(row_groups(rows))) < _MIN_ROWS:
        return "few-rows"
    return "cross-fit"


def row_groups(rows: torch.Tensor) -> np.ndarray:
    """One id per row, shared by its exact copies (a row with a hole is its own)."""
    return torch.unique(rows, dim=0, return_inverse=True)[1].numpy()


def cross_fit_folds(
    n_rows: int, seed: int | None, groups: np.ndarray | None = None
) -> list[np.ndarray]:
    """Sorted row indices of each of the 5 folds, dealt at random.

    With ``groups`` (:func:`row_groups`) the copies of a row go to one fold, dealt where its
    first copy falls: a row validated by models that saw its copy favours the start that
    memorises (the random start won at z = 3.3 on 60 rows repeated 4 times, and did worse
    than PCA's start on new rows). Without copies the folds are the same either way.
    """
    order = np.random.default_rng(derive_seeds(seed, 1)[0]).permutation(n_rows)
    if groups is None:
        return [np.sort(order[i::_FOLDS]) for i in range(_FOLDS)]
    position = np.empty(n_rows, dtype=np.int64)
    position[order] = np.arange(n_rows)
    first = np.full(int(groups.max()) + 1, n_rows)
    np.minimum.at(first, groups, position)  # each group's first place in the order
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    fold = rank[groups] % _FOLDS
    return [np.flatnonzero(fold == i) for i in range(_FOLDS)]


def select_start(
    params: dict[str, Any],
    rows: torch.Tensor | RowSource,
    stats: dict[str, np.ndarray],
    threads: ThreadChoice | None = None,
) -> tuple[dict[str, Any], Selection]:
    """The parameters of the final fit for ``init="auto"``, and the record of the choice.

    ``params`` are the estimator's parameters with ``random_state`` already a seed (or
    None); the returned ones have ``init`` set to ``"pca"`` or ``"random"`` (and
    ``improvement_z`` to 0 where the trained PCA start won). Each fold fit draws its own seed
    from ``random_state``, so a fixed seed repeats the choice.
    """
    rule = selection_applies(params, rows, stats)
    if rule != "cross-fit":
        return {**params, "init": "pca"}, Selection(rule)
    assert isinstance(rows, torch.Tensor)
    n_rows = len(rows)
    folds = cross_fit_folds(n_rows, params["random_state"], row_groups(rows))
    seeds = derive_seeds(params["random_state"], 2 * len(folds) + 1)[1:]
    need = float(params["improvement_z"])  # the guard's threshold, with power
    names = (REFERENCE, *CANDIDATES)
    found = {name: torch.zeros(n_rows, dtype=torch.float64) for name in names}
    seen = torch.zeros(n_rows, dtype=torch.bool)  # the rows the random start validated
    for name, dealt in _ROUNDS:
        if name == "random" and dealt[0] >= 2 and _steps(found, seen, need)[2] <= -need:
            break  # it trails clearly on 2 folds: it is not taken
        j = list(CANDIDATES).index(name)
        fits = [
            ({**params, **CANDIDATES[name], "random_state": seeds[2 * i + j], "verbose": 0}, held)
            for i, held in enumerate(folds)
            if i in dealt
        ]
        errors = _fold_errors(fits, rows, stats, threads)
        for (_, held), (start, trained) in zip(fits, errors, strict=True):
            found[name][held] = trained
            if name == "pca":  # the trained PCA start's epoch 0 is PCA's solution
                found[REFERENCE][held] = start
            else:
                seen[torch.from_numpy(held)] = True
    chosen, z_pca, z_random = _steps(found, seen, need)
    # the z of the last step taken, or how near the better trained start came
    z = z_random if chosen == "random" else z_pca if chosen else max(z_pca, z_random)
    z = max(min(z, 1e9), -1e9)
    means = {REFERENCE: float(found[REFERENCE].mean()), "pca": float(found["pca"].mean())}
    means["random"] = float(found["random"][seen].mean())
    random_folds = sum(bool(seen[torch.from_numpy(held)].all()) for held in folds)
    logger.info(
        "init='auto': %d-fold cross-fitted error per row: PCA's solution %.4g, trained from "
        "PCA's solution %.4g, from a random start %.4g (%d folds): %s (%.2f standard errors; "
        "%g needed)",
        len(folds), means[REFERENCE], means["pca"], means["random"], random_folds,
        f"trained from the {chosen} start" if chosen else "PCA's start, guarded", z, need,
    )  # fmt: skip
    changes = CANDIDATES[chosen] if chosen else {"init": "pca"}
    improvement_z = changes.get("improvement_z")
    record = Selection(
        "cross-fit", changes["init"], len(folds), means, z, improvement_z, random_folds
    )
    return {**params, **changes}, record


def _steps(
    found: dict[str, torch.Tensor], seen: torch.Tensor, need: float
) -> tuple[str | None, float, float]:
    """The candidate taken (None: PCA's start, guarded) and the z-scores of both steps.

    Each step away from PCA's solution needs ``need`` standard errors of evidence, paired
    over the rows: first the model trained from PCA's solution against that solution, then
    the random start against the better of those two, on the rows it was validated on
    (``seen``). The random start's fits vary more from seed to seed than the PCA start's, so a
    tie between the two trained models keeps the PCA start.
    """
    chosen, kept = None, found[REFERENCE]
    _, z_pca = paired_z(kept, found["pca"])
    if z_pca >= need:
        chosen, kept = "pca", found["pca"]
    z_random = paired_z(kept[seen], found["random"][seen])[1] if bool(seen.any()) else 0.0
    if z_random >= need:
        chosen = "random"
    return chosen, z_pca, z_random


def _fold_errors(
    fits: list[tuple[dict[str, Any], np.ndarray]],
    rows: torch.Tensor,
    stats: dict[str, np.ndarray],
    threads: ThreadChoice | None,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each ``(params, held)`` fit's per-row errors on ``held``: of the start, and trained.

    The model is trained from the start on the other rows.

    Fits of as many training rows train as one stacked network
    (:func:`~aekit.training.ensemble.fit_together`), each on its own rows, as an ensemble's
    members do: the same models up to float rounding. The folds differ in size by a row at
    most (more where copies of a row keep to one fold), so a start's five fits train as one
    or two stacks, each as long as its longest fit. Side by side on this project's 2-core
    machine (``benchmarks/tabular.py --seeds 1 --jobs 1 --inits auto --codes 1,2,3``, before
    and after, four times each, medians): the 15 fits of the numeric tables that searched
    took 0.82 x the time (wine 0.66, breast cancer 0.75, stocks 0.79, diabetes 0.92, iris
    0.96), every start chosen as before. Models whose stack runs through ``vmap`` (not
    :func:`~aekit.model.stacked.runs_on_member_axis`: categorical blocks, images, sparse
    codes) train one after another: stacked, the penguins tables took 1.12 and 1.16 x.
    """
    built = []
    for params, held in fits:
        train = np.setdiff1d(np.arange(len(rows)), held)
        train_rows, held_rows = rows[torch.from_numpy(train)], rows[torch.from_numpy(held)]
        fold_stats = {**stats, "n_rows": np.asarray(len(train))}
        resolved = resolve_configs(params, fold_stats)
        module, train_config, _ = initial_model(params, train_rows, fold_stats, resolved)
        trainer = Trainer(module, train_config)
        trainer.thread_choice = threads
        built.append((trainer, train_rows, held_rows, _row_errors(module, held_rows)))
    sizes: dict[int, list[int]] = {}
    for i, (_, train_rows, _, _) in enumerate(built):
        sizes.setdefault(len(train_rows), []).append(i)
    for group in sizes.values():
        trainers, data = [built[i][0] for i in group], [built[i][1] for i in group]
        native = runs_on_member_axis(trainers[0].module.config)  # (vmap'd stacks: no faster)
        if native and stack_refusal(trainers, data) is None:
            fit_together(trainers, data)
        else:
            for trainer, train_rows in zip(trainers, data, strict=True):
                trainer.fit(train_rows)
    return [(start, _row_errors(t.module, held_rows)) for t, _, held_rows, start in built]


@torch.no_grad()
def _row_errors(module: Hourglass, rows: torch.Tensor) -> torch.Tensor:
    """The module's error on each row, as ``reconstruction_error`` measures it (float64, CPU).

    Nothing is hidden: a row with holes is measured on its observed entries.
    """
    module.eval()
    device = next(module.parameters()).device
    out, scaled = forward_rows(module, rows.to(device))
    return row_squared_error(out.recon, scaled, module.group_members).double().cpu()
