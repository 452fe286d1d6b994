import re

import numpy as np
import pytest
import torch

from aekit import Autoencoder, DataError
from aekit.cli import main
from aekit.data.folders import ShardedRows, list_shards
from aekit.data.formats import can_stream, open_rows, read_table
from aekit.data.shares import deal
from aekit.training.prepare import batch_count
from tests.helpers import FAST, InterruptAt, write_parquet

# Uneven shards, given in an order that sorting by path changes ("part-10" < "part-9").
SIZES = {"part-9": 40, "part-10": 7, "part-11": 0, "part-2": 93, "part-30": 71}
ORDER = sorted(SIZES)


def _rows(n_features=6):
    return np.random.default_rng(0).normal(size=(sum(SIZES.values()), n_features)).astype("f4")


def _split(X):
    """The shards' rows in ORDER (the dataset's order)."""
    parts, start = {}, 0
    for name in ORDER:
        parts[name] = X[start : start + SIZES[name]]
        start += SIZES[name]
    return parts


@pytest.fixture()
def parquet_folder(tmp_path):
    """Spark's layout: hive partitions, _SUCCESS, _metadata, .crc files, a _temporary folder."""
    X = _rows()
    root = tmp_path / "data.parquet"  # Spark names its output folders like files
    for i, (name, part) in enumerate(_split(X).items()):
        folder = root / f"day={i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        write_parquet(folder / f"{name}.snappy.parquet", part, 10)
        (folder / f".{name}.snappy.parquet.crc").write_bytes(b"crc")
    (root / "_SUCCESS").write_bytes(b"")
    (root / "_metadata").write_bytes(b"not parquet")
    (root / "_temporary").mkdir()
    (root / "_temporary" / "junk.parquet").write_bytes(b"half written")
    # sorted paths: day=0/part-10, day=0/part-2, ..., so the dataset's order is by path
    files = list_shards(root)
    order = [f.name.split(".")[0] for f in files]
    parts = _split(X)
    return root, np.concatenate([parts[name] for name in order]), files


@pytest.fixture()
def npy_folder(tmp_path):
    X = _rows()
    root = tmp_path / "npy"
    root.mkdir()
    for name, part in _split(X).items():
        np.save(root / f"{name}.npy", part)
    return root, X


def test_a_parquet_folder_is_one_dataset_in_sorted_shard_order(parquet_folder):
    root, X, files = parquet_folder
    assert [f.parent.name for f in files] == ["day=0"] * 3 + ["day=1"] * 2
    source = open_rows(root)
    assert isinstance(source, ShardedRows) and len(source) == len(X) == 211
    assert source.columns == [f"x{i}" for i in range(6)]  # the partition key is no column
    assert len(source.shards) == 4  # the empty shard is skipped
    got = torch.cat([rows for _, rows in source.chunks()]).numpy()
    np.testing.assert_array_equal(got, X)
    assert source.bytes_read == source.block_bytes.sum() > 0
    np.testing.assert_array_equal(source.take(torch.tensor([210, 0, 47])).numpy(), X[[210, 0, 47]])
    np.testing.assert_array_equal(read_table(root).X, X)  # read whole, the same rows
    # a glob picks the shards itself (here one partition)
    day1 = str(root / "day=1" / "*.parquet")
    assert can_stream(day1) and len(open_rows(day1)) == len(read_table(day1).X)
    with pytest.raises(DataError, match="partition key"):
        ShardedRows(root, columns=["day", "x0"])


def test_a_npy_folder_is_one_dataset(npy_folder, tmp_path):
    root, X = npy_folder
    source = ShardedRows(root, block_rows=16)
    np.testing.assert_array_equal(torch.cat([r for _, r in source.chunks()]).numpy(), X)
    assert source.n_blocks == 3 + 1 + 6 + 5  # blocks of 16 rows never span two shards
    np.testing.assert_array_equal(read_table(root).X, X)
    np.testing.assert_array_equal(read_table(str(root / "part-[0-9]*.npy")).X, X)
    np.testing.assert_array_equal(read_table(root, columns=[0, 2]).X, X[:, [0, 2]])  # in memory
    with pytest.raises(DataError, match="no columns to pick"):
        ShardedRows(root, columns=[0, 2])  # streamed: every column
    with pytest.raises(DataError, match="matches no files"):
        read_table(str(root / "*.parquet"))


def test_an_infinity_in_a_folder_names_its_shard_and_row_there(npy_folder, tmp_path, capsys):
    root, _ = npy_folder
    files = list_shards(root)  # part-10 (7 rows), part-11 (0), part-2, ...
    rows = np.load(files[2])
    rows[4, 1] = np.inf
    np.save(files[2], rows)
    with pytest.raises(DataError, match=rf"^{re.escape(str(files[2]))}.* row 4\b"):
        Autoencoder(code_dim=2, **FAST).fit(ShardedRows(root))  # said the folder, row 4 + n
    assert main(["fit", str(root), "--code-dim", "2", "-o", str(tmp_path / "m")]) == 2
    assert f"{files[2]} contains infinity (first at row 4, column 1)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("dtype", r"shard .*part-9.npy does not match shard .*part-10.npy: .*float64"),
        ("shape", r"part-9.npy does not match .*rows of shape \(5,\)"),
        ("type", r"part-9.parquet does not match .*column 'x1' holds double, not float"),
        ("names", r"part-9.parquet does not match .*columns \['x5'\] missing and \['y'\] extra"),
        ("mixed", "mixes npy and parquet shards"),
        ("other", "notes.txt in the dataset .* is not a .parquet or .npy shard"),
    ],
)
def test_a_shard_that_does_not_match_is_one_error_naming_it(tmp_path, capsys, change, message):
    root = tmp_path / "data"
    root.mkdir()
    X = _rows()
    parts = _split(X)
    for name, part in parts.items():
        if change in ("dtype", "shape", "mixed", "other"):
            np.save(root / f"{name}.npy", part)
        else:
            write_parquet(root / f"{name}.parquet", part, 10)
    odd = parts["part-9"]
    if change == "dtype":
        np.save(root / "part-9.npy", odd.astype(np.float64))
    elif change == "shape":
        np.save(root / "part-9.npy", odd[:, :5])
    elif change == "type":
        write_parquet(root / "part-9.parquet", odd, 10, x1=odd[:, 1].astype(np.float64))
    elif change == "names":
        write_parquet(root / "part-9.parquet", odd[:, :5], 10, y=odd[:, 5])
    elif change == "mixed":
        write_parquet(root / "part-9.parquet", odd, 10)
    else:
        (root / "notes.txt").write_text("not data")
    with pytest.raises(DataError, match=message):
        read_table(root)
    with pytest.raises(DataError, match=message):
        Autoencoder(**FAST).fit(root)
    # the command line: one line, no traceback
    assert main(["fit", str(root), "--out", str(tmp_path / "model"), "--code-dim", "2"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and re.search(message, error), error


def test_cli_fits_a_folder_and_encodes_it_in_the_documented_order(parquet_folder, tmp_path):
    root, X, _ = parquet_folder
    model = tmp_path / "model"
    fit = ["fit", str(root), "--out", str(model), "--code-dim", "2", "--epochs", "2", "--quiet"]
    assert main([*fit, "--seed", "0", "--device", "cpu", "--stream"]) == 0
    from aekit import load

    ae = load(model)
    for stream in ("--stream", "--no-stream"):
        out = tmp_path / f"codes{stream}.npy"
        assert main(["encode", str(model), str(root), "-o", str(out), stream]) == 0
        np.testing.assert_allclose(np.load(out), ae.transform(X), rtol=1e-5, atol=1e-6)


def _epoch_bytes(source_of, rows, parts, batch_size=32, seed=1):
    """Bytes each of ``parts`` ranks reads in one epoch, as the trainer takes its shares."""
    n_batches = batch_count(len(rows), batch_size)
    order = source_of().shuffle(
        rows, torch.Generator().manual_seed(seed), parts, (batch_size, n_batches)
    )
    assert sorted(order.tolist()) == rows.tolist()  # every training row once
    counts = []
    for rank in range(parts):
        source = source_of()
        for batch in range(n_batches):
            end = len(order) if batch == n_batches - 1 else (batch + 1) * batch_size
            source.take(order[batch * batch_size : end].tensor_split(parts)[rank])
        counts.append(source.bytes_read / source.block_bytes.sum())
    return counts


@pytest.mark.parametrize("parts", [1, 2, 4])
def test_each_rank_reads_about_its_share_of_the_bytes(npy_folder, parts):
    root, X = npy_folder
    rows = torch.from_numpy(np.flatnonzero(np.arange(len(X)) % 10))  # 90 % train rows
    counts = _epoch_bytes(lambda: ShardedRows(root, block_rows=4), rows, parts)
    assert max(counts) <= 1.1 / parts, counts
    assert sum(counts) >= 1  # every block read by some rank


def test_dealing_to_one_part_is_the_block_shuffle_and_parts_take_equal_steps():
    block = torch.arange(50).repeat_interleave(7)[:337]  # 49 blocks of 7 rows and one of 1
    gen = torch.Generator()
    one = deal(block, 49, 4, gen.manual_seed(3))
    two = deal(block, 49, 4, gen.manual_seed(3), 2, (32, batch_count(337, 32)))
    assert sorted(two.tolist()) == sorted(one.tolist()) == list(range(337))
    assert not torch.equal(one, two)
    # rank r's rows over the epoch: about half, from consecutive blocks of the shuffled order
    n_batches = batch_count(337, 32)
    shares = [[], []]
    for batch in range(n_batches):
        end = 337 if batch == n_batches - 1 else (batch + 1) * 32
        for rank, part in enumerate(two[batch * 32 : end].tensor_split(2)):
            shares[rank].append(block[part])
    blocks = [set(torch.cat(s).tolist()) for s in shares]
    assert len(blocks[0] & blocks[1]) <= 1  # only the block cut between the two ranks
    assert len(shares[0]) == len(shares[1]) == n_batches


def _fit(source, tmp_path, callbacks=(), resume=False):
    params = {**FAST, "epochs": 3, "batch_size": 16, "code_dim": 2, "init": "random"}
    ae = Autoencoder(**params, checkpoint_dir=str(tmp_path / "ckpt"), checkpoint_every_steps=3)
    return ae.fit(source, callbacks=callbacks, resume=resume)


def test_a_sharded_streamed_fit_resumes_bit_identically(parquet_folder, tmp_path):
    root, X, _ = parquet_folder
    source = ShardedRows(root, window_blocks=2)
    source.parts = 2  # one process replays a 2-rank run's order
    whole = _fit(source, tmp_path / "whole")
    records = whole.history_.records
    assert all(len(r["bytes_read"]) == 1 for r in records)  # one rank
    # interrupted in the last epoch, resumed with the blocks no longer dealt: the epoch in
    # progress keeps the order it was dealt with (the checkpoint records it)
    steps = batch_count(len(X) - int(0.1 * len(X)), 16)
    with pytest.raises(KeyboardInterrupt):
        _fit(source, tmp_path / "cut", callbacks=(InterruptAt(step=2 * steps + 4),))
    source.parts = None
    resumed = _fit(source, tmp_path / "cut", resume=True)
    for name, tensor in whole.module_.state_dict().items():
        assert torch.equal(resumed.module_.state_dict()[name], tensor), name
    assert resumed.history_.train_loss == whole.history_.train_loss


def test_parquet_shards_are_matched_by_column_name(tmp_path):
    """A shard with the columns in another order, or with pandas' row index stored, was
    refused; it is read by the first shard's column names (never by position)."""
    pd = pytest.importorskip("pandas")
    X = _rows(4)
    frame = pd.DataFrame(X, columns=list("abcd"))
    root = tmp_path / "data"
    root.mkdir()
    frame.iloc[:40].to_parquet(root / "part-0.parquet", index=False)
    frame.iloc[40:70][list("dbca")].to_parquet(root / "part-1.parquet", index=False)
    frame.iloc[70:].to_parquet(root / "part-2.parquet")  # a pandas index stored as a column
    table = read_table(root)
    assert table.columns == list("abcd")
    np.testing.assert_array_equal(table.X, X)
    source = open_rows(root)
    assert source.columns == list("abcd")
    np.testing.assert_array_equal(torch.cat([r for _, r in source.chunks()]).numpy(), X)
    np.testing.assert_array_equal(read_table(root, columns=["c", "a"]).X, X[:, [2, 0]])
    with pytest.raises(DataError, match=r"part-1.parquet .* columns picked by position need"):
        read_table(root, columns=[0, 1])


def test_an_output_in_the_dataset_is_refused(tmp_path, capsys):
    """``aekit reconstruct MODEL shards/ -o shards/r.npy`` wrote rows that the next fit on
    ``shards/`` read as data, without a word (and ``-o shards/part-1.npy`` replaced a shard)."""
    X = _rows(4)
    root = tmp_path / "shards"
    root.mkdir()
    np.save(root / "part-0.npy", X[:50])
    np.save(root / "part-1.npy", X[50:])
    model = tmp_path / "model"
    assert main(["fit", str(root), "-o", str(model), "--code-dim", "2", "--epochs", "1"]) == 0
    capsys.readouterr()
    for data, output in [
        (root, root / "r.npy"),
        (root, root / "part-1.npy"),
        (root / "*.npy", root / "r.npy"),
    ]:
        assert main(["reconstruct", str(model), str(data), "-o", str(output)]) == 2
        err = capsys.readouterr().err
        assert "would be read as one of its shards" in err and err.count("\n") == 1
    assert sorted(p.name for p in root.iterdir()) == ["part-0.npy", "part-1.npy"]
    np.testing.assert_array_equal(np.load(root / "part-1.npy"), X[50:])
    assert main(["reconstruct", str(model), str(root), "-o", str(tmp_path / "r.npy")]) == 0
