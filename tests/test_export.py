import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_wine

import aekit
from aekit import Autoencoder, AutoencoderOutlierDetector, ConfigError, DataError, ModelFileError
from aekit.cli import main
from aekit.data.formats import read_table
from aekit.export import OUTPUTS, OnnxModel, to_onnx
from tests.helpers import FAST

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def close(got, want, unit=None):
    """Within 1e-5 relative to ``unit``, by default each column's largest value.

    Torch and ONNX Runtime round float32 sums differently, so a value that is small next to
    the others in its column (a score near a typical row's 0) has no relative precision of
    its own. Reconstructions are compared in the unit of the model's scaled space (a
    column's standard deviation for a table, the pixel range for images).
    """
    want = np.asarray(want, dtype=np.float64)
    scale = np.abs(want).max(axis=0) if unit is None else unit
    assert got.shape == want.shape
    worst = float(np.max(np.abs(got - want) / (scale + np.finfo(np.float32).tiny)))
    assert worst <= 1e-5, worst


def expected(model, X):
    first = model.estimator_ if isinstance(model, AutoencoderOutlierDetector) else model
    score = model.anomaly_score(X) if first is not model else first.reconstruction_error(X)
    return {
        "code": first.transform(X),
        "reconstruction": first.reconstruct(X),
        "error": first.reconstruction_error(X),
        "anomaly_score": score,
    }


@pytest.fixture(scope="module")
def wine():
    return load_wine().data


def conv(**kw):
    return Autoencoder(code_dim=4, image_shape="auto", hidden=(4, 8), **FAST, **kw)


@pytest.mark.parametrize(
    "make, rows",
    [
        # a table: weighted residual + code term, two autoencoders
        (
            lambda: AutoencoderOutlierDetector(Autoencoder(code_dim=2, **FAST), n_estimators=2),
            "wine",
        ),
        # a narrow table (6 columns): the density term (local outlier factor) too
        (lambda: AutoencoderOutlierDetector(Autoencoder(code_dim=2, **FAST)), "narrow"),
        # ... with one row repeated 20 times (the density term's reachability floor)
        (lambda: AutoencoderOutlierDetector(Autoencoder(code_dim=2, **FAST)), "duplicates"),
        # images: pooled residuals; a convolutional model; a plain autoencoder
        (lambda: AutoencoderOutlierDetector(Autoencoder(code_dim=4, **FAST)), "digits"),
        (lambda: AutoencoderOutlierDetector(conv(), n_estimators=1), "digits"),
        (lambda: Autoencoder(code_dim=3, **FAST), "wine"),
        (lambda: Autoencoder(code_dim=3, sparsity="topk", sparsity_k=2, **FAST), "digits"),
    ],
    ids=[
        "table-detector",
        "narrow-detector",
        "duplicates-detector",
        "image-detector",
        "conv-detector",
        "autoencoder",
        "topk",
    ],
)
def test_onnx_matches_aekit(tmp_path, make, rows, wine, digits):
    narrow = wine[:, :6]
    copies = np.vstack([narrow, np.repeat(narrow[:1], 20, axis=0), narrow[:1] * 1.01])
    X = {"wine": wine, "narrow": narrow, "duplicates": copies, "digits": digits[:300]}[rows]
    model = make().fit(X)
    path = to_onnx(model, tmp_path / "out" / "model.onnx")
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.onnx"]  # no sidecar
    onnx_model = OnnxModel(path)
    got = onnx_model.run(X)
    assert list(got) == list(OUTPUTS)
    first = model.estimator_ if isinstance(model, AutoencoderOutlierDetector) else model
    unit = {"reconstruction": first.module_.scale.numpy()}
    for name, want in expected(model, X).items():
        close(got[name], want, unit.get(name))
    is_detector = isinstance(model, AutoencoderOutlierDetector)
    assert onnx_model.kind == ("detector" if is_detector else "autoencoder")
    assert onnx_model.threshold == (model.threshold_ if is_detector else None)
    assert onnx_model.n_features == X.shape[1]


def test_onnx_runs_any_number_of_rows(tmp_path, wine):
    model = Autoencoder(code_dim=2, **FAST).fit(wine)
    onnx_model = OnnxModel(to_onnx(model, tmp_path / "m.onnx"))
    assert onnx_model.run(wine[:1])["code"].shape == (1, 2)
    assert onnx_model.run(wine[:0])["anomaly_score"].shape == (0,)


def test_onnx_refuses_bad_input_and_bad_files(tmp_path, wine):
    model = Autoencoder(code_dim=2, **FAST).fit(wine)
    onnx_model = OnnxModel(to_onnx(model, tmp_path / "m.onnx"))
    with pytest.raises(DataError, match="13 features"):
        onnx_model.run(wine[:, :5])
    bad = wine[:3].copy()
    bad[1, 4] = np.inf
    with pytest.raises(DataError, match="row 1"):
        onnx_model.run(bad)
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="not a valid ONNX"):
        OnnxModel(tmp_path / "junk.onnx")
    with pytest.raises(ModelFileError, match="no ONNX file"):
        OnnxModel(tmp_path / "missing.onnx")
    with pytest.raises(ConfigError, match="fitted"):
        to_onnx(Autoencoder(), tmp_path / "unfitted.onnx")
    with pytest.raises(ConfigError, match="exports an Autoencoder"):
        to_onnx(object(), tmp_path / "other.onnx")


def test_onnx_takes_a_dataframe_by_the_exported_names(tmp_path):
    pd = pytest.importorskip("pandas")
    data = load_wine(as_frame=True).data
    model = Autoencoder(code_dim=2, **FAST).fit(data)
    onnx_model = OnnxModel(to_onnx(model, tmp_path / "m.onnx"))
    want = onnx_model.run(data.to_numpy())["error"]  # an array: by position
    reordered = data[list(reversed(data.columns))]
    np.testing.assert_array_equal(onnx_model.run(reordered)["error"], want)
    np.testing.assert_array_equal(onnx_model.run(data)["error"], want)
    # before, both were read by position: a silently wrong score, or a renamed column taken
    renamed = data.rename(columns={"alcohol": "alcohol_pct"})
    with pytest.raises(DataError, match="unseen at fit time: 'alcohol_pct'; missing: 'alcohol'"):
        onnx_model.run(renamed)
    doubled = data.iloc[:, [0, *range(12)]]
    with pytest.raises(DataError, match="'alcohol' more than once"):
        onnx_model.run(doubled)
    rows = data.to_numpy()
    unnamed = OnnxModel(to_onnx(Autoencoder(code_dim=2, **FAST).fit(rows), tmp_path / "u.onnx"))
    assert unnamed.feature_names is None  # no names: a frame is taken by position
    frame = pd.DataFrame(rows, columns=[f"x{i}" for i in range(13)])
    np.testing.assert_array_equal(unnamed.run(frame)["code"], unnamed.run(rows)["code"])


def test_a_detector_on_named_columns_exports_their_names(tmp_path):
    pa = pytest.importorskip("pyarrow")
    data = load_wine(as_frame=True).data
    detector = AutoencoderOutlierDetector(Autoencoder(code_dim=2, **FAST)).fit(data)
    onnx_model = OnnxModel(to_onnx(detector, tmp_path / "d.onnx"))
    assert onnx_model.feature_names == list(data.columns)  # was None: its member keeps none
    want = onnx_model.run(data.to_numpy())["anomaly_score"]
    reordered = data[list(reversed(data.columns))]
    np.testing.assert_array_equal(onnx_model.run(reordered)["anomaly_score"], want)
    # a pyarrow table has no DataFrame columns to match: by position, as an array
    np.testing.assert_array_equal(onnx_model.run(pa.table(data))["anomaly_score"], want)


def test_in_named_order_keeps_label_kinds_apart():
    pd = pytest.importorskip("pandas")
    from aekit.data.names import in_named_order

    frame = pd.DataFrame([[1.0, 2.0]], columns=[False, True])
    with pytest.raises(DataError, match="unseen at fit time: False, True; missing: 0, 1"):
        in_named_order(frame, [0, 1], "the model")  # False == 0 in Python, not as a label
    numbered = pd.DataFrame([[1.0, 2.0]], columns=["1", "0"])
    with pytest.raises(DataError, match="unseen at fit time: '1', '0'"):
        in_named_order(numbered, [0, 1], "the model")
    assert list(in_named_order(numbered, ["0", "1"], "the model").columns) == ["0", "1"]


def test_cli_scores_with_an_onnx_file_of_integer_labels(tmp_path):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(load_wine().data)
    detector = AutoencoderOutlierDetector(Autoencoder(code_dim=2, **FAST)).fit(frame)
    path = to_onnx(detector, tmp_path / "d.onnx")
    frame.to_csv(tmp_path / "x.csv", index=False, header=False)  # no names: by position
    assert main(["score", str(path), str(tmp_path / "x.csv"), "-o", str(tmp_path / "s.npy")]) == 0
    got = np.load(tmp_path / "s.npy")
    np.testing.assert_allclose(got[:, 1], detector.anomaly_score(frame), rtol=1e-4, atol=1e-4)


def test_onnx_takes_a_dataframe_by_the_integer_labels_fitted_on(tmp_path):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(load_wine().data)  # unnamed columns: integer labels 0..12
    detector = AutoencoderOutlierDetector(Autoencoder(code_dim=2, **FAST)).fit(frame)
    onnx_model = OnnxModel(to_onnx(detector, tmp_path / "d.onnx"))
    assert onnx_model.feature_names is None and onnx_model.column_labels == list(range(13))
    want = onnx_model.run(frame.to_numpy())["anomaly_score"]
    reordered = frame[list(range(12, -1, -1))]  # before: read by position, other scores
    np.testing.assert_array_equal(onnx_model.run(reordered)["anomaly_score"], want)
    np.testing.assert_allclose(want, detector.anomaly_score(reordered), rtol=1e-4, atol=1e-4)
    with pytest.raises(DataError, match="unseen at fit time: 'x'"):
        onnx_model.run(frame.rename(columns={0: "x"}))


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory, wine):
    folder = tmp_path_factory.mktemp("cli")
    data = folder / "wine.csv"
    np.savetxt(data, wine, delimiter=",", header=",".join(f"c{i}" for i in range(13)))
    det = AutoencoderOutlierDetector(Autoencoder(code_dim=2, **FAST), contamination=0.1)
    det.fit(wine[:120])
    det.save(folder / "detector")
    return folder, data, det


def test_cli_scores_a_detector_folder_and_its_onnx_export_alike(cli_files, wine):
    folder, data, det = cli_files
    assert main(["score", str(folder / "detector"), str(data), "-o", str(folder / "d.csv")]) == 0
    from_folder = read_table(folder / "d.csv")
    assert list(from_folder.columns) == ["error", "anomaly_score", "outlier"]
    np.testing.assert_allclose(from_folder.X[:, 1], det.anomaly_score(wine), rtol=1e-6)
    np.testing.assert_array_equal(from_folder.X[:, 2], det.predict(wine) == -1)
    onnx_file = folder / "detector.onnx"
    assert main(["export", str(folder / "detector"), "-o", str(onnx_file)]) == 0
    # aekit score on the ONNX file, in a fresh interpreter: PyTorch must never be imported
    code = (
        "import sys; from aekit.cli import main; "
        f"rc = main(['score', {str(onnx_file)!r}, {str(data)!r}, '-o', "
        f"{str(folder / 'o.csv')!r}]); "
        "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(rc)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(aekit.__file__).parents[1])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    from_onnx = read_table(folder / "o.csv")
    assert list(from_onnx.columns) == ["error", "anomaly_score", "outlier"]
    close(from_onnx.X[:, :2], from_folder.X[:, :2])
    np.testing.assert_array_equal(from_onnx.X[:, 2], from_folder.X[:, 2])


def test_cli_onnx_score_takes_a_threshold_and_refuses_streaming(cli_files, wine):
    folder, data, _ = cli_files
    onnx_file = folder / "detector.onnx"
    if not onnx_file.exists():
        assert main(["export", str(folder / "detector"), "-o", str(onnx_file)]) == 0
    out = folder / "t.csv"
    assert main(["score", str(onnx_file), str(data), "-o", str(out), "--threshold", "1e9"]) == 0
    assert read_table(out).X[:, 2].sum() == 0
    assert main(["score", str(onnx_file), str(data), "--contamination", "0.5", "-o", str(out)]) == 0
    assert read_table(out).X[:, 2].sum() == len(wine) // 2
    assert main(["score", str(onnx_file), str(data), "--stream", "-o", str(out)]) == 2
    assert main(["export", str(folder / "detector"), "-o", str(folder / "x.npy")]) == 2


def test_cli_exports_a_plain_model_folder(tmp_path, wine):
    model = Autoencoder(code_dim=2, **FAST).fit(wine)
    model.save(tmp_path / "model")
    assert main(["export", str(tmp_path / "model"), "-o", str(tmp_path / "m.onnx")]) == 0
    got = OnnxModel(tmp_path / "m.onnx").run(wine)
    close(got["anomaly_score"], model.reconstruction_error(wine))


def test_a_row_with_no_observed_value_scores_nan_in_python_and_onnx(tmp_path, wine):
    # it scored as a typical row (no residual; the code and neighbours of a mean-filled row),
    # so predict called it an inlier; a training row like it no longer moves the threshold
    train = np.vstack([wine, np.full((1, wine.shape[1]), np.nan)])
    detector = AutoencoderOutlierDetector(Autoencoder(code_dim=2, **FAST)).fit(train)
    alone = AutoencoderOutlierDetector(Autoencoder(code_dim=2, **FAST)).fit(wine)
    assert detector.threshold_ == pytest.approx(alone.threshold_, rel=1e-4)  # calibrated without
    rows = wine[:3].copy()
    rows[1] = np.nan
    rows[2, :5] = np.nan  # partly observed: scored
    scores = detector.anomaly_score(rows)
    assert np.isnan(scores[1]) and np.isfinite(scores[[0, 2]]).all()
    assert detector.predict(rows)[1] == -1
    got = OnnxModel(to_onnx(detector, tmp_path / "d.onnx")).run(rows)["anomaly_score"]
    assert np.isnan(got[1]) and np.allclose(got[[0, 2]], scores[[0, 2]], atol=1e-4)
    plain = Autoencoder(code_dim=2, **FAST).fit(wine)  # its anomaly_score is its error: NaN
    onnx = OnnxModel(to_onnx(plain, tmp_path / "a.onnx")).run(rows)["anomaly_score"]
    np.testing.assert_allclose(onnx, plain.reconstruction_error(rows), rtol=1e-4, atol=1e-6)
    assert np.isnan(onnx[1])  # (an empty sum's 0 once, in Python and ONNX: the most normal)
    rows[2] = 3e38  # in float32's range, but its terms overflow (inf - inf): not "no value"
    with pytest.raises(DataError, match=r"^row 2 overflows float32 in the network; rescale"):
        detector.anomaly_score(rows)
    with pytest.raises(DataError, match=r"^row 2 overflows float32 in the ONNX model"):
        OnnxModel(tmp_path / "d.onnx").run(rows)  # (it gave inf, and NaN codes)


def test_onnx_refuses_what_overflowed_and_names_given_twice(tmp_path, wine):
    # a value within float32 but far beyond the data gave NaN codes and a NaN error (the mark
    # of a row without values) or an infinite one, where Python refuses the row; names given
    # twice were written, and the file then refused on loading
    ae = Autoencoder(code_dim=3, **FAST).fit(wine)
    model = OnnxModel(to_onnx(ae, tmp_path / "m.onnx"))
    for value in (3e38, 1e30):
        rows = wine[:3].copy()
        rows[1, 0] = value
        with pytest.raises(DataError, match="row 1 overflows float32 in the ONNX model"):
            model.run(rows)
    empty = np.full((1, wine.shape[1]), np.nan)
    assert np.isfinite(model.run(np.vstack([wine[:2], empty]))["error"][:2]).all()
    with pytest.raises(ConfigError, match="distinct"):
        to_onnx(ae, tmp_path / "dup.onnx", feature_names=["a"] * wine.shape[1])
    assert not (tmp_path / "dup.onnx").exists()
