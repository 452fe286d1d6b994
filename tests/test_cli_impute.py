"""``aekit impute DATA -o FILLED``: kinds kept, observed cells untouched, --model/--save."""

import warnings

import numpy as np
import pandas as pd
import pytest

from aekit import AutoencoderImputer
from aekit.cli import main
from aekit.errors import AekitWarning

TRAIN = ["--epochs", "3", "--n-estimators", "1", "--device", "cpu", "--seed", "0"]


@pytest.fixture(scope="module")
def table():
    """120 rows: an id, two related floats, an integer count, a text and a boolean column."""
    rng = np.random.default_rng(0)
    n = 120
    a = rng.normal(size=n)
    full = pd.DataFrame(
        {
            "id": np.arange(n),
            "x": a,
            "y": 2 * a + rng.normal(scale=0.1, size=n),
            "count": np.round(10 + 3 * a).astype(int),
            "kind": np.where(a > 0, "hi", "lo"),
            "flag": a > 0.5,
        }
    )
    holed = full.astype({"count": "Int64", "flag": "boolean", "kind": object})
    for column in ["x", "y", "count", "kind", "flag"]:
        holed.loc[rng.choice(n, 15, replace=False), column] = pd.NA
    return holed


@pytest.fixture(scope="module")
def files(tmp_path_factory, table):
    folder = tmp_path_factory.mktemp("impute")
    table.to_csv(folder / "t.csv", index=False)
    table.to_parquet(folder / "t.parquet", index=False)
    return folder


def kept(before, after):
    """Same columns in the same order, every observed cell unchanged, no hole left."""
    assert list(after.columns) == list(before.columns)
    assert not after.isna().to_numpy().any()
    for name in before.columns:
        seen = before[name].notna().to_numpy()
        assert (after[name].to_numpy()[seen] == before[name].to_numpy()[seen]).all(), name


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_table_comes_back_with_its_kinds_and_its_holes_filled(files, tmp_path, suffix, capsys):
    out = tmp_path / f"filled{suffix}"
    data = str(files / f"t{suffix}")
    assert main(["impute", data, "-o", str(out), "--label-column", "id", *TRAIN]) == 0
    assert "75 missing values filled in 5 columns" in capsys.readouterr().out
    read = pd.read_csv if suffix == ".csv" else pd.read_parquet
    before, after = read(data), read(out)
    kept(before, after)
    assert after["count"].dtype == np.int64  # an integer column with holes stays integer
    assert after["flag"].dtype == bool
    assert set(after["kind"]) == {"hi", "lo"}  # a text column gets categories it had
    assert after["x"].dtype == np.float64
    if suffix == ".csv":  # the observed numbers' text, digit for digit
        text_in = (files / "t.csv").read_text().splitlines()[1].split(",")
        text_out = out.read_text().splitlines()[1].split(",")
        assert [v for v in text_in if v] == [v for v, w in zip(text_out, text_in, strict=True) if w]


def test_npy_keeps_its_dtype_and_its_observed_entries(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 4)).astype(np.float32)
    X[:, 1] += X[:, 0]
    X[rng.random(X.shape) < 0.15] = np.nan
    np.save(tmp_path / "x.npy", X)
    assert main(["impute", str(tmp_path / "x.npy"), "-o", str(tmp_path / "f.npy"), *TRAIN]) == 0
    filled = np.load(tmp_path / "f.npy")
    assert filled.dtype == np.float32 and not np.isnan(filled).any()
    seen = ~np.isnan(X)
    np.testing.assert_array_equal(filled[seen], X[seen])


def test_a_saved_imputer_fills_alike_and_matches_columns_by_name(files, tmp_path, capsys):
    first, saved = tmp_path / "a.csv", tmp_path / "imputer"
    argv = ["impute", str(files / "t.csv"), "--label-column", "id", *TRAIN]
    assert main([*argv, "-o", str(first), "--save", str(saved)]) == 0
    assert isinstance(AutoencoderImputer.load(saved), AutoencoderImputer)
    order = ["flag", "id", "y", "kind", "count", "x"]
    shuffled = pd.read_csv(files / "t.csv", dtype_backend="numpy_nullable")[order]
    shuffled.to_csv(tmp_path / "shuffled.csv", index=False)
    again = tmp_path / "b.csv"
    model = ["--model", str(saved), "--drop", "id"]
    assert main(["impute", str(tmp_path / "shuffled.csv"), "-o", str(again), *model]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(again)[list(pd.read_csv(first))], pd.read_csv(first))
    capsys.readouterr()
    shuffled.drop(columns="y").to_csv(tmp_path / "less.csv", index=False)
    assert main(["impute", str(tmp_path / "less.csv"), "-o", str(again), *model]) == 2
    assert "lacks the column(s) 'y'" in capsys.readouterr().err
    assert main([*argv, "-o", str(first), "--save", str(saved)]) != 0  # saved: not replaced
    assert "--overwrite" in capsys.readouterr().err
    assert main([*argv, "-o", str(first), "--save", str(saved), "--overwrite"]) == 0


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--model", "MODEL", "--epochs", "3"], "leave out --epochs"),
        (["-o", "DATA"], "pass --overwrite to replace it"),
        (["-o", "OUT.npy"], "cannot write the text column(s)"),
        (["-o", "OUT.h5"], "unknown output format"),
        (["--model", "NOWHERE"], "NOWHERE"),
        (["--label-column", "ID"], "--label-column 'ID': DATA has no such column"),
        (["--columns", "x", "--drop", "x"], "--columns 'x': --drop leaves none of them"),
    ],
    ids=[
        "model-and-options",
        "overwrite-data",
        "text-to-npy",
        "bad-suffix",
        "no-model",
        "no-such-label",
        "columns-all-dropped",
    ],
)
def test_mistakes_are_one_line(files, tmp_path, capsys, extra, message):
    names = {
        "MODEL": str(files / "t.csv"),
        "DATA": str(files / "t.csv"),
        "OUT.npy": str(tmp_path / "o.npy"),
        "OUT.h5": str(tmp_path / "o.h5"),
        "NOWHERE": str(tmp_path / "nowhere"),
    }
    extra = [names.get(v, v) for v in extra]
    out = [] if "-o" in extra else ["-o", str(tmp_path / "o.csv")]
    argv = ["impute", str(files / "t.csv"), "--label-column", "id", *out, *extra]
    assert main([*argv, "--device", "cpu"] if "--model" not in extra else argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("aekit: error:") and len(err.strip().splitlines()) == 1
    assert message.replace("NOWHERE", names["NOWHERE"]) in err


@pytest.mark.parametrize("dtype", [np.int64, np.float32])  # float32: in a read-only memory map
def test_a_marker_value_is_a_hole_too(tmp_path, dtype):
    rng = np.random.default_rng(2)
    X = np.round(rng.normal(size=(60, 3)) * 10).astype(dtype)
    X[:, 2] = X[:, 0] + X[:, 1]
    X[rng.random(X.shape) < 0.1] = -999
    np.save(tmp_path / "x.npy", X)
    argv = ["impute", str(tmp_path / "x.npy"), "-o", str(tmp_path / "f.npy"), *TRAIN]
    assert main([*argv, "--missing-values", "-999"]) == 0
    filled = np.load(tmp_path / "f.npy")
    marked = X == -999
    assert marked.any() and not (filled == -999).any()
    np.testing.assert_array_equal(filled[~marked], X[~marked])
    assert (filled[marked] >= X[~marked].min()).all()  # within the observed range
    assert filled.dtype == dtype  # integers in, integers out: the fills rounded
    csv = tmp_path / "f.csv"  # and written as integers
    assert main([*argv[:2], "-o", str(csv), *TRAIN, "--missing-values", "-999"]) == 0
    text = csv.read_text()
    assert ("." in text) == (dtype == np.float32)


def test_a_text_marker_among_numbers_is_refused_or_marked(table, tmp_path, capsys):
    """'?' for a hole: read as text, its numeric columns became categories and kept the '?'."""
    data, out = tmp_path / "marked.csv", tmp_path / "filled.csv"
    table[["id", "x", "y", "count"]].to_csv(data, index=False, na_rep="?")
    assert main(["impute", str(data), "-o", str(out), *TRAIN]) == 2
    err = capsys.readouterr().err
    assert "column 'x' holds numbers and the text '?' (15 cell(s), first at row" in err
    assert "--missing-values '?'" in err and err.count("\n") == 1 and not out.exists()
    assert main(["impute", str(data), "-o", str(out), "--missing-values", "?", *TRAIN]) == 0
    assert "45 missing values filled in 4 columns" in capsys.readouterr().out
    filled = pd.read_csv(out)
    assert filled["count"].dtype == np.int64 and filled["x"].dtype == np.float64
    kept(pd.read_csv(data, na_values="?"), filled)


def test_a_text_marker_in_a_parquet_string_column_is_refused_or_marked(table, tmp_path, capsys):
    """A string column of numbers with '?' cells: refused, or numbers with holes, as in CSV."""
    pytest.importorskip("pyarrow")
    data, out = tmp_path / "marked.parquet", tmp_path / "filled.parquet"
    numbers = table[["id", "x", "y", "count"]]
    as_text = numbers.astype(object).where(numbers.notna(), "?").astype(str)
    as_text.assign(id=numbers["id"]).to_parquet(data, index=False)  # id stays a number
    for argv in (
        ["impute", str(data), "-o", str(out), *TRAIN],
        ["fit", str(data), "-o", str(tmp_path / "m"), "--code-dim", "1", "--epochs", "1"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "column 'x' holds numbers and the text '?' (15 cell(s), first at row" in err, err
        assert "--missing-values '?'" in err and err.count("\n") == 1
    assert not out.exists() and not (tmp_path / "m").exists()
    assert main(["impute", str(data), "-o", str(out), "--missing-values", "?", *TRAIN]) == 0
    assert "45 missing values filled in 4 columns" in capsys.readouterr().out
    filled = pd.read_parquet(out)
    assert filled["count"].dtype == np.int64 and filled["x"].dtype == np.float64
    np.testing.assert_allclose(filled["x"][numbers["x"].notna()], numbers["x"].dropna())


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_infinity_is_named_by_file_row_and_column(table, tmp_path, capsys, suffix):
    """Not 'Input X ... column 1': a position among the feature columns, not the file's."""
    data = tmp_path / f"inf{suffix}"
    spoiled = table.astype({"y": "float64"})
    spoiled.loc[7, "y"], spoiled.loc[9, "x"] = np.inf, 1e39
    spoiled.to_csv(data, index=False) if suffix == ".csv" else spoiled.to_parquet(data)
    argv = ["impute", str(data), "-o", str(tmp_path / "f.csv"), "--label-column", "id", *TRAIN]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{data} contains infinity (first at row 7, column 'y')" in err, err
    spoiled.loc[7, "y"] = 1.0
    spoiled.to_csv(data, index=False) if suffix == ".csv" else spoiled.to_parquet(data)
    assert main(argv) == 2
    assert "beyond float32's range" in (err := capsys.readouterr().err) and "column 'x'" in err


@pytest.mark.parametrize("indicator", [True, False])
@pytest.mark.parametrize("suffix", [".npy", ".csv"])
def test_a_model_that_dropped_an_empty_column_fills_each_column_in_place(
    tmp_path, suffix, indicator, capsys
):
    # a Python-saved imputer (keep_empty_features=False by default) drops a column empty in
    # fit and appends indicator columns: the file was written with every column shifted left
    # (the last ones the 0/1 flags), or the run failed with a traceback
    from aekit import Autoencoder

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3)).round(2)
    X[:, 0] = np.nan
    X[[1, 5], 2] = np.nan
    base = Autoencoder(code_dim=2, hidden=[8], epochs=3, random_state=0)
    imputer = AutoencoderImputer(base, n_estimators=1, add_indicator=indicator)
    data = tmp_path / f"e{suffix}"
    rows = X if suffix == ".npy" else pd.DataFrame(X, columns=["e", "b", "c"])
    with pytest.warns(UserWarning, match="no observed value in fit: dropped"):
        imputer.fit(rows)
    np.save(data, X) if suffix == ".npy" else rows.to_csv(data, index=False)
    imputer.save(tmp_path / "m")
    out = tmp_path / f"o{suffix}"
    with warnings.catch_warnings():  # as a shell runs it: the CLI says the warning on stderr
        warnings.simplefilter("always", AekitWarning)
        assert main(["impute", str(data), "-o", str(out), "--model", str(tmp_path / "m")]) == 0
    said = capsys.readouterr()
    assert "2 missing values filled in 3 columns" in said.out
    name = "0" if suffix == ".npy" else "'e'"
    assert f"warning: column(s) {name} had no value when the imputer was fitted" in said.err
    got = np.load(out) if suffix == ".npy" else pd.read_csv(out).to_numpy()
    assert got.shape == X.shape and np.isnan(got[:, 0]).all()  # nothing to fill it from
    np.testing.assert_array_equal(got[:, 1], X[:, 1])
    seen = ~np.isnan(X[:, 2])
    np.testing.assert_array_equal(got[seen, 2], X[seen, 2])
    filled = np.asarray(imputer.transform(rows), dtype=float)
    np.testing.assert_allclose(got[~seen, 2], filled[~seen, 1])


def test_a_table_model_with_an_indicator_writes_the_table_alone(tmp_path, table, capsys):
    from aekit import Autoencoder

    base = Autoencoder(code_dim=2, hidden=[8], epochs=3, random_state=0)
    features = table.drop(columns="id")
    AutoencoderImputer(base, n_estimators=1, add_indicator=True).fit(features).save(tmp_path / "m")
    table.to_csv(tmp_path / "t.csv", index=False)
    out = tmp_path / "o.csv"
    argv = ["impute", str(tmp_path / "t.csv"), "-o", str(out), "--model", str(tmp_path / "m")]
    assert main([*argv, "--label-column", "id"]) == 0  # was: ValueError Length mismatch
    kept(pd.read_csv(tmp_path / "t.csv"), pd.read_csv(out))


def test_only_feature_cells_change_the_rest_is_written_as_read(tmp_path, capsys):
    # the marker and NA-like texts once emptied the label and dropped columns too; integers
    # above 2**53 went through float64; a postcode lost its leading zero
    rows = [
        ("1700000000123456789", "02134", "1.5", "", "-999", "x"),
        ("1700000000123456790", "10001", "", "3.5", "1", "NA"),
        ("1700000000123456791", "02135", "2.5", "-999", "2", "None"),
        ("1700000000123456792", "", "3.5", "4.5", "-999", "-999"),
        ("1700000000123456793", "02134", "1", "1.5", "3", "y"),
        ("1700000000123456794", "10001", "2", "2.5", "4", "z"),
    ]
    text = "ts,zip,a,b,lab,note\n" + "".join(",".join(r) + "\n" for r in rows)
    (tmp_path / "d.csv").write_text(text)
    args = ["--label-column", "lab", "--drop", "note", "--missing-values", "-999"]
    assert main(["impute", str(tmp_path / "d.csv"), "-o", str(tmp_path / "f.csv"), *args,
                 *TRAIN]) == 0  # fmt: skip
    assert "4 missing values filled in 4 columns" in capsys.readouterr().out
    out = [line.split(",") for line in (tmp_path / "f.csv").read_text().splitlines()[1:]]
    assert [r[0] for r in out] == [r[0] for r in rows]  # every digit kept
    assert [r[4:] for r in out] == [list(r[4:]) for r in rows]  # label and dropped: as read
    assert [r[1] for r in out][:3] == ["02134", "10001", "02135"]
    assert out[3][1] in {"02134", "10001", "02135"}  # a postcode is a category
    assert all(r[2] and r[3] for r in out)


def test_parquet_keeps_its_index_and_pandas_labels_are_names(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    X[rng.random(X.shape) < 0.2] = np.nan
    frame = pd.DataFrame(X, columns=list("abc")).assign(id=np.arange(100, 140))
    frame.set_index("id").to_parquet(tmp_path / "p.parquet")
    for name in ("o.parquet", "o.csv"):
        assert main(["impute", str(tmp_path / "p.parquet"), "-o", str(tmp_path / name),
                     *TRAIN]) == 0  # fmt: skip
    assert pd.read_parquet(tmp_path / "o.parquet").index.tolist() == list(range(100, 140))
    assert (tmp_path / "o.csv").read_text().startswith("id,a,b,c\n100,")
    # labels 0, 1, 2 (pandas.DataFrame(X)) are the parquet file's names: matched by name later
    pd.DataFrame(X).to_parquet(tmp_path / "a.parquet")
    assert main(["impute", str(tmp_path / "a.parquet"), "-o", str(tmp_path / "f.parquet"),
                 "--save", str(tmp_path / "imp"), *TRAIN]) == 0  # fmt: skip
    holed = X.copy()
    holed[:, :2] = np.nan
    pd.DataFrame(holed)[[2, 0, 1]].to_parquet(tmp_path / "b.parquet")
    assert main(["impute", str(tmp_path / "b.parquet"), "--model", str(tmp_path / "imp"),
                 "-o", str(tmp_path / "g.csv")]) == 0  # fmt: skip
    got = pd.read_csv(tmp_path / "g.csv")
    assert list(got.columns) == ["2", "0", "1"]
    imputer = AutoencoderImputer.load(tmp_path / "imp")
    assert list(imputer.feature_names_in_) == ["0", "1", "2"]
    want = imputer.transform(pd.DataFrame(holed, columns=["0", "1", "2"]))
    np.testing.assert_allclose(got[["0", "1", "2"]].to_numpy(), np.asarray(want), atol=1e-12)
    capsys.readouterr()


def test_a_column_empty_in_data_is_filled_in_the_kind_the_model_saw(files, tmp_path, capsys):
    # a column with no value in DATA was read as integers: a float column's fills came back
    # rounded, a text column's ended in a traceback, a boolean column's were written 1 / 0
    saved = tmp_path / "imputer"
    argv = ["impute", str(files / "t.csv"), "--label-column", "id", *TRAIN]
    assert main([*argv, "-o", str(tmp_path / "a.csv"), "--save", str(saved)]) == 0
    data = pd.read_csv(files / "t.csv", dtype_backend="numpy_nullable")
    imputer = AutoencoderImputer.load(saved)
    for column in ["x", "count", "kind", "flag"]:
        empty = data.assign(**{column: pd.NA})
        empty.to_csv(tmp_path / "e.csv", index=False)
        out = tmp_path / f"e_{column}.csv"
        capsys.readouterr()
        model = ["--model", str(saved), "--drop", "id"]
        got = main(["impute", str(tmp_path / "e.csv"), "-o", str(out), *model])
        assert got == 0, capsys.readouterr().err
        after = pd.read_csv(out)
        assert after[column].notna().all()
        if column == "x":  # the fills as the imputer gives them, not rounded
            want = imputer.transform(plain(empty.drop(columns="id")))["x"].to_numpy()
            np.testing.assert_allclose(after["x"].to_numpy(), want, rtol=1e-12)
            assert not np.allclose(after["x"], np.round(after["x"]))
        elif column == "count":  # an integer column as read in fit: rounded fills
            assert after["count"].dtype == np.int64
        elif column == "kind":
            assert set(after["kind"]) <= {"hi", "lo"}
        else:
            assert after["flag"].dtype == bool


def plain(frame):
    from aekit.data.frames import plain_frame

    return plain_frame(frame)


def test_a_number_marker_leaves_the_boolean_columns_as_read(tmp_path, capsys):
    rng = np.random.default_rng(3)
    a = rng.normal(size=60)
    data = pd.DataFrame({"a": a, "b": np.where(np.arange(60) % 6 == 0, 0.0, 2 * a), "t": a > 0})
    data.to_csv(tmp_path / "d.csv", index=False)
    out = tmp_path / "f.csv"
    argv = ["impute", str(tmp_path / "d.csv"), "-o", str(out), "--missing-values", "0"]
    assert main([*argv, *TRAIN]) == 0
    assert "10 missing values filled" in capsys.readouterr().out  # the zeros of b alone
    after = pd.read_csv(out)
    pd.testing.assert_series_equal(after["t"], data["t"])
    assert (after["b"] != 0).all()


def test_a_model_fitted_on_nullable_kinds_fills_an_empty_boolean_column_with_booleans(
    files, tmp_path, capsys
):
    data = pd.read_csv(files / "t.csv", dtype_backend="numpy_nullable").drop(columns="id")
    assert str(data["flag"].dtype) == "boolean"
    imputer = AutoencoderImputer(n_estimators=1, random_state=0).fit(data)
    imputer.save(tmp_path / "imputer")
    data.assign(flag=pd.NA).to_csv(tmp_path / "e.csv", index=False)
    out = tmp_path / "f.csv"
    argv = ["impute", str(tmp_path / "e.csv"), "-o", str(out), "--model", str(tmp_path / "imputer")]
    assert main(argv) == 0, capsys.readouterr().err
    assert pd.read_csv(out)["flag"].dtype == bool  # not 0.0 / 1.0


def test_an_integer_array_keeps_its_cells_exactly_and_its_fills_within_its_dtype(tmp_path):
    from aekit.cli.impute import _integers

    rng = np.random.default_rng(0)
    a = rng.integers(0, 50, 60)
    X = np.column_stack([2**53 + 1 + np.arange(60), a, 2 * a + 1]).astype(np.int64)
    X[::7, 1] = -1
    np.save(tmp_path / "big.npy", X)
    argv = ["impute", str(tmp_path / "big.npy"), "-o", str(tmp_path / "f.npy"), *TRAIN]
    assert main([*argv, "--missing-values", "-1", "--columns", "1,2"]) == 0
    filled = np.load(tmp_path / "f.npy")
    assert filled.dtype == np.int64
    np.testing.assert_array_equal(filled[X != -1], X[X != -1])  # ids beyond 2**53 exact
    read = np.array([[250, 0], [3, 7]], dtype=np.uint8)
    marked = np.array([[250.0, np.nan], [3.0, 7.0]])
    within = _integers(read, marked, np.array([[250.0, 254.6], [3.0, 7.0]]), "d.npy")
    assert within.dtype == np.uint8 and within[0, 1] == 255
    with pytest.warns(AekitWarning, match="beyond uint8's range"):  # 508 would wrap to 252
        beyond = _integers(read, marked, np.array([[250.0, 508.0], [3.0, 7.0]]), "d.npy")
    assert beyond.dtype == np.float64 and beyond[0, 1] == 508.0


def test_a_model_given_columns_of_other_kinds_is_one_line(tmp_path, capsys):
    rng = np.random.default_rng(0)
    a = rng.normal(size=80)
    rows = pd.DataFrame({"a": a, "b": 2 * a, "c": np.where(a > 0, "hi", "lo")})
    rows.loc[1::5, "a"] = np.nan
    rows.to_csv(tmp_path / "h.csv", index=False, header=False)
    saved = tmp_path / "imputer"
    argv = ["impute", str(tmp_path / "h.csv"), "-o", str(tmp_path / "f.csv")]
    assert main([*argv, "--save", str(saved), *TRAIN]) == 0
    capsys.readouterr()
    rows.assign(c=np.nan).to_csv(tmp_path / "e.csv", index=False, header=False)
    again = ["impute", str(tmp_path / "e.csv"), "-o", str(tmp_path / "g.csv")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the numbers in the text column: unseen categories
        assert main([*again, "--model", str(saved), "--columns", "2,1,0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("aekit: error:") and "do not fit DATA's columns in kind" in err[-1]
