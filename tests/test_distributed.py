import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from aekit import Autoencoder, ConfigError, load
from aekit.cli import main
from aekit.training import Callback
from aekit.training.distributed import distributed_session, init_from_env, torchrun_command
from tests.helpers import write_parquet

# No dropout or noise: every random draw is shared, so 2 ranks must match 1 process. No batch
# norm either: under DDP it normalises with each rank's share of the batch.
PARAMS = {
    "batch_norm": False,
    "code_dim": 3,
    "hidden": (16,),
    "epochs": 30,
    "batch_size": 32,
    "lr": 3e-2,
    "val_fraction": 0.2,
    "patience": 3,
    "random_state": 0,
    "device": "cpu",
}
# A top-k dictionary with AuxK: one unit has been silent past 2,048 rows by the last epochs,
# and the silence counters must count global rows and any rank's firing to match 1 process.
TOPK = {
    **PARAMS,
    "hidden": (),
    "code_dim": 48,
    "sparsity": "topk",
    "sparsity_k": 2,
    "sparsity_weight": 1.0,
    "epochs": 20,
    "patience": None,
}


def rows():
    # 211 rows: 169 train, so the last global batch of 9 splits 5 / 4 across the ranks.
    return np.random.default_rng(0).normal(size=(211, 12)).astype(np.float32)


SCRIPT = """
import sys
import numpy as np
from aekit import Autoencoder
from aekit.training.distributed import distributed_session

X = np.random.default_rng(0).normal(size=(211, 12)).astype(np.float32)
with distributed_session("cpu") as ctx:
    assert ctx.world_size == 2 and ctx.backend == "gloo"
    ae = Autoencoder(**{params!r}).fit(X)
    if ctx.is_main:
        ae.save(sys.argv[1])
    else:
        open(sys.argv[1] + ".rank1", "w").write(str(ae.n_iter_))
# gloo can abort a finished rank at interpreter shutdown (exit -6, about 1 run in 6 here):
# end as a torchrun script should, with the work's exit code
from aekit.training.distributed import exit_process
exit_process(0)
"""


def run_two_ranks(tmp_path, text, *args):
    """Run the script ``text`` under torchrun on 2 gloo ranks, one thread each; it must pass."""
    script = tmp_path / "fit.py"
    script.write_text(textwrap.dedent(text))
    command = torchrun_command([str(script), *map(str, args)], 2, module=None)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow  # torchrun / several processes
@pytest.mark.parametrize(("params", "stop"), [(PARAMS, "early_stopping"), (TOPK, "epochs")])
def test_two_gloo_processes_match_one_process(tmp_path, params, stop):
    out = tmp_path / "model"
    run_two_ranks(tmp_path, SCRIPT.format(params=params), out)

    ddp = load(out)  # rank 0 saved an ordinary model folder
    single = Autoencoder(**params).fit(rows())
    # early stopping (where it fires) at the same epoch on both ranks
    assert single.history_.stop_reason == ddp.history_.stop_reason == stop
    assert ddp.n_iter_ == single.n_iter_ == int((tmp_path / "model.rank1").read_text())
    assert ddp.history_.best_epoch == single.history_.best_epoch
    np.testing.assert_allclose(ddp.history_.val_loss, single.history_.val_loss, rtol=1e-5)
    for name, tensor in single.module_.state_dict().items():
        np.testing.assert_allclose(
            ddp.module_.state_dict()[name].numpy(), tensor.numpy(), rtol=1e-4, atol=1e-6
        )


def test_without_torchrun_it_is_one_process(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with distributed_session("cpu") as ctx:
        assert (ctx.rank, ctx.world_size, ctx.backend, ctx.device) == (0, 1, None, "cpu")
        assert ctx.is_main


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"WORLD_SIZE": "2", "RANK": "2"}, "RANK=2 is not within WORLD_SIZE=2"),
        ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two' is not an integer"),
        ({"WORLD_SIZE": "2", "RANK": "1"}, "MASTER_ADDR is not set"),
    ],
)
def test_bad_environment_is_a_clear_error(monkeypatch, env, match):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=match):
        init_from_env("cpu")


def test_torchrun_command_for_one_and_several_machines():
    one = torchrun_command(["fit", "x.npy"], 4)
    assert one[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--nproc-per-node=4" in one and "--standalone" in one
    assert one[-4:] == ["-m", "aekit", "fit", "x.npy"]
    many = torchrun_command(["fit"], 2, nnodes=3, rdzv_endpoint="host0:29400")
    assert "--nnodes=3" in many and "--rdzv-endpoint=host0:29400" in many
    assert "--standalone" not in many
    with pytest.raises(ConfigError, match="rendezvous"):
        torchrun_command(["fit"], 2, nnodes=2)
    with pytest.raises(ConfigError, match="nproc"):
        torchrun_command(["fit"], 0)


def test_max_restarts_goes_to_torchrun_and_needs_processes(tmp_path, capsys):
    command = torchrun_command(["fit"], 2, max_restarts=3)
    assert "--max-restarts=3" in command and command.index("--max-restarts=3") < command.index(
        "-m", 3
    )
    assert not any("restarts" in arg for arg in torchrun_command(["fit"], 2))
    with pytest.raises(ConfigError, match="max_restarts"):
        torchrun_command(["fit"], 2, max_restarts=-1)
    np.save(tmp_path / "x.npy", rows())
    argv = ["fit", str(tmp_path / "x.npy"), "--code-dim", "2", "-o", str(tmp_path / "m")]
    assert main([*argv, "--max-restarts", "2"]) == 2
    assert "--max-restarts needs --nproc N" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


@pytest.mark.slow  # torchrun / several processes
def test_cli_fit_nproc_2_matches_one_process(tmp_path):
    data = tmp_path / "rows.npy"
    np.save(data, rows())
    # A fixed number of epochs: this test is about the CLI's DDP path giving the same weights;
    # early stopping across ranks is checked above.
    common = ["fit", str(data), "--code-dim", "3", "--hidden", "16", "--epochs", "8",
              "--batch-size", "32", "--lr", "0.03", "--val-fraction", "0.2", "--patience", "0",
              "--seed", "0", "--device", "cpu", "--holdout", "0", "--quiet",
              "--no-batch-norm"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    outs = {}
    for nproc in (2, 1):
        out = tmp_path / f"model{nproc}"
        argv = [sys.executable, "-m", "aekit", *common, "--out", str(out), "--nproc", str(nproc)]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-20000:]  # each rank's error, then torchrun's
        assert done.stdout.count("saved ") == 1  # rank 0 alone reports
        outs[nproc] = load(out)
    assert outs[2].n_iter_ == outs[1].n_iter_
    for name, tensor in outs[1].module_.state_dict().items():
        np.testing.assert_allclose(
            outs[2].module_.state_dict()[name].numpy(), tensor.numpy(), rtol=1e-4, atol=1e-6
        )


@pytest.mark.slow  # torchrun / several processes
def test_cli_fit_nproc_2_streams_a_parquet_file_like_one_process(tmp_path, monkeypatch):
    import aekit.data.formats
    import aekit.data.stream

    X = rows()
    # 10 row groups of up to 23 rows (more than one shuffle window of 4), and a text column
    # that --label-column keeps out of the features
    names = np.array([f"row{i}" for i in range(len(X))])
    data = write_parquet(tmp_path / "rows.parquet", X, 23, name=names)
    # 190 rows after the 10% holdout, 152 after validation: each global batch of 29 splits
    # 15 / 14 across the ranks, the last one of 7 splits 4 / 3
    common = [
        "fit",
        str(data),
        "--label-column",
        "name",
        "--code-dim",
        "3",
        "--hidden",
        "16",
        "--epochs",
        "8",
        "--batch-size",
        "29",
        "--lr",
        "0.03",
        "--val-fraction",
        "0.2",
        "--patience",
        "0",
        "--seed",
        "0",
        "--device",
        "cpu",
        "--quiet",
        "--no-batch-norm",
        "--init",
        "random",
    ]  # fmt: skip  (random: it must train)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "ddp"
    argv = [sys.executable, "-m", "aekit", *common, "--stream", "--out", str(out), "--nproc", "2"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-20000:]  # each rank's error, then torchrun's
    assert done.stdout.count("saved ") == 1  # rank 0 alone reports
    # One process, here: in memory (another row order), then streamed with any whole-file
    # read failing, replaying the order of 2 ranks (each read the blocks dealt to it).
    assert main([*common, "--no-stream", "--out", str(tmp_path / "memory")]) == 0
    monkeypatch.setattr(aekit.data.formats, "read_table", None)
    monkeypatch.setattr(aekit.data.stream.BlockRows, "parts", 2)
    assert main([*common, "--stream", "--out", str(tmp_path / "one")]) == 0

    ddp, one, memory = (load(tmp_path / name) for name in ("ddp", "one", "memory"))
    info = json.loads((out / "fit.json").read_text())
    assert info == json.loads((tmp_path / "one" / "fit.json").read_text())
    assert info["columns"] == [f"x{i}" for i in range(12)] and info["n_rows"] == 211
    assert ddp.n_iter_ == one.n_iter_ == 8
    np.testing.assert_allclose(ddp.history_.train_loss, one.history_.train_loss, rtol=1e-5)
    for name, tensor in one.module_.state_dict().items():
        np.testing.assert_allclose(
            ddp.module_.state_dict()[name].numpy(), tensor.numpy(), rtol=1e-4, atol=1e-6
        )
    # the 2 ranks streamed too: training on the file's rows in memory gives another model
    assert np.abs(ddp.transform(X) - memory.transform(X)).max() > 0.1


class Steps(Callback):
    """Counts the optimiser steps this process took."""

    def __init__(self):
        self.count = 0

    def on_batch_end(self, trainer, **kwargs):
        self.count += 1


FOLDER_SCRIPT = """
import json, sys
from aekit import Autoencoder
from aekit.training import Callback
from aekit.training.distributed import distributed_session, exit_process

class Steps(Callback):
    count = 0
    def on_batch_end(self, trainer, **kwargs):
        Steps.count += 1

with distributed_session("cpu") as ctx:
    ae = Autoencoder(**{params!r}).fit(sys.argv[1], callbacks=(Steps(),))
    if ctx.is_main:
        ae.save(sys.argv[2])
    else:
        open(sys.argv[2] + ".rank1", "w").write(json.dumps([Steps.count, ae.n_iter_]))
exit_process(0)
"""


@pytest.mark.slow  # torchrun / several processes
def test_two_ranks_read_their_share_of_a_folder_and_train_as_one_process_replaying(tmp_path):
    from aekit.data.formats import open_rows

    X = rows()
    folder = tmp_path / "shards"
    folder.mkdir()
    start = 0
    for i, size in enumerate([13, 60, 7, 91, 40]):  # uneven shards: the ranks still agree
        write_parquet(folder / f"part-{i}.parquet", X[start : start + size], 4)
        start += size
    params = {**PARAMS, "epochs": 6, "patience": None, "init": "random"}
    out = tmp_path / "model"
    run_two_ranks(tmp_path, FOLDER_SCRIPT.format(params=params), folder, out)

    ddp = load(out)
    source = open_rows(folder)
    source.parts = 2  # one process, the 2 ranks' order
    counted = Steps()
    one = Autoencoder(**params).fit(source, callbacks=(counted,))
    steps, n_iter = json.loads((tmp_path / "model.rank1").read_text())
    assert n_iter == ddp.n_iter_ == one.n_iter_ == 6
    assert steps == counted.count == 6 * 5  # every global step on rank 1 too (161 rows / 32)
    np.testing.assert_allclose(ddp.history_.train_loss, one.history_.train_loss, rtol=1e-5)
    for name, tensor in one.module_.state_dict().items():
        np.testing.assert_allclose(
            ddp.module_.state_dict()[name].numpy(), tensor.numpy(), rtol=1e-4, atol=1e-6
        )
    # each rank read its share of the blocks in each epoch, not the whole folder
    total = source.block_bytes.sum()
    for record in ddp.history_.records:
        assert len(record["bytes_read"]) == 2
        assert max(record["bytes_read"]) <= 0.6 * total, (record["bytes_read"], total)
        assert sum(record["bytes_read"]) >= total * 0.9  # (the validation rows' blocks aside)


# -- resilience: elastic restarts, Ctrl-C / SIGTERM under DDP ------------------------------
# 169 training rows in global batches of 32: 5 steps an epoch, 15 in all.
RESILIENT = ["--code-dim", "3", "--hidden", "16", "--epochs", "3", "--batch-size", "32",
             "--lr", "0.03", "--val-fraction", "0.2", "--patience", "0", "--seed", "0",
             "--device", "cpu", "--holdout", "0", "--no-batch-norm",
             "--init", "random", "--nproc", "2", "--keep-checkpoints", "20"]  # fmt: skip


def aekit_run(argv, **env):
    """``python -m aekit ARGV`` in a session of its own (a test hook may signal its group)."""
    return subprocess.run(
        [sys.executable, "-m", "aekit", *map(str, argv)],
        env={**os.environ, "OMP_NUM_THREADS": "1", **env},
        capture_output=True,
        text=True,
        timeout=600,
        start_new_session=True,
    )


def weights(folder):
    from safetensors.numpy import load_file

    return load_file(str(folder / "weights.safetensors"))


def assert_same_bits(found, expected):
    assert found.keys() == expected.keys()
    for name, array in expected.items():
        assert np.array_equal(found[name], array), name


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The data file, and the weights and checkpoint folder of an uninterrupted 2-rank run."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    data = folder / "rows.npy"
    np.save(data, rows())
    argv = ["fit", data, *RESILIENT, "--out", folder / "m", "--checkpoint-dir", folder / "ck"]
    done = aekit_run(argv)
    assert done.returncode == 0, done.stderr[-20000:]
    return data, weights(folder / "m"), folder / "ck"


@pytest.mark.slow  # torchrun / several processes
def test_a_killed_rank_restarts_the_group_which_resumes_its_own_checkpoint(tmp_path, uninterrupted):
    """Rank 1 is SIGKILLed after step 7 (epoch 2, batch 2); torchrun restarts both ranks,
    which resume from the run's checkpoint after step 6 and end with the uninterrupted run's
    weights, bit for bit. (A fresh launch refuses a folder with another run's checkpoints,
    test_checkpoint.py; a restart takes its own launch's only, the test below.)"""
    data, expected, _ = uninterrupted
    ck = tmp_path / "ck"
    argv = ["fit", data, *RESILIENT, "--out", tmp_path / "m", "--checkpoint-dir", ck,
            "--checkpoint-every-steps", "3", "--max-restarts", "1"]  # fmt: skip
    done = aekit_run(argv, AEKIT_TEST_KILL_AT_STEP="1:7")
    assert done.returncode == 0, done.stderr[-20000:]
    assert "exitcode  : -9" in done.stderr or "exitcode: -9" in done.stderr  # the kill landed
    assert f"restarted the group: resuming from {ck / 'checkpoint-e000001-b000001'}" in (
        done.stderr
    )
    assert_same_bits(weights(tmp_path / "m"), expected)


@pytest.mark.slow  # torchrun / several processes
@pytest.mark.parametrize("signal_name", ["INT", "TERM"])
def test_ctrl_c_or_sigterm_under_ddp_saves_the_step_every_rank_finished(
    tmp_path, uninterrupted, signal_name
):
    """After step 7 rank 1 sends SIGINT to the process group (Ctrl-C in a terminal: each
    worker gets it from there and again from torchrun) or SIGTERM to torchrun (a scheduler):
    the ranks agree on a later step, save it mid-epoch, print the resume command, and that
    command ends where the uninterrupted run does, bit for bit."""
    import shlex

    data, expected, _ = uninterrupted
    ck = tmp_path / "ck"
    argv = ["fit", data, *RESILIENT, "--out", tmp_path / "m", "--checkpoint-dir", ck]
    done = aekit_run(argv, AEKIT_TEST_SIGNAL_AT_STEP=f"1:7:{signal_name}")
    assert done.returncode != 0
    saved = sorted(path.name for path in ck.glob("checkpoint-*"))
    assert saved[0] == "checkpoint-e000001-b000000.safetensors"  # the epoch's
    assert saved[-1] > "checkpoint-e000001-b000002"  # the interrupt's, at or after step 7
    assert saved[-1] < "checkpoint-e000002"  # mid-epoch: saved on the signal, not an epoch end
    assert done.stderr.count("aekit: interrupted") == 1  # rank 0 alone
    command = done.stderr.split("resume with: aekit ", 1)[1].splitlines()[0]
    assert command.endswith("--nproc 2 --resume")
    if signal_name == "TERM":  # the same resume as INT's: run it once
        return
    resumed = aekit_run(shlex.split(command))
    assert resumed.returncode == 0, resumed.stderr[-20000:]
    assert f"resumed from {ck / saved[-1]}" in resumed.stderr
    assert_same_bits(weights(tmp_path / "m"), expected)


def sparse_rows():
    """rows() with two thirds of the entries zero, as CSR."""
    import scipy.sparse as sp

    X = rows()
    return sp.csr_array(X * (np.random.default_rng(1).random(X.shape) < 0.35))


@pytest.mark.slow  # torchrun / several processes
def test_sparse_rows_under_ddp_densify_each_batch_and_match_one_process(tmp_path):
    body = SCRIPT.replace(
        "X = np.random.default_rng(0).normal(size=(211, 12)).astype(np.float32)",
        "import scipy.sparse as sp\n"
        "X = np.random.default_rng(0).normal(size=(211, 12)).astype(np.float32)\n"
        "X = sp.csr_array(X * (np.random.default_rng(1).random(X.shape) < 0.35))",
    ).replace("ctx.is_main:", "ctx.is_main:\n        assert ae.input_path_ == 'densify'")
    params = {**PARAMS, "epochs": 8, "patience": None}
    out = tmp_path / "model"
    run_two_ranks(tmp_path, body.format(params=params), out)
    single = Autoencoder(**params, sparse_path="densify").fit(sparse_rows())
    for name, tensor in single.module_.state_dict().items():
        np.testing.assert_allclose(
            load(out).module_.state_dict()[name].numpy(), tensor.numpy(), rtol=1e-4, atol=1e-6
        )


OTHER_ROWS_SCRIPT = """
import sys
import numpy as np
from aekit import Autoencoder, DataError
from aekit.training.distributed import distributed_session, exit_process

with distributed_session("cpu") as ctx:
    X = np.random.default_rng(0).normal(size=(211, 12)).astype(np.float32)
    X = X[: 211 - 20 * ctx.rank] if sys.argv[1] == "rows" else X + 10 * ctx.rank
    try:
        Autoencoder(code_dim=2, hidden=(8,), epochs=1, random_state=0, threads=1).fit(X)
    except DataError as exc:
        assert "rank 1 holds other data than rank 0" in str(exc), exc
        exit_process(0)
raise SystemExit("trained")
"""


@pytest.mark.slow  # torchrun / several processes
@pytest.mark.parametrize("change", ["rows", "values"])
def test_ranks_holding_other_rows_are_refused_on_every_rank(tmp_path, change):
    # other row counts deadlocked the first collective; other values trained, silently, in
    # rank 0's input scaling
    run_two_ranks(tmp_path, OTHER_ROWS_SCRIPT, change)
