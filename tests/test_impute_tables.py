"""AutoencoderImputer on tables with categorical, bool and text columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from aekit import Autoencoder, AutoencoderImputer
from aekit.errors import AekitWarning, DataTypeError
from tests.helpers import FAST


def _table(n=200, seed=0):
    """A penguins-like table: three numbers, a category, a text and a bool column."""
    rng = np.random.default_rng(seed)
    kind = rng.integers(0, 3, n)
    size = kind + 0.3 * rng.normal(size=n)
    return pd.DataFrame(
        {
            "species": pd.Categorical.from_codes(kind, ["Adelie", "Chinstrap", "Gentoo"]),
            "length": 40 + 5 * size + rng.normal(size=n),
            "island": np.array(["Biscoe", "Dream", "Torgersen"], dtype=object)[(kind + 1) % 3],
            "mass": 3500 + 700 * size + 50 * rng.normal(size=n),
            "male": rng.random(n) < 0.5,
            "year": rng.integers(2007, 2010, n),
        },
        index=np.arange(100, 100 + n),
    )


def _with_holes(table, columns, rate=0.2, seed=1):
    rng = np.random.default_rng(seed)
    out = table.copy()
    for name in columns:
        out.loc[rng.random(len(out)) < rate, name] = np.nan
    return out


def _imputer(epochs=5, **kw):
    ae = Autoencoder(code_dim=3, hidden=(32,), **{**FAST, "epochs": epochs})
    return AutoencoderImputer(ae, n_estimators=1, **kw)


def test_table_holes_filled_columns_dtypes_and_observed_cells_kept():
    truth = _table()
    holed = _with_holes(truth, ["species", "length", "island", "mass"])
    imputer = _imputer(add_indicator=True)
    out = imputer.fit_transform(holed)
    base = out[list(truth.columns)]
    assert isinstance(out, pd.DataFrame) and out.index.equals(holed.index)
    assert list(out.columns) == list(imputer.get_feature_names_out())
    assert list(out.columns[6:]) == [f"missingindicator_{c}" for c in holed.columns[:4]]
    assert all(dtype == np.bool_ for dtype in out.iloc[:, 6:].dtypes)
    assert not base.isna().any().any()
    assert (base.dtypes == holed.dtypes).all()  # category, float, object, bool, int
    assert list(base["species"].cat.categories) == ["Adelie", "Chinstrap", "Gentoo"]
    assert set(base.loc[holed["island"].isna(), "island"]) <= {"Biscoe", "Dream", "Torgersen"}
    seen = holed.notna()
    for name in holed.columns:
        assert (base.loc[seen[name], name] == holed.loc[seen[name], name]).all(), name
    assert (out.iloc[:, 6:].to_numpy() == holed.iloc[:, :4].isna().to_numpy()).all()


def test_category_predicted_from_the_numbers_beats_the_most_frequent():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 3))
    label = np.where(x[:, 0] + x[:, 1] > 0.5, "high", "low")
    truth = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "label": label})
    holed = truth.copy()
    hidden = rng.random(len(truth)) < 0.3
    holed.loc[hidden, "label"] = np.nan
    out = _imputer(epochs=60).fit_transform(holed)
    accuracy = (out.loc[hidden, "label"] == truth.loc[hidden, "label"]).mean()
    most_frequent = (truth.loc[hidden, "label"] == holed["label"].mode()[0]).mean()
    assert accuracy >= most_frequent + 0.15, (accuracy, most_frequent)


def test_integer_coded_array_with_categorical_features_gives_an_array():
    table = _table(120)
    X = np.column_stack([table["species"].cat.codes, table["length"]]).astype(float)
    X[::7, 0] = np.nan
    out = _imputer(categorical_features=[0]).fit_transform(X)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64 and not np.isnan(out).any()
    assert set(out[::7, 0]) <= {0.0, 1.0, 2.0}
    np.testing.assert_array_equal(out[1::7], X[1::7])
    with pytest.raises(DataTypeError, match="dense"):
        _imputer(categorical_features=[0]).fit(sparse.csr_matrix(np.nan_to_num(X)))


def test_unseen_category_is_a_hole_and_a_text_marker_is_missing():
    truth = _table(120)
    imputer = _imputer().fit(truth)
    other = truth.copy()
    other["island"] = other["island"].where(np.arange(len(other)) % 5 > 0, "Atlantis")
    with pytest.warns(AekitWarning, match="Atlantis"):
        out = imputer.transform(other)
    assert set(out["island"]) <= {"Biscoe", "Dream", "Torgersen"}
    marked = truth.astype({"island": object})
    marked.loc[::4, "island"] = "?"
    out = _imputer(missing_values="?").fit_transform(marked)
    assert "?" not in set(out["island"])


def test_real_penguins_go_through():
    penguins = pytest.importorskip("palmerpenguins").load_penguins()
    out = AutoencoderImputer(n_estimators=1, random_state=0).fit_transform(penguins)
    assert list(out.columns) == list(penguins.columns) and (out.dtypes == penguins.dtypes).all()
    assert not out.isna().any().any()
    assert set(out["sex"]) == {"female", "male"}


def test_a_numeric_marker_in_an_integer_column_of_a_table_keeps_its_kind():
    # marking the -1 cells wrote NaN into the int64 column, which became float64, and its
    # fills were not rounded (45.7647)
    rng = np.random.default_rng(0)
    n = 60
    frame = pd.DataFrame({
        "a": rng.normal(size=n), "i": rng.integers(20, 80, size=n),
        "c": pd.Categorical(rng.choice(list("pq"), n)),
    })  # fmt: skip
    frame.loc[[3, 8, 13], "i"] = -1
    base = Autoencoder(code_dim=2, hidden=[8], epochs=3, random_state=0)
    filled = AutoencoderImputer(base, n_estimators=1, missing_values=-1).fit(frame).transform(frame)
    assert filled["i"].dtype == np.int64 and list(filled.dtypes) == list(frame.dtypes)
    assert (filled["i"] >= 20).all()  # filled within the observed range, whole numbers
    kept = frame["i"] != -1
    assert (filled.loc[kept, "i"] == frame.loc[kept, "i"]).all()


def test_a_numeric_marker_in_an_integer_array_with_categories_stays_numeric():
    # the marked column was Int64 while filled and the array came back of dtype object
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.integers(0, 3, 60), rng.integers(20, 80, 60)])
    X[[3, 8], 1] = -1
    base = Autoencoder(code_dim=2, hidden=[8], epochs=3, random_state=0)
    imputer = AutoencoderImputer(base, n_estimators=1, missing_values=-1, categorical_features=[0])
    filled = imputer.fit(X).transform(X)
    assert filled.dtype == np.int64 and (filled[[3, 8], 1] >= 20).all()


def test_rows_without_labels_are_read_by_position_after_a_fit_on_integer_labels():
    # positions 0 and 1 were read as the fitted labels 0 and 1: the columns swapped
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({1: rng.choice(["a", "b"], 100), 0: rng.choice(["p", "q"], 100)})
    imputer = AutoencoderImputer(Autoencoder(code_dim=1, **FAST), n_estimators=1).fit(frame)
    np.testing.assert_array_equal(imputer.transform(frame.to_numpy()), frame.to_numpy())
