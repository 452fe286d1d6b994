"""The detector's nearest-row search: ties settled alike in every search and in ONNX."""

import numpy as np
import pytest
import torch

from aekit import Autoencoder, AutoencoderOutlierDetector
from aekit.anomaly import search
from tests.helpers import FAST


def by_distance_then_index(rows: np.ndarray, ref: np.ndarray, count: int) -> np.ndarray:
    squared = ((rows[:, None, :] - ref[None, :, :]) ** 2).sum(axis=2)
    index = np.broadcast_to(np.arange(len(ref)), squared.shape)
    return np.lexsort((index, squared), axis=1)[:, :count]


@pytest.mark.parametrize("features", [4, search.TREE_MAX_FEATURES + 4])  # tree, product
def test_tied_rows_are_taken_by_index_whatever_the_search(features):
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 3, (300, features)).astype(np.float32)  # many exact ties
    rows = rng.integers(0, 3, (200, features)).astype(np.float32)
    values, indices = search.nearest_squared(torch.from_numpy(rows), torch.from_numpy(ref), 11)
    want = by_distance_then_index(rows, ref, 11)
    np.testing.assert_array_equal(indices.numpy(), want)
    exact = ((rows[:, None, :] - ref[want]) ** 2).sum(axis=2)
    np.testing.assert_allclose(values.numpy(), exact, atol=1e-5)


def test_an_exported_detector_scores_tied_rows_as_python_does(tmp_path):
    # which of the tied rows counted came from the search (a k-d tree in Python, TopK in the
    # graph): scores up to 5 IQR units apart, and up to 29 of 300 rows flagged differently
    pytest.importorskip("onnxruntime")
    from aekit.export import OnnxModel, to_onnx

    rng = np.random.default_rng(2)
    train = rng.integers(0, 3, (200, 4)).astype(float)
    detector = AutoencoderOutlierDetector(
        Autoencoder(code_dim=2, **FAST), contamination=0.1, random_state=0
    ).fit(train)
    new = rng.integers(0, 3, (300, 4)).astype(float)
    model = OnnxModel(to_onnx(detector, tmp_path / "d.onnx"))
    got, want = model.run(new)["anomaly_score"], detector.anomaly_score(new)
    assert np.abs(got - want).max() < 0.01
    clear = np.abs(want - detector.threshold_) > 0.01  # (rows at the threshold may tip)
    np.testing.assert_array_equal(
        (got > model.threshold)[clear], (detector.predict(new) == -1)[clear]
    )
