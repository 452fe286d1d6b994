"""A DataFrame with the fitted columns in another order is read by name; where the answer has
one unlabelled column per feature, it comes in the fitted order and an AekitWarning says so.

``pd.DataFrame(out, columns=X.columns)`` would otherwise mislabel every column without a word.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

from aekit import Autoencoder, AutoencoderImputer
from aekit.data.names import warn_of_fitted_order
from aekit.errors import AekitWarning, DataError
from aekit.sae import SparseAutoencoder
from tests.helpers import FAST

NAMES = ["a", "b", "c", "d"]


def _said(fn, *args):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn(*args)
    return caught


@pytest.mark.parametrize(
    ("columns", "fitted", "warns"),
    [
        (["d", "b", "c", "a"], NAMES, True),
        ([3, 1, 2, 0], [0, 1, 2, 3], True),
        (NAMES, NAMES, False),  # the fitted order
        (["a", "b", "c", "z"], NAMES, False),  # other names: the input check refuses them
        (["a", "b", "c"], NAMES, False),
        ([True, False], [0, 1], False),  # bools are not integer labels
        (["1", "0"], [0, 1], False),
        (["b", "a"], None, False),  # fitted on rows without names
    ],
)
def test_only_the_same_labels_in_another_order_are_warned_of(columns, fitted, warns):
    X = pd.DataFrame(np.zeros((2, len(columns))), columns=columns)
    caught = _said(warn_of_fitted_order, X, fitted, "reconstruct")
    assert len(caught) == int(warns)
    if warns:
        assert caught[0].category is AekitWarning
        assert "reconstruct returns its columns in the fitted order" in str(caught[0].message)
    assert _said(warn_of_fitted_order, X.to_numpy(), fitted, "reconstruct") == []


def test_the_warning_points_at_the_users_line():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(120, 4)) * [1, 10, 100, 1000], columns=NAMES)
    ae = Autoencoder(code_dim=2, **FAST).fit(frame)
    reordered = frame[NAMES[::-1]]
    caught = _said(ae.reconstruct, reordered)
    assert len(caught) == 1 and caught[0].filename == __file__
    want = ae.reconstruct(frame)
    with pytest.warns(AekitWarning):
        out = ae.reconstruct(reordered)
    got = pd.DataFrame(out, columns=ae.feature_names_in_)[NAMES]
    np.testing.assert_array_equal(got.to_numpy(), want)  # labelled as the warning says: right


def test_a_sparse_autoencoders_reconstruction_is_warned_of():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(256, 8)), columns=list("abcdefgh"))
    sae = SparseAutoencoder(code_dim=16, k=2, batch_size=32, n_epochs=1, device="cpu")
    sae.fit(frame)
    reordered = frame[list("hgfedcba")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = sae.reconstruct(reordered)
    assert len(caught) == 1 and caught[0].category is AekitWarning
    assert caught[0].filename == __file__  # through torch.no_grad's wrapper
    np.testing.assert_array_equal(out, sae.reconstruct(frame))
    assert _said(sae.transform, reordered) == []  # codes have no feature columns


def test_an_imputer_graphs_fill_is_warned_of(tmp_path):
    pytest.importorskip("onnxruntime")
    from aekit.export import OnnxModel, to_onnx

    rng = np.random.default_rng(2)
    frame = pd.DataFrame(rng.normal(size=(150, 4)), columns=NAMES)
    holes = frame.mask(rng.random(frame.shape) < 0.1)
    imputer = AutoencoderImputer(Autoencoder(code_dim=2, **FAST), n_estimators=1).fit(holes)
    graph = OnnxModel(to_onnx(imputer, tmp_path / "imp.onnx"))
    reordered = holes[NAMES[::-1]]
    with pytest.warns(AekitWarning, match="run's 'filled' returns its columns in the fitted"):
        filled = graph.run(reordered)["filled"]
    np.testing.assert_array_equal(filled, graph.run(holes)["filled"])
    model = Autoencoder(code_dim=2, **FAST).fit(frame)
    scores = OnnxModel(to_onnx(model, tmp_path / "m.onnx"))
    assert _said(scores.run, frame[NAMES[::-1]]) == []  # four outputs, scores among them


def test_a_model_fitted_on_a_named_file_takes_frames_by_those_names(tmp_path):
    # fitted on a path, it forgot the file's names: a reordered frame was read by position
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(80, 3)) * [1, 10, 100], columns=list("abc"))
    frame.to_csv(tmp_path / "x.csv", index=False)
    ae = Autoencoder(code_dim=1, epochs=2, random_state=0, device="cpu").fit(tmp_path / "x.csv")
    assert list(ae.feature_names_in_) == ["a", "b", "c"]
    np.testing.assert_array_equal(ae.transform(frame), ae.transform(frame[["c", "b", "a"]]))
    with pytest.raises(DataError, match="unseen at fit time"):
        ae.transform(frame.set_axis(list("xyz"), axis=1))
