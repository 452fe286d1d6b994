"""The default autoencoder vs PCA on every table scikit-learn bundles, before and after init="pca".

    .venv/bin/python benchmarks/tabular.py                    # the README table (~30 min, 2 cores)
    .venv/bin/python benchmarks/tabular.py --seeds 2 --tables iris,wine   # a quick look
    .venv/bin/python benchmarks/tabular.py --params '{"batch_norm": true}'

Tables: iris, wine, breast cancer, diabetes (as they come; the estimator standardizes them)
and the 8×8 digits (pixels divided by 16, as the demo has them). Each is split 80/20 with seed
``s`` and the default ``Autoencoder(code_dim=k, random_state=s)`` is fitted at every code size
``k`` from 1 to ``min(d - 1, 8)``, once with ``init="random"`` (aekit 0.1's start) and once with
``init="pca"`` (the default). The ratio is the autoencoder's held-out error over PCA's with
``k`` components, both measured by :func:`aekit.analysis.measure` (squared error in the
model's scaled space, PCA fitted on the same scaled training rows): below 1 the autoencoder
wins. Prints every fit, then each table's mean and worst ratio per start, and writes JSON
(``--out``, default ``benchmarks/results/tabular.json``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_iris, load_wine

from aekit import Autoencoder
from aekit.analysis import measure, split_indices

from _common import environment, write_json

TABLES = {
    "iris": lambda: load_iris().data,
    "wine": lambda: load_wine().data,
    "breast_cancer": lambda: load_breast_cancer().data,
    "diabetes": lambda: load_diabetes().data,
    "digits": lambda: load_digits().data / 16.0,
}
INITS = ("random", "pca")
RESULTS = Path(__file__).resolve().parent / "results" / "tabular.json"


def fit_one(job: tuple[str, int, int, str, dict[str, Any]]) -> dict[str, Any]:
    """One fit: table, seed, code size, start; its ratio to PCA and its wall time."""
    name, seed, k, init, params = job
    torch.set_num_threads(1)  # tiny models: one thread is as fast, and kinder to shared cores
    X = TABLES[name]()
    train, test = split_indices(len(X), 0.2, seed)
    tick = time.perf_counter()
    ae = Autoencoder(code_dim=k, random_state=seed, init=init, device="cpu", **params)
    ae.fit(X[train])
    seconds = time.perf_counter() - tick
    found = measure(ae, X[train], X[test])
    return {
        "table": name,
        "seed": seed,
        "code_dim": k,
        "init": init,
        "ae_error": found.ae_error,
        "pca_error": found.pca_error,
        "ratio": found.ratio,
        "best_epoch": ae.history_.best_epoch,
        "epochs": ae.n_iter_,
        "seconds": seconds,
    }


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per table and start: mean and worst ratio over every code size and seed."""
    out = []
    for name in TABLES:
        for init in INITS:
            ratios = [r["ratio"] for r in rows if r["table"] == name and r["init"] == init]
            if ratios:
                out.append(
                    {
                        "table": name,
                        "init": init,
                        "fits": len(ratios),
                        "mean_ratio": float(np.mean(ratios)),
                        "worst_ratio": float(np.max(ratios)),
                    }
                )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0, 1, ... (default: 5)")
    parser.add_argument("--tables", default=",".join(TABLES), help="comma-separated tables")
    parser.add_argument("--params", default="{}", help="extra Autoencoder arguments (JSON)")
    parser.add_argument("--jobs", type=int, default=2, help="processes (default: 2)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON file to write")
    args = parser.parse_args(argv)
    params = json.loads(args.params)
    jobs = []
    for name in args.tables.split(","):
        d = TABLES[name]().shape[1]
        for k in range(1, min(d - 1, 8) + 1):
            for seed in range(args.seeds):
                jobs += [(name, seed, k, init, params) for init in INITS]
    rows = []
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        for row in pool.imap(fit_one, jobs):
            rows.append(row)
            print(
                f"{row['table']:<14} k={row['code_dim']} seed {row['seed']} {row['init']:<6} "
                f"ratio {row['ratio']:.3f}  best epoch {row['best_epoch']}  "
                f"{row['seconds']:.1f} s",
                flush=True,
            )
    summary = summarize(rows)
    print(f"\n{'table':<14} {'init':<7} {'fits':>4} {'mean':>7} {'worst':>7}")
    for s in summary:
        print(
            f"{s['table']:<14} {s['init']:<7} {s['fits']:>4} {s['mean_ratio']:>7.3f} "
            f"{s['worst_ratio']:>7.3f}"
        )
    report = {
        "benchmark": "tabular",
        "command": "benchmarks/tabular.py " + " ".join(argv or []),
        "machine": environment("platform", "torch"),
        "params": params,
        "summary": summary,
        "fits": rows,
    }
    write_json(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
