import json
import pickle

import numpy as np
import pytest

import aekit
from aekit import Autoencoder, ModelFileError
from aekit.io import CONFIG_NAME, WEIGHTS_NAME, read_checkpoint, write_checkpoint

from .conftest import FAST


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
    assert config["format_version"] == 1 and config["model"]["code_dim"] == 4
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
        (lambda c: c.pop("estimator"), "incomplete"),
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
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "history.json").write_text("{}")
    fitted.save(folder)
    fitted.save(folder)
    assert sorted(p.name for p in folder.iterdir()) == [CONFIG_NAME, "history.json", WEIGHTS_NAME]


def test_checkpoint_round_trip_keeps_int_keys_and_tensors(tmp_path):
    import torch

    state = {"a": {0: torch.arange(3), 1: [1.5, None, "x"]}, "inf": float("inf")}
    write_checkpoint(tmp_path / "c.safetensors", state)
    back = read_checkpoint(tmp_path / "c.safetensors")
    assert torch.equal(back["a"][0], torch.arange(3)) and back["a"][1] == [1.5, None, "x"]
    assert back["inf"] == float("inf")
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 5)
    with pytest.raises(ModelFileError):
        read_checkpoint(tmp_path / "bad.safetensors")
