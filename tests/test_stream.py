import pickle

import numpy as np
import pytest
import torch

from aekit import Autoencoder, DataError, DataTypeError
from aekit.stream import NpyRows, stream_stats

FAST = {"code_dim": 3, "hidden": (16,), "batch_size": 32, "random_state": 0, "device": "cpu"}


@pytest.fixture()
def table(tmp_path):
    X = np.random.default_rng(0).normal(size=(203, 12)).astype(np.float32)
    path = tmp_path / "rows.npy"
    np.save(path, X)
    return X, path


def test_take_reads_any_rows_exactly(table, tmp_path):
    X, path = table
    source = NpyRows(path, block_rows=7, window_blocks=2)
    assert (len(source), source.n_features) == (203, 12)
    idx = torch.from_numpy(np.random.default_rng(1).integers(0, 203, size=300))
    for part in idx.split(40):  # parts span more blocks than the cache holds
        np.testing.assert_array_equal(source.take(part).numpy(), X[part.numpy()])
    # other dtypes and byte orders are converted; images are flattened to rows
    images = np.random.default_rng(2).integers(0, 255, size=(20, 4, 5)).astype(">f8")
    np.save(tmp_path / "images.npy", images)
    other = NpyRows(tmp_path / "images.npy", block_rows=3)
    assert other.n_features == 20
    got = other.take(torch.arange(20)).numpy()
    np.testing.assert_array_equal(got, images.reshape(20, 20).astype(np.float32))
    with pytest.raises(DataError, match="out of range"):
        source.take(torch.tensor([203]))
    pickle.loads(pickle.dumps(source)).take(torch.tensor([0]))


def test_shuffle_is_a_seeded_permutation_mixing_a_few_blocks(table):
    _, path = table
    source = NpyRows(path, block_rows=10, window_blocks=3)
    rows = torch.arange(3, 200)
    orders = [source.shuffle(rows, torch.Generator().manual_seed(s)) for s in (5, 5, 6)]
    assert torch.equal(orders[0], orders[1]) and not torch.equal(orders[0], orders[2])
    assert torch.equal(orders[0].sort().values, rows)
    # the first 30 rows of the order come from at most 3 blocks (one window)
    assert len((orders[0][:25] // 10).unique()) <= 3


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.zeros(5, dtype=np.float32), "shape"),
        (np.asfortranarray(np.zeros((4, 3))), "Fortran"),
        (np.array([["a", "b"]]), "expected numbers"),
    ],
)
def test_unusable_files_are_clear_errors(tmp_path, array, match):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises((DataError, DataTypeError), match=match):
        NpyRows(path)


def test_truncated_or_foreign_files_are_clear_errors(table, tmp_path):
    _, path = table
    cut = tmp_path / "cut.npy"
    cut.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="truncated"):
        NpyRows(cut)
    text = tmp_path / "text.npy"
    text.write_text("hello")
    with pytest.raises(DataError, match="not a readable"):
        NpyRows(text)


def test_stream_stats_match_numpy_and_find_nan(table, tmp_path):
    X, path = table
    stats = stream_stats(NpyRows(path, block_rows=9), chunk_rows=50)
    np.testing.assert_allclose(stats["mean"], X.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats["std"], X.std(axis=0), rtol=1e-5)
    np.testing.assert_array_equal(stats["min"], X.min(axis=0))
    X[150, 3] = np.nan
    np.save(tmp_path / "nan.npy", X)
    with pytest.raises(DataError, match="row 150"):
        stream_stats(NpyRows(tmp_path / "nan.npy"), chunk_rows=64)


def test_fit_streams_a_npy_path(table):
    X, path = table
    streamed = Autoencoder(epochs=8, **FAST).fit(str(path))
    again = Autoencoder(epochs=8, **FAST).fit(NpyRows(path))
    in_memory = Autoencoder(epochs=8, **FAST).fit(X)
    assert streamed.n_features_in_ == 12 and streamed.scaling_ == "standardize"
    # same scaling as in memory; seeded, so the path and the source give the same model
    np.testing.assert_allclose(streamed.module_.offset, in_memory.module_.offset, atol=1e-6)
    np.testing.assert_allclose(streamed.module_.scale, in_memory.module_.scale, rtol=1e-5)
    np.testing.assert_array_equal(streamed.transform(X), again.transform(X))
    # a different batch order, but as good a model
    err = streamed.reconstruction_error(X).mean()
    assert err < 1.2 * in_memory.reconstruction_error(X).mean()
    assert streamed.history_.train_loss[-1] < streamed.history_.train_loss[0]


def test_partial_fit_continues_like_epochs_of_fit(digits):
    # partial_fit has no schedule: compare with a constant learning rate
    params = {**FAST, "val_fraction": 0.0, "patience": None, "lr_schedule": "constant"}
    incremental = Autoencoder(**params)
    for _ in range(2):
        incremental.partial_fit(digits[:500])
    fitted = Autoencoder(epochs=2, **params).fit(digits[:500])
    assert incremental.n_iter_ == 2
    for name, tensor in fitted.module_.state_dict().items():
        torch.testing.assert_close(incremental.module_.state_dict()[name], tensor)


def test_partial_fit_on_chunks_learns_and_checks_features(digits):
    ae = Autoencoder(**FAST)
    ae.partial_fit(digits[:300])
    first = ae.reconstruction_error(digits).mean()
    for _ in range(3):
        for chunk in np.array_split(digits, 6):
            ae.partial_fit(chunk)
    assert ae.n_iter_ == 19
    assert ae.reconstruction_error(digits).mean() < 0.8 * first
    with pytest.raises(DataError, match="64 features"):
        ae.partial_fit(digits[:, :10])
    ae = pickle.loads(pickle.dumps(ae))  # the optimiser is not pickled; training goes on
    ae.partial_fit(digits)
    assert ae.n_iter_ == 20
