"""The detector's neighbour term: distances to the nearest training rows, as saved and exported."""

import hashlib
import json

import numpy as np
import pytest
import torch
from sklearn.datasets import load_wine
from sklearn.neighbors import LocalOutlierFactor, NearestNeighbors

from aekit import Autoencoder, AutoencoderOutlierDetector, ModelFileError
from aekit.anomaly import detector_density_term
from aekit.anomaly.scorer import DENSITY_NEIGHBOURS, NEIGHBOURS, REACH_FLOOR_SHARE
from tests.helpers import FAST


@pytest.fixture(scope="module")
def wine():
    return load_wine().data


def fitted(X, **params):
    return AutoencoderOutlierDetector(Autoencoder(code_dim=2, **FAST), **params).fit(X)


def test_tables_get_the_neighbour_term_images_do_not(wine, digits):
    det = fitted(wine)
    assert det.scorer_.term_names == ("residual", "code", "neighbour")  # 13 columns: no density
    assert det.scorer_.n_reference == len(wine)
    assert "neighbour" not in fitted(digits[:60]).scorer_.term_names
    noise = np.random.default_rng(0).random((60, 64))  # in [0, 1], 8 x 8, but no picture
    assert "neighbour" in fitted(noise).scorer_.term_names
    assert "neighbour" not in fitted(wine, neighbour_term=False).scorer_.term_names


def test_a_training_row_leaves_itself_out_a_new_row_does_not(wine):
    det = fitted(wine)
    scaled = det.estimator_.scale_rows(wine)
    nn = NearestNeighbors(n_neighbors=NEIGHBOURS + 1).fit(scaled)
    distances = nn.kneighbors(scaled)[0]
    expected_train = distances[:, 1:].mean(axis=1)  # the row itself (distance 0) skipped
    with torch.no_grad():
        got = det.scorer_.neighbour_distance(torch.as_tensor(scaled, dtype=torch.float32))
    np.testing.assert_allclose(got.numpy(), expected_train, rtol=1e-3, atol=1e-3)
    shifted = scaled + 0.5  # new rows: their nearest training rows all count
    with torch.no_grad():
        new = det.scorer_.neighbour_distance(torch.as_tensor(shifted, dtype=torch.float32))
    expected_new = nn.kneighbors(shifted, n_neighbors=NEIGHBOURS)[0].mean(axis=1)
    np.testing.assert_allclose(new.numpy(), expected_new, rtol=1e-3, atol=1e-3)


def test_the_threshold_flags_the_contamination_share_of_the_training_rows(wine):
    det = fitted(wine, contamination=0.1)
    flagged = (det.predict(wine) == -1).mean()
    assert flagged == pytest.approx(0.1, abs=0.02)


def test_a_far_row_scores_above_every_training_row(wine):
    det = fitted(wine)
    far = wine[:1] + 10 * wine.std(axis=0)
    assert det.anomaly_score(far)[0] > det.anomaly_score(wine).max()


def test_saved_with_its_neighbours_and_loaded_alike(wine, tmp_path):
    det = fitted(wine)
    det.save(tmp_path / "d")
    meta = json.loads((tmp_path / "d" / "detector.json").read_text())
    assert meta["n_reference"] == len(wine) and meta["params"]["neighbour_term"] == "auto"
    again = AutoencoderOutlierDetector.load(tmp_path / "d")
    np.testing.assert_array_equal(again.anomaly_score(wine), det.anomaly_score(wine))


def test_a_detector_folder_of_format_1_loads_without_the_neighbour_term(wine, tmp_path):
    det = fitted(wine, neighbour_term=False)
    det.save(tmp_path / "d")
    path = tmp_path / "d" / "detector.json"
    meta = json.loads(path.read_text())
    del meta["n_reference"], meta["params"]["neighbour_term"]  # as format 1 wrote it
    meta["format_version"] = 1
    path.write_text(json.dumps(meta))
    again = AutoencoderOutlierDetector.load(tmp_path / "d")
    assert again.neighbour_term is False and again.scorer_.n_reference == 0
    np.testing.assert_array_equal(again.anomaly_score(wine), det.anomaly_score(wine))


def test_narrow_tables_get_the_density_term_by_the_width_rule(wine):
    assert detector_density_term(8) and not detector_density_term(9)
    narrow = fitted(wine[:, :8])
    assert narrow.scorer_.term_names == ("residual", "code", "neighbour", "density")
    assert narrow.scorer_.term_weights()[-1] == 1.0
    assert "density" not in fitted(wine[:, :8], density_term=False).scorer_.term_names
    assert "density" in fitted(wine, density_term=True).scorer_.term_names
    # the density term lives among the neighbours: without them there is none
    assert "density" not in fitted(wine[:, :8], neighbour_term=False).scorer_.term_names


def test_the_density_term_is_scikit_learns_local_outlier_factor(wine):
    det = fitted(wine[:, :6])
    scaled = det.estimator_.scale_rows(wine[:, :6])
    lof = LocalOutlierFactor(n_neighbors=DENSITY_NEIGHBOURS, novelty=True).fit(scaled)
    shifted = scaled + 0.3
    with torch.no_grad():
        train = det.scorer_.local_outlier_factor(torch.as_tensor(scaled, dtype=torch.float32))
        new = det.scorer_.local_outlier_factor(torch.as_tensor(shifted, dtype=torch.float32))
    # training rows leave themselves out, as scikit-learn's negative_outlier_factor_ does
    np.testing.assert_allclose(train.numpy(), -lof.negative_outlier_factor_, rtol=1e-4)
    np.testing.assert_allclose(new.numpy(), -lof.score_samples(shifted), rtol=1e-4)


def test_a_row_in_a_gap_between_two_dense_clusters_scores_high_by_density():
    rng = np.random.default_rng(0)
    tight = rng.normal(0, 0.05, (100, 3))
    loose = rng.normal(0, 1.0, (100, 3)) + np.array([6.0, 0.0, 0.0])
    X = np.vstack([tight, loose])
    det = AutoencoderOutlierDetector(Autoencoder(code_dim=1, **FAST)).fit(X)
    assert "density" in det.scorer_.term_names  # 3 columns: a narrow table
    beside_tight = np.array(
        [[0.6, 0.0, 0.0]]
    )  # as far from the tight cluster as loose rows are apart
    with torch.no_grad():
        scaled = torch.as_tensor(det.estimator_.scale_rows(beside_tight), dtype=torch.float32)
        factor = det.scorer_.local_outlier_factor(scaled)
    assert factor.item() > 3  # ordinary rows are near 1


def test_a_detector_folder_of_format_2_loads_without_the_density_term(wine, tmp_path):
    det = fitted(wine[:, :6], density_term=False)
    det.save(tmp_path / "d")
    path = tmp_path / "d" / "detector.json"
    meta = json.loads(path.read_text())
    assert meta["format_version"] == 5 and meta["density_term"] is False
    del meta["density_term"], meta["params"]["density_term"]  # as format 2 wrote it
    meta["format_version"] = 2
    path.write_text(json.dumps(meta))
    again = AutoencoderOutlierDetector.load(tmp_path / "d")
    assert again.density_term is False and "density" not in again.scorer_.term_names
    np.testing.assert_array_equal(again.anomaly_score(wine[:, :6]), det.anomaly_score(wine[:, :6]))


def test_saved_with_its_density_term_and_loaded_alike(wine, tmp_path):
    det = fitted(wine[:, :6])
    det.save(tmp_path / "d")
    again = AutoencoderOutlierDetector.load(tmp_path / "d")
    assert again.scorer_.term_names == det.scorer_.term_names
    np.testing.assert_array_equal(again.anomaly_score(wine[:, :6]), det.anomaly_score(wine[:, :6]))


def test_a_row_beside_a_repeated_row_is_not_flagged_an_outlier_still_is():
    # 20 copies of one row: each copy's k-distance is 0, its density unbounded without a
    # floor, and a row 0.05 away scored about 1e9 (flagged) before the floor
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    X = np.vstack([X, np.repeat(X[:1], 20, axis=0)])
    det = AutoencoderOutlierDetector(Autoencoder(code_dim=1, epochs=3, random_state=0)).fit(X)
    assert "density" in det.scorer_.term_names
    near, far = X[:1] + 0.025, np.full((1, 4), 4.0)  # 0.05 away; an obvious outlier
    scores = det.anomaly_score(np.vstack([near, far]))
    assert scores[0] < det.threshold_ < scores[1]
    assert abs(scores[0]) < 10 and np.isfinite(det.anomaly_score(X)).all()
    np.testing.assert_array_equal(det.predict(np.vstack([near, far])), [1, -1])
    reach = det.scorer_.reference_reach
    positive = reach[reach > reach.min()]  # the copies sit at the floor
    floor = REACH_FLOOR_SHARE * float(positive.median())
    assert float(reach.min()) == pytest.approx(floor, rel=0.05)


def test_a_detector_file_with_a_lone_neighbour_is_refused(wine, tmp_path):
    from safetensors.torch import load_file, save_file

    det = fitted(wine[:, :6], density_term=False)  # (the density term needs two rows)
    det.save(tmp_path / "d")
    stats_path = tmp_path / "d" / "detector.safetensors"
    stats = load_file(stats_path)
    stats["reference"] = stats["reference"][:1].contiguous()  # keep one row
    save_file(stats, stats_path)
    path = tmp_path / "d" / "detector.json"
    meta = json.loads(path.read_text())
    meta["n_reference"] = 1  # consistent and checksummed: a row equal to it had no neighbour
    meta["stats_sha256"] = hashlib.sha256(stats_path.read_bytes()).hexdigest()
    path.write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="n_reference must be 0 or an int in"):
        AutoencoderOutlierDetector.load(tmp_path / "d")
