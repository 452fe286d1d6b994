"""What a fit spends around its steps: fixed costs recorded, denormals flushed, max_time kept.

No test here times anything: clocks are replaced where a rule reads one.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aekit import Autoencoder, Hourglass, ModelConfig, TrainConfig, Trainer
from aekit.errors import ModelFileError
from aekit.model import pca_start
from aekit.training import History, denormals
from aekit.training.budget import past_deadline
from aekit.training.callbacks import Callback
from aekit.training.denormals import flushes_denormals, flushing_denormals


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
