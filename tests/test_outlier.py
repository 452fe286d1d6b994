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
from tests.helpers import FAST


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


class FixedErrors:
    """A stand-in autoencoder, already fitted: a row's reconstruction error is its one value."""

    n_features_in_ = 1

    def fit(self, X, y=None):
        return self

    def reconstruction_error(self, X):
        return np.asarray(X, dtype=np.float64)[:, 0]


def detector_on(errors, contamination):
    rows = np.asarray(errors, dtype=np.float64)[:, None]
    return AutoencoderOutlierDetector(FixedErrors(), contamination=contamination, prefit=True).fit(
        rows
    )


def test_auto_is_tukeys_fence_on_errors_with_a_known_answer():
    # errors 1..9: Q1 = 3, Q3 = 7, so the fence is 7 + 1.5 · 4 = 13
    det = detector_on([1, 2, 3, 4, 5, 6, 7, 8, 9], "auto")
    assert det.threshold_ == 13.0
    assert list(det.predict(np.array([[12.9], [13.0], [13.1]]))) == [1, 1, -1]
    assert threshold_for(np.arange(1.0, 10.0)) == 13.0


@pytest.mark.parametrize("contamination", [0.01, 0.05, 0.1, 0.25, 0.5])
def test_contamination_flags_that_share_of_the_training_rows(contamination):
    errors = np.random.default_rng(0).exponential(size=400)  # distinct: no ties at the cut
    det = detector_on(errors, contamination)
    flagged = det.predict(errors[:, None]) == -1
    assert flagged.sum() == round(contamination * 400)
    assert errors[flagged].min() > errors[~flagged].max()  # the worst rows, nothing else


def test_auto_flags_the_noise_rows(with_outliers, fitted):
    det = AutoencoderOutlierDetector(fitted, prefit=True).fit(with_outliers)
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
