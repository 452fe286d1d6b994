import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import PCA

from aekit import Autoencoder
from aekit.analysis import (
    compare,
    measure,
    normalized_mse,
    pca_error_curve,
    principal_angles,
    row_errors,
    sparsity_stats,
)
from tests.helpers import FAST


def test_principal_angles_known_values():
    e = np.eye(3)
    assert np.allclose(principal_angles(e[:, :2], e[:, :2]), [0, 0], atol=1e-6)
    assert np.allclose(principal_angles(e[:, :1], e[:, 1:2]), [90])
    tilted = np.array([[1.0], [1.0], [0.0]])
    assert np.allclose(principal_angles(e[:, :1], tilted), [45])
    # invariant to the basis chosen for the same subspace
    mixed = e[:, :2] @ np.array([[2.0, 1.0], [1.0, 3.0]])
    assert principal_angles(e[:, :2], mixed).max() < 1e-5


def test_row_errors_and_normalized_mse():
    X = np.array([[0.0, 0.0], [2.0, 2.0]])
    assert np.allclose(row_errors(X, np.zeros_like(X)), [0, 8])
    assert normalized_mse(X, X) == 0
    assert normalized_mse(X, np.ones_like(X)) == pytest.approx(1.0)


def test_sparsity_stats():
    codes = np.array([[0.0, 1.0, 0.0], [0.0, 2.0, 3.0]])
    stats = sparsity_stats(codes)
    assert stats == {"l0": 1.5, "dead_units": 1, "dead_fraction": pytest.approx(1 / 3)}


def pca_error_by_svd(train, test, k):
    """Mean per-row squared error of the k-component PCA of ``train`` on ``test``, from an SVD."""
    mean = train.mean(axis=0)
    basis = np.linalg.svd(train - mean, full_matrices=False)[2][:k].T
    recon = (test - mean) @ basis @ basis.T + mean
    return float(((test - recon) ** 2).sum(axis=1).mean())


@pytest.mark.slow  # four fits on 300 digit images
def test_compare_measures_both_models_in_the_same_unit(digits):
    # Pixels in [0, 1] and no scaling: the model's scaled space is the original one, so the
    # errors below are the same numbers whichever of the two spaces compare measures in.
    train, test = digits[:300], digits[300:400]
    params = {"hidden": (32,), "scaling": "none", **FAST}
    result = compare(train, test, [2, 4], keep_models=True, **params)
    assert [r.code_dim for r in result.rows] == [2, 4]
    assert [m.code_dim for m in result.models] == [2, 4]
    for row, model in zip(result.rows, result.models, strict=True):
        assert model.n_features_in_ == 64 and row.epochs == model.n_iter_
        assert row.pca_error == pytest.approx(pca_error_by_svd(train, test, row.code_dim), rel=1e-6)
        ae_error = ((test - model.reconstruct(test)) ** 2).sum(axis=1).mean()
        assert row.ae_error == pytest.approx(ae_error, rel=1e-6)
        assert row.ratio == pytest.approx(row.ae_error / row.pca_error, rel=1e-12)
    assert "AE/PCA" in result.table()
    assert result.to_dict()["n_test"] == 100 and result.to_dict()["n_train"] == 300
    assert compare(train, test, [2], **params).models == []  # kept only when asked


def _table_with_holes(n=300, seed=0):
    """3 numeric columns and a 4-category column (from the first two), missing in ~30% of rows."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    kind = np.array(list("abcd"), dtype=object)[(x[:, 0] > 0) * 2 + (x[:, 1] > 0)]
    df = pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "x2": x[:, 2], "kind": kind})
    df["kind"] = df["kind"].where(rng.random(n) > 0.3)  # a missing category: the block NaN
    return df


def test_measure_against_pca_with_holes():
    # PCA is measured in the autoencoder's unit: observed entries, times n_columns /
    # n_observed_columns, a categorical column (its one-hot block) counting as ONE column.
    df = _table_with_holes()
    train, test = df.iloc[:240], df.iloc[240:]
    model = Autoencoder(code_dim=2, hidden=(8,), categorical_features=["kind"], **FAST).fit(train)
    assert model.model_config_.categorical_blocks == ((3, 7),)
    found = measure(model, train, test)

    scaled_train, scaled_test = model.scale_rows(train), model.scale_rows(test)
    assert np.isnan(scaled_test[:, 3:7]).all(axis=1).any()  # some rows miss their category
    means = np.nanmean(scaled_train, axis=0)
    pca = PCA(n_components=2).fit(np.where(np.isnan(scaled_train), means, scaled_train))
    filled = np.where(np.isnan(scaled_test), means, scaled_test)
    recon = pca.inverse_transform(pca.transform(filled))
    squared = np.where(np.isnan(scaled_test), 0.0, scaled_test - recon) ** 2
    observed = np.hstack([~np.isnan(scaled_test[:, :3]), ~np.isnan(scaled_test[:, 3:4])])
    by_hand = (squared.sum(axis=1) * 4 / observed.sum(axis=1)).mean()  # 4 columns in the table
    assert found.pca_error == pytest.approx(by_hand, rel=1e-9)
    assert found.ae_error == pytest.approx(model.reconstruction_error(test).mean(), rel=1e-12)
    assert found.ratio == pytest.approx(found.ae_error / by_hand, rel=1e-9)
    assert found.n_train == 240 and found.n_test == 60


def test_pca_error_curve_counts_a_group_once():
    # One row, columns 1-3 one group: with column 0 missing, its error over the observed
    # entries is rescaled by 2 groups / 1 observed group, not 4 columns / 3 observed.
    train = np.array([[0.0, 1.0, 0.0, 0.0], [2.0, 0.0, 1.0, 0.0], [4.0, 0.0, 0.0, 1.0]])
    test = np.array([[np.nan, 1.0, 1.0, 0.0]])
    _, plain = pca_error_curve(train, test, 1)
    _, grouped = pca_error_curve(train, test, 1, groups=(0, 1, 1, 1))
    assert grouped[0] == pytest.approx(plain[0] * 2 / (4 / 3), rel=1e-12)
    _, complete = pca_error_curve(train, np.nan_to_num(test), 1, groups=(0, 1, 1, 1))
    _, ungrouped = pca_error_curve(train, np.nan_to_num(test), 1)
    assert complete == pytest.approx(ungrouped, rel=1e-12)  # complete rows: the plain sum


def test_a_held_out_row_with_no_observed_value_is_left_out_of_every_figure():
    # PCA's curve counted it as error 0 (the mean times 49/50); compare said 20 rows
    from aekit.analysis.measurement import compare, pca_error_curve

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 2)) @ rng.normal(size=(2, 5)) + 0.1 * rng.normal(size=(120, 5))
    train, test = X[:100], X[100:].copy()
    test[0] = np.nan
    np.testing.assert_allclose(pca_error_curve(train, test, 2)[1],
                               pca_error_curve(train, test[1:], 2)[1])  # fmt: skip
    found = compare(train, test, [2], epochs=2, random_state=0)
    assert found.n_test == 19 and "on 19 held-out rows" in found.table()
