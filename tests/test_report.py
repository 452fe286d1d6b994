import base64
import io
import re

import numpy as np
import pytest
from matplotlib.image import imread

from aekit import Autoencoder, DataError
from aekit.analysis import pca_error_curve, pca_reconstruction, row_errors, split_indices
from aekit.analysis.report import build_report
from aekit.data.images import drawing_shape as infer_image_shape
from tests.helpers import FAST


def decoded_images(page: str) -> list[np.ndarray]:
    """Every embedded image of the page, decoded as a PNG (fails on anything else)."""
    blobs = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', page)
    return [imread(io.BytesIO(base64.b64decode(b, validate=True)), format="png") for b in blobs]


@pytest.fixture(scope="module")
def split(digits):
    return split_indices(len(digits[:400]), 0.25, random_state=0)


@pytest.fixture(scope="module")
def sparse_model(digits, split):
    train, _ = split
    return Autoencoder(code_dim=16, hidden=(32,), sparsity="topk", sparsity_k=3, **FAST).fit(
        digits[train]
    )


def test_report_images_decode_and_numbers_are_held_out(digits, split, sparse_model, tmp_path):
    X = digits[:400]
    train, test = split
    labels = np.arange(400) % 10
    report = build_report(sparse_model, X, labels=labels, holdout=test)
    page_path = report.write(tmp_path)
    page = page_path.read_text()
    images = decoded_images(page)
    titles = [s.title for s in report.sections]
    assert titles == [
        "Loss curves",
        "Autoencoder vs PCA",
        "Originals and reconstructions",
        "Map of the codes",
        "Error per feature",
        "Code activity",
    ]
    assert len(images) == len(titles) and all(
        img.ndim == 3 and img.shape[0] > 100 for img in images
    )
    assert "<script" not in page and "http" not in page.replace("http-equiv", "")
    s = report.summary
    assert s["n_test"] == 100 and "held-out" in s["measured_on"]
    expected_ae = row_errors(X[test], sparse_model.reconstruct(X[test])).mean()
    assert s["ae_error"] == pytest.approx(expected_ae)
    expected_pca = row_errors(X[test], pca_reconstruction(X[train], X[test], 16)).mean()
    assert s["pca_error"] == pytest.approx(expected_pca)
    assert s["sparsity"]["l0"] <= 3 and "dead code units" in report.facts
    assert (tmp_path / "summary.json").is_file()


def test_report_without_holdout_measures_all_rows(digits, sparse_model):
    X = digits[400:500]
    report = build_report(sparse_model, X, image_shape=None, notes=["other data"])
    assert report.summary["n_test"] == 100 and "same rows" in report.summary["measured_on"]
    assert "other data" in report.html()
    assert len(decoded_images(report.html())) == 6


def test_pca_error_curve_matches_refitting(digits):
    X_train, X_test = digits[:300], digits[300:400]
    ks, errors = pca_error_curve(X_train, X_test, 5)
    assert ks.tolist() == [1, 2, 3, 4, 5]
    for k in (1, 3, 5):
        direct = row_errors(X_test, pca_reconstruction(X_train, X_test, k)).mean()
        assert errors[k - 1] == pytest.approx(direct, rel=1e-9)
    assert np.all(np.diff(errors) < 0)


def test_image_shapes():
    assert infer_image_shape(784) == (28, 28) and infer_image_shape(64) == (8, 8)
    assert infer_image_shape(50) is None and infer_image_shape(64, None) is None
    assert infer_image_shape(50, (5, 10)) == (5, 10)
    with pytest.raises(DataError, match="4x4 has 16 pixels"):
        infer_image_shape(50, (4, 4))


def test_labels_must_match_rows(digits, sparse_model):
    with pytest.raises(DataError, match="3 labels for 10 rows"):
        build_report(sparse_model, digits[:10], labels=np.arange(3))


def test_a_report_draws_user_text_as_written_and_takes_many_text_labels(tmp_path):
    # "$" pairs in column names or labels started matplotlib's maths (a ParseSyntaxException
    # or garbled italics); more than 20 text labels, or None among texts, raised ValueError
    import pandas as pd

    rng = np.random.default_rng(0)
    names = ["cost_$_per_$_unit", "$x_1_2$", "$^$", "b", "c"]
    frame = pd.DataFrame(rng.normal(size=(150, 5)), columns=names)
    ae = Autoencoder(code_dim=2, **FAST).fit(frame)
    many = np.array([f"g{i % 25}" for i in range(150)])
    with_none = np.array([f"${i % 3}$" for i in range(150)], dtype=object)
    with_none[5] = None
    for labels in (many, with_none):
        page = build_report(ae, frame, labels=labels).html()
        assert len(decoded_images(page)) >= 3


def test_a_report_of_image_rows_with_holes_shows_pcas_reconstructions(digits, tmp_path):
    # PCA's reconstructions beside the examples raised "Input X contains NaN"
    rows = digits[:200].copy()
    rows[::3, 20] = np.nan
    ae = Autoencoder(code_dim=4, **FAST).fit(rows)
    page = build_report(ae, rows).html()
    assert "Originals and reconstructions" in page and len(decoded_images(page)) >= 3
    filled = pca_reconstruction(rows[:150], rows[150:], 4)
    assert np.isfinite(filled).all()
