"""The imputer's validated blend: the linear chain, the held-out cells, the weight, the file."""

import json
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_wine
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer
from sklearn.linear_model import BayesianRidge

from aekit import Autoencoder, AutoencoderImputer, ModelFileError
from aekit.impute.blend import BLEND_WEIGHTS, blend_weight, held_out_cells
from aekit.impute.chain import LinearChain, fit_chain
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
    with pytest.raises(ModelFileError, match="does not fit 12 columns"):
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
    assert blend_weight(truth, hidden, noise, truth) == 0.0
    assert blend_weight(truth, hidden, truth, noise) == 1.0
    assert blend_weight(truth, hidden, truth, truth) == BLEND_WEIGHTS[0] == 1.0  # ties: members


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
    assert meta["format_version"] == 2
    meta["blend"] = 0.3
    meta.pop("linear")
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="needs the 'linear' chain"):
        AutoencoderImputer.load(tmp_path / "blend")
    meta.update(format_version=1)
    for key in ("blend", "linear"):
        meta.pop(key, None)
    meta_path.write_text(json.dumps(meta))  # what aekit 0.2's imputers wrote
    old = AutoencoderImputer.load(tmp_path / "blend")
    assert old.blend_ == 1.0 and old.linear_ is None
