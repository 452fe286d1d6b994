"""Imputation: aekit's AutoencoderImputer against the standard imputers, on a standard grid.

    .venv/bin/python benchmarks/impute.py                  # the whole grid (hours)
    .venv/bin/python benchmarks/impute.py --quick          # a smoke run: 2 tables, MCAR 30 %
    .venv/bin/python benchmarks/impute.py --sections grid --datasets wine,adbench:Pima --seeds 1
    .venv/bin/python benchmarks/impute.py --merge a.json,b.json  # runs made in parts, as one

**Grid** (the hyperimpute-style protocol; holes in ``_impute_data.py``): mechanisms MCAR, MAR
(logistic on complete columns) and MNAR (self-masking) × 10 / 30 / 50 % of the entries ×
``--seeds`` seeds, on scikit-learn's diabetes, wine, breast cancer and digits, the penguins'
numeric columns and 16 ADBench tables of ``--data`` (labels dropped, ≤ 5,000 rows). Each
imputer is fitted on the holed rows and fills them; RMSE and MAE over the hidden entries in
standardized units (each column over its standard deviation in the complete data) and fit +
transform seconds, measured one after the other on the same machine. Per cell (table ×
mechanism × rate, mean over seeds): the best peer and aekit's RMSE over it. The summary:
mean ratio, the share of cells where aekit is best, the worst cell, over the whole grid and
over each half of the tables (*decide*: odd positions in the grid's order, where the
defaults were tuned; *confirm*: even positions, kept to check them).

Peers with their defaults: ``SimpleImputer`` (mean), ``KNNImputer`` (5 neighbours),
``IterativeImputer`` with ``BayesianRidge`` and with ``ExtraTreesRegressor`` (MissForest's
idea; 100 trees) and ``hyperimpute``'s default when it imports (it does not install beside
aekit's pinned stack: see the docs). Each runs in a subprocess killed after ``--timeout``
seconds (then "timeout"; such a peer is left out of that cell's best).

**MNIST** (the first 5,000 test images, pixel units): MCAR 10 / 30 / 50 % and a missing
14×14 quadrant in half the images; peers ``SimpleImputer``, ``KNNImputer`` and
``IterativeImputer(BayesianRidge, n_nearest_features=50)``. **Categorical cells**
(``_impute_cells.py``): accuracy on hidden categorical cells of four public tables.
**Outliers**: the breast-cancer set-up of ``benchmarks/anomaly.py`` (train on 70 % of the
benign rows, score the rest and the malignant ones), 20 % MCAR in a random half of the test
rows: the detector's AUROC on the rows with holes, on those without, and on the holed rows
scored complete (the paired figure).

Writes ``benchmarks/results/impute_grid.json``; docs/benchmarks.rst renders it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import ExtraTreesRegressor
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
from sklearn.linear_model import BayesianRidge
from sklearn.metrics import roc_auc_score

from aekit import AutoencoderImputer, AutoencoderOutlierDetector

from _common import environment, write_json
from _impute_cells import print_cells, run_cells
from _impute_data import MASKS, adbench_names, complete_rows_kept, load_table, mnist, quadrant

ROOT = Path(__file__).resolve().parents[2] / "shared" / "data"
OUT = Path(__file__).resolve().parent / "results" / "impute_grid.json"
TABLES = ["diabetes", "wine", "breast_cancer", "digits", "penguins", *adbench_names()]
SECTIONS = ("grid", "mnist", "categorical", "outliers")


class Hyperimpute:
    """hyperimpute's default imputer (``Imputers().get("hyperimpute")``) as a transformer."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        """The rows ``X`` with their NaN holes filled."""
        from hyperimpute.plugins.imputers import Imputers

        return np.asarray(Imputers().get("hyperimpute", random_state=self.seed).fit_transform(X))


def _hyperimpute_installed() -> bool:
    try:
        import hyperimpute  # noqa: F401
    except ImportError:
        return False
    return True


IMPUTERS: dict[str, Callable[[int, bool, dict[str, Any]], Any]] = {
    "aekit": lambda seed, wide, params: AutoencoderImputer(random_state=seed, **params),
    "simple": lambda seed, wide, params: SimpleImputer(),
    "knn": lambda seed, wide, params: KNNImputer(),
    "iterative_br": lambda seed, wide, params: IterativeImputer(
        BayesianRidge(), random_state=seed, n_nearest_features=50 if wide else None
    ),
    "iterative_et": lambda seed, wide, params: IterativeImputer(
        ExtraTreesRegressor(random_state=seed, n_jobs=1), random_state=seed
    ),
    "hyperimpute": lambda seed, wide, params: Hyperimpute(seed),
}
IN_PROCESS = ("aekit", "simple")  # the others run in a subprocess under --timeout


def _child(make: Callable[[], Any], X: np.ndarray, conn: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            start = time.perf_counter()
            filled = make().fit_transform(X)
            conn.send((filled, time.perf_counter() - start))
        except Exception as exc:  # a peer that fails on a cell is recorded, not fatal
            conn.send(f"error: {type(exc).__name__}: {str(exc)[:200]}")
    conn.close()


def impute(name: str, X: np.ndarray, seed: int, args: argparse.Namespace) -> Any:
    """``(filled rows, seconds)`` of imputer ``name`` on ``X``; or "timeout" / "error: ..."."""

    def make() -> Any:
        return IMPUTERS[name](seed, X.shape[1] > 100, args.aekit_params)

    if name in IN_PROCESS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            filled = make().fit_transform(X)
            return filled, time.perf_counter() - start
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(make, X, send))
    process.start()
    send.close()
    try:
        return receive.recv() if receive.poll(args.timeout) else "timeout"
    except EOFError:
        return "error: the subprocess died"
    finally:
        process.kill()
        process.join()


def run_case(X: np.ndarray, mask: np.ndarray, seed: int, unit: np.ndarray, args) -> dict:
    """Every imputer on one holed copy of ``X``: RMSE and MAE on the hidden entries, seconds."""
    holed = np.where(mask, np.nan, X)
    results: dict[str, Any] = {}
    for name in args.imputers:
        found = impute(name, holed, seed, args)
        if isinstance(found, str):
            results[name] = found
            continue
        filled, seconds = found
        error = ((np.asarray(filled, dtype=np.float64) - X) / unit)[mask]
        results[name] = {
            "rmse": float(np.sqrt(np.mean(error**2))),
            "mae": float(np.mean(np.abs(error))),
            "seconds": float(seconds),
        }
    return results


def cell_means(runs: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """Per imputer the mean RMSE, MAE and seconds over seeds; a failure in any seed stays."""
    out: dict[str, Any] = {}
    for name in names:
        got = [r[name] for r in runs]
        failed = next((g for g in got if isinstance(g, str)), None)
        out[name] = failed or {k: float(np.mean([g[k] for g in got])) for k in got[0]}
    return out


def score_cell(means: dict[str, Any]) -> dict[str, Any]:
    """The best peer of a cell and aekit's RMSE over its RMSE."""
    peers = {n: m["rmse"] for n, m in means.items() if n != "aekit" and isinstance(m, dict)}
    aekit = means.get("aekit")
    if not peers or not isinstance(aekit, dict):
        return {"best_peer": None, "ratio": None}
    best = min(peers, key=peers.get)
    return {"best_peer": best, "ratio": aekit["rmse"] / peers[best]}


def run_grid(args: argparse.Namespace, save: Callable[[list], None] = print) -> list[dict]:
    """Every cell of the grid; ``save`` gets the cells so far after each (a partial JSON)."""
    cells: list[dict[str, Any]] = []
    for table in args.datasets:
        X = load_table(table, args.data / "adbench")
        unit = X.std(axis=0)
        for mechanism in args.mechanisms:
            for rate in args.rates:
                runs = []
                for seed in args.seeds:
                    mask = complete_rows_kept(MASKS[mechanism](X, rate, seed))
                    runs.append(run_case(X, mask, seed, unit, args))
                    shown = ", ".join(
                        f"{n} {r['rmse']:.4f} ({r['seconds']:.1f}s)"
                        if isinstance(r, dict)
                        else f"{n} {r}"
                        for n, r in runs[-1].items()
                    )
                    print(f"  {table} {mechanism} {rate:.0%} seed {seed}: {shown}", flush=True)
                means = cell_means(runs, args.imputers)
                cells.append({
                    "table": table, "rows": X.shape[0], "columns": X.shape[1],
                    "mechanism": mechanism, "rate": rate, "seeds": len(runs),
                    "means": means, **score_cell(means), "runs": runs,
                })  # fmt: skip
                save(cells)
    return cells


def summarize(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean aekit / best-peer ratio, share of cells where aekit is best, the worst cell."""
    scored = [c for c in cells if c["ratio"] is not None]
    if not scored:
        return {"cells": 0}
    ratios = np.array([c["ratio"] for c in scored])
    worst = scored[int(np.argmax(ratios))]
    return {
        "cells": len(scored),
        "mean_ratio": float(ratios.mean()),
        "share_best": float((ratios < 1).mean()),
        "cells_above_1": int((ratios > 1).sum()),
        "worst": {k: worst[k] for k in ("table", "mechanism", "rate", "ratio", "best_peer")},
    }


def summaries(cells: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """The summary over the whole grid, its decide and confirm halves, and the time table."""
    order = [t for t in TABLES if any(c["table"] == t for c in cells)]
    order += [t for t in dict.fromkeys(c["table"] for c in cells) if t not in order]
    decide = {t for i, t in enumerate(TABLES) if i % 2 == 1}
    times: dict[str, dict[str, Any]] = {}
    for table in order:
        mine = [c for c in cells if c["table"] == table]
        entry: dict[str, Any] = {"rows": mine[0]["rows"], "columns": mine[0]["columns"]}
        for name in names:
            got = [m["seconds"] for c in mine if isinstance(m := c["means"].get(name), dict)]
            entry[name] = float(np.mean(got)) if len(got) == len(mine) else None
        times[table] = entry
    median = {}
    for name in names:
        got = [t[name] for t in times.values()]
        median[name] = float(np.median(got)) if got and None not in got else None
    return {
        "all": summarize(cells),
        "decide": summarize([c for c in cells if c["table"] in decide]),
        "confirm": summarize([c for c in cells if c["table"] not in decide]),
        "decide_tables": [t for t in order if t in decide],
        "seconds": times,
        "median_seconds": median,
    }


def run_mnist(args: argparse.Namespace) -> list[dict[str, Any]]:
    """MNIST rows: MCAR at the grid's rates and the missing quadrant, pixel units."""
    X = mnist(args.data / "mnist")
    names = [n for n in args.imputers if n in ("aekit", "simple", "knn", "iterative_br")]
    unit = np.ones(X.shape[1])
    cases: dict[str, Callable[[int], np.ndarray]] = {
        f"mcar{round(r * 100)}": (lambda s, r=r: MASKS["mcar"](X, r, s)) for r in args.rates
    }
    cases["quadrant"] = lambda s: quadrant(len(X), s)
    inner = argparse.Namespace(**{**vars(args), "imputers": names})
    out = []
    for case, make in cases.items():
        runs = [run_case(X, make(seed), seed, unit, inner) for seed in args.seeds[:1]]
        means = cell_means(runs, names)
        out.append({"case": case, "means": means, **score_cell(means), "runs": runs})
        print(f"  mnist {case}: {json.dumps(means)}", flush=True)
    return out


def run_outliers(args: argparse.Namespace) -> dict[str, Any]:
    """AUROC on test rows with 20 % MCAR holes vs without (breast cancer, anomaly.py's split)."""
    data = load_breast_cancer()
    X, anomalous = data.data, data.target == 0
    runs = []
    for seed in args.outlier_seeds:
        normal = np.random.default_rng(seed).permutation(np.flatnonzero(~anomalous))
        n_train = round(0.7 * len(normal))
        test = np.concatenate([normal[n_train:], np.flatnonzero(anomalous)])
        detector = AutoencoderOutlierDetector(random_state=seed).fit(X[normal[:n_train]])
        rows, labels = X[test], anomalous[test]
        rng = np.random.default_rng(1000 + seed)
        holed_rows = rng.permutation(len(rows))[: len(rows) // 2]
        mask = np.zeros(rows.shape, dtype=bool)
        mask[holed_rows] = rng.random((len(holed_rows), rows.shape[1])) < 0.2
        scores = -detector.score_samples(np.where(mask, np.nan, rows))
        complete_scores = -detector.score_samples(rows)
        has = mask.any(axis=1)
        runs.append(
            {
                "seed": seed,
                "auroc_with_holes": float(roc_auc_score(labels[has], scores[has])),
                "auroc_without": float(roc_auc_score(labels[~has], scores[~has])),
                "auroc_holed_rows_complete": float(
                    roc_auc_score(labels[has], complete_scores[has])
                ),
                "auroc_all_rows": float(roc_auc_score(labels, scores)),
                "auroc_all_rows_complete": float(roc_auc_score(labels, complete_scores)),
            }
        )
        print(f"  outliers seed {seed}: {runs[-1]}", flush=True)
    keys = [k for k in runs[0] if k != "seed"]
    return {"runs": runs, **{f"mean_{k}": float(np.mean([r[k] for r in runs])) for k in keys}}


def _ratio(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}"


def print_grid(cells: list[dict[str, Any]], found: dict[str, Any], names: list[str]) -> None:
    print("\nRMSE on the hidden entries (standardized), mean over seeds; aekit / best peer")
    print(f"{'table':<26}{'cell':<10}" + "".join(f"{n:>14}" for n in names) + f"{'ratio':>8}")
    for c in cells:
        shown = [
            f"{m['rmse']:>14.4f}" if isinstance(m, dict) else f"{m[:13]:>14}"
            for m in (c["means"][n] for n in names)
        ]
        cell = f"{c['mechanism']} {round(c['rate'] * 100)}"
        print(f"{c['table']:<26}{cell:<10}" + "".join(shown) + f"{_ratio(c['ratio']):>8}")
    for part in ("all", "decide", "confirm"):
        s = found[part]
        if s["cells"]:
            w = s["worst"]
            print(
                f"{part:>8}: {s['cells']} cells, mean ratio {s['mean_ratio']:.3f}, aekit best in "
                f"{s['share_best']:.0%}, worst {w['table']} {w['mechanism']} "
                f"{round(w['rate'] * 100)} % ({w['ratio']:.3f} vs {w['best_peer']})"
            )
    print("\nFit + transform seconds, mean over a table's cells")
    print(f"{'table':<26}{'shape':<12}" + "".join(f"{n:>14}" for n in names))
    for table, t in found["seconds"].items():
        shown = "".join(f"{'–' if t[n] is None else f'{t[n]:.2f}':>14}" for n in names)
        print(f"{table:<26}{t['rows']}×{t['columns']:<7}" + shown)
    median = found["median_seconds"]
    shown = "".join(f"{'–' if median[n] is None else f'{median[n]:.2f}':>14}" for n in names)
    print(f"{'median table':<38}" + shown)


def join_cells(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cells of one table, mechanism and rate from several runs as one cell, rescored.

    Runs of other imputers on the same holes (``--imputers``: the same seeds make the same
    masks) add their results to the cell, seed by seed; a later run's result for an imputer
    replaces an earlier one's ("not run" never replaces a result). Cells with other seed
    counts are refused (not the same holes).
    """
    joined: dict[tuple[Any, ...], dict[str, Any]] = {}
    for cell in cells:
        key = (cell["table"], cell["mechanism"], cell["rate"])
        if key not in joined:
            joined[key] = {**cell, "runs": [dict(run) for run in cell["runs"]]}
            continue
        into = joined[key]
        if into["seeds"] != cell["seeds"]:
            raise SystemExit(f"{key}: {into['seeds']} and {cell['seeds']} seeds: not one grid")
        for run, more in zip(into["runs"], cell["runs"], strict=True):
            run.update({n: r for n, r in more.items() if r != "not run" or n not in run})
    for cell in joined.values():
        names = list(dict.fromkeys(n for run in cell["runs"] for n in run))
        for run in cell["runs"]:  # an imputer one run left out reads "not run" in it
            run.update({n: "not run" for n in names if n not in run})
        cell["means"] = cell_means(cell["runs"], names)
        cell.update(score_cell(cell["means"]))
    return list(joined.values())


def merge(paths: list[Path]) -> dict[str, Any]:
    """One report from runs written in parts (tables split over processes, or other peers).

    Grid cells of one table, mechanism and rate are joined (:func:`join_cells`).
    """
    parts = [json.loads(p.read_text()) for p in paths]
    report = {k: v for k, v in parts[0].items() if k not in SECTIONS}
    report["merged_from"] = [  # a part that is a merge itself lists its own parts
        source for path, part in zip(paths, parts, strict=True)
        for source in part.get("merged_from", [str(path)])
    ]  # fmt: skip
    cells = join_cells([c for part in parts for c in part.get("grid", {}).get("cells", [])])
    if cells:
        names = list(dict.fromkeys(n for c in cells for n in c["means"]))
        for c in cells:  # a peer left out of one part's run reads "not run" there
            c["means"] = {n: c["means"].get(n, "not run") for n in names}
        report["grid"] = {"cells": cells, "summary": summaries(cells, names)}
        print_grid(cells, report["grid"]["summary"], names)
    if any("outliers" in part for part in parts):
        report["outliers"] = next(part["outliers"] for part in parts if "outliers" in part)
    for section in ("mnist", "categorical"):
        found = [row for part in parts for row in part.get(section, [])]
        if found:
            report[section] = found
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT, help=f"shared data folder ({ROOT})")
    parser.add_argument("--quick", action="store_true", help="diabetes and wine, MCAR 30 %%")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=",".join(SECTIONS))
    parser.add_argument("--datasets", help="comma-separated subset of " + ",".join(TABLES))
    parser.add_argument("--mechanisms", default="mcar,mar,mnar", help="(mcar,mar,mnar)")
    parser.add_argument("--rates", default="0.1,0.3,0.5", help="missing shares (0.1,0.3,0.5)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per cell (5)")
    parser.add_argument("--imputers", help="comma-separated subset of " + ",".join(IMPUTERS))
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per peer fit (600)")
    parser.add_argument("--aekit-params", default="{}", help="JSON: AutoencoderImputer params")
    parser.add_argument("--out", type=Path, default=OUT, help=f"JSON results ({OUT})")
    parser.add_argument("--merge", help="comma-separated JSON files of runs to merge into --out")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1; a user's default: the cores)"
    )
    args = parser.parse_args(argv)
    if args.merge:
        write_json(args.out, merge([Path(p) for p in args.merge.split(",")]), indent=1)
        return 0
    torch.set_num_threads(args.threads)  # 1: small models, kind to shared cores
    sections = args.sections.split(",")
    if args.quick:
        args.datasets, args.mechanisms, args.rates, args.seeds = "diabetes,wine", "mcar", "0.3", 1
        sections = [s for s in sections if s != "mnist"]
    args.datasets = (args.datasets or ",".join(TABLES)).split(",")
    args.mechanisms = args.mechanisms.split(",")
    args.rates = [float(r) for r in args.rates.split(",")]
    args.seeds = list(range(args.seeds))
    default_names = [n for n in IMPUTERS if n != "hyperimpute" or _hyperimpute_installed()]
    args.imputers = args.imputers.split(",") if args.imputers else default_names
    args.aekit_params = json.loads(args.aekit_params)
    report: dict[str, Any] = {
        "quick": args.quick,
        "aekit_params": args.aekit_params,
        "timeout": args.timeout,
        "hyperimpute": "measured" if "hyperimpute" in args.imputers else "not installed",
        **environment("versions", "threads", "cpus"),
    }
    if "grid" in sections:

        def save(cells: list[dict[str, Any]]) -> None:  # a long run leaves what it measured
            grid = {"cells": cells, "summary": summaries(cells, args.imputers), "partial": True}
            write_json(args.out, {**report, "grid": grid}, indent=1)

        cells = run_grid(args, save)
        report["grid"] = {"cells": cells, "summary": summaries(cells, args.imputers)}
        print_grid(cells, report["grid"]["summary"], args.imputers)
    if "mnist" in sections:
        report["mnist"] = run_mnist(args)
    if "categorical" in sections:
        report["categorical"] = run_cells(args.rates, args.seeds, args.aekit_params)
        print_cells(report["categorical"])
    if "outliers" in sections:
        args.outlier_seeds = args.seeds
        report["outliers"] = found = run_outliers(args)
        print(
            "\nOutlier detector, breast cancer, 20 % MCAR in half the test rows: AUROC with "
            f"holes {found['mean_auroc_with_holes']:.3f}, without "
            f"{found['mean_auroc_without']:.3f} (the holed rows complete: "
            f"{found['mean_auroc_holed_rows_complete']:.3f})"
        )
    write_json(args.out, report, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
