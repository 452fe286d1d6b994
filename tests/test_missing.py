"""Missing values (NaN) through every entry point, the error unit for rows with holes."""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import check_estimator

from aekit import Autoencoder, AutoencoderImputer, AutoencoderOutlierDetector, DataError, load
from aekit.anomaly import load_detector
from aekit.cli import main
from aekit.config import ModelConfig, TrainConfig
from aekit.data.missing import (
    groups_from_blocks,
    hide_entries,
    observed_share,
    row_squared_error,
    with_indicators,
)
from aekit.data.sources import TensorRows
from aekit.data.stream import NpyRows, array_stats, stream_stats
from aekit.errors import AekitWarning
from aekit.model import Hourglass
from aekit.training.objective import loss_sum
from tests.helpers import FAST, write_parquet

SMALL = {"code_dim": 2, "hidden": (8,), **FAST}


def _rows(n=240, d=6, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 2))
    X = np.hstack([base, base @ rng.normal(size=(2, d - 2))]) + 0.1 * rng.normal(size=(n, d))
    return X


def _holes(X, rate=0.2, seed=1):
    holed = X.copy()
    holed[np.random.default_rng(seed).random(X.shape) < rate] = np.nan
    return holed


@pytest.fixture(scope="module")
def holed():
    return _holes(_rows())


@pytest.fixture(scope="module")
def fitted(holed):
    return Autoencoder(**SMALL).fit(holed)


def test_nan_goes_through_fit_partial_fit_and_every_inference_method(holed, fitted):
    assert fitted.model_config_.missing and fitted.module_.encoder[0].in_features == 12
    n = len(holed)
    for out, width in [
        (fitted.transform(holed), 2),
        (fitted.reconstruct(holed), 6),
        (fitted.scale_rows(holed), 6),
        (fitted.reconstruction_error(holed)[:, None], 1),
        (fitted.score_samples(holed)[:, None], 1),
    ]:
        assert out.shape == (n, width)
    assert np.isfinite(fitted.reconstruct(holed)).all()  # holes filled
    assert np.isfinite(fitted.score(holed))
    partial = Autoencoder(**SMALL).partial_fit(holed).partial_fit(holed[:50])
    assert partial.model_config_.missing and np.isfinite(partial.transform(holed)).all()


def test_pandas_na_is_a_missing_value(holed, fitted):
    frame = pd.DataFrame(holed).astype("Float64")  # NaN becomes pd.NA
    assert frame.isna().to_numpy().any() and frame.iloc[:, 0].dtype == "Float64"
    np.testing.assert_array_equal(fitted.transform(frame.to_numpy(np.float64, na_value=np.nan)),
                                  fitted.transform(frame))  # fmt: skip
    assert Autoencoder(**SMALL).fit(frame).model_config_.missing


def test_infinity_is_still_refused_with_nan_allowed(holed, fitted):
    bad = holed.copy()
    bad[3, 2] = np.inf
    for call in (Autoencoder(**SMALL).fit, fitted.transform, fitted.reconstruct,
                 fitted.score_samples, AutoencoderImputer().fit):  # fmt: skip
        with pytest.raises(DataError, match=r"infinity \(first at row 3, column 2\)"):
            call(bad)
    detector = AutoencoderOutlierDetector(Autoencoder(**SMALL), contamination=0.1).fit(holed)
    with pytest.raises(DataError, match="infinity"):
        detector.score_samples(bad)


def test_sparse_nan_is_refused_clearly(holed):
    import scipy.sparse

    with pytest.raises(DataError, match="sparse input contains NaN"):
        Autoencoder(**SMALL).fit(scipy.sparse.csr_matrix(holed))


def test_missing_false_refuses_training_rows_with_holes(holed):
    with pytest.raises(DataError, match="missing=False"):
        Autoencoder(missing=False, **SMALL).fit(holed)
    complete = Autoencoder(**SMALL).partial_fit(_rows())
    with pytest.raises(DataError, match="fitted on complete rows"):
        complete.partial_fit(holed)


def test_scaling_statistics_come_from_observed_values(holed):
    stats = array_stats(holed)
    np.testing.assert_allclose(stats["mean"], np.nanmean(holed, axis=0))
    np.testing.assert_allclose(stats["std"], np.nanstd(holed, axis=0))
    assert stats["has_missing"] and not array_stats(_rows())["has_missing"]
    ae = Autoencoder(**SMALL).fit(holed)
    np.testing.assert_allclose(ae.module_.offset.numpy(), np.nanmean(holed, axis=0), rtol=1e-5)


def test_streamed_files_with_holes_train_like_rows_in_memory(tmp_path, holed):
    np.save(tmp_path / "holed.npy", holed)
    streamed = stream_stats(NpyRows(tmp_path / "holed.npy", block_rows=50), chunk_rows=64)
    for key in ("mean", "std", "min", "max"):
        np.testing.assert_allclose(streamed[key], array_stats(holed)[key], rtol=1e-6, atol=1e-7)
    parquet = write_parquet(tmp_path / "holed.parquet", holed, 60)
    for path in (tmp_path / "holed.npy", parquet):
        ae = Autoencoder(**SMALL).fit(path)
        assert ae.model_config_.missing and np.isfinite(ae.reconstruction_error(holed)).all()


def test_the_loss_ignores_missing_entries():
    target = torch.tensor([[1.0, float("nan")], [0.5, 2.0]])
    recon = torch.tensor([[0.0, 100.0], [0.5, 0.0]])
    out = type("Out", (), {"recon": recon, "logits": recon})()
    observed = ~torch.isnan(target)
    assert float(loss_sum(out, target, "mse", observed)) == pytest.approx(1.0 + 4.0)
    bce = loss_sum(out, torch.tensor([[1.0, float("nan")], [0.0, 1.0]]), "bce", observed)
    assert torch.isfinite(bce)
    # the model's missing entries cannot change its loss: the gradient there is zero
    recon = recon.clone().requires_grad_(True)
    out = type("Out", (), {"recon": recon, "logits": recon})()
    loss_sum(out, target, "mse", observed).backward()
    assert recon.grad[0, 1] == 0 and recon.grad[0, 0] != 0


def test_the_error_unit_rescales_rows_with_holes():
    recon = torch.zeros(3, 4, dtype=torch.float64)
    target = torch.tensor(
        [[1.0, 1.0, 1.0, 1.0], [1.0, float("nan"), 1.0, float("nan")], [float("nan")] * 4],
        dtype=torch.float64,
    )
    # complete: the plain sum; half observed: 2 × (sum over observed); none observed: 0
    assert row_squared_error(recon, target).tolist() == [4.0, 4.0, 0.0]
    groups = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])  # two one-hot blocks
    holes = torch.isnan(target)
    assert observed_share(holes, groups).tolist() == [1.0, 1.0, 0.0]  # a block counts once


def test_rows_with_and_without_holes_score_alike(fitted):
    X = _rows(seed=5)
    complete = fitted.reconstruction_error(X)
    holed = fitted.reconstruction_error(_holes(X, 0.2, seed=6))
    assert 0.5 < holed.mean() / complete.mean() < 2.0  # without rescaling: about 0.8 × less


def test_masking_noise_hides_whole_groups():
    x = torch.zeros(500, 4)
    members = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    hidden = torch.isnan(hide_entries(x, 0.3, torch.Generator().manual_seed(0), members))
    assert torch.equal(hidden[:, 0], hidden[:, 1]) and torch.equal(hidden[:, 2], hidden[:, 3])
    assert 0.2 < hidden[:, 0].float().mean() < 0.4
    plain = torch.isnan(hide_entries(x, 0.3, torch.Generator().manual_seed(0)))
    assert not torch.equal(plain[:, 0], plain[:, 1])


def test_one_hot_blocks_become_feature_groups():
    assert groups_from_blocks(6, ((1, 3), (4, 6))) == (0, 1, 1, 2, 3, 3)
    assert groups_from_blocks(3, ()) == (0, 1, 2)


def test_indicators_tell_holes_from_zeros():
    x = torch.tensor([[0.0, float("nan")]])
    assert with_indicators(x).tolist() == [[0.0, 0.0, 0.0, 1.0]]


def test_models_without_holes_are_unchanged_and_fill_holes_with_the_mean(holed):
    X = _rows()
    ae = Autoencoder(**SMALL).fit(X)
    assert not ae.model_config_.missing and ae.module_.encoder[0].in_features == 6
    again = Autoencoder(missing="auto", hide_share=0.5, **SMALL).fit(X)  # no holes: no effect
    np.testing.assert_array_equal(ae.transform(X), again.transform(X))
    row = X[:1].copy()
    row[0, 1] = np.nan
    filled = X[:1].copy()
    filled[0, 1] = ae.module_.offset[1].item()  # the mean, 0 in the scaled space
    np.testing.assert_allclose(ae.transform(row), ae.transform(filled), rtol=1e-6)


def test_model_folders_keep_the_new_fields(tmp_path, fitted, holed):
    fitted.save(tmp_path / "m")
    back = load(tmp_path / "m")
    assert back.model_config_.missing and back.model_config_.hide_share == 0.3
    np.testing.assert_array_equal(back.reconstruct(holed), fitted.reconstruct(holed))
    cfg = ModelConfig(input_dim=4, missing=True, categorical_blocks=((0, 2),))
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    old = {k: v for k, v in ModelConfig(input_dim=3).to_dict().items()
           if k not in ("missing", "hide_share")}  # fmt: skip
    assert not ModelConfig.from_dict(old).missing


def test_groups_widen_nothing_and_pca_start_ignores_indicators():
    cfg = ModelConfig(input_dim=4, code_dim=2, missing=True, categorical_blocks=((0, 2), (2, 4)))
    model = Hourglass(cfg, torch.Generator().manual_seed(0))
    assert model.group_members.shape == (4, 2) and "group_members" not in model.state_dict()
    components = torch.eye(4)[:2]
    assert model.start_from_pca_(torch.zeros(4), components)
    assert torch.equal(model.encoder[-1].weight[:, 4:], torch.zeros(2, 4))
    assert TrainConfig()  # (the training config has no missing-value field)


def test_detector_scores_rows_with_holes_on_the_same_scale(tmp_path):
    X = _rows(400)
    detector = AutoencoderOutlierDetector(Autoencoder(**SMALL), contamination=0.1).fit(X)
    test = _rows(200, seed=3)
    complete = detector.score_samples(test)
    holed = detector.score_samples(_holes(test, 0.2, seed=4))
    assert np.isfinite(holed).all()
    assert abs(np.median(holed) - np.median(complete)) < 0.5 * np.std(complete)
    detector.save(tmp_path / "d")
    back = load_detector(tmp_path / "d")
    np.testing.assert_allclose(
        back.score_samples(_holes(test)), detector.score_samples(_holes(test))
    )


def test_onnx_export_scores_rows_with_holes(tmp_path, holed, fitted):
    pytest.importorskip("onnxruntime")
    from aekit.export import OnnxModel, to_onnx

    onnx_model = OnnxModel(to_onnx(fitted, tmp_path / "m.onnx"))
    got = onnx_model.run(holed[:20])
    np.testing.assert_allclose(got["reconstruction"], fitted.reconstruct(holed[:20]), atol=1e-4)


def test_a_row_with_nothing_observed_has_no_error_nor_score(tmp_path, holed, fitted):
    # it read as error 0, the most normal row of all; the detector already scored it NaN
    from aekit.analysis.measurement import measure

    rows = holed[:20].copy()
    rows[3] = np.nan
    errors = fitted.reconstruction_error(rows)
    assert np.isnan(errors[3]) and np.isfinite(np.delete(errors, 3)).all()
    assert np.isnan(fitted.score_samples(rows)[3])
    assert fitted.score(rows) == pytest.approx(-np.delete(errors, 3).mean())
    with pytest.raises(DataError, match="no observed value"):  # no row to measure at all
        fitted.score(np.full((2, 6), np.nan))
    both = measure(fitted, holed, rows)
    assert both.n_test == 19 and both.ae_error == pytest.approx(np.delete(errors, 3).mean())
    if importlib.util.find_spec("onnxruntime") is not None:
        from aekit.export import OnnxModel, to_onnx

        got = OnnxModel(to_onnx(fitted, tmp_path / "m.onnx")).run(rows)
        for name in ("error", "anomaly_score"):
            assert np.isnan(got[name][3]), name
            np.testing.assert_allclose(np.delete(got[name], 3), np.delete(errors, 3), rtol=1e-4)
    np.save(tmp_path / "x.npy", rows)
    model = tmp_path / "model"
    fitted.save(model)
    code = main(["score", str(model), str(tmp_path / "x.npy"), "-o", str(tmp_path / "s.npy")])
    assert code == 0 and np.isnan(np.load(tmp_path / "s.npy")[3]).all()


@pytest.mark.parametrize("hidden", [(8,), ()])
def test_a_convolutional_model_takes_holes_as_indicator_channels(tmp_path, hidden):
    # the indicators doubled the row, and the reshape to the image doubled the batch instead
    # of the channels: every image model with holes (and so its imputer) raised RuntimeError
    pytest.importorskip("onnxruntime")
    from sklearn.datasets import load_digits

    from aekit.export import OnnxModel, to_onnx

    X = load_digits().data[:200] / 16
    X[::3, 20] = np.nan
    X[1::5, 40:44] = np.nan
    ae = Autoencoder(code_dim=4, hidden=hidden, epochs=2, image_shape=(1, 8, 8), random_state=0)
    ae.fit(X)
    assert ae.module_.config.missing
    recon = ae.reconstruct(X)
    assert recon.shape == X.shape and np.isfinite(recon).all()
    got = OnnxModel(to_onnx(ae, tmp_path / "m.onnx")).run(X[:20])
    np.testing.assert_allclose(got["reconstruction"], recon[:20], atol=1e-5)
    filled = AutoencoderImputer(ae, n_estimators=1).fit_transform(X)
    assert np.isfinite(filled).all() and (filled[~np.isnan(X)] == X[~np.isnan(X)]).all()


def test_cli_fit_and_score_a_csv_with_empty_cells(tmp_path, capsys):
    X = _rows(300)
    text = "\n".join(
        [",".join(f"c{j}" for j in range(6))]
        + [
            ",".join("" if (i + j) % 7 == 0 else f"{v:.4f}" for j, v in enumerate(row))
            for i, row in enumerate(X)
        ]
    )
    (tmp_path / "holes.csv").write_text(text + "\n")
    args = ["--code-dim", "2", "--hidden", "8", "--epochs", "3", "--seed", "0", "--device", "cpu"]
    assert main(["fit", str(tmp_path / "holes.csv"), "-o", str(tmp_path / "m"), *args]) == 0
    assert load(tmp_path / "m").model_config_.missing
    out = tmp_path / "scores.csv"
    assert main(["score", str(tmp_path / "m"), str(tmp_path / "holes.csv"), "-o", str(out)]) == 0
    assert len(out.read_text().splitlines()) >= 300
    capsys.readouterr()


# -- the imputer ---------------------------------------------------------------------------
def tiny_imputer(**kw):
    ae = Autoencoder(code_dim=1, hidden=(8,), epochs=3, batch_size=16, random_state=0,
                     device="cpu")  # fmt: skip
    return AutoencoderImputer(ae, **kw)


def test_imputer_check_estimator():
    results = check_estimator(tiny_imputer(), on_fail=None)
    failed = [(r["check_name"], r["exception"]) for r in results if r["status"] == "failed"]
    assert not failed and len(results) > 40


def test_imputer_fills_holes_and_keeps_observed_entries(holed):
    imputer = AutoencoderImputer(Autoencoder(code_dim=3, hidden=(32,), **FAST)).fit(holed)
    out = imputer.transform(holed)
    seen = ~np.isnan(holed)
    assert np.isfinite(out).all() and np.array_equal(out[seen], holed[seen])
    truth = _rows()
    mean_fill = np.where(seen, holed, np.nanmean(holed, axis=0))
    assert np.abs(out - truth)[~seen].mean() < np.abs(mean_fill - truth)[~seen].mean()


def test_imputer_indicator_empty_features_names_and_pandas(holed):
    X = holed.copy()
    X[:, 4] = np.nan  # empty in fit
    frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(6)])
    with pytest.warns(AekitWarning, match=r"\['f4'\] have no observed value in fit: dropped"):
        imputer = tiny_imputer(add_indicator=True).set_output(transform="pandas").fit(frame)
    out = imputer.transform(frame)
    names = list(imputer.get_feature_names_out())
    assert list(out.columns) == names and "f4" not in names[:5]
    assert names[5:] == [f"missingindicator_f{j}" for j in range(6)]
    with pytest.warns(AekitWarning, match=r"\[4\] have no observed value in fit: kept"):
        kept = tiny_imputer(keep_empty_features=True).fit(X).transform(X)
    assert kept.shape == (len(X), 6) and (kept[:, 4] == 0).all()
    marked = np.where(np.isnan(holed), -1.0, holed)
    np.testing.assert_array_equal(
        tiny_imputer(missing_values=-1.0).fit(marked).transform(marked),
        tiny_imputer().fit(holed).transform(holed),
    )


def test_a_column_with_no_observed_value_is_warned_of(holed):
    X = holed.copy()
    X[:, 2] = np.nan  # nothing of it can be learned: its reconstruction is a constant
    frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(6)])
    empty = r"1 column\(s\) have no observed value in the training rows \({}\)"
    with pytest.warns(AekitWarning, match=empty.format("'f2'")):
        model = Autoencoder(2, **FAST).fit(frame)
    assert np.ptp(model.reconstruct(frame.fillna(0.0))[:, 2]) < 1e-9
    with pytest.warns(AekitWarning, match=empty.format("2, 0-based")):
        AutoencoderOutlierDetector(Autoencoder(2, **FAST), n_estimators=1).fit(X)
    with pytest.warns(AekitWarning, match=empty.format("2, 0-based")):  # streamed rows
        Autoencoder(2, **FAST).fit(TensorRows(torch.from_numpy(X.astype(np.float32))))


def test_imputer_in_a_pipeline(holed):
    y = (np.nan_to_num(holed[:, 0]) > 0).astype(int)
    model = make_pipeline(tiny_imputer(), LogisticRegression()).fit(holed, y)
    assert model.score(holed, y) > 0.6


def test_noise_on_top_of_hidden_entries_keeps_them_hidden(monkeypatch):
    import aekit.training.objective as objective_module

    # a noise that overwrites every entry: the holes (real and hidden) must still reach the
    # network as NaN, which it sees as missing (fill + indicator), not as the noise's values
    monkeypatch.setattr(objective_module, "corrupt", lambda x, *a, **k: torch.zeros_like(x))
    shares, forward = [], Hourglass.forward

    def spy(self, x):
        if self.training:
            shares.append(torch.isnan(x).float().mean().item())
        return forward(self, x)

    monkeypatch.setattr(Hourglass, "forward", spy)
    params = {**SMALL, "missing": True, "hide_share": 0.5, "noise": "masking", "epochs": 1}
    Autoencoder(**params).fit(_holes(_rows(), 0.2))
    assert shares and min(shares) > 0.4  # 20 % holes + half the rest hidden ≈ 60 %


@pytest.mark.parametrize("streamed", [False, True])
def test_aekit_fit_names_an_empty_column(holed, tmp_path, capsys, streamed):
    """The command line says the column's name, not its 0-based index, in memory or streamed
    (a held-out split of a streamed file keeps its source's columns)."""
    from aekit.cli import main

    X = holed.copy()
    X[:, 2] = np.nan
    data = tmp_path / ("x.parquet" if streamed else "x.csv")
    frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(6)])
    frame.to_parquet(data) if streamed else frame.to_csv(data, index=False)
    argv = [str(data), "-o", str(tmp_path / "m"), "--code-dim", "2", "--epochs", "1", "-q"]
    with warnings.catch_warnings():  # the command prints its warnings, one line each
        warnings.simplefilter("always")
        assert main(["fit", *argv, *(["--stream"] if streamed else [])]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "no observed" in line]
    assert len(said) == 1 and "in the training rows ('f2')" in said[0], said
