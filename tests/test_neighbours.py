"""The detector's neighbour term: distances to the nearest training rows, as saved and exported."""

import json

import numpy as np
import pytest
import torch
from sklearn.datasets import load_wine
from sklearn.neighbors import NearestNeighbors

from aekit import Autoencoder, AutoencoderOutlierDetector
from aekit.anomaly.scorer import NEIGHBOURS
from tests.helpers import FAST


@pytest.fixture(scope="module")
def wine():
    return load_wine().data


def fitted(X, **params):
    return AutoencoderOutlierDetector(Autoencoder(code_dim=2, **FAST), **params).fit(X)


def test_tables_get_the_neighbour_term_images_do_not(wine):
    det = fitted(wine)
    assert det.scorer_.term_names == ("residual", "code", "neighbour")
    assert det.scorer_.n_reference == len(wine)
    pixels = np.random.default_rng(0).random((60, 64))
    assert "neighbour" not in fitted(pixels).scorer_.term_names
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
