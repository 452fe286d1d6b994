"""Misuse cases: each gives the right answer or one clear line, never a silent wrong answer.

Columns reordered, renamed, missing or extra, for a model and a detector saved from Python
after fitting on a DataFrame, through Python and through the command line; a saved model is
not overwritten unless asked; ``-q`` is quiet and warnings are one line.
"""

import importlib.util
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from aekit import Autoencoder, AutoencoderOutlierDetector, load
from aekit.anomaly import load_detector
from aekit.cli import main
from aekit.errors import AekitWarning, DataError, OutputError
from tests.helpers import FAST

COLUMNS = ["a", "b", "c", "d"]


@pytest.fixture(scope="module")
def frame():
    """Four columns on very different scales: a positional mix-up changes every answer."""
    rng = np.random.default_rng(0)
    return pd.DataFrame(rng.normal(size=(200, 4)) * [1, 10, 100, 1000], columns=COLUMNS)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, frame):
    """A model and a detector fitted on ``frame``, saved from Python; the data files."""
    folder = tmp_path_factory.mktemp("misuse")
    ae = Autoencoder(code_dim=2, **FAST).fit(frame)
    detector = AutoencoderOutlierDetector(Autoencoder(code_dim=2, **FAST)).fit(frame)
    ae.save(folder / "model")
    detector.save(folder / "detector")
    frame.to_csv(folder / "ok.csv", index=False)
    frame[COLUMNS[::-1]].to_csv(folder / "reordered.csv", index=False)
    frame[COLUMNS[::-1]].to_parquet(folder / "reordered.parquet")
    frame.rename(columns={"a": "z"}).to_csv(folder / "renamed.csv", index=False)
    frame[COLUMNS[:3]].to_csv(folder / "missing.csv", index=False)
    frame.assign(e=1.0, y=0).to_csv(folder / "extra.csv", index=False)
    np.save(folder / "narrow.npy", frame.to_numpy()[:, :3])
    return folder, ae, detector


def _variants(frame):
    return {
        "renamed": (frame.rename(columns={"a": "z"}), "unseen at fit time: z"),
        "missing": (frame[COLUMNS[:3]], "missing: d"),
        "extra": (frame.assign(e=1.0), "unseen at fit time: e"),
    }


MODEL_METHODS = [
    "transform",
    "reconstruct",
    "reconstruct_scaled",
    "reconstruction_error",
    "score_samples",
]
DETECTOR_METHODS = ["predict", "score_samples", "decision_function", "reconstruction_error"]


def _methods(ae, detector):
    return [(ae, m) for m in MODEL_METHODS] + [(detector, m) for m in DETECTOR_METHODS]


@pytest.mark.parametrize("kind", ["renamed", "missing", "extra"])
def test_python_methods_refuse_other_columns_in_one_line(saved, frame, kind):
    _, ae, detector = saved
    X, named = _variants(frame)[kind]
    for estimator, method in _methods(ae, detector):
        with pytest.raises(DataError, match=named) as caught:
            getattr(estimator, method)(X)
        assert "\n" not in str(caught.value)


COLUMN_SHAPED = {"reconstruct", "reconstruct_scaled", "scale_rows"}  # a column per feature


def test_python_methods_reorder_columns_by_name(saved, frame):
    """Only the order differs: the same answer as in the fitted order. Without a warning, except
    where the answer has a column per feature: it comes in the fitted order, and is said to."""
    _, ae, detector = saved
    reordered = frame[COLUMNS[::-1]]
    for estimator, method in [*_methods(ae, detector), (ae, "scale_rows")]:
        expected = getattr(estimator, method)(frame)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            np.testing.assert_array_equal(getattr(estimator, method)(reordered), expected)
        said = [str(w.message) for w in caught]
        if method in COLUMN_SHAPED:
            assert len(said) == 1 and f"{method} returns its columns in the fitted order" in said[0]
            assert "('a', 'b', 'c', 'd')" in said[0] and caught[0].filename == __file__
        else:
            assert said == [], (method, said)
    codes = ae.transform(frame)
    with pytest.warns(AekitWarning, match="fitted order"):
        np.testing.assert_array_equal(ae.inverse_transform(codes), ae.reconstruct(reordered))


def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("which", ["model", "detector"])
@pytest.mark.parametrize("data", ["reordered.csv", "reordered.parquet"])
def test_cli_picks_reordered_columns_by_name(saved, capsys, tmp_path, which, data):
    folder, _, _ = saved
    assert (
        _cli(capsys, "score", folder / which, folder / "ok.csv", "-o", tmp_path / "ok.npy")[0] == 0
    )
    assert _cli(capsys, "score", folder / which, folder / data, "-o", tmp_path / "re.npy")[0] == 0
    np.testing.assert_array_equal(np.load(tmp_path / "re.npy"), np.load(tmp_path / "ok.npy"))
    for command in ("encode", "reconstruct"):
        code, _, err = _cli(
            capsys, command, folder / which, folder / "ok.csv", "-o", tmp_path / "a.npy"
        )
        assert code == 0 and "note" not in err
        code, _, err = _cli(
            capsys, command, folder / which, folder / data, "-o", tmp_path / "b.npy"
        )
        assert code == 0
        np.testing.assert_array_equal(np.load(tmp_path / "b.npy"), np.load(tmp_path / "a.npy"))
        # a .npy names no columns: a reconstruction's are said to be the model's, not DATA's
        said = "names no columns: they are in the model's order ('a', 'b', 'c', 'd'), not "
        assert (said in err) == (command == "reconstruct"), err


@pytest.mark.parametrize("which", ["model", "detector"])
@pytest.mark.parametrize(
    ("data", "says"),
    [
        ("renamed.csv", "lacks the column(s) 'a' that the model"),
        ("missing.csv", "lacks the column(s) 'd' that the model"),
        ("extra.csv", "has column(s) 'e', 'y' that the model"),
        ("narrow.npy", "has 3 feature columns, the model"),
    ],
)
def test_cli_refuses_other_columns_in_one_line(saved, capsys, tmp_path, which, data, says):
    folder, _, _ = saved
    for command in ("score", "encode", "reconstruct"):
        code, out, err = _cli(
            capsys, command, folder / which, folder / data, "-o", tmp_path / "s.npy"
        )
        assert code == 2 and out == ""
        assert err.startswith("aekit: error: ") and says in err and err.count("\n") == 1
    assert not (tmp_path / "s.npy").exists()


def test_cli_extra_columns_left_out_when_told(saved, capsys, tmp_path):
    folder, ae, _ = saved
    out = tmp_path / "s.npy"
    argv = ["score", folder / "model", folder / "extra.csv", "-o", out]
    code, _, err = _cli(capsys, *argv, "--drop", "e")
    assert code == 2 and "'y'" in err and "'e'" not in err  # y is still unexplained
    assert _cli(capsys, *argv, "--drop", "e", "--label-column", "y")[0] == 0
    np.testing.assert_allclose(
        np.load(out)[:, 0], ae.reconstruction_error(pd.read_csv(folder / "ok.csv")), rtol=1e-6
    )
    code, _, err = _cli(capsys, *argv, "--drop", "nope")
    assert code == 2 and "--drop 'nope'" in err and err.count("\n") == 1
    code, _, err = _cli(capsys, *argv, "--label-column", "a", "--drop", "e", "--drop", "y")
    assert code == 2 and "'a'" in err and "cannot be left out" in err


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_column_name_twice_is_refused_by_every_command(saved, capsys, tmp_path, suffix):
    """Picked by name, a repeated name read its first column twice: a silent wrong answer."""
    folder, _, _ = saved
    data = tmp_path / f"twice{suffix}"
    if suffix == ".csv":  # pandas cannot write it: it would rename the second 'a'
        data.write_text("a,b,a,d\n" + "\n".join(f"{i},{2 * i},{3 * i},{4 * i}" for i in range(9)))
    else:
        pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
        pq.write_table(pa.table([np.arange(9.0) * k for k in (1, 2, 3, 4)], list("abad")), data)
    out = tmp_path / "out.npy"
    for argv in (
        ["fit", data, "-o", tmp_path / "m", "--code-dim", "1", "--epochs", "1"],
        ["encode", folder / "model", data, "-o", out],
        ["score", folder / "detector", data, "-o", out],
        ["impute", data, "-o", tmp_path / f"filled{suffix}", "--epochs", "1"],
    ):
        code, _, err = _cli(capsys, *argv)
        assert code == 2 and err.count("\n") == 1, (argv[0], err)
        assert "has the column name(s) 'a' more than once" in err, (argv[0], err)
    assert not out.exists() and not (tmp_path / "m").exists()


def test_text_columns_in_another_order(tmp_path, capsys):
    rng = np.random.default_rng(1)
    table = pd.DataFrame(
        {
            "x": rng.normal(size=120),
            "t": rng.choice(["red", "green"], 120),
            "w": rng.normal(size=120) * 50,
        }
    )
    ae = Autoencoder(code_dim=2, **FAST).fit(table)
    ae.save(tmp_path / "m")
    table.to_csv(tmp_path / "ok.csv", index=False)
    table[["w", "t", "x"]].to_csv(tmp_path / "re.csv", index=False)
    for data, out in (("ok.csv", "a.npy"), ("re.csv", "b.npy")):
        code, _, err = _cli(capsys, "score", tmp_path / "m", tmp_path / data, "-o", tmp_path / out)
        assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy"), np.load(tmp_path / "a.npy"))
    reordered = table[["w", "t", "x"]]  # and in Python: the model, a detector, an imputer
    np.testing.assert_array_equal(ae.transform(reordered), ae.transform(table))
    detector = AutoencoderOutlierDetector(Autoencoder(code_dim=2, **FAST)).fit(table)
    np.testing.assert_array_equal(detector.score_samples(reordered), detector.score_samples(table))
    from aekit import AutoencoderImputer

    holes = table.mask(np.random.default_rng(3).random(table.shape) < 0.1)
    imputer = AutoencoderImputer(Autoencoder(code_dim=2, **FAST), n_estimators=1).fit(holes)
    filled = imputer.transform(holes[["w", "t", "x"]])
    assert list(filled.columns) == ["x", "t", "w"]  # the fitted order: get_feature_names_out
    pd.testing.assert_frame_equal(filled, imputer.transform(holes))
    with pytest.raises(DataError, match="unseen at fit time: z"):
        imputer.transform(holes.rename(columns={"t": "z"}))


def test_reconstruct_of_a_table_with_text_columns_keeps_them(tmp_path, capsys):
    """``aekit reconstruct`` writes a text-column model's reconstruction as a table (CSV or
    parquet, which keeps the dtypes); ``.npy`` is refused in one line, nothing written;
    ONNX export is refused in one line (the one-hot encoding is outside the network)."""
    rng = np.random.default_rng(4)
    table = pd.DataFrame({"x": rng.normal(size=80), "t": rng.choice(["red", "green"], 80)})
    ae = Autoencoder(code_dim=1, **FAST).fit(table)
    ae.save(tmp_path / "m")
    table.to_csv(tmp_path / "d.csv", index=False)
    expected = ae.reconstruct(table)
    for out in ("r.csv", "r.parquet"):
        code, _, err = _cli(capsys, "reconstruct", tmp_path / "m", tmp_path / "d.csv", "-o",
                            tmp_path / out)  # fmt: skip
        assert code == 0, err
    back = pd.read_parquet(tmp_path / "r.parquet")
    pd.testing.assert_frame_equal(back, expected)
    from_csv = pd.read_csv(tmp_path / "r.csv")
    assert list(from_csv["t"]) == list(expected["t"])
    np.testing.assert_allclose(from_csv["x"], expected["x"], rtol=1e-12)
    for argv in (("reconstruct", tmp_path / "m", tmp_path / "d.csv", "-o", tmp_path / "r.npy"),
                 ("export", tmp_path / "m", "-o", tmp_path / "m.onnx")):  # fmt: skip
        code, out, err = _cli(capsys, *argv)
        assert code != 0 and err.startswith("aekit: error: ") and err.count("\n") == 1
        assert not argv[-1].exists()


def test_onnx_score_picks_columns_by_name(saved, capsys, tmp_path):
    pytest.importorskip("onnxruntime")
    folder, _, _ = saved
    assert _cli(capsys, "export", folder / "detector", "-o", tmp_path / "d.onnx")[0] == 0
    for data, out in (("ok.csv", "a.npy"), ("reordered.csv", "b.npy")):
        assert (
            _cli(capsys, "score", tmp_path / "d.onnx", folder / data, "-o", tmp_path / out)[0] == 0
        )
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy"), np.load(tmp_path / "a.npy"))
    code, _, err = _cli(
        capsys, "score", tmp_path / "d.onnx", folder / "renamed.csv", "-o", tmp_path / "c.npy"
    )
    assert code == 2 and "'a'" in err and "'z'" in err and err.count("\n") == 1


def test_no_saved_model_is_overwritten_unless_asked(saved, frame, tmp_path, capsys):
    folder, ae, detector = saved
    for estimator, where in ((ae, folder / "model"), (detector, folder / "detector")):
        before = (where / "config.json").read_bytes()
        with pytest.raises(OutputError, match=f"{where.name} already holds a saved"):
            estimator.save(where)
        assert (where / "config.json").read_bytes() == before
    ae.save(tmp_path / "m")
    ae.save(tmp_path / "m", overwrite=True)
    detector.save(tmp_path / "m", overwrite=True)  # a model folder becomes a detector folder
    assert load_detector(tmp_path / "m").predict(frame).shape == (200,)
    argv = ["fit", folder / "ok.csv", "--code-dim", "2", "--epochs", "1", "--seed", "0", "-q"]
    code, out, err = _cli(capsys, *argv, "-o", folder / "model")
    assert code == 1 and out == "" and err.count("\n") == 1
    assert f"{folder / 'model'} already holds a saved model: pass --overwrite" in err
    assert load(folder / "model").n_features_in_ == 4
    assert _cli(capsys, *argv, "-o", tmp_path / "new", "--overwrite")[0] == 0
    assert _cli(capsys, *argv, "-o", tmp_path / "new", "--overwrite")[0] == 0


@pytest.mark.slow  # several `aekit` processes
def test_quiet_is_quiet_and_warnings_are_one_line(tmp_path, frame):
    frame.to_csv(tmp_path / "x.csv", index=False)

    def fit(*extra):
        argv = ["fit", tmp_path / "x.csv", "--epochs", "1", "--seed", "0", "-o", tmp_path / "m"]
        cmd = [sys.executable, "-m", "aekit", *map(str, argv), "--overwrite", *extra]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stderr

    assert fit("--code-dim", "2", "-q") == ""
    assert "intra-op thread" not in fit("--code-dim", "2")  # the thread choice: -v only
    verbose = fit("--code-dim", "4", "-v")
    assert "intra-op thread" in verbose
    warned = [line for line in verbose.splitlines() if "warning" in line]
    assert len(warned) == 1 and warned[0].startswith("aekit: warning: code_dim=4 >= 4 features")
    assert "warnings.warn" not in verbose and "Warning:" not in verbose


def test_sparse_files_through_every_command(tmp_path, capsys):
    """A scipy.sparse ``.npz``: fit, encode, reconstruct and score (to ``.npz`` too), score
    with the ONNX file, report and compare all take it; the ONNX scores match the folder's."""
    import scipy.sparse as sp

    rows = sp.random(200, 40, density=0.1, random_state=0, format="csr", dtype=np.float64)
    sp.save_npz(tmp_path / "rows.npz", rows)
    data, model = tmp_path / "rows.npz", tmp_path / "m"
    fit = ["fit", data, "--code-dim", "3", "--epochs", "2", "--seed", "0", "-q", "-o", model]
    assert _cli(capsys, *fit)[0] == 0
    for command, out, width in (("encode", "c.npz", 3), ("reconstruct", "r.npz", 40)):
        code, _, err = _cli(capsys, command, model, data, "-o", tmp_path / out)
        assert code == 0, err
        assert np.load(tmp_path / out)["X"].shape == (200, width)  # a dense array X
    assert _cli(capsys, "score", model, data, "-o", tmp_path / "s.npz")[0] == 0
    errors = np.load(tmp_path / "s.npz")["X"][:, 0]
    assert _cli(capsys, "export", model, "-o", tmp_path / "m.onnx")[0] == 0
    if importlib.util.find_spec("onnxruntime") is not None:  # the ONNX runner is optional
        code, _, err = _cli(capsys, "score", tmp_path / "m.onnx", data, "-o", tmp_path / "o.npy")
        assert code == 0, err
        np.testing.assert_allclose(np.load(tmp_path / "o.npy")[:, 0], errors, rtol=1e-4)
    code, out, err = _cli(capsys, "report", model, data, "-o", tmp_path / "report")
    assert code == 0 and (tmp_path / "report" / "index.html").is_file(), err
    compare = ["compare", data, "--code-dims", "2", "--epochs", "1", "--seed", "0", "-q"]
    code, out, err = _cli(capsys, *compare)
    assert code == 0 and "seed 0" in out, err


def test_report_picks_columns_by_name(saved, capsys, tmp_path):
    folder, _, _ = saved
    code, _, err = _cli(
        capsys, "report", folder / "model", folder / "reordered.csv", "-o", tmp_path / "r"
    )
    assert code == 0 and (tmp_path / "r" / "index.html").is_file(), err
    code, _, err = _cli(
        capsys, "report", folder / "model", folder / "renamed.csv", "-o", tmp_path / "s"
    )
    assert code == 2 and "'z' instead (renamed?)" in err and err.count("\n") == 1
    code, _, err = _cli(
        capsys,
        "report",
        folder / "detector",
        folder / "extra.csv",
        "--labels",
        "y",
        "--drop",
        "e",
        "-o",
        tmp_path / "t",
    )
    assert code == 0, err


def test_imputer_refuses_other_columns_and_overwrites_only_when_asked(frame, tmp_path):
    from aekit import AutoencoderImputer

    holes = frame.mask(np.random.default_rng(2).random(frame.shape) < 0.1)
    imputer = AutoencoderImputer(Autoencoder(code_dim=2, **FAST), n_estimators=1).fit(holes)
    for X, named in _variants(holes).values():
        with pytest.raises(DataError, match=named) as caught:
            imputer.transform(X)
        assert "\n" not in str(caught.value)
    with pytest.warns(AekitWarning, match="transform returns its columns in the fitted order"):
        filled = imputer.transform(holes[COLUMNS[::-1]])  # only the order differs: by name
    np.testing.assert_array_equal(filled, imputer.transform(holes))
    imputer.set_output(transform="pandas")  # labelled by the fitted names: nothing to say
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        labelled = imputer.transform(holes[COLUMNS[::-1]])
    assert list(labelled.columns) == COLUMNS
    np.testing.assert_array_equal(labelled.to_numpy(), filled)
    imputer.set_output(transform="default")
    imputer.save(tmp_path / "imp")
    with pytest.raises(OutputError, match="imp already holds a saved imputer: pass overwrite"):
        imputer.save(tmp_path / "imp")
    imputer.save(tmp_path / "imp", overwrite=True)
    np.testing.assert_array_equal(load(tmp_path / "imp").transform(holes), imputer.transform(holes))


def test_cli_picks_an_imputer_folders_columns_by_name(frame, tmp_path, capsys):
    """The commands apply an imputer folder's autoencoder with the imputer's column names."""
    from aekit import AutoencoderImputer

    holes = frame.mask(np.random.default_rng(2).random(frame.shape) < 0.1)
    AutoencoderImputer(Autoencoder(code_dim=2, **FAST), n_estimators=1).fit(holes).save(
        tmp_path / "imp"
    )
    frame.to_csv(tmp_path / "ok.csv", index=False)
    frame[COLUMNS[::-1]].to_csv(tmp_path / "re.csv", index=False)
    frame.rename(columns={"a": "z"}).to_csv(tmp_path / "renamed.csv", index=False)
    for data, out in (("ok.csv", "a.npy"), ("re.csv", "b.npy")):
        code, _, err = _cli(
            capsys, "score", tmp_path / "imp", tmp_path / data, "-o", tmp_path / out
        )
        assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy"), np.load(tmp_path / "a.npy"))
    code, out, err = _cli(
        capsys, "encode", tmp_path / "imp", tmp_path / "renamed.csv", "-o", tmp_path / "c.npy"
    )
    assert code == 2 and "lacks the column(s) 'a'" in err and err.count("\n") == 1
