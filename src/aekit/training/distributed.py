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
import datetime
import hashlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from ..errors import AekitError, ConfigError, DataError
from .cpus import SHARE_ENV, process_share, usable_cpus

__all__ = [
    "KILL_AT_STEP_ENV",
    "NPROC_ENV",
    "SIGNAL_AT_STEP_ENV",
    "WAIT_AT_STEP_ENV",
    "DistributedContext",
    "Ranks",
    "StopVote",
    "distributed_session",
    "elastic_restart",
    "exit_process",
    "fault_hook",
    "init_from_env",
    "left_a_group",
    "relaunch",
    "run_id",
    "run_seed_of",
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

    def check_same_data(self, source: Any, module: torch.nn.Module) -> None:
        """Refuse ranks whose rows differ from rank 0's: their count, width or scaling.

        Every rank reads the same data and trains on its share. Rows of another count
        deadlocked the first collective; other values trained, silently, in rank 0's input
        scaling (DDP sends rank 0's buffers); another width raised DDP's own error.

        Raises
        ------
        DataError
            On every rank, naming the first rank that differs.
        """
        if self.world_size == 1:
            return
        buffers = [getattr(module, name, None) for name in ("offset", "scale")]
        scaling = [float(b.double().sum()) for b in buffers if isinstance(b, torch.Tensor)]
        mine = (len(source), int(source.n_features), *scaling)
        every: list[Any] = [None] * self.world_size
        dist.all_gather_object(every, mine)
        odd = next((r for r, theirs in enumerate(every) if theirs != every[0]), None)
        if odd is not None:
            raise DataError(
                f"rank {odd} holds other data than rank 0 (rows, features and the sums of "
                f"the input offset and scale: {every[odd]} against {every[0]}); every rank "
                "must read the same rows"
            )

    def agree(self, make: Any) -> Any:
        """Run ``make()`` on rank 0 alone; its result, or its error, on every rank.

        An :class:`~aekit.errors.AekitError` that ``make`` raises is raised on every rank
        (a refused write, a folder in use); any other error stays rank 0's.
        """
        if self.world_size == 1:
            return make()
        outcome: tuple[bool, Any] = (True, None)
        if self.is_main:
            try:
                outcome = (True, make())
            except AekitError as exc:
                outcome = (False, exc)
        ok, value = self.from_main(outcome)
        if not ok:
            raise value
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
        # torchrun's agent keeps one store across the group's restarts: the addresses the
        # ranks of a failed attempt published in it would be read again (gloo then connects
        # to a dead peer and the restart fails). Each attempt gets its own keys.
        store, _, _ = next(dist.rendezvous("env://", rank=rank, world_size=world_size))
        attempt = _env_int("TORCHELASTIC_RESTART_COUNT", 0)
        store = dist.PrefixStore(f"aekit/attempt{attempt}", store)
        dist.init_process_group(backend, store=store, rank=rank, world_size=world_size)
    return DistributedContext(rank, world_size, local_rank, device, backend)


def run_id() -> str | None:
    """The id torchrun gives this launch (``TORCHELASTIC_RUN_ID``), the same across restarts.

    ``torchrun --standalone`` draws a fresh one per launch; on several machines it is
    ``--rdzv-id``, which should name the job (its default, ``none``, counts as no id).
    """
    found = os.environ.get("TORCHELASTIC_RUN_ID", "")
    return None if found in ("", "none") else found


def elastic_restart() -> str | None:
    """The launch's :func:`run_id` when torchrun restarted the group after a failure, else None.

    ``TORCHELASTIC_RESTART_COUNT`` above 0 means an earlier attempt of this same launch died;
    its checkpoints carry the run id (see :class:`~aekit.training.callbacks.Checkpointer`).
    """
    return run_id() if _env_int("TORCHELASTIC_RESTART_COUNT", 0) > 0 else None


def run_seed_of(launch: str) -> int:
    """A 32-bit seed drawn from a launch id: the same on every rank and in every restart."""
    return int.from_bytes(hashlib.sha256(launch.encode()).digest()[:4], "little")


class StopVote:
    """Ranks agreeing to stop at one step boundary, with no collective that can block a step.

    Every rank calls :meth:`poll` at every step boundary with its own wish to stop (a signal
    arrived). Each call starts an asynchronous all-reduce (MAX) of the wish and collects the
    previous boundary's, which the step in between has long finished (that step's gradient
    all-reduce needed every rank past the earlier boundary). So :meth:`poll` returns True on
    every rank at the same boundary: the one after a boundary where any rank wished to stop.
    No collective runs inside an exception handler. Under NCCL the votes go over a gloo
    group, on the CPU, so they add no device synchronisation.
    """

    def __init__(self, timeout: float = 300.0) -> None:
        backend = dist.get_backend()
        # new_group is collective: every rank builds its vote at the same (first) boundary
        self._group = None if backend == "gloo" else dist.new_group(backend="gloo")
        self._vote = torch.zeros(1)
        self._work: Any = None
        self._timeout = datetime.timedelta(seconds=timeout)

    def poll(self, wish: bool) -> bool:
        """Vote ``wish`` at this boundary; True (on every rank) where the ranks stop."""
        if self._work is not None:
            self._work.wait(self._timeout)
            self._work = None
            if self._vote.item() > 0:
                return True
        self._vote = torch.tensor([1.0 if wish else 0.0])
        self._work = dist.all_reduce(
            self._vote, op=dist.ReduceOp.MAX, group=self._group, async_op=True
        )
        return False

    def close(self) -> None:
        """Collect the last vote (every rank, at the end of training)."""
        if self._work is not None:
            self._work.wait(self._timeout)
            self._work = None


# Test hooks: what a test needs to happen at one step of one rank, so that it never depends
# on timing. Each is "RANK:STEP[:ARGUMENT]", fires once that rank finished that optimiser
# step, and only in the first attempt of a launch (TORCHELASTIC_RESTART_COUNT unset or 0).
KILL_AT_STEP_ENV = "AEKIT_TEST_KILL_AT_STEP"  # SIGKILL this rank
SIGNAL_AT_STEP_ENV = "AEKIT_TEST_SIGNAL_AT_STEP"  # TERM: to torchrun; INT: the process group
WAIT_AT_STEP_ENV = "AEKIT_TEST_WAIT_AT_STEP"  # create PATH.reached, wait for PATH.go


def fault_hook(rank: int, step: int) -> None:
    """Fire the test hooks set for ``rank`` at ``step`` (see :data:`KILL_AT_STEP_ENV`).

    ``SIGNAL...=R:S:TERM`` sends SIGTERM to this rank's parent, the torchrun agent, as a
    scheduler pre-empting the job does; ``R:S:INT`` sends SIGINT to the whole process group,
    as Ctrl-C in a terminal does (torchrun then passes it on to its workers a second time).
    """
    hooks = {n: os.environ.get(n) for n in (KILL_AT_STEP_ENV, SIGNAL_AT_STEP_ENV, WAIT_AT_STEP_ENV)}
    if not any(hooks.values()) or _env_int("TORCHELASTIC_RESTART_COUNT", 0) > 0:
        return  # every step calls this: the common case reads three variables only
    for name, value in hooks.items():
        parts = (value or "").split(":", 2)
        if parts[:2] != [str(rank), str(step)]:
            continue
        if name == KILL_AT_STEP_ENV:
            logging.shutdown()
            os.kill(os.getpid(), signal.SIGKILL)
        elif name == SIGNAL_AT_STEP_ENV and parts[2] == "INT":
            os.killpg(os.getpgid(0), signal.SIGINT)
        elif name == SIGNAL_AT_STEP_ENV:
            os.kill(os.getppid(), getattr(signal, "SIG" + parts[2]))
        else:
            Path(parts[2] + ".reached").touch()
            while not Path(parts[2] + ".go").exists():
                time.sleep(0.02)


_LEFT: list[bool] = []  # True once a session of this process left its group (done or not)


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
            _LEFT.append(True)  # an interrupted rank, too, ends past gloo's teardown
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
    max_restarts: int = 0,
) -> list[str]:
    """The command that runs ``python -m <module> <args>`` under torchrun with ``nproc``.

    One machine uses ``--standalone`` (a free local port); several need ``nnodes`` and a
    ``rdzv_endpoint`` (``host:port`` of a machine every node can reach). With
    ``module=None`` the first of ``args`` is a script to run instead. ``max_restarts``
    lets torchrun restart the whole group that many times after a process fails (a run
    with a checkpoint folder then resumes from its last checkpoint).
    """
    if not isinstance(nproc, int) or nproc < 1:
        raise ConfigError(f"nproc must be an integer >= 1, got {nproc!r}")
    if not isinstance(max_restarts, int) or max_restarts < 0:
        raise ConfigError(f"max_restarts must be an integer >= 0, got {max_restarts!r}")
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}"]
    if max_restarts:
        command.append(f"--max-restarts={max_restarts}")
    if nnodes == 1 and rdzv_endpoint is None:
        command.append("--standalone")
    else:
        if rdzv_endpoint is None:
            raise ConfigError(f"nnodes={nnodes} needs a rendezvous endpoint host:port")
        command += [f"--nnodes={nnodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={rdzv_endpoint}"]
    return [*command, *(["-m", module] if module else []), *args]


def relaunch(args: Sequence[str], nproc: int, max_restarts: int = 0) -> int:
    """Run ``aekit <args>`` in ``nproc`` processes on this machine; return the exit status.

    The ``--nproc N`` shortcut of ``aekit fit``: the caller strips ``--nproc`` from its
    arguments and hands the rest here. Unless ``OMP_NUM_THREADS`` is set, each process
    starts with its share of the CPUs this one may use (affinity and cgroup quota), marked
    as aekit's own split (:data:`~aekit.training.cpus.SHARE_ENV`), so that ``threads="auto"``
    may still go below it; a variable the user set is left as it is. ``max_restarts`` is
    torchrun's ``--max-restarts``.

    While torchrun runs, this process ignores Ctrl-C (the terminal sends it to torchrun and
    its workers too, which stop at a step boundary and save) and passes a SIGTERM on to
    torchrun, whose agent gives its workers their grace period.
    """
    env = dict(os.environ)
    env[NPROC_ENV] = str(nproc)  # the workers' resume command names --nproc N
    if "OMP_NUM_THREADS" not in env:  # torchrun would set 1
        usable = usable_cpus()
        share = str(process_share(usable, nproc))
        env["OMP_NUM_THREADS"] = env[SHARE_ENV] = share
        logging.getLogger("aekit").info(
            "%d processes on %s usable CPU(s): %s thread(s) each at most", nproc, usable, share
        )
    command = torchrun_command(args, nproc, max_restarts=max_restarts)
    with subprocess.Popen(command, env=env) as agent:
        previous = {}
        try:
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.SIG_IGN)
            previous[signal.SIGTERM] = signal.signal(
                signal.SIGTERM, lambda signum, frame: agent.send_signal(signum)
            )
        except ValueError:  # not the main thread: no handlers, torchrun as it is
            pass
        try:
            return agent.wait()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


NPROC_ENV = "AEKIT_NPROC"  # set by relaunch: the --nproc its workers were started with
