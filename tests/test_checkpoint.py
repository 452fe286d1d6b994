"""Checkpoints and resume: bitwise-exact continuation, Ctrl-C, divergence, corrupt files."""

import logging
import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from aekit import (
    Autoencoder,
    Callback,
    ConfigError,
    Hourglass,
    ModelConfig,
    ModelFileError,
    TrainConfig,
    Trainer,
    TrainingDivergedError,
)
from aekit.sae import SparseAutoencoder
from aekit.training.checkpoint import (
    STATE_FIELDS,
    build_state,
    check_state,
    checkpoint_path,
    find_checkpoint,
    latest_checkpoint,
    read_checkpoint,
    write_checkpoint,
)

# Set-ups that use every stateful part: dropout and input noise draw from the noise
# generator, cosine/plateau schedules keep state, batch norm has running statistics, the
# second monitors the training loss (no validation split) so early stopping fires, and the
# top-k dictionary keeps AuxK's dead-unit counters (a few units count as dead in the last
# epochs) and two optimiser groups (its code layers without weight decay).
SETUPS = {
    "noise-cosine": (
        {"dropout": 0.2, "noise": "masking"},
        {"epochs": 4, "lr_schedule": "cosine"},
    ),
    "batchnorm-plateau-earlystop": (
        {"batch_norm": True},
        {"epochs": 30, "lr": 0.1, "lr_schedule": "plateau", "val_fraction": 0.0, "patience": 1},
    ),
    "topk-auxk-decay": (
        {"hidden": (), "code_dim": 32, "sparsity": "topk", "sparsity_k": 2, "sparsity_weight": 1},
        {"epochs": 18, "weight_decay": 1e-3, "lr": 0.01, "lr_schedule": "cosine"},
    ),
}


def make_trainer(folder=None, setup="noise-cosine", callbacks=(), **train):
    model_kw, train_kw = SETUPS[setup]
    module = Hourglass(
        ModelConfig(input_dim=6, **{"code_dim": 2, "hidden": (12,), **model_kw}),
        torch.Generator().manual_seed(0),
    )
    config = TrainConfig(
        batch_size=32,
        random_state=0,
        device="cpu",
        checkpoint_dir=None if folder is None else str(folder),
        # the trainer defaults these tests were written against (aekit 0.1.0's TrainConfig)
        **{
            **{
                "keep_checkpoints": 1000,
                "lr": 1e-3,
                "weight_decay": 0.0,
                "lr_schedule": "constant",
                "min_val_rows": 0,
            },
            **train_kw,
            **train,
        },
    )
    return Trainer(module, config, callbacks)


def rows(n=150):
    return torch.from_numpy(np.random.default_rng(0).random((n, 6), dtype=np.float32))


def weights(trainer):
    return {k: v.clone() for k, v in trainer.module.state_dict().items()}


def assert_same_run(trainer, reference, history):
    got = weights(trainer)
    assert got.keys() == reference.keys()
    assert all(torch.equal(got[k], reference[k]) for k in got), "weights differ"
    assert trainer.history.train_loss == history.train_loss
    assert trainer.history.val_loss == history.val_loss
    assert trainer.history.stop_reason == history.stop_reason
    assert trainer.history.best_epoch == history.best_epoch


# The top-k run is 18 epochs of every-2-steps checkpoints: each test of it is over a second.
SLOW_SETUPS = {"topk-auxk-decay"}


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(name, marks=pytest.mark.slow) if name in SLOW_SETUPS else name
        for name in sorted(SETUPS)
    ],
)
def reference(request, tmp_path_factory):
    """An uninterrupted run that checkpoints every 2 steps and every epoch."""
    folder = tmp_path_factory.mktemp("ref")
    trainer = make_trainer(folder, request.param, checkpoint_every_steps=2)
    history = trainer.fit(rows())
    return request.param, folder, weights(trainer), history


def test_resume_from_every_checkpoint_is_bitwise_exact(reference, tmp_path):
    setup, folder, ref_weights, history = reference
    files = sorted(folder.glob("checkpoint-*.safetensors"))
    assert len(files) >= 10
    if setup.startswith("batchnorm"):
        assert history.stop_reason == "early_stopping"
    for path in files[:: len(files) // 10]:  # ten or so, epoch ends and mid-epoch
        trainer = make_trainer(tmp_path / path.stem, setup, checkpoint_every_steps=2)
        trainer.fit(rows(), resume=path)
        assert_same_run(trainer, ref_weights, history)


def test_checkpoint_holds_position_early_stopping_and_best_weights(reference):
    _, folder, _, history = reference
    state = read_checkpoint(sorted(folder.glob("checkpoint-e000001-b000003*"))[0])
    assert state["position"] == {"epoch": 1, "batch": 3}
    early = state["callbacks"]["EarlyStopping"]
    assert early["best_epoch"] == 1 and set(early["best_state"]) == set(state["module"])
    assert state["history"]["records"][0]["train_loss"] == history.train_loss[0]
    assert "exp_avg" in state["optimizer"]["state"][0] and state["scheduler"] is not None
    assert state["noise_state"].dtype == torch.uint8 and state["epoch_sums"].shape == (2,)


def test_finished_early_stopped_run_resumes_to_the_same_end(reference, tmp_path):
    setup, folder, ref_weights, history = reference
    trainer = make_trainer(tmp_path, setup)
    trainer.fit(rows(), resume=latest_checkpoint(folder))
    assert len(trainer.history) == len(history)  # no epoch trained after the stop
    assert_same_run(trainer, ref_weights, history)


def test_a_checkpoint_from_before_the_training_split_resumes():
    """Written by aekit at commit 5f2b017 (noise-cosine, 1 epoch and 1 step done)."""
    path = Path(__file__).parent / "fixtures" / "checkpoint-5f2b017-noise-cosine.safetensors"
    state = check_state(read_checkpoint(path), path)
    assert state["position"] == {"epoch": 1, "batch": 1} and len(state["history"]["records"]) == 1
    reference = make_trainer()
    reference.fit(rows())
    resumed = make_trainer()
    resumed.fit(rows(), resume=path)
    assert resumed.history.records[0] == state["history"]["records"][0]
    assert len(resumed.history) == len(reference.history) == 4
    ours, theirs = weights(resumed), weights(reference)
    for name, tensor in theirs.items():  # bit for bit here; other CPUs may round otherwise
        torch.testing.assert_close(ours[name], tensor, rtol=1e-5, atol=1e-7)


def test_one_schema_builds_and_checks_a_training_state(tmp_path):
    trainer = make_trainer(tmp_path, epochs=1)
    trainer.fit(rows())
    state = trainer.state_dict()
    assert list(state) == list(STATE_FIELDS)
    assert check_state(state, "here") is state
    parts = {k: v for k, v in state.items() if k not in ("format", "n_rows")}
    with pytest.raises(ModelFileError, match=r"missing key\(s\) \['n_rows'\]"):
        build_state(**parts)
    with pytest.raises(ModelFileError, match="'elapsed' must be int or float"):
        build_state(**{**parts, "elapsed": "1 s"}, n_rows=150)
    with pytest.raises(ModelFileError, match=r"unknown key\(s\) \['extra'\]"):
        build_state(**parts, n_rows=150, extra=1)


def test_step_checkpoints_follow_the_interval_and_pruning(tmp_path):
    # 135 training rows, batch 32: 5 steps per epoch. Every 3 steps: 3, 6, 9, 12 and 15,
    # which ends epoch 3 and is saved once, after validation, with the epoch checkpoints.
    make_trainer(tmp_path, epochs=3, checkpoint_every_steps=3, keep_checkpoints=4).fit(rows())
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint-e000001-b000004.safetensors",
        "checkpoint-e000002-b000000.safetensors",
        "checkpoint-e000002-b000002.safetensors",
        "checkpoint-e000003-b000000.safetensors",
    ]


# -- Ctrl-C ---------------------------------------------------------------------------------
class InterruptAt(Callback):
    """Raise KeyboardInterrupt as Ctrl-C would, at a chosen global step or epoch start."""

    def __init__(self, step=None, epoch=None):
        self.step, self.epoch = step, epoch

    def on_batch_end(self, trainer, batch, n_batches):
        if trainer.step == self.step:
            raise KeyboardInterrupt

    def on_epoch_begin(self, trainer, epoch):
        if epoch == self.epoch:
            raise KeyboardInterrupt


@pytest.mark.parametrize(
    ("where", "position"),
    [
        ({"step": 7}, "e000001-b000002"),
        ({"step": 5}, "e000000-b000005"),
        ({"epoch": 3}, "e000002-b000000"),
    ],
)
def test_keyboard_interrupt_saves_a_checkpoint_that_resumes_exactly(
    reference, tmp_path, caplog, where, position
):
    setup, _, ref_weights, history = reference
    trainer = make_trainer(tmp_path, setup, callbacks=[InterruptAt(**where)])
    with caplog.at_level(logging.WARNING, logger="aekit"), pytest.raises(KeyboardInterrupt):
        trainer.fit(rows())
    saved = latest_checkpoint(tmp_path)
    assert saved.name == f"checkpoint-{position}.safetensors"
    assert "resume=True" in caplog.text and str(saved) in caplog.text
    resumed = make_trainer(tmp_path, setup)
    resumed.fit(rows(), resume=True)
    assert_same_run(resumed, ref_weights, history)


def _raise_in_forward_at(trainer, call):
    """Make the decoder raise KeyboardInterrupt in its ``call``-th forward pass."""
    count = {"n": 0}

    def hook(module, args, output):
        count["n"] += module.training  # validation passes do not count
        if count["n"] == call and module.training:
            raise KeyboardInterrupt

    trainer.module.decoder.register_forward_hook(hook)


def test_interrupt_inside_the_forward_pass_rolls_back_to_the_step_start(reference, tmp_path):
    setup, _, ref_weights, history = reference
    trainer = make_trainer(tmp_path, setup)
    _raise_in_forward_at(trainer, 8)  # the 8th step's forward (noise already drawn)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(rows())
    saved = latest_checkpoint(tmp_path)
    if setup.startswith(("batchnorm", "topk")):  # running statistics or dead-unit counters
        assert saved.name == "checkpoint-e000001-b000000.safetensors"  # move: nothing saved
    else:
        assert saved.name == "checkpoint-e000001-b000002.safetensors"
    resumed = make_trainer(tmp_path, setup)
    resumed.fit(rows(), resume=True)
    assert_same_run(resumed, ref_weights, history)


def test_interrupt_inside_the_optimiser_update_keeps_the_last_checkpoint(
    reference, tmp_path, caplog
):
    setup, _, ref_weights, history = reference
    trainer = make_trainer(tmp_path, setup)
    calls = {"n": 0}

    def after_step(optimizer, args, kwargs):  # weights changed, position not yet moved
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt

    handle = register_optimizer_step_post_hook(after_step)
    try:
        with caplog.at_level(logging.WARNING, logger="aekit"), pytest.raises(KeyboardInterrupt):
            trainer.fit(rows())
    finally:
        handle.remove()
    assert "inside an optimiser update" in caplog.text
    assert latest_checkpoint(tmp_path).name == "checkpoint-e000001-b000000.safetensors"
    resumed = make_trainer(tmp_path, setup)
    resumed.fit(rows(), resume=True)
    assert_same_run(resumed, ref_weights, history)


# -- corrupt, foreign and missing checkpoints -----------------------------------------------
def test_corrupt_newest_checkpoint_is_skipped_with_a_warning(reference, tmp_path, caplog):
    setup, folder, ref_weights, history = reference
    for path in sorted(folder.glob("checkpoint-e000002-*"))[:3]:
        (tmp_path / path.name).write_bytes(path.read_bytes())
    newest, middle, oldest = sorted(tmp_path.iterdir(), reverse=True)
    newest.write_bytes(newest.read_bytes()[:-50])  # truncated
    state = read_checkpoint(middle)
    del state["epoch_sums"]
    write_checkpoint(middle, state)  # a well-formed file with a key missing
    with caplog.at_level(logging.WARNING, logger="aekit"):
        assert find_checkpoint(tmp_path)[0] == oldest
    assert caplog.text.count("skipping unusable checkpoint") == 2
    assert "epoch_sums" in caplog.text
    trainer = make_trainer(tmp_path, setup)
    trainer.fit(rows(), resume=True)
    assert_same_run(trainer, ref_weights, history)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda s: s.update(format="other"), "format"),
        (lambda s: s.update(position={"epoch": 1}), "missing key"),
        (lambda s: s.update(position={"epoch": 1, "batch": 99}), "past the epoch"),
        (lambda s: s.update(n_rows=True), "'n_rows' must be int"),
        (lambda s: s["module"].update({"encoder.0.weight": torch.zeros(3)}), "shape"),
        (lambda s: s["module"]["scale"].fill_(float("nan")), "NaN"),
        (lambda s: s["optimizer"].update(param_groups=[]), "param_groups: expected a list"),
        (lambda s: s["optimizer"]["param_groups"][0].update(lr="x"), "lr: expected float"),
        (lambda s: s["optimizer"]["state"][0].update(exp_avg=torch.zeros(2)), "exp_avg"),
        (lambda s: s["scheduler"].update(last_epoch=0.5), "last_epoch: expected int"),
        (lambda s: s.update(noise_state=torch.zeros(3)), "does not fit"),
        (lambda s: s["history"].update(records="xyz"), "records"),
        (lambda s: s["model_config"].update(code_dim=3), "different model configuration"),
        (lambda s: s["train_config"].update(batch_size=16), "batch_size=16"),
        (lambda s: s.update(n_rows=10), "10 rows"),
    ],
)
def test_resume_refuses_a_tampered_or_foreign_checkpoint(reference, tmp_path, edit, match):
    setup, folder, _, _ = reference
    state = read_checkpoint(sorted(folder.glob("checkpoint-*"))[3])
    edit(state)
    write_checkpoint(tmp_path / "c.safetensors", state)
    with pytest.raises(ModelFileError, match=match):
        make_trainer(setup=setup).fit(rows(), resume=tmp_path / "c.safetensors")


def test_resume_without_a_folder_or_checkpoint(tmp_path, caplog):
    with pytest.raises(ConfigError, match="checkpoint_dir"):
        make_trainer(epochs=1).fit(rows(), resume=True)
    with pytest.raises(ModelFileError, match=r"missing .*missing\.safetensors"):
        make_trainer(epochs=1).fit(rows(), resume=tmp_path / "missing.safetensors")
    fresh, reference = make_trainer(tmp_path / "a", epochs=2), make_trainer(epochs=2)
    with caplog.at_level(logging.INFO, logger="aekit"):
        fresh.fit(rows(), resume=True)
    assert "starting afresh" in caplog.text
    reference.fit(rows())
    assert_same_run(fresh, weights(reference), reference.history)


def test_stale_temporary_files_of_a_killed_write_are_cleaned(tmp_path):
    stale = tmp_path / ".checkpoint-e000001-b000000.safetensors.abc.tmp"
    stale.write_bytes(b"half a file")
    make_trainer(tmp_path, epochs=1).fit(rows())
    assert not stale.exists() and latest_checkpoint(tmp_path) is not None


# -- divergence -----------------------------------------------------------------------------
class PoisonAt(Callback):
    """Set a weight to NaN after a chosen global step (``times`` times at most)."""

    def __init__(self, step, times=1):
        self.step, self.times = step, times

    def on_batch_end(self, trainer, batch, n_batches):
        if trainer.step == self.step and self.times:
            self.times -= 1
            with torch.no_grad():
                trainer.module.encoder[0].weight[0, 0] = float("nan")


def test_divergence_names_epoch_and_step_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = make_trainer(tmp_path, epochs=4, lr_schedule="constant", callbacks=[PoisonAt(8)])
    with pytest.raises(TrainingDivergedError, match=r"epoch 2, step 4: .*lr=0.001.*kept in"):
        trainer.fit(rows())
    assert latest_checkpoint(tmp_path).name == "checkpoint-e000001-b000000.safetensors"
    state = read_checkpoint(latest_checkpoint(tmp_path))
    assert all(torch.isfinite(t).all() for t in state["module"].values())


def test_a_non_finite_state_is_never_written(tmp_path):
    # PoisonAt runs before the Checkpointer in the same on_batch_end: the save must refuse.
    trainer = make_trainer(tmp_path, epochs=4, checkpoint_every_steps=2, callbacks=[PoisonAt(4)])
    with pytest.raises(TrainingDivergedError, match="epoch 1"):
        trainer.fit(rows())
    assert latest_checkpoint(tmp_path).name == "checkpoint-e000000-b000002.safetensors"


def test_divergence_retry_restarts_the_epoch_at_a_lower_learning_rate(tmp_path, caplog):
    trainer = make_trainer(
        epochs=4, divergence_retries=1, callbacks=[PoisonAt(step=8)], lr_schedule="constant"
    )
    with caplog.at_level(logging.WARNING, logger="aekit"):
        history = trainer.fit(rows())
    assert len(history) == 4 and np.isfinite(history.train_loss).all()
    assert [r["lr"] for r in history.records] == pytest.approx([1e-3, 1e-4, 1e-4, 1e-4])
    assert "retrying from the start of epoch 2 with lr=0.0001 (0 retries left)" in caplog.text
    again = make_trainer(epochs=4, divergence_retries=1, callbacks=[PoisonAt(8, times=2)])
    with pytest.raises(TrainingDivergedError, match="epoch 2"):
        again.fit(rows())


def test_divergence_retry_scales_a_schedule_too():
    trainer = make_trainer(epochs=4, divergence_retries=2, callbacks=[PoisonAt(step=3)])
    history = trainer.fit(rows())  # cosine schedule: every epoch's rate drops tenfold
    plain = make_trainer(epochs=4).fit(rows())
    lrs = [r["lr"] for r in history.records]
    assert lrs == pytest.approx([r["lr"] * 0.1 for r in plain.records])


# -- real processes: SIGKILL at random points, and a real SIGINT ------------------------------
KILL_RUN = {"epochs": 10, "checkpoint_every_steps": 1, "keep_checkpoints": 2}
ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import logging, sys
import torch
torch.set_num_threads(1)
sys.path.insert(0, sys.argv[1])
from tests.test_checkpoint import KILL_RUN, Report, make_trainer, rows
logging.basicConfig(level=logging.WARNING, format="%(message)s")
make_trainer(sys.argv[2], callbacks=[Report()], **KILL_RUN).fit(rows(), resume=True)
print("done", flush=True)
"""


class Report(Callback):
    """Print the global step after each optimiser step (the parent process reads it)."""

    def on_batch_end(self, trainer, batch, n_batches):
        print(trainer.step, flush=True)


def _start_child(tmp_path, folder):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return subprocess.Popen(
        [sys.executable, str(script), str(ROOT), str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # Python leaves SIGINT ignored if it starts ignored (a test run in the background):
        # the child gets the default, so Ctrl-C raises KeyboardInterrupt there.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_for_step(proc, step, timeout=120.0):
    """Read the child's step reports until one reaches ``step``; return it."""
    deadline, buffer = time.monotonic() + timeout, b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if not ready:
            continue
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            raise AssertionError(f"child ended early: {proc.stderr.read().decode()[-2000:]}")
        buffer += chunk
        lines = buffer.split(b"\n")
        buffer = lines[-1]
        steps = [int(line) for line in lines[:-1] if line.strip().isdigit()]
        if steps and steps[-1] >= step:
            return steps[-1]
    proc.kill()
    raise AssertionError(f"child reached no step {step} within {timeout} s")


@pytest.fixture(scope="module")
def kill_reference():
    trainer = make_trainer(**KILL_RUN)
    trainer.fit(rows())
    return weights(trainer), trainer.history


@pytest.mark.slow  # a chain of child processes killed and resumed
def test_sigkill_at_random_points_then_resume_is_bitwise_exact(kill_reference, tmp_path):
    """A chain of processes, each killed with SIGKILL at a seeded random point."""
    rng = random.Random(5)
    folder, reached, outcomes = tmp_path / "run", 0, []
    for _ in range(3):
        proc = _start_child(tmp_path, folder)
        reached = _wait_for_step(proc, reached + rng.randint(2, 12))
        time.sleep(rng.uniform(0.0, 0.02))  # let it run on into a step or a write
        proc.kill()
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        outcomes.append((reached, latest_checkpoint(folder).name))
    trainer = make_trainer(folder, **KILL_RUN)
    trainer.fit(rows(), resume=True)
    assert_same_run(trainer, *kill_reference)
    print("SIGKILL after step / resumed from:", outcomes)


@pytest.mark.slow  # a chain of child processes killed and resumed
def test_real_sigint_saves_a_checkpoint_and_resume_is_exact(kill_reference, tmp_path):
    folder = tmp_path / "run"
    proc = _start_child(tmp_path, folder)
    _wait_for_step(proc, 9)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    err = err.decode()
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    assert "checkpoint saved to" in err or "inside an optimiser update" in err
    assert "resume=True" in err
    trainer = make_trainer(folder, **KILL_RUN)
    trainer.fit(rows(), resume=True)
    assert_same_run(trainer, *kill_reference)


def test_autoencoder_fit_resumes_exactly_after_ctrl_c(tmp_path, digits):
    from aekit import Autoencoder

    params = {"code_dim": 3, "hidden": (16,), "epochs": 3, "batch_size": 64, "device": "cpu"}
    params |= {"random_state": 0, "checkpoint_every_steps": 4, "divergence_retries": 1}
    X = digits[:300]
    reference = Autoencoder(**params).fit(X)
    folder = str(tmp_path / "ckpt")
    with pytest.raises(KeyboardInterrupt):
        Autoencoder(**params, checkpoint_dir=folder).fit(X, callbacks=(InterruptAt(step=6),))
    # 300 rows: 50 held out (min_val_rows), 250 train in 4 batches; step 6 is epoch 2's second
    assert latest_checkpoint(folder).name == "checkpoint-e000001-b000002.safetensors"
    resumed = Autoencoder(**params, checkpoint_dir=folder).fit(X, resume=True)
    assert np.array_equal(resumed.transform(X), reference.transform(X))
    assert resumed.history_.train_loss == reference.history_.train_loss


def test_resume_refuses_other_data_of_the_same_shape(tmp_path):
    # the checkpoint's input scaling came back with its weights: a run resumed on other rows
    # of the same shape trained on them in the old rows' units (errors ~50,000 against ~1)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    options = {"code_dim": 2, "hidden": [8], "checkpoint_dir": str(tmp_path), "random_state": 0,
               "lr_schedule": "constant"}  # fmt: skip
    Autoencoder(epochs=3, **options).fit(X)
    with pytest.raises(ModelFileError, match=r"written for other data: its input offset"):
        Autoencoder(epochs=6, **options).fit(X * 100 + 500, resume=True)
    assert Autoencoder(epochs=6, **options).fit(X, resume=True).n_iter_ == 6  # the same rows


def test_resume_refuses_other_training_settings(tmp_path):
    # lr, weight decay and a scheduled run's epochs came from the checkpoint, silently, while
    # the saved model recorded the new values (a cosine rate rose again after its last epoch)
    X = np.random.default_rng(0).normal(size=(60, 4))
    options = {"code_dim": 2, "checkpoint_dir": str(tmp_path), "random_state": 0, "epochs": 2}
    Autoencoder(**options).fit(X)
    for change, said in (
        ({"lr": 0.1}, "lr=0.003, this run has lr=0.1"),
        ({"weight_decay": 0.5}, "weight_decay=1e-05, this run has"),
        ({"epochs": 5}, "epochs=2, this run has epochs=5 \\(2 done; only"),
    ):
        with pytest.raises(ModelFileError, match=said):
            Autoencoder(**{**options, **change}).fit(X, resume=True)


def test_a_fresh_run_is_refused_where_another_runs_checkpoints_are(tmp_path):
    # a fresh run's checkpoints were pruned by name among the earlier run's: its epoch-1 file
    # went at once while the old epoch-4 one stayed, and a resume then continued the old run
    make_trainer(tmp_path, epochs=4, keep_checkpoints=1).fit(rows())
    kept = sorted(p.name for p in tmp_path.glob("checkpoint-*"))
    with pytest.raises(ConfigError, match=r"holds checkpoints of an earlier run .*e000004"):
        make_trainer(tmp_path, epochs=2, keep_checkpoints=1).fit(rows())
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == kept  # nothing touched
    make_trainer(tmp_path / "new", epochs=2).fit(rows())  # another folder: fine
    with pytest.raises(ConfigError, match="earlier run"):
        SparseAutoencoder("topk", code_dim=8, k=2, checkpoint_dir=str(tmp_path), n_epochs=1).fit(
            np.random.default_rng(0).normal(size=(64, 6)).astype(np.float32)
        )


def test_a_restarted_launch_finds_its_own_newest_checkpoint(tmp_path):
    # torchrun's restart of a launch takes that launch's checkpoints, not a newer-named one
    # another launch left in the folder
    trainer = make_trainer(epochs=1)
    trainer.fit(rows())
    state = trainer.state_dict()
    mine = write_checkpoint(checkpoint_path(tmp_path, 1, 1), state, "mine")
    write_checkpoint(checkpoint_path(tmp_path, 1, 4), state, "another")
    assert find_checkpoint(tmp_path, "mine")[0] == mine
    assert find_checkpoint(tmp_path)[0].name == "checkpoint-e000001-b000004.safetensors"


def test_a_resume_refuses_rows_drawn_another_way_than_its_checkpoints(tmp_path):
    # a streamed file's epochs are drawn by blocks, rows in memory by a permutation: a
    # mid-epoch resume on the other kind trained some rows of that epoch twice, others never
    rows = np.random.default_rng(0).normal(size=(300, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", rows)
    params = {"code_dim": 2, "hidden": [8], "random_state": 0, "lr_schedule": "constant"}
    for first, then in ((str(tmp_path / "x.npy"), rows), (rows, str(tmp_path / "x.npy"))):
        folder = str(tmp_path / f"ck-{type(first).__name__}")
        Autoencoder(**params, epochs=1, checkpoint_dir=folder).fit(first)
        with pytest.raises(ModelFileError, match="was written with the rows"):
            Autoencoder(**params, epochs=3, checkpoint_dir=folder).fit(then, resume=True)
        assert Autoencoder(**params, epochs=2, checkpoint_dir=folder).fit(first, resume=True)
    state = read_checkpoint(sorted((tmp_path / "ck-str").glob("checkpoint-*"))[-1])
    assert state["row_order"] == "blocks"


def test_an_ensembles_members_checkpoint_in_folders_of_their_own(tmp_path):
    # the members shared the folder: each pruned the others' checkpoints (now the second
    # member's fresh run would be refused there)
    from aekit import AutoencoderImputer, AutoencoderOutlierDetector

    rows = np.random.default_rng(0).normal(size=(200, 5))
    for name, make in (("det", AutoencoderOutlierDetector), ("imp", AutoencoderImputer)):
        folder = tmp_path / name
        given = Autoencoder(code_dim=2, epochs=1, checkpoint_dir=str(folder))
        fitted = make(given, n_estimators=3).fit(rows if name == "det" else _holed(rows))
        assert sorted(p.name for p in folder.iterdir()) == ["member-0", "member-1", "member-2"]
        assert all(list((folder / f"member-{i}").glob("checkpoint-*")) for i in range(3))
        assert fitted.estimator.checkpoint_dir == str(folder)  # the given one's, unchanged


def _holed(rows):
    holed = rows.copy()
    holed[::5, 1] = np.nan
    return holed


def test_a_retried_epoch_keeps_the_runs_clock(tmp_path):
    # the epoch's saved state brought back its elapsed time on top of the clock that had run
    # since the start: the time before the epoch counted twice, and max_time stopped early
    import time

    class Clock(Callback):
        def on_train_begin(self, trainer, **kwargs):
            self.begin, self.drift = time.perf_counter(), []

        def on_epoch_end(self, trainer, **kwargs):
            wall = time.perf_counter() - self.begin
            self.drift.append(trainer.elapsed() - wall)

    clock = Clock()
    trainer = make_trainer(epochs=6, divergence_retries=1, callbacks=[PoisonAt(step=30), clock])
    trainer.fit(rows())
    assert trainer.history.records[-1]["epoch"] == 6 and len(clock.drift) == 6
    # (the clocks start a callback apart; after the retry the gap grew by the time before it)
    assert max(clock.drift) - min(clock.drift) < 0.005
