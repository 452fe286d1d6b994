"""The thread policy: usable CPUs, explicit choices, the probe, restoring, recording, resuming.

No test here times anything: probes that must pick a count are given their timings.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import pytest
import torch

from aekit import Autoencoder
from aekit.cli.options import add_estimator_options, estimator_kwargs
from aekit.config import ModelConfig, TrainConfig
from aekit.errors import ConfigError, ModelFileError
from aekit.training import History, Trainer, threads
from aekit.training import distributed as distributed_module
from aekit.training.callbacks import Callback
from aekit.training.checkpoint import latest_checkpoint, read_checkpoint
from aekit.training.cpus import (
    SHARE_ENV,
    cgroup_cpu_limit,
    process_share,
    usable_cpus,
)
from aekit.training.distributed import Ranks, relaunch
from tests.helpers import InterruptAt

FIT = {"code_dim": 3, "hidden": (16,), "epochs": 2, "batch_size": 64, "device": "cpu"}
FIT |= {"random_state": 0, "init": "random"}


class CountThreads(Callback):
    """Record torch's thread count at every epoch's start."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def on_epoch_begin(self, trainer, **kwargs):
        self.seen.append(torch.get_num_threads())


class SameRanks(Ranks):
    """Ranks of a DDP run without a process group: rank 0's values are this process's."""

    def from_main(self, value):
        return value


@pytest.fixture(autouse=True)
def no_recent_probe(monkeypatch):
    """Each test probes afresh (no timings kept from another test)."""
    monkeypatch.setattr(threads, "_RECENT", {})


@pytest.fixture()
def auto(monkeypatch):
    """threads='auto' as in a fresh process: torch's count is the start-up one, no variables."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", SHARE_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(threads, "STARTUP_THREADS", torch.get_num_threads())


@pytest.fixture()
def four_threads(monkeypatch, auto):
    """torch starts 4 threads and the process may use 4 CPUs; the count is put back after."""
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    monkeypatch.setattr(threads, "STARTUP_THREADS", 4)
    monkeypatch.setattr(threads, "usable_cpus", lambda: 4)
    yield
    torch.set_num_threads(before)


def fake_probe(seconds, calls=None):
    def probe(model_config, config, batch, counts, **kwargs):
        if calls is not None:
            calls.append((list(counts), len(batch)))
        return {count: seconds[count] for count in counts}

    return probe


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# -- usable CPUs ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("files", "membership", "expected"),
    [
        ({"pod/cpu.max": "200000 100000\n"}, "0::/pod\n", 2.0),  # cgroup v2
        ({"pod/cpu.max": "max 100000\n"}, "0::/pod\n", None),
        ({"kube/cpu.max": "150000 100000", "kube/pod/cpu.max": "400000 100000"},
         "0::/kube/pod\n", 1.5),  # the tightest on the way up counts
        ({"cpu.max": "100000 100000"}, "0::/hidden/by/namespace\n", 1.0),
        ({"cpu,cpuacct/docker/c1/cpu.cfs_quota_us": "250000",
          "cpu,cpuacct/docker/c1/cpu.cfs_period_us": "100000"},
         "4:cpu,cpuacct:/docker/c1\n2:memory:/docker/c1\n", 2.5),  # cgroup v1
        ({"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, "1:cpu:/\n", None),
        ({"unified/app/cpu.max": "50000 100000"}, "1:cpu:/\n0::/app\n", 0.5),  # hybrid
        ({"pod/cpu.max": "garbage"}, "0::/pod\n", None),
    ],
)  # fmt: skip
def test_cgroup_quota_v1_and_v2(tmp_path, files, membership, expected):
    for name, text in files.items():
        write(tmp_path / "fs" / name, text)
    write(tmp_path / "self", membership)
    assert cgroup_cpu_limit(tmp_path / "fs", tmp_path / "self") == expected


def test_no_cgroup_file_means_no_quota(tmp_path):
    assert cgroup_cpu_limit(tmp_path, tmp_path / "missing") is None


@pytest.mark.parametrize(("quota", "expected"), [(None, 8), ("250000", 2), ("50000", 1)])
def test_usable_cpus_is_the_affinity_capped_by_the_quota(tmp_path, monkeypatch, quota, expected):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)), raising=False)
    write(tmp_path / "self", "1:cpu:/job\n")
    if quota is not None:
        write(tmp_path / "cpu/job/cpu.cfs_quota_us", quota)
        write(tmp_path / "cpu/job/cpu.cfs_period_us", "100000")
    assert usable_cpus(tmp_path, tmp_path / "self") == expected


def test_each_process_gets_its_share():
    assert [process_share(8, n) for n in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]


# -- explicit choices -------------------------------------------------------------------------
def test_auto_is_free_without_an_explicit_choice(auto):
    assert threads.explicit_threads("auto") is None


@pytest.mark.parametrize("name", ["OMP_NUM_THREADS", "MKL_NUM_THREADS"])
def test_environment_variables_are_explicit(auto, monkeypatch, name):
    monkeypatch.setenv(name, "3")
    assert threads.explicit_threads("auto") == (
        torch.get_num_threads(),
        f"{name}=3 in the environment",
    )


def test_the_share_nproc_sets_is_not_the_users_choice(auto, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setenv(SHARE_ENV, "2")
    assert threads.explicit_threads("auto") is None


def test_a_changed_torch_count_and_the_option_are_explicit(monkeypatch, auto):
    current = torch.get_num_threads()
    assert threads.explicit_threads(3) == (3, "threads=3")
    assert threads.explicit_threads("torch")[0] == current
    monkeypatch.setattr(threads, "STARTUP_THREADS", current + 1)
    assert threads.explicit_threads("auto")[0] == current


@pytest.mark.parametrize("bad", [0, -1, True, 2.5, "many", None])
def test_bad_thread_options_are_one_line_errors(bad):
    with pytest.raises(ConfigError, match="threads") as info:
        TrainConfig(threads=bad)
    assert "\n" not in str(info.value)


def test_config_files_round_trip_and_old_files_mean_torchs_count():
    for value in ("auto", "torch", 3):
        assert TrainConfig.from_dict(TrainConfig(threads=value).to_dict()).threads == value
    old = TrainConfig().to_dict()
    del old["threads"]
    assert TrainConfig.from_dict(old).threads == "torch"
    with pytest.raises(ConfigError, match="int or str"):
        TrainConfig.from_dict({**old, "threads": 2.5})


@pytest.mark.parametrize(("typed", "value"), [("3", 3), ("auto", "auto"), ("torch", "torch")])
def test_the_command_line_option(typed, value):
    parser = argparse.ArgumentParser()
    add_estimator_options(parser)
    assert estimator_kwargs(parser.parse_args(["--threads", typed])) == {"threads": value}


# -- the decision -----------------------------------------------------------------------------
def test_ladder_and_the_fewest_threads_within_the_margin():
    assert [threads.ladder(n) for n in (1, 2, 6, 8)] == [[1], [2, 1], [6, 3, 1], [8, 4, 2, 1]]
    assert threads.fewest_within({2: 0.7, 1: 1.0}) == 2  # quiet: two threads earn their place
    assert threads.fewest_within({2: 0.97, 1: 1.0}) == 1  # within 5 %: the fewer
    assert threads.fewest_within({2: 8.0, 1: 1.0}) == 1  # a busy core: collapse avoided
    assert threads.fewest_within({4: 0.5, 2: 0.51, 1: 1.0}) == 2


def test_auto_probes_the_ladder_of_the_budget(four_threads, monkeypatch):
    calls = []
    monkeypatch.setattr(threads, "probe_seconds", fake_probe({4: 0.5, 2: 0.3, 1: 1.0}, calls))
    X = torch.rand(500, 8, generator=torch.Generator().manual_seed(0))
    choice = threads.choose_threads(TrainConfig(), ModelConfig(8), X, torch.device("cpu"))
    assert calls == [([4, 2, 1], 64)]
    assert (choice.count, choice.usable, choice.share) == (2, 4, 4)
    assert choice.seconds == {4: 0.5, 2: 0.3, 1: 1.0}


def test_a_recent_probe_of_the_same_model_is_reused(four_threads, monkeypatch):
    calls = []
    monkeypatch.setattr(threads, "probe_seconds", fake_probe({4: 0.5, 2: 0.3, 1: 1.0}, calls))
    X = torch.rand(500, 8, generator=torch.Generator().manual_seed(0))
    choose = [TrainConfig(), ModelConfig(8), X, torch.device("cpu")]
    first, again = threads.choose_threads(*choose), threads.choose_threads(*choose)
    assert len(calls) == 1 and first.count == again.count == 2
    threads.choose_threads(TrainConfig(), ModelConfig(8, code_dim=3), X, torch.device("cpu"))
    assert len(calls) == 2  # another model: probed
    monkeypatch.setattr(threads, "REUSE_SECONDS", 0.0)
    threads.choose_threads(TrainConfig(), ModelConfig(8, code_dim=3), X, torch.device("cpu"))
    assert len(calls) == 3  # too old: probed again


def test_ddp_processes_share_the_cpus_and_say_so(four_threads, monkeypatch, caplog):
    calls = []
    monkeypatch.setattr(threads, "probe_seconds", fake_probe({2: 0.4, 1: 1.0}, calls))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    X = torch.rand(500, 8, generator=torch.Generator().manual_seed(0))
    with caplog.at_level(logging.INFO, logger="aekit"):
        choice = threads.choose_threads(
            TrainConfig(), ModelConfig(8), X, torch.device("cpu"), SameRanks(0, 2)
        )
    assert calls == [([2, 1], 32)]  # each rank steps on its half of a batch
    assert (choice.count, choice.share, choice.processes) == (2, 2, 2)
    assert "in each of 2 processes" in caplog.text


def test_no_probe_off_the_cpu_or_on_a_resume(four_threads, monkeypatch):
    monkeypatch.setattr(threads, "probe_seconds", pytest.fail)
    X = torch.rand(100, 8)
    on_gpu = threads.choose_threads(TrainConfig(), ModelConfig(8), X, torch.device("cuda"))
    assert on_gpu.count == 4
    resumed = threads.choose_threads(
        TrainConfig(), ModelConfig(8), X, torch.device("cpu"), recorded=3
    )
    assert resumed.count == 3


def test_explicit_choices_win_over_a_record_and_oversubscription_warns(four_threads, caplog):
    X = torch.rand(100, 8)
    with caplog.at_level(logging.INFO, logger="aekit"):
        choice = threads.choose_threads(
            TrainConfig(threads=8), ModelConfig(8), X, torch.device("cpu"), recorded=2
        )
    assert choice.count == 8
    assert "8 thread(s) × 1 process(es) on 4 usable CPU(s)" in caplog.text
    assert "differ in the last bits" in caplog.text


def test_using_threads_restores_the_count_however_the_block_ends():
    before = torch.get_num_threads()
    with threads.using_threads(before + 1):
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before
    with pytest.raises(KeyboardInterrupt), threads.using_threads(before + 1):
        raise KeyboardInterrupt
    assert torch.get_num_threads() == before


def test_the_real_probe_touches_nothing_of_the_caller():
    before, rng = torch.get_num_threads(), torch.get_rng_state()
    config = ModelConfig(8, 2, (16,), dropout=0.1, batch_norm=True)
    batch = torch.rand(32, 8, generator=torch.Generator().manual_seed(0))
    seconds = threads.probe_seconds(config, TrainConfig(), batch, [2, 1], budget=0.0)
    assert set(seconds) == {1, 2} and all(s > 0 for s in seconds.values())
    assert torch.get_num_threads() == before
    assert torch.equal(torch.get_rng_state(), rng)


# -- a fit: restored, recorded, repeated, resumed -----------------------------------------------
def test_fit_runs_at_the_option_and_restores_torchs_count(digits):
    before, counter = torch.get_num_threads(), CountThreads()
    ae = Autoencoder(**FIT, threads=2).fit(digits[:300], callbacks=(counter,))
    assert counter.seen == [2, 2] and ae.history_.threads == 2
    assert torch.get_num_threads() == before
    with pytest.raises(KeyboardInterrupt):
        Autoencoder(**FIT, threads=2).fit(digits[:300], callbacks=(InterruptAt(step=3),))
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("picked", [1, 2])
def test_the_probe_changes_no_weight(digits, monkeypatch, picked):
    """Auto's choice trains bit for bit as that count given explicitly; so does a repeat."""
    real = threads.probe_seconds

    def probe(*args, **kwargs):
        real(*args, **kwargs)  # runs for real, then reports timings that pick ``picked``
        return {count: 1.0 if count == picked else 2.0 for count in args[3]}

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        monkeypatch.setattr(threads, "STARTUP_THREADS", 2)
        monkeypatch.setattr(threads, "usable_cpus", lambda: 2)
        monkeypatch.setattr(threads, "probe_seconds", probe)
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            monkeypatch.delenv(name, raising=False)
        chosen = Autoencoder(**{**FIT, "init": "pca"}).fit(digits[:300])
        given = Autoencoder(**{**FIT, "init": "pca"}, threads=picked).fit(digits[:300])
        again = Autoencoder(**{**FIT, "init": "pca"}, threads=picked).fit(digits[:300])
    finally:
        torch.set_num_threads(before)
    assert chosen.history_.threads == given.history_.threads == picked
    for other in (given, again):
        for name, tensor in chosen.module_.state_dict().items():
            assert torch.equal(tensor, other.module_.state_dict()[name]), name
        assert other.history_.train_loss == chosen.history_.train_loss


def test_the_count_is_in_the_checkpoint_and_a_resume_reuses_it(digits, tmp_path, auto):
    params = {**FIT, "epochs": 3, "checkpoint_every_steps": 2}
    X, folder = digits[:300], str(tmp_path / "ckpt")
    reference = Autoencoder(**params, threads=2).fit(X)
    with pytest.raises(KeyboardInterrupt):
        Autoencoder(**params, threads=2, checkpoint_dir=folder).fit(
            X, callbacks=(InterruptAt(step=6),)
        )
    assert read_checkpoint(latest_checkpoint(folder))["history"]["threads"] == 2
    counter = CountThreads()
    resumed = Autoencoder(**params, checkpoint_dir=folder).fit(
        X, resume=True, callbacks=(counter,)
    )  # threads="auto": the checkpoint's count, not this process's 1
    assert resumed.history_.threads == 2 and set(counter.seen) == {2}
    assert np.array_equal(resumed.transform(X), reference.transform(X))


def test_partial_fit_keeps_one_count(digits, auto):
    ae = Autoencoder(**FIT, threads=2)
    for rows in (digits[:200], digits[200:400]):
        ae.partial_fit(rows)
    assert ae.history_.threads == 2
    trainer = Trainer(ae.module_, TrainConfig(threads="auto", device="cpu"))
    trainer.history = ae.history_  # as after unpickling: the recorded count is kept
    trainer.partial_fit(torch.as_tensor(digits[400:600], dtype=torch.float32))
    assert trainer.thread_choice.count == 2


def test_history_records_the_count(tmp_path):
    history = History(threads=2)
    assert History.from_dict(history.to_dict()).threads == 2
    old = history.to_dict()
    del old["threads"]  # written by aekit 0.2
    assert History.from_dict(old).threads is None
    with pytest.raises(ModelFileError, match="threads"):
        History.from_dict({**old, "threads": 0})


# -- DDP --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("omp", "expected"), [(None, "2"), ("3", "3")])
def test_nproc_starts_each_process_with_its_share(monkeypatch, omp, expected):
    seen = {}

    class Popen:  # torchrun, not started
        def __init__(self, command, env):
            seen.update(env)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def wait(self):
            return 0

    monkeypatch.setattr(distributed_module.subprocess, "Popen", Popen)
    monkeypatch.setattr(distributed_module, "usable_cpus", lambda: 5)
    monkeypatch.delenv(SHARE_ENV, raising=False)
    if omp is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    assert relaunch(["fit", "x.npy"], 2) == 0
    assert seen["OMP_NUM_THREADS"] == expected
    assert seen.get(SHARE_ENV) == (expected if omp is None else None)
