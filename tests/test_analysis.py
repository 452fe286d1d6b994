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


def test_compare_runs_both_models(digits):
    result = compare(digits[:300], digits[300:400], [2, 4], hidden=(32,), **FAST)
    assert [r.code_dim for r in result.rows] == [2, 4]
    assert all(r.ae_error > 0 and r.pca_error > 0 for r in result.rows)
    assert result.rows[1].pca_error < result.rows[0].pca_error
    assert "AE/PCA" in result.table()
    assert result.to_dict()["n_test"] == 100
