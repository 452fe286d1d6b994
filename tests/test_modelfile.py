import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits, load_wine

import aekit
from aekit import Autoencoder, ModelFileError
from aekit.errors import OutputError
from aekit.estimator.modelfile import CONFIG_NAME, WEIGHTS_NAME
from aekit.training.checkpoint import read_checkpoint, write_checkpoint
from tests.helpers import FAST

FIXTURES = Path(__file__).parent / "fixtures"
# Model folders written by aekit 0.1.0, with the codes and reconstructions it computed for the
# first 20 rows of each dataset (float64; the digits model was fitted on uint8 pixels).
OLD_MODELS = {
    "model-0.1.0-wine": lambda: load_wine().data[:20],
    "model-0.1.0-digits-conv": lambda: load_digits().data.astype(np.uint8)[:20].astype(np.float64),
}


@pytest.mark.parametrize("name", OLD_MODELS)
def test_models_written_by_0_1_0_load_and_compute_the_same(name, tmp_path):
    # Codes and reconstructions only: error values of old models are not pinned, since the
    # unit errors are measured in may change.
    assert torch.get_num_threads() == 1  # as when the expected values were computed
    folder, X = FIXTURES / name, OLD_MODELS[name]()
    codes = np.load(folder / "expected_codes.npy", allow_pickle=False)
    recon = np.load(folder / "expected_recon.npy", allow_pickle=False)
    model = aekit.load(folder)
    # float32 kernels differ in their last bits between CPUs (a convolution's codes near 0
    # differ by ~1e-8 on some hosts): equal up to float32 rounding, not bit for bit.
    close = {"rtol": 1e-5, "atol": 1e-7}
    np.testing.assert_allclose(model.transform(X), codes, **close)
    np.testing.assert_allclose(model.reconstruct(X), recon, **close)
    again = aekit.load(model.save(tmp_path / "resaved"))  # and in today's format
    np.testing.assert_allclose(again.transform(X), codes, **close)
    np.testing.assert_array_equal(again.transform(X), model.transform(X))  # bit for bit


@pytest.fixture(scope="module")
def fitted(digits):
    return Autoencoder(code_dim=4, hidden=(32,), **FAST).fit(digits[:300])


def test_save_load_gives_identical_codes(fitted, digits, tmp_path):
    fitted.save(tmp_path / "m")
    loaded = aekit.load(tmp_path / "m")
    assert np.array_equal(loaded.transform(digits[:50]), fitted.transform(digits[:50]))
    assert np.array_equal(loaded.reconstruct(digits[:50]), fitted.reconstruct(digits[:50]))
    assert loaded.get_params() == fitted.get_params()
    assert loaded.history_.train_loss == fitted.history_.train_loss
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]


def test_model_folder_holds_no_pickle(fitted, tmp_path):
    fitted.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / CONFIG_NAME).read_text())
    assert (
        config["format_version"] == aekit.estimator.modelfile.FORMAT_VERSION == 5
        and config["model"]["code_dim"] == 4
    )
    raw = (tmp_path / "m" / WEIGHTS_NAME).read_bytes()
    assert b"\x80\x04\x95" not in raw[:64]  # not a pickle stream
    header_len = int.from_bytes(raw[:8], "little")
    assert json.loads(raw[8 : 8 + header_len])  # a safetensors JSON header


def test_truncated_weights_are_refused(fitted, tmp_path):
    folder = fitted.save(tmp_path / "m")
    weights = folder / WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ModelFileError, match="checksum"):
        aekit.load(folder)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda c: c["model"].update(code_dim=5), "shape"),
        (lambda c: c["model"].update(evil=1), "unknown ModelConfig key"),
        (lambda c: c["model"].update(hidden="32"), "list of integers"),
        (lambda c: c.update(format_version=99), "format_version"),
        (lambda c: c.pop("estimator"), "missing key"),
        (lambda c: c.update(evil="x"), "unknown key"),
        (lambda c: c.update(n_features_in="64"), "'n_features_in' must be int"),
        (lambda c: c.update(n_features_in=True), "'n_features_in' must be int"),
        (lambda c: c.update(n_features_in=63), "n_features_in does not match"),
        (lambda c: c.update(feature_names=["a"] * 3), "feature_names"),
        (lambda c: c.update(scaling="robust"), "scaling"),
        (lambda c: c.update(history="all good"), "'history' must be dict"),
        (lambda c: c["history"].update(records=[1, 2]), "records"),
        (lambda c: c["train"].update(lr="fast"), "lr"),
        (lambda c: c["estimator"].update(evil=1), "unknown estimator parameter"),
        (lambda c: c["model"].update(input_dim=10**12), "input_dim"),  # refused before allocating
        (lambda c: c["model"].update(hidden=[32, 32]), "missing"),
        (lambda c: c.update(model=[]), "invalid model config"),
    ],
)
def test_tampered_config_is_refused(fitted, tmp_path, edit, match):
    folder = fitted.save(tmp_path / "m")
    config = json.loads((folder / CONFIG_NAME).read_text())
    edit(config)
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match=match):
        aekit.load(folder)


class Boom:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_pickle_renamed_as_weights_is_refused_and_not_run(fitted, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = fitted.save(tmp_path / "m")
    blob = pickle.dumps(Boom())
    (folder / WEIGHTS_NAME).write_bytes(blob)
    config = json.loads((folder / CONFIG_NAME).read_text())
    import hashlib

    config["weights_sha256"] = hashlib.sha256(blob).hexdigest()  # even with a matching sum
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match="safetensors"):
        aekit.load(folder)
    assert not (tmp_path / "PWNED").exists()


def test_missing_folder_and_files(tmp_path, fitted):
    with pytest.raises(ModelFileError, match="no model folder"):
        aekit.load(tmp_path / "nope")
    folder = fitted.save(tmp_path / "m")
    (folder / CONFIG_NAME).unlink()
    with pytest.raises(ModelFileError, match="missing"):
        aekit.load(folder)


def test_save_keeps_other_files_and_leaves_no_temp_files(fitted, tmp_path):
    """The user's own files stay; an old fit's record (another model's) goes."""
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    (folder / "history.json").write_text("{}")
    fitted.save(folder)
    with pytest.raises(OutputError, match=f"{folder.name} already holds a saved model"):
        fitted.save(folder)  # no model is replaced by mistake
    fitted.save(folder, overwrite=True)
    assert sorted(p.name for p in folder.iterdir()) == [CONFIG_NAME, "notes.txt", WEIGHTS_NAME]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_checkpoint_round_trip_keeps_int_keys_and_tensors(tmp_path):
    state = {"a": {0: torch.arange(3), 1: [1.5, None, "x"]}, "inf": float("inf")}
    write_checkpoint(tmp_path / "c.safetensors", state)
    back = read_checkpoint(tmp_path / "c.safetensors")
    assert torch.equal(back["a"][0], torch.arange(3)) and back["a"][1] == [1.5, None, "x"]
    assert back["inf"] == float("inf")
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 5)
    with pytest.raises(ModelFileError):
        read_checkpoint(tmp_path / "bad.safetensors")


def _replace_weights(folder, tensors=None, raw=None):
    """Write new weights and the matching checksum, as a deliberate tamperer would."""
    import hashlib

    from safetensors.torch import save

    raw = save(tensors) if raw is None else raw
    (folder / WEIGHTS_NAME).write_bytes(raw)
    config = json.loads((folder / CONFIG_NAME).read_text())
    config["weights_sha256"] = hashlib.sha256(raw).hexdigest()
    (folder / CONFIG_NAME).write_text(json.dumps(config))


def _weights(fitted):
    return {k: v.clone().contiguous() for k, v in fitted.module_.state_dict().items()}


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda w: w.update({"encoder.0.weight": w["encoder.0.weight"][:, :10].clone()}), "shape"),
        (lambda w: w.update({"encoder.0.weight": w["encoder.0.weight"].double()}), "float64"),
        (lambda w: w.pop("decoder.0.bias"), "missing"),
        (lambda w: w.update(extra=w["scale"].clone()), "unexpected"),
        (lambda w: w["decoder.0.bias"].fill_(float("nan")), "NaN"),
        (lambda w: w["scale"].fill_(0.0), "positive"),
    ],
)
def test_weights_that_do_not_fit_the_config_are_refused(fitted, tmp_path, edit, match):
    folder = fitted.save(tmp_path / "m")
    tensors = _weights(fitted)
    edit(tensors)
    _replace_weights(folder, tensors)
    with pytest.raises(ModelFileError, match=match):
        aekit.load(folder)


def test_truncated_weights_with_a_matching_checksum_are_refused(fitted, tmp_path):
    folder = fitted.save(tmp_path / "m")
    _replace_weights(folder, raw=(folder / WEIGHTS_NAME).read_bytes()[:-7])
    with pytest.raises(ModelFileError, match="not a valid safetensors file"):
        aekit.load(folder)


def test_pickles_renamed_to_our_file_names_are_refused_and_not_run(fitted, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blob = pickle.dumps(Boom())
    folder = fitted.save(tmp_path / "m")
    (folder / CONFIG_NAME).write_bytes(blob)
    with pytest.raises(ModelFileError, match="not valid JSON"):
        aekit.load(folder)
    folder = fitted.save(tmp_path / "t")  # torch.save's zip-of-pickles as the weights
    buffer = __import__("io").BytesIO()
    torch.save({"x": Boom()}, buffer)
    _replace_weights(folder, raw=buffer.getvalue())
    with pytest.raises(ModelFileError, match="safetensors"):
        aekit.load(folder)
    (tmp_path / "checkpoint-e000001-b000000.safetensors").write_bytes(blob)
    with pytest.raises(ModelFileError, match="safetensors"):
        read_checkpoint(tmp_path / "checkpoint-e000001-b000000.safetensors")
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize(
    "metadata",
    [
        {},  # a plain safetensors file, not ours
        {"aekit_checkpoint": "{not json"},
        {"aekit_checkpoint": json.dumps({"__dict__": [["a", {"__tensor__": "missing"}]]})},
        {"aekit_checkpoint": json.dumps({"__dict__": [["a", {"__weird__": 1}]]})},
        {"aekit_checkpoint": json.dumps([1, 2])},
        {"aekit_checkpoint": "[" * 100_000 + "]" * 100_000},  # nesting bomb
    ],
)
def test_checkpoint_metadata_that_is_not_ours_is_refused(tmp_path, metadata):
    from safetensors.torch import save_file

    path = tmp_path / "c.safetensors"
    save_file({"t": torch.zeros(2)}, path, metadata=metadata)
    with pytest.raises(ModelFileError):
        read_checkpoint(path)


@pytest.mark.parametrize("crash_in", ["fsync", "replace"])
def test_a_write_killed_midway_leaves_the_old_file_whole(tmp_path, monkeypatch, crash_in):
    import os

    from aekit.files.atomic import atomic_write

    target = tmp_path / "checkpoint.safetensors"
    atomic_write(target, b"old contents")

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, crash_in, crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, b"new contents that never fully land")
    monkeypatch.undo()
    assert target.read_bytes() == b"old contents"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temporary file left


def test_atomic_write_gives_files_the_usual_permissions(tmp_path):
    import os
    import stat

    from aekit.files.atomic import atomic_write

    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "out.bin", b"abc")
    finally:
        os.umask(old)
    assert (tmp_path / "out.bin").read_bytes() == b"abc"
    assert stat.S_IMODE((tmp_path / "out.bin").stat().st_mode) == 0o644
