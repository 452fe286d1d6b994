"""scikit-learn's low-rank recovery tests, adapted to AutoencoderImputer with their tolerances.

From ``sklearn/impute/tests/test_impute.py`` (``test_iterative_imputer_rank_one``,
``..._transform_recovery``, ``..._additive_matrix``): the same matrices, masks, splits and
``assert_allclose`` tolerances, with ``AutoencoderImputer()`` (its defaults) in place of
``IterativeImputer``. ``IterativeImputer`` recovers the hidden entries almost exactly.

With the validated blend (:mod:`aekit.impute.blend`: the autoencoders and a chain of
Bayesian ridge regressions, weighed on held-out observed cells) the rank-one matrix was
recovered while the chain's fill went unclipped; clipped to each column's observed range in
``fit`` (as every fill is, ``bounds_``) it misses 9 of the 2,500 entries, whose true values lie
below their column's lowest observed one (50 % of a 50-row column hidden). All four are marked
``xfail(strict=True)`` with the error measured on this branch (largest absolute error on the
hidden entries; the tolerance): a pass then fails the suite, so that the mark is removed. The
other three: fitted on its 35 or 50 rows alone the chain recovers
them (rank 3: 0.019, rank 5: 0.066, additive: 0.0098), but fitted with 10 % of the observed
cells held out it converges to a poor fill (additive: held-out RMSE 0.17 against the
autoencoders' 0.15), so the held-out cells weigh the chain at 1/2 or less and the blend misses.
Since the autoencoders hide other rows' holes in training (``hide_pattern="rows"``) the
additive matrix's worst entry is off by 1.847 (0.923 with random entries hidden), rank 3 and
5 by 0.531 and 0.787 (0.498, 0.773); with half as wide a code on these 50- and 70-column
rows (:func:`aekit.impute.code_width_for`) rank 3 by 0.492 and rank 5 by 0.886 (rank one
unchanged at 0.0817, the additive matrix's 10 columns keep their full code).
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from aekit import AutoencoderImputer

pytestmark = pytest.mark.slow  # five autoencoders each: 2 to 7 s


def _missed(error: float, atol: float) -> pytest.MarkDecorator:
    return pytest.mark.xfail(
        strict=True,
        reason=f"aekit's blended fill misses by up to {error} (atol {atol}); see the module "
        "docstring",
    )


@_missed(0.0817, 0.02)
def test_rank_one():
    rng = np.random.RandomState(0)
    d = 50
    A = rng.rand(d, 1)
    B = rng.rand(1, d)
    X = np.dot(A, B)
    nan_mask = rng.rand(d, d) < 0.5
    X_missing = X.copy()
    X_missing[nan_mask] = np.nan

    X_filled = AutoencoderImputer().fit_transform(X_missing)
    assert_allclose(X_filled, X, atol=0.02)


@pytest.mark.parametrize(
    "rank", [pytest.param(3, marks=_missed(0.492, 0.1)), pytest.param(5, marks=_missed(0.886, 0.1))]
)
def test_transform_recovery(rank):
    rng = np.random.RandomState(0)
    n = 70
    d = 70
    A = rng.rand(n, rank)
    B = rng.rand(rank, d)
    X_filled = np.dot(A, B)
    nan_mask = rng.rand(n, d) < 0.5
    X_missing = X_filled.copy()
    X_missing[nan_mask] = np.nan

    n = n // 2  # fit on one half, fill the other
    imputer = AutoencoderImputer().fit(X_missing[:n])
    assert_allclose(X_filled[n:], imputer.transform(X_missing[n:]), atol=0.1)


@_missed(1.847, 0.01)
def test_additive_matrix():
    rng = np.random.RandomState(0)
    n = 100
    d = 10
    A = rng.randn(n, d)
    B = rng.randn(n, d)
    X_filled = np.zeros(A.shape)
    for i in range(d):
        for j in range(d):
            X_filled[:, (i + j) % d] += (A[:, i] + B[:, j]) / 2
    nan_mask = rng.rand(n, d) < 0.25  # a quarter is missing
    X_missing = X_filled.copy()
    X_missing[nan_mask] = np.nan

    n = n // 2
    imputer = AutoencoderImputer().fit(X_missing[:n])
    assert_allclose(X_filled[n:], imputer.transform(X_missing[n:]), rtol=1e-3, atol=0.01)
