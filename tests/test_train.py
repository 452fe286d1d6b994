import logging

import numpy as np
import pytest
import torch

from aekit import (
    Autoencoder,
    Callback,
    ConfigError,
    DataError,
    EarlyStopping,
    Hourglass,
    ModelConfig,
    TrainConfig,
    Trainer,
    TrainingDivergedError,
)
from aekit.training import Checkpointer, LogProgress, default_callbacks, objective, optim
from aekit.training.callbacks import DivergenceRetry
from aekit.training.trainer import resolve_device


def make(data_dim=8, dropout=0.0, **train):
    model = Hourglass(
        ModelConfig(input_dim=data_dim, code_dim=2, hidden=(16,), dropout=dropout),
        torch.Generator().manual_seed(0),
    )
    # aekit 0.1.0's TrainConfig defaults (lr 1e-3, constant, no decay), which these tests assume
    base = {"lr": 1e-3, "lr_schedule": "constant", "weight_decay": 0.0, "min_val_rows": 0}
    config = TrainConfig(
        **{"epochs": 5, "batch_size": 32, "random_state": 0, "device": "cpu", **base, **train}
    )
    return model, config


def data(n=200, d=8, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).random((n, d), dtype=np.float32))


def test_seeded_runs_are_identical_and_global_rng_untouched():
    before = torch.get_rng_state()
    weights = []
    for _ in range(2):
        model, config = make(dropout=0.2)
        Trainer(model, config).fit(data())
        weights.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*weights, strict=True))
    assert torch.equal(before, torch.get_rng_state())


def test_loss_decreases_and_history_is_recorded():
    model, config = make(epochs=20, lr=1e-2)
    history = Trainer(model, config).fit(data())
    assert len(history) == 20 and history.stop_reason == "epochs"
    assert history.train_loss[-1] < history.train_loss[0] * 0.8
    assert all(v is not None for v in history.val_loss)
    assert history.to_dict()["records"][0]["epoch"] == 1


def test_early_stopping_restores_best_weights():
    model, config = make(epochs=200, lr=5e-2, patience=3)
    trainer = Trainer(model, config)
    history = trainer.fit(data(60))
    assert history.stop_reason == "early_stopping"
    best = history.best_epoch
    assert history.val_loss[best - 1] == min(v for v in history.val_loss if v is not None)
    # the weights in the model are the best epoch's: recompute the validation loss
    x = data(60).index_select(0, trainer.val_idx)
    with torch.no_grad():
        val = (model(model.scale_input(x)).recon - x).pow(2).mean().item()
    assert val == pytest.approx(history.val_loss[best - 1], rel=1e-5)


@pytest.mark.parametrize("rows", [1, 2, 3])
def test_tiny_inputs_train_without_validation(rows):
    model, config = make()
    history = Trainer(model, config).fit(data(rows))
    assert len(history) == 5 and history.val_loss[0] is None


def test_max_time_stops_training():
    model, config = make(epochs=10_000, max_time=0.2, patience=None)
    history = Trainer(model, config).fit(data())
    assert history.stop_reason == "max_time" and len(history) < 10_000


def test_a_run_that_trained_every_epoch_stopped_by_epochs_even_past_max_time(monkeypatch):
    model, config = make(epochs=3, max_time=0.0, patience=None)  # past it after any epoch
    monkeypatch.setattr(Trainer, "elapsed", lambda self: 0.0 if len(self.history) < 3 else 9.0)
    assert Trainer(model, config).fit(data()).stop_reason == "epochs"  # it said "max_time"


def test_divergence_raises_with_epoch_and_step():
    model, config = make(lr=1e6, epochs=50)
    with pytest.raises(TrainingDivergedError, match=r"epoch \d+"):
        Trainer(model, config).fit(data() * 1e30)


def test_callbacks_are_called_in_order():
    calls = []

    class Spy(Callback):
        def on_train_begin(self, trainer):
            calls.append("begin")

        def on_epoch_begin(self, trainer, epoch):
            calls.append(f"e{epoch}")

        def on_batch_end(self, trainer, batch, n_batches):
            calls.append(f"b{batch}/{n_batches}")

        def on_train_end(self, trainer):
            calls.append("end")

    model, config = make(epochs=2, val_fraction=0.0)
    Trainer(model, config, [Spy()]).fit(data(64))
    assert calls == ["begin", "e1", "b1/2", "b2/2", "e2", "b1/2", "b2/2", "end"]


def test_verbose_logs_each_epoch(caplog):
    model, config = make(epochs=2, verbose=1)
    with caplog.at_level(logging.INFO, logger="aekit"):
        Trainer(model, config).fit(data())
    assert sum("epoch" in r.message for r in caplog.records) == 2


@pytest.mark.parametrize("schedule", ["cosine", "plateau"])
def test_schedules_change_the_learning_rate(schedule):
    model, config = make(epochs=12, lr_schedule=schedule, patience=None, lr=1e-1)
    history = Trainer(model, config).fit(data())
    lrs = [r["lr"] for r in history.records]
    assert lrs[-1] < lrs[0]


def test_bf16_autocast_trains_in_bfloat16(monkeypatch):
    """precision="bf16" runs training and validation forward passes in bfloat16, and still
    learns; fp32 runs them in float32."""
    monkeypatch.setattr(objective, "cpu_has_bf16", lambda: True)  # no emulation warning here
    dtypes, runs = {}, {}
    for precision in ("fp32", "bf16"):
        model, config = make(precision=precision, epochs=3, lr=1e-2)
        seen = dtypes[precision] = set()
        model.encoder[0].register_forward_hook(
            lambda module, args, out, seen=seen: seen.add((module.training, out.dtype))
        )
        runs[precision] = Trainer(model, config).fit(data()).train_loss
    assert dtypes["fp32"] == {(True, torch.float32), (False, torch.float32)}
    assert dtypes["bf16"] == {(True, torch.bfloat16), (False, torch.bfloat16)}
    assert np.isfinite(runs["bf16"]).all() and runs["bf16"][-1] < runs["bf16"][0]
    assert runs["bf16"] != runs["fp32"]  # rounded to bfloat16: not the fp32 run
    assert runs["bf16"] == pytest.approx(runs["fp32"], rel=0.05)


def test_bf16_on_a_cpu_without_bf16_instructions_warns_it_is_emulated(monkeypatch):
    monkeypatch.setattr(objective, "cpu_has_bf16", lambda: False)
    model, config = make(precision="bf16", epochs=1)
    with pytest.warns(RuntimeWarning, match="emulated"):
        Trainer(model, config).fit(data())
    model, config = make(precision="fp32", epochs=1)
    Trainer(model, config).fit(data())  # fp32: no warning (warnings are errors in the suite)


def test_compile_trains_through_torch_compile_and_keeps_the_module(monkeypatch):
    """compile=True hands the network to torch.compile (faked here: the real one needs a
    compiler and a long warm-up) and trains through what it returns."""
    calls = []

    class Counting(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            calls.append(len(x))
            return self.net(x)

    monkeypatch.setattr(torch, "compile", lambda net: Counting(net))
    weights = []
    for compile in (False, True):
        model, config = make(epochs=2, compile=compile)
        Trainer(model, config).fit(data())
        weights.append([p.detach().clone() for p in model.parameters()])
    assert sum(calls) == 2 * 180  # every training row of both epochs went through it
    assert all(torch.equal(a, b) for a, b in zip(*weights, strict=True))


def test_resolve_device():
    """ "auto" is this machine's CUDA device, else Apple's MPS, else the CPU; names are kept."""
    mps = getattr(torch.backends, "mps", None)
    if torch.cuda.is_available():
        expected = torch.device("cuda", torch.cuda.current_device())
    elif mps is not None and mps.is_available():
        expected = torch.device("mps")
    else:
        expected = torch.device("cpu")
    assert resolve_device("auto") == expected
    assert resolve_device("cpu") == torch.device("cpu")
    if torch.cuda.is_available():
        assert resolve_device("cuda") == torch.device("cuda", torch.cuda.current_device())
    else:
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match="not a torch device"):
        resolve_device("gpu0")


def test_auxk_loss_revives_dead_topk_units(digits):
    """Half the units start dead (bias far below zero); the auxiliary loss brings many back."""
    rows = torch.from_numpy(digits.astype(np.float32))
    dead = []
    for weight in (0.0, 1 / 32):
        config = ModelConfig(
            input_dim=64, code_dim=64, hidden=(), sparsity="topk", sparsity_k=4,
            sparsity_weight=weight,
        )  # fmt: skip
        model = Hourglass(config, torch.Generator().manual_seed(0))
        with torch.no_grad():
            model.encoder[0].bias[32:] = -12.0
        train = TrainConfig(
            epochs=20, batch_size=32, lr=3e-3, random_state=0, device="cpu",
            val_fraction=0.0, patience=None,
        )  # fmt: skip
        Trainer(model, train).fit(rows)
        with torch.no_grad():
            dead.append(float((model.encode(rows) != 0).any(dim=0).logical_not().float().mean()))
    assert dead[0] > 0.5
    assert dead[1] < dead[0] - 0.15  # seeded: 0.73 without AuxK, 0.53 with it


@pytest.mark.gpu
def test_streamed_rows_train_on_a_gpu(tmp_path):
    """Rows streamed from disk go through pinned memory to the GPU."""
    from aekit.data.stream import NpyRows

    path = tmp_path / "rows.npy"
    np.save(path, data(n=300).numpy())
    model, config = make(epochs=3, device="cuda")
    history = Trainer(model, config).fit(NpyRows(path, block_rows=64))
    assert np.isfinite(history.train_loss).all() and history.train_loss[-1] < history.train_loss[0]
    assert next(model.parameters()).device.type == "cuda"


def _dictionary(rows, *, centre, weight_decay, epochs=6):
    """A 64-unit top-k (k = 4) dictionary trained on digits; returns its dead-unit share."""
    config = ModelConfig(
        input_dim=64, code_dim=64, hidden=(), sparsity="topk", sparsity_k=4,
        sparsity_weight=0.0, output="identity",
    )  # fmt: skip
    model = Hourglass(config, torch.Generator().manual_seed(0))
    if centre:
        model.set_origin_(rows.mean(dim=0))
    train = TrainConfig(
        epochs=epochs, batch_size=32, lr=3e-3, weight_decay=weight_decay, random_state=0,
        device="cpu", val_fraction=0.0, patience=None,
    )  # fmt: skip
    Trainer(model, train).fit(rows)
    with torch.no_grad():
        return float((model.encode(rows) != 0).any(dim=0).logical_not().float().mean())


def test_centring_keeps_topk_units_alive(digits):
    """Uncentred pixels: units whose rows point away from the mean never reach the top k."""
    rows = torch.from_numpy(digits.astype(np.float32))
    uncentred = _dictionary(rows, centre=False, weight_decay=0.0)
    centred = _dictionary(rows, centre=True, weight_decay=0.0)
    assert uncentred > 0.4 and centred < 0.1  # seeded: 0.56 and 0.03


def test_weight_decay_spares_topk_code_layers(digits, monkeypatch):
    """Adam's L2 decay shrinks silent units' weights by ~lr a step; the code layers skip it."""
    rows = torch.from_numpy(digits.astype(np.float32))
    spared = _dictionary(rows, centre=True, weight_decay=1e-3)
    monkeypatch.setattr(
        optim,
        "param_groups",
        lambda module, decay: [{"params": list(module.parameters()), "weight_decay": decay}],
    )
    decayed = _dictionary(rows, centre=True, weight_decay=1e-3)
    assert spared < 0.1 and decayed > 0.4  # seeded: 0.03 and 0.6


def test_param_groups_exempt_only_topk_code_layers():
    def groups(**model):
        config = ModelConfig(input_dim=6, code_dim=4, hidden=(5,), **model)
        module = Hourglass(config, torch.Generator().manual_seed(0))
        found = optim.param_groups(module, 0.1)
        return module, [({id(p) for p in g["params"]}, g["weight_decay"]) for g in found]

    module, found = groups(sparsity="topk", sparsity_k=2)
    exempt = {id(p) for p in [*module.encoder[-1].parameters(), *module.decoder[0].parameters()]}
    assert found == [({id(p) for p in module.parameters()} - exempt, 0.1), (exempt, 0.0)]
    module, found = groups(sparsity="l1")
    assert found == [({id(p) for p in module.parameters()}, 0.1)]


def test_default_callbacks_follow_the_config_and_extras_replace_them():
    model, config = make(verbose=1, divergence_retries=2, patience=None, epochs=30, lr=5e-2)
    kinds = [type(cb) for cb in default_callbacks(config)]
    assert kinds == [EarlyStopping, DivergenceRetry, LogProgress, Checkpointer]
    assert [type(cb) for cb in default_callbacks(make()[1])] == [EarlyStopping, Checkpointer]

    class Spy(Callback):
        pass

    spy, stopping = Spy(), EarlyStopping(patience=1)
    trainer = Trainer(model, config, [spy, stopping])
    # by order: retries and early stopping first, then the extras, logging, checkpoints
    kinds = [type(cb) for cb in trainer.callbacks]
    assert kinds == [DivergenceRetry, EarlyStopping, Spy, LogProgress, Checkpointer]
    assert trainer.callbacks[1] is stopping and trainer.callbacks[2] is spy
    history = trainer.fit(data(60))  # the config says patience=None: the extra one stops
    assert history.stop_reason == "early_stopping" and len(history) < 30


def test_hooks_are_called_with_keywords():
    """Every hook gets the trainer, then keyword arguments only."""
    calls = []

    def hook(name):
        return lambda self, trainer, **kwargs: calls.append((name, sorted(kwargs)))

    hooks = {name: hook(name) for name in vars(Callback) if name.startswith("on_")}
    model, config = make(epochs=1, val_fraction=0.0)
    Trainer(model, config, [type("Keywords", (Callback,), hooks)()]).fit(data(64))
    assert calls == [
        ("on_train_begin", []),
        ("on_epoch_begin", ["epoch"]),
        ("on_batch_end", ["batch", "n_batches"]),
        ("on_batch_end", ["batch", "n_batches"]),
        ("on_epoch_end", ["record"]),
        ("on_epoch_boundary", ["epoch"]),
        ("on_train_end", []),
    ]


def test_partial_fit_runs_the_epochs_of_fit():
    """Passes of partial_fit over the training rows are fit's epochs, figures included."""
    model, config = make(epochs=2, val_fraction=0.0)
    history = Trainer(model, config).fit(data())
    assert history.best_epoch == 2  # so the weights are the last epoch's
    fitted = [p.detach().clone() for p in model.parameters()]
    model, config = make(epochs=2, val_fraction=0.0)
    trainer = Trainer(model, config)
    passes = [trainer.partial_fit(data()) for _ in range(2)]
    assert trainer.history.records == passes
    assert all(torch.equal(a, b) for a, b in zip(fitted, model.parameters(), strict=True))
    timing = ("seconds", "samples_per_s")
    for ours, theirs in zip(passes, history.records, strict=True):
        assert {k: v for k, v in ours.items() if k not in timing} == {
            k: v for k, v in theirs.items() if k not in timing
        }
        assert ours["samples_per_s"] > 0 and theirs["samples_per_s"] > 0


def test_running_loss_is_the_epoch_loss_at_its_last_step():
    seen = []

    class Watch(Callback):
        def on_batch_end(self, trainer, *, batch, n_batches, **kwargs):
            seen.append((batch, n_batches, trainer.running_loss))

        def on_epoch_end(self, trainer, *, record, **kwargs):
            seen.append(record["train_loss"])

    model, config = make(epochs=2)
    Trainer(model, config, [Watch()]).fit(data())
    # 180 training rows, batches of 32: 6 steps an epoch, then the epoch's record
    assert [len(s) if isinstance(s, tuple) else "record" for s in seen] == (
        [3] * 6 + ["record"]
    ) * 2
    for last, record in ((seen[5], seen[6]), (seen[12], seen[13])):
        assert last[:2] == (6, 6) and last[2] == record
    assert all(np.isfinite(s[2]) for s in seen if isinstance(s, tuple))


def test_a_failed_refit_keeps_the_fitted_model_whole():
    # the new data's names and layout were kept over the old model: it then took columns by
    # them, and its codes of the same frame moved by up to 242 without a word
    import pandas as pd

    rng = np.random.default_rng(0)
    z = rng.normal(size=(200, 2))
    frame = pd.DataFrame(np.c_[z, z.sum(1), 10 * z[:, 0]], columns=list("abcd"))
    ae = Autoencoder(code_dim=2, epochs=3, random_state=0).fit(frame)
    before = ae.transform(frame)
    with pytest.raises(ConfigError, match="lr must be > 0"):
        ae.set_params(lr=0).fit(frame[list("dcba")])
    assert list(ae.feature_names_in_) == list("abcd")
    np.testing.assert_array_equal(ae.transform(frame), before)


def test_settings_that_cannot_train_are_refused_before_training(tmp_path, capsys):
    from aekit.cli import main

    X = np.random.default_rng(0).normal(size=(120, 5)).astype(np.float32)
    # BCE on standardized rows (outside [0, 1]) has no minimum: it trained without a word
    with pytest.raises(ConfigError, match="loss='bce' needs scaled rows in"):
        Autoencoder(code_dim=2, loss="bce", output="sigmoid").fit(X)
    Autoencoder(code_dim=2, loss="bce", scaling="minmax", epochs=1).fit(X)  # in [0, 1]: fine
    # with epochs="auto" these met arithmetic before their checks (ZeroDivisionError...)
    for bad in ({"batch_size": 0}, {"val_fraction": float("nan")}, {"min_val_rows": None}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            Autoencoder(code_dim=2, **bad).fit(X)
    np.save(tmp_path / "x.npy", X)
    argv = ["fit", str(tmp_path / "x.npy"), "--code-dim", "2", "-o", str(tmp_path / "m")]
    assert main([*argv, "--batch-size", "0"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_a_trainer_trains_once_and_partial_fit_refuses_one_row_for_batch_norm():
    rows = torch.from_numpy(np.random.default_rng(0).random((64, 4)).astype(np.float32))
    module = Hourglass(ModelConfig(input_dim=4, code_dim=2, hidden=(8,)))
    trainer = Trainer(module, TrainConfig(epochs=2, random_state=0, device="cpu"))
    trainer.fit(rows)
    with pytest.raises(ConfigError, match="trains once"):
        trainer.fit(rows)  # it returned the first run's weights (its best), history doubled
    ae = Autoencoder(code_dim=2, batch_norm=True, epochs=1).fit(rows.numpy())
    with pytest.raises(DataError, match="batch_norm=True needs at least 2 training rows"):
        ae.partial_fit(rows.numpy()[:1])
