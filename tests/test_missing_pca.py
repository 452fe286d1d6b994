"""Tables with holes start from the PCA they are measured against, and never end worse."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aekit import Autoencoder, AutoencoderImputer
from aekit.analysis import measure, split_indices
from aekit.config import TrainConfig


def _table(n=300, d=8, seed=0, rate=0.15):
    """Columns on different scales, a curved 2-D structure, and holes (some whole-column)."""
    rng = np.random.default_rng(seed)
    t = rng.normal(size=(n, 2))
    curved = np.hstack([t, t**2, np.sin(2 * t), t[:, :1] * t[:, 1:]])
    X = curved @ rng.normal(size=(7, d)) + 0.05 * rng.normal(size=(n, d))
    X = X * rng.uniform(0.1, 50.0, size=d) + rng.uniform(-100, 100, size=d)
    X[rng.random(X.shape) < rate] = np.nan
    X[: n // 3, 0] = np.nan  # a series that starts late, as a table of stock prices has
    return X


@pytest.mark.parametrize("scaling", ["standardize", "none"])  # "none": holes are not 0
def test_the_start_on_rows_with_holes_is_the_measured_pca(scaling):
    X = _table()
    train, test = split_indices(len(X), 0.25, 0)
    for k in (1, 3):
        # One epoch at a negligible learning rate: the fitted model is its start.
        ae = Autoencoder(code_dim=k, scaling=scaling, epochs=1, lr=1e-30, random_state=0)
        found = measure(ae.fit(X[train]), X[train], X[test])
        assert ae.model_config_.missing and ae.history_.best_epoch == 0
        np.testing.assert_allclose(found.ae_error, found.pca_error, rtol=2e-6)


def test_mask_indicators_encode_a_hole_as_its_column_mean():
    X = _table(n=120)
    ae = Autoencoder(code_dim=2, scaling="none", epochs=1, lr=1e-30, random_state=0).fit(X)
    weight, d = ae.module_.linear_encoder.weight.detach().double(), X.shape[1]
    fill = torch.from_numpy(np.nanmean(X, axis=0))  # "none": the scaled space is the raw one
    np.testing.assert_allclose(weight[:, d:], weight[:, :d] * fill, rtol=1e-5, atol=1e-6)
    assert weight[:, d:].abs().max() > 0.1  # (0 before: every hole read as 0)


def _prices(n=300, d=8, seed=0):
    """Three random walks seen through eight series, half of which start late (NaN before)."""
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.normal(size=(n, 3)), axis=0)
    X = walk @ rng.normal(size=(3, d)) + 0.3 * rng.normal(size=(n, d))
    X = X * rng.uniform(0.5, 20, size=d) + rng.uniform(50, 200, size=d)
    for j in range(d // 2):
        X[: rng.integers(n // 5, n // 2), j] = np.nan
    return X


def test_the_default_is_never_worse_than_pca_on_a_table_with_holes():
    X = _prices()  # (validated on rows with entries hidden, code 4 ended 2.2x PCA's error)
    for seed in (0, 1):
        train, test = split_indices(len(X), 0.2, seed)
        ae = Autoencoder(code_dim=4, random_state=seed).fit(X[train])
        assert measure(ae, X[train], X[test]).ratio <= 1.005


def test_validation_hides_entries_only_where_asked():
    assert not TrainConfig().val_hidden and not Autoencoder().val_hidden
    written = {k: v for k, v in TrainConfig().to_dict().items() if k != "val_hidden"}
    assert TrainConfig.from_dict(written).val_hidden  # older files validated so
    X = _table(n=120)
    imputer = AutoencoderImputer(Autoencoder(code_dim=2, epochs=2), n_estimators=1).fit(X)
    assert imputer.estimator_.val_hidden and imputer.estimator_.train_config_.val_hidden


def _with_categories(n=300, seed=0):
    """Numeric columns and two text columns, all functions of two latent factors, with holes."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    t = rng.normal(size=(n, 2))
    frame = pd.DataFrame(t @ rng.normal(size=(2, 4)) + 0.1 * rng.normal(size=(n, 4)))
    frame.columns = [f"x{j}" for j in range(4)]
    frame["kind"] = np.where(t[:, 0] > 0.3, "a", np.where(t[:, 0] < -0.3, "b", "c"))
    frame["side"] = np.where(t[:, 1] > 0, "left", "right")
    frame = frame.mask(rng.random(frame.shape) < 0.05)  # holes in every column
    return frame


def test_a_categorical_start_fits_its_softmax_to_the_measured_pca():
    from aekit.model.pca_start import BLOCK_SHARPNESS, sharpen_blocks_

    X = _with_categories()
    train, test = split_indices(len(X), 0.25, 0)
    for k in (2, 4):
        ae = Autoencoder(code_dim=k, epochs=1, lr=1e-30, random_state=0).fit(X.iloc[train])
        assert ae.model_config_.categorical_blocks and ae.history_.best_epoch == 0
        found = measure(ae, X.iloc[train], X.iloc[test])
        assert found.ratio <= 1.0  # the first-order softmax alone: 1.01 to 1.05 here
    rows = torch.from_numpy(ae.scale_rows(X.iloc[train])).float()
    assert set(sharpen_blocks_(ae.module_, rows)) <= set(BLOCK_SHARPNESS)
    assert sharpen_blocks_(Autoencoder(code_dim=2, epochs=1).fit(_table()).module_, rows) == ()


def test_an_old_model_folder_keeps_hidden_entry_validation(tmp_path):
    import json

    X = _table(n=120)
    folder = Autoencoder(code_dim=2, epochs=1, random_state=0).fit(X).save(tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config["format_version"] = 2  # written before val_hidden: no such parameter or field
    del config["estimator"]["val_hidden"], config["train"]["val_hidden"]
    (folder / "config.json").write_text(json.dumps(config))
    loaded = Autoencoder.load(folder)
    assert loaded.val_hidden and loaded.train_config_.val_hidden  # parameter and config agree


def test_a_checkpoint_validated_on_hidden_entries_does_not_resume_a_run_that_does_not(tmp_path):
    from aekit.errors import ModelFileError

    X = _table(n=120)
    params = {"code_dim": 2, "random_state": 0, "threads": 1, "lr_schedule": "constant"}
    Autoencoder(**params, epochs=2, val_hidden=True, checkpoint_dir=str(tmp_path)).fit(X)
    checkpoint = sorted(tmp_path.glob("checkpoint-*.safetensors"))[0]
    with pytest.raises(ModelFileError, match="val_hidden=True"):
        Autoencoder(**params, epochs=3).fit(X, resume=checkpoint)
    resumed = Autoencoder(**params, epochs=3, val_hidden=True).fit(X, resume=checkpoint)
    assert resumed.n_iter_ == 3
