import numpy as np
import pytest

from aekit.analysis import compare, normalized_mse, principal_angles, row_errors, sparsity_stats
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
