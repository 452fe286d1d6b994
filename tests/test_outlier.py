import numpy as np
import pytest
import torch
from sklearn.datasets import load_wine
from sklearn.metrics import roc_auc_score
from sklearn.utils.estimator_checks import check_estimator

import aekit
from aekit import (
    Autoencoder,
    AutoencoderOutlierDetector,
    ConfigError,
    DataError,
    ModelFileError,
    NotFittedError,
)
from aekit.anomaly import is_detector, load_detector
from aekit.anomaly.detector import detector_batch_size, detector_code_dim, threshold_for
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
    scores = det.anomaly_score(with_outliers)
    assert np.allclose(det.score_samples(with_outliers), -scores)
    assert np.allclose(det.decision_function(with_outliers), det.threshold_ - scores)
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
    with pytest.raises(aekit.errors.DataError, match="no row with an observed value"):
        threshold_for(np.full(4, np.nan), 0.1)  # was numpy's IndexError


# -- the anomaly score (aekit 0.2): normalised terms, defaults, ensembles, saved detectors ---


@pytest.fixture(scope="module")
def wine_split():
    wine = load_wine()
    normal = wine.data[wine.target < 2]
    return (
        normal[::2],
        np.vstack([normal[1::2], wine.data[wine.target == 2]]),
        np.r_[np.zeros(len(normal[1::2])), np.ones((wine.target == 2).sum())],
    )


def test_default_code_size_grows_with_the_features():
    sizes = {d: detector_code_dim(d) for d in (1, 13, 30, 64, 784, 10_000)}
    assert sizes == {1: 1, 13: 1, 30: 3, 64: 8, 784: 16, 10_000: 16}


def test_default_batch_grows_on_long_tables(monkeypatch):
    # 256 where epochs="auto" keeps its 100 epochs: 20 batches of 256 after the validation
    # rows (10 %, at least 50): from 5,406 rows on
    sizes = {n: detector_batch_size(n) for n in (10, 2048, 5405, 5406, 30_000)}
    assert sizes == {10: 64, 2048: 64, 5405: 64, 5406: 256, 30_000: 256}
    fitted = []  # what fit hands the members: the rule at the training rows' count
    monkeypatch.setattr(
        "aekit.anomaly.detector.fit_members", lambda members, X: fitted.extend(members) or 1 / 0
    )
    for n, batch in ((300, 64), (6000, 256)):
        with pytest.raises(ZeroDivisionError):
            AutoencoderOutlierDetector(n_estimators=2).fit(np.zeros((n, 3)))
        assert [m.batch_size for m in fitted] == [batch, batch]
        fitted.clear()
    given = Autoencoder(code_dim=1, batch_size=32)  # a given autoencoder keeps its own
    with pytest.raises(ZeroDivisionError):
        AutoencoderOutlierDetector(given).fit(np.zeros((3000, 3)))
    assert [m.batch_size for m in fitted] == [32]


def test_defaults_weigh_every_column_fairly_on_wine(wine_split):
    # aekit 0.1 summed the error in original units: proline (hundreds) made 99.5 % of it and
    # class 2 scored below chance (AUROC 0.43).
    train, test, labels = wine_split
    det = AutoencoderOutlierDetector(random_state=0).fit(train)
    assert det.estimator_.model_config_.code_dim == 1  # 13 columns → 1 code unit
    assert det.estimator_.train_config_.loss == "mse"
    assert len(det.estimators_) == 1
    assert det.scorer_.image_shape is None and det.scorer_.code_term
    assert roc_auc_score(labels, det.anomaly_score(test)) > 0.95


def test_each_term_is_measured_in_iqrs_of_its_training_distribution(digits):
    det = AutoencoderOutlierDetector(
        Autoencoder(code_dim=4, **FAST),
        n_estimators=1,
        image_shape=None,
        code_term=False,
        neighbour_term=False,
    ).fit(digits[:300])
    scores = det.anomaly_score(digits[:300])
    q1, median, q3 = np.percentile(scores, [25, 50, 75])
    assert median == pytest.approx(0.0, abs=1e-5)
    assert q3 - q1 == pytest.approx(1.0, rel=1e-4)
    # one term, one autoencoder: the same order as the per-feature weighted residual
    weights = det.scorer_.feature_weight[0].numpy()
    ae = det.estimator_
    weighted = ((ae.scale_rows(ae.reconstruct(digits)) - ae.scale_rows(digits)) ** 2) @ weights
    assert np.corrcoef(weighted, det.anomaly_score(digits))[0, 1] > 0.9999


def test_image_rows_pool_their_residuals_and_tables_add_the_code_term(digits):
    ae = Autoencoder(code_dim=4, **FAST)
    images = AutoencoderOutlierDetector(ae, n_estimators=1).fit(digits[:200])
    assert images.scorer_.image_shape == (1, 8, 8) and not images.scorer_.code_term
    as_table = AutoencoderOutlierDetector(ae, n_estimators=1, image_shape=None).fit(digits[:200])
    assert as_table.scorer_.image_shape is None and as_table.scorer_.code_term
    given = AutoencoderOutlierDetector(ae, n_estimators=1, image_shape=(8, 8), code_term=True)
    given.fit(digits[:200])
    assert given.scorer_.image_shape == (1, 8, 8) and given.scorer_.code_term
    pooled, plain = images.anomaly_score(digits[:50]), as_table.anomaly_score(digits[:50])
    assert not np.allclose(pooled, plain)
    with pytest.raises(ConfigError, match="image_shape"):
        AutoencoderOutlierDetector(ae, image_shape=(7, 7)).fit(digits[:200])


def test_a_table_in_unit_range_with_a_square_width_is_not_an_image(digits):
    # min-max scaled, 16 columns were pooled as 4 x 4 pixels: scores tied to the column order
    from sklearn.preprocessing import MinMaxScaler

    from aekit.data.images import spatially_coherent

    rng = np.random.default_rng(0)
    X = MinMaxScaler().fit_transform(rng.normal(size=(200, 16)))
    order = rng.permutation(16)
    ae = Autoencoder(code_dim=4, **FAST)
    table = AutoencoderOutlierDetector(ae, n_estimators=1).fit(X)
    shuffled = AutoencoderOutlierDetector(ae, n_estimators=1).fit(X[:, order])
    assert table.scorer_.image_shape is None and table.scorer_.code_term
    np.testing.assert_allclose(table.anomaly_score(X), shuffled.anomaly_score(X[:, order]),
                               rtol=1e-4, atol=1e-5)  # fmt: skip
    assert spatially_coherent(digits[:200], (8, 8)) and not spatially_coherent(X, (4, 4))
    given = AutoencoderOutlierDetector(ae, n_estimators=1, image_shape=(4, 4)).fit(X)
    assert given.scorer_.image_shape == (1, 4, 4)  # a shape given is taken as given


def test_eight_bit_rows_stay_images(digits):
    pixels = np.round(digits[:200] * 255).astype(np.uint8)
    det = AutoencoderOutlierDetector(Autoencoder(code_dim=4, **FAST), n_estimators=1).fit(pixels)
    assert det.estimator_.scaling_ == "global_minmax"
    assert det.scorer_.image_shape == (1, 8, 8)


def test_an_ensemble_averages_its_members_scores(digits):
    X = digits[:300]
    det = AutoencoderOutlierDetector(Autoencoder(code_dim=4, **FAST), n_estimators=3).fit(X)
    seeds = [m.random_state for m in det.estimators_]
    assert seeds[0] == 0 and len(set(seeds)) == 3
    singles = [
        AutoencoderOutlierDetector(
            Autoencoder(code_dim=4, **{**FAST, "random_state": s}), n_estimators=1
        ).fit(X)
        for s in seeds
    ]
    mean = np.mean([s.anomaly_score(digits[300:400]) for s in singles], axis=0)
    np.testing.assert_allclose(det.anomaly_score(digits[300:400]), mean, rtol=1e-5, atol=1e-5)


def test_a_saved_detector_loads_with_the_same_scores(tmp_path, wine_split):
    train, test, _ = wine_split
    det = AutoencoderOutlierDetector(
        Autoencoder(code_dim=2, **FAST), n_estimators=2, contamination=0.1
    ).fit(train)
    folder = det.save(tmp_path / "det")
    assert is_detector(folder) and (folder / "members" / "1" / "config.json").is_file()
    back = load_detector(folder)
    np.testing.assert_array_equal(back.anomaly_score(test), det.anomaly_score(test))
    assert back.threshold_ == det.threshold_ and back.get_params()["contamination"] == 0.1
    np.testing.assert_array_equal(back.predict(test), det.predict(test))
    assert aekit.load(folder).n_features_in_ == 13  # still a model folder
    stats = folder / "detector.safetensors"
    stats.write_bytes(stats.read_bytes()[:-1] + b"!")
    with pytest.raises(ModelFileError, match="checksum"):
        load_detector(folder)
    with pytest.raises(ModelFileError, match="no detector"):
        load_detector(tmp_path)


def test_only_autoencoder_detectors_save():
    det = AutoencoderOutlierDetector(FixedErrors(), prefit=True).fit(np.arange(9.0)[:, None])
    with pytest.raises(ConfigError, match="Autoencoders"):
        det.save("unused")


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"n_estimators": 0}, "n_estimators must be an integer >= 1, got 0"),
        ({"code_term": "yes"}, "code_term='yes': expected True, False or 'auto'"),
        ({"neighbour_term": 1}, "neighbour_term=1: expected True, False or 'auto'"),
        ({"image_shape": 8}, "image_shape must be 'auto', None"),
        ({"contamination": 0.7}, r"contamination must be 'auto' or in \(0, 0.5\], got 0.7"),
        ({"prefit": "no"}, "prefit must be True or False"),
        ({"random_state": -1}, "random_state must be None, an integer >= 0 or a numpy"),
        ({"estimator": object()}, "estimator must be an Autoencoder"),
    ],
)
def test_bad_parameters_are_one_config_error_before_training(params, match):
    X = np.random.default_rng(0).normal(size=(30, 4))
    with pytest.raises(ConfigError, match=match):
        AutoencoderOutlierDetector(**params).fit(X)


def test_rows_with_many_copies_keep_the_neighbour_term_on_the_datas_scale():
    # most rows had 3+ exact copies: the neighbour term's IQR was 0, floored at 1e-6, and
    # every new row a hair away from the copies scored ~37,000 and was flagged
    rng = np.random.default_rng(1)
    X = np.random.default_rng(0).integers(0, 3, (300, 3)).astype(float)  # 27 distinct rows
    detector = AutoencoderOutlierDetector(
        Autoencoder(code_dim=1, epochs=3, random_state=0), contamination=0.05
    ).fit(X)
    near = rng.integers(0, 3, (200, 3)) + rng.normal(scale=0.02, size=(200, 3))
    assert (detector.predict(near) == -1).mean() < 0.2
    assert np.median(detector.anomaly_score(near)) < 5


def test_random_state_may_be_a_numpy_random_state(tmp_path):
    X = np.random.default_rng(0).normal(size=(40, 4))
    ae = Autoencoder(code_dim=2, **FAST)
    a = AutoencoderOutlierDetector(ae, random_state=np.random.RandomState(3)).fit(X)
    b = AutoencoderOutlierDetector(ae, random_state=np.random.RandomState(3)).fit(X)
    np.testing.assert_array_equal(a.anomaly_score(X), b.anomaly_score(X))
    a.save(tmp_path / "d")  # json's TypeError; saved as None, as an estimator's RandomState
    loaded = load_detector(tmp_path / "d")
    assert loaded.random_state is None
    np.testing.assert_array_equal(loaded.anomaly_score(X), a.anomaly_score(X))


def test_numpy_integers_are_parameters_like_ints_and_save(tmp_path):
    # GridSearchCV over np.arange hands np.int64: refused as "not an integer", or saved by
    # json as a TypeError after a successful fit
    from sklearn.model_selection import GridSearchCV

    X = np.random.default_rng(0).normal(size=(60, 4))
    grid = GridSearchCV(Autoencoder(epochs=2, random_state=0), {"code_dim": np.arange(1, 3)}, cv=2)
    assert grid.fit(X).best_params_["code_dim"] in (1, 2)
    numpy = {"code_dim": np.int64(2), "hidden": (np.int64(6),), "epochs": np.int64(2),
             "batch_size": np.int64(16), "random_state": np.int64(5)}  # fmt: skip
    ae = Autoencoder(device="cpu", **numpy).fit(X)
    python = {"code_dim": 2, "hidden": (6,), "epochs": 2, "batch_size": 16, "random_state": 5}
    np.testing.assert_array_equal(
        ae.transform(X), Autoencoder(device="cpu", **python).fit(X).transform(X)
    )
    ae.save(tmp_path / "m")
    assert aekit.load(tmp_path / "m").get_params()["random_state"] == 5
    detector = AutoencoderOutlierDetector(small_ae(), n_estimators=np.int64(2),
                                          random_state=np.int64(3)).fit(X)  # fmt: skip
    detector.save(tmp_path / "d")
    np.testing.assert_allclose(load_detector(tmp_path / "d").anomaly_score(X),
                               detector.anomaly_score(X), rtol=1e-6)  # fmt: skip


def test_prefit_takes_a_frame_by_the_estimators_column_names():
    # it took the columns by position: scores of another order differed by up to 3.7
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(80, 3)) * [1, 10, 100], columns=list("abc"))
    ae = small_ae().fit(frame)
    as_fitted = AutoencoderOutlierDetector(ae, prefit=True).fit(frame)
    reordered = AutoencoderOutlierDetector(ae, prefit=True).fit(frame[["c", "b", "a"]])
    assert list(reordered.feature_names_in_) == ["a", "b", "c"]
    np.testing.assert_array_equal(reordered.anomaly_score(frame), as_fitted.anomaly_score(frame))
    with pytest.raises(DataError, match=r"the prefit estimator was fitted on .*unseen at fit time"):
        AutoencoderOutlierDetector(ae, prefit=True).fit(frame.set_axis(list("xyz"), axis=1))
    # fitted on the array: the estimator's names still name the columns (its ONNX file read
    # a reordered frame by position, 296 of 300 rows flagged)
    by_position = AutoencoderOutlierDetector(ae, prefit=True).fit(frame.to_numpy())
    assert list(by_position.feature_names_in_) == ["a", "b", "c"]
    np.testing.assert_array_equal(by_position.anomaly_score(frame[["c", "b", "a"]]),
                                  as_fitted.anomaly_score(frame))  # fmt: skip


def test_a_batch_of_rows_with_nothing_observed_scores_nan():
    # such a row scores NaN among others, but alone it was refused ("X has no observed value")
    X = np.random.default_rng(0).normal(size=(200, 4))
    detector = AutoencoderOutlierDetector(
        Autoencoder(code_dim=2, epochs=3, random_state=0), random_state=0
    ).fit(X)
    empty = np.full((2, 4), np.nan)
    assert np.isnan(detector.score_samples(empty)).all()
    assert (detector.predict(empty) == -1).all()
    with pytest.raises(DataError, match="no observed value"):  # nothing to fit on
        AutoencoderOutlierDetector(Autoencoder(code_dim=2, epochs=3)).fit(empty)
