"""The one input check (aekit.data.checks): run once per call, the same words everywhere."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_wine

import aekit
import aekit.anomaly.detector as detector_module
import aekit.estimator.inference as inference_module
import aekit.estimator.rows as rows_module
from aekit import Autoencoder, AutoencoderImputer, AutoencoderOutlierDetector, DataError
from aekit.data import checks
from aekit.export import OnnxModel, to_onnx
from tests.helpers import FAST


@pytest.fixture(scope="module")
def wine():
    X = load_wine().data
    return (X - X.mean(0)) / X.std(0)


def count_calls(monkeypatch, name, *modules):
    """Count the calls of ``checks.<name>`` made through each of ``modules``."""
    calls = []
    original = getattr(checks, name)

    def counted(*args, **kwargs):
        calls.append(name)
        return original(*args, **kwargs)

    for module in modules:
        monkeypatch.setattr(module, name, counted)
    return calls


def test_detector_checks_its_rows_once_not_in_every_member(monkeypatch, wine):
    validated = count_calls(monkeypatch, "validate_rows", detector_module, rows_module)
    chunks = count_calls(monkeypatch, "check_finite_chunk", inference_module)
    detector = AutoencoderOutlierDetector(Autoencoder(code_dim=2, **FAST), n_estimators=3)
    detector.fit(wine)
    assert validated == ["validate_rows"]  # once for the detector, not again per member
    validated.clear()
    chunks.clear()
    detector.anomaly_score(wine)
    assert (validated, chunks) == (["validate_rows"], ["check_finite_chunk"])
    validated.clear()
    chunks.clear()
    detector.reconstruction_error(wine)
    assert (validated, chunks) == (["validate_rows"], ["check_finite_chunk"])


def test_detector_members_get_checked_rows_unchanged(wine):
    """Members fitted on handed rows equal autoencoders fitted on the rows themselves."""
    detector = AutoencoderOutlierDetector(Autoencoder(code_dim=2, **FAST), n_estimators=2)
    detector.fit(wine)
    seeds = [m.random_state for m in detector.estimators_]
    for member, seed in zip(detector.estimators_, seeds, strict=True):
        alone = Autoencoder(code_dim=2, **{**FAST, "random_state": seed}).fit(wine)
        np.testing.assert_array_equal(member.transform(wine), alone.transform(wine))
        assert not hasattr(member, "feature_names_in_")


def test_detector_still_refuses_bad_values_at_every_door(wine):
    detector = AutoencoderOutlierDetector(Autoencoder(code_dim=2, **FAST)).fit(wine)
    bad = wine.copy()
    bad[2, 5] = np.inf
    for method in (detector.anomaly_score, detector.reconstruction_error, detector.fit):
        with pytest.raises(DataError, match=r"contains infinity \(first at row 2, column 5\)"):
            method(bad)
    huge = wine.copy()
    huge[1, 0] = 1e39
    with pytest.raises(DataError, match="beyond float32's range"):
        detector.anomaly_score(huge)


def test_one_message_for_a_bad_value_in_every_estimator_and_the_onnx_runner(tmp_path, wine):
    pytest.importorskip("onnxruntime")
    bad = wine.copy()
    bad[1, 4] = np.inf
    model = Autoencoder(code_dim=2, **FAST).fit(wine)
    onnx_model = OnnxModel(to_onnx(model, tmp_path / "m.onnx"))
    runs = [
        model.transform,
        AutoencoderOutlierDetector(model, prefit=True).fit(wine).anomaly_score,
        AutoencoderImputer(Autoencoder(code_dim=2, **FAST), n_estimators=1).fit(wine).transform,
        onnx_model.run,
    ]
    messages = set()
    for run in runs:
        with pytest.raises(DataError) as caught:
            run(bad)
        messages.add(str(caught.value))
    assert messages == {
        "Input X contains infinity (first at row 1, column 4); drop or impute those values first"
    }
    with pytest.raises(DataError, match="X has 5 features, but the ONNX model is expecting 13"):
        onnx_model.run(wine[:, :5])
    with pytest.raises(aekit.DataTypeError, match="dense rows"):
        onnx_model.run(sp.csr_matrix(wine))


def test_checks_module_imports_no_torch():
    code = "import sys, aekit.data.checks, aekit.export; assert 'torch' not in sys.modules"
    env = {"PYTHONPATH": str(Path(aekit.__file__).parents[1])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)
