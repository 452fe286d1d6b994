"""Optimiser, parameter groups and learning-rate schedule of a training run."""

from __future__ import annotations

import warnings
from typing import Any

import torch

from ..config.configs import TrainConfig
from ..model.hourglass import Hourglass
from ..model.sparse_net import aligned_row_blocks
from .history import monitored_loss

__all__ = [
    "Adam",
    "AdamW",
    "LazyAdam",
    "LazyAdamW",
    "make_optimizer",
    "make_scheduler",
    "param_groups",
    "partly_stepped",
    "scale_lr",
    "step_schedule",
]


def make_optimizer(
    module: Hourglass, cfg: TrainConfig, *, lazy: bool = False
) -> torch.optim.Optimizer:
    """Adam(W) with the fused kernel (one pass over all parameters) where the device has it.

    The fused and the for-each implementations keep the same state, so checkpoints move
    between them; the per-tensor loop PyTorch picks by default on the CPU is the slowest.
    Weight decay spares a top-k code's own layers (see :func:`param_groups`). ``lazy``: a
    :class:`LazyAdam` (sparse input's first layer, see :mod:`aekit.model.sparse_net`).
    """
    if lazy:
        kind = LazyAdamW if cfg.optimizer == "adamw" else LazyAdam
    else:
        kind = AdamW if cfg.optimizer == "adamw" else Adam
    groups = param_groups(module, cfg.weight_decay)
    try:
        return kind(groups, lr=cfg.lr, fused=True)
    except RuntimeError:  # a device without fused Adam (e.g. MPS on older PyTorch)
        return kind(groups, lr=cfg.lr, foreach=True)


def _undecorated(method: Any) -> Any:
    """``method`` without PyTorch's lazy ``torch._dynamo`` wrapper (itself where it has none)."""
    return getattr(method, "__wrapped__", method)


def _fused_kernel(
    group: dict[str, Any],
    decoupled: bool,
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avgs: list[torch.Tensor],
    exp_avg_sqs: list[torch.Tensor],
    steps: list[torch.Tensor],
) -> None:
    """PyTorch's fused Adam kernel (AdamW's where ``decoupled``) on these tensors.

    With ``group``'s hyper-parameters, no AMSGrad, not maximizing; ``steps`` already count
    this step. The one call of both the direct step and the sparse path's block steps.
    """
    kernel = torch._fused_adamw_ if decoupled else torch._fused_adam_
    beta1, beta2 = group["betas"]
    kernel(
        params,
        grads,
        exp_avgs,
        exp_avg_sqs,
        [],
        steps,
        amsgrad=False,
        lr=group["lr"],
        beta1=beta1,
        beta2=beta2,
        weight_decay=group["weight_decay"],
        eps=group["eps"],
        maximize=False,
    )


class _DirectFused:
    """Adam(W) that steps through the fused kernel itself, without importing ``torch._dynamo``.

    PyTorch wraps ``Optimizer.add_param_group``, ``zero_grad``, ``state_dict``,
    ``load_state_dict`` and ``Adam.step`` in guards that import ``torch._dynamo`` on their
    first call: 1.2–1.8 s on this project's CPU machine, paid by every process that trains
    (each CLI command), for a compiler aekit's eager training never uses. This class calls
    the undecorated methods and, for the fused kernel with its default options, the kernel
    itself (``torch._fused_adam_``/``torch._fused_adamw_``, one call per step and group, as
    PyTorch's fused path makes on one device), so steps and state match
    ``torch.optim.Adam(fused=True)`` bit for bit; any other option takes PyTorch's own step.
    """

    add_param_group = _undecorated(torch.optim.Optimizer.add_param_group)
    zero_grad = _undecorated(torch.optim.Optimizer.zero_grad)
    state_dict = _undecorated(torch.optim.Optimizer.state_dict)
    load_state_dict = _undecorated(torch.optim.Optimizer.load_state_dict)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """One Adam(W) step of every parameter that has a gradient; ``closure``'s loss."""
        if not all(self._direct(group) for group in self.param_groups):  # type: ignore[attr-defined]
            return super().step(closure)  # type: ignore[misc]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:  # type: ignore[attr-defined]
            params, grads, avgs, squares, steps = [], [], [], [], []  # type: ignore[var-annotated]
            self._init_group(group, params, grads, avgs, squares, [], steps)  # type: ignore[attr-defined]
            if not params:
                continue
            torch._foreach_add_(steps, 1)
            _fused_kernel(
                group, group["decoupled_weight_decay"], params, grads, avgs, squares, steps
            )
        return loss

    def _direct(self, group: dict[str, Any]) -> bool:
        """Whether ``group``'s step may call the fused kernel directly.

        It may with default options, one device and dtype, no gradient scaler attached, and
        a PyTorch whose Adam and AdamW share one ``_init_group`` (those whose groups name
        ``decoupled_weight_decay``).
        """
        if not group.get("fused") or "decoupled_weight_decay" not in group:
            return False
        if getattr(self, "grad_scale", None) is not None:
            return False
        if any(group.get(k) for k in ("amsgrad", "maximize", "differentiable", "capturable")):
            return False
        if isinstance(group["lr"], torch.Tensor):
            return False
        kinds = {(p.device, p.dtype) for p in group["params"]}
        return len(kinds) <= 1


class Adam(_DirectFused, torch.optim.Adam):
    """``torch.optim.Adam`` whose fused steps do not import ``torch._dynamo``.

    See :class:`_DirectFused`.
    """


class AdamW(_DirectFused, torch.optim.AdamW):
    """``torch.optim.AdamW`` whose fused steps do not import ``torch._dynamo``.

    See :class:`_DirectFused`.
    """


def param_groups(module: Hourglass, weight_decay: float) -> list[dict[str, Any]]:
    """One group with ``weight_decay``; for top-k codes, a second one without it.

    A top-k unit that is not among a row's k largest gets no reconstruction gradient, so the
    weight decay is all its encoder row and decoder column see; Adam divides that gradient by
    its own running scale and shrinks them by about ``lr`` per step however small the decay.
    On MNIST (1,024 units, k = 32) that silenced over half the units within four epochs, past
    what the AuxK loss could revive. The code's own layers therefore train without decay.
    """
    exempt = module.code_parameters() if module.config.sparsity == "topk" else []
    ids = {id(p) for p in exempt}
    decayed = [p for p in module.parameters() if id(p) not in ids]
    groups = [{"params": decayed, "weight_decay": weight_decay}]
    if exempt:
        groups.append({"params": exempt, "weight_decay": 0.0})
    return [g for g in groups if g["params"]]


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> Any:
    """The ``lr_schedule``: cosine annealing over ``epochs``, halving on a plateau, or None."""
    if cfg.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    if cfg.lr_schedule == "plateau":
        patience = max(1, (cfg.patience or 10) // 3)
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=patience)
    return None


def step_schedule(scheduler: Any, record: dict[str, Any]) -> None:
    """Step ``scheduler`` (if any) at the end of the epoch ``record`` describes.

    A plateau schedule watches the loss early stopping watches (:func:`monitored_loss`).
    """
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(monitored_loss(record))
    elif scheduler is not None:
        with warnings.catch_warnings():  # a run resumed at an epoch's end steps no optimiser
            warnings.filterwarnings("ignore", "Detected call of `lr_scheduler")
            scheduler.step()


def scale_lr(optimizer: torch.optim.Optimizer, scheduler: Any, factor: float) -> None:
    """Multiply the learning rate, and the schedule's base rates, by ``factor``.

    What a divergence retry does before it runs the epoch again.
    """
    for group in optimizer.param_groups:
        group["lr"] *= factor
        if "initial_lr" in group:
            group["initial_lr"] *= factor
    if scheduler is not None:
        for name in ("base_lrs", "_last_lr"):
            if hasattr(scheduler, name):
                values = getattr(scheduler, name)
                setattr(scheduler, name, [v * factor for v in values])


def partly_stepped(optimizer: torch.optim.Optimizer) -> bool:
    """Whether a step of ``optimizer`` stopped partway: some weight blocks took it, some not.

    The sparse path's output weights are stepped a block of rows at a time during the backward
    pass (:meth:`_LazyColumns.block_step`), their step count settled by the :meth:`step` that
    follows. An exception in between (``MemoryError``, ``KeyboardInterrupt``) leaves the blocks
    stepped so far moved and the rest not: a state no uninterrupted run passes through, which
    nothing may continue from or save (:meth:`aekit.Autoencoder.partial_fit` refuses it).
    """
    return any("block_step" in p.__dict__ for g in optimizer.param_groups for p in g["params"])


class _LazyColumns:
    """Adam's update applied only to the columns a first layer's batch touched ("lazy" Adam).

    A parameter with column gradients waiting in its :func:`~aekit.model.sparse_net.lazy_grads`
    (sparse input's first layer: all rows of the batch's feature columns) has its moments and
    weights updated in those columns only, ``hidden × touched`` work instead of
    ``hidden × width``; every other parameter takes the dense step of the base class, with
    the same state (``step``, ``exp_avg``, ``exp_avg_sq``), so checkpoints load either way.

    The trade-off against dense Adam (as ``torch.optim.SparseAdam``'s): a column's moments
    decay only in steps where its feature occurs, and its weights move only then, where
    dense Adam keeps moving a weight on its momentum for steps after its last gradient;
    weight decay, too, reaches a column only in the steps that touch it. Each column's step
    count is the parameter's, so its bias correction is that of the whole run. Results
    differ from dense Adam's; ``sparse_optimizer="dense"`` gives dense Adam's exactly.
    """

    decoupled = False

    @torch.no_grad()
    def block_step(self, param: torch.Tensor, rows: slice, grad: torch.Tensor) -> None:
        """Adam's step on rows ``rows`` of ``param``, whose gradient there is ``grad``.

        Called during the backward pass by the output layers of the sparse path's exact
        loss (:class:`~aekit.model.gram_error.GramSquaredError` or ``BlockSquaredError``), a
        block of rows at a time, so that a gradient of the whole ``width × hidden`` weight is
        never held. Each
        element's update is the fused kernel's, as :meth:`step` would apply it; the step
        count moves on once, when :meth:`step` runs.
        """
        state = self._state_of(param)
        pending = self._pending_step(param, state)
        _fused_kernel(
            self._group_of(param),
            self.decoupled,
            [param[rows]],
            [grad],
            [state["exp_avg"][rows]],
            [state["exp_avg_sq"][rows]],
            [pending],
        )

    @torch.no_grad()
    def column_step(
        self, param: torch.Tensor, cols: torch.Tensor, rows: slice, grad: torch.Tensor
    ) -> None:
        """The lazy step of rows ``rows`` of ``param`` in columns ``cols`` (gradient ``grad``).

        Called during the backward pass by a first layer on sparse rows
        (:class:`~aekit.model.sparse_net.SparseLinear`), a block of rows at a time, in place
        of leaving its ``hidden × columns`` gradient in ``lazy_grads`` for :meth:`step`: that
        gradient is never held whole. Each element's update is :meth:`step`'s, bit for bit;
        the step count moves on once, when :meth:`step` runs.
        """
        state = self._state_of(param)
        step = param.__dict__.get("block_step_count")
        if step is None:  # read once a step (a device sync on a GPU)
            step = param.__dict__["block_step_count"] = float(self._pending_step(param, state))
        self._lazy_block(param, state, rows, cols, grad, self._group_of(param), step)

    @staticmethod
    def _pending_step(param: torch.Tensor, state: dict[str, Any]) -> torch.Tensor:
        """The step count of the step under way in blocks (:meth:`step` settles it)."""
        pending = param.__dict__.get("block_step")
        if pending is None:  # the step's first block
            pending = param.__dict__["block_step"] = state["step"] + 1
        return pending

    def _state_of(self, param: torch.Tensor) -> dict[str, Any]:
        """``param``'s Adam state (``step``, ``exp_avg``, ``exp_avg_sq``), created at zero."""
        state = self.state[param]  # type: ignore[attr-defined]
        if not state:
            state["step"] = torch.zeros((), dtype=torch.float32, device=param.device)
            state["exp_avg"] = torch.zeros_like(param)
            state["exp_avg_sq"] = torch.zeros_like(param)
        return state

    def _group_of(self, param: torch.Tensor) -> dict[str, Any]:
        """The parameter group holding ``param``."""
        for group in self.param_groups:  # type: ignore[attr-defined]
            if any(p is param for p in group["params"]):
                return group
        raise KeyError("not a parameter of this optimiser")

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """Lazy steps for column gradients, then the dense step for the rest."""
        for group in self.param_groups:  # type: ignore[attr-defined]
            for param in group["params"]:
                pending = param.__dict__.pop("block_step", None)
                param.__dict__.pop("block_step_count", None)
                if pending is not None:  # stepped block by block in the backward pass
                    self.state[param]["step"] = pending  # type: ignore[attr-defined]
                parts = param.__dict__.get("lazy_grads")
                if not parts:
                    continue
                several = len(parts) > 1  # (one part is used as it is: no copy)
                cols = torch.cat([c for c, _ in parts]) if several else parts[0][0]
                grads = torch.cat([g for _, g in parts], dim=1) if several else parts[0][1]
                parts.clear()
                if several or param.grad is not None:  # several parts, or a dense part too
                    dense = torch.zeros_like(param).index_add_(1, cols, grads)
                    param.grad = dense if param.grad is None else param.grad + dense
                else:
                    self._lazy_step(param, cols, grads, group)
        return super().step(closure)  # type: ignore[misc]

    def _lazy_step(
        self, param: torch.Tensor, cols: torch.Tensor, g: torch.Tensor, group: dict[str, Any]
    ) -> None:
        """Adam's update of ``param``'s columns ``cols`` (gradient ``g``), a block of rows at once.

        Each temporary (the columns' weights, moments, denominator) holds a block of rows
        (:func:`~aekit.model.sparse_net.aligned_row_blocks`), never ``hidden × columns``: at
        100,000 features a step held six of those at once (6.5 MB each at 512 × 3,200), when
        the training state is at its largest. The update is the same bit for bit.
        """
        state = self._state_of(param)
        state["step"] += 1
        step = float(state["step"])
        for block in aligned_row_blocks(param.shape[0], len(cols)):
            self._lazy_block(param, state, block, cols, g[block], group, step)

    def _lazy_block(
        self,
        param: torch.Tensor,
        state: dict[str, Any],
        block: slice,
        cols: torch.Tensor,
        g: torch.Tensor,
        group: dict[str, Any],
        step: float,
    ) -> None:
        """:meth:`_lazy_step` on rows ``block`` of ``param`` (``g``: their gradient)."""
        beta1, beta2 = group["betas"]
        lr, eps, decay = group["lr"], group["eps"], group["weight_decay"]
        rows, avg, square = param[block], state["exp_avg"][block], state["exp_avg_sq"][block]
        g = g.contiguous()  # (a block of the first layer's gradient: a transposed view)
        weights = rows.index_select(1, cols)
        if decay and not self.decoupled:
            g = g + decay * weights
        m = avg.index_select(1, cols).mul_(beta1).add_(g, alpha=1 - beta1)
        v = square.index_select(1, cols).mul_(beta2).addcmul_(g, g, value=1 - beta2)
        denom = v.sqrt().div_((1 - beta2**step) ** 0.5).add_(eps)  # in place: one temporary
        if decay and self.decoupled:
            weights.mul_(1 - lr * decay)
        weights.addcdiv_(m, denom, value=-lr / (1 - beta1**step))
        rows.index_copy_(1, cols, weights)
        avg.index_copy_(1, cols, m)
        square.index_copy_(1, cols, v)


class LazyAdam(_LazyColumns, Adam):
    """Adam, lazy for parameters with sparse gradients (see :class:`_LazyColumns`)."""


class LazyAdamW(_LazyColumns, AdamW):
    """AdamW, lazy for parameters with sparse gradients (see :class:`_LazyColumns`)."""

    decoupled = True
