"""What a fit spends around its steps: fixed costs recorded, denormals flushed, max_time kept.

No test here times anything: clocks are replaced where a rule reads one.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from aekit import Autoencoder, Hourglass, ModelConfig, TrainConfig, Trainer
from aekit.errors import ModelFileError
from aekit.model import pca_start
from aekit.training import History, denormals, rethreads, threads
from aekit.training.budget import past_deadline
from aekit.training.callbacks import Callback
from aekit.training.cpus import SHARE_ENV
from aekit.training.denormals import flushes_denormals, flushing_denormals
from aekit.training.rethreads import REPROBE_SECONDS, reprobe_reason
from aekit.training.threads import ThreadChoice


def rows(n=300, d=8, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).random((n, d), dtype=np.float32))


def trainer(**train):
    model = Hourglass(ModelConfig(input_dim=8, code_dim=2, hidden=(16,)), torch.Generator())
    config = {"epochs": 3, "batch_size": 32, "random_state": 0, "device": "cpu", "threads": 1}
    return Trainer(model, TrainConfig(**{**config, **train}))


# -- fixed costs ----------------------------------------------------------------------------
def test_a_fit_records_its_fixed_costs_and_the_history_keeps_them():
    ae = Autoencoder(code_dim=2, hidden=(8,), epochs=1, random_state=0).fit(rows().numpy())
    setup = ae.history_.setup_seconds
    assert set(setup) == {"threads", "start", "start_validation"}
    assert all(s >= 0 for s in setup.values())
    again = History.from_dict(ae.history_.to_dict())
    assert again.setup_seconds == setup
    older = {k: v for k, v in ae.history_.to_dict().items() if k != "setup_seconds"}
    assert History.from_dict(older).setup_seconds == {}  # files written before the field
    with pytest.raises(ModelFileError, match="setup_seconds"):
        History.from_dict({**older, "setup_seconds": {"start": "fast"}})


# -- denormals ------------------------------------------------------------------------------
class SeesFlush(Callback):
    def __init__(self) -> None:
        self.seen: list[bool] = []

    def on_epoch_begin(self, trainer, **kwargs):
        self.seen.append(flushes_denormals())


def test_training_flushes_denormals_on_the_cpu_and_puts_the_mode_back():
    assert not flushes_denormals()
    watch = SeesFlush()
    fit = trainer()
    fit.callbacks.append(watch)
    fit.fit(rows())
    if torch.set_flush_denormal(False):  # a CPU with the mode (x86 with SSE3, arm64)
        assert watch.seen == [True, True, True]
    assert not flushes_denormals()
    fit.partial_fit(rows())
    assert not flushes_denormals()


def test_flushing_can_be_turned_off_and_leaves_other_devices_alone(monkeypatch):
    with flushing_denormals(torch.device("meta")):
        assert not flushes_denormals()
    monkeypatch.setattr(denormals, "FLUSH", False)
    with flushing_denormals(torch.device("cpu")):
        assert not flushes_denormals()


def test_an_error_inside_still_puts_the_mode_back():
    with pytest.raises(RuntimeError), flushing_denormals(torch.device("cpu")):
        raise RuntimeError("boom")
    assert not flushes_denormals()


# -- max_time -------------------------------------------------------------------------------
def test_past_deadline_waits_for_a_median_and_allows_half_an_epoch():
    assert not past_deadline(None, 1e9, [1.0])
    assert not past_deadline(10.0, 100.0, [])  # the first epoch runs whole
    assert not past_deadline(10.0, 100.0, [4.0], world_size=2)  # DDP: at epoch ends only
    assert not past_deadline(10.0, 11.9, [4.0, 100.0, 3.0])  # median 4: until 12 s
    assert past_deadline(10.0, 12.1, [4.0, 100.0, 3.0])


def test_a_slow_last_epoch_is_cut_at_a_step_boundary(monkeypatch):
    fit = trainer(epochs=50, max_time=25.0, patience=None, val_fraction=0.0)  # 10 steps an epoch
    clock = {"steps": 0}

    class Clock(Callback):  # each step takes 1 "second"; epoch 3 would take 100
        def on_batch_end(self, trainer, **kwargs):
            clock["steps"] += 1 if len(trainer.history) < 2 else 100

    fit.callbacks.append(Clock())
    monkeypatch.setattr(Trainer, "elapsed", lambda self: float(clock["steps"]))
    history = fit.fit(rows())
    assert history.stop_reason == "max_time"
    assert len(history) == 3 and history.records[-1]["batches"] == 1
    assert "batches" not in history.records[0]  # whole epochs say nothing
    assert np.isfinite(history.records[-1]["train_loss"])


# -- the PCA start --------------------------------------------------------------------------
def test_the_fast_start_finds_the_exact_directions(monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 12)) @ rng.normal(size=(12, 300)) + 0.1 * rng.normal(
        size=(2000, 300)
    )
    X = torch.from_numpy((X + 5.0).astype(np.float32))  # off-centre: the mean must come off
    assert X.shape[1] >= pca_start.FAST_MIN_FEATURES
    calls = []
    real = pca_start._leading_eigenvectors
    monkeypatch.setattr(pca_start, "_leading_eigenvectors", lambda *a: calls.append(a) or real(*a))
    mean, fast = pca_start.principal_directions(X, lambda x: x, 8)
    assert len(calls) == 1  # the subspace iteration on the covariance ran
    monkeypatch.setattr(pca_start, "FAST_MIN_FEATURES", 10**9)  # float64 and eigh
    exact_mean, exact = pca_start.principal_directions(X, lambda x: x, 8)
    assert len(calls) == 1
    assert torch.allclose(mean, exact_mean, atol=1e-5)
    assert torch.allclose(fast @ fast.T, torch.eye(8, dtype=torch.float64), atol=1e-10)
    assert torch.linalg.svdvals(exact @ fast.T).min() > 1 - 1e-8  # the same subspace
    assert torch.allclose(fast, exact, atol=1e-4)  # and the same signed directions


# -- probing the threads again --------------------------------------------------------------
PROBED = ThreadChoice(1, "probe", 4, 4, seconds={1: 1.0, 2: 1.0, 4: 1.0}, budget=4)


def test_a_slow_epoch_or_an_old_probe_below_the_budget_asks_for_a_new_probe():
    now = PROBED.probed_at + 1.0
    assert reprobe_reason(PROBED, [2.0], now) is None  # one epoch: nothing to compare
    assert reprobe_reason(PROBED, [2.0, 2.1, 2.9], now) is None  # within SLOW of the median
    assert "times the median" in reprobe_reason(PROBED, [2.0, 2.1, 3.2], now)
    old = PROBED.probed_at + REPROBE_SECONDS
    assert "1 of 4 threads" in reprobe_reason(PROBED, [2.0, 2.0], old)
    at_budget = dataclasses.replace(PROBED, count=4)
    assert reprobe_reason(at_budget, [2.0, 2.0], old) is None  # nothing more to gain
    chosen = dataclasses.replace(PROBED, seconds={})  # threads=N, a resumed run's count
    assert reprobe_reason(chosen, [2.0, 9.0], old) is None


class SeesThreads(Callback):
    def __init__(self) -> None:
        self.seen: list[int] = []

    def on_epoch_begin(self, trainer, **kwargs):
        self.seen.append(torch.get_num_threads())


@pytest.fixture()
def four_cpus(monkeypatch):
    """threads='auto' in a fresh process on 4 usable CPUs; torch's count put back after."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", SHARE_ENV):
        monkeypatch.delenv(name, raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    monkeypatch.setattr(threads, "STARTUP_THREADS", 4)
    monkeypatch.setattr(threads, "usable_cpus", lambda: 4)
    monkeypatch.setattr(threads, "_RECENT", {})
    yield
    torch.set_num_threads(before)


def test_a_run_probed_under_a_passing_load_takes_more_threads_when_it_has_passed(
    four_cpus, monkeypatch
):
    timings = iter([{1: 1.0, 2: 1.0, 4: 1.0}, {1: 1.0, 2: 0.5, 4: 0.4}])  # the load passes
    monkeypatch.setattr(threads, "probe_seconds", lambda *a, **k: next(timings))
    monkeypatch.setattr(rethreads, "REPROBE_SECONDS", 0.0)
    monkeypatch.setattr(rethreads, "SLOW", math.inf)  # real epoch times are not compared here
    fit = trainer(threads="auto")
    watch = SeesThreads()
    fit.callbacks.append(watch)
    history = fit.fit(rows())
    assert watch.seen == [1, 4, 4]  # probed again after the first epoch only (at the budget)
    assert history.threads == 4 and torch.get_num_threads() == 4  # put back: torch's own 4


def test_members_in_one_pass_probe_again_once_an_epoch_and_record_one_count(four_cpus, monkeypatch):
    from aekit.estimator.ensemble import fit_members

    timings = iter([{1: 1.0, 2: 1.0, 4: 1.0}] + [{1: 1.0, 2: 0.5, 4: 0.4}] * 9)
    probes = []  # the models each probe stepped at once
    monkeypatch.setattr(
        threads, "probe_seconds", lambda *a, **k: probes.append(k["members"]) or next(timings)
    )
    monkeypatch.setattr(rethreads, "REPROBE_SECONDS", 0.0)
    monkeypatch.setattr(rethreads, "SLOW", math.inf)
    members = [
        Autoencoder(code_dim=2, hidden=[6], epochs=3, patience=None, random_state=s)
        for s in range(3)
    ]
    fitted = fit_members(members, rows().numpy())
    # one probe before the first step, one after the first epoch (then at the budget): not
    # one a member, each of which would have switched the count on its own; both time the
    # three members' stack, not one member's model
    assert probes == [3, 3]
    assert [m.history_.threads for m in fitted] == [4, 4, 4]


@pytest.mark.parametrize("stops", [(1, 4, 4), (4, 4, 1)])
def test_members_in_one_pass_go_on_probing_when_the_prober_stops(four_cpus, monkeypatch, stops):
    # the first member stops after epoch 1: the others still probe again (they took 4
    # threads as alone); a member that stops records the count it ran at, not the next one
    from aekit.training.ensemble import fit_together

    timings = iter([{1: 1.0, 2: 1.0, 4: 1.0}] + [{1: 1.0, 2: 0.5, 4: 0.4}] * 9)
    probes = []  # the models each probe stepped at once: the stack of the epoch before
    monkeypatch.setattr(
        threads, "probe_seconds", lambda *a, **k: probes.append(k["members"]) or next(timings)
    )
    monkeypatch.setattr(rethreads, "REPROBE_SECONDS", 0.0)
    monkeypatch.setattr(rethreads, "SLOW", math.inf)

    class StopAt(Callback):
        def __init__(self, epoch: int) -> None:
            self.epoch = epoch

        def on_epoch_end(self, trainer, *, record, **kwargs):
            if record["epoch"] >= self.epoch:
                trainer.request_stop("early_stopping")

    config = ModelConfig(input_dim=8, code_dim=2, hidden=(5,))
    fits = [
        Trainer(
            Hourglass(config, torch.Generator().manual_seed(s)),
            TrainConfig(epochs=4, patience=None, random_state=s, threads="auto"),
            [StopAt(stop)],
        )
        for s, stop in enumerate(stops)
    ]
    histories = fit_together(fits, rows())
    assert [len(h) for h in histories] == list(stops)
    assert [h.threads for h in histories] == [1 if stop == 1 else 4 for stop in stops]
    # before the first step, then after the first epoch that the prober goes on from (the
    # first member's last is the first: the others take over at the next, two of them)
    assert probes == ([3, 2] if stops[0] == 1 else [3, 3])


def test_the_probe_of_members_in_one_pass_steps_their_stack(monkeypatch):
    from aekit.model import stacked

    built = []

    class Recorded(stacked.StackedHourglass):
        def __init__(self, members):
            built.append(len(members))
            super().__init__(members)

    monkeypatch.setattr(threads, "StackedHourglass", Recorded)
    batch = rows(40)
    config = ModelConfig(input_dim=8, code_dim=2, hidden=(6,), batch_norm=True)
    for members in (1, 3):
        seconds = threads.probe_seconds(config, TrainConfig(), batch, [2, 1], members=members)
        assert set(seconds) == {1, 2} and all(s > 0 for s in seconds.values())
    # dropout keeps members from one stack: the probe steps one model, as they will train
    dropped = dataclasses.replace(config, dropout=0.1)
    threads.probe_seconds(dropped, TrainConfig(), batch, [2, 1], members=3, budget=0.0)
    assert built == [3]


def test_an_explicit_count_is_never_probed_again(four_cpus, monkeypatch):
    monkeypatch.setattr(threads, "probe_seconds", lambda *a, **k: pytest.fail("probed"))
    monkeypatch.setattr(rethreads, "REPROBE_SECONDS", 0.0)
    watch = SeesThreads()
    fit = trainer(threads=2)
    fit.callbacks.append(watch)
    assert fit.fit(rows()).threads == 2 and watch.seen == [2, 2, 2]
