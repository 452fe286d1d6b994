"""A DataFrame whose column labels are integers: matched by label, never read by position.

scikit-learn keeps ``feature_names_in_`` for string names only; aekit keeps integer labels
too, so the model, the outlier detector and the imputer put a frame with the fitted labels in
another order back in the fitted order, refuse other labels in one line, and remember the
labels in their saved folders (an older folder, without them, still takes columns by
position).
"""

import json
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest

from aekit import Autoencoder, AutoencoderImputer, AutoencoderOutlierDetector
from aekit.data.names import fitted_labels
from aekit.errors import AekitWarning, DataError, ModelFileError
from tests.helpers import FAST

LABELS = [3, 1, 2, 0]  # integers, not 0..n-1 in order: a positional reading is caught too
ORDER = [0, 3, 1, 2]  # the same labels, another order
KINDS = (Autoencoder, AutoencoderOutlierDetector, AutoencoderImputer)


@pytest.fixture(scope="module")
def frame():
    """Four columns on very different scales: a positional mix-up changes every answer."""
    rng = np.random.default_rng(0)
    return pd.DataFrame(rng.normal(size=(150, 4)) * [1, 10, 100, 1000], columns=LABELS)


@pytest.fixture(scope="module")
def fitted(frame):
    holes = frame.mask(np.random.default_rng(1).random(frame.shape) < 0.1)
    return (
        Autoencoder(code_dim=2, **FAST).fit(frame),
        AutoencoderOutlierDetector(Autoencoder(code_dim=2, **FAST)).fit(frame),
        AutoencoderImputer(Autoencoder(code_dim=2, **FAST), n_estimators=1).fit(holes),
        holes,
    )


def _answers(ae, detector, imputer, X, holes):
    """Every method's answer; where ``X`` is reordered, reconstruct and the fill say they come
    in the fitted order (a column per feature), nothing else warns."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        answers = [
            ae.transform(X), ae.reconstruct(X), ae.score_samples(X), ae.reconstruction_error(X),
            detector.score_samples(X), detector.predict(X), detector.decision_function(X),
            np.asarray(imputer.transform(holes)),
        ]  # fmt: skip
    said = [str(w.message).split(":")[1] for w in caught]
    reordered = list(X.columns) != LABELS
    assert said == ([" reconstruct returns its columns in the fitted order (3, 1, 2, 0), not X's",
                     " transform returns its columns in the fitted order (3, 1, 2, 0), not X's"]
                    if reordered else []), said  # fmt: skip
    return answers


def test_integer_labels_in_another_order_are_put_in_the_fitted_order(fitted, frame):
    ae, detector, imputer, holes = fitted
    assert not hasattr(ae, "feature_names_in_")  # as scikit-learn: names are strings only
    assert ae._column_labels == detector._column_labels == imputer._column_labels == LABELS
    expected = _answers(ae, detector, imputer, frame, holes)
    again = _answers(ae, detector, imputer, frame[ORDER], holes[ORDER])
    for want, got in zip(expected, again, strict=True):
        np.testing.assert_array_equal(got, want)
    codes = ae.transform(frame)
    with pytest.warns(AekitWarning, match=r"in the fitted order \(3, 1, 2, 0\)"):
        np.testing.assert_array_equal(ae.inverse_transform(codes), ae.reconstruct(frame[ORDER]))
    # rows without labels are still taken by position, as before
    np.testing.assert_array_equal(ae.transform(frame.to_numpy()), codes)


@pytest.mark.parametrize(
    ("columns", "says"),
    [
        ([3, 1, 2, 7], "unseen at fit time: 7; missing: 0"),
        (["3", "1", "2", "0"], "unseen at fit time: '3', '1', '2', '0'; missing: 3, 1, 2, 0"),
        ([0, 1, 2, 3, 4], "unseen at fit time: 4"),
    ],
)
def test_other_labels_are_refused_in_one_line(fitted, columns, says):
    ae, detector, imputer, _ = fitted
    X = pd.DataFrame(np.zeros((3, len(columns))), columns=columns)
    for method in (ae.transform, ae.reconstruct, detector.predict, imputer.transform):
        with pytest.raises(DataError, match="integer labels seen in fit") as caught:
            method(X)
        assert says in str(caught.value) and "\n" not in str(caught.value)


def test_saved_folders_remember_the_labels_and_older_ones_load(fitted, frame, tmp_path):
    ae, detector, imputer, holes = fitted
    files = {"m": "config.json", "d": "detector.json", "i": "imputer.json"}
    versions = {"m": 5, "d": 5, "i": 6}
    before = {"m": 4, "d": 3, "i": 2}  # the versions before column_labels
    for name, estimator in zip("mdi", (ae, detector, imputer), strict=True):
        estimator.save(tmp_path / name)
        meta = json.loads((tmp_path / name / files[name]).read_text())
        assert meta["format_version"] == versions[name]
        assert meta["column_labels"] == LABELS and meta["feature_names"] is None
    loaded = [cls.load(tmp_path / n) for cls, n in zip(KINDS, "mdi", strict=True)]
    expected = _answers(ae, detector, imputer, frame, holes)
    for want, got in zip(expected, _answers(*loaded, frame[ORDER], holes[ORDER]), strict=True):
        np.testing.assert_array_equal(got, want)
    for name in "mdi":  # written before the labels: no such field, columns by position
        path = tmp_path / name / files[name]
        meta = json.loads(path.read_text())
        del meta["column_labels"]
        meta["format_version"] = before[name]
        path.write_text(json.dumps(meta))
    old = [cls.load(tmp_path / n) for cls, n in zip(KINDS, "mdi", strict=True)]
    assert not any(hasattr(e, "_column_labels") for e in old)
    np.testing.assert_array_equal(old[0].transform(frame.to_numpy()), ae.transform(frame))


@pytest.mark.parametrize(
    "labels", [[3, 1, 2], [3, 1, 2, "0"], [3, 3, 2, 0], [3, 1, 2, True], [3, 1, 2, 0.0]]
)
def test_saved_labels_that_do_not_fit_are_refused(fitted, tmp_path, labels):
    ae = fitted[0]
    ae.save(tmp_path / "m")
    path = tmp_path / "m" / "config.json"
    meta = json.loads(path.read_text())
    meta["column_labels"] = labels
    path.write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="column_labels must be 4 distinct integers"):
        Autoencoder.load(tmp_path / "m")


def test_a_refit_on_rows_without_labels_forgets_them(frame):
    ae = Autoencoder(code_dim=2, **FAST).fit(frame)
    ae.fit(frame.to_numpy())
    assert not hasattr(ae, "_column_labels")
    ae.transform(frame[ORDER])  # no labels kept: by position, as for any unnamed model


def test_the_command_line_takes_a_labelled_imputers_columns_by_position(fitted, tmp_path, capsys):
    """A file's columns have names, never integer labels: by position, as for unnamed models."""
    from aekit.cli import main

    imputer, holes = fitted[2], fitted[3]
    imputer.save(tmp_path / "i")
    holes.set_axis(list("abcd"), axis=1).to_csv(tmp_path / "d.csv", index=False)
    assert main(["impute", "--model", str(tmp_path / "i"), str(tmp_path / "d.csv"), "-o",
                 str(tmp_path / "f.csv")]) == 0  # fmt: skip
    assert "warning" not in capsys.readouterr().err
    filled = pd.read_csv(tmp_path / "f.csv")
    np.testing.assert_allclose(filled.to_numpy(), imputer.transform(holes), rtol=1e-6)


def test_the_command_line_takes_a_labelled_tables_columns_by_position(tmp_path, capsys):
    """A table model (text columns) keeps its frame to the end: relabelled, not refused."""
    from aekit.cli import main

    rng = np.random.default_rng(2)
    table = pd.DataFrame(
        {5: rng.normal(size=90), 2: rng.choice(["r", "g"], 90), 7: rng.normal(size=90) * 10}
    )
    ae = Autoencoder(code_dim=1, **FAST).fit(table)
    ae.save(tmp_path / "m")
    table.set_axis(["a", "b", "c"], axis=1).to_csv(tmp_path / "t.csv", index=False)
    out = tmp_path / "s.npy"
    assert main(["score", str(tmp_path / "m"), str(tmp_path / "t.csv"), "-o", str(out)]) == 0
    assert "warning" not in capsys.readouterr().err
    np.testing.assert_allclose(np.load(out)[:, 0], ae.reconstruction_error(table), rtol=1e-6)


def test_a_pyarrow_table_is_read_by_its_column_names(fitted, frame):
    """A pyarrow Table: its names were refused in a raw AttributeError (its ``columns``
    are its data, not its names), and a model fitted on names read it by position."""
    pa = pytest.importorskip("pyarrow")
    from aekit.sae import SparseAutoencoder

    named = frame.set_axis(list("dbca"), axis=1)
    table = pa.Table.from_pandas(named, preserve_index=False)
    reordered = table.select(["a", "c", "d", "b"])
    ae = Autoencoder(code_dim=2, **FAST).fit(table)
    detector = AutoencoderOutlierDetector(Autoencoder(code_dim=2, **FAST)).fit(table)
    assert list(ae.feature_names_in_) == list("dbca")
    np.testing.assert_array_equal(ae.transform(reordered), ae.transform(named))
    np.testing.assert_array_equal(detector.score_samples(reordered), detector.score_samples(named))
    sae = SparseAutoencoder(code_dim=8, k=2, batch_size=32, device="cpu").fit(named)
    np.testing.assert_array_equal(sae.transform(reordered), sae.transform(named))
    with pytest.raises(DataError, match="unseen at fit time: z"):
        ae.transform(table.rename_columns(list("zbca")))
    # integer labels at fit: a table's names are text, refused in one line
    with pytest.raises(DataError, match="integer labels seen in fit"):
        fitted[0].transform(pa.Table.from_pandas(frame.set_axis(list("dbca"), axis=1)))


def test_labels_mixing_text_with_other_kinds_are_one_data_error(frame):
    mixed = frame.set_axis([3, "b", True, 0], axis=1)
    with pytest.raises(DataError, match=r"mix text with other kinds \(bool, int, str\)"):
        Autoencoder(code_dim=2, **FAST).fit(mixed)


@pytest.mark.parametrize("columns", [list("abcd"), LABELS])
def test_a_resumed_fit_reads_the_checkpoints_columns_by_name(frame, tmp_path, columns):
    """A checkpoint keeps the columns' names or labels: a resumed fit on a DataFrame with
    them in another order trained the checkpoint's weights on the wrong columns; now it reads
    them by name, and refuses other names."""
    from tests.helpers import InterruptAt

    named = frame.set_axis(columns, axis=1)
    options = {**FAST, "code_dim": 2, "epochs": 3, "checkpoint_dir": str(tmp_path)}
    with pytest.raises(KeyboardInterrupt):
        Autoencoder(**options).fit(named, callbacks=(InterruptAt(3),))
    shuffled = [columns[i] for i in (3, 1, 0, 2)]
    with pytest.raises(DataError, match="unseen at fit time"):
        other = "z" if isinstance(columns[0], str) else 99
        Autoencoder(**options).fit(named.set_axis([*columns[:3], other], axis=1), resume=True)
    resumed = Autoencoder(**options).fit(named, resume=True)
    assert resumed.n_iter_ == 3
    # the same columns in another order are read by name, as aekit fit --resume reads a file
    # (before, they were refused; earlier still, trained on by position)
    first = shutil.copy(sorted(tmp_path.glob("checkpoint-*.safetensors"))[0], tmp_path / "c")
    in_order = Autoencoder(**options).fit(named, resume=first)
    reordered = Autoencoder(**options).fit(named[shuffled], resume=first)
    assert list(fitted_labels(reordered)) == columns and reordered.n_iter_ == 3
    np.testing.assert_array_equal(reordered.transform(named), in_order.transform(named))


@pytest.mark.parametrize("broken", [b"", b"not a checkpoint", "cut"])
def test_a_resumed_fit_reads_the_columns_of_the_checkpoint_it_resumes(frame, tmp_path, broken):
    """A broken newest file is skipped by the resume: its columns are read from the one the
    resume takes (they were read from the broken file, none, and reordered columns refused)."""
    from tests.helpers import InterruptAt

    options = {**FAST, "code_dim": 2, "epochs": 3, "checkpoint_dir": str(tmp_path)}
    with pytest.raises(KeyboardInterrupt):
        Autoencoder(**options).fit(frame, callbacks=(InterruptAt(3),))
    newest = sorted(tmp_path.glob("checkpoint-*.safetensors"))[-1]
    later = tmp_path / "checkpoint-e999999-b000000.safetensors"
    later.write_bytes(newest.read_bytes()[:-50] if broken == "cut" else broken)
    shuffled = frame[[frame.columns[i] for i in (3, 1, 0, 2)]]
    resumed = Autoencoder(**options).fit(shuffled, resume=True)
    assert resumed.n_iter_ == 3 and list(fitted_labels(resumed)) == list(frame.columns)


@pytest.mark.parametrize(
    "labels",
    [pd.MultiIndex.from_product([["a", "b"], [1, 2]]), [0.5, 1.5, 2.5, 3.5],
     pd.date_range("2020-01-01", periods=4)],
)  # fmt: skip
def test_labels_neither_text_nor_integers_are_refused(labels):
    # scikit-learn keeps no names for them: a reordered frame was taken by position, unwarned
    X = pd.DataFrame(np.random.default_rng(0).normal(size=(40, 4)), columns=labels)
    with pytest.raises(DataError, match="X's column labels must be text or integers, got "):
        Autoencoder(code_dim=1, epochs=1, random_state=0).fit(X)
