"""Several hourglasses of one config run as one network: their weights stacked on a first axis.

An ensemble's members (the outlier detector's, the imputer's) share an architecture and
differ only in their weights. :class:`StackedHourglass` holds ``n`` :class:`Hourglass`
members' parameters and buffers as tensors of shape ``(n, ...)`` and runs every member's
forward pass at once: :func:`torch.func.vmap` over :func:`torch.func.functional_call` of the
one :class:`Hourglass` definition, so a member computes exactly what its own module would,
up to the rounding of a batched matrix product. One backward pass and one optimiser step
then train every member: the members never mix (each stacked slice gets its own member's
gradient), and Adam's update is element-wise.

An MLP (batch norm allowed; no categorical blocks, image layers or code penalty; missing
values are fine) runs without ``vmap``: every operation of its forward pass takes a leading member
axis as it is, except the linear layers, which become :class:`MemberLinear` layers (one
batched matrix product, ``torch.baddbmm``, each), and the batch norms, which become
:class:`MemberBatchNorm1d` layers (one batch norm whose channels are every member's features).
That saves ``vmap``'s per-operation cost, most of the step of a small model, and the dispatch
a :class:`torch.overrides.TorchFunctionMode` would add to every operation (an earlier version
used one: 0.45 ms of a 2.7 ms step of five 48-unit members). With batch norm (the imputer's
members) a step of five 32-unit members took 12 ms under ``vmap`` and 5 ms without it (ADBench's
glass, one thread, under a profiler).

Layers that draw random numbers inside the forward pass (dropout) cannot keep each member's
own random stream under ``vmap``: :func:`stack_refusal` names such settings, and the caller
trains those members one after another instead.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap
from torch.nn import functional as F

from ..config.configs import ModelConfig
from .hourglass import Hourglass, Output

__all__ = [
    "MemberBatchNorm1d",
    "MemberLinear",
    "StackedHourglass",
    "runs_on_member_axis",
    "stack_refusal",
]


def stack_refusal(members: Sequence[Hourglass]) -> str | None:
    """Why ``members`` cannot run as one stacked network, or None when they can.

    They must share one config, draw no random numbers in their forward pass (no dropout),
    need no per-member step outside it (an L1 code's decoder normalisation, top-k's
    dead-unit counters) and share the count of any cumulative (``momentum=None``) batch norm.
    """
    if not members:
        return "no members"
    config = members[0].config
    if any(m.config != config for m in members[1:]):
        return "the members' model configs differ"
    if config.dropout > 0:
        return f"dropout={config.dropout} draws random numbers inside the forward pass"
    if config.sparsity in ("l1", "topk"):
        return f"sparsity={config.sparsity!r} updates each member outside its forward pass"
    if len({_cumulative_counts(m) for m in members}) > 1:
        return "batch norms with momentum=None have counted different numbers of batches"
    return None


def _cumulative_counts(member: Hourglass) -> tuple[int, ...]:
    """The batch counts of ``member``'s batch norms that average cumulatively (no momentum).

    A stacked batch norm steps every member's running statistics by one shared factor, which
    for ``momentum=None`` is one over the count: members must have counted alike.
    """
    return tuple(
        int(m.num_batches_tracked)
        for m in member.modules()
        if isinstance(m, nn.BatchNorm1d)
        and m.momentum is None
        and m.num_batches_tracked is not None
    )


def runs_on_member_axis(config: ModelConfig) -> bool:
    """Whether an hourglass of ``config`` runs on rows of shape (n, rows, features) as it is.

    True for an MLP whose only layers that mix a row's features are linear ones and batch
    norms (as :class:`MemberLinear` and :class:`MemberBatchNorm1d`): no table blocks (sliced
    on axis 1), image layers or code activations and penalties (top-k, L1, KL). Missing
    values' indicators join the feature axis, the last.
    """
    return config.image_shape is None and not config.categorical_blocks and config.sparsity is None


class MemberLinear(nn.Linear):
    """A linear layer whose weight (n, out, in) and bias (n, out) hold ``n`` members' layers.

    Rows of shape (n, rows, in) give (n, rows, out): row block ``i`` goes through member
    ``i``'s layer, in one batched matrix product. :class:`StackedHourglass` turns the
    ``nn.Linear`` layers of its stacked copy into these where :func:`runs_on_member_axis`.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's layer on its rows ``x[i]``."""
        if self.bias is None:
            return torch.bmm(x, self.weight.transpose(1, 2))
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))


class MemberBatchNorm1d(nn.BatchNorm1d):
    """A batch norm whose weight, bias and running statistics (n, features) hold ``n`` members'.

    Rows of shape (n, rows, features) give the same shape: each member's rows are normalised
    by their own batch statistics (or its running ones in evaluation), which its running
    statistics follow, as its own ``nn.BatchNorm1d`` would. One ``batch_norm`` call does it,
    on the rows laid side by side, ``(rows, n · features)``: its channels are every member's
    features, and a channel's statistics are over the rows alone. The momentum rule is
    ``nn.BatchNorm1d``'s (``momentum=None``: a cumulative average over the members' shared
    count of batches; :func:`stack_refusal` refuses members that counted differently).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's batch norm on its rows ``x[i]``."""
        n, rows, width = x.shape
        factor = 0.0 if self.momentum is None else self.momentum
        tracking = self.training and self.track_running_stats
        if tracking and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked.reshape(-1)[0])
        use_batch = self.training or self.running_mean is None
        running = [
            None if r is None or (self.training and not self.track_running_stats) else r.view(-1)
            for r in (self.running_mean, self.running_var)
        ]
        side_by_side = x.transpose(0, 1).reshape(rows, n * width)
        out = F.batch_norm(
            side_by_side,
            *running,
            None if self.weight is None else self.weight.reshape(-1),
            None if self.bias is None else self.bias.reshape(-1),
            use_batch,
            factor,
            self.eps,
        )
        return out.view(rows, n, width).transpose(0, 1)


def _own_tensors(module: nn.Module) -> None:
    """Give ``module``'s parameters and buffers their own copies of the values they view."""
    for tensor in (*module.parameters(), *module.buffers()):
        tensor.data = tensor.data.clone()


def _set_tensor(module: nn.Module, name: str, value: torch.Tensor, parameter: bool) -> None:
    """Put ``value`` in place of the parameter or buffer ``name`` (a dotted path)."""
    owner_name, _, attr = name.rpartition(".")
    owner = module.get_submodule(owner_name)
    if parameter:
        owner.register_parameter(attr, nn.Parameter(value))
    else:
        owner.register_buffer(attr, value, persistent=attr not in owner._non_persistent_buffers_set)


class StackedHourglass:
    """``n`` :class:`Hourglass` members of one config as one network with stacked weights.

    Parameters
    ----------
    members : sequence of Hourglass
        The members, one config (see :func:`stack_refusal`). Their weights are copied in,
        and their parameters and buffers then view their slices of the stack (every step
        is in them at once) until :meth:`write_back` gives them their own copies.

    Attributes
    ----------
    net : Hourglass
        A copy of the first member whose parameters and buffers have a leading member
        axis: what an optimiser steps (``make_optimizer(stack.net, config)``). It is never
        called directly; :meth:`map` runs it once per member.
    positions : list of int
        For each slice of the stack, the index of its member in ``members``.
    """

    def __init__(self, members: Sequence[Hourglass]) -> None:
        reason = stack_refusal(members)
        if reason is not None:
            raise ValueError(f"these members cannot be stacked: {reason}")
        self.members = list(members)
        self.positions = list(range(len(self.members)))
        self.net = copy.deepcopy(self.members[0])
        with torch.no_grad():
            for name, _ in list(self.net.named_parameters()):
                each = [m.get_parameter(name) for m in self.members]
                _set_tensor(self.net, name, torch.stack([p.detach() for p in each]), True)
            for name, buffer in list(self.net.named_buffers()):
                if buffer is not None:
                    each = [m.get_buffer(name) for m in self.members]
                    _set_tensor(self.net, name, torch.stack(each), False)
        self._link()
        if self.native:  # stacked weights: each linear layer one batched product
            for module in self.net.modules():
                if type(module) is nn.Linear:
                    module.__class__ = MemberLinear
                elif type(module) is nn.BatchNorm1d:
                    module.__class__ = MemberBatchNorm1d

    def __len__(self) -> int:
        return len(self.positions)

    def train(self, mode: bool = True) -> StackedHourglass:
        """Training or evaluation mode for every member (batch norm, dropout)."""
        self.net.train(mode)
        return self

    def map(self, fn: Callable[..., Any], *stacked: Any) -> Any:
        """``fn(forward, *args)`` for every member at once; results stacked on a first axis.

        Parameters
        ----------
        fn : callable
            Called as ``fn(forward, *args)`` with ``forward`` the member's forward pass
            (:meth:`Hourglass.forward` with that member's weights) and ``args`` the member's
            slices of ``stacked``. It must return tensors (or tuples of them).
        *stacked : Tensor of shape (n_members, ...)
            One slice per member.
        """
        params = dict(self.net.named_parameters())
        buffers = {k: v for k, v in self.net.named_buffers() if v is not None}

        def one(params: dict[str, Any], buffers: dict[str, Any], *args: Any) -> Any:
            def forward(x: torch.Tensor) -> Any:
                return functional_call(self.net, (params, buffers), (x,))

            return fn(forward, *args)

        return vmap(one, randomness="error")(params, buffers, *stacked)

    @property
    def native(self) -> bool:
        """Whether :meth:`forward` runs without ``vmap`` (:func:`runs_on_member_axis`)."""
        return runs_on_member_axis(self.net.config)

    def forward(self, x: torch.Tensor) -> Output:
        """Every member's :class:`~aekit.model.Output` for its scaled rows ``x[i]``.

        Each field has a leading member axis (``recon`` of shape (n, rows, features)).
        """
        if self.native:
            return self.net(x)
        return Output(*self.map(lambda forward, rows: tuple(forward(rows)), x))

    @torch.no_grad()
    def _link(self) -> None:
        """Point each member's parameters and buffers at its slice of the stack (no copy).

        Every optimiser step is then in the members at once: validation, early stopping and
        the best-weights copies read them between epochs without a copy of every weight
        (which cost 7 ms an epoch for five 32-unit members, more than their three steps).
        """
        for slot, index in enumerate(self.positions):
            member = self.members[index]
            for name, value in self.net.named_parameters():
                member.get_parameter(name).data = value.detach()[slot]
            for name, value in self.net.named_buffers():
                if value is not None:
                    member.get_buffer(name).data = value[slot]

    @torch.no_grad()
    def write_back(self) -> None:
        """Give each member its own copy of its weights and buffers, unlinked from the stack.

        Until then a member's tensors are views of its slice (:meth:`_link`); a member whose
        slice :meth:`keep` dropped has its own copy already.
        """
        for member in self.members:
            _own_tensors(member)

    @torch.no_grad()
    def keep(self, slots: Sequence[int]) -> dict[nn.Parameter, nn.Parameter]:
        """Keep only the stack's ``slots`` (others' members are done); new parameters.

        Returns
        -------
        dict
            Each old stacked parameter → the new one that holds its kept slices, for an
            optimiser's state to follow (:func:`aekit.training.ensemble` does so).
        """
        index = torch.tensor(list(slots), dtype=torch.long)
        moved = {}
        for name, old in list(self.net.named_parameters()):
            _set_tensor(self.net, name, old.index_select(0, index.to(old.device)), True)
            moved[old] = self.net.get_parameter(name)
        for name, old in list(self.net.named_buffers()):
            if old is not None:
                _set_tensor(self.net, name, old.index_select(0, index.to(old.device)), False)
        for slot, member in enumerate(self.positions):  # done: their own copies, so that
            if slot not in slots:  # no old stacked tensor is kept alive by their views
                _own_tensors(self.members[member])
        self.positions = [self.positions[s] for s in slots]
        self._link()  # the kept members follow their new slices
        return moved
