"""benchmarks/tabular.py's merge: a rerun start replaces that start's fits, never half of them."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tabular(monkeypatch: pytest.MonkeyPatch):
    """benchmarks/tabular.py, imported by path with its sibling modules."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(
        "tabular_bench", ROOT / "benchmarks" / "tabular.py"
    )
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _run(path: Path, fits: list[tuple[str, int, int, str, float]], params=None) -> Path:
    rows = [{"table": t, "code_dim": k, "seed": s, "init": i, "ratio": r, "seconds": 1.0}
            for t, k, s, i, r in fits]  # fmt: skip
    path.write_text(json.dumps({"fits": rows, **({} if params is None else {"params": params})}))
    return path


def test_a_rerun_start_replaces_every_earlier_fit_of_it(tabular, tmp_path):
    full = _run(tmp_path / "full.json", [
        ("iris", 1, s, i, 0.5) for s in (0, 1) for i in ("pca", "random", "auto")
    ])  # fmt: skip
    auto = _run(tmp_path / "auto.json", [("iris", 1, s, "auto", 0.4) for s in (0, 1)], {})
    merged = tabular.merged_fits([full, auto])
    assert sorted((r["seed"], r["init"], r["ratio"]) for r in merged) == [
        (0, "auto", 0.4), (0, "pca", 0.5), (0, "random", 0.5),
        (1, "auto", 0.4), (1, "pca", 0.5), (1, "random", 0.5),
    ]  # fmt: skip
    half = _run(tmp_path / "half.json", [("iris", 1, 0, "auto", 0.3)])  # seed 1 not rerun
    with pytest.raises(SystemExit, match="lack a start the others have"):
        tabular.merged_fits([full, half])  # old and new auto fits were mixed


def test_merge_refuses_other_params_and_run_options(tabular, tmp_path):
    a = _run(tmp_path / "a.json", [("iris", 1, 0, "pca", 0.5)], {"batch_norm": True})
    b = _run(tmp_path / "b.json", [("iris", 1, 0, "auto", 0.5)])
    with pytest.raises(SystemExit, match="different --params"):
        tabular.merged_fits([a, b])
    with pytest.raises(SystemExit, match="takes only --out"):
        tabular.main(["--merge", f"{a},{b}", "--seeds", "2", "--out", str(tmp_path / "o.json")])
    with pytest.raises(SystemExit, match="takes only --out"):  # an abbreviation too
        tabular.main(["--merge", f"{a},{b}", "--seed", "2", "--out", str(tmp_path / "o.json")])
