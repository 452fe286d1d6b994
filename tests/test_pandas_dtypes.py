"""pandas dtypes into the three estimators: numbers read as numbers, dates refused by name.

The rules are :mod:`aekit.data.kinds`'s: an ``object`` column of numbers (floats, ``Decimal``)
is numbers, not one category per value; a date, time or duration column is one
``DataTypeError`` naming it, at ``fit`` and where a numeric column gets one later (never read
as nanoseconds); ``pd.NA`` is a missing value in any column taken as numbers.
"""

from __future__ import annotations

import datetime
import re
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
import torch

from aekit import Autoencoder, AutoencoderImputer, AutoencoderOutlierDetector
from aekit.data.tables import needs_layout
from aekit.errors import DataError, DataTypeError
from tests.helpers import FAST

N = 40
AE = {**FAST, "code_dim": 1, "hidden": (8,)}


def _frame(c, text=False):
    rng = np.random.default_rng(0)
    x = rng.normal(size=N)
    frame = pd.DataFrame({"x": x, "y": x + 0.1 * rng.normal(size=N), "c": c})
    return frame.assign(w=np.array(["a", "b", "c"])[np.arange(N) % 3]) if text else frame


VALUES = np.round(np.random.default_rng(1).normal(size=N), 2)
HOLES = np.arange(N) % 7 == 3


@pytest.fixture(scope="module")
def numbers_only():
    """An autoencoder fitted on numbers alone (no table layout)."""
    return Autoencoder(**AE).fit(_frame(VALUES))


@pytest.fixture(scope="module")
def with_text():
    """An autoencoder fitted on numbers and a text column (a table layout)."""
    return Autoencoder(**AE).fit(_frame(VALUES, text=True))


@pytest.mark.parametrize(
    "column",
    [
        pd.Series(list(VALUES), dtype=object),  # was one category per value
        pd.Series([Decimal(str(v)) for v in VALUES], dtype=object),  # was a DataError
        pd.Series([None if h else Decimal(str(v)) for v, h in zip(VALUES, HOLES, strict=True)]),
    ],
    ids=["object floats", "Decimal", "Decimal and None"],
)
def test_an_object_column_of_numbers_is_numbers(column):
    as_floats = pd.to_numeric(column.astype(object).where(column.notna(), np.nan))
    assert not needs_layout(_frame(column))
    got = Autoencoder(**AE).fit(_frame(column))
    want = Autoencoder(**AE).fit(_frame(as_floats.to_numpy(np.float64)))
    assert got.table_layout_ is None
    np.testing.assert_allclose(got.transform(_frame(column)), want.transform(_frame(as_floats)))


def test_a_pyarrow_decimal_column_is_numbers():
    pa = pytest.importorskip("pyarrow")
    decimals = pd.array([Decimal(str(v)) for v in VALUES], dtype=pd.ArrowDtype(pa.decimal128(9, 2)))
    got = Autoencoder(**AE).fit(_frame(decimals))
    want = Autoencoder(**AE).fit(_frame(VALUES))
    np.testing.assert_allclose(got.transform(_frame(decimals)), want.transform(_frame(VALUES)))


def test_a_numbers_column_with_text_beside_it_stays_numeric():
    """The layout's numeric column of ``object`` numbers: one column, not a one-hot block."""
    column = pd.Series(list(VALUES), dtype=object)
    layout = Autoencoder(**AE).fit(_frame(column, text=True)).table_layout_
    assert [c.categories is None for c in layout.columns] == [True, True, True, False]


DATES = {
    "datetime64[ns]": pd.Series(pd.date_range("2024", periods=N)),
    "datetime64[ns, UTC]": pd.Series(pd.date_range("2024", periods=N, tz="UTC")),
    "timedelta64[ns]": pd.Series(pd.to_timedelta(np.arange(N), unit="s")),
    "period[M]": pd.Series(pd.period_range("2024-01", periods=N, freq="M")),
    "date values (dtype object)": pd.Series(
        [datetime.date(2024, 1, 1 + i % 28) for i in range(N)], dtype=object
    ),
}


@pytest.mark.parametrize("kind", DATES)
@pytest.mark.parametrize("fitted", ["numbers_only", "with_text"])
def test_dates_where_numbers_were_fitted_are_refused_by_name(kind, fitted, request):
    """A numeric column given dates later: one line naming it, not nanoseconds as numbers."""
    ae = request.getfixturevalue(fitted)
    dates = _frame(DATES[kind], text=fitted == "with_text")
    with pytest.raises(DataTypeError, match="^" + re.escape(f"column 'c' holds {kind}")):
        ae.transform(dates)


def test_dates_in_an_object_column_are_refused_by_name_in_fit():
    """Not as a category a JSON file cannot hold: the dates rule, whatever the dtype."""
    for estimator in (Autoencoder(**AE), AutoencoderImputer(Autoencoder(**AE), n_estimators=1)):
        with pytest.raises(DataTypeError, match=r"^column 'c' holds date values"):
            estimator.fit(_frame(DATES["date values (dtype object)"]))


def test_a_pyarrow_time_column_is_refused_by_name():
    pa = pytest.importorskip("pyarrow")
    times = pd.array(
        [datetime.time(i % 24) for i in range(N)], dtype=pd.ArrowDtype(pa.time64("us"))
    )
    with pytest.raises(DataTypeError, match=r"^column 'c' holds time64"):
        Autoencoder(**AE).fit(_frame(times))


def test_pd_na_in_text_numbers_is_missing_after_a_numeric_fit(numbers_only):
    """A ``string`` column of numbers with ``pd.NA``: NaN where missing, as a float column."""
    text = pd.array([None if h else str(v) for v, h in zip(VALUES, HOLES, strict=True)], "string")
    floats = np.where(HOLES, np.nan, VALUES)
    np.testing.assert_allclose(
        numbers_only.transform(_frame(text)), numbers_only.transform(_frame(floats))
    )


@pytest.mark.parametrize("fitted", ["numbers_only", "with_text"])
def test_category_values_not_codes_where_numbers_were_fitted(fitted, request):
    ae = request.getfixturevalue(fitted)
    text = fitted == "with_text"
    as_categories = pd.Categorical(VALUES, categories=sorted(set(VALUES), reverse=True))
    np.testing.assert_allclose(
        ae.transform(_frame(as_categories, text)), ae.transform(_frame(VALUES, text))
    )


def test_the_imputer_fills_a_numeric_column_given_as_booleans():
    """Fitted on numbers, given ``boolean`` with ``pd.NA``: numbers filled (was a TypeError)."""
    imputer = AutoencoderImputer(Autoencoder(**AE), n_estimators=1).fit(_frame(VALUES, True))
    flags = pd.array([None if h else v > 0 for v, h in zip(VALUES, HOLES, strict=True)], "boolean")
    filled = imputer.transform(_frame(flags, text=True))
    assert filled["c"].dtype == np.float64 and not filled["c"].isna().any()
    np.testing.assert_array_equal(filled["c"][~HOLES], (VALUES[~HOLES] > 0).astype(float))


def test_the_detector_refuses_dates_where_numbers_were_fitted():
    detector = AutoencoderOutlierDetector(Autoencoder(**AE)).fit(_frame(VALUES, text=True))
    with pytest.raises(DataTypeError, match=r"^column 'c' holds datetime64"):
        detector.score_samples(_frame(DATES["datetime64[ns]"], text=True))


def test_numbers_with_a_marker_text_are_refused_not_made_categories():
    """``[1.5, "?", 2.3, ...]``: each number was a category (the files' rule, now every input's)."""
    marked = pd.Series(np.where(HOLES, "?", VALUES.astype(object)), dtype=object)
    with pytest.raises(DataError, match=r"^column 'c' holds numbers and the text '\?' \(6 cell"):
        Autoencoder(**AE).fit(_frame(marked))
    Autoencoder(**AE).fit(_frame(marked.astype("category")))  # categories, as asked
    imputer = AutoencoderImputer(Autoencoder(**AE), n_estimators=1, missing_values="?")
    filled = imputer.fit_transform(_frame(marked))  # numbers with holes: filled as numbers
    assert imputer.estimator_.table_layout_ is None and not np.isnan(filled).any()
    np.testing.assert_array_equal(filled[~HOLES, 2], VALUES[~HOLES])


def test_a_parquet_decimal_column_is_read_as_numbers(tmp_path):
    """Whole and streamed (``aekit fit``, ``score``...): was "holds decimal128 values"."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    from aekit.data import read_table
    from aekit.data.stream import ParquetRows

    decimals = pa.array(
        [None if h else Decimal(str(v)) for v, h in zip(VALUES, HOLES, strict=True)],
        pa.decimal128(9, 2),
    )
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"x": VALUES, "c": decimals}), path)
    want = np.column_stack([VALUES, np.where(HOLES, np.nan, VALUES)])
    np.testing.assert_array_equal(read_table(path).X, want)
    streamed = ParquetRows(path)
    got = streamed.take(torch.arange(N)).numpy()
    streamed.close()
    np.testing.assert_allclose(got, want, rtol=1e-7)  # float32


def test_aekit_impute_names_a_parquet_timestamp_column_by_its_dtype(tmp_path, capsys):
    """Was "holds datetime values (dtype object)", the column made object on the way in."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    from aekit.cli import main

    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"x": VALUES, "when": pd.date_range("2024", periods=N)}), path)
    argv = ["impute", str(path), "-o", str(tmp_path / "f.parquet"), "--epochs", "3"]
    assert main([*argv, "--n-estimators", "1", "--device", "cpu"]) == 2
    assert "column 'when' holds datetime64[ns] values" in capsys.readouterr().err


@pytest.mark.parametrize("cell", [lambda i: {"k": i}, lambda i: [i], lambda i: {i}])
def test_unhashable_cells_are_refused_by_name(cell):
    X = pd.DataFrame({"a": np.arange(12.0), "b": [cell(i) for i in range(12)]})
    with pytest.raises(DataTypeError, match=r"^column 'b' holds \w+ values such as"):
        Autoencoder(code_dim=1, **FAST).fit(X)
