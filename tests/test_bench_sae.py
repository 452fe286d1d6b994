"""benchmarks/sae.py's aekit hook and its results table in the docs.

The benchmark itself needs ``sae_lens`` (its generator, trainer and calculators); these tests
check, without it, that the hook it trains aekit through serves the estimator's own codes,
and that the committed results render as the docs' table.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def load(path: Path, name: str, monkeypatch: pytest.MonkeyPatch):
    """Import a script by path, its folder first on ``sys.path`` (as ``python path`` does)."""
    monkeypatch.syspath_prepend(str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.mark.parametrize("arch", ["batchtopk", "jumprelu", "matryoshka"])
def test_the_aekit_hook_serves_the_estimators_codes(monkeypatch, arch):
    bench = load(ROOT / "benchmarks" / "sae.py", "bench_sae", monkeypatch)
    rng = np.random.default_rng(0)
    train = np.abs(rng.normal(size=(2048, 16))).astype(np.float32)
    scale = {"hidden": 16, "true_features": 32, "width": 64, "k": 4}
    args = argparse.Namespace(budget=4096, seed=5, train_seed=0, aekit_params={})
    served, seconds = bench.train_aekit(arch, {"train": train}, args, scale)
    assert seconds > 0 and served.W_dec.shape == (64, 16)
    x = torch.from_numpy(train[:100])
    codes = served.encode(x)
    assert codes.shape == (100, 64) and (codes != 0).any()
    assert served.decode(codes).shape == (100, 16)
    # The same configuration fitted directly gives the same dictionary (the hook adds nothing).
    from aekit.sae import SparseAutoencoder

    params = {"code_dim": 64, "k": 4, "max_rows": 4096, "n_epochs": 2, "random_state": 0}
    params |= {"batch_size": bench.TRAIN["batch_size"], "lr": bench.TRAIN["lr"]}
    params |= {"dead_rows": bench.TRAIN["dead_steps"] * bench.TRAIN["batch_size"]}
    params |= {"log_every": 10**9}
    if arch == "matryoshka":
        params["matryoshka_widths"] = bench.widths(64)
    if arch == "jumprelu":
        params["sparsity_coef"] = bench.TRAIN["jumprelu_l0_coef"]
        params["jumprelu_bandwidth"] = bench.TRAIN["jumprelu_bandwidth"]
        params["jumprelu_init_threshold"] = bench.TRAIN["jumprelu_init_threshold"]
    direct = SparseAutoencoder(arch, **params).fit(train)
    np.testing.assert_array_equal(served.W_dec.numpy(), direct.components_)


def test_the_results_render_as_the_docs_table(monkeypatch):
    pytest.importorskip("sphinx")  # the docs extension imports sphinx and docutils
    ext = load(ROOT / "docs" / "_ext" / "aekit_bench.py", "aekit_bench_for_test", monkeypatch)
    data = json.loads((ROOT / "benchmarks" / "results" / "sae.json").read_text())
    header, rows = ext.RENDERERS["sae"](data)
    assert header[:3] == ["architecture", "library", "MCC"]
    assert all(len(row) == len(header) for row in rows)
    pairs = {(row[0].split(" (")[0], row[1]) for row in rows}  # "jumprelu (L0 coef 0.2)"
    for arch in ("batchtopk", "jumprelu", "matryoshka"):
        assert {(arch, "aekit"), (arch, "sae_lens")} <= pairs
    for r, row in zip(data["rows"], rows, strict=True):
        if "error" not in r:
            assert row[2] == f"{r['mcc']:.3f}" and row[-1] == f"{r['samples_per_s']:,.0f}"
        if "l0_coef" in r:
            assert row[0] == f"{r['architecture']} (L0 coef {r['l0_coef']:g})"


def test_merge_replaces_the_pairs_it_ran_and_keeps_the_others(monkeypatch, tmp_path):
    bench = load(ROOT / "benchmarks" / "sae.py", "bench_sae", monkeypatch)
    head = {"scale": {"hidden": 4}, "data_rows": 10, "eval_rows": 5, "budget_rows": 20, "seed": 0}
    head |= {"quick": False, "train": {}, "environment": {}}

    def results(command, rows):
        rows = [{"architecture": a, "library": lib, "mcc": m} for a, lib, m in rows]
        return {**head, "command": command, "rows": rows}

    old = results("all", [("batchtopk", "aekit", 0.1), ("matryoshka", "aekit", 0.2)])
    new = results("mat", [("matryoshka", "aekit", 0.3), ("matryoshka", "sae_lens", 0.4)])
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "new.json").write_text(json.dumps(new))
    merged = bench.main(
        ["--merge", str(tmp_path / "new.json"), "--out", str(tmp_path / "old.json")]
    )
    assert json.loads((tmp_path / "old.json").read_text()) == merged
    assert [(r["architecture"], r["library"], r["mcc"]) for r in merged["rows"]] == [
        ("batchtopk", "aekit", 0.1),
        ("matryoshka", "aekit", 0.3),
        ("matryoshka", "sae_lens", 0.4),
    ]
    assert merged["command"] == "all" and merged["merged_runs"][0]["command"] == "mat"
    with pytest.raises(SystemExit, match="budget_rows"):
        bench.merge({**new, "budget_rows": 30}, old)


def test_merge_keeps_each_train_seed_as_its_own_row(monkeypatch):
    bench = load(ROOT / "benchmarks" / "sae.py", "bench_sae", monkeypatch)
    head = {"scale": {"hidden": 4}, "data_rows": 10, "eval_rows": 5, "budget_rows": 20, "seed": 0}
    head |= {"quick": False, "train": {}, "environment": {}}
    # A file from before --train-seed: its rows were trained with the data's seed, 0.
    old = {**head, "command": "old", "rows": [{"architecture": "jumprelu", "library": "aekit"}]}
    old["rows"][0]["mcc"] = 0.1
    new = {**head, "command": "s1", "train_seed": 1, "rows": []}
    new["rows"] = [{"architecture": "jumprelu", "library": "aekit", "train_seed": 1, "mcc": 0.2}]
    merged = bench.merge(new, old)
    assert [(r["train_seed"], r["mcc"]) for r in merged["rows"]] == [(0, 0.1), (1, 0.2)]
    assert merged["merged_runs"][0]["rows"] == [["jumprelu", "aekit", 1]]
    again = {**new, "rows": [{**new["rows"][0], "mcc": 0.3}]}  # the same seed rerun: replaced
    merged = bench.merge(again, merged)
    assert [(r["train_seed"], r["mcc"]) for r in merged["rows"]] == [(0, 0.1), (1, 0.3)]


def test_the_seeds_summary_gives_each_sides_mean_spread_and_gap(monkeypatch):
    bench = load(ROOT / "benchmarks" / "sae.py", "bench_sae", monkeypatch)
    monkeypatch.setitem(sys.modules, "sae", bench)  # what sae_seeds.py imports
    seeds = load(ROOT / "benchmarks" / "sae_seeds.py", "bench_sae_seeds", monkeypatch)
    figures = dict.fromkeys(seeds.FIGURES, 1.0)
    rows = [
        {**figures, "architecture": "jumprelu", "library": lib, "train_seed": s, "mcc": m}
        for lib, s, m in [("aekit", 0, 0.60), ("aekit", 1, 0.62), ("sae_lens", 0, 0.63)]
    ]
    summary = seeds.summarise([*rows, {**rows[2], "train_seed": 1, "mcc": 0.61}])["jumprelu"]
    assert summary["aekit"]["train_seeds"] == [0, 1]
    assert summary["aekit"]["mean"]["mcc"] == pytest.approx(0.61)
    assert summary["aekit"]["std"]["mcc"] == pytest.approx(np.std([0.60, 0.62], ddof=1))
    assert summary["aekit_minus_sae_lens"]["mcc"] == pytest.approx(-0.01)
    assert summary["target_met"] is False  # 0.01 below: more than 0.005
    assert seeds.summarise(rows[:1])["jumprelu"]["aekit"]["std"]["mcc"] is None
    with pytest.raises(SystemExit, match="other settings"):
        seeds.summarise([rows[0], {**rows[1], "aekit_params": {"lr": 0.1}}])
