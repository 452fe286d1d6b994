"""The defaults on tabular data: the default autoencoder must not lose to PCA by more than 5%."""

import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.preprocessing import StandardScaler

from aekit.analysis import compare, split_rows


@pytest.mark.parametrize("loader", [load_diabetes, load_wine, load_breast_cancer])
def test_default_autoencoder_does_not_lose_to_pca_on_tabular_data(loader):
    X = StandardScaler().fit_transform(loader().data)
    train, test = split_rows(X, 0.25, random_state=0)
    result = compare(train, test, (2, 4), random_state=0, device="cpu")
    ratios = [row.ratio for row in result.rows]
    assert max(ratios) <= 1.05, ratios
