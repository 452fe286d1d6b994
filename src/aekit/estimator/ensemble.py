"""Fit an ensemble's :class:`Autoencoder` members in one pass, as one stacked network.

The outlier detector's and the imputer's members are clones of one autoencoder that
differ in ``random_state``. :func:`fit_members` prepares each member as its own
:meth:`Autoencoder.fit` would (checked rows, ``"auto"`` rules, the network, its PCA start;
``init="auto"`` without its search, see :func:`fit_members`),
then trains them together (:func:`aekit.training.ensemble.fit_together`): one forward,
backward and optimiser step per batch for all members. Each member comes back a fitted
:class:`Autoencoder` as if fitted alone (same seeds, same history, same weights up to float
rounding), so the folders they are saved in are those of a sequential fit.

Where the members cannot share a network (sparse or streamed rows, DDP, dropout,
checkpoints...: :func:`aekit.training.ensemble.stack_refusal`), they are fitted one after
another, each exactly as ``member.fit(X)``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ..training.ensemble import fit_together, stack_refusal
from .autoencoder import Autoencoder

__all__ = ["fit_members"]

logger = logging.getLogger("aekit")


def _alike(members: Sequence[Any]) -> bool:
    """Whether ``members`` are plain Autoencoders whose parameters differ at most in seed."""
    if not all(type(m) is Autoencoder for m in members):
        return False
    first = {**members[0].get_params(deep=False), "random_state": None}
    return all(
        repr({**m.get_params(deep=False), "random_state": None}) == repr(first) for m in members[1:]
    )


def fit_members(members: Sequence[Autoencoder], X: Any, *, together: bool = True) -> list[Any]:
    """Fit ``members`` on ``X``; in one pass where they can train as one network.

    Parameters
    ----------
    members : sequence of Autoencoder
        Unfitted clones of one autoencoder, differing at most in ``random_state``. Other
        estimators (or differing parameters) are fitted one after another.
    X : array-like of shape (n_samples, n_features)
        The training rows, as :meth:`Autoencoder.fit` takes them.
    together : bool, default=True
        False fits them one after another whatever they are (the reference the one-pass fit
        is tested against).

    With a ``checkpoint_dir``, member ``i`` writes its checkpoints in its folder
    ``member-i`` (a fresh run into a folder with another run's checkpoints is refused).

    Members start as their ``init`` says, except that ``init="auto"`` starts from PCA's
    solution without its cross-fitted search (as ``partial_fit`` does): one member or five,
    in one pass or one after another, every member of an ensemble does the same work. (Before,
    a lone member of ``init="auto"`` on a small table ran the search, 11 fits, and five did
    not: a detector given ``Autoencoder()`` fitted 5 members in 3.3 s and 1 in 16.7 s,
    ``benchmarks/ensembles.py``.)

    Returns
    -------
    list
        The members, fitted (the same objects).
    """
    alike = _alike(members)
    folder = getattr(members[0], "checkpoint_dir", None) if len(members) > 1 else None
    if folder is not None:  # each member's checkpoints in a folder of its own
        for i, member in enumerate(members):
            member.set_params(checkpoint_dir=os.path.join(os.fspath(folder), f"member-{i}"))
    if not alike:
        return [m.fit(X) for m in members]
    with contextlib.ExitStack() as opened:
        built, threads, stacked = [], None, len(members) if together else 1
        for member in members:
            rows, stats = opened.enter_context(member._training_rows(X, reset=True))
            trainer, scaling, _ = member._build(
                rows, stats, (), threads, select=False, members=stacked
            )
            threads = trainer.thread_choice  # chosen (or probed) once, for the stack
            built.append((rows, trainer, scaling))
        trainers = [trainer for _, trainer, _ in built]
        if not together:
            reason: str | None = "together=False"
        elif len(trainers) < 2:
            reason = "one member"
        else:
            reason = stack_refusal(trainers, built[0][0])
        if reason is None:
            fit_together(trainers, built[0][0])
        else:
            logger.debug("ensemble members fitted one after another: %s", reason)
            for rows, trainer, _ in built:
                if trainer.thread_choice is not None:  # probed again (if so) as one model
                    trainer.thread_choice = replace(trainer.thread_choice, members=1)
                trainer.fit(rows)
    return [m._keep_fit(t, scaling) for m, (_, t, scaling) in zip(members, built, strict=True)]
