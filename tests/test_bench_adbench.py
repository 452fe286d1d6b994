"""benchmarks/_contextual.py's swap: which rows change, how, and that marginals are kept."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def contextual(monkeypatch: pytest.MonkeyPatch):
    """benchmarks/_contextual.py, imported by path as the scripts beside it import it."""
    path = ROOT / "benchmarks" / "_contextual.py"
    spec = importlib.util.spec_from_file_location("_contextual", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    monkeypatch.setitem(sys.modules, "_contextual", module)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_swap_changes_two_columns_of_five_percent_with_values_from_the_column(contextual):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 6))
    X[:, 3] = 1.0  # a constant column is never drawn
    altered, labels = contextual.swap_features(X, 0.05, np.random.default_rng(1))
    assert labels.sum() == 10 and set(np.unique(labels)) == {0, 1}
    changed = altered != X
    assert (changed.sum(axis=1) == 2 * labels).all()  # exactly two cells in each altered row
    assert not changed[:, 3].any()
    for row, col in zip(*np.nonzero(changed), strict=True):
        assert altered[row, col] in np.delete(X[:, col], row)  # a value of another row
    assert X.shape == altered.shape and X[3, 3] == 1.0  # the input is left as it was


def test_swap_is_fixed_by_the_seed_and_needs_two_varying_columns(contextual):
    X = np.arange(40.0).reshape(20, 2)
    first = contextual.swap_features(X, 0.1, np.random.default_rng(5))
    again = contextual.swap_features(X, 0.1, np.random.default_rng(5))
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert first[1].sum() == 2
    with pytest.raises(ValueError, match="2 varying columns"):
        contextual.swap_features(np.ones((20, 3)), 0.1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="fraction"):
        contextual.swap_features(X, 0.0, np.random.default_rng(0))


def test_contextual_split_trains_on_half_and_labels_the_swapped_test_rows(contextual):
    X = np.random.default_rng(2).normal(size=(300, 4))
    rows = contextual.contextual_split(X, seed=0)
    assert rows["train"].shape == (150, 4) and rows["test"].shape == (150, 4)
    assert rows["labels"].sum() == round(0.05 * 150)
    assert np.allclose(rows["train"].mean(axis=0), 0, atol=1e-5)  # scaled on the training half


@pytest.fixture
def adbench(monkeypatch: pytest.MonkeyPatch, contextual):
    """benchmarks/adbench.py, imported by path with its sibling modules."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("adbench", ROOT / "benchmarks" / "adbench.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _entry(auroc: float) -> dict[str, float]:
    return {"auroc": auroc, "ap": auroc / 2, "fit_s": 1.0, "score_s": 0.5}


def test_merge_replaces_the_measured_methods_of_the_subset_tables_only(adbench, tmp_path):
    import json

    def table(det: float) -> dict:
        published = dict.fromkeys(adbench.PUBLISHED_METHODS)
        shape = {"_shape": {"rows": 10, "features": 3}, "_published": published}
        return {"aekit detector": _entry(det), "PyOD PCA": _entry(70.0), **shape}

    full = {"seeds": 1, "command": "all", "protocols": {"one-class": {"tables": {
        "a": table(60.0), "b": table(80.0)}}}}  # fmt: skip
    subset = {"seeds": 1, "command": "sub", "protocols": {"one-class": {"tables": {
        "a": {"aekit detector": _entry(90.0)}}}}}  # fmt: skip
    (tmp_path / "full.json").write_text(json.dumps(full))
    (tmp_path / "sub.json").write_text(json.dumps(subset))
    data = tmp_path / "data"  # the tables the full run is judged complete against
    data.mkdir()
    for name in ("a", "b"):
        (data / f"{name}.npz").write_bytes(b"")
    adbench.merge(str(tmp_path / "sub.json"), str(tmp_path / "full.json"), data)
    merged = json.loads((tmp_path / "full.json").read_text())
    got = merged["protocols"]["one-class"]
    assert got["tables"]["a"]["aekit detector"]["auroc"] == 90.0
    assert got["tables"]["a"]["PyOD PCA"]["auroc"] == 70.0  # an unmeasured method stays
    assert got["tables"]["b"]["aekit detector"]["auroc"] == 80.0  # another table stays
    assert got["summary"]["aekit detector"]["mean_auroc"] == 85.0
    assert merged["merged"] == [{"command": "sub", "tables": ["a"]}]
    assert merged["complete"] is True  # every table of the data folder, every method
    (data / "c.npz").write_bytes(b"")  # a table the results lack
    adbench.merge(str(tmp_path / "sub.json"), str(tmp_path / "full.json"), data)
    assert json.loads((tmp_path / "full.json").read_text())["complete"] is False
    with pytest.raises(SystemExit, match="no ADBench tables"):  # complete against nothing
        adbench.merge(str(tmp_path / "sub.json"), str(tmp_path / "full.json"), tmp_path / "no")
    subset["seeds"] = 3
    (tmp_path / "sub.json").write_text(json.dumps(subset))
    with pytest.raises(SystemExit, match="same seeds"):
        adbench.merge(str(tmp_path / "sub.json"), str(tmp_path / "full.json"), data)


def test_covers_needs_every_method_on_every_table(adbench):
    tables = {"a": {"m": _entry(1.0), "n": _entry(2.0)}, "b": {"m": _entry(1.0)}}
    full = {"protocols": {"one-class": {"tables": tables}}}
    assert not adbench.covers(full, ["a", "b"])  # "n" lacks table b
    tables["b"]["n"] = _entry(3.0)
    assert adbench.covers(full, ["a", "b"])
    assert not adbench.covers(full, ["a", "b", "c"])


def test_a_named_batch_runs_the_default_detector_in_batches_of_that_size(adbench, monkeypatch):
    batches = []
    real = adbench.AutoencoderOutlierDetector

    def spy(estimator=None, **kwargs):
        batches.append(None if estimator is None else estimator.batch_size)
        return real(estimator, **kwargs)

    monkeypatch.setattr(adbench, "AutoencoderOutlierDetector", spy)
    found = adbench.methods(["aekit detector", "aekit detector batch=32"])
    assert list(found) == ["aekit detector", "aekit detector batch=32"]
    X = np.random.default_rng(0).normal(size=(60, 4))
    for method in found.values():
        assert method(X, 0)(X).shape == (60,)
    assert batches == [None, 32]  # the default's own rule, then the named batch
    assert "aekit detector batch=32" not in adbench.methods(None)  # never run unless named
    with pytest.raises(SystemExit, match="unknown method"):
        adbench.methods(["aekit detector batch=x"])
