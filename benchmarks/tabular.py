"""The autoencoder vs PCA on public tables: init="pca", init="random", init="auto" (the default).

    .venv/bin/python benchmarks/tabular.py                    # the README table (long, 2 cores)
    .venv/bin/python benchmarks/tabular.py --seeds 2 --tables iris,wine   # a quick look
    .venv/bin/python benchmarks/tabular.py --params '{"batch_norm": true}'
    .venv/bin/python benchmarks/tabular.py --seeds 1 --jobs 1 --inits pca,auto --codes 2,8 \
        --out benchmarks/results/tabular_times.json   # fit seconds, one process
    .venv/bin/python benchmarks/tabular.py --merge all.json,auto.json   # one start rerun

Tables: the five scikit-learn bundles, as they come (iris, wine, breast cancer, diabetes; the
estimator standardizes them) and the 8×8 digits (pixels divided by 16, as the demo has them)
form the *development* set, on which the default's rule was decided; four more tables that
packages in the ``bench`` extra ship form the *confirmation* set: palmerpenguins' penguins
(text columns and holes) and its raw table (more measurements, holes), scikit-learn's linnerud
(20 rows: exercise and body columns side by side) and matplotlib's sample ``Stocks.csv``
(daily closing prices of ten series, holes where a series had not started). No table is
fetched from the network. Each is split 80/20 with seed ``s`` and ``Autoencoder(code_dim=k,
random_state=s)`` is fitted at every code size ``k`` from 1 to ``min(d - 1, 8)``, with
``init="pca"``, ``init="random"`` and ``init="auto"`` (the default, :mod:`aekit.estimator.select`).
The ratio is the autoencoder's held-out error over PCA's with ``k`` components, both measured
by :func:`aekit.analysis.measure` (squared error in the model's scaled space, PCA fitted on the
same scaled training rows): below 1 the autoencoder wins. Prints every fit, then per table, code
size and start the mean and worst ratio and the mean fit seconds, and the issue's targets;
writes JSON (``--out``, default ``benchmarks/results/tabular.json``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.datasets import (
    load_breast_cancer,
    load_diabetes,
    load_digits,
    load_iris,
    load_linnerud,
    load_wine,
)

from aekit import Autoencoder
from aekit.analysis import measure, split_indices

from _common import environment, write_json


def _penguins() -> Any:
    from palmerpenguins import load_penguins

    return load_penguins()


def _penguins_raw() -> Any:
    from palmerpenguins import load_penguins_raw

    raw = load_penguins_raw()
    keep = ["Species", "Island", "Clutch Completion", "Sex"]
    keep += [c for c in raw.columns if "(" in c]  # the six measurements, units in brackets
    return raw[keep]


def _linnerud() -> np.ndarray:
    both = load_linnerud()
    return np.hstack([both.data, both.target])


def _stocks() -> np.ndarray:
    import matplotlib.cbook

    with matplotlib.cbook.get_sample_data("Stocks.csv") as f:
        prices = np.genfromtxt(f, delimiter=",", skip_header=2, filling_values=np.nan)
    return prices[:, 1:]  # the date column reads as NaN


DEVELOPMENT = {
    "iris": lambda: load_iris().data,
    "wine": lambda: load_wine().data,
    "breast_cancer": lambda: load_breast_cancer().data,
    "diabetes": lambda: load_diabetes().data,
    "digits": lambda: load_digits().data / 16.0,
}
CONFIRMATION = {
    "penguins": _penguins,
    "penguins_raw": _penguins_raw,
    "linnerud": _linnerud,
    "stocks": _stocks,
}
TABLES = {**DEVELOPMENT, **CONFIRMATION}
INITS = ("pca", "random", "auto")
RESULTS = Path(__file__).resolve().parent / "results" / "tabular.json"


def _rows(X: Any, index: np.ndarray) -> Any:
    return X.iloc[index] if hasattr(X, "iloc") else X[index]


def fit_one(job: tuple[str, int, int, str, dict[str, Any]]) -> dict[str, Any]:
    """One fit: table, seed, code size, start; its ratio to PCA and its wall time."""
    name, seed, k, init, params = job
    torch.set_num_threads(1)  # tiny models: one thread is as fast, and kinder to shared cores
    X = TABLES[name]()
    train, test = split_indices(len(X), 0.2, seed)
    tick = time.perf_counter()
    ae = Autoencoder(code_dim=k, random_state=seed, init=init, device="cpu", **params)
    ae.fit(_rows(X, train))
    seconds = time.perf_counter() - tick
    found = measure(ae, _rows(X, train), _rows(X, test))
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
        "selection": (ae.history_.initial or {}).get("selection"),
    }


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per table, code size and start: mean and worst ratio over the seeds, mean seconds."""
    out = []
    keys = sorted(
        {(r["table"], r["code_dim"]) for r in rows}, key=lambda t: (list(TABLES).index(t[0]), t[1])
    )
    for name, k in keys:
        for init in INITS:
            own = [r for r in rows if (r["table"], r["code_dim"], r["init"]) == (name, k, init)]
            if own:
                ratios = [r["ratio"] for r in own]
                out.append(
                    {
                        "table": name,
                        "code_dim": k,
                        "init": init,
                        "fits": len(own),
                        "mean_ratio": float(np.mean(ratios)),
                        "worst_ratio": float(np.max(ratios)),
                        "seconds": float(np.mean([r["seconds"] for r in own])),
                    }
                )
    return out


def targets(summary: list[dict[str, Any]], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's targets, per set of tables: misses named, and the figures they come from."""
    by = {(s["table"], s["code_dim"], s["init"]): s for s in summary}
    report: dict[str, Any] = {}
    for set_name, tables in (("development", DEVELOPMENT), ("confirmation", CONFIRMATION)):
        misses, table_means = [], {}
        for name in tables:
            codes = sorted(k for (t, k, i) in by if t == name and i == "auto")
            for k in codes:
                pca, rnd, auto = (by[(name, k, i)] for i in INITS)
                bound = min(pca["mean_ratio"], rnd["mean_ratio"]) + 0.01
                if auto["mean_ratio"] > bound:
                    misses.append(f"{name} k={k}: mean {auto['mean_ratio']:.3f} > {bound:.3f}")
                if auto["worst_ratio"] > 1.005:
                    misses.append(f"{name} k={k}: worst {auto['worst_ratio']:.3f} > 1.005")
            own = [r for r in rows if r["table"] == name and r["init"] == "auto"]
            if own:
                table_means[name] = {
                    init: float(
                        np.mean(
                            [r["ratio"] for r in rows if r["table"] == name and r["init"] == init]
                        )
                    )
                    for init in INITS
                }
        slow = [
            f"{r['table']} k={r['code_dim']} seed {r['seed']}: {r['seconds']:.1f} s"
            for r in rows
            if r["table"] in tables and r["init"] == "auto" and r["seconds"] > 10
        ]
        medians = {
            init: float(np.median([m[init] for m in table_means.values()])) if table_means else None
            for init in INITS
        }
        report[set_name] = {
            "misses": misses,
            "table_means": table_means,
            "median_of_table_means": medians,
            "fits_over_10_s": slow,
        }
    every = {**report["development"]["table_means"], **report["confirmation"]["table_means"]}
    report["median_of_table_means"] = {
        init: float(np.median([m[init] for m in every.values()])) if every else None
        for init in INITS
    }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0, 1, ... (default: 3)")
    parser.add_argument("--tables", default=",".join(TABLES), help="comma-separated tables")
    parser.add_argument("--inits", default=",".join(INITS), help="starts to fit (default: all)")
    parser.add_argument(
        "--codes", default=None, help="comma-separated code sizes (default: 1 to min(d - 1, 8))"
    )
    parser.add_argument("--params", default="{}", help="extra Autoencoder arguments (JSON)")
    parser.add_argument("--jobs", type=int, default=2, help="processes (default: 2)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON file to write")
    parser.add_argument(
        "--merge", help="comma-separated JSON runs to join into --out (later fits replace earlier)"
    )
    args = parser.parse_args(argv)
    params = json.loads(args.params)
    if args.merge:
        options = ("seeds", "tables", "inits", "codes", "params", "jobs")  # (abbreviated too)
        if any(getattr(args, o) != parser.get_default(o) for o in options):
            raise SystemExit("--merge joins finished runs: it takes only --out (and the runs)")
        rows = merged_fits([Path(p) for p in args.merge.split(",")])
        args.inits = ",".join(i for i in INITS if any(r["init"] == i for r in rows))
        report(rows, args, params, argv)
        return 0
    jobs = []
    for name in args.tables.split(","):
        d = TABLES[name]().shape[1]
        codes = range(1, min(d - 1, 8) + 1)
        if args.codes:
            codes = sorted({min(int(k), d - 1, 8) for k in args.codes.split(",")})
        for k in codes:
            for seed in range(args.seeds):
                jobs += [(name, seed, k, init, params) for init in args.inits.split(",")]
    rows = []
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        for row in pool.imap(fit_one, jobs):
            rows.append(row)
            chosen = (row["selection"] or {}).get("init", "")
            print(
                f"{row['table']:<14} k={row['code_dim']} seed {row['seed']} {row['init']:<6} "
                f"ratio {row['ratio']:.3f}  best epoch {row['best_epoch']}  "
                f"{row['seconds']:.1f} s {chosen}",
                flush=True,
            )
    report(rows, args, params, argv)
    return 0


def merged_fits(paths: list[Path]) -> list[dict[str, Any]]:
    """The fits of several runs as one; a later run's start replaces an earlier run's.

    A run that fitted a start (``init``) replaces every fit of that start made by the runs
    before it, so a start rerun after a change is one run's fits, never old and new mixed
    (a rerun of fewer seeds, codes or tables leaves cells without that start, refused
    below); the other starts are kept.
    """
    fits: dict[tuple[Any, ...], dict[str, Any]] = {}
    parts = [json.loads(path.read_text()) for path in paths]
    if len({json.dumps(part.get("params") or {}, sort_keys=True) for part in parts}) > 1:
        raise SystemExit("--merge: the runs were made with different --params")
    for part in parts:
        brought = {row["init"] for row in part["fits"]}
        fits = {key: row for key, row in fits.items() if key[3] not in brought}
        for row in part["fits"]:
            fits[row["table"], row["code_dim"], row["seed"], row["init"]] = row
    starts = {init for *_, init in fits}
    cells = {key[:3] for key in fits}
    missing = [cell for cell in cells if any((*cell, init) not in fits for init in starts)]
    if missing:  # the summary and targets compare the starts cell by cell
        raise SystemExit(
            f"--merge: {len(missing)} fits lack a start the others have, e.g. {sorted(missing)[0]}"
        )
    return list(fits.values())


def report(
    rows: list[dict[str, Any]], args: argparse.Namespace, params: Any, argv: list[str] | None
) -> None:
    """Print the per-table summary and the targets of ``rows``; write the JSON report."""
    summary = summarize(rows)
    fitted = [i for i in INITS if i in args.inits.split(",")]  # summarize's order
    print(
        f"\n{'table':<14} {'k':>2} "
        + " ".join(f"{i + ' mean':>12} {'worst':>6} {'s':>5}" for i in fitted)
    )
    for at in range(0, len(summary), len(fitted)):
        group = summary[at : at + len(fitted)]
        cells = " ".join(
            f"{s['mean_ratio']:>12.3f} {s['worst_ratio']:>6.3f} {s['seconds']:>5.1f}" for s in group
        )
        print(f"{group[0]['table']:<14} {group[0]['code_dim']:>2} {cells}")
    checked = targets(summary, rows) if set(args.inits.split(",")) == set(INITS) else {}
    for set_name in ("development", "confirmation"):
        if set_name in checked:
            found = checked[set_name]
            print(f"\n{set_name}: median of per-table means {found['median_of_table_means']}")
            print("  misses: " + ("; ".join(found["misses"]) or "none"))
            print("  default fits over 10 s: " + (", ".join(found["fits_over_10_s"]) or "none"))
    if checked:
        print(f"\nall tables: median of per-table means {checked['median_of_table_means']}")
    found = {
        "benchmark": "tabular",
        "command": " ".join(["benchmarks/tabular.py", *(sys.argv[1:] if argv is None else argv)]),
        "machine": environment("platform", "torch", "cpus"),
        "params": params,
        "summary": summary,
        "targets": checked,
        "fits": rows,
    }
    if args.merge:  # each part's own command
        parts = [Path(p) for p in args.merge.split(",")]
        found["params"] = json.loads(parts[0].read_text()).get("params")  # one (checked)
        found["merged_from"] = [
            {key: json.loads(p.read_text()).get(key) for key in ("command", "machine")}
            | {"file": str(p)}
            for p in parts
        ]
    write_json(args.out, found)


if __name__ == "__main__":
    raise SystemExit(main())
