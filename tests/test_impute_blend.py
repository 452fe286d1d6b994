"""The imputer's validated blend: chain, neighbours, held-out cells, weights, the file."""

import json
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_wine
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer
from sklearn.linear_model import BayesianRidge

from aekit import Autoencoder, AutoencoderImputer, ModelFileError
from aekit.impute.blend import (
    BLEND_COLUMNS,
    BLEND_WEIGHTS,
    PRIOR,
    blend_runs,
    blend_weights,
    held_out_cells,
    weigh_candidates,
)
from aekit.impute.chain import LinearChain, fit_chain
from aekit.impute.defaults import ENSEMBLE_ENTRIES
from aekit.impute.neighbours import NeighbourFill
from tests.helpers import FAST


def holed(X, share, seed=0):
    X = X.astype(np.float64, copy=True)
    X[np.random.default_rng(seed).random(X.shape) < share] = np.nan
    return X


def test_the_chain_replays_iterative_imputers_transform():
    wine = load_wine().data
    X = holed(wine, 0.3)
    X[:, 3] = np.nan  # an empty column: kept, filled with 0
    chain = fit_chain(X, 0)
    reference = IterativeImputer(BayesianRidge(), random_state=0, keep_empty_features=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference.fit(X)
    fresh = holed(wine, 0.3, seed=1)
    np.testing.assert_allclose(chain.fill(fresh), reference.transform(fresh), atol=1e-9)
    again = LinearChain.from_json(json.loads(json.dumps(chain.to_json())), 13, "here")
    np.testing.assert_array_equal(again.fill(fresh), chain.fill(fresh))
    with pytest.raises(
        ModelFileError, match=r"'linear'\['feature'\] must be column indices in \[0, 12\)"
    ):
        LinearChain.from_json(chain.to_json(), 12, "here")


def test_held_out_cells_are_observed_and_follow_the_holes():
    X = holed(np.random.default_rng(0).normal(size=(400, 8)), 0.3)
    X[:, 0] = 1.0  # a column never missing: held-out rows copy others' holes, never here
    hidden = held_out_cells(X, 0)
    assert not (hidden & np.isnan(X)).any()
    assert 0.05 < hidden.sum() / (~np.isnan(X)).sum() < 0.15
    assert not hidden[:, 0].any()
    assert ((~np.isnan(X) & ~hidden).sum(axis=1) >= 1).all()
    np.testing.assert_array_equal(hidden, held_out_cells(X, 0))  # seeded


def test_the_weight_goes_to_the_fill_that_is_right_on_the_hidden_cells():
    truth = np.random.default_rng(1).normal(size=(50, 4))
    hidden = np.random.default_rng(2).random(truth.shape) < 0.2
    noise = truth + np.random.default_rng(3).normal(size=truth.shape)
    assert blend_weights(truth, hidden, noise, truth, noise) == (0.0, 1.0, 0.0)
    assert blend_weights(truth, hidden, truth, noise, noise) == (1.0, 0.0, 0.0)
    assert blend_weights(truth, hidden, noise, noise, truth) == (0.0, 0.0, 1.0)
    assert blend_weights(truth, hidden, truth, truth, truth) == PRIOR  # nothing shown: the prior
    assert BLEND_WEIGHTS[0] == (1.0, 0.0, 0.0) and len(BLEND_WEIGHTS) == 15
    assert all(sum(w) == 1.0 for w in BLEND_WEIGHTS) and PRIOR in BLEND_WEIGHTS


def test_the_prior_stays_unless_the_held_out_cells_show_better_by_two_standard_errors():
    rng = np.random.default_rng(4)
    truth = rng.normal(size=(400, 5))
    hidden = rng.random(truth.shape) < 0.1
    base = truth + rng.normal(size=truth.shape)

    def shifted(by):  # a fill whose error differs from base's by a share of its cells
        return np.where(rng.random(truth.shape) < by, truth, base)

    # the members' fill slightly better on a few cells: not shown, the prior stays
    assert blend_weights(truth, hidden, shifted(0.02), base, base) == PRIOR
    # far better on most cells: shown, the members alone
    assert blend_weights(truth, hidden, shifted(0.9), base, base) == (1.0, 0.0, 0.0)
    assert blend_weights(truth, np.zeros_like(hidden), base, base, base) == PRIOR  # no cell


def test_the_neighbour_fill_is_knn_imputers():
    rng = np.random.default_rng(0)
    X = holed(rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6)), 0.3)
    X[5, :] = np.nan  # a row of holes only: the columns' means
    X[7, 1:] = np.nan
    new = holed(rng.normal(size=(40, 6)) @ rng.normal(size=(6, 6)), 0.5, seed=1)
    near = NeighbourFill.from_rows(X)
    for rows in (X, new):
        want = KNNImputer().fit(X).transform(rows)
        got = np.where(np.isnan(rows), near.fill(rows), rows)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    again = NeighbourFill.from_json(json.loads(json.dumps(near.to_json())), 6, "here")
    np.testing.assert_array_equal(again.fill(new), near.fill(new))
    for bad in ([], [[1.0] * 5], [["1"] * 6], [[float("inf")] * 6], {"rows": []}):
        with pytest.raises(ModelFileError, match=r"^here: 'neighbours' rows"):
            NeighbourFill.from_json(bad, 6, "here")


def test_a_neighbour_blend_saves_loads_and_a_version_3_folder_loads_without_it(tmp_path):
    X = holed(load_wine().data, 0.2)
    imputer = AutoencoderImputer(Autoencoder(code_dim=3, **FAST), n_estimators=1).fit(X)
    plain = imputer.transform(X)
    imputer.linear_, imputer.blend_ = fit_chain(X, 0), 0.25
    imputer.neighbours_, imputer.neighbour_weight_ = NeighbourFill.from_rows(X), 0.5
    blended = imputer.transform(X)
    holes = np.isnan(X)
    chain = np.clip(imputer.linear_.fill(X), *imputer.bounds_)
    near = np.clip(imputer.neighbours_.fill(X), *imputer.bounds_)
    want = 0.25 * plain + 0.25 * chain + 0.5 * near
    np.testing.assert_allclose(blended[holes], want[holes], rtol=1e-12)
    imputer.save(tmp_path / "near")
    loaded = AutoencoderImputer.load(tmp_path / "near")
    assert loaded.neighbour_weight_ == 0.5 and loaded.blend_ == 0.25
    np.testing.assert_array_equal(loaded.transform(X), blended)
    meta_path = tmp_path / "near" / "imputer.json"
    meta = json.loads(meta_path.read_text())
    assert meta["format_version"] == 6 and meta["trees"] is None
    for weight in (0.8, 0.0, True, "0.5"):  # above 1 - blend, zero, not a number
        meta_path.write_text(
            json.dumps({**meta, "neighbours": {**meta["neighbours"], "weight": weight}})
        )
        with pytest.raises(ModelFileError, match="'neighbours' must hold 'weight'"):
            AutoencoderImputer.load(tmp_path / "near")
    meta_path.write_text(json.dumps({**meta, "neighbours": {"weight": 0.5}}))
    with pytest.raises(ModelFileError, match="'neighbours' must hold"):
        AutoencoderImputer.load(tmp_path / "near")
    old = {k: v for k, v in meta.items() if k not in ("neighbours", "trees")}
    meta_path.write_text(json.dumps({**old, "format_version": 3}))  # what 3 wrote: no neighbours
    loaded = AutoencoderImputer.load(tmp_path / "near")
    assert loaded.neighbours_ is None and loaded.neighbour_weight_ == 0.0
    only_chain = 0.25 * plain + 0.75 * chain
    np.testing.assert_allclose(loaded.transform(X)[holes], only_chain[holes], rtol=1e-12)


def test_a_blended_imputer_saves_and_a_version_1_folder_loads(tmp_path):
    X = holed(load_wine().data, 0.2)
    imputer = AutoencoderImputer(Autoencoder(code_dim=3, **FAST), n_estimators=2).fit(X)
    assert imputer.blend_ == 1.0 and imputer.linear_ is None  # a given model: no blend
    imputer.linear_, imputer.blend_ = fit_chain(X, 0), 0.5
    imputer.save(tmp_path / "blend")
    loaded = AutoencoderImputer.load(tmp_path / "blend")
    assert loaded.blend_ == 0.5
    np.testing.assert_array_equal(loaded.transform(X), imputer.transform(X))
    meta_path = tmp_path / "blend" / "imputer.json"
    meta = json.loads(meta_path.read_text())
    assert meta["format_version"] == 6
    meta["blend"] = 0.3
    meta.pop("linear")
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="needs the 'linear' chain"):
        AutoencoderImputer.load(tmp_path / "blend")
    meta.update(format_version=1)
    for key in ("blend", "linear", "neighbours", "trees"):  # none of them in version 1
        meta.pop(key, None)
    meta_path.write_text(json.dumps(meta))  # what aekit 0.2's imputers wrote
    old = AutoencoderImputer.load(tmp_path / "blend")
    assert old.blend_ == 1.0 and old.linear_ is None


def low_rank(n=120, d=5, share=0.2, seed=0):
    rng = np.random.default_rng(seed)
    return holed(rng.normal(size=(n, 2)) @ rng.normal(size=(2, d)), share, seed)


def test_a_one_column_imputer_with_a_chain_of_no_steps_saves_and_loads(tmp_path):
    X = holed(np.random.default_rng(0).normal(size=(80, 1)), 0.2)
    imputer = AutoencoderImputer(n_estimators=1).fit(X)  # the default model: the blend runs
    assert len(imputer.held_out_rmse_) == len(BLEND_WEIGHTS)
    imputer.linear_, imputer.blend_ = fit_chain(X, 0), 0.5  # the chain: column means alone
    imputer.neighbours_, imputer.neighbour_weight_ = None, 0.0
    assert imputer.linear_.feature.size == 0
    imputer.save(tmp_path / "one")
    assert json.loads((tmp_path / "one" / "imputer.json").read_text())["linear"]["weights"] == []
    loaded = AutoencoderImputer.load(tmp_path / "one")
    assert loaded.linear_.weights.shape == (0, 1)
    np.testing.assert_array_equal(loaded.transform(X), imputer.transform(X))
    members_alone = AutoencoderImputer.load(tmp_path / "one")
    members_alone.linear_, members_alone.blend_ = None, 1.0
    members_alone.neighbours_, members_alone.neighbour_weight_ = None, 0.0
    mean = np.nanmean(X)  # the chain of no steps fills the column's mean: blended in by half
    want = 0.5 * members_alone.transform(X) + 0.5 * mean
    np.testing.assert_allclose(loaded.transform(X)[np.isnan(X)], want[np.isnan(X)], rtol=1e-12)


def test_wide_tables_skip_the_blend():
    assert blend_runs(np.zeros((10, BLEND_COLUMNS)))
    assert not blend_runs(np.zeros((10, BLEND_COLUMNS + 1)))
    assert not blend_runs(np.zeros((ENSEMBLE_ENTRIES // 10 + 1, 10)))
    X = holed(np.random.default_rng(0).normal(size=(30, BLEND_COLUMNS + 1)), 0.1)
    imputer = AutoencoderImputer(n_estimators=1).fit(X)
    assert imputer.linear_ is None and imputer.blend_ == 1.0
    assert not hasattr(imputer, "held_out_rmse_")


def test_blended_fills_stay_within_the_observed_range():
    X = low_rank()
    imputer = AutoencoderImputer(Autoencoder(code_dim=2, **FAST), n_estimators=1).fit(X)
    wild = fit_chain(X, 0)
    wild.weights[:], wild.intercept[:] = 0.0, 1e3  # fills far beyond every column's range
    imputer.linear_, imputer.blend_ = wild, 0.0
    filled = imputer.transform(X)
    low, high = imputer.bounds_
    assert ((filled >= low) & (filled <= high)).all()
    assert (filled[np.isnan(X)] == np.broadcast_to(high, X.shape)[np.isnan(X)]).all()
    hidden = held_out_cells(X, 0)
    seen = []

    def clip(values):
        seen.append(values)
        return np.clip(values, low, high)

    means = np.broadcast_to(np.nanmean(X, axis=0), X.shape)  # a poor fill for the members'
    blend, errors = weigh_candidates(X, hidden, means, clip, 0)
    assert len(seen) == 2 and len(errors) == len(BLEND_WEIGHTS)  # chain and neighbours, clipped
    assert blend.members < 1.0 and blend.linear is not None  # a low-rank table: the chain helps


def test_a_saved_chain_is_checked_value_by_value():
    chain = fit_chain(low_rank(), 0).to_json()
    LinearChain.from_json(chain, 5, "here")
    cases = {
        "feature": [[1.7, *chain["feature"][1:]], [True, *chain["feature"][1:]], [5], "0"],
        "weights": [[["2"] * 5] * len(chain["feature"]), [[0.0] * 5], []],
        "start": [[float("nan")] * 5, [None] * 5, [0.0] * 4],
        "intercept": [[float("inf")] * len(chain["feature"]), [0.0]],
    }
    for key, values in cases.items():
        for value in values:
            with pytest.raises(ModelFileError, match=rf"^here: 'linear'\['{key}'\]"):
                LinearChain.from_json({**chain, key: value}, 5, "here")
    for bad in (None, [], {"start": []}):
        with pytest.raises(ModelFileError, match=r"^here: 'linear'"):
            LinearChain.from_json(bad, 5, "here")
