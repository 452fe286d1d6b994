"""How many intra-op threads a training run uses: what the process really has, never a collapse.

PyTorch starts one thread per core of the *machine*, blind to a cgroup CPU quota, and its
threads wait for each other at every operation: with one of two cores busy elsewhere, two
threads train about 10× slower than one. :func:`choose_threads` decides a run's count before
its first step, in this order:

1. ``threads=N``: N threads. ``threads="torch"``: torch's count as it is (aekit 0.2's
   behaviour, and what a file written before this option means).
2. ``threads="auto"`` (the default) keeps an explicit choice: a ``torch.set_num_threads(n)``
   made after aekit's training code was imported (the count differs from the one then), or
   ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` in the environment (but not the split that
   ``aekit fit --nproc`` makes itself, :data:`~aekit.training.cpus.SHARE_ENV`). A count set
   *before* that import cannot be told from torch's own: pass ``threads=`` then.
3. A resumed run reuses the count its checkpoint recorded: results differ in the last bits
   between thread counts, so a run repeats bit for bit only at its own.
4. Otherwise the budget is this process's share of the CPUs it may use (affinity and cgroup
   quota, :mod:`~aekit.training.cpus`, divided among the training processes on this
   machine), at most torch's own count; on the CPU :func:`probe_seconds` times a few steps
   of a throwaway model at the budget, half of it, ... 1 thread, interleaved, and the run
   takes the **fewest threads within** :data:`MARGIN` **of the fastest**. More threads must
   earn their place: the fewer are as fast now, kinder to the neighbours, and a run on one
   thread cannot collapse when a neighbour gets busy later. The count is probed again
   between epochs after a slow epoch, or while it is below the budget
   (:mod:`~aekit.training.rethreads`: a passing load does not set a whole run). A fit within
   :data:`REUSE_SECONDS` of a probe of the same model and batch reuses its timings.

Under DDP every rank probes, and all take rank 0's count. :func:`using_threads` sets the count
for a fit and puts the previous one back when it returns (``try``/``finally``). The count is
process-wide: another Python thread training at the same time sees it too.

An OpenMP wait policy (``OMP_WAIT_POLICY=PASSIVE``: waiting threads sleep instead of spinning)
is read once, when torch loads OpenMP: it must be in the environment before ``import torch``
(the shell, or ``os.environ`` at the very top of a script). aekit does not set it;
``benchmarks/contention.py`` measures it.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import os
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch

from ..config.configs import ModelConfig, TrainConfig
from ..data.sources import RowSource, TensorRows
from ..data.sparse import SparseBatch
from ..model.hourglass import Hourglass
from ..model.stacked import StackedHourglass, runs_on_member_axis, stack_refusal
from .cpus import SHARE_ENV, process_share, usable_cpus
from .distributed import Ranks
from .objective import autocast, loss_sum
from .optim import make_optimizer
from .prepare import resolve_device
from .protocol import TrainerLike

__all__ = [
    "MARGIN",
    "STARTUP_THREADS",
    "ThreadChoice",
    "choose_threads",
    "explicit_threads",
    "fewest_within",
    "ladder",
    "probe_seconds",
    "probed_choice",
    "run_threads",
    "using_threads",
]

logger = logging.getLogger("aekit")

STARTUP_THREADS = torch.get_num_threads()  # torch's count when this module was imported
MARGIN = 0.05  # more threads must be this much faster per step than fewer to be chosen
PROBE_SECONDS = 0.25  # the probe's timed rounds stop after this, once MIN_ROUNDS are done
WINDOW_SECONDS = 0.01  # each timing covers about this long (several steps of a small model)
MIN_ROUNDS, MAX_ROUNDS = 3, 5
REUSE_SECONDS = 60.0  # a probe of the same model and batch this recent is not repeated
COLLAPSE = 4.0  # a count whose first forward pass or step is this many times slower is out
DROP = 2.0  # a count this many times slower than the best is dropped between rounds


@dataclass(frozen=True)
class ThreadChoice:
    """A run's intra-op thread count and why.

    Attributes
    ----------
    count : int
        The threads training runs with.
    reason : str
        What decided it, as the log says it.
    usable : int
        CPUs this process may use (affinity and cgroup quota).
    share : int
        This process's share of them (``usable`` over the training processes on the machine).
    processes : int
        Training processes on this machine (1 without DDP).
    seconds : dict of int to float
        The probe's median seconds per step by thread count (empty without a probe).
    budget : int
        The most threads the run may take (its share, at most torch's count).
    probed_at : float
        When the probe's timings were taken (``time.monotonic()``; 0 without a probe).
    members : int
        The models a step trains at once: an ensemble's members trained in one pass
        (:mod:`~aekit.training.ensemble`) are probed as their stacked network, whose batched
        products want other counts than one member's.
    """

    count: int
    reason: str
    usable: int
    share: int
    processes: int = 1
    seconds: dict[int, float] = field(default_factory=dict)
    budget: int = 1
    probed_at: float = 0.0
    members: int = 1


def explicit_threads(setting: int | str) -> tuple[int, str] | None:
    """A thread count someone chose, and who; None when aekit may choose (module docstring).

    Parameters
    ----------
    setting : int or {"auto", "torch"}
        ``TrainConfig.threads``.
    """
    if isinstance(setting, int):
        return setting, f"threads={setting}"
    current = torch.get_num_threads()
    if setting == "torch":
        return current, "threads='torch' (torch's count, untouched)"
    if current != STARTUP_THREADS:
        return current, f"torch.set_num_threads({current}) before fit"
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        value = os.environ.get(name)
        if value and value != os.environ.get(SHARE_ENV):
            return current, f"{name}={value} in the environment"
    return None


def ladder(budget: int) -> list[int]:
    """The counts a probe compares: ``budget``, half of it, ... down to 1."""
    counts = [budget]
    while counts[-1] > 1:
        counts.append(counts[-1] // 2)
    return counts


def fewest_within(seconds: dict[int, float], margin: float = MARGIN) -> int:
    """The fewest threads whose seconds per step are within ``margin`` of the fastest count's."""
    best = min(seconds.values())
    return min(count for count, s in seconds.items() if s <= best * (1 + margin))


def run_threads(trainer: TrainerLike, source: RowSource, members: int = 1) -> int:
    """A training run's thread count: its checkpoint's when resumed, else chosen once.

    Kept in ``trainer.thread_choice`` and recorded as ``trainer.history.threads``. A choice
    set beforehand is kept; ``members``: models trained with this one in one stacked network.
    """
    recorded = trainer.history.threads
    choice = trainer.thread_choice
    if choice is None or recorded not in (None, choice.count):
        config, model_config = trainer.config, trainer.module.config
        tick = time.perf_counter()
        choice = choose_threads(
            config,
            model_config,
            source,
            trainer.device,
            trainer.ranks,
            recorded=recorded,
            members=members,
        )
        trainer.history.setup_seconds["threads"] = time.perf_counter() - tick
        trainer.thread_choice = choice
    trainer.history.threads = choice.count
    return choice.count


def choose_threads(
    config: TrainConfig,
    model_config: ModelConfig,
    rows: RowSource | torch.Tensor,
    device: torch.device | None = None,
    ranks: Ranks | None = None,
    *,
    recorded: int | None = None,
    members: int = 1,
) -> ThreadChoice:
    """Decide a run's thread count (see the module docstring for the rule); log it.

    Collective under DDP: every rank calls it, and all take rank 0's choice.

    Parameters
    ----------
    config : TrainConfig
        Its ``threads``, and what a probe step is (optimiser, batch size, precision).
    model_config : ModelConfig
        The architecture a probe builds a throwaway copy of.
    rows : RowSource or Tensor of shape (n_rows, n_features)
        Raw training rows; a probe steps on the first batch of them.
    device : torch.device, optional
        Where training runs (``config.device`` resolved by default); only the CPU probes.
    ranks : Ranks, optional
        The training processes (the running process group by default).
    recorded : int, optional
        The count a resumed run's checkpoint recorded.
    members : int, default=1
        Models that will train at once as one stacked network (an ensemble in one pass):
        the probe steps that stack (:func:`probe_seconds`).

    Returns
    -------
    ThreadChoice
    """
    device = resolve_device(config.device) if device is None else device
    ranks = Ranks.current() if ranks is None else ranks
    usable = usable_cpus()
    processes = _processes_here(ranks)
    share = process_share(usable, processes)
    explicit = explicit_threads(config.threads)
    if explicit is not None:
        choice = ThreadChoice(*explicit, usable, share, processes, members=members)
    elif recorded is not None:
        why = "the count the resumed run recorded"
        choice = ThreadChoice(recorded, why, usable, share, processes, members=members)
    else:
        budget = min(share, torch.get_num_threads())
        why = f"its share of {usable} usable CPU(s)" if processes > 1 else "usable CPUs"
        choice = ThreadChoice(budget, why, usable, share, processes, budget=budget, members=members)
        local_batch = math.ceil(config.batch_size / ranks.world_size)
        batch = _first_rows(rows, local_batch) if budget > 1 and device.type == "cpu" else None
        if batch is not None and len(batch) > 1:  # (batch norm needs two rows)
            seconds, age = _probed(model_config, config, batch, ladder(budget), members=members)
            choice = probed_choice(choice, seconds, age)
    choice = ranks.from_main(choice)
    if ranks.is_main:
        _log(choice, recorded, quiet=explicit is not None and processes == 1)
    return choice


def probed_choice(base: ThreadChoice, seconds: dict[int, float], age: float) -> ThreadChoice:
    """``base`` with the count a probe's ``seconds`` give (:func:`fewest_within`), and why.

    ``age``: how long ago the probe was taken (a reused one's).
    """
    timing = ", ".join(f"{n}: {1e3 * s:.2f} ms" for n, s in seconds.items())
    when = f", timed {age:.0f} s ago" if age else ""
    why = f"the fewest threads within {MARGIN:.0%} of the fastest step ({timing}{when})"
    count, at = fewest_within(seconds), time.monotonic() - age
    return dataclasses.replace(base, count=count, reason=why, seconds=seconds, probed_at=at)


@contextlib.contextmanager
def using_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` intra-op threads, and put the previous count back after.

    torch's count is process-wide; the previous one is restored however the block ends
    (return, exception, Ctrl-C).
    """
    before = torch.get_num_threads()
    if count != before:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def probe_seconds(
    model_config: ModelConfig,
    config: TrainConfig,
    batch: torch.Tensor,
    counts: Sequence[int],
    *,
    budget: float = PROBE_SECONDS,
    members: int = 1,
) -> dict[int, float]:
    """Median seconds per training step of a throwaway model at each thread count.

    A model freshly built from ``model_config`` takes steps (forward, loss, backward, the
    run's optimiser) on ``batch``; with ``members`` > 1, ``members`` such models stacked
    as an ensemble trains them in one pass (:class:`~aekit.model.stacked.StackedHourglass`,
    where the config runs on the member axis), each on ``batch``. One thread goes first (the
    baseline); each other count then times one forward pass, then one step, and is out at
    once where either is :data:`COLLAPSE` times one thread's: a count that collapses costs
    about one forward pass.
    Then rounds in which every remaining count in turn (the order rotating) times about
    :data:`WINDOW_SECONDS` of steps, so a load that comes and goes slows every count alike;
    a count twice as slow as the best is dropped, and the rounds stop after ``budget``
    seconds once :data:`MIN_ROUNDS` are done. Nothing of the run is touched: the model, its
    optimiser and the generator its dropout draws from are the probe's own, the global
    random state is forked and the thread count is put back.

    Parameters
    ----------
    model_config : ModelConfig
    config : TrainConfig
        The optimiser and precision of a step.
    batch : Tensor of shape (n_rows, n_features)
        Rows to step on (mapped to [0, 1] column by column first).
    counts : sequence of int
        Thread counts to compare; 1 is added if missing.
    budget : float, default=PROBE_SECONDS
        Seconds of timed rounds, beyond the first :data:`MIN_ROUNDS`.
    members : int, default=1
        Models stepped at once as one stacked network (1: the model alone).

    Returns
    -------
    dict of int to float
    """
    device = torch.device("cpu")
    others = [count for count in dict.fromkeys(counts) if count != 1]
    with torch.random.fork_rng(devices=[]), using_threads(1):
        generator = torch.Generator().manual_seed(0)
        net = Hourglass(model_config, generator).train()
        low, high = batch.min(dim=0).values, batch.max(dim=0).values
        rows = torch.nan_to_num((batch - low) / (high - low).clamp_min(1e-12))
        if members > 1 and runs_on_member_axis(model_config) and not stack_refusal([net]):
            stack = StackedHourglass([net, *(copy.deepcopy(net) for _ in range(members - 1))])
            net, rows = stack.net.train(), rows.expand(members, *rows.shape).contiguous()
        net.set_generator(generator)
        optimizer = make_optimizer(net, config)

        def seconds_per_step(count: int, steps: int) -> float:
            torch.set_num_threads(count)
            tick = time.perf_counter()
            for _ in range(steps):
                optimizer.zero_grad(set_to_none=True)
                with autocast(device, config.precision):
                    loss = loss_sum(net(rows), rows, "mse")
                loss.backward()
                optimizer.step()
            return (time.perf_counter() - tick) / steps

        def forward_seconds(count: int) -> float:
            torch.set_num_threads(count)
            tick = time.perf_counter()
            with torch.no_grad(), autocast(device, config.precision):
                net(rows)
            return time.perf_counter() - tick

        seconds_per_step(1, 1)  # the optimiser's state, kernels
        baseline = seconds_per_step(1, 1)
        forward = min(forward_seconds(1), forward_seconds(1))
        steps = max(1, min(16, round(WINDOW_SECONDS / max(baseline, 1e-6))))
        samples = {1: [baseline]}
        for count in others:  # a forward pass first: a collapse shows at a third of the cost
            ratio = forward_seconds(count) / max(forward, 1e-9)
            step = baseline * ratio if ratio > COLLAPSE else seconds_per_step(count, 1)
            samples[count] = [step]
        live = [1, *(c for c in others if samples[c][0] <= COLLAPSE * baseline)]
        start = time.perf_counter()
        for round_ in range(MAX_ROUNDS):
            if len(live) == 1 or (round_ >= MIN_ROUNDS and time.perf_counter() - start > budget):
                break
            for i in range(len(live)):
                count = live[(i + round_) % len(live)]
                samples[count].append(seconds_per_step(count, steps))
            best = min(statistics.median(samples[count]) for count in live)
            live = [c for c in live if statistics.median(samples[c]) <= DROP * best]
    return {count: statistics.median(found) for count, found in samples.items()}


_RECENT: dict[tuple[object, ...], tuple[float, dict[int, float]]] = {}


def _probed(
    model_config: ModelConfig,
    config: TrainConfig,
    batch: torch.Tensor,
    counts: list[int],
    *,
    fresh: bool = False,
    members: int = 1,
) -> tuple[dict[int, float], float]:
    """:func:`probe_seconds`'s timings and their age: the same probe's, if that recent.

    A probe of the same model, batch and ``members`` made in the last :data:`REUSE_SECONDS`
    is not repeated (unless ``fresh``), so a grid search does not pay for one at every fit.
    """
    shape, wanted = tuple(batch.shape), tuple(counts)
    key = (model_config, config.optimizer, config.precision, shape, wanted, members)
    now = time.monotonic()
    if not fresh and key in _RECENT and now - _RECENT[key][0] < REUSE_SECONDS:
        return _RECENT[key][1], now - _RECENT[key][0]
    seconds = probe_seconds(model_config, config, batch, counts, members=members)
    _RECENT.clear()  # one architecture at a time: no growth, no stale entries
    _RECENT[key] = (time.monotonic(), seconds)
    return seconds, 0.0


def _processes_here(ranks: Ranks) -> int:
    """Training processes on this machine: torchrun's ``LOCAL_WORLD_SIZE``, else all ranks."""
    if ranks.world_size == 1:
        return 1
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", ranks.world_size)))
    except ValueError:
        return ranks.world_size


def _first_rows(rows: RowSource | torch.Tensor, n: int) -> torch.Tensor:
    """The first ``n`` rows (all, if fewer) as a float32 CPU tensor."""
    source = TensorRows(rows) if isinstance(rows, torch.Tensor) else rows
    indices = torch.arange(min(n, len(source)))
    batch = source.take(indices)
    if isinstance(batch, SparseBatch):  # the probe steps on dense rows
        batch = batch.dense()
    return batch.to("cpu", torch.float32)


def _log(choice: ThreadChoice, recorded: int | None, *, quiet: bool = False) -> None:
    """Say the choice on the ``aekit`` logger; warn when it oversubscribes or breaks a repeat.

    ``quiet``: the user's own choice in one process is news to nobody (debug level).
    """
    each = f" in each of {choice.processes} processes" if choice.processes > 1 else ""
    logger.log(
        logging.DEBUG if quiet else logging.INFO,
        "%d intra-op thread(s)%s: %s (%d usable CPU(s), this process's share %d)",
        *(choice.count, each, choice.reason, choice.usable, choice.share),
    )
    if choice.count * choice.processes > choice.usable:
        logger.warning(
            "%d thread(s) × %d process(es) on %d usable CPU(s): threads will wait for each "
            "other and training can run many times slower; threads='auto' or threads=%d avoids it",
            *(choice.count, choice.processes, choice.usable, choice.share),
        )
    elif choice.processes > 1 and choice.count < choice.share and "OMP_NUM" in choice.reason:
        logger.info(
            "torchrun sets OMP_NUM_THREADS=1 when it is unset; this process's share is %d "
            "CPU(s): threads=%d (--threads) or OMP_NUM_THREADS=%d uses it",
            *(choice.share, choice.share, choice.share),
        )
    if recorded is not None and recorded != choice.count:
        logger.warning(
            "the resumed run trained at %d thread(s), this one continues at %d: its results "
            "will differ in the last bits from an uninterrupted run",
            *(recorded, choice.count),
        )
