import gzip
import struct

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.sparse
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.utils.validation import check_array

from aekit import Autoencoder, DataError
from aekit.data.checks import (
    aekit_errors,
    check_finite_output,
    check_finite_rows,
    first_unusable,
)
from aekit.data.formats import (
    FORMATS,
    can_stream,
    check_output,
    file_format,
    find_format,
    names_columns,
    open_rows,
    read_array,
    read_idx,
    read_labels,
    read_table,
    row_writer,
    write_array,
)
from aekit.data.stream import NpyRows, stream_stats


def write_idx(path, array):
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">f4"): 0x0D}
    header = bytes([0, 0, codes[array.dtype], array.ndim])
    header += b"".join(struct.pack(">I", n) for n in array.shape)
    raw = header + array.tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as handle:
        handle.write(raw)


@pytest.fixture()
def table(rng):
    return rng.normal(size=(12, 4)).round(3)


def test_npy_is_memory_mapped_and_npz_prefers_x(tmp_path, table):
    np.save(tmp_path / "a.npy", table)
    X = read_array(tmp_path / "a.npy")
    assert isinstance(X, np.memmap) and np.array_equal(X, table)
    np.savez(tmp_path / "a.npz", other=np.zeros((2, 2)), X=table)
    assert np.array_equal(read_array(tmp_path / "a.npz"), table)


@pytest.mark.parametrize("name", ["imgs-idx3-ubyte", "imgs-idx3-ubyte.gz", "imgs.idx"])
def test_idx_images_are_flattened(tmp_path, name):
    images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    write_idx(tmp_path / name, images)
    X = read_array(tmp_path / name)
    assert X.shape == (3, 20) and np.array_equal(X, images.reshape(3, 20))
    labels = np.array([3, 1, 4], dtype=np.uint8)
    write_idx(tmp_path / "labels-idx1-ubyte", labels)
    assert read_labels(tmp_path / "labels-idx1-ubyte").tolist() == [3, 1, 4]
    assert read_idx(tmp_path / name).shape == (3, 4, 5)


def test_csv_header_columns_and_text_labels(tmp_path):
    (tmp_path / "t.csv").write_text('a,"b",kind,c\n1,2,cat,3\n4,5.5,dog,6\n')
    t = read_table(tmp_path / "t.csv", label_column="kind")
    assert t.columns == ["a", "b", "c"]
    assert t.X.tolist() == [[1, 2, 3], [4, 5.5, 6]] and t.labels.tolist() == ["cat", "dog"]
    t = read_table(tmp_path / "t.csv", columns=["c", "0"])
    assert t.X.tolist() == [[3, 1], [6, 4]] and t.columns == ["c", "a"] and t.labels is None


def test_tsv_without_header_and_integer_labels(tmp_path):
    (tmp_path / "t.tsv").write_text("1\t2\t7\n3\t4\t8\n")
    t = read_table(tmp_path / "t.tsv", label_column=2)
    assert t.columns is None and t.X.tolist() == [[1, 2], [3, 4]]
    assert t.labels.dtype == np.int64 and t.labels.tolist() == [7, 8]


def test_parquet_columns_and_labels(tmp_path):
    pq.write_table(
        pa.table({"x": [1.0, 2.0], "y": np.array([3, 4], dtype=np.int32), "name": ["u", "v"]}),
        tmp_path / "t.parquet",
    )
    t = read_table(tmp_path / "t.parquet", label_column="name")
    assert t.X.tolist() == [[1, 3], [2, 4]] and t.columns == ["x", "y"]
    assert t.labels.tolist() == ["u", "v"]
    whole = read_table(tmp_path / "t.parquet")  # a text column: a DataFrame, for the layout
    assert list(whole.X.columns) == ["x", "y", "name"] and whole.X["name"].tolist() == ["u", "v"]


def test_npy_columns_by_index(tmp_path, table):
    np.save(tmp_path / "a.npy", table)
    t = read_table(tmp_path / "a.npy", columns=["3", 1], label_column=0)
    assert np.array_equal(t.X, table[:, [3, 1]]) and t.labels.shape == (12,)


@pytest.mark.parametrize(
    ("name", "content", "error", "match"),
    [
        ("missing.csv", None, DataError, "no such file"),
        ("x.xlsx", "1,2\n", DataError, r"unknown file format '\.xlsx'"),
        ("e.csv", "", DataError, "is empty"),
        ("h.csv", "a,b\n", DataError, "no data rows"),
        ("r.csv", "1,2\n3,4,5\n", DataError, "line 2 has 3 fields, expected 2"),
        ("bad.npy", "not numpy", DataError, r"not a numeric \.npy"),
        ("bad.parquet", "not parquet", DataError, r"cannot read .* as parquet"),
        ("bad.npz", "not a zip", DataError, r"not a readable \.npz"),
    ],
)
def test_bad_files_name_the_problem(tmp_path, name, content, error, match):
    if content is not None:
        (tmp_path / name).write_text(content)
    with pytest.raises(error, match=match):
        read_array(tmp_path / name)


def test_unknown_column_lists_the_known_ones(tmp_path):
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match=r"no column 'z' \(columns: a, b\)"):
        read_table(tmp_path / "t.csv", columns=["z"])
    with pytest.raises(DataError, match="feature and the label"):
        read_table(tmp_path / "t.csv", columns=["a"], label_column="a")


@pytest.mark.parametrize("suffix", [".npy", ".csv", ".tsv", ".parquet"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_write_array_round_trips_exactly(tmp_path, rng, suffix, dtype):
    array = rng.normal(size=(7, 3)).astype(dtype)
    path = write_array(tmp_path / f"out{suffix}", array, ["p", "q", "r"])
    table = read_table(path)
    assert np.array_equal(np.asarray(table.X, dtype=dtype), array)
    if suffix != ".npy":
        assert table.columns == ["p", "q", "r"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"out{suffix}"]  # no temp files


@pytest.mark.parametrize("suffix", [".npy", ".csv", ".tsv", ".parquet"])
def test_row_writer_in_chunks_writes_what_one_write_does(tmp_path, rng, suffix):
    array = rng.normal(size=(50, 3)).astype(np.float32)
    whole = write_array(tmp_path / f"whole{suffix}", array, ["p", "q", "r"])
    chunked = tmp_path / f"chunked{suffix}"
    with row_writer(chunked, 50, 3, ["p", "q", "r"], dtype=np.float32) as write:
        for part in np.array_split(array, 4):
            write(part)
    tables = [read_table(path) for path in (whole, chunked)]
    assert np.array_equal(np.asarray(tables[1].X, dtype=np.float32), array)
    assert tables[1].columns == tables[0].columns
    if suffix == ".parquet":
        assert pq.ParquetFile(chunked).num_row_groups == 4  # one per chunk: streamable again
    else:
        assert chunked.read_bytes() == whole.read_bytes()


def test_row_writer_leaves_old_output_on_any_failure(tmp_path):
    path = tmp_path / "out.npy"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk on fire"), row_writer(path, 10, 2) as write:
        write(np.zeros((5, 2)))
        raise RuntimeError("disk on fire")
    with (
        pytest.raises(DataError, match="5 rows written, 10 announced"),
        row_writer(path, 10, 2) as write,
    ):  # the error comes as the block ends
        write(np.zeros((5, 2)))
    shape = r"cannot write rows of shape \(5, 3\)"
    with pytest.raises(DataError, match=shape), row_writer(path, 10, 2) as write:
        write(np.zeros((5, 3)))
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.npy"]  # no temp files


def test_check_output_refuses_before_writing(tmp_path):
    with pytest.raises(DataError, match=r"unknown output format '\.json'"):
        check_output(tmp_path / "codes.json")
    (tmp_path / "folder.npy").mkdir()
    with pytest.raises(DataError, match="it is a folder"):
        check_output(tmp_path / "folder.npy")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="not a writable folder"):
        check_output(tmp_path / "file" / "codes.npy")
    with pytest.raises(DataError, match="column names for"):
        write_array(tmp_path / "a.csv", np.zeros((2, 2)), ["only-one"])
    assert not (tmp_path / "a.csv").exists()


# -- the one table of formats -------------------------------------------------------------
def write_npz(path, array):
    np.savez(path, X=array)


def write_txt(path, array):
    np.savetxt(path, array, delimiter="\t", fmt="%.17g", header="p\tq\tr", comments="")


def write_idx_rows(path, array):
    write_idx(path, array.astype(">f4"))


def write_npy_shards(path, array):
    """A folder of two .npy shards (a dataset folder: aekit.data.folders)."""
    path.mkdir()
    np.save(path / "part-0.npy", array[:4])
    np.save(path / "part-1.npy", array[4:])


def write_mtx(path, array):
    import scipy.io

    scipy.io.mmwrite(path, scipy.sparse.coo_array(array))


def write_h5ad(path, array):
    anndata = pytest.importorskip("anndata")
    adata = anndata.AnnData(scipy.sparse.csr_matrix(array))
    adata.var_names = ["p", "q", "r"]
    adata.write_h5ad(path)


def write_10x(path, array):
    """A folder as 10x Genomics writes a matrix: features × cells, gzipped."""
    import gzip

    import scipy.io

    path.mkdir()
    scipy.io.mmwrite(path / "matrix.mtx", scipy.sparse.coo_array(array.T))
    (path / "matrix.mtx.gz").write_bytes(gzip.compress((path / "matrix.mtx").read_bytes()))
    (path / "matrix.mtx").unlink()
    features = "".join(f"{name}\t{name}\tGene Expression\n" for name in "pqr")
    (path / "features.tsv.gz").write_bytes(gzip.compress(features.encode()))
    cells = "".join(f"AAAC{i}-1\n" for i in range(len(array)))
    (path / "barcodes.tsv.gz").write_bytes(gzip.compress(cells.encode()))


# formats aekit reads but does not write: the tests write them as other programs would
READ_ONLY = {
    "npz": (".npz", write_npz),
    "txt": (".txt", write_txt),
    "idx": ("-ubyte", write_idx_rows),
    "folder": ("", write_npy_shards),
    "mtx": (".mtx", write_mtx),
    "h5ad": (".h5ad", write_h5ad),
    "10x": ("", write_10x),
}


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_every_format_in_the_table_round_trips(tmp_path, rng, fmt):
    array = rng.normal(size=(7, 3)).astype(np.float32)
    if fmt.sink is not None:
        path = write_array(tmp_path / f"out{fmt.suffixes[0]}", array, ["p", "q", "r"])
    else:  # a new read-only format needs a writer here
        suffix, write = READ_ONLY[fmt.name]
        path = tmp_path / f"out{suffix}"
        write(path, array)
    assert file_format(path) is fmt
    # file names: any case (folders are told by what they hold)
    assert fmt.dataset or fmt.folder or find_format(str(path).upper()) is fmt
    table = read_table(path)
    X = table.X.toarray() if scipy.sparse.issparse(table.X) else table.X  # sparse formats
    assert np.array_equal(np.asarray(X, dtype=np.float32), array)
    assert table.columns == (["p", "q", "r"] if fmt.named_columns else None)
    assert names_columns(path) is fmt.named_columns and can_stream(path) is (fmt.stream is not None)
    source = open_rows(path)  # the streamed formats read back the same rows block by block
    if fmt.stream is None:
        assert source is None
    else:
        assert np.array_equal(source.take(torch.arange(7)).numpy(), array)
        source.close()


def test_the_table_knows_gzipped_idx_and_refuses_unknown_suffixes(tmp_path):
    assert file_format("train-images-idx3-ubyte.gz").name == "idx"
    assert find_format("data.csv.gz") is None and find_format("notes") is None
    assert not can_stream("data.xlsx") and not names_columns("data.xlsx")
    (tmp_path / "x.xlsx").write_text("1,2\n")
    with pytest.raises(DataError, match=r"unknown file format '\.xlsx'") as error:
        read_table(tmp_path / "x.xlsx")
    for fmt in FORMATS:  # every known suffix is listed
        assert all(suffix in str(error.value) for suffix in fmt.suffixes)
    with pytest.raises(DataError, match=r"unknown output format '\.txt'") as error:
        check_output(tmp_path / "codes.txt")  # read, never written
    assert "(expected .npy, .npz, .csv, .tsv, .parquet)" in str(error.value)


def test_read_labels_takes_one_column_of_numbers_or_text(tmp_path):
    (tmp_path / "kinds.csv").write_text("kind\ncat\ndog\n")
    assert read_labels(tmp_path / "kinds.csv").tolist() == ["cat", "dog"]
    np.save(tmp_path / "digits.npy", np.array([3.0, 1.0, 4.0]))
    labels = read_labels(tmp_path / "digits.npy")
    assert labels.dtype == np.int64 and labels.tolist() == [3, 1, 4]
    (tmp_path / "two.csv").write_text("1,2\n3,4\n")
    with pytest.raises(DataError, match="has 2 columns, expected one label per row"):
        read_labels(tmp_path / "two.csv")


# -- the one input check -------------------------------------------------------------------
@pytest.mark.parametrize("value", [np.inf, -np.inf])  # NaN: a missing value
def test_a_bad_value_reads_the_same_from_the_estimator_a_stream_and_the_cli(tmp_path, value):
    X = np.random.default_rng(0).normal(size=(203, 12))
    ae = Autoencoder(code_dim=2, hidden=(4,), epochs=1, random_state=0, device="cpu").fit(X)
    X[150, 3] = value
    path = tmp_path / "rows.npy"
    np.save(path, X)
    messages = []
    with pytest.raises(DataError) as error:  # the CLI's check of rows read whole or streamed
        check_finite_rows(X[100:], str(path), first_row=100)
    messages.append(str(error.value))
    with pytest.raises(DataError) as error:  # a file streamed for fit
        stream_stats(NpyRows(path, block_rows=64), chunk_rows=50)
    messages.append(str(error.value))
    for method in (ae.transform, ae.reconstruct, ae.score_samples):
        with pytest.raises(DataError) as error:
            method(X)
        messages.append(str(error.value).replace("Input X", str(path)))
    kind = "NaN" if np.isnan(value) else "infinity"
    advice = "drop or impute those values first"
    assert messages == [f"{path} contains {kind} (first at row 150, column 3); {advice}"] * 5


def test_values_beyond_float32_read_the_same_in_fit_transform_and_codes():
    X = np.random.default_rng(0).normal(size=(20, 3))
    ae = Autoencoder(code_dim=2, hidden=(4,), epochs=1, random_state=0, device="cpu").fit(X)
    X[5, 1] = -1e300
    expected = (
        "Input X contains a value beyond float32's range of ±3.4e+38 (first at row 5, column 1:"
        " -1e+300); aekit computes in float32: rescale the data"
    )
    for call in (ae.transform, Autoencoder().fit):
        with pytest.raises(DataError) as error:
            call(X)
        assert str(error.value) == expected
    with pytest.raises(DataError, match=r"^codes contains a value beyond float32's range"):
        ae.inverse_transform(X[:, :2])
    with pytest.raises(DataError, match="beyond float32's range"):
        check_finite_rows(X, "Input X", float32=True)
    check_finite_rows(X)  # finite: only float32=True refuses it


def special_floats(dtype):
    values = st.sampled_from([0.0, -1.5, 3e38, np.nan, np.inf, -np.inf])
    if dtype == np.float64:
        values = st.sampled_from([0.0, -1.5, 3e38, 1e39, -1e300, np.nan, np.inf])
    return arrays(dtype, st.tuples(st.integers(0, 6), st.integers(1, 5)), elements=values)


@given(st.sampled_from([np.float32, np.float64]).flatmap(special_floats), st.booleans())
def test_first_unusable_finds_the_first_bad_entry_in_arrays_and_tensors(values, float32):
    def first(bad):
        found = np.argwhere(bad)
        return tuple(found[0]) if len(found) else None

    limit = np.finfo(np.float32).max if float32 else np.inf
    assert first_unusable(values, float32=float32) == first(~(np.abs(values) < limit))
    with np.errstate(over="ignore"):  # beyond float32's range becomes infinite, as in transform
        single = values.astype(np.float32)
    assert first_unusable(torch.from_numpy(single)) == first(~np.isfinite(single))


def test_outputs_that_overflow_and_sklearn_s_finiteness_errors_are_one_line():
    errors = np.array([1.0, 2.0, np.inf], dtype=np.float32)
    with pytest.raises(DataError, match=r"^row 2 overflows float32 in the network; rescale"):
        check_finite_output(errors, "the network")
    check_finite_output(np.full(3, 3e38, dtype=np.float32), "the network")  # a sum overflows
    for bad in (np.nan, np.inf):  # a finiteness error is not a non-numeric one
        with pytest.raises(DataError, match=r"^Input X contains (NaN|infinity)"), aekit_errors():
            check_array(np.array([[1.0, bad]]), input_name="X")


@pytest.mark.parametrize("holes", [False, True])
def test_array_stats_of_float32_rows_are_summed_in_float64(holes):
    # a float32 accumulator put the mean of 400,000 rows near 10,000 off by 6.5, so a float32
    # and a float64 copy of one file scaled (and a resume compared) differently
    from aekit.data.stats import array_stats

    rng = np.random.default_rng(0)
    X = (rng.normal(size=(400_000, 3)) * [1, 100, 3] + [0, 50, 10_000]).astype(np.float32)
    if holes:
        X[::7, 1] = np.nan
    single, double = array_stats(X), array_stats(X.astype(np.float64))
    assert single["mean"].dtype == np.float32  # returned in the rows' dtype, as before
    for name in ("mean", "std"):
        np.testing.assert_allclose(single[name], double[name], rtol=1e-6)


def test_a_zero_dimensional_array_file_is_one_data_error(tmp_path):
    np.save(tmp_path / "one.npy", np.float64(3.0))  # was an IndexError from the CLI
    with pytest.raises(DataError, match=r"one.npy holds one number \(a 0-d array\), expected rows"):
        read_table(tmp_path / "one.npy")
