"""An ensemble's members trained in one pass: their trainers in lock step over one stacked network.

:func:`fit_together` trains ``n`` :class:`~aekit.training.Trainer` objects, one per member,
as one :class:`~aekit.model.stacked.StackedHourglass`. Every member keeps what makes it the
member a sequential fit would train: its seeds (validation split, epoch orders, masking and
noise draws come from its own generators, called in the same order), its callbacks (early
stopping, its best weights, logging), its history and its learning-rate schedule. What is
shared is the work: one gather of the members' batches, one forward and backward pass of
the stacked network and one optimiser step per batch, for every member still training.
The members may also train on rows of their own, as many each (the cross-fitted search of
``init="auto"``: each fold fit on the other folds); each batch is then gathered member by
member.

A member that stops (early stopping, ``max_time``) is frozen: its weights stay those of its
last epoch (its callbacks then load its best ones), and the stack drops its slice, so the
remaining members train as a smaller stack. The results equal a sequential fit's up to the
rounding of batched matrix products (``tests/test_ensembles.py`` compares them member by
member). The stack runs at one thread count, the first member's (chosen once, and probed
again between epochs by the first member still training alone: each member probing on its
own cost one probe a member and let them disagree), and every member's history records it.
The probes time the stack, not one member (``ThreadChoice.members``): its batched products
gain from threads where one member's small products do not (the imputer's five 120-unit
members on breast cancer, a step at 1 and 2 threads: 5.0 and 3.6 ms; one member 1.7 and 1.5;
one scratch call of ``probe_seconds`` each).
Two figures are the stack's rather than the member's: an epoch's ``seconds`` (and
``samples_per_s``) are the joint epoch's, and ``max_time`` counts the joint run's seconds, so
where it binds a member trains fewer epochs than alone.

:func:`stack_refusal` names what keeps members from training together (streamed or sparse
rows, DDP, checkpoints, divergence retries, a plateau schedule, dropout...); the estimator
then fits them one after another.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from ..data.sources import RowSource
from ..model.stacked import StackedHourglass
from ..model.stacked import stack_refusal as model_refusal
from .denormals import flushing_denormals
from .history import History
from .objective import Objective, autocast
from .optim import make_optimizer
from .prepare import to_device
from .threads import ThreadChoice, run_threads, using_threads
from .trainer import Trainer

__all__ = ["fit_together", "stack_refusal"]


def stack_refusal(trainers: Sequence[Trainer], data: Any) -> str | None:
    """Why ``trainers`` cannot train together on ``data``, or None when they can.

    They can where their model configs are one (:func:`aekit.model.stacked.stack_refusal`),
    their training configs differ at most in ``random_state``, their input scalings are
    one, the rows are a dense tensor in memory (or one such tensor a member, all as many
    rows), and no feature needs a member alone: DDP, ``compile``, checkpoints, divergence
    retries, a plateau schedule (each member's rate would follow its own losses).
    """
    if len(trainers) < 2:
        return "fewer than 2 members"
    if isinstance(data, (list, tuple)):  # a tensor a member: each member's own rows
        if len(data) != len(trainers):
            return f"{len(data)} row tensors for {len(trainers)} members"
        if not all(_dense(d) for d in data):
            return "the rows are not a dense tensor a member"
        if len({tuple(d.shape) for d in data}) > 1:
            return "the members' rows differ in shape"
        data = data[0]
    reason = model_refusal([t.module for t in trainers])
    if reason is not None:
        return reason
    first = {**trainers[0].config.to_dict(), "random_state": None}
    if any({**t.config.to_dict(), "random_state": None} != first for t in trainers[1:]):
        return "the members' training configs differ"
    cfg = trainers[0].config
    refusals = {
        "the rows are not a dense tensor in memory": not _dense(data),
        "DDP trains one model per process group": trainers[0].world_size > 1,
        "compile=True": cfg.compile,
        "checkpoints are written per member": cfg.checkpoint_dir is not None,
        "divergence retries rerun one member's epoch": cfg.divergence_retries > 0,
        "lr_schedule='plateau' follows each member's own losses": cfg.lr_schedule == "plateau",
    }
    lead = trainers[0].module
    refusals["the members' input scalings differ"] = not all(
        torch.equal(t.module.offset, lead.offset) and torch.equal(t.module.scale, lead.scale)
        for t in trainers
    )
    return next((why for why, refused in refusals.items() if refused), None)


def _dense(data: Any) -> bool:
    """Whether ``data`` is a dense (strided) tensor: not a sparse one, not a stream."""
    return isinstance(data, torch.Tensor) and data.layout == torch.strided


def fit_together(
    trainers: Sequence[Trainer], data: torch.Tensor | Sequence[torch.Tensor]
) -> list[History]:
    """Train every trainer's module on ``data`` in one pass; each one's :class:`History`.

    Equivalent to ``[t.fit(data) for t in trainers]`` (within float rounding) for trainers
    that :func:`stack_refusal` accepts; the modules end with their best weights as there.
    ``data`` may be a sequence of tensors, one a trainer, of one shape: each member then
    trains (and validates) on its own rows, as ``[t.fit(d) for t, d in zip(trainers, data)]``
    (the cross-fitted search of ``init="auto"`` trains its fold fits so).

    Raises
    ------
    ValueError
        If :func:`stack_refusal` refuses them.
    TrainingDivergedError
        If a member's loss becomes NaN or infinite.
    """
    reason = stack_refusal(trainers, data)
    if reason is not None:
        raise ValueError(f"these members cannot train together: {reason}")
    each = list(data) if isinstance(data, (list, tuple)) else [data] * len(trainers)
    sources = [t._prepare(rows) for t, rows in zip(trainers, each, strict=True)]
    if not isinstance(data, (list, tuple)):  # shared rows: one source reads them for all
        sources = [sources[0]] * len(trainers)
    lead = trainers[0]
    count = run_threads(lead, sources[0], members=len(trainers))  # probed as the stack
    with using_threads(count), flushing_denormals(lead.device):
        for t, source in zip(trainers, sources, strict=True):
            t.thread_choice = lead.thread_choice  # the stack runs at one count: the lead's
            run_threads(t, source)  # recorded in each history, no probe
            t._begin(source)
        stack = StackedHourglass([t.module for t in trainers])
        optimizer = make_optimizer(stack.net, lead.config)
        choice = lead.thread_choice  # the stack's count, with its probe's timings
        try:
            while len(stack):
                choice = _fit_epoch(trainers, stack, optimizer, sources, choice)
                optimizer = _drop_finished(trainers, stack, optimizer)
        except KeyboardInterrupt:
            for t in trainers:
                t._notify("on_interrupt")
            raise
        finally:
            stack.write_back()  # each member its own weights, none held by the stack
        for t in trainers:
            t._finish()
    return [t.history for t in trainers]


def _finished(trainer: Trainer) -> bool:
    return bool(trainer._stop_reason) or trainer.position["epoch"] >= trainer.config.epochs


def _fit_epoch(
    trainers: Sequence[Trainer],
    stack: StackedHourglass,
    optimizer: torch.optim.Optimizer,
    sources: Sequence[RowSource],
    choice: ThreadChoice | None,
) -> ThreadChoice | None:
    """One epoch of every member still training: joint steps, then each member's own end.

    ``sources``: each trainer's rows (one source for all where they share them).

    ``choice`` is the stack's thread count: the first member still training holds it (and
    probes again where its epoch asks), the others a copy without the probe's timings, so
    one probe at most an epoch decides for all. Returns the count for the next epoch.
    """
    members = [trainers[i] for i in stack.positions]
    reads = [sources[i] for i in stack.positions]
    shared = all(s is reads[0] for s in reads)  # one gather of every member's rows
    orders = []
    for t, source in zip(members, reads, strict=True):
        t._notify("on_epoch_begin", epoch=t.position["epoch"] + 1)
        order, _, n_batches = t._epoch_order(source, t.train_idx)
        orders.append(order)
    for group, own in zip(optimizer.param_groups, members[0].optimizer.param_groups, strict=True):
        group["lr"] = own["lr"]  # the members' schedules agree: one config, one epoch count
    order = torch.stack(orders).to(reads[0].data.device)  # type: ignore[attr-defined]
    batch_size = members[0].config.batch_size
    tick = time.perf_counter()
    stack.train()
    for batch in range(n_batches):
        end = order.shape[1] if batch == n_batches - 1 else (batch + 1) * batch_size
        rows = order[:, batch * batch_size : end]
        if shared:
            x = to_device(reads[0].take(rows.reshape(-1)), members[0].device)
        else:
            parts = zip(reads, rows, strict=True)  # each member's own rows
            x = torch.cat([to_device(s.take(r), members[0].device) for s, r in parts])
        _step(members, stack, optimizer, x.view(len(members), rows.shape[1], -1), batch)
        for t in members:
            t.position["batch"] = batch + 1
            for cb in t.callbacks:
                cb.on_batch_end(t, batch=batch + 1, n_batches=n_batches)
    seconds = time.perf_counter() - tick  # the members' modules view the stack: no copy
    prober = members[0]
    if choice is not None:  # a probe again times this epoch's stack
        choice = replace(choice, members=len(members))
    for t, source in zip(members, reads, strict=True):
        if choice is not None:
            t.thread_choice = choice if t is prober else replace(choice, seconds={})
        record = t._epoch_record(t.train_idx, 0, seconds, source.n_features)
        t._end_epoch(source, record, [None, None])
    if choice is None:
        return None
    choice = prober.thread_choice or choice  # probed again, or as it was
    for t in members[1:]:  # those that go on record the count they train at next
        if not _finished(t):
            t.thread_choice, t.history.threads = replace(choice, seconds={}), choice.count
    return choice


def _member_loss(
    objective: Objective,
    local_rows: int,
    forward: Any,
    noisy: torch.Tensor,
    clean: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One member's step loss, reconstruction sum and penalty (zero without one)."""
    out = forward(noisy)
    loss, recon_sum, penalty = objective(out, clean, local_rows, local_rows)
    return loss, recon_sum, loss.new_zeros(()) if penalty is None else penalty


def _step(
    members: Sequence[Trainer],
    stack: StackedHourglass,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    batch: int,
) -> None:
    """One optimiser step of every member on its rows ``x[i]`` (raw, shape (n, rows, features)).

    Each member's masking and noise come from its own generator, as in its own
    :meth:`Trainer._step`; the losses are summed, so each stacked slice gets its member's
    gradient alone.
    """
    lead = members[0]
    rows = x.shape[1]
    with autocast(lead.device, lead.config.precision):
        clean = lead.module.scale_input(x)  # one scaling for all (checked in fit_together)
        pairs = zip(members, clean, strict=True)
        noisy = torch.stack([t.objective.inputs(c, t.noise_gen, t._bounds) for t, c in pairs])
        if stack.native and not lead.objective.penalised:  # no vmap: the sum of the losses
            out = stack.forward(noisy)
            recon_sum = lead.objective.member_sums(out, clean)  # each member's, for its history
            total = lead.objective.total(recon_sum.sum(), out, clean, rows, rows)[0]
            penalty = torch.zeros_like(recon_sum)
        else:
            loss_fn = functools.partial(_member_loss, lead.objective, rows)
            loss, recon_sum, penalty = stack.map(loss_fn, noisy, clean)
            total = loss.sum()
    if lead.device.type == "cpu" and not math.isfinite(total.item()):  # free on the CPU
        bad = int((~torch.isfinite(recon_sum)).nonzero().flatten()[:1].sum())
        raise members[bad].diverged_error(step=batch + 1)
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    recon_sum, penalty = recon_sum.detach(), penalty.detach()
    for i, t in enumerate(members):
        t.epoch_sums[0].add_(recon_sum[i])
        if t.objective.penalised:
            t.epoch_sums[1].add_(penalty[i])


def _drop_finished(
    trainers: Sequence[Trainer], stack: StackedHourglass, optimizer: torch.optim.Optimizer
) -> torch.optim.Optimizer:
    """Drop finished members' slices from the stack; the optimiser over what is left."""
    keep = [slot for slot, i in enumerate(stack.positions) if not _finished(trainers[i])]
    if len(keep) == len(stack):
        return optimizer
    moved = stack.keep(keep)
    if not keep:
        return optimizer
    fresh = make_optimizer(stack.net, trainers[0].config)
    for old_group, group in zip(optimizer.param_groups, fresh.param_groups, strict=True):
        group["lr"] = old_group["lr"]
    for old, new in moved.items():
        index = torch.tensor(keep, device=old.device)
        fresh.state[new] = {
            name: value.index_select(0, index) if value.dim() > 0 else value.clone()
            for name, value in optimizer.state.get(old, {}).items()
        }
    return fresh
