import numpy as np
import pytest
import torch
from sklearn.utils.estimator_checks import check_estimator

from aekit import (
    Autoencoder,
    AutoencoderOutlierDetector,
    ConfigError,
    DataError,
    NotFittedError,
)
from aekit.outlier import threshold_for

from .conftest import FAST


def small_ae(**kw):
    return Autoencoder(code_dim=1, hidden=(8,), epochs=3, batch_size=16, random_state=0,
                       device="cpu", **kw)  # fmt: skip


def test_check_estimator():
    results = check_estimator(
        AutoencoderOutlierDetector(small_ae(), contamination=0.1), on_fail=None
    )
    failed = [(r["check_name"], r["exception"]) for r in results if r["status"] == "failed"]
    assert not failed
    names = {r["check_name"] for r in results}
    assert {"check_outliers_train", "check_outliers_fit_predict"} <= names


@pytest.fixture(scope="module")
def with_outliers(digits):
    rng = np.random.default_rng(0)
    X = digits[:400].copy()
    X[:8] = rng.uniform(0, 1, size=(8, X.shape[1]))  # noise images: nothing like a digit
    return X


def test_flags_the_noise_rows(with_outliers):
    det = AutoencoderOutlierDetector(Autoencoder(code_dim=4, **FAST), contamination=0.02)
    labels = det.fit_predict(with_outliers)
    assert (labels == -1).sum() == 8
    assert set(np.flatnonzero(labels == -1)) == set(range(8))
    errors = det.reconstruction_error(with_outliers)
    assert np.allclose(det.score_samples(with_outliers), -errors)
    assert np.allclose(det.decision_function(with_outliers), det.threshold_ - errors)
    assert det.offset_ == -det.threshold_


@pytest.fixture(scope="module")
def fitted(with_outliers):
    return Autoencoder(code_dim=4, **FAST).fit(with_outliers)


def test_auto_is_tukeys_fence(with_outliers, fitted):
    det = AutoencoderOutlierDetector(fitted, prefit=True).fit(with_outliers)
    errors = det.reconstruction_error(with_outliers)
    q1, q3 = np.percentile(errors, [25, 75])
    assert det.threshold_ == pytest.approx(q3 + 1.5 * (q3 - q1))
    assert set(range(8)) <= set(np.flatnonzero(det.predict(with_outliers) == -1))


def test_prefit_keeps_the_weights(with_outliers, fitted):
    before = {k: v.clone() for k, v in fitted.module_.state_dict().items()}
    det = AutoencoderOutlierDetector(fitted, contamination=0.05, prefit=True).fit(with_outliers)
    assert det.estimator_ is fitted
    assert all(torch.equal(before[k], v) for k, v in fitted.module_.state_dict().items())
    assert (det.predict(with_outliers) == -1).sum() == 20
    with pytest.raises(NotFittedError):
        AutoencoderOutlierDetector(Autoencoder(), prefit=True).fit(with_outliers)
    with pytest.raises(DataError, match="features"):
        AutoencoderOutlierDetector(fitted, prefit=True).fit(with_outliers[:, :10])


def test_threshold_for_checks_contamination():
    errors = np.arange(101, dtype=float)
    assert threshold_for(errors, 0.1) == pytest.approx(90.0)
    with pytest.raises(ConfigError, match="contamination"):
        threshold_for(errors, 0.7)
