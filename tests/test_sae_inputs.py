"""Bad activations for a sparse autoencoder: one clear error naming the data's first bad entry.

NaN and infinity, in every source ``fit`` takes and in the rows and codes of inference,
were a loss that "became nan" (blaming the learning rate), NaN codes or a raw traceback
from ``aekit report``; text was a raw TypeError.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from aekit.cli import main
from aekit.errors import DataError, DataTypeError
from aekit.sae import SparseAutoencoder

FAST = {"code_dim": 16, "k": 2, "batch_size": 32, "n_epochs": 1, "device": "cpu"}


@pytest.fixture(scope="module")
def rows():
    return np.random.default_rng(0).normal(size=(256, 8)).astype(np.float32)


@pytest.fixture(scope="module")
def sae(rows):
    return SparseAutoencoder(**FAST).fit(rows)


def _spoiled(rows, value):
    bad = rows.copy()
    bad[200, 5] = value  # met early in a shuffled epoch, but not the data's first
    bad[37, 2] = value
    return bad


@pytest.mark.parametrize("value, kind", [(np.nan, "NaN"), (np.inf, "infinity")])
@pytest.mark.parametrize("source", ["array", "tensor", "npy", "shards", "iterable"])
def test_fit_names_the_first_bad_activation(tmp_path, rows, value, kind, source):
    bad = _spoiled(rows, value)
    if source == "npy":
        np.save(tmp_path / "a.npy", bad)
        data, what = str(tmp_path / "a.npy"), "a.npy"
    elif source == "shards":
        (tmp_path / "acts").mkdir()
        np.save(tmp_path / "acts" / "0.npy", bad[:128])
        np.save(tmp_path / "acts" / "1.npy", bad[128:])
        data, what = str(tmp_path / "acts"), "acts"
    else:
        data = {"array": bad, "tensor": torch.from_numpy(bad), "iterable": [bad[:64], bad[64:]]}
        data, what = data[source], "X" if source != "iterable" else "a batch of the iterable"
    with pytest.raises(DataError, match=f"contains {kind} \\(first at row 37, column 2\\)") as err:
        SparseAutoencoder(**FAST).fit(data)
    assert what in str(err.value)


def test_inference_refuses_nan_infinity_and_text(sae, rows):
    for value, kind in [(np.nan, "NaN"), (np.inf, "infinity"), (1e39, "infinity")]:
        bad = _spoiled(rows.astype(np.float64), value)
        for method in (sae.transform, sae.reconstruct, sae.evaluate):
            with pytest.raises(DataError, match=f"X contains {kind} \\(first at row 37, column 2"):
                method(bad)
    with pytest.raises(DataTypeError, match="expected numbers"):
        sae.transform(np.full((3, 8), "a"))
    np.testing.assert_array_equal(sae.transform(rows.astype(object)), sae.transform(rows))


def test_inverse_transform_checks_the_codes(sae, rows):
    codes = sae.transform(rows[:4])
    with pytest.raises(DataError, match=r"codes must have shape \(n_samples, 16\)"):
        sae.inverse_transform(codes[:, :15])
    codes[1, 3] = np.inf
    with pytest.raises(DataError, match="infinity"):
        sae.inverse_transform(codes)


def test_the_report_of_an_sae_on_bad_rows_is_one_line(tmp_path, sae, rows, capsys):
    sae.save(tmp_path / "sae")
    for value in (np.inf, np.nan):
        np.save(tmp_path / "bad.npy", _spoiled(rows, value))
        argv = [
            "report",
            str(tmp_path / "sae"),
            str(tmp_path / "bad.npy"),
            "-o",
            str(tmp_path / "r"),
        ]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("aekit: error: X contains") and err.count("\n") == 1, err
    assert not (tmp_path / "r" / "index.html").exists()


def test_an_sae_folder_given_as_a_model_is_named(tmp_path, sae, rows, capsys):
    sae.save(tmp_path / "sae")
    np.save(tmp_path / "rows.npy", rows)
    for command in ("encode", "score", "reconstruct"):
        argv = [
            command,
            str(tmp_path / "sae"),
            str(tmp_path / "rows.npy"),
            "-o",
            str(tmp_path / "o.npy"),
        ]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "holds a sparse autoencoder (SAE), not an autoencoder" in err, err
        assert err.count("\n") == 1


def test_no_rows_to_measure_is_an_error_not_nan_figures(tmp_path, sae, rows, capsys):
    with pytest.raises(DataError, match="X has no rows"):
        sae.evaluate(rows[:0])
    sae.save(tmp_path / "sae")
    np.save(tmp_path / "rows.npy", rows)
    for count in ("0", "-5"):  # -5 was rows[:-5]: all but the last five, silently
        argv = ["report", str(tmp_path / "sae"), str(tmp_path / "rows.npy"), "--rows", count]
        assert main([*argv, "-o", str(tmp_path / "r")]) == 2
        assert f"--rows: expected a positive integer, got '{count}'" in capsys.readouterr().err
    assert not (tmp_path / "r" / "index.html").exists()


def test_ground_truth_is_checked_before_it_is_used(tmp_path, sae, rows, capsys):
    rng = np.random.default_rng(1)
    features, codes = rng.normal(size=(4, 8)), (rng.random((len(rows), 4)) < 0.3).astype(float)
    bad_features, bad_codes = features.copy(), codes.copy()
    bad_features[1, 3], bad_codes[7, 2] = np.nan, np.inf
    cases = [  # a raw ValueError from the Hungarian match, an IndexError, an F1 of 0 from NaN
        ({"true_features": bad_features}, "true_features contains NaN \\(first at row 1, column 3"),
        ({"true_features": features, "true_codes": bad_codes}, "true_codes contains infinity"),
        ({"true_features": features, "true_codes": codes[:, :3]}, "true_codes must be of shape"),
    ]
    for kwargs, match in cases:
        with pytest.raises(DataError, match=match):
            sae.evaluate(rows, **kwargs)
    sae.save(tmp_path / "sae")
    np.save(tmp_path / "rows.npy", rows)
    np.save(tmp_path / "features.npy", bad_features)
    argv = ["report", str(tmp_path / "sae"), str(tmp_path / "rows.npy"), "-o", str(tmp_path / "r")]
    assert main([*argv, "--true-features", str(tmp_path / "features.npy")]) == 2
    assert "aekit: error: true_features contains NaN" in capsys.readouterr().err


def test_stop_after_is_positive_and_its_hint_holds(tmp_path, rows, capsys):
    np.save(tmp_path / "rows.npy", rows)
    argv = ["sae", str(tmp_path / "rows.npy"), "--code-dim", "16", "--k", "2", "--batch-size", "32"]
    assert main([*argv, "-o", str(tmp_path / "a"), "--stop-after", "0"]) == 2  # saved untrained
    assert "--stop-after: expected a positive integer, got '0'" in capsys.readouterr().err
    assert main([*argv, "-o", str(tmp_path / "b"), "--stop-after", "2"]) == 0
    out = capsys.readouterr().out  # '--resume to go on' without a checkpoint to resume from
    assert "no --checkpoint-dir: it cannot be resumed" in out and "--resume" not in out
    checkpoints = ["--checkpoint-dir", str(tmp_path / "ck")]
    assert main([*argv, "-o", str(tmp_path / "c"), "--stop-after", "2", *checkpoints]) == 0
    assert "--resume to go on" in capsys.readouterr().out


def test_a_dataframe_is_read_by_its_columns_not_their_positions(tmp_path, rows):
    import json

    import pandas as pd

    import aekit

    frame = pd.DataFrame(rows * np.arange(1, 9, dtype=np.float32), columns=list("abcdefgh"))
    sae = SparseAutoencoder(**FAST).fit(frame)
    assert list(sae.feature_names_in_) == list("abcdefgh")
    want = sae.transform(frame)
    # before, a reordered frame was encoded by position (other codes) and a renamed one taken
    np.testing.assert_array_equal(sae.transform(frame[list("hgfedcba")]), want)
    with pytest.raises(DataError, match="unseen at fit time: 'z'; missing: 'a'"):
        sae.transform(frame.rename(columns={"a": "z"}))
    sae.save(tmp_path / "named")
    loaded = aekit.load(tmp_path / "named")
    np.testing.assert_array_equal(loaded.transform(frame[list("hgfedcba")]), want)
    labelled = SparseAutoencoder(**FAST).fit(pd.DataFrame(rows))  # integer labels
    assert not hasattr(labelled, "feature_names_in_")
    np.testing.assert_array_equal(
        labelled.transform(pd.DataFrame(rows)[list(range(7, -1, -1))]), labelled.transform(rows)
    )
    # a format 4 folder has no column_labels: a frame is read by position, as it was then
    header_path = tmp_path / "named" / "sae.json"
    header = json.loads(header_path.read_text())
    assert header["format_version"] == 5 and header["column_labels"] == list("abcdefgh")
    del header["column_labels"]
    header["format_version"] = 4
    header_path.write_text(json.dumps(header))
    old = aekit.load(tmp_path / "named")
    np.testing.assert_array_equal(old.transform(frame.rename(columns={"a": "z"})), want)


def test_column_labels_named_twice_or_missing_from_an_old_pickle(tmp_path, rows):
    import pandas as pd

    import aekit

    with pytest.raises(DataError, match="'a' more than once"):
        SparseAutoencoder(**FAST).fit(pd.DataFrame(rows, columns=list("aabcdefg")))
    sae = SparseAutoencoder(**FAST).fit(rows)
    del sae._column_labels  # an SAE pickled before format 5
    sae.save(tmp_path / "old")
    np.testing.assert_array_equal(aekit.load(tmp_path / "old").transform(rows), sae.transform(rows))


@pytest.mark.parametrize(
    "labels",
    [["a"] * 8, list("abc"), [1, "b", 2, 3, 4, 5, 6, 7], "abc", [[0]] * 8, [True, *range(7)]],
)
def test_a_folder_with_bad_column_labels_is_refused(tmp_path, sae, labels):
    import json

    import aekit
    from aekit.errors import ModelFileError

    sae.save(tmp_path / "s")
    header_path = tmp_path / "s" / "sae.json"
    header = json.loads(header_path.read_text())
    header["column_labels"] = labels
    header_path.write_text(json.dumps(header))
    with pytest.raises(ModelFileError, match="column_labels must be null or 8 distinct"):
        aekit.load(tmp_path / "s")


@pytest.mark.parametrize("layout", ["file", "folder"])
def test_a_fit_on_parquet_reads_frames_by_the_file_s_column_names(tmp_path, rows, layout):
    import json

    import pandas as pd

    frame = pd.DataFrame(rows * np.arange(1, 9, dtype=np.float32), columns=list("abcdefgh"))
    if layout == "file":
        frame.to_parquet(path := tmp_path / "acts.parquet", index=False)
    else:
        (path := tmp_path / "acts").mkdir()
        frame.iloc[:100].to_parquet(path / "part-0.parquet", index=False)
        frame.iloc[100:].to_parquet(path / "part-1.parquet", index=False)
    sae = SparseAutoencoder(**FAST).fit(str(path))
    assert list(sae.feature_names_in_) == list("abcdefgh")
    # before, a file's fit recorded no names: a reordered frame was encoded by position
    np.testing.assert_array_equal(
        sae.transform(frame[list("hgfedcba")]), sae.transform(frame.values)
    )
    with pytest.raises(DataError, match="unseen at fit time: 'z'; missing: 'a'"):
        sae.transform(frame.rename(columns={"a": "z"}))
    sae.save(tmp_path / "saved")
    header = json.loads((tmp_path / "saved" / "sae.json").read_text())
    assert header["column_labels"] == list("abcdefgh")


def test_an_iterable_of_frames_is_read_by_the_first_frame_s_columns(rows):
    import pandas as pd

    frame = pd.DataFrame(rows * np.arange(1, 9, dtype=np.float32), columns=list("abcdefgh"))
    in_order = SparseAutoencoder(**FAST).fit([frame.iloc[:128], frame.iloc[128:]])
    # before, the second frame's reordered columns were trained on by position
    shuffled = [frame.iloc[:128], frame.iloc[128:][list("hgfedcba")]]
    reordered = SparseAutoencoder(**FAST).fit(shuffled)
    assert list(reordered.feature_names_in_) == list("abcdefgh")
    np.testing.assert_array_equal(reordered.components_, in_order.components_)
    np.testing.assert_array_equal(
        reordered.transform(shuffled[1]), in_order.transform(frame.values[128:])
    )
    renamed = [frame.iloc[:128], frame.iloc[128:].rename(columns={"c": "z"})]
    with pytest.raises(DataError, match=r"a batch of the iterable's columns .* unseen at fit time"):
        SparseAutoencoder(**FAST).fit(renamed)
    with pytest.raises(DataError, match="'a' more than once"):
        SparseAutoencoder(**FAST).fit([frame, frame.rename(columns={"b": "a"})])


def test_a_resumed_run_on_other_columns_is_refused(tmp_path, rows):
    """A checkpoint keeps the data's column names: resuming on a file whose columns are
    in another order (or renamed) trained on by position before."""
    import pandas as pd

    from aekit.errors import ConfigError

    frame = pd.DataFrame(rows, columns=list("abcdefgh"))
    frame.to_parquet(tmp_path / "same.parquet", index=False)
    frame[list("hgfedcba")].to_parquet(tmp_path / "reordered.parquet", index=False)
    frame.rename(columns={"a": "z"}).to_parquet(tmp_path / "renamed.parquet", index=False)
    options = {**FAST, "checkpoint_dir": str(tmp_path / "run"), "checkpoint_every": 2}
    SparseAutoencoder(**options).fit(str(tmp_path / "same.parquet"), stop_after=4)
    with pytest.raises(ConfigError, match="same columns in another order"):
        SparseAutoencoder(**options).fit(str(tmp_path / "reordered.parquet"), resume=True)
    with pytest.raises(DataError, match="unseen at fit time: 'z'; missing: 'a'"):
        SparseAutoencoder(**options).fit(str(tmp_path / "renamed.parquet"), resume=True)
    resumed = SparseAutoencoder(**options).fit(str(tmp_path / "same.parquet"), resume=True)
    assert resumed.n_steps_ == 8 and list(resumed.feature_names_in_) == list("abcdefgh")
    SparseAutoencoder(**options).fit(rows, resume=True)  # rows without names: by position
    # a DataFrame in memory is read by name, as Autoencoder.fit and aekit fit --resume read it
    kept = shutil.copy(sorted((tmp_path / "run").glob("checkpoint-*"))[0], tmp_path / "c")
    in_order = SparseAutoencoder(**options).fit(frame, resume=kept)
    shuffled = SparseAutoencoder(**options).fit(frame[list("hgfedcba")], resume=kept)
    assert list(shuffled.feature_names_in_) == list("abcdefgh")
    np.testing.assert_array_equal(shuffled.components_, in_order.components_)


def test_a_resumed_run_on_other_rows_is_refused_with_normalize(tmp_path, rows):
    """normalize's input scale comes back with the checkpoint: a run resumed on rows 100
    times larger trained on at the old scale (1.01 where its own would be 0.0101)."""
    from aekit.errors import ConfigError

    options = {
        **FAST, "normalize": True, "checkpoint_dir": str(tmp_path), "checkpoint_every": 2,
    }  # fmt: skip
    SparseAutoencoder(**options).fit(rows, stop_after=4)
    with pytest.raises(ConfigError, match="written for other data: its input scale"):
        SparseAutoencoder(**options).fit(rows * 100, resume=True)
    assert SparseAutoencoder(**options).fit(rows, resume=True).n_steps_ == 8


def test_a_folder_of_safetensors_shards_and_other_data_files_is_refused(tmp_path):
    # the .npy beside the shards was left out without a word (aekit fit refuses such a folder)
    from safetensors.numpy import save_file

    rows = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
    save_file({"acts": rows[:150]}, str(tmp_path / "a.safetensors"))
    save_file({"acts": rows[150:]}, str(tmp_path / "b.safetensors"))
    np.save(tmp_path / "c.npy", rows)
    with pytest.raises(DataError, match=r"other data files \(c\.npy\)"):
        SparseAutoencoder("topk", code_dim=16, k=2, n_epochs=1).fit(str(tmp_path))
