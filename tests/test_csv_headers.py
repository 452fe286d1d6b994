"""Text tables written by pandas: its header of unnamed columns and its row index.

``pd.DataFrame(rows).to_csv(path, index=False)`` writes ``0,1,...,n-1`` as its header: aekit read
that line as a row of data (one row too many, the first made of the labels). ``to_csv``
without ``index=False`` writes the row index as a first column with no name: aekit read it
as a feature. Both were silently wrong answers. So was a file that starts with UTF-8's
byte-order mark (Excel's "CSV UTF-8"): the mark became part of the first column's name, or
made a first row of numbers look like a header (one row lost, numbers taken as names).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aekit.cli import main
from aekit.data.formats import read_table
from aekit.errors import DataError


@pytest.fixture(scope="module")
def rows():
    return np.random.default_rng(0).normal(size=(40, 5))


def test_the_header_of_unnamed_columns_is_a_header(tmp_path, rows):
    path = tmp_path / "x.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    table = read_table(path)
    assert table.X.shape == rows.shape  # was (41, 5), the first row 0, 1, 2, 3, 4
    np.testing.assert_allclose(table.X, rows, rtol=1e-15)
    assert table.columns == ["0", "1", "2", "3", "4"]


def test_a_row_of_numbers_that_is_not_that_header_stays_data(tmp_path):
    for first in ("0,1", "1,2,3", "0,1,3", "0.0,1.0,2.0"):  # too few columns, or not 0..n-1
        path = tmp_path / "y.csv"
        width = first.count(",") + 1
        path.write_text(first + "\n" + ",".join(["5"] * width) + "\n")
        table = read_table(path)
        assert table.X.shape == (2, width) and table.columns is None


def test_a_row_index_written_by_pandas_is_refused_in_one_line(tmp_path, rows, capsys):
    path = tmp_path / "indexed.csv"
    pd.DataFrame(rows, columns=list("abcde")).to_csv(path)  # a first column "" of 0 ... 39
    with pytest.raises(DataError, match=r"column 0 of the header has no name; pandas writes"):
        read_table(path)
    assert main(["fit", str(path), "-o", str(tmp_path / "m"), "--code-dim", "2"]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("aekit: error: ") and "index=False" in err and "\n" not in err
    assert not (tmp_path / "m").exists()


def test_a_nameless_column_is_refused_and_a_first_row_of_numbers_with_a_hole_is_data(tmp_path):
    path = tmp_path / "z.csv"
    path.write_text("a,,c\n1,2,3\n")
    with pytest.raises(DataError, match="column 1 of the header has no name; name it"):
        read_table(path)
    path.write_text("1.5,,3.5\n1,2,3\n")  # was refused as a header with a nameless column
    table = read_table(path)
    assert table.columns is None
    np.testing.assert_array_equal(table.X, [[1.5, np.nan, 3.5], [1, 2, 3]])
    path.write_text(",0,1\n0,1.5,2.5\n1,1,2\n")  # pandas' row index over unnamed columns
    with pytest.raises(DataError, match="column 0 of the header has no name; pandas writes"):
        read_table(path)


def test_every_row_has_the_headers_width_whichever_columns_are_read(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("x,price,qty\n1.5,1,234,3\n2.5,500,4\n")  # a thousands comma
    for picked in ({"label_column": "qty"}, {"columns": ["x", "price"]}, {}):
        with pytest.raises(DataError, match=r"^\S+r.csv line 2 has 4 fields, expected 3$"):
            read_table(path, **picked)


def test_a_hash_is_text_not_a_comment(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("a,b,tag\n1,2,x\n3,4,#y\n5,6,red#1\n")
    table = read_table(path, label_column="tag")
    assert list(table.labels) == ["x", "#y", "red#1"]
    assert table.X.shape == (3, 2)


@pytest.mark.parametrize(
    ("name", "text", "shown"),
    [("x.txt", "1.5 2.5 3\n4 5 6\n", "spaces"), ("s.csv", "a;b;c\n1.5;2;0\n3;4;0\n", "';'")],
)
def test_numbers_split_by_another_separator_are_refused_by_name(tmp_path, name, text, shown):
    (tmp_path / name).write_text(text)
    with pytest.raises(DataError, match=f"one column whose first line {shown} split into 3 fields"):
        read_table(tmp_path / name)


def test_a_pandas_row_index_stored_in_parquet_is_not_a_feature(tmp_path, rows):
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame(rows, columns=list("abcde"))
    kept = frame[frame["a"] > 0]  # a filtered frame: its index is stored as a column
    path = tmp_path / "kept.parquet"
    kept.to_parquet(path)
    table = read_table(path)
    assert table.columns == list("abcde")  # was a sixth feature, __index_level_0__
    np.testing.assert_array_equal(table.X, kept.to_numpy())
    named = kept.rename_axis("row_id")
    named.to_parquet(path)
    assert read_table(path).columns == list("abcde")
    picked = read_table(path, columns=["a", "row_id"])  # still there when asked for
    np.testing.assert_array_equal(picked.X[:, 1], kept.index.to_numpy())


def test_a_byte_order_mark_is_not_part_of_the_first_name(tmp_path, rows):
    path = tmp_path / "excel.csv"
    pd.DataFrame(rows, columns=list("abcde")).to_csv(path, index=False, encoding="utf-8-sig")
    table = read_table(path)
    assert table.columns == list("abcde")  # was "\ufeffa" first
    np.testing.assert_allclose(table.X, rows, rtol=1e-15)


def test_a_byte_order_mark_before_a_row_of_numbers_keeps_the_row(tmp_path, rows):
    path = tmp_path / "excel.csv"
    pd.DataFrame(rows).to_csv(path, index=False, header=False, encoding="utf-8-sig")
    table = read_table(path)
    assert table.columns is None  # was the first row's numbers as names
    assert table.X.shape == rows.shape  # was one row short
    np.testing.assert_allclose(table.X, rows, rtol=1e-15)


def test_a_byte_order_mark_before_a_table_with_text(tmp_path):
    path = tmp_path / "excel.csv"
    frame = pd.DataFrame({"size": [1.0, 2.5, 3.0, 4.5], "kind": ["x", "y", "x", "y"]})
    frame.to_csv(path, index=False, encoding="utf-8-sig")
    table = read_table(path)
    assert table.columns == ["size", "kind"]


def test_a_semicolon_separated_file_is_refused_naming_the_separator_read(tmp_path, rows):
    path = tmp_path / "european.csv"
    pd.DataFrame(rows, columns=list("abcde")).to_csv(path, index=False, sep=";", decimal=",")
    with pytest.raises(DataError, match=r"first line ';' split into 5 fields: .* separated by ','"):
        read_table(path)
