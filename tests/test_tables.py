"""Categorical and boolean columns: the table layout, the softmax blocks, the error unit."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import aekit
from aekit import Autoencoder, AutoencoderOutlierDetector, ConfigError, DataError, load
from aekit.cli import main
from aekit.data.formats import read_table
from aekit.data.missing import group_matrix, groups_from_blocks
from aekit.data.tables import TableLayout, needs_layout
from aekit.errors import AekitWarning, DataTypeError
from aekit.training.objective import categorical_loss_sum
from tests.helpers import FAST


def mixed(n=400, seed=0):
    """Numeric columns, a 3-category text column that is a function of them, a bool column."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    kind = np.where(x[:, 0] + x[:, 1] > 0.5, "hi", np.where(x[:, 0] - x[:, 2] > 0, "mid", "lo"))
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "kind": kind, "up": x[:, 2] > 0})


@pytest.fixture(scope="module")
def fitted():
    df = mixed()
    return Autoencoder(code_dim=2, **{**FAST, "epochs": 40}).fit(df), df


def test_layout_round_trips_columns_dtypes_and_categories():
    df = pd.DataFrame(
        {
            "x": [1.5, 2.0, 3.0, 4.0],
            "cat": pd.Categorical(
                ["a", "b", "a", "c"], categories=["c", "b", "a", "z"], ordered=True
            ),
            "flag": [True, False, True, True],
            "obj": pd.Series(["u", "v", "u", "v"], dtype=object),
            "text": pd.array(["p", "q", "p", "q"], dtype="string"),
            "code": [3, 1, 3, 2],
            "f32": np.float32([1, 2, 3, 4]),
        }
    )
    layout = TableLayout.fit(df, categorical_features=["code"])
    assert layout.blocks == ((1, 5), (5, 7), (7, 9), (9, 11), (11, 14))
    # one group per input column: what masking noise hides whole (aekit.data.missing)
    groups = groups_from_blocks(layout.width, layout.blocks)
    assert list(groups) == [0, 1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 5, 6]
    encoded = layout.encode(df)
    assert encoded.dtype == np.float32 and encoded.shape == (4, 15)
    assert encoded[0, 1:5].tolist() == [0, 0, 1, 0]  # "a" is the third category of the dtype
    back = layout.decode(encoded)
    pd.testing.assert_frame_equal(back, df.astype({"x": np.float64, "code": np.int64}))
    again = TableLayout.from_dict(json.loads(json.dumps(layout.to_dict())))
    assert again == layout and again.decode(encoded).equals(back)


def test_integer_coded_columns_of_an_array_by_index_and_mask():
    X = np.array([[0, 1.5], [2, 2.5], [1, 0.0]])
    for spec in ([0], np.array([True, False]), "0"):
        layout = TableLayout.fit(X, spec)
        assert layout.blocks == ((0, 3),) and not layout.frame
        assert np.array_equal(layout.decode(layout.encode(X)), X)
    assert not needs_layout(X) and needs_layout(X, [0])
    with pytest.raises(ConfigError, match="no column 5"):
        TableLayout.fit(X, [5])
    for scalar in (1, np.int64(1), True, 1.0):  # TypeError: object of type 'int' has no len()
        with pytest.raises(ConfigError, match=r"must be a list of column names.*\[1\]"):
            Autoencoder(code_dim=1, epochs=1, categorical_features=scalar).fit(X)


def test_missing_and_unseen_categories_become_missing_blocks():
    layout = TableLayout.fit(pd.DataFrame({"colour": ["red", "blue", "red"], "x": [1.0, 2, 3]}))
    new = pd.DataFrame({"colour": ["red", None, "purple"], "x": [1.0, 2, 3]})
    with pytest.warns(AekitWarning, match=r"column 'colour'.*not seen in fit \('purple'\)"):
        encoded = layout.encode(new)
    assert encoded[0, :2].tolist() == [0, 1]
    assert np.isnan(encoded[1:, :2]).all() and not np.isnan(encoded[:, 2]).any()


def test_equal_values_are_one_category_as_documented():
    """docs/user_guide/tables.rst: 1, 1.0 and True are one category; as text, three."""
    mixed = pd.DataFrame({"t": pd.Series([True, 1, 1.0, "x"], dtype=object), "x": [1.0, 2, 3, 4]})
    assert len(TableLayout.fit(mixed).columns[0].categories) == 2
    as_text = mixed.assign(t=mixed["t"].astype(str))
    assert len(TableLayout.fit(as_text).columns[0].categories) == 4


def test_too_many_categories_and_dates_name_the_column():
    ids = pd.DataFrame({"x": np.arange(60.0), "user": [f"u{i}" for i in range(60)]})
    with pytest.raises(DataError, match=r"column 'user' has 60 distinct values.*max_categories=50"):
        Autoencoder(**FAST).fit(ids)
    TableLayout.fit(ids, max_categories=60)  # allowed when raised
    # numbers written with thousands separators are text to a reader without thousands=','
    written = ids.assign(user=[f"{1000 + 37 * i:,}" for i in range(60)])  # '1,000', '1,037'...
    with pytest.raises(DataError, match=r"thousands separators \(such as '1,000'\)") as caught:
        Autoencoder(**FAST).fit(written)
    assert "thousands=','" in str(caught.value)
    dates = pd.DataFrame({"x": [1.0, 2.0], "when": pd.to_datetime(["2024-01-01", "2024-02-01"])})
    with pytest.raises(DataTypeError, match=r"column 'when' holds datetime64"):
        Autoencoder(**FAST).fit(dates)


def test_categories_are_learned_from_the_numeric_columns(fitted):
    ae, df = fitted
    back = ae.reconstruct(df)
    assert isinstance(back, pd.DataFrame) and list(back.columns) == list(df.columns)
    assert list(back.dtypes) == list(df.dtypes)
    chance = df["kind"].value_counts(normalize=True).max()  # 0.42
    assert (back["kind"] == df["kind"]).mean() > chance + 0.3
    assert (back["up"] == df["up"]).mean() > 0.8
    assert ae.model_config_.categorical_blocks == ((3, 6), (6, 8))
    assert ae.module_.scale[3:].tolist() == [1.0] * 5 and ae.module_.offset[3:].abs().sum() == 0
    assert ae.inverse_transform(ae.transform(df)).equals(back)
    assert isinstance(ae.transform(df), np.ndarray)


def test_the_error_unit_is_one_hot_minus_probabilities_squared(fitted):
    ae, df = fitted
    module, layout = ae.module_, ae.table_layout_
    rows = torch.from_numpy(layout.encode(df[:20]))
    scaled = module.scale_input(rows)
    out = module(scaled)
    probs = out.recon[:, 3:6].detach()
    assert torch.allclose(probs.sum(dim=1), torch.ones(20))
    expected = (out.recon.detach().double() - scaled.double()).square().sum(dim=1)
    one_hot_part = (probs.double() - scaled[:, 3:6].double()).square().sum(dim=1)
    assert one_hot_part.max() > 0
    assert np.allclose(ae.reconstruction_error(df[:20]), expected.numpy(), rtol=1e-6)
    # training uses cross-entropy on the same blocks; a missing (NaN) block adds nothing
    target = scaled.clone()
    ce = categorical_loss_sum(out.logits, target, ((3, 6),))
    manual = -(torch.log_softmax(out.logits[:, 3:6], 1) * target[:, 3:6]).sum()
    assert torch.allclose(ce, manual)
    row0 = -(torch.log_softmax(out.logits[0, 3:6], 0) * target[0, 3:6]).sum()
    target[0, 3:6] = float("nan")
    assert torch.allclose(categorical_loss_sum(out.logits, target, ((3, 6),)), ce - row0)


def test_model_folder_round_trip(fitted, tmp_path):
    ae, df = fitted
    ae.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["table"]["columns"][3]["categories"] == ["hi", "lo", "mid"]
    again = load(tmp_path / "m")
    assert np.array_equal(again.reconstruction_error(df), ae.reconstruction_error(df))
    assert again.reconstruct(df).equals(ae.reconstruct(df))
    assert list(again.feature_names_in_) == list(df.columns)


def test_loading_a_categorical_model_imports_no_dynamo_nor_sympy(fitted, tmp_path):
    # the folder's shape check builds the network on the meta device, where one_hot imports
    # torch._dynamo (~3 s on every command) and scatter_'s meta check sympy (~0.5 s)
    ae, df = fitted
    ae.save(tmp_path / "m")
    df.to_csv(tmp_path / "rows.csv", index=False)
    code = (
        "import sys, aekit, pandas as pd; "
        f"ae = aekit.load({str(tmp_path / 'm')!r}); "
        f"codes = ae.transform(pd.read_csv({str(tmp_path / 'rows.csv')!r})); "
        "assert codes.shape == (400, 2), codes.shape; "
        "heavy = [m for m in ('torch._dynamo', 'sympy') if m in sys.modules]; "
        "assert not heavy, f'imported {heavy}'"
    )
    env = {"PYTHONPATH": str(Path(aekit.__file__).parents[1])}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr


def test_group_matrix_is_one_hot_of_the_groups_on_every_device():
    groups = (0, 1, 1, 2, 0, 3)
    expected = torch.nn.functional.one_hot(torch.tensor(groups), 4).float()
    assert torch.equal(group_matrix(groups), expected)
    with torch.device("meta"):
        on_meta = group_matrix(groups)
    assert (on_meta.shape, on_meta.dtype, on_meta.device.type) == ((6, 4), torch.float32, "meta")


def test_outlier_detector_on_a_table(fitted):
    _, df = fitted
    det = AutoencoderOutlierDetector(Autoencoder(**FAST), n_estimators=1, random_state=0)
    det.fit(df)
    flipped = df.assign(kind=df["kind"].map({"hi": "lo", "lo": "hi", "mid": "hi"}))
    assert det.score_samples(flipped).mean() < det.score_samples(df).mean()
    assert det.reconstruction_error(df).shape == (len(df),)


def test_cli_fits_and_scores_a_csv_with_text_columns(tmp_path, capsys):
    df = mixed(200)
    df.to_csv(tmp_path / "t.csv", index=False)
    assert isinstance(read_table(tmp_path / "t.csv").X, pd.DataFrame)
    options = ["--code-dim", "2", "--epochs", "3", "--seed", "0", "-q"]
    assert main(["fit", str(tmp_path / "t.csv"), *options, "-o", str(tmp_path / "m")]) == 0
    out = str(tmp_path / "s.csv")
    assert main(["score", str(tmp_path / "m"), str(tmp_path / "t.csv"), "-o", out]) == 0
    scores = np.loadtxt(out, skiprows=1)
    assert scores.shape == (200,) and np.isfinite(scores).all()
    assert load(tmp_path / "m").table_layout_.blocks == ((3, 6), (6, 8))


def test_an_empty_column_after_a_categorical_one_is_named_in_the_warning():
    # the mask of empty columns was in one-hot space, the names in the input's: an IndexError,
    # or the wrong column named (a full one after a three-category column)
    import warnings

    from aekit import Autoencoder, AutoencoderImputer
    from aekit.errors import AekitWarning

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "s": rng.choice(list("pqr"), 40), "e": np.nan, "a": rng.normal(size=40),
        "b": rng.normal(size=40), "c": rng.normal(size=40),
    })  # fmt: skip
    with pytest.warns(AekitWarning, match=r"1 column\(s\) .* \('e'\)"):
        Autoencoder(code_dim=2, hidden=[8], epochs=2, random_state=0).fit(frame)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AekitWarning)  # its own warning of the empty column
        base = Autoencoder(code_dim=2, hidden=[8], epochs=2, random_state=0)
        filled = AutoencoderImputer(base, n_estimators=1).fit_transform(frame.iloc[:, [2, 0, 1]])
    assert list(filled.columns) == ["a", "s"] and not filled.isna().any().any()


def test_partial_fit_names_an_unseen_category_among_the_missing_values():
    # it said "X contains NaN" of a chunk without any: its new category is read as missing
    rng = np.random.default_rng(0)
    first = pd.DataFrame({"x": rng.normal(size=40), "kind": rng.choice(["a", "b"], 40)})
    ae = Autoencoder(code_dim=1, epochs=1, random_state=0, missing=False).partial_fit(first)
    later = first.assign(kind=["c"] * 40)
    unseen = pytest.warns(aekit.AekitWarning, match=r"not seen in fit \('c'\)")
    with unseen, pytest.raises(DataError, match="or categories the first call did not see"):
        ae.partial_fit(later)


def test_reconstructions_of_a_table_keep_its_index(fitted):
    # a fresh 0..n-1 index: assigned back to the input's rows, every value became NaN
    ae, df = fitted
    rows = df.iloc[60:65].copy()
    back = ae.reconstruct(rows)
    assert list(back.index) == list(rows.index)
    rows["kind_hat"] = back["kind"]
    assert rows["kind_hat"].notna().all()
    codes = pd.DataFrame(ae.transform(rows[df.columns]), index=rows.index)
    assert list(ae.inverse_transform(codes).index) == list(rows.index)


def test_a_column_of_text_categories_given_numbers_is_refused_not_emptied():
    # "1", "2", "3" in a parquet file, 1.0, 2.0, 3.0 in a CSV: every value was "not seen in
    # fit", a hole, with a warning; the scores changed
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=90), "cat": ["1", "2", "3"] * 30})
    model = Autoencoder(code_dim=1, epochs=2, random_state=0).fit(frame)
    with pytest.raises(DataError, match=r"none of its values .* was seen in fit, whose categories"):
        model.transform(frame.assign(cat=[1.0, 2.0, 3.0] * 30))
    with pytest.warns(AekitWarning, match="not seen in fit"):  # a new category: a hole
        model.transform(frame.assign(cat="4"))
