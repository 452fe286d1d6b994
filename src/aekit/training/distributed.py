"""Multi-process training on PyTorch DDP: join the process group ``torchrun`` set up, leave it.

Launch any script or ``aekit fit`` under ``torchrun`` and wrap the fit in
:func:`distributed_session`; the trainer then sees the process group and does the rest (one
global permutation, each global batch split across ranks, gradients averaged, early stopping
decided on all-reduced losses so every rank stops together, rank 0 alone logging)::

    torchrun --standalone --nproc-per-node 2 my_fit.py            # one machine
    # on each of two machines (host0:29400 reachable from both):
    torchrun --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d --rdzv-endpoint host0:29400 my_fit.py

    # my_fit.py
    with distributed_session() as ctx:
        ae = Autoencoder(device=ctx.device, ...).fit(X)
        if ctx.is_main:
            ae.save("model/")

CPU processes talk over gloo; CUDA processes over NCCL, each on ``cuda:LOCAL_RANK``.
:class:`Ranks` is how the trainer's processes agree: summed losses, rank 0's seeds, a stop
that any rank asked for; in a single process every agreement is free.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

from ..errors import ConfigError
from .cpus import SHARE_ENV, process_share, usable_cpus

__all__ = [
    "DistributedContext",
    "Ranks",
    "distributed_session",
    "exit_process",
    "init_from_env",
    "left_a_group",
    "relaunch",
    "teardown",
    "torchrun_command",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Ranks:
    """A process's place among the processes of a training run, and how they agree.

    Every method is collective under DDP (all ranks must call it, in the same order) and
    free in a single process.

    Attributes
    ----------
    rank, world_size : int
        This process's rank and the number of processes (0 and 1 without DDP).
    """

    rank: int
    world_size: int

    @classmethod
    def current(cls) -> Ranks:
        """The ranks of the running process group, or a single process."""
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls(0, 1)

    @property
    def is_main(self) -> bool:
        """True on rank 0, the one process that logs, saves and reports."""
        return self.rank == 0

    def share(self, rows: torch.Tensor) -> torch.Tensor:
        """The consecutive share of ``rows`` this rank works on (all of them in one process)."""
        return rows.tensor_split(self.world_size)[self.rank] if self.world_size > 1 else rows

    def all_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum of ``tensor`` over the ranks (a copy; ``tensor`` itself without DDP)."""
        if self.world_size > 1:
            tensor = tensor.clone()
            dist.all_reduce(tensor)
        return tensor

    def from_main(self, value: T) -> T:
        """Rank 0's ``value`` (any picklable object) on every rank."""
        if self.world_size > 1:
            holder = [value]
            dist.broadcast_object_list(holder, src=0)
            value = holder[0]
        return value

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when ``flag`` is true on any rank."""
        if self.world_size == 1:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())


@dataclass(frozen=True)
class DistributedContext(Ranks):
    """Where this process stands in a (possibly one-process) training run.

    Attributes
    ----------
    rank, world_size, local_rank : int
        As set by ``torchrun`` (0, 1, 0 without it).
    device : str
        The device this process should train on (``cuda:LOCAL_RANK`` under NCCL).
    backend : str or None
        ``"gloo"``, ``"nccl"``, or None when there is no process group.
    """

    local_rank: int
    device: str
    backend: str | None


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"environment variable {name}={text!r} is not an integer") from None


def init_from_env(device: str = "auto", backend: str | None = None) -> DistributedContext:
    """Join the process group described by torchrun's environment variables.

    Reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``.
    Without them (or with ``WORLD_SIZE=1``) nothing is initialised and a one-process
    context is returned, so the same script runs with and without ``torchrun``.

    Parameters
    ----------
    device : str, default="auto"
        ``"auto"`` picks ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU;
        ``"cpu"`` or ``"cuda"`` force one.
    backend : str or None, default=None
        ``None`` picks NCCL for CUDA and gloo for the CPU.

    Returns
    -------
    DistributedContext

    Raises
    ------
    ConfigError
        Inconsistent variables (a rank outside the world), or a missing rendezvous address.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", rank)
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(f"RANK={rank} is not within WORLD_SIZE={world_size}")
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if use_cuda and world_size > 1:
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"LOCAL_RANK={local_rank} but this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)"
            )
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    elif device == "auto":
        device = "cuda" if use_cuda else "cpu"
    if world_size == 1:
        return DistributedContext(rank, 1, local_rank, device, None)
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise ConfigError(
                f"WORLD_SIZE={world_size} but {name} is not set: launch with torchrun"
            )
    backend = backend or ("nccl" if use_cuda else "gloo")
    if not dist.is_initialized():
        dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world_size)
    return DistributedContext(rank, world_size, local_rank, device, backend)


_LEFT: list[bool] = []  # True once a session of this process left its group cleanly


def teardown() -> None:
    """Leave the process group (no-op without one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def left_a_group() -> bool:
    """True when a :func:`distributed_session` of this process joined and left a group."""
    return bool(_LEFT)


def exit_process(code: int = 0) -> None:
    """End a process whose distributed work is done: flush, then exit without teardown.

    After :func:`distributed_session` has left the group, PyTorch's gloo backend can still
    abort the process during interpreter shutdown ("terminate called without an active
    exception", exit -6; seen in about 1 run in 6 of 2 ranks on 2 cores) although every file
    was written. A script run under ``torchrun`` can end with this call instead of returning,
    so its exit code says what its work did; ``aekit fit --nproc`` does.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@contextlib.contextmanager
def distributed_session(
    device: str = "auto", backend: str | None = None
) -> Iterator[DistributedContext]:
    """:func:`init_from_env` on entry, :func:`teardown` on exit (if this call joined a group).

    The function the CLI calls around ``aekit fit``; see the module docstring.
    """
    joined = not (dist.is_available() and dist.is_initialized())
    ctx = init_from_env(device, backend)
    owned = joined and ctx.world_size > 1
    try:
        yield ctx
    except BaseException:
        if owned:  # no barrier: the other ranks may never reach it
            teardown()
        raise
    if owned:
        # Ranks leave together: rank 0 may still be saving while the others are done, and a
        # rank tearing down its group alone can abort at exit ("terminate called without an
        # active exception" from a gloo thread).
        dist.barrier()
        teardown()
        _LEFT.append(True)


def torchrun_command(
    args: Sequence[str],
    nproc: int,
    *,
    nnodes: int = 1,
    rdzv_endpoint: str | None = None,
    module: str | None = "aekit",
) -> list[str]:
    """The command that runs ``python -m <module> <args>`` under torchrun with ``nproc``.

    One machine uses ``--standalone`` (a free local port); several need ``nnodes`` and a
    ``rdzv_endpoint`` (``host:port`` of a machine every node can reach). With
    ``module=None`` the first of ``args`` is a script to run instead.
    """
    if not isinstance(nproc, int) or nproc < 1:
        raise ConfigError(f"nproc must be an integer >= 1, got {nproc!r}")
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}"]
    if nnodes == 1 and rdzv_endpoint is None:
        command.append("--standalone")
    else:
        if rdzv_endpoint is None:
            raise ConfigError(f"nnodes={nnodes} needs a rendezvous endpoint host:port")
        command += [f"--nnodes={nnodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={rdzv_endpoint}"]
    return [*command, *(["-m", module] if module else []), *args]


def relaunch(args: Sequence[str], nproc: int) -> int:
    """Run ``aekit <args>`` in ``nproc`` processes on this machine; return the exit status.

    The ``--nproc N`` shortcut of ``aekit fit``: the caller strips ``--nproc`` from its
    arguments and hands the rest here. Unless ``OMP_NUM_THREADS`` is set, each process
    starts with its share of the CPUs this one may use (affinity and cgroup quota), marked
    as aekit's own split (:data:`~aekit.training.cpus.SHARE_ENV`), so that ``threads="auto"``
    may still go below it; a variable the user set is left as it is.
    """
    env = dict(os.environ)
    if "OMP_NUM_THREADS" not in env:  # torchrun would set 1
        usable = usable_cpus()
        share = str(process_share(usable, nproc))
        env["OMP_NUM_THREADS"] = env[SHARE_ENV] = share
        logging.getLogger("aekit").info(
            "%d processes on %s usable CPU(s): %s thread(s) each at most", nproc, usable, share
        )
    return subprocess.run(torchrun_command(args, nproc), env=env, check=False).returncode
