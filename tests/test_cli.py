import json
import os
import shlex
import signal
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

import aekit
from aekit.cli import main
from aekit.data.formats import read_table
from aekit.training.progress import StopOnSignal

PNG = b"\x89PNG\r\n\x1a\n"
N_ROWS = 300
UNSEEDED = ["--hidden", "16", "--epochs", "2", "--batch-size", "64", "--device", "cpu", "-q"]
TINY = [*UNSEEDED, "--seed", "0"]  # runs compared with each other; else each draws a seed


@pytest.fixture(scope="module")
def files(tmp_path_factory, digits):
    """300 digits as a CSV with a header and a text label column, and as .npy."""
    from sklearn.datasets import load_digits

    folder = tmp_path_factory.mktemp("cli")
    X, y = digits[:N_ROWS], load_digits().target[:N_ROWS]
    header = ",".join([f"p{i}" for i in range(64)] + ["digit"])
    lines = [
        ",".join([*(f"{v:g}" for v in row), f"d{label}"]) for row, label in zip(X, y, strict=True)
    ]
    (folder / "digits.csv").write_text(header + "\n" + "\n".join(lines) + "\n")
    np.save(folder / "digits.npy", X)
    return folder


@pytest.fixture(scope="module")
def model(files):
    out = files / "model"
    argv = ["fit", str(files / "digits.csv"), "--code-dim", "3", "--label-column", "digit"]
    assert main([*argv, *TINY, "-o", str(out)]) == 0
    return out


def test_fit_writes_model_history_holdout_and_plot(model, files, capsys):
    names = {p.name for p in model.iterdir()}
    assert {"config.json", "weights.safetensors", "history.json", "loss.png"} <= names
    assert (model / "loss.png").read_bytes().startswith(PNG)
    holdout = np.load(model / "holdout.npy", allow_pickle=False)
    assert holdout.dtype == np.int64 and len(holdout) == 30 and len(np.unique(holdout)) == 30
    info = json.loads((model / "fit.json").read_text())
    assert info["columns"][:2] == ["p0", "p1"] and len(info["columns"]) == 64
    assert info["label_column"] == "digit" and info["n_rows"] == N_ROWS
    assert len(json.loads((model / "history.json").read_text())["records"]) == 2
    ae = aekit.load(model)
    assert ae.n_features_in_ == 64 and ae.n_iter_ == 2 and ae.model_config_.hidden == (16,)


def test_fit_options_reach_the_estimator(files, tmp_path, monkeypatch):
    from aekit.training import objective

    monkeypatch.setattr(objective, "cpu_has_bf16", lambda: True)  # no emulation warning here
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda net: compiled.append(net) or net)
    argv = ["fit", str(files / "digits.npy"), "--code-dim", "8", *TINY, "-o", str(tmp_path)]
    options = ["--sparsity", "topk:2", "--noise", "masking:0.2", "--lr", "0.01"]
    assert main([*argv, *options, "--precision", "bf16", "--compile"]) == 0
    ae = aekit.load(tmp_path)
    cfg = ae.model_config_
    assert (cfg.sparsity, cfg.sparsity_k, cfg.noise, cfg.noise_level) == ("topk", 2, "masking", 0.2)
    assert (ae.train_config_.lr, ae.train_config_.precision) == (0.01, "bf16")
    assert ae.train_config_.compile and len(compiled) == 1


def test_fit_without_a_seed_draws_one_records_it_and_repeats_with_it(files, tmp_path, capsys):
    """The CLI's default seed is the library's (none), but every run can be repeated."""
    argv = ["fit", str(files / "digits.npy"), "--code-dim", "3", *UNSEEDED]
    seeds = []
    for name in ("a", "b"):
        assert main([*argv, "-o", str(tmp_path / name)]) == 0
        seeds.append(json.loads((tmp_path / name / "fit.json").read_text())["seed"])
        assert f"seed {seeds[-1]}" in capsys.readouterr().out  # in the summary
    assert all(isinstance(seed, int) for seed in seeds) and seeds[0] != seeds[1]
    assert main([*argv, "--seed", str(seeds[0]), "-o", str(tmp_path / "again")]) == 0
    first, again = aekit.load(tmp_path / "a"), aekit.load(tmp_path / "again")
    for name, tensor in first.module_.state_dict().items():
        assert torch.equal(again.module_.state_dict()[name], tensor), name
    holdouts = [np.load(tmp_path / name / "holdout.npy") for name in ("a", "again")]
    assert np.array_equal(*holdouts)
    assert first.random_state == again.random_state == seeds[0]


@pytest.mark.slow  # torchrun, two processes
def test_ddp_ranks_share_the_drawn_seed(files, tmp_path):
    """--nproc 2 without --seed: rank 0's drawn seed splits and seeds every rank, so one
    process given that seed trains the same model."""
    common = ["fit", str(files / "digits.npy"), "--code-dim", "3", "--hidden", "16",
              "--epochs", "3", "--batch-size", "32", "--patience", "0", "--device", "cpu",
              "--quiet", "--no-batch-norm"]  # fmt: skip
    argv = [sys.executable, "-m", "aekit", *common, "-o", str(tmp_path / "ddp"), "--nproc", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-20000:]
    seed = json.loads((tmp_path / "ddp" / "fit.json").read_text())["seed"]
    assert f"seed {seed}" in done.stdout
    assert main([*common, "--seed", str(seed), "-o", str(tmp_path / "one")]) == 0
    ddp, one = aekit.load(tmp_path / "ddp"), aekit.load(tmp_path / "one")
    holdouts = [np.load(tmp_path / name / "holdout.npy") for name in ("ddp", "one")]
    assert np.array_equal(*holdouts)
    for name, tensor in one.module_.state_dict().items():
        np.testing.assert_allclose(
            ddp.module_.state_dict()[name].numpy(), tensor.numpy(), rtol=1e-4, atol=1e-6
        )


def test_fit_streams_a_file_without_reading_it_whole(files, tmp_path, monkeypatch, capsys):
    """--stream trains from disk block by block: the same split and fingerprint as in memory,
    and the whole-file reader is never called."""
    import aekit.data.formats

    data = str(files / "digits.npy")
    argv = ["fit", data, "--code-dim", "3", *TINY]
    assert main([*argv, "--no-stream", "-o", str(tmp_path / "memory")]) == 0
    in_memory = json.loads((tmp_path / "memory" / "fit.json").read_text())

    def no_whole_reads(*args, **kwargs):
        raise AssertionError("read the whole file")

    monkeypatch.setattr(aekit.data.formats, "read_table", no_whole_reads)
    capsys.readouterr()
    assert main([*argv, "--stream", "-o", str(tmp_path / "streamed")]) == 0
    assert "held-out error" in capsys.readouterr().out
    streamed = json.loads((tmp_path / "streamed" / "fit.json").read_text())
    assert streamed["fingerprint"] == in_memory["fingerprint"]
    assert streamed["n_rows"] == N_ROWS
    holdouts = [np.load(tmp_path / name / "holdout.npy") for name in ("memory", "streamed")]
    assert np.array_equal(*holdouts) and len(holdouts[0]) == 30
    ae = aekit.load(tmp_path / "streamed")
    assert ae.n_iter_ == 2 and np.isfinite(ae.history_.train_loss).all()

    # the default streams files over the size threshold
    monkeypatch.setattr("aekit.cli.inputs._STREAM_BYTES", 0)
    assert main([*argv, "-o", str(tmp_path / "auto")]) == 0


def test_fit_streams_parquet_columns(files, tmp_path, monkeypatch):
    pytest.importorskip("pyarrow")
    import aekit.data.formats

    table = read_table(files / "digits.csv", label_column="digit")
    aekit.data.formats.write_array(tmp_path / "d.parquet", np.asarray(table.X), table.columns)
    monkeypatch.setattr(aekit.data.formats, "read_table", None)  # any whole-file read fails
    argv = ["fit", str(tmp_path / "d.parquet"), "--code-dim", "3", *TINY, "--stream"]
    assert main([*argv, "--columns", "p1,p2,p3,p5", "-o", str(tmp_path / "m")]) == 0
    assert json.loads((tmp_path / "m" / "fit.json").read_text())["columns"] == [
        "p1", "p2", "p3", "p5"
    ]  # fmt: skip
    assert aekit.load(tmp_path / "m").n_features_in_ == 4


@pytest.mark.parametrize("suffix", [".npy", ".parquet"])
def test_encode_reconstruct_score_stream(model, files, tmp_path, monkeypatch, suffix):
    """With --stream (or a big file), DATA is read and written block by block, never whole,
    and the outputs are those of the in-memory path."""
    import aekit.data.formats

    table = read_table(files / "digits.csv", label_column="digit")
    data = tmp_path / f"digits{suffix}"
    with aekit.data.formats.row_writer(data, N_ROWS, 64, table.columns, dtype=np.float32) as write:
        for part in np.array_split(np.asarray(table.X), 5):  # parquet: 5 row groups
            write(part)
    monkeypatch.setattr("aekit.data.stream._BLOCK_BYTES", 64 * 64 * 4)  # .npy: blocks of 64 rows
    commands = ("encode", "reconstruct", "score")
    in_memory = {}
    for name in commands:
        out = tmp_path / f"{name}-memory.npy"
        assert main([name, str(model), str(data), "--no-stream", "-o", str(out)]) == 0
        in_memory[name] = np.load(out)
    monkeypatch.setattr(aekit.data.formats, "read_table", None)  # any whole-file read fails
    for flags in (["--stream"], []):
        monkeypatch.setattr("aekit.cli.inputs._STREAM_BYTES", 0)  # the default streams big files
        for name in commands:
            out = tmp_path / f"{name}-streamed.parquet"
            assert main([name, str(model), str(data), *flags, "-o", str(out)]) == 0
            streamed = pq.read_table(out).to_pandas().to_numpy()
            np.testing.assert_allclose(streamed, in_memory[name], rtol=1e-6, atol=1e-6)
    assert pq.read_table(tmp_path / "reconstruct-streamed.parquet").column_names == (
        table.columns if suffix == ".parquet" else [f"x{i}" for i in range(64)]
    )


def test_a_bad_row_in_a_streamed_file_keeps_the_old_output(model, files, tmp_path, capsys):
    X = np.load(files / "digits.npy")
    X[250, 7] = np.inf
    np.save(tmp_path / "bad.npy", X)
    out = tmp_path / "codes.npy"
    out.write_bytes(b"yesterday's codes")
    assert main(["encode", str(model), str(tmp_path / "bad.npy"), "--stream", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "contains infinity (first at row 250, column 7)" in err and err.count("\n") == 1
    assert out.read_bytes() == b"yesterday's codes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.npy", "codes.npy"]


@pytest.mark.parametrize("command", ["score", "encode", "reconstruct"])
def test_an_output_that_is_data_is_refused(model, files, tmp_path, capsys, command):
    """``aekit score MODEL d.npy -o d.npy`` replaced the data with its scores, without a word."""
    data = tmp_path / "d.npy"
    data.write_bytes((files / "digits.npy").read_bytes())
    (tmp_path / "link.npy").symlink_to(data)
    for output in (data, tmp_path / "link.npy"):
        assert main([command, str(model), str(data), "-o", str(output)]) == 2
        err = capsys.readouterr().err
        assert f"OUTPUT is DATA ({data}): writing there would replace the data" in err
        assert err.count("\n") == 1
    assert data.read_bytes() == (files / "digits.npy").read_bytes()


@pytest.mark.parametrize(
    ("data", "extra", "message"),
    [
        ("digits.csv", [], "--stream reads .npy and .parquet files, not digits.csv"),
        ("digits.npy", ["--columns", "1,2"], "a streamed .npy file is read with all its columns"),
    ],
)
def test_stream_errors_are_one_line(files, tmp_path, capsys, data, extra, message):
    argv = ["fit", str(files / data), "--code-dim", "3", *TINY, "--stream", *extra]
    assert main([*argv, "-o", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "m").exists()


@pytest.mark.parametrize("suffix", [".npy", ".csv", ".parquet"])
def test_encode_uses_the_fit_time_columns(model, files, tmp_path, suffix):
    out = tmp_path / f"codes{suffix}"
    assert main(["encode", str(model), str(files / "digits.csv"), "-o", str(out)]) == 0
    codes = read_table(out)
    expected = aekit.load(model).transform(np.load(files / "digits.npy"))
    assert codes.X.shape == (N_ROWS, 3)
    assert np.allclose(codes.X, expected, atol=1e-6)
    if suffix != ".npy":
        assert codes.columns == ["autoencoder0", "autoencoder1", "autoencoder2"]


def test_float32_npy_is_read_in_place_without_warnings(model, files, tmp_path):
    """A float32 ``.npy`` opens as a read-only memory map; encoding it must not warn."""
    data = tmp_path / "digits32.npy"
    np.save(data, np.load(files / "digits.npy").astype(np.float32))
    out = tmp_path / "codes.npy"
    assert main(["encode", str(model), str(data), "-o", str(out)]) == 0  # warnings are errors
    expected = aekit.load(model).transform(np.load(files / "digits.npy").astype(np.float32))
    assert np.array_equal(np.load(out), expected)


def test_reconstruct_matches_the_library(model, files, tmp_path):
    out = tmp_path / "recon.npy"
    assert main(["reconstruct", str(model), str(files / "digits.npy"), "-o", str(out)]) == 0
    expected = aekit.load(model).reconstruct(np.load(files / "digits.npy"))
    assert np.allclose(np.load(out), expected, atol=1e-6)


def test_score_flags_outliers(model, files, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    data = str(files / "digits.npy")
    assert main(["score", str(model), data, "-o", str(out), "--contamination", "0.1"]) == 0
    table = read_table(out)
    assert table.columns == ["error", "outlier"] and table.X[:, 1].sum() == 30
    errors = aekit.load(model).reconstruction_error(np.load(files / "digits.npy"))
    assert np.allclose(table.X[:, 0], errors)
    assert "30 outliers" in capsys.readouterr().out
    assert main(["score", str(model), data, "-o", str(out), "--threshold", "1e9"]) == 0
    assert read_table(out).X[:, 1].sum() == 0
    # e-notation below zero is a value (argparse took -1e9 for an option before 3.13)
    assert main(["score", str(model), data, "-o", str(out), "--threshold", "-1e9"]) == 0
    assert read_table(out).X[:, 1].sum() == len(errors)
    assert main(["score", str(model), data, "-o", str(out)]) == 0
    assert read_table(out).columns == ["error"]


def test_score_flags_a_detectors_row_with_no_observed_value(tmp_path, capsys):
    # its score is NaN; NaN > threshold is False, so the file said 0 where predict says -1
    from aekit import Autoencoder, AutoencoderOutlierDetector

    X = np.random.default_rng(0).normal(size=(80, 4))
    base = Autoencoder(code_dim=2, hidden=[8], epochs=2, random_state=0)
    detector = AutoencoderOutlierDetector(base).fit(X)
    detector.save(tmp_path / "d")
    rows = X[:5].copy()
    rows[2] = np.nan
    np.save(tmp_path / "x.npy", rows)
    out = tmp_path / "s.csv"
    assert main(["score", str(tmp_path / "d"), str(tmp_path / "x.npy"), "-o", str(out)]) == 0
    table = read_table(out)
    assert np.isnan(table.X[2, 1]) and table.X[2, 2] == 1
    assert list(table.X[:, 2] == 1) == list(detector.predict(rows) == -1)


def test_compare_writes_table_json_and_plot(files, tmp_path, capsys):
    argv = ["compare", str(files / "digits.npy"), "--code-dims", "2,4", *TINY]
    assert main([*argv, "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "autoencoder" in out and "PCA" in out
    result = json.loads((tmp_path / "compare.json").read_text())
    assert [r["code_dim"] for r in result["rows"]] == [2, 4] and result["n_test"] == 60
    assert (tmp_path / "compare.png").read_bytes().startswith(PNG)


@pytest.mark.filterwarnings("ignore:code_dim=8 >= 6 features")
@pytest.mark.filterwarnings("ignore:1 column\\(s\\) have no observed value")
def test_compare_and_report_write_json_that_strict_parsers_read(tmp_path):
    # a code size above the width gave PCA's error NaN, written as the token NaN that
    # JSON.parse and jq refuse; so did a column empty everywhere in summary.json
    def strict(path):
        return json.loads(path.read_text(), parse_constant=lambda word: pytest.fail(word))

    rng = np.random.default_rng(0)
    rows = rng.normal(size=(120, 6))
    np.save(tmp_path / "w.npy", rows)
    argv = ["compare", str(tmp_path / "w.npy"), "--code-dims", "2,8", *TINY]
    assert main([*argv, "-o", str(tmp_path / "c")]) == 0
    result = strict(tmp_path / "c" / "compare.json")
    assert result["rows"][1]["pca_error"] is None and result["rows"][0]["pca_error"] > 0
    rows[:, 3] = np.nan
    np.save(tmp_path / "holes.npy", rows)
    fit = ["fit", str(tmp_path / "holes.npy"), "-o", str(tmp_path / "m"), "--code-dim", "2"]
    assert main([*fit, *TINY]) == 0
    report = ["report", str(tmp_path / "m"), str(tmp_path / "holes.npy"), "-o"]
    assert main([*report, str(tmp_path / "r")]) == 0
    summary = strict(tmp_path / "r" / "summary.json")
    assert summary["feature_error"][3] is None and summary["feature_error"][0] > 0


def test_report_uses_the_holdout_of_the_fit_time_data(model, files, tmp_path):
    assert main(["report", str(model), str(files / "digits.csv"), "-o", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["n_test"] == 30 and "held-out" in summary["measured_on"]
    page = (tmp_path / "index.html").read_text()
    assert "Map of the codes" in page and "coloured by label" in page
    assert "is not the data" not in page


def test_report_on_other_data_says_so(model, files, tmp_path):
    np.save(tmp_path / "part.npy", np.load(files / "digits.npy")[:100])
    np.save(tmp_path / "labels.npy", np.arange(100) % 3)
    argv = [
        "report",
        str(model),
        str(tmp_path / "part.npy"),
        "--labels",
        str(tmp_path / "labels.npy"),
    ]
    assert main([*argv, "--image-shape", "none", "-o", str(tmp_path / "r")]) == 0
    page = (tmp_path / "r" / "index.html").read_text()
    assert "is not the data" in page and "coloured by label" in page
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["n_test"] == 100


def one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("aekit: error: "), err
    return err[0]


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["encode", "{model}", "{tmp}/missing.csv", "-o", "{tmp}/c.npy"], 2, "no such file"),
        (["encode", "{model}", "{tmp}/x.xlsx", "-o", "{tmp}/c.npy"], 2, "unknown file format"),
        (["encode", "{model}", "{tmp}/inf.npy", "-o", "{tmp}/c.npy"], 2, "infinity"),
        (["encode", "{model}", "{tmp}/narrow.npy", "-o", "{tmp}/c.npy"], 2, "expects 64"),
        (["encode", "{model}", "{tmp}/text.csv", "-o", "{tmp}/c.npy"], 2, "non-numeric"),
        (["encode", "{model}", "{tmp}/ok.npy", "-o", "{tmp}/c.json"], 2, "unknown output format"),
        (["encode", "{model}", "{tmp}/ok.npy", "-o", "{tmp}/ok.npy/c.npy"], 2, "writable"),
        (["encode", "{tmp}", "{tmp}/ok.npy", "-o", "{tmp}/c.npy"], 2, "config.json"),
        (["fit", "{tmp}/ok.npy", "--code-dim", "2", "-o", "{tmp}/m", "--resume"], 2, "resume"),
        (["fit", "{tmp}/ok.npy", "--code-dim", "2", "-o", "{tmp}/m", "--checkpoint-dir",
          "{tmp}/c", "--resume"], 2, "--resume needs the --seed of the run it continues"),
        (["fit", "{tmp}/ok.npy", "--code-dim", "0", "-o", "{tmp}/m"], 2, "code_dim"),
        (["score", "{model}", "{tmp}/ok.npy", "-o", "{tmp}/s.csv", "--contamination", "0.9"], 2,
         "contamination"),
        (["score", "{model}", "{tmp}/ok.npy", "-o", "{tmp}/s.csv", "--contamination", "abc"], 2,
         "--contamination must be auto or a share"),  # was a traceback after scoring every row
        (["score", "{model}", "{tmp}/ok.npy", "-o", "{tmp}/s.csv", "--threshold", "nan"], 2,
         "--threshold must be a finite number, got nan"),  # flagged every row, exit 0
    ],
)  # fmt: skip
def test_errors_are_one_line_and_leave_no_file(model, tmp_path, capsys, argv, code, message):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "ok.npy", rng.uniform(size=(20, 64)))
    bad = rng.uniform(size=(20, 64))
    bad[3, 5] = np.inf
    np.save(tmp_path / "inf.npy", bad)
    np.save(tmp_path / "narrow.npy", rng.uniform(size=(20, 10)))
    header = ",".join(f"p{i}" for i in range(64))
    (tmp_path / "text.csv").write_text("\n".join([header] + ["1," * 63 + "x"] * 3))
    (tmp_path / "x.xlsx").write_text("?")
    before = set(tmp_path.iterdir())
    filled = [a.format(model=model, tmp=tmp_path) for a in argv]
    assert main(filled) == code
    assert message in one_error_line(capsys)
    assert set(tmp_path.iterdir()) == before  # nothing written, not even a temp file


def test_debug_shows_the_traceback(tmp_path):
    argv = ["--debug", "encode", str(tmp_path / "m"), str(tmp_path / "x.npy"), "-o", "c.npy"]
    with pytest.raises(aekit.ModelFileError):
        main(argv)


def test_usage_errors_exit_2(capsys):
    assert main(["fit", "x.npy", "--code-dim", "2", "-o", "m", "--sparsity", "l3:1"]) == 2
    assert "unknown sparsity 'l3'" in capsys.readouterr().err
    assert main([]) == 2
    assert main(["fit", "--help"]) == 0
    assert "example:" in capsys.readouterr().out


def test_ctrl_c_checkpoints_and_the_hint_resumes(files, tmp_path, monkeypatch, capsys):
    """SIGINT mid-epoch: exit 130 with a resume command; running it finishes the fit.

    No --seed: the hint carries the seed the run drew, which resuming needs."""
    original = StopOnSignal.on_batch_end
    handler = signal.getsignal(signal.SIGINT)  # the default, or SIG_IGN in a background run

    def interrupt(self, trainer, batch, n_batches):
        if trainer.position["epoch"] == 1 and batch == 2:
            os.kill(os.getpid(), signal.SIGINT)
        original(self, trainer, batch, n_batches)

    monkeypatch.setattr(StopOnSignal, "on_batch_end", interrupt)
    argv = ["fit", str(files / "digits.npy"), "--code-dim", "2", *UNSEEDED]
    argv += ["-o", str(tmp_path / "m"), "--checkpoint-dir", str(tmp_path / "ckpt")]
    assert main(argv) == 130
    lines = capsys.readouterr().err.strip().splitlines()
    err = lines[-1]
    assert err.startswith("aekit: interrupted; checkpoint in") and "--resume" in err
    seed = int(err.split("--seed ")[1].split()[0])
    assert f"aekit: note: no --seed given; this run's is --seed {seed}" in lines
    assert list((tmp_path / "ckpt").glob("checkpoint-e000001-b000002*"))
    assert not (tmp_path / "m").exists()
    monkeypatch.setattr(StopOnSignal, "on_batch_end", original)
    resume = shlex.split(err.split("resume with: ", 1)[1])
    assert resume[0] == "aekit" and main(resume[1:]) == 0
    resumed = aekit.load(tmp_path / "m")
    assert resumed.n_iter_ == 2 and resumed.random_state == seed
    assert json.loads((tmp_path / "m" / "fit.json").read_text())["seed"] == seed
    assert signal.getsignal(signal.SIGINT) is handler  # the CLI put it back


def test_demo_writes_a_report(tmp_path, capsys):
    import torch

    threads = torch.get_num_threads()
    argv = ["demo", "--code-dims", "2", "--epochs", "5", "--device", "cpu", "-o", str(tmp_path)]
    assert main(argv) == 0
    assert torch.get_num_threads() == threads  # the demo's one-thread setting is undone
    out = capsys.readouterr().out
    assert "autoencoder" in out and "PCA" in out and "report:" in out
    assert "5 epochs" in (tmp_path / "index.html").read_text()


def test_module_entry_point_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "aekit", "--version"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0 and "aekit" in proc.stdout


def test_compare_on_too_few_rows_to_hold_one_out_says_so(tmp_path, capsys):
    """One row held out of one: it fitted on none, in scikit-learn's words about 0 samples."""
    data = tmp_path / "one.csv"
    data.write_text("x,y\n1,2\n")
    assert main(["compare", str(data), "--code-dims", "1", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "1 row(s) leave none to fit on once 1 are held out" in err and err.count("\n") == 1


def test_resume_reads_the_checkpointed_runs_columns_by_name(files, tmp_path, capsys):
    """A resumed run on the same CSV with its columns in another order trains on them by name.

    It trained the checkpoint's weights on the columns by position before (silently)."""
    import pandas as pd

    table = pd.read_csv(files / "digits.csv")
    features = [c for c in table.columns if c != "digit"]
    shuffled = tmp_path / "shuffled.csv"
    table[[*reversed(features), "digit"]].to_csv(shuffled, index=False)
    common = ["--code-dim", "2", "--label-column", "digit", *TINY, "--lr-schedule", "constant"]
    check = ["--checkpoint-dir", str(tmp_path / "ckpt")]
    assert main(["fit", str(files / "digits.csv"), *common, *check, "-o", str(tmp_path / "a")]) == 0
    assert json.loads((tmp_path / "ckpt" / "columns.json").read_text()) == features
    more = [*common, "--epochs", "3", *check, "--resume"]  # (the later --epochs wins)
    assert main(["fit", str(files / "digits.csv"), *more, "-o", str(tmp_path / "b")]) == 0
    assert main(["fit", str(shuffled), *more, "-o", str(tmp_path / "c")]) == 0
    b, c = aekit.load(tmp_path / "b"), aekit.load(tmp_path / "c")
    assert b.n_iter_ == c.n_iter_ == 3
    rows = table[features].to_numpy(np.float32)
    np.testing.assert_array_equal(b.transform(rows), c.transform(rows))
    renamed = tmp_path / "renamed.csv"
    table.rename(columns={"p0": "q0"}).to_csv(renamed, index=False)
    capsys.readouterr()
    assert main(["fit", str(renamed), *more, "-o", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "q0" in err and "p0" in err and "Traceback" not in err


def test_a_fresh_run_on_unnamed_rows_drops_an_earlier_runs_column_record(files, tmp_path):
    """Else resuming it on a named file would reorder the rows by another run's names."""
    check = ["--checkpoint-dir", str(tmp_path / "ckpt")]
    named = ["fit", str(files / "digits.csv"), "--code-dim", "2", "--label-column", "digit"]
    assert main([*named, *TINY, *check, "-o", str(tmp_path / "a")]) == 0
    assert (tmp_path / "ckpt" / "columns.json").is_file()
    unnamed = ["fit", str(files / "digits.npy"), "--code-dim", "2", *TINY, *check]
    assert main([*unnamed, "-o", str(tmp_path / "b")]) == 2  # its checkpoints are there
    for old in (tmp_path / "ckpt").glob("checkpoint-*"):
        old.unlink()
    assert main([*unnamed, "-o", str(tmp_path / "b")]) == 0
    assert not (tmp_path / "ckpt" / "columns.json").exists()


def test_streamed_fits_check_every_row_first_and_name_it_in_the_file(tmp_path, capsys):
    # an infinity in a held-out row ended the run after the model was written; one in a
    # training row was named by its place among the training rows; categorical_features
    # was ignored by a streamed fit; a 0-column .npy raised ZeroDivisionError
    rows = np.random.default_rng(0).normal(size=(500, 3)).astype(np.float32)
    rows[450, 2] = np.inf
    np.save(tmp_path / "inf.npy", rows)
    for seed in ("0", "2"):  # row 450 trains under one seed, is held out under the other
        out = tmp_path / f"m{seed}"
        argv = ["fit", str(tmp_path / "inf.npy"), "--stream", "--code-dim", "2", "-o", str(out)]
        assert main([*argv, *UNSEEDED, "--seed", seed]) == 2
        assert "row 450, column 2" in capsys.readouterr().err and not out.exists()
    np.save(tmp_path / "cat.npy", np.abs(rows[:400]))
    argv = ["fit", str(tmp_path / "cat.npy"), "--stream", "--code-dim", "2", *TINY]
    assert main([*argv, "--categorical-features", "0", "-o", str(tmp_path / "c")]) == 2
    assert "categorical_features needs the rows in memory" in capsys.readouterr().err
    np.save(tmp_path / "w0.npy", np.zeros((10, 0), np.float32))
    argv = ["fit", str(tmp_path / "w0.npy"), "--stream", "--code-dim", "2", *TINY]
    assert main([*argv, "-o", str(tmp_path / "w")]) == 2
    assert "has no data (10 rows, 0 columns)" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["score", "encode"])
def test_an_output_in_the_model_folder_is_refused(model, files, command, capsys):
    # aekit score MODEL DATA -o MODEL/holdout.npy replaced the saved held-out rows
    before = {p.name: p.read_bytes() for p in model.iterdir() if p.is_file()}
    out = model / "holdout.npy"
    argv = [command, str(model), str(files / "digits.csv"), "--label-column", "digit"]
    assert main([*argv, "-o", str(out)]) == 2
    assert "is in the model folder" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in model.iterdir() if p.is_file()} == before


def test_fit_refuses_to_save_into_its_dataset_folder(tmp_path, capsys):
    shards = tmp_path / "shards"
    shards.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        np.save(shards / f"p{i}.npy", rng.normal(size=(40, 4)).astype(np.float32))
    argv = ["fit", str(shards), "--code-dim", "1", *TINY, "-o", str(shards)]
    assert main(argv) == 2
    assert "is the dataset folder DATA" in capsys.readouterr().err
    assert sorted(p.name for p in shards.iterdir()) == ["p0.npy", "p1.npy"]


@pytest.mark.parametrize(
    "columns, message",
    [
        (["--columns", "p1,p1,p2"], "--columns names 'p1' more than once"),
        (["--columns", "p1,1"], "--columns names 'p1' more than once"),
        (["--columns", ""], "--columns names no column"),
        ([f"--drop=p{i}" for i in range(64)], "--label-column and --drop leave no feature"),
    ],
    ids=["twice", "name-and-position", "empty", "all-dropped"],
)
def test_fit_refuses_columns_that_repeat_or_leave_nothing(
    files, tmp_path, columns, message, capsys
):
    # --columns a,a,b fitted a model on one column twice; dropping every column said "no rows"
    argv = ["fit", str(files / "digits.csv"), "--label-column", "digit", "--code-dim", "1"]
    assert main([*argv, *columns, *TINY, "-o", str(tmp_path / "m")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
