"""hide_pattern="rows": training hides the holes another row has, not random entries."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aekit import Autoencoder, AutoencoderImputer
from aekit.config import ModelConfig
from aekit.data.missing import hide_like_rows
from aekit.errors import ConfigError


def _blocks(n=200, d=16, seed=0):
    """Rows of a smooth curve, each of the first half missing one block of 4 columns."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(-1, 1, size=(n, 1))
    X = np.hstack([np.sin((j + 1) * t) for j in range(d)]) + 0.01 * rng.normal(size=(n, d))
    holed = X.copy()
    for i in range(n // 2):
        start = 4 * rng.integers(0, d // 4)
        holed[i, start : start + 4] = np.nan
    return X, holed


def test_each_row_keeps_its_holes_and_gains_those_of_one_row_of_the_batch():
    _, holed = _blocks()
    x = torch.from_numpy(holed).float()
    out = hide_like_rows(x, torch.Generator().manual_seed(0))
    own, now, all_holes = torch.isnan(x), torch.isnan(out), torch.isnan(x)
    assert (now >= own).all()  # nothing observed comes back
    assert torch.equal(out[~now], x[~now])  # what stays observed is unchanged
    for i in range(len(x)):  # the added holes are exactly some row's holes
        assert any(torch.equal(now[i], own[i] | all_holes[j]) for j in range(len(x)))
    assert now.sum() > own.sum()  # rows without holes of their own got some
    again = hide_like_rows(x, torch.Generator().manual_seed(0))
    assert torch.equal(torch.isnan(again), now)  # one seed, one draw


def test_rows_of_complete_data_hide_nothing():
    x = torch.randn(50, 6)
    assert torch.equal(hide_like_rows(x, torch.Generator().manual_seed(1)), x)


def test_an_unknown_hide_pattern_is_refused():
    with pytest.raises(ConfigError, match="hide_pattern"):
        ModelConfig(input_dim=4, code_dim=2, hide_pattern="blocks")
    with pytest.raises(ConfigError, match="hide_pattern"):
        Autoencoder(hide_pattern="blocks", epochs=1).fit(np.random.default_rng(0).random((40, 4)))


def test_the_pattern_changes_training_and_is_saved(tmp_path):
    _, holed = _blocks()
    params = {"code_dim": 2, "epochs": 3, "random_state": 0, "missing": True, "init": "random"}
    params["improvement_z"] = 0.0  # keep the last epoch rather than the start
    rows = Autoencoder(**params, hide_pattern="rows").fit(holed)
    entries = Autoencoder(**params).fit(holed)
    assert rows.model_config_.hide_pattern == "rows"
    assert entries.model_config_.hide_pattern == "entries"  # the default: the old behaviour
    assert not np.allclose(rows.reconstruct(holed), entries.reconstruct(holed))
    loaded = Autoencoder.load(rows.save(tmp_path / "m"))
    assert loaded.hide_pattern == "rows" and loaded.model_config_.hide_pattern == "rows"
    np.testing.assert_array_equal(loaded.reconstruct(holed), rows.reconstruct(holed))


def test_an_old_model_folder_loads_with_random_entries(tmp_path):
    _, holed = _blocks()
    fitted = Autoencoder(code_dim=2, epochs=1, random_state=0, missing=True).fit(holed)
    folder = fitted.save(tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config["format_version"] = 3  # written before hide_pattern: no such parameter or field
    del config["estimator"]["hide_pattern"], config["model"]["hide_pattern"]
    (folder / "config.json").write_text(json.dumps(config))
    loaded = Autoencoder.load(folder)
    assert loaded.hide_pattern == "entries" and loaded.model_config_.hide_pattern == "entries"
    np.testing.assert_array_equal(loaded.reconstruct(holed), fitted.reconstruct(holed))


def test_the_imputer_hides_its_rows_holes_where_they_have_some():
    _, holed = _blocks()
    imputer = AutoencoderImputer(n_estimators=1, random_state=0).fit(holed)
    assert imputer.estimator_.model_config_.hide_pattern == "rows"
    complete = np.nan_to_num(holed)
    imputer = AutoencoderImputer(n_estimators=1, random_state=0).fit(complete)
    assert imputer.estimator_.model_config_.hide_pattern == "entries"  # nothing to copy


def test_rows_hiding_learns_to_fill_missing_blocks_better_than_random_entries():
    X, holed = _blocks(n=400, d=16, seed=3)
    hole = np.isnan(holed)
    errors = {}
    for pattern in ("entries", "rows"):
        ae = Autoencoder(
            code_dim=2, hidden=(64,), epochs=60, random_state=0, missing=True,
            hide_share=0.25, hide_pattern=pattern, patience=None, init="random",
        ).fit(holed)  # fmt: skip
        errors[pattern] = float(np.sqrt(np.mean((ae.reconstruct(holed) - X)[hole] ** 2)))
    assert errors["rows"] < 0.9 * errors["entries"], errors
