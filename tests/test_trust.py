"""Files you can trust (issue 24): loaders read only regular files inside the folder, within
size limits; config fields that disagree with the weights, impossible thresholds and paths
taken from a file are refused with one ModelFileError; each case ends fast (no hang)."""

import json
import os
import re
import shutil
import threading

import numpy as np
import pytest

import aekit
from aekit import Autoencoder, AutoencoderOutlierDetector, ModelFileError
from aekit.anomaly.detectorfile import STATS_NAME
from aekit.estimator.modelfile import CONFIG_NAME, WEIGHTS_NAME
from aekit.files.layouts import DETECTOR_NAME
from tests.helpers import (
    DETECTOR_TAMPERED,
    FAST,
    IMPUTER_TAMPERED,
    IMPUTER_TAMPERED_TEXT,
    ONNX_METADATA,
    REPLACEMENTS,
    TAMPERED,
    TAMPERED_TEXT,
    make_fifo,
    npy_header_bytes,
    set_onnx_metadata,
)

DEADLINE_S = 20.0  # a FIFO or /dev/zero must be refused at once, not hang or fill memory


def load_within_deadline(folder):
    """``aekit.load(folder)`` in a daemon thread; fail the test if it has not ended in time."""
    outcome = {}

    def target():
        try:
            outcome["model"] = aekit.load(folder)
        except BaseException as exc:  # handed to the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(DEADLINE_S)
    assert not thread.is_alive(), f"aekit.load({folder}) hung for {DEADLINE_S} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["model"]


@pytest.fixture(scope="module")
def rows():
    return np.random.default_rng(0).normal(size=(120, 6))


@pytest.fixture(scope="module")
def saved(rows, tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved") / "m"
    Autoencoder(code_dim=2, hidden=(8,), **FAST).fit(rows).save(folder)
    return folder


@pytest.fixture(scope="module")
def saved_detector(rows, tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved") / "d"
    ae = Autoencoder(code_dim=2, hidden=(8,), **FAST)
    AutoencoderOutlierDetector(ae, n_estimators=2, contamination=0.1).fit(rows).save(folder)
    return folder


def _copy(folder, tmp_path):
    return shutil.copytree(folder, tmp_path / folder.name)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize("name", [CONFIG_NAME, WEIGHTS_NAME])
@pytest.mark.parametrize("kind", REPLACEMENTS)
def test_a_model_file_that_is_not_a_regular_file_is_refused_fast(saved, tmp_path, name, kind):
    folder = _copy(saved, tmp_path)
    replace, match = REPLACEMENTS[kind]
    replace(folder / name)
    with pytest.raises(ModelFileError, match=match):
        load_within_deadline(folder)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize("name", [DETECTOR_NAME, STATS_NAME])
@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_a_detector_file_that_is_not_a_regular_file_is_refused_fast(
    saved_detector, tmp_path, name, kind
):
    folder = _copy(saved_detector, tmp_path)
    replace, match = REPLACEMENTS[kind]
    replace(folder / name)
    with pytest.raises(ModelFileError, match=match):
        load_within_deadline(folder)


@pytest.mark.parametrize("link", ["members", "members/1"])
def test_a_detector_member_linked_out_of_the_folder_is_refused(saved_detector, tmp_path, link):
    folder = _copy(saved_detector, tmp_path)
    outside = tmp_path / "outside"
    shutil.move(folder / link, outside)  # a complete, valid model folder: still refused
    (folder / link).symlink_to(outside, target_is_directory=True)
    with pytest.raises(ModelFileError, match="symbolic link"):
        load_within_deadline(folder)


def test_the_detector_still_loads_from_its_own_files(saved_detector, rows):
    det = load_within_deadline(saved_detector)
    assert isinstance(det, AutoencoderOutlierDetector) and len(det.estimators_) == 2
    assert det.predict(rows).shape == (len(rows),)


def test_a_json_file_over_the_limit_is_refused_before_reading(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    with open(folder / CONFIG_NAME, "r+b") as handle:
        handle.truncate(65 << 20)  # sparse: 65 MiB of zeros that take no disk
    with pytest.raises(ModelFileError, match="more than the"):
        load_within_deadline(folder)


@pytest.mark.parametrize("extra", [1, 1 << 20])
def test_weights_longer_than_their_header_declares_are_refused(saved, tmp_path, extra):
    folder = _copy(saved, tmp_path)
    with open(folder / WEIGHTS_NAME, "ab") as handle:
        handle.write(b"\0" * extra)
    with pytest.raises(ModelFileError, match="more than the"):
        load_within_deadline(folder)


@pytest.mark.parametrize("length", [0, 2**63, (100 << 20) + 1])
def test_a_safetensors_header_length_out_of_range_is_refused(saved, tmp_path, length):
    folder = _copy(saved, tmp_path)
    raw = (folder / WEIGHTS_NAME).read_bytes()
    (folder / WEIGHTS_NAME).write_bytes(length.to_bytes(8, "little") + raw[8:])
    with pytest.raises(ModelFileError, match="bad header length"):
        load_within_deadline(folder)


@pytest.mark.parametrize("case", [*TAMPERED, *TAMPERED_TEXT])
def test_a_config_that_disagrees_with_the_weights_is_refused(saved, tmp_path, case):
    folder = _copy(saved, tmp_path)
    config = json.loads((folder / CONFIG_NAME).read_text())
    if case in TAMPERED:
        edit, match = TAMPERED[case]
        edit(config)
        text = json.dumps(config)
    else:
        value, match = TAMPERED_TEXT[case]
        config["model"]["code_dim"] = 123456789
        text = json.dumps(config).replace("123456789", value)
    (folder / CONFIG_NAME).write_text(text)
    with pytest.raises(ModelFileError, match=match) as info:
        load_within_deadline(folder)
    assert "\n" not in str(info.value)  # one line


@pytest.mark.parametrize("threshold", ["NaN", "Infinity", "-Infinity"])
def test_a_threshold_that_is_not_finite_is_refused(saved_detector, tmp_path, threshold):
    folder = _copy(saved_detector, tmp_path)
    meta = json.loads((folder / DETECTOR_NAME).read_text())
    meta["threshold"] = 123.25
    text = json.dumps(meta).replace("123.25", threshold)
    (folder / DETECTOR_NAME).write_text(text)
    with pytest.raises(ModelFileError, match=r"threshold must be a finite number, got (nan|-?inf)"):
        load_within_deadline(folder)


@pytest.mark.parametrize("case", DETECTOR_TAMPERED)
def test_a_detector_json_with_impossible_values_is_refused(saved_detector, tmp_path, case):
    folder = _copy(saved_detector, tmp_path)
    meta = json.loads((folder / DETECTOR_NAME).read_text())
    edit, match = DETECTOR_TAMPERED[case]
    edit(meta)
    (folder / DETECTOR_NAME).write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match=match):
        load_within_deadline(folder)


@pytest.fixture(scope="module")
def saved_imputer(rows, tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved") / "i"
    holes = np.where(np.random.default_rng(1).random(rows.shape) < 0.1, np.nan, rows)
    ae = Autoencoder(code_dim=2, hidden=(8,), **FAST)
    aekit.AutoencoderImputer(ae, n_estimators=2).fit(holes).save(folder)
    return folder


@pytest.mark.parametrize("case", [*IMPUTER_TAMPERED, *IMPUTER_TAMPERED_TEXT])
def test_an_imputer_json_with_impossible_values_is_refused(saved_imputer, tmp_path, case):
    folder = _copy(saved_imputer, tmp_path)
    meta = json.loads((folder / "imputer.json").read_text())
    if case in IMPUTER_TAMPERED:
        edit, match = IMPUTER_TAMPERED[case]
        edit(meta)
        text = json.dumps(meta)
    else:
        key, value, match = IMPUTER_TAMPERED_TEXT[case]
        meta[key][0] = 123.25
        text = json.dumps(meta).replace("123.25", value)
    (folder / "imputer.json").write_text(text)
    with pytest.raises(ModelFileError, match=match) as caught:
        load_within_deadline(folder)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("key", "text", "match"), ONNX_METADATA)
def test_onnx_metadata_that_cannot_be_is_refused(saved_detector, tmp_path, key, text, match):
    """Every field ``aekit score`` takes from an ONNX file's metadata is checked: one
    ModelFileError naming the field."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from aekit.export import OnnxModel, to_onnx

    path = to_onnx(aekit.load(saved_detector), tmp_path / "d.onnx")
    set_onnx_metadata(path, path, key, text)
    with pytest.raises(ModelFileError, match=match) as caught:
        OnnxModel(path)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 300
    assert OnnxModel(to_onnx(aekit.load(saved_detector), tmp_path / "ok.onnx")).n_features == 6


def test_checkpoint_dir_is_never_taken_from_a_saved_file(rows, tmp_path):
    stored = tmp_path / "stored-checkpoints"
    ae = Autoencoder(code_dim=2, hidden=(8,), checkpoint_dir=str(stored), **FAST).fit(rows)
    folder = ae.save(tmp_path / "m")
    assert json.loads((folder / CONFIG_NAME).read_text())["train"]["checkpoint_dir"]
    shutil.rmtree(stored)
    loaded = load_within_deadline(folder)
    assert loaded.get_params()["checkpoint_dir"] is None
    assert loaded.train_config_.checkpoint_dir is None
    loaded.fit(rows)  # a refit of the loaded model writes no checkpoints where the file said
    assert not stored.exists()
    np.testing.assert_array_equal(loaded.transform(rows), ae.transform(rows))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize("kind", REPLACEMENTS)
def test_a_checkpoint_that_is_not_a_regular_file_is_skipped_fast(rows, tmp_path, kind, caplog):
    """Checkpoint folders follow the saved folders' rule: regular files only, no hang."""
    import logging

    from aekit.training.checkpoint import checkpoint_run, find_checkpoint, read_checkpoint

    folder = tmp_path / "ck"
    Autoencoder(code_dim=2, hidden=(8,), checkpoint_dir=str(folder), **FAST).fit(rows)
    good, newest = sorted(folder.glob("checkpoint-*.safetensors"))[-2:]
    replace, match = REPLACEMENTS[kind]
    replace(newest)
    outcome = {}

    def target():
        with caplog.at_level(logging.WARNING, logger="aekit"):
            outcome["found"] = find_checkpoint(folder)
        outcome["run"] = checkpoint_run(newest)
        try:
            read_checkpoint(newest)
        except ModelFileError as exc:
            outcome["error"] = str(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(DEADLINE_S)
    assert not thread.is_alive(), f"reading checkpoint {kind} hung for {DEADLINE_S} s"
    assert outcome["found"][0] == good and "skipping unusable checkpoint" in caplog.text
    assert outcome["run"] is None
    assert re.search(match, outcome["error"]) and "\n" not in outcome["error"]


# -- input files checked before allocation ----------------------------------------------------
SMALL_LIMIT = 16 << 20  # AEKIT_MAX_INPUT_BYTES in these tests: 16 MiB


@pytest.fixture()
def small_limit(monkeypatch):
    monkeypatch.setenv("AEKIT_MAX_INPUT_BYTES", str(SMALL_LIMIT))


def _read_quietly(path):
    """``read_table(path)``, with any warning an error (a refusal is one clear line only)."""
    import warnings

    from aekit.data.formats import read_table

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return read_table(path)


def test_a_compressed_npz_bomb_is_refused_before_unpacking(tmp_path, small_limit):
    np.savez_compressed(tmp_path / "bomb.npz", X=np.zeros((1024, 8192)))  # 64 MiB of zeros
    assert (tmp_path / "bomb.npz").stat().st_size < 1 << 20
    with pytest.raises(aekit.DataError, match=r"would unpack to 67,1.* AEKIT_MAX_INPUT_BYTES"):
        _read_quietly(tmp_path / "bomb.npz")


def test_a_sparse_npz_bomb_is_refused_before_unpacking(tmp_path, monkeypatch):
    import scipy.sparse as sp

    monkeypatch.setenv("AEKIT_MAX_INPUT_BYTES", str(1 << 20))  # 1 MiB; the matrix holds 2.4
    X = sp.csr_array((np.ones(200_000), (np.zeros(200_000, int), np.arange(200_000))))
    sp.save_npz(tmp_path / "bomb.npz", X, compressed=True)
    with pytest.raises(aekit.DataError, match="would unpack"):
        _read_quietly(tmp_path / "bomb.npz")


@pytest.mark.parametrize("shape", [(10**6, 10**6), (2**62, 2**62), (3, 10**18)])
def test_an_npz_array_claiming_more_than_it_holds_is_refused(tmp_path, shape):
    import zipfile

    with zipfile.ZipFile(tmp_path / "lie.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("X.npy", npy_header_bytes(shape) + b"\0" * 64)
    with pytest.raises(aekit.DataError, match="declares shape"):
        _read_quietly(tmp_path / "lie.npz")


@pytest.mark.parametrize("shape", [(10**6, 10**6), (2**62, 2**62), (10, 10)])
def test_an_npy_header_that_does_not_describe_its_file_is_refused_quietly(tmp_path, shape):
    (tmp_path / "lie.npy").write_bytes(npy_header_bytes(shape) + b"\0" * 64)
    with pytest.raises(aekit.DataError, match="its header declares shape"):
        _read_quietly(tmp_path / "lie.npy")


def test_honest_arrays_still_read(tmp_path):
    X = np.arange(12.0).reshape(4, 3)
    np.save(tmp_path / "x.npy", X)
    np.savez_compressed(tmp_path / "x.npz", X=X)
    for name in ("x.npy", "x.npz"):
        np.testing.assert_array_equal(np.asarray(_read_quietly(tmp_path / name).X), X)


def test_a_gzipped_idx_bomb_is_refused_before_unpacking(tmp_path, small_limit):
    import gzip

    header = bytes([0, 0, 0x08, 3]) + b"".join(n.to_bytes(4, "big") for n in (4096, 64, 64))
    with gzip.open(tmp_path / "bomb-idx3-ubyte.gz", "wb") as handle:
        handle.write(header + bytes(4096 * 64 * 64))  # 16 MiB + header: over the limit
    with pytest.raises(aekit.DataError, match="would unpack"):
        _read_quietly(tmp_path / "bomb-idx3-ubyte.gz")


@pytest.mark.parametrize(
    ("size_line", "name", "match"),
    [
        ("10 10 1000000000000", "claims.mtx", "more than its"),
        ("1000000000000 1000000000000 1", "wide.mtx", "would unpack"),
        ("10 10 1000000000000", "claims.mtx.gz", "would unpack"),
        ("1 2", "short.mtx", "bad size line"),
    ],
)
def test_a_matrix_market_header_claiming_too_much_is_refused(tmp_path, size_line, name, match):
    import gzip

    text = f"%%MatrixMarket matrix coordinate real general\n% a comment\n{size_line}\n1 1 1.5\n"
    opener = gzip.open if name.endswith(".gz") else open
    with opener(tmp_path / name, "wt") as handle:
        handle.write(text)
    with pytest.raises(aekit.DataError, match=match):
        _read_quietly(tmp_path / name)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_aekit_encode_on_a_fifo_in_a_model_folder_ends_with_one_line(saved, tmp_path, capsys):
    from aekit.cli import main

    folder = _copy(saved, tmp_path)
    make_fifo(folder / WEIGHTS_NAME)
    np.save(tmp_path / "x.npy", np.zeros((3, 6)))
    outcome = {}
    argv = ["encode", str(folder), str(tmp_path / "x.npy"), "-o", str(tmp_path / "codes.npy")]
    thread = threading.Thread(target=lambda: outcome.update(rc=main(argv)), daemon=True)
    thread.start()
    thread.join(DEADLINE_S)
    assert not thread.is_alive(), "aekit encode hung on a FIFO"
    err = capsys.readouterr().err
    assert outcome["rc"] == 2 and err.count("\n") == 1 and "not a regular file" in err
    assert not (tmp_path / "codes.npy").exists()


@pytest.mark.slow  # a spawned worker imports torch
def test_the_documented_spawn_process_pool_scores_like_the_parent(rows, saved):
    """docs/user_guide/model_files.rst: a ``spawn`` pool, each worker loading the folder,
    after the parent has run the model itself (what hangs a ``fork`` pool)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from tests.helpers import score_in_worker

    expected = aekit.load(saved).score_samples(rows)  # PyTorch's threads started here
    parts = [rows[:60], rows[60:]]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=context) as pool:
        scores = list(pool.map(score_in_worker, [str(saved)] * 2, parts, timeout=240))
    np.testing.assert_array_equal(np.concatenate(scores), expected)
