"""AutoencoderImputer: scikit-learn's imputer conventions, and its saved folder."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from sklearn.base import clone

import aekit
from aekit import Autoencoder, AutoencoderImputer, AutoencoderOutlierDetector
from aekit.errors import AekitWarning, ConfigError, DataError, DataTypeError, ModelFileError
from aekit.files import folder_kind
from tests.helpers import FAST


def _tiny(**kw):
    ae = Autoencoder(code_dim=1, hidden=(8,), epochs=3, batch_size=16, device="cpu")
    return AutoencoderImputer(ae, **{"n_estimators": 1, **kw})


def _holed(n=120, d=5, seed=0, rate=0.2):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2)) @ rng.normal(size=(2, d)) + 0.1 * rng.normal(size=(n, d))
    X[rng.random(X.shape) < rate] = np.nan
    return X


# -- scikit-learn's own imputer tests (sklearn/impute/tests/test_common.py) ----------------
# Their tables have a column that is all missing: the imputer warns of it (SimpleImputer too).
EMPTY_COLUMN = "ignore:column.* have no observed value in fit:aekit.errors.AekitWarning"


def sklearn_common():
    """scikit-learn's own module of imputer tests (shipped inside the installed package)."""
    return pytest.importorskip("sklearn.impute.tests.test_common")


def _imputer_for_sklearn():
    return _tiny(n_estimators=2)  # an ensemble, so the members' seeds are exercised too


@pytest.mark.filterwarnings(EMPTY_COLUMN)
@pytest.mark.parametrize("marker", [np.nan, -1, 0])
def test_sklearn_add_indicator(marker):
    sklearn_common().test_imputers_add_indicator(marker, _imputer_for_sklearn())


@pytest.mark.filterwarnings(EMPTY_COLUMN)
@pytest.mark.parametrize("marker", [np.nan, -1])
@pytest.mark.parametrize("container", [sparse.csr_matrix, sparse.csr_array])
def test_sklearn_add_indicator_sparse(marker, container):
    sklearn_common().test_imputers_add_indicator_sparse(_imputer_for_sklearn(), marker, container)


@pytest.mark.filterwarnings(EMPTY_COLUMN)
@pytest.mark.parametrize("add_indicator", [True, False])
def test_sklearn_pandas_na_integer_array(add_indicator):
    sklearn_common().test_imputers_pandas_na_integer_array_support(
        _imputer_for_sklearn(), add_indicator
    )


@pytest.mark.parametrize("add_indicator", [True, False])
def test_sklearn_feature_names_out(add_indicator):
    with pytest.warns(AekitWarning, match=r"\['e'\] have no observed value"):
        sklearn_common().test_imputers_feature_names_out_pandas(
            _imputer_for_sklearn(), add_indicator
        )


@pytest.mark.parametrize("keep", [True, False])
def test_sklearn_keep_empty_features(keep):
    with pytest.warns(AekitWarning, match=r"\[0\] have no observed value"):
        sklearn_common().test_keep_empty_features(_imputer_for_sklearn(), keep)


@pytest.mark.parametrize("marker", [np.nan, 1])
def test_sklearn_adds_indicator_when_asked(marker):
    sklearn_common().test_imputation_adds_missing_indicator_if_add_indicator_is_true(
        _imputer_for_sklearn(), marker
    )


def test_sklearn_missing_value_in_test_array():
    sklearn_common().test_imputation_missing_value_in_test_array(_imputer_for_sklearn())


# -- determinism and random_state ------------------------------------------------------------
def test_default_imputer_is_deterministic_and_random_state_takes_a_randomstate():
    X = _holed()
    first = _tiny().fit_transform(X)
    np.testing.assert_array_equal(first, _tiny().fit_transform(X))
    other = _tiny(random_state=1).fit_transform(X)
    assert not np.array_equal(first, other)
    a = _tiny(random_state=np.random.RandomState(3)).fit_transform(X)
    b = _tiny(random_state=np.random.RandomState(3)).fit_transform(X)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ConfigError, match="random_state must be a non-negative integer"):
        _tiny(random_state=-2).fit(X)


def test_detector_members_take_an_estimator_with_a_randomstate():
    X = np.nan_to_num(_holed())
    ae = Autoencoder(code_dim=2, hidden=(8,), **{**FAST, "random_state": None})
    scores = [
        AutoencoderOutlierDetector(
            ae.set_params(random_state=np.random.RandomState(5)), n_estimators=2
        )
        .fit(X)
        .anomaly_score(X)
        for _ in range(2)
    ]
    np.testing.assert_array_equal(*scores)


def test_autoencoder_takes_a_randomstate_and_saves_it_as_none(tmp_path):
    X = np.nan_to_num(_holed())
    params = {"code_dim": 2, "hidden": (8,), **FAST}
    codes = [
        Autoencoder(**{**params, "random_state": np.random.RandomState(7)}).fit_transform(X)
        for _ in range(2)
    ]
    np.testing.assert_array_equal(*codes)
    ae = Autoencoder(**{**params, "random_state": np.random.RandomState(7)}).fit(X)
    assert Autoencoder.load(ae.save(tmp_path / "m")).random_state is None
    with pytest.raises(ConfigError, match=r"random_state must be .* got 1\.5"):
        Autoencoder(**{**params, "random_state": 1.5}).fit(X)


# -- bad input: one clear error ---------------------------------------------------------------
def test_text_marker_on_numeric_rows_is_refused():
    with pytest.raises(DataTypeError, match=r"missing_values='-1' is a str but X is numeric"):
        _tiny(missing_values="-1").fit(np.ones((10, 3)))


def test_one_row_is_refused_everywhere():
    one = np.ones((1, 4))
    for estimator in (
        Autoencoder(epochs=2),
        AutoencoderOutlierDetector(Autoencoder(epochs=2)),
        _tiny(),
    ):
        with pytest.raises(DataError, match=r"X has 1 sample\(s\) \(rows\); fitting needs"):
            estimator.fit(one)


# -- sparse rows ----------------------------------------------------------------------------
def test_sparse_rows_filled_like_dense_ones_and_stay_sparse():
    X = _holed()
    X[np.abs(np.nan_to_num(X, nan=1.0)) < 0.3] = 0.0  # implicit zeros: observed values
    imputer = _tiny().fit(X)
    dense = imputer.transform(X)
    out = imputer.transform(sparse.csr_matrix(X))
    assert sparse.issparse(out) and out.format == "csr"
    np.testing.assert_allclose(out.toarray(), dense, rtol=1e-6, atol=1e-6)
    fitted_sparse = _tiny().fit(sparse.csr_matrix(X)).transform(X)
    np.testing.assert_array_equal(fitted_sparse, dense)
    with pytest.raises(ConfigError, match=r"missing_values=0 cannot mark holes in scipy\.sparse"):
        _tiny(missing_values=0).fit(sparse.csr_matrix(X))
    bad = sparse.csr_matrix(np.nan_to_num(X))
    bad[5, 2] = np.inf
    with pytest.raises(DataError, match="row 5, column 2"):
        imputer.transform(bad)
    with pytest.raises(DataError, match=r"contains NaN but missing_values=-1\.0"):
        _tiny(missing_values=-1.0).fit(sparse.csr_matrix(X))


# -- tables: fills of numeric columns within their observed range ------------------------------
def test_table_fills_clipped_to_each_numeric_columns_range(monkeypatch):
    rng = np.random.default_rng(0)
    n = 80
    table = pd.DataFrame(
        {
            "kind": pd.Categorical(rng.choice(["a", "b"], n)),
            "size": rng.uniform(10, 20, n),
            "count": rng.integers(3, 9, n),
        }
    )
    holed = table.copy()
    holed.loc[:19, "size"] = np.nan
    holed.loc[20:39, "count"] = np.nan
    imputer = _tiny().fit(holed)
    low, high = imputer.bounds_
    assert np.isnan(low[0]) and np.isnan(high[0])  # a categorical column has no bounds
    assert low[1] == holed["size"].min() and high[2] == holed["count"].max()
    layout = imputer.estimator_.table_layout_

    def wild(self, X):  # reconstructions far outside every column's range
        return layout.decode(np.full((len(X), layout.width), 1e6))

    monkeypatch.setattr(Autoencoder, "reconstruct", wild)
    out = imputer.transform(holed)
    assert (out.loc[:19, "size"] == holed["size"].max()).all()
    assert (out.loc[20:39, "count"] == holed["count"].max()).all()
    assert out["count"].dtype == holed["count"].dtype


# -- the imputer folder ---------------------------------------------------------------------
def test_saved_imputer_fills_the_same(tmp_path):
    X = np.nan_to_num(_holed(), nan=-9.0)
    imputer = _tiny(n_estimators=2, add_indicator=True, missing_values=-9.0)
    frame = pd.DataFrame(X, columns=list("abcde"))
    imputer.fit(frame)
    folder = imputer.save(tmp_path / "imp")
    assert folder_kind(folder) == "imputer"
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json", "imputer.json", "members", "weights.safetensors"
    ]  # fmt: skip
    loaded = aekit.load(folder)
    assert isinstance(loaded, AutoencoderImputer)
    np.testing.assert_array_equal(loaded.transform(frame), imputer.transform(frame))
    assert list(loaded.get_feature_names_out()) == list(imputer.get_feature_names_out())
    assert loaded.get_params()["missing_values"] == -9.0
    assert isinstance(loaded.get_params()["estimator"], Autoencoder)


def test_saved_table_imputer_fills_the_same(tmp_path):
    rng = np.random.default_rng(1)
    table = pd.DataFrame(
        {"kind": pd.Categorical(rng.choice(["a", "b", "c"], 60)), "x": rng.normal(size=60)}
    )
    table.loc[::7, "kind"] = np.nan
    table.loc[3::5, "x"] = np.nan
    imputer = _tiny().fit(table)
    loaded = AutoencoderImputer.load(imputer.save(tmp_path / "imp"))
    pd.testing.assert_frame_equal(loaded.transform(table), imputer.transform(table))


def test_aekit_load_returns_each_kind(tmp_path):
    X = np.nan_to_num(_holed())
    ae = Autoencoder(code_dim=2, hidden=(8,), **FAST).fit(X)
    detector = AutoencoderOutlierDetector(ae, prefit=True).fit(X)
    imputer = _tiny().fit(_holed())
    assert type(aekit.load(ae.save(tmp_path / "m"))) is Autoencoder
    assert type(aekit.load(detector.save(tmp_path / "d"))) is AutoencoderOutlierDetector
    assert type(aekit.load(imputer.save(tmp_path / "i"))) is AutoencoderImputer


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return _tiny(n_estimators=2).fit(_holed()).save(tmp_path_factory.mktemp("imp") / "imp")


def _copy(saved, tmp_path):
    return shutil.copytree(saved, tmp_path / "copy")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda meta: meta.update(format="other"), "is not an aekit-imputer file"),
        (lambda meta: meta.update(format_version=9), "format_version 9"),
        (lambda meta: meta["low"].pop(), "'low' must be 5 values"),
        (lambda meta: meta.update(n_members=3), "n_members \\(3\\)"),
        (lambda meta: meta["params"].update(random_state="x"), "'random_state' must be"),
        (lambda meta: meta.update(table=True), "'table' does not match"),
        (lambda meta: meta.update(indicator_features=[7]), "indicator_features must be"),
        (lambda meta: meta.update(estimator_params={"bogus": 1}), "parameter\\(s\\) 'bogus'"),
        (lambda meta: meta.update(estimator_params=[1]), "'estimator_params' must be"),
    ],
)
def test_tampered_imputer_json_is_one_model_file_error(saved, tmp_path, change, message):
    folder = _copy(saved, tmp_path)
    meta = json.loads((folder / "imputer.json").read_text())
    change(meta)
    (folder / "imputer.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match=message):
        aekit.load(folder)


@pytest.mark.parametrize("name", ["imputer.json", "members/1/weights.safetensors"])
def test_truncated_file_is_one_model_file_error(saved, tmp_path, name):
    folder = _copy(saved, tmp_path)
    raw = (folder / name).read_bytes()
    (folder / name).write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ModelFileError):
        AutoencoderImputer.load(folder)


@pytest.mark.parametrize("link", ["members", "members/1"])
def test_an_imputer_member_linked_out_of_the_folder_is_refused(saved, tmp_path, link):
    folder = _copy(saved, tmp_path)
    outside = tmp_path / "outside"
    shutil.move(folder / link, outside)  # a complete, valid model folder: still refused
    (folder / link).symlink_to(outside, target_is_directory=True)
    with pytest.raises(ModelFileError, match="symbolic link"):
        AutoencoderImputer.load(folder)


def test_small_tables_wait_150_steps_before_stopping():
    """patience_for: 20 epochs, or 150 optimiser steps where an epoch has few batches."""
    from aekit.impute import IMPUTER_DEFAULTS, imputer_autoencoder, patience_for

    assert patience_for(np.zeros((178, 4))) == 50  # wine: 158 training rows, 3 batches
    assert patience_for(np.zeros((342, 4))) == 30  # penguins: 5 batches an epoch
    assert patience_for(np.zeros((5000, 4))) == IMPUTER_DEFAULTS["patience"] == 20
    assert imputer_autoencoder(np.zeros((178, 4))).patience == 50


def test_the_code_is_as_wide_as_the_rows_up_to_ten_columns_then_half():
    """code_width_for: a PCA start at full width is the identity; wide rows get half a code."""
    from aekit.impute import code_width_for, imputer_autoencoder

    widths = {1: 2, 5: 5, 10: 10, 11: 6, 13: 7, 61: 31, 128: 64, 784: 64}
    for columns, width in widths.items():
        assert code_width_for(np.zeros((50, columns))) == width, columns
    assert imputer_autoencoder(np.zeros((178, 61))).code_dim == 31


def test_a_text_marker_among_numbers_makes_a_column_of_numbers_not_categories():
    # "45", "43.5" and "?" were categories: holes filled by vote with a text, bounds NaN
    rng = np.random.default_rng(0)
    n = 80
    age = rng.integers(20, 70, n).astype(str).astype(object)
    income = np.round(rng.normal(50, 10, n), 1).astype(str).astype(object)
    age[:12], income[12:24] = "?", "?"
    frame = pd.DataFrame({"age": age, "income": income, "kind": rng.choice(["x", "y"], n)})
    imputer = AutoencoderImputer(Autoencoder(code_dim=1, **FAST), n_estimators=1,
                                 missing_values="?", random_state=0)  # fmt: skip
    filled = imputer.fit(frame).transform(frame)
    assert str(filled.dtypes["age"]) == "Int64" and str(filled.dtypes["income"]) == "Float64"
    assert filled["age"].between(20, 69).all() and filled["income"].notna().all()
    np.testing.assert_array_equal(filled["age"][12:], age[12:].astype(int))
    assert np.isfinite(imputer.bounds_[:, :2]).all()
    with pytest.raises(DataError, match=r"column numbers \(X\['age'\] = pd.to_numeric"):
        Autoencoder(code_dim=1, **FAST).fit(frame)


def test_a_loaded_ensemble_keeps_the_estimator_it_was_given(tmp_path):
    # it got its first member's parameters back (missing 'auto' -> True, random_state None ->
    # the member's seed): a refit of the loaded one trained another model than the saved one
    given = Autoencoder(code_dim=1, epochs=2, batch_size=16, device="cpu")
    X = np.random.default_rng(0).normal(size=(60, 4))
    holed = X.copy()
    holed[::7, 1] = np.nan
    imputer = AutoencoderImputer(given, n_estimators=2, random_state=0).fit(holed)
    detector = AutoencoderOutlierDetector(given, n_estimators=2, random_state=0).fit(X)
    answers = {"AutoencoderImputer": "transform", "AutoencoderOutlierDetector": "anomaly_score"}
    for fitted, data in ((imputer, holed), (detector, X)):
        fitted.save(tmp_path / type(fitted).__name__)
        loaded = aekit.load(tmp_path / type(fitted).__name__)
        assert loaded.estimator.get_params() == given.get_params()
        assert not hasattr(loaded.estimator, "module_")  # unfitted, as given
        answer = answers[type(fitted).__name__]  # a refit of the loaded one: the same fit
        np.testing.assert_array_equal(
            getattr(clone(loaded).fit(data), answer)(data), getattr(fitted, answer)(data)
        )
    assert json.loads((tmp_path / "AutoencoderImputer" / "imputer.json").read_text())[
        "estimator_params"]["missing"] == "auto"  # fmt: skip


def test_a_column_empty_in_fit_keeps_its_observed_values_at_transform():
    # keep_empty_features=True made the whole column 0 (aekit impute --model wrote 0.0 over
    # every observed value of it); SimpleImputer fills its holes with 0 and keeps the rest
    X = _holed()
    X[:, 1] = np.nan
    with pytest.warns(AekitWarning, match="no observed value"):
        imputer = _tiny(keep_empty_features=True).fit(X)
    fresh = np.random.default_rng(5).normal(size=(6, 5))
    fresh[[0, 3], 1] = np.nan
    want = np.where(np.isnan(fresh[:, 1]), 0.0, fresh[:, 1])
    np.testing.assert_array_equal(imputer.transform(fresh)[:, 1], want)
    np.testing.assert_array_equal(imputer.transform(sparse.csr_array(fresh)).toarray()[:, 1], want)
    frame = pd.DataFrame(fresh, columns=list("abcde")).assign(t=list("xyxyxy"))
    train = pd.DataFrame(X, columns=list("abcde")).assign(t=np.where(np.arange(120) % 2, "x", "y"))
    with pytest.warns(AekitWarning, match="no observed value"):
        tables = _tiny(keep_empty_features=True).fit(train)
    np.testing.assert_array_equal(tables.transform(frame)["b"].to_numpy(), want)


def test_the_callers_array_is_left_as_it_was_on_the_table_path():
    # marked cells and unseen categories were written as NaN into the caller's array
    rng = np.random.default_rng(0)
    A = np.column_stack([rng.normal(size=100), rng.integers(0, 3, 100).astype(float)])
    A[rng.random(A.shape) < 0.2] = -1
    given = A.copy()
    imputer = _tiny(missing_values=-1, categorical_features=[1]).fit(A)
    np.testing.assert_array_equal(A, given)
    B = given.copy()
    B[0, 1] = 7.0  # a category unseen in fit
    with pytest.warns(AekitWarning, match="not seen"):
        imputer.transform(B)
    B0 = given.copy()
    B0[0, 1] = 7.0
    np.testing.assert_array_equal(B, B0)


@pytest.mark.parametrize("container", ["frame", "fortran"])
def test_the_callers_rows_with_an_empty_column_are_left_as_they_were(container):
    # the linear chain handed the caller's view to IterativeImputer, which writes 0 into an
    # empty column: the frame's column came back all 0, and a later fit thought it observed
    rng = np.random.default_rng(0)
    a = rng.normal(size=60)
    X = np.column_stack([np.where(np.arange(60) % 5 == 0, np.nan, a), 2 * a, np.full(60, np.nan)])
    if container == "frame":  # built column by column, as read_csv builds one
        rows = pd.DataFrame({name: X[:, j].copy() for j, name in enumerate("abe")})
    else:
        rows = np.asfortranarray(X)
    with pytest.warns(AekitWarning, match="no observed value"):
        AutoencoderImputer(estimator=None, n_estimators=1, keep_empty_features=True).fit(rows)
    np.testing.assert_array_equal(np.asarray(rows), X)


def test_a_number_marker_never_marks_a_boolean_cell():
    # False == 0 in Python: missing_values=0 made every False of a boolean column a hole
    x = np.r_[0.0, np.arange(1, 60.0)]
    frame = pd.DataFrame({"x": x, "y": 2 * x, "t": [True, False] * 30, "o": [False, "a"] * 30})
    out = AutoencoderImputer(missing_values=0, n_estimators=1).fit_transform(frame)
    pd.testing.assert_series_equal(out["t"], frame["t"])
    pd.testing.assert_series_equal(out["o"], frame["o"])
    assert out["x"].iloc[0] != 0  # the marked number is still a hole
    flags = pd.DataFrame({"t": [True, False, True], "n": [0, 1, 2]})
    from aekit.data.textcells import marker_cells

    assert marker_cells(flags, [False])["t"].tolist() == [False, True, False]  # a bool marker
    assert marker_cells(flags, [0])["n"].tolist() == [True, False, False]


def test_a_table_imputer_fills_an_array_of_the_same_cells():
    # an imputer fitted on a frame with a text column raised KeyError: 0 on the frame's array
    frame = pd.DataFrame({"x": np.r_[np.nan, np.arange(59.0)], "c": list("pq") * 30})
    imputer = AutoencoderImputer(n_estimators=1).fit(frame)
    with pytest.warns(UserWarning, match="does not have valid feature names"):  # sklearn's
        filled = imputer.transform(frame.to_numpy())
    assert isinstance(filled, np.ndarray) and filled.shape == (60, 2)
    assert filled[0, 0] == imputer.transform(frame)["x"].iloc[0]
    assert list(filled[:, 1]) == list(frame["c"])


def test_an_object_array_gets_rounded_fills_in_a_column_fitted_as_integers():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 50, 60)
    frame = pd.DataFrame({"a": a, "b": 2 * a + 1, "c": list("pq") * 30})
    frame.loc[::7, "a"] = -1
    imputer = AutoencoderImputer(n_estimators=1, missing_values=-1).fit(frame)
    with pytest.warns(UserWarning, match="does not have valid feature names"):  # sklearn's
        filled = imputer.transform(frame.to_numpy())
    fills = filled[::7, 0].astype(np.float64)
    np.testing.assert_array_equal(fills, np.round(fills))
    np.testing.assert_array_equal(fills, imputer.transform(frame)["a"].to_numpy()[::7])
