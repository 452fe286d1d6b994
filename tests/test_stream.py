import pickle
import sys

import numpy as np
import pytest
import torch

from aekit import Autoencoder, DataError, DataTypeError
from aekit.data.stream import NpyRows, ParquetRows, stream_stats
from aekit.training import Callback

FAST = {"code_dim": 3, "hidden": (16,), "batch_size": 32, "random_state": 0, "device": "cpu"}


class InterruptAt(Callback):
    """Raise KeyboardInterrupt as Ctrl-C would, after a chosen global step."""

    def __init__(self, step):
        self.step = step

    def on_batch_end(self, trainer, batch, n_batches):
        if trainer.step == self.step:
            raise KeyboardInterrupt


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


@pytest.mark.parametrize("kind", ["npy", "parquet"])
def test_a_pickled_source_reads_the_same_rows_without_its_file_or_buffers(table, tmp_path, kind):
    X, path = table
    if kind == "npy":
        source = NpyRows(path, block_rows=7, window_blocks=2)
    else:
        source = ParquetRows(write_parquet(tmp_path / "rows.parquet", X, 17), window_blocks=2)
    rows = torch.tensor([5, 200, 0, 101])
    source.take(rows)
    opened = "_handle" if kind == "npy" else "_file"
    assert getattr(source, opened) is not None and source._buffer is not None
    state = source.__getstate__()
    assert state[opened] is None and state["_buffer"] is None
    data = pickle.dumps(source)
    assert len(data) < X.nbytes // 4  # the buffers (and rows) stay behind
    again = pickle.loads(data)
    np.testing.assert_array_equal(again.take(rows).numpy(), X[rows.numpy()])
    np.testing.assert_array_equal(source.take(rows).numpy(), X[rows.numpy()])  # still open
    again.close()
    source.close()


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


def test_stream_stats_match_numpy_and_find_infinity(table, tmp_path):
    X, path = table
    stats = stream_stats(NpyRows(path, block_rows=9), chunk_rows=50)
    np.testing.assert_allclose(stats["mean"], X.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats["std"], X.std(axis=0), rtol=1e-5)
    np.testing.assert_array_equal(stats["min"], X.min(axis=0))
    X[150, 3] = np.inf
    np.save(tmp_path / "inf.npy", X)
    with pytest.raises(DataError, match=r"inf\.npy contains infinity \(first at row 150, col"):
        stream_stats(NpyRows(tmp_path / "inf.npy"), chunk_rows=64)


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
    ae = Autoencoder(**FAST, init="random")  # learning from scratch: a PCA start is half-way
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


def test_partial_fit_after_fit_numbers_its_passes_on_and_holds_the_last(digits):
    ae = Autoencoder(**{**FAST, "epochs": 3, "init": "random"}).fit(digits[:300])
    assert ae.history_.best_epoch is not None  # validated: fit kept one of its epochs
    ae.partial_fit(digits[300:600])
    ae = pickle.loads(pickle.dumps(ae))  # a fresh optimiser numbers on too
    ae.partial_fit(digits[600:900])
    assert [r["epoch"] for r in ae.history_.records] == [1, 2, 3, 4, 5]  # was 1, 2, 3, 1, 1
    assert ae.history_.best_epoch == 5  # the weights held are the last pass's, not fit's pick


# -- parquet ------------------------------------------------------------------------------
def write_parquet(path, X, group_rows, **extra):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    columns = {f"x{i}": X[:, i] for i in range(X.shape[1])} | extra
    pq.write_table(pa.table(columns), path, row_group_size=group_rows)
    return path


@pytest.fixture()
def parquet(table, tmp_path):
    X, _ = table
    names = np.array([f"row{i}" for i in range(len(X))])
    return X, write_parquet(tmp_path / "rows.parquet", X, 17, name=names)


def test_parquet_rows_read_picked_columns_exactly(parquet):
    X, path = parquet
    source = ParquetRows(path, label_column="name", window_blocks=2)
    assert (len(source), source.n_features, source.n_blocks) == (203, 12, 12)
    idx = torch.from_numpy(np.random.default_rng(1).integers(0, 203, size=300))
    for part in idx.split(40):  # parts span more row groups than the buffer holds
        np.testing.assert_array_equal(source.take(part).numpy(), X[part.numpy()])
    picked = ParquetRows(path, columns=["x3", 0])
    np.testing.assert_array_equal(picked.take(torch.arange(203)).numpy(), X[:, [3, 0]])


def test_parquet_shuffle_visits_every_row_once_mixing_a_few_row_groups(parquet):
    _, path = parquet
    source = ParquetRows(path, label_column="name", window_blocks=3)
    rows = torch.arange(3, 200)
    orders = [source.shuffle(rows, torch.Generator().manual_seed(s)) for s in (5, 5, 6)]
    assert torch.equal(orders[0], orders[1]) and not torch.equal(orders[0], orders[2])
    assert torch.equal(orders[0].sort().values, rows)
    assert len((orders[0][:40] // 17).unique()) <= 3  # the first window: 3 row groups


def test_parquet_buffer_follows_the_row_group_not_the_file(tmp_path):
    rng = np.random.default_rng(0)
    small = write_parquet(tmp_path / "small.parquet", rng.random((100, 5)), 10)
    large = write_parquet(tmp_path / "large.parquet", rng.random((2000, 5)), 10)
    shapes = []
    for path in (small, large):
        source = ParquetRows(path, window_blocks=2)
        source.shuffle(torch.arange(len(source)), torch.Generator().manual_seed(0))
        stream_stats(source, chunk_rows=64)
        shapes.append(tuple(source._buffer.shape))
    assert shapes == [(40, 5), (40, 5)]
    # the window shrinks to the memory bound; one row group over it is refused
    assert ParquetRows(large, max_buffer_bytes=10 * 5 * 4 * 2).window_blocks == 1
    with pytest.raises(DataError, match="smaller row groups"):
        ParquetRows(large, max_buffer_bytes=100)


def test_parquet_errors_are_one_clear_line(parquet, tmp_path, monkeypatch):
    X, path = parquet
    with pytest.raises(DataTypeError, match="column 'name' holds string"):
        ParquetRows(path)
    with pytest.raises(DataError, match="no column 'nope'"):
        ParquetRows(path, columns=["nope"])
    with pytest.raises(DataError, match="no such file"):
        ParquetRows(tmp_path / "missing.parquet")
    (tmp_path / "text.parquet").write_text("hello")
    with pytest.raises(DataError, match=r"cannot read .* as parquet"):
        ParquetRows(tmp_path / "text.parquet")
    X = X.astype(np.float64)
    X[150, 3] = np.inf
    inf = write_parquet(tmp_path / "inf.parquet", X, 17)
    with pytest.raises(DataError, match="row 150"):
        stream_stats(ParquetRows(inf), chunk_rows=64)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(DataError, match=r"pip install 'aekit\[parquet\]'"):
        ParquetRows(path)


def test_fit_and_partial_fit_stream_a_parquet_path(table, tmp_path):
    X, npy = table
    path = write_parquet(tmp_path / "rows.parquet", X, 40)
    streamed = Autoencoder(epochs=8, **FAST).fit(str(path))
    in_memory = Autoencoder(epochs=8, **FAST).fit(X)
    np.testing.assert_allclose(streamed.module_.offset, in_memory.module_.offset, atol=1e-6)
    np.testing.assert_allclose(streamed.module_.scale, in_memory.module_.scale, rtol=1e-5)
    # row groups of 40 rows read like .npy blocks of 40 rows: the very same run
    as_npy = Autoencoder(epochs=8, **FAST).fit(NpyRows(npy, block_rows=40))
    np.testing.assert_array_equal(streamed.transform(X), as_npy.transform(X))
    assert streamed.reconstruction_error(X).mean() < 1.2 * in_memory.reconstruction_error(X).mean()
    incremental = Autoencoder(**FAST).partial_fit(path).partial_fit(path)
    assert incremental.n_iter_ == 2 and incremental.n_features_in_ == 12
    with pytest.raises(DataTypeError, match="only fit and partial_fit take file paths"):
        streamed.transform(path)


def test_fit_on_parquet_resumes_exactly_after_ctrl_c(digits, tmp_path):
    from aekit.training.checkpoint import latest_checkpoint

    params = {**FAST, "epochs": 3, "batch_size": 64, "checkpoint_every_steps": 4}
    path = write_parquet(tmp_path / "digits.parquet", digits[:300], 50)
    reference = Autoencoder(**params).fit(path)
    folder = str(tmp_path / "ckpt")
    with pytest.raises(KeyboardInterrupt):
        Autoencoder(**params, checkpoint_dir=folder).fit(path, callbacks=(InterruptAt(step=6),))
    assert latest_checkpoint(folder) is not None
    resumed = Autoencoder(**params, checkpoint_dir=folder).fit(path, resume=True)
    assert np.array_equal(resumed.transform(digits), reference.transform(digits))
    assert resumed.history_.train_loss == reference.history_.train_loss


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_partial_fit_reads_a_named_file_by_the_fitted_column_names(tmp_path, suffix):
    import copy

    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(120, 4)) * [1, 10, 100, 1000], columns=list("abcd"))
    fitted = Autoencoder(epochs=1, **FAST).fit(frame)

    def written(name, table):
        path = tmp_path / (name + suffix)
        table.to_parquet(path, index=False) if suffix == ".parquet" else table.to_csv(
            path, index=False
        )
        return str(path)

    as_fitted = copy.deepcopy(fitted).partial_fit(written("same", frame))
    # before, the reordered file was trained on by position: other weights, no word
    reordered = copy.deepcopy(fitted).partial_fit(written("reversed", frame[list("dcba")]))
    np.testing.assert_allclose(reordered.transform(frame), as_fitted.transform(frame), rtol=1e-6)
    renamed = written("renamed", frame.rename(columns={"a": "z"}))
    with pytest.raises(DataError, match=r"renamed.* unseen at fit time: 'z'; missing: 'a'"):
        copy.deepcopy(fitted).partial_fit(renamed)


def test_the_detector_and_imputer_refuse_a_path_saying_so(tmp_path):
    """They take rows: a path was "non-numeric input: could not convert string to float"."""
    from aekit import AutoencoderImputer, AutoencoderOutlierDetector

    path = tmp_path / "rows.npy"
    np.save(path, np.zeros((10, 3), np.float32))
    for estimator in (AutoencoderOutlierDetector(), AutoencoderImputer()):
        for given in (path, str(path)):
            with pytest.raises(DataTypeError, match=r"got the path .*rows.npy': Autoencoder"):
                estimator.fit(given)
