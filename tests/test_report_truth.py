"""Reports that tell the truth: the loss they name, tables in the scaled space with column names,
tables with text columns (issue 23, item 6)."""

import json

import numpy as np
import pandas as pd
import pytest

from aekit import Autoencoder, ConfigError
from aekit.analysis.plots import loss_curves, loss_text
from aekit.analysis.report import build_report
from aekit.cli import main
from tests.helpers import FAST

PNG = b"\x89PNG\r\n\x1a\n"
TINY = ["--hidden", "8", "--epochs", "2", "--batch-size", "64", "--device", "cpu", "-q"]


def loss_caption(report) -> str:
    return next(s.text for s in report.sections if s.title == "Loss curves")


@pytest.fixture(scope="module")
def pixels(digits):
    return digits[:200]  # in [0, 1]


@pytest.mark.parametrize(
    ("loss", "said", "not_said"),
    [("mse", "squared error", "cross-entropy"), ("bce", "binary cross-entropy", "squared error,")],
)
def test_loss_caption_names_the_loss_used(pixels, loss, said, not_said):
    ae = Autoencoder(code_dim=4, hidden=(16,), output="sigmoid", loss=loss, **FAST).fit(pixels)
    report = build_report(ae, pixels)
    caption = loss_caption(report)
    loss_part = caption.split(";")[0]
    assert said in loss_part and not_said not in loss_part
    assert report.facts["training loss"] == loss_text(loss) == report.summary["loss"]
    # the kept epoch is where the validation error (the one error unit) is lowest
    assert "validation error" in caption and "early stopping" in caption


def test_loss_text_of_categorical_models_and_unknown_losses():
    assert "cross-entropy (categorical columns)" in loss_text("mse", categorical=True)
    assert loss_text("bce").startswith("binary cross-entropy")
    with pytest.raises(ConfigError, match="'huber'"):
        loss_text("huber")


def test_loss_curves_draw_with_and_without_validation_error(pixels):
    ae = Autoencoder(code_dim=4, hidden=(16,), **FAST).fit(pixels)
    assert loss_curves(ae.history_, "mse").startswith(PNG)
    history = type(ae.history_)(
        [{**r, "val_loss": None, "val_error": None} for r in ae.history_.records], 2, "epochs"
    )
    assert loss_curves(history, "bce").startswith(PNG)


@pytest.fixture(scope="module")
def wide_table():
    """53 columns of unit spread and one of 170,000: raw units would flatten the others."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(240, 54))
    X[:, 7] = 170_000 + 30_000 * X[:, 7]
    return pd.DataFrame(X, columns=[f"col_{i}" for i in range(53)] + ["income"])


def test_table_report_plots_scaled_rows_and_names_the_columns(wide_table):
    ae = Autoencoder(code_dim=4, hidden=(16,), **FAST).fit(wide_table)
    report = build_report(ae, wide_table, holdout=np.arange(200, 240))
    examples = report.summary["examples"]
    test_rows = wide_table.iloc[200:240].iloc[examples["test_rows"]]
    np.testing.assert_allclose(examples["scaled_original"], ae.scale_rows(test_rows))
    np.testing.assert_allclose(
        examples["scaled_reconstruction"], ae.reconstruct_scaled(test_rows), atol=1e-5
    )
    assert np.abs(examples["scaled_original"]).max() < 10  # not 170,000
    assert examples["columns"] == report.summary["feature_names"] == list(wide_table.columns)
    # per-feature errors add up to the mean per-row error: one unit throughout
    assert sum(report.summary["feature_error"]) == pytest.approx(report.summary["ae_error"])
    page = report.html()
    assert "Largest: " in page and any(f"col_{i} " in page for i in range(53))


def test_given_feature_names_must_match_the_width(wide_table):
    ae = Autoencoder(code_dim=2, hidden=(8,), **FAST).fit(wide_table.to_numpy())
    report = build_report(ae, wide_table.to_numpy(), feature_names=list(wide_table.columns))
    assert report.summary["feature_names"][-1] == "income"
    with pytest.raises(Exception, match="3 feature names for 54 features"):
        build_report(ae, wide_table.to_numpy(), feature_names=["a", "b", "c"])


@pytest.fixture(scope="module")
def text_table():
    rng = np.random.default_rng(1)
    n = 240
    colour = rng.choice(["red", "green", "blue"], n)
    return pd.DataFrame(
        {
            "size": rng.normal(size=n) + (colour == "red"),
            "colour": colour,
            "price": 1000 * rng.normal(size=n),
            "shop": rng.choice(["north", "south"], n),
        }
    )


def test_report_of_a_table_with_text_columns(text_table):
    ae = Autoencoder(code_dim=2, hidden=(8,), **FAST).fit(text_table)
    report = build_report(ae, text_table, labels=text_table["shop"].to_numpy())
    s = report.summary
    assert s["feature_names"] == ["size", "colour", "price", "shop"]
    assert len(s["feature_error"]) == 4  # a categorical column's block summed: one value
    assert sum(s["feature_error"]) == pytest.approx(s["ae_error"])
    assert "colour=red" in s["examples"]["columns"]
    assert len(s["examples"]["scaled_original"][0]) == ae.model_config_.input_dim == 2 + 3 + 2
    assert "cross-entropy (categorical columns)" in loss_caption(report)
    assert "summed over its one-hot block" in report.html()


def test_reconstruct_scaled_is_reconstruct_before_unscaling(pixels, text_table):
    ae = Autoencoder(code_dim=4, hidden=(16,), **FAST).fit(pixels)
    np.testing.assert_allclose(
        ae.unscale_rows(ae.reconstruct_scaled(pixels)), ae.reconstruct(pixels), atol=1e-6
    )
    table_ae = Autoencoder(code_dim=2, hidden=(8,), **FAST).fit(text_table)
    probabilities = table_ae.reconstruct_scaled(text_table)[:, 1:4]  # colour's block
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)


@pytest.fixture(scope="module")
def text_model(tmp_path_factory, text_table):
    folder = tmp_path_factory.mktemp("text")
    text_table.to_csv(folder / "shops.csv", index=False)
    argv = ["fit", str(folder / "shops.csv"), "--code-dim", "2", *TINY, "--seed", "0"]
    assert main([*argv, "-o", str(folder / "model")]) == 0
    return folder


def test_cli_report_of_a_text_table_names_its_columns(text_model):
    out = text_model / "report"
    assert (
        main(["report", str(text_model / "model"), str(text_model / "shops.csv"), "-o", str(out)])
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["feature_names"] == ["size", "colour", "price", "shop"]
    assert "held-out" in summary["measured_on"]
    assert "Largest: " in (out / "index.html").read_text()


def test_cli_reconstructs_a_text_table_but_refuses_its_export_in_one_line(text_model, capsys):
    """reconstruct writes the table (tests/test_misuse.py checks its columns); ONNX refuses."""
    model, data = str(text_model / "model"), str(text_model / "shops.csv")
    assert main(["reconstruct", model, data, "-o", str(text_model / "rec.npy")]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and not (text_model / "rec.npy").exists()
    assert main(["reconstruct", model, data, "-o", str(text_model / "rec.csv")]) == 0
    capsys.readouterr()
    assert main(["export", model, "-o", str(text_model / "m.onnx")]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "one-hot" in err
    assert not (text_model / "m.onnx").exists() and (text_model / "rec.csv").exists()


def test_caption_says_when_the_start_was_kept(pixels):
    ae = Autoencoder(code_dim=4, hidden=(16,), **FAST).fit(pixels)
    history = ae.history_
    ae.history_ = type(history)(
        history.records, 0, "epochs", {**(history.initial or {}), "best_epoch_z": 0.5}
    )
    caption = loss_caption(build_report(ae, pixels))
    assert "the start, as the best epoch beat it by only 0.50 standard errors" in caption
