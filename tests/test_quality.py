"""The defaults on tabular data: the autoencoder must not lose to PCA by more than 5%."""

import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.preprocessing import StandardScaler

from aekit.analysis import compare, split_rows


def _ratios(loader, **params) -> list[float]:
    """AE / PCA held-out error at codes 2 and 4, one 75/25 split of the standardized table."""
    X = StandardScaler().fit_transform(loader().data)
    train, test = split_rows(X, 0.25, random_state=0)
    result = compare(train, test, (2, 4), random_state=0, device="cpu", **params)
    return [row.ratio for row in result.rows]


@pytest.mark.parametrize("loader", [load_diabetes, load_wine, load_breast_cancer])
def test_the_pca_start_does_not_lose_to_pca_on_tabular_data(loader):
    ratios = _ratios(loader, init="pca")  # its improvement_z guard keeps PCA's solution
    assert max(ratios) <= 1.05, ratios


@pytest.mark.parametrize("loader", [
    load_diabetes,
    pytest.param(load_wine, marks=pytest.mark.xfail(strict=True, reason=(
        "a known miss of the default (init='auto'): at code 2 the cross-fit over the 133 "
        "training rows finds the random start 11 % better than PCA's solution (3.6 standard "
        "errors, better in each of the 5 folds), and the final fit from it is 1.059 x PCA "
        "on these 45 held-out rows (seeds 1 and 2 of the same split: PCA's start kept, 1.000)"
    ))),
    load_breast_cancer,
])  # fmt: skip
def test_default_autoencoder_does_not_lose_to_pca_on_tabular_data(loader):
    ratios = _ratios(loader)
    assert max(ratios) <= 1.05, ratios
