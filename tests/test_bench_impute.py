"""benchmarks/impute.py's merge: runs of other peers on the same holes join their cells."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def impute(monkeypatch: pytest.MonkeyPatch):
    """benchmarks/impute.py, imported by path with its sibling modules."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("impute_bench", ROOT / "benchmarks" / "impute.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _cell(table: str, results: list[dict[str, float]], seeds: int = 1) -> dict:
    runs = [{name: {"rmse": r, "mae": r / 2, "seconds": 1.0} for name, r in one.items()}
            for one in results]  # fmt: skip
    return {
        "table": table, "rows": 10, "columns": 3, "mechanism": "mcar", "rate": 0.1,
        "seeds": seeds, "means": {}, "best_peer": None, "ratio": None, "runs": runs,
    }  # fmt: skip


def test_merge_joins_the_peers_of_one_cell_and_rescores_it(impute, tmp_path):
    wine = [{"aekit": 0.9, "iterative_br": 1.0}, {"aekit": 0.7, "iterative_br": 1.0}]
    diabetes = [{"aekit": 1.0, "iterative_br": 2.0}] * 2
    first = {"grid": {"cells": [_cell("wine", wine, 2), _cell("diabetes", diabetes, 2)]}}
    more = {"grid": {"cells": [_cell("wine", [{"iterative_et": 0.5}, {"iterative_et": 0.7}], 2)]}}
    (tmp_path / "a.json").write_text(json.dumps(first))
    (tmp_path / "b.json").write_text(json.dumps(more))
    report = impute.merge([tmp_path / "a.json", tmp_path / "b.json"])
    cells = {c["table"]: c for c in report["grid"]["cells"]}
    assert len(report["grid"]["cells"]) == 2
    wine = cells["wine"]
    assert wine["best_peer"] == "iterative_et"
    assert wine["ratio"] == pytest.approx(0.8 / 0.6)  # aekit's mean over the new best peer's
    assert (
        wine["runs"][1]["iterative_et"]["rmse"] == 0.7 and wine["runs"][1]["aekit"]["rmse"] == 0.7
    )
    # a cell the second run did not reach: the peer is "not run" there, its best unchanged
    assert cells["diabetes"]["means"]["iterative_et"] == "not run"
    assert cells["diabetes"]["best_peer"] == "iterative_br"
    assert cells["diabetes"]["ratio"] == pytest.approx(0.5)
    assert report["grid"]["summary"]["all"]["cells"] == 2


def test_merge_refuses_cells_of_other_seed_counts(impute, tmp_path):
    (tmp_path / "a.json").write_text(
        json.dumps({"grid": {"cells": [_cell("wine", [{"aekit": 1.0}])]}})
    )
    two = _cell("wine", [{"knn": 1.0}] * 2, 2)
    (tmp_path / "b.json").write_text(json.dumps({"grid": {"cells": [two]}}))
    with pytest.raises(SystemExit, match="seeds"):
        impute.merge([tmp_path / "a.json", tmp_path / "b.json"])


def test_merge_never_lets_not_run_replace_a_result(impute):
    measured = _cell("wine", [{"iterative_et": 0.5}])
    later = _cell("wine", [{"aekit": 0.6}])
    later["runs"][0]["iterative_et"] = "not run"  # a merged report's placeholder
    (cell,) = impute.join_cells([measured, later])
    assert cell["means"]["iterative_et"]["rmse"] == 0.5 and cell["ratio"] == pytest.approx(1.2)
