"""ONNX export of a fitted AutoencoderImputer: rows with NaN in, the filled rows out."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine

from aekit import Autoencoder, AutoencoderImputer, ConfigError
from aekit.cli import main
from aekit.export import IMPUTER_OUTPUTS, OnnxModel, to_onnx
from aekit.impute.chain import fit_chain
from aekit.impute.neighbours import NeighbourFill
from tests.helpers import FAST

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def holed(X, share, seed=0):
    X = X.astype(np.float64, copy=True)
    X[np.random.default_rng(seed).random(X.shape) < share] = np.nan
    return X


def fitted(X, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an empty column's warning
        return AutoencoderImputer(Autoencoder(code_dim=3, **FAST), n_estimators=2, **kw).fit(X)


def assert_matches(got, want, unit):
    """Within 1e-5 of ``unit`` (each column's spread: the imputer's scaled space)."""
    assert got.shape == want.shape
    worst = float(np.max(np.abs(got - want) / unit))
    assert worst <= 1e-5, worst


@pytest.mark.parametrize(
    "options",
    [{}, {"add_indicator": True}, {"keep_empty_features": True}],
    ids=["plain", "indicator", "keep-empty"],
)
def test_the_onnx_graph_fills_as_transform_does(tmp_path, options):
    wine = load_wine().data
    X = holed(wine, 0.2)
    X[:, 3] = np.nan  # a column with no value: dropped, or kept as 0
    imputer = fitted(X, **options)
    model = OnnxModel(to_onnx(imputer, tmp_path / "imputer.onnx"))
    assert model.kind == "imputer" and model.outputs == IMPUTER_OUTPUTS
    fresh = holed(wine, 0.3, seed=1)  # other holes than in fit
    want = imputer.transform(fresh)
    got = model.run(fresh)["filled"]
    spread = np.nanstd(wine, axis=0)
    kept = spread if options.get("keep_empty_features") else np.delete(spread, 3)
    assert_matches(got, want, np.concatenate([kept, np.ones(want.shape[1] - len(kept))]))
    seen = ~np.isnan(fresh)
    if options.get("keep_empty_features"):  # the column empty in fit: 0 in its holes only
        np.testing.assert_array_equal(got[:, 3], np.nan_to_num(fresh[:, 3]).astype(np.float32))
    if not options:  # observed entries exactly as given (float32 input)
        columns = np.delete(np.arange(13), 3)
        np.testing.assert_array_equal(
            got[seen[:, columns]], fresh[:, columns][seen[:, columns]].astype(np.float32)
        )


@pytest.mark.parametrize("indicator", [False, True])
def test_the_graph_fills_the_imputers_own_marker_as_transform_does(tmp_path, indicator):
    # missing_values=-1: the graph read NaN alone as a hole, so every -1 came back unfilled
    wine = load_wine().data
    X = np.where(np.isnan(holed(wine, 0.2)), -1.0, wine)
    imputer = fitted(X, missing_values=-1, add_indicator=indicator)
    model = OnnxModel(to_onnx(imputer, tmp_path / "imputer.onnx"))
    fresh = np.where(np.isnan(holed(wine, 0.3, seed=1)), -1.0, wine)
    want = imputer.transform(fresh)
    got = model.run(fresh)["filled"]
    assert not (got == -1).any()
    flags = np.ones(want.shape[1] - 13)
    assert_matches(got, want, np.concatenate([np.nanstd(wine, axis=0), flags]))


def test_an_image_imputer_exports_with_its_global_scale(tmp_path, digits):
    X = holed(digits[:300] * 16, 0.3)
    imputer = fitted(X)
    got = OnnxModel(to_onnx(imputer, tmp_path / "digits.onnx")).run(X)["filled"]
    assert_matches(got, imputer.transform(X), 16.0)
    assert not np.isnan(got).any()


def test_a_table_imputer_with_categories_is_refused_in_one_line(tmp_path):
    frame = pd.DataFrame({"x": [0.0, 1.0, np.nan, 3.0] * 10, "kind": ["a", "b", None, "a"] * 10})
    imputer = fitted(frame)
    with pytest.raises(ConfigError, match="categorical columns"):
        to_onnx(imputer, tmp_path / "t.onnx")
    with pytest.raises(ConfigError, match="fitted imputer"):
        to_onnx(AutoencoderImputer(), tmp_path / "u.onnx")


def test_aekit_export_writes_an_imputer_folder_that_score_refuses(tmp_path, capsys):
    wine = load_wine().data
    X = holed(wine, 0.1)
    imputer = fitted(X)
    imputer.save(tmp_path / "imputer")
    out = tmp_path / "imputer.onnx"
    assert main(["export", str(tmp_path / "imputer"), "-o", str(out)]) == 0
    assert "the imputer in" in capsys.readouterr().out
    got = OnnxModel(out).run(X)["filled"]
    assert_matches(got, imputer.transform(X), np.nanstd(wine, axis=0))
    np.savetxt(tmp_path / "x.csv", X, delimiter=",")
    argv = ["score", str(out), str(tmp_path / "x.csv"), "-o", str(tmp_path / "s.csv")]
    assert main(argv) == 2
    assert "imputer's ONNX file" in capsys.readouterr().err


def test_the_graph_replays_a_blended_linear_chain(tmp_path):
    wine = load_wine().data
    X = holed(wine, 0.2)
    imputer = fitted(X)
    imputer.linear_, imputer.blend_ = fit_chain(X, 0), 0.25  # as the default's blend sets them
    fresh = holed(wine, 0.3, seed=1)
    want = imputer.transform(fresh)
    assert not np.allclose(want, fitted(X).transform(fresh))  # the chain changes the fill
    got = OnnxModel(to_onnx(imputer, tmp_path / "blend.onnx")).run(fresh)["filled"]
    assert_matches(got, want, np.nanstd(wine, axis=0))


def test_the_graph_replays_the_neighbour_fill(tmp_path):
    wine = load_wine().data
    X = holed(wine, 0.2)
    X[3] = np.nan  # a row of holes only: the columns' means, in the graph too
    imputer = fitted(X)
    imputer.linear_, imputer.blend_ = fit_chain(X, 0), 0.25
    imputer.neighbours_, imputer.neighbour_weight_ = NeighbourFill.from_rows(X), 0.5
    fresh = holed(wine, 0.3, seed=1)
    fresh[0] = np.nan
    want = imputer.transform(fresh)
    imputer.neighbours_, imputer.neighbour_weight_ = None, 0.0
    assert not np.allclose(want, imputer.transform(fresh))  # the neighbours change the fill
    imputer.neighbours_, imputer.neighbour_weight_ = NeighbourFill.from_rows(X), 0.5
    imputer.save(tmp_path / "near")
    loaded = AutoencoderImputer.load(tmp_path / "near")
    got = OnnxModel(to_onnx(loaded, tmp_path / "near.onnx")).run(fresh)["filled"]
    assert_matches(got, want, np.nanstd(wine, axis=0))


def test_a_one_column_imputer_blends_its_mean_in_onnx_too(tmp_path):
    X = holed(np.random.default_rng(0).normal(size=(80, 1)), 0.2)
    imputer = AutoencoderImputer(n_estimators=1).fit(X)  # the default model: the blend runs
    imputer.linear_, imputer.blend_ = fit_chain(X, 0), 0.5  # no steps: the column's mean
    imputer.neighbours_, imputer.neighbour_weight_ = None, 0.0
    imputer.save(tmp_path / "one")
    loaded = AutoencoderImputer.load(tmp_path / "one")
    got = OnnxModel(to_onnx(loaded, tmp_path / "one.onnx")).run(X)["filled"]
    assert_matches(got, imputer.transform(X), np.nanstd(X))


def test_the_default_imputers_own_blend_saves_loads_and_exports(tmp_path):
    rng = np.random.default_rng(0)
    rank_two = rng.normal(size=(190, 2)) @ rng.normal(size=(2, 6))  # near-linear
    X, fresh = holed(rank_two[:150], 0.2), holed(rank_two[150:], 0.3, seed=1)
    imputer = AutoencoderImputer(n_estimators=1).fit(X)
    assert imputer.blend_ < 1.0 and imputer.linear_ is not None  # the chain won weight
    want = imputer.transform(fresh)
    holes = np.isnan(fresh)
    low, high = (np.broadcast_to(b, fresh.shape)[holes] for b in imputer.bounds_)
    assert ((want[holes] >= low) & (want[holes] <= high)).all()
    imputer.save(tmp_path / "blend")
    loaded = AutoencoderImputer.load(tmp_path / "blend")
    assert loaded.blend_ == imputer.blend_
    np.testing.assert_array_equal(loaded.transform(fresh), want)
    got = OnnxModel(to_onnx(loaded, tmp_path / "blend.onnx")).run(fresh)["filled"]
    assert_matches(got, want, np.nanstd(X, axis=0))
    wild = loaded.linear_
    wild.weights[:], wild.intercept[:] = 0.0, 1e4  # beyond every column's observed range
    got = OnnxModel(to_onnx(loaded, tmp_path / "wild.onnx")).run(fresh)["filled"]
    assert_matches(got, loaded.transform(fresh), np.nanstd(X, axis=0))  # both clipped
    assert (got[holes] <= high * (1 + 1e-6) + 1e-6).all()


def test_a_table_imputer_with_a_text_marker_still_exports(tmp_path):
    # the marker "?" is read as a hole as the cells are read: the graph has no marker (it
    # tried float("?") and failed)
    import pandas as pd

    X = holed(load_wine().data[:, :4], 0.0)
    frame = pd.DataFrame(X, columns=list("abcd")).astype(object)
    frame.iloc[::7, 1] = "?"
    imputer = fitted(frame, missing_values="?")
    model = OnnxModel(to_onnx(imputer, tmp_path / "imputer.onnx"))
    numbers = np.where(frame.to_numpy() == "?", np.nan, frame.to_numpy()).astype(np.float64)
    want = np.asarray(imputer.transform(frame), dtype=np.float64)
    assert_matches(model.run(numbers)["filled"], want, np.nanstd(numbers, axis=0))


def test_the_neighbour_fill_picks_the_same_donors_far_from_zero(tmp_path):
    # |x|² + |y|² - 2x·y cancelled in float32 at an offset of 1,000: other donors than
    # float64's, fills 0.36 column spreads apart; centred, what is left is float32's input
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2)) @ rng.normal(size=(2, 5)) + 0.3 * rng.normal(size=(200, 5))
    imputer = AutoencoderImputer(n_estimators=1).fit(holed(X, 0.2) + 1000.0)
    assert imputer.neighbour_weight_ > 0  # the neighbour fill counts in the blend
    fresh = holed(rng.normal(size=(100, 2)) @ rng.normal(size=(2, 5)), 0.3, seed=1) + 1000.0
    got = OnnxModel(to_onnx(imputer, tmp_path / "imputer.onnx")).run(fresh)["filled"]
    worst = np.max(np.abs(got - imputer.transform(fresh)) / X.std(axis=0))
    # float32 holds 1,000 + x to about 6e-5: a value that near a tree's split goes the
    # other way (0.006 spreads here, the trees' share of one cell)
    assert worst < 0.01, worst
