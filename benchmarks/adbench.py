"""ADBench's classical tables: aekit's detector against PyOD's peers, in two protocols.

    .venv/bin/python benchmarks/adbench.py                      # both protocols, 5 seeds
    .venv/bin/python benchmarks/adbench.py --quick              # 6 small tables, 1 seed
    .venv/bin/python benchmarks/adbench.py --protocol one-class --seeds 1
    .venv/bin/python benchmarks/adbench.py --protocol contextual   # 3 seeds, its own JSON
    .venv/bin/python benchmarks/adbench.py --merge SUBSET.json --out results/adbench.json

**Data.** The ``.npz`` tables of ``--data`` (default ``../shared/data/adbench``: 31 of
ADBench's 47 classical tables, Han et al., NeurIPS 2022), each with ``X`` and ``y``
(1 = anomaly). A table above 30,000 rows is subsampled to 30,000 rows (drawn with the seed,
anomalies and normal rows alike); columns constant on the training rows are dropped for every
method.

**One-class** (the DTE paper's Table 1): half of the normal rows train; the other half and every
anomaly test; a ``StandardScaler`` fitted on the training rows scales the rows of every method.
**Unsupervised** (ADBench's): every row trains (labels unseen) and every row is scored; the
scaler is fitted on all rows. **Contextual** (``benchmarks/_contextual.py``): on scikit-learn's
tables and the normal rows of each ADBench table (at most 5,000, drawn with the seed), half of
the rows train; in the other half, 5 % of the rows get two columns (drawn per row) replaced by
the values of other rows, each value normal on its own; those rows are the anomalies. Its
methods are the detector, PyOD's LOF, IForest and KNN; its target: the detector's AUROC at
least LOF's and IForest's on every table (misses printed); it writes
``results/adbench_contextual.json`` unless ``--out`` says otherwise.

**Methods, each with its library defaults:** aekit's ``AutoencoderOutlierDetector()`` and the
plain ``Autoencoder()`` reconstruction error; PyOD's KNN, LOF, IForest, PCA, OCSVM, ECOD, COPOD,
HBOS and CBLOF (``pip install 'aekit[bench]'``; without PyOD they are left out, and the run says
so). Named with ``--methods`` only: ``"aekit detector batch=N"``, the default detector with
its autoencoder trained in batches of N rows (how :func:`aekit.anomaly.detector_batch_size`'s
rule was compared: ``--methods 'aekit detector batch=64' 'aekit detector batch=256'``).
Every method sees the same rows for a table and seed; PyTorch and the BLAS libraries run on
one thread, so fit and score seconds are comparable side by side (ratios, not absolute times).

**Output.** Per table and method: AUROC and average precision (means over seeds), fit and score
seconds; per method: mean AUROC, mean rank among the measured methods (1 = best on a table), the
number of tables more than 2 points below PCA; beside them the published DTE columns for the same
tables (``benchmarks/published/dte_adbench.json``, with its source). Printed as tables and
written to ``--out`` as JSON, after every table as it goes (``"complete": false`` until the
run ends), so that a run cut short keeps the tables it finished. After a merge, ``"complete"``
says whether every table of ``--data`` has every method's entry in every protocol.

**Merging a subset run** (``--merge SUBSET.json --out FULL.json``, nothing is run): where a
change touches some tables only (the detector's density term: tables of at most 8 columns),
a run of those tables and methods with the same seeds replaces, per table, the entries of
the methods it measured; the other methods' entries and the other tables stay; the
summaries are recomputed over the methods every table has, and the subset's command is
recorded under ``"merged"``; only the protocols both files hold are merged. Refused when
the seeds differ.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score
from threadpoolctl import threadpool_limits

from aekit import Autoencoder, AutoencoderOutlierDetector
from aekit.anomaly import detector_autoencoder

from _common import environment, write_json
from _contextual import MAX_NORMAL_ROWS as CONTEXTUAL_MAX_ROWS
from _contextual import contextual_split, contextual_tables, scaled

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "adbench"
OUT = HERE / "results" / "adbench.json"
CONTEXTUAL_OUT = HERE / "results" / "adbench_contextual.json"
CONTEXTUAL_METHODS = ("aekit detector", "PyOD LOF", "PyOD IForest", "PyOD KNN")
PUBLISHED = HERE / "published" / "dte_adbench.json"
MAX_ROWS = 30_000
QUICK_TABLES = ("4_breastw", "14_glass", "29_Pima", "43_WDBC", "47_yeast", "38_thyroid")
PUBLISHED_METHODS = ("DTE-NP", "KNN", "LOF", "IForest", "PCA", "OCSVM", "VAE", "ICL")
DETECTOR = "aekit detector"
RECONSTRUCTION = "aekit Autoencoder() error"

# A method: (training rows, seed) -> a function from rows to anomaly scores (higher = worse).
Scorer = Callable[[np.ndarray], np.ndarray]
Method = Callable[[np.ndarray, int], Scorer]


def aekit_detector(X: np.ndarray, seed: int) -> Scorer:
    model = AutoencoderOutlierDetector(random_state=seed).fit(X)
    return model.anomaly_score


def aekit_reconstruction(X: np.ndarray, seed: int) -> Scorer:
    return Autoencoder(random_state=seed).fit(X).reconstruction_error


def pyod(name: str) -> Method:
    """A PyOD detector with its defaults (``random_state`` where it takes one)."""

    def fit(X: np.ndarray, seed: int) -> Scorer:
        import importlib
        import inspect

        module, cls = {
            "KNN": ("pyod.models.knn", "KNN"),
            "LOF": ("pyod.models.lof", "LOF"),
            "IForest": ("pyod.models.iforest", "IForest"),
            "PCA": ("pyod.models.pca", "PCA"),
            "OCSVM": ("pyod.models.ocsvm", "OCSVM"),
            "ECOD": ("pyod.models.ecod", "ECOD"),
            "COPOD": ("pyod.models.copod", "COPOD"),
            "HBOS": ("pyod.models.hbos", "HBOS"),
            "CBLOF": ("pyod.models.cblof", "CBLOF"),
        }[name]
        make = getattr(importlib.import_module(module), cls)
        takes_seed = "random_state" in inspect.signature(make).parameters
        model = make(random_state=seed) if takes_seed else make()
        model.fit(X)
        return model.decision_function

    return fit


def detector_in_batches(batch_size: int) -> Method:
    """The default detector but for its autoencoder's batch (``"aekit detector batch=N"``)."""

    def fit(X: np.ndarray, seed: int) -> Scorer:
        base = detector_autoencoder(*X.shape).set_params(batch_size=batch_size)
        return AutoencoderOutlierDetector(base, random_state=seed).fit(X).anomaly_score

    return fit


def methods(names: list[str] | None) -> dict[str, Method]:
    found: dict[str, Method] = {DETECTOR: aekit_detector, RECONSTRUCTION: aekit_reconstruction}
    for name in names or ():  # only where named: how detector_batch_size's rule was chosen
        if name.startswith(f"{DETECTOR} batch=") and name.rpartition("=")[2].isdigit():
            found[name] = detector_in_batches(int(name.rpartition("=")[2]))
    try:
        import pyod as _  # noqa: F401
    except ImportError:
        print("PyOD is not installed (pip install 'aekit[bench]'): its methods are left out")
    else:
        for name in ("KNN", "LOF", "IForest", "PCA", "OCSVM", "ECOD", "COPOD", "HBOS", "CBLOF"):
            found[f"PyOD {name}"] = pyod(name)
    if names:
        unknown = sorted(set(names) - set(found))
        if unknown:
            raise SystemExit(f"unknown method(s) {unknown}; known: {sorted(found)}")
        found = {k: v for k, v in found.items() if k in names}
    return found


def load_table(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        X = np.asarray(data["X"], dtype=np.float64)
        y = np.asarray(data["y"]).astype(int).ravel()
    if X.ndim != 2 or len(X) != len(y) or not set(np.unique(y)) <= {0, 1}:
        raise SystemExit(f"{path}: expected X (rows x features) and y in {{0, 1}}")
    return X, y


def split(X: np.ndarray, y: np.ndarray, protocol: str, seed: int) -> dict[str, np.ndarray]:
    """Training rows, test rows and test labels of one seed, scaled, constant columns dropped."""
    rng = np.random.default_rng(seed)
    if len(X) > MAX_ROWS:
        keep = np.sort(rng.choice(len(X), MAX_ROWS, replace=False))
        X, y = X[keep], y[keep]
    if protocol == "one-class":
        normal = rng.permutation(np.flatnonzero(y == 0))
        half = len(normal) // 2
        train_idx = normal[:half]
        test_idx = np.concatenate([normal[half:], np.flatnonzero(y == 1)])
    else:
        train_idx = test_idx = np.arange(len(X))
    train, test = scaled(X[train_idx], X[test_idx])
    return {"train": train, "test": test, "labels": y[test_idx]}


def measure(method: Method, rows: dict[str, np.ndarray], seed: int) -> dict[str, Any]:
    """AUROC, average precision, fit and score seconds of one method on one split.

    A method that raises on a table (PyOD's CBLOF finds no cluster separation on some) scores
    as chance there, AUROC 50 and AP the anomaly share, with the error recorded under
    ``failed``: the run goes on and the failure counts against the method.
    """
    start = time.perf_counter()
    fitted = start
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # peers' convergence and deprecation chatter
            score = method(rows["train"], seed)
            fitted = time.perf_counter()
            scores = np.asarray(score(rows["test"]), dtype=np.float64)
    except Exception as exc:
        done = time.perf_counter()
        print(f"  failed: {type(exc).__name__}: {exc}"[:200], flush=True)
        return {
            "auroc": 50.0,
            "ap": 100 * float(np.mean(rows["labels"])),
            "fit_s": fitted - start,
            "score_s": done - fitted,
            "failed": f"{type(exc).__name__}: {exc}"[:200],
        }
    done = time.perf_counter()
    if not np.isfinite(scores).all():  # a method that fails on a table ranks last there
        scores = np.nan_to_num(scores, nan=0.0, posinf=1e300, neginf=-1e300)
    return {
        "auroc": 100 * float(roc_auc_score(rows["labels"], scores)),
        "ap": 100 * float(average_precision_score(rows["labels"], scores)),
        "fit_s": fitted - start,
        "score_s": done - fitted,
    }


def published_name(table: str) -> str:
    return table.split("_", 1)[1].lower()


def aggregate(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per method: the means over seeds of AUROC, AP, fit and score seconds; failures kept."""
    table: dict[str, Any] = {
        name: {
            key: float(np.mean([r[key] for r in got]))
            for key in ("auroc", "ap", "fit_s", "score_s")
        }
        for name, got in runs.items()
    }
    for name, got in runs.items():
        failures = [r["failed"] for r in got if "failed" in r]
        if failures:
            table[name]["failed"] = failures
    return table


def run(
    args: argparse.Namespace,
    protocol: str,
    found: dict[str, Method],
    done: Callable[[dict[str, Any]], None] = lambda results: None,
) -> dict[str, Any]:
    """One protocol over the tables; ``done(results so far)`` after each table."""
    tables = sorted(p for p in Path(args.data).glob("*.npz"))
    if args.tables:  # in the order given (e.g. smallest first, for a run that may be cut short)
        by_name = {p.stem: p for p in tables}
        tables = [by_name[t] for t in args.tables if t in by_name]
    if not tables:
        raise SystemExit(f"no .npz tables in {args.data}")
    published = json.loads(PUBLISHED.read_text())[
        "one_class" if protocol == "one-class" else "unsupervised"
    ]["tables"]
    results: dict[str, Any] = {}
    for path in tables:
        X, y = load_table(path)
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in found}
        for seed in range(args.seeds):
            rows = split(X, y, protocol, seed)
            for name, method in found.items():
                runs[name].append(measure(method, rows, seed))
        table = aggregate(runs)
        table["_shape"] = {"rows": len(X), "features": int(X.shape[1]),
                           "anomalies": int(y.sum())}  # fmt: skip
        table["_published"] = {
            m: published.get(published_name(path.stem), {}).get(m, [None])[0]
            for m in PUBLISHED_METHODS
        }
        results[path.stem] = table
        line = "  ".join(f"{n.split()[-1]} {table[n]['auroc']:.1f}" for n in found)
        print(f"{protocol:>12} {path.stem:<22} {line}", flush=True)
        done(results)
    return {"tables": results, "summary": summarize(results, list(found))}


def run_contextual(
    args: argparse.Namespace,
    found: dict[str, Method],
    done: Callable[[dict[str, Any]], None] = lambda results: None,
) -> dict[str, Any]:
    """The contextual section: swapped features in half of each table's normal rows."""
    results: dict[str, Any] = {}
    for name, X in contextual_tables(Path(args.data), args.tables, load_table):
        runs: dict[str, list[dict[str, Any]]] = {m: [] for m in found}
        for seed in range(args.seeds):
            rows = contextual_split(X, seed)
            for m, method in found.items():
                runs[m].append(measure(method, rows, seed))
        table = aggregate(runs)
        table["_shape"] = {"rows": min(len(X), CONTEXTUAL_MAX_ROWS),
                           "features": int(X.shape[1])}  # fmt: skip
        results[name] = table
        line = "  ".join(f"{n.split()[-1]} {table[n]['auroc']:.1f}" for n in found)
        print(f"  contextual {name:<22} {line}", flush=True)
        done(results)
    return {"tables": results, "summary": contextual_summary(results, list(found))}


def contextual_summary(results: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """Per method its mean AUROC; the tables where the detector is below LOF or IForest."""
    summary: dict[str, Any] = {
        n: {"mean_auroc": float(np.mean([t[n]["auroc"] for t in results.values()]))} for n in names
    }
    if DETECTOR in names:
        for peer in ("PyOD LOF", "PyOD IForest"):
            if peer in names:
                summary[DETECTOR][f"below {peer}"] = [
                    t for t, tab in results.items() if tab[DETECTOR]["auroc"] < tab[peer]["auroc"]
                ]
    return summary


def print_contextual(summary: dict[str, Any]) -> None:
    print("\ncontextual: mean AUROC (x100)")
    for name, s in sorted(summary.items(), key=lambda kv: -kv[1]["mean_auroc"]):
        print(f"  {name:<28} {s['mean_auroc']:6.2f}")
    for key, tables in summary.get(DETECTOR, {}).items():
        if key.startswith("below"):
            print(f"  target missed, detector {key}: {len(tables)} table(s) {tables}")


def summarize(results: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """Mean AUROC, mean rank, tables > 2 points below PCA, median fit + score seconds."""
    ranks: dict[str, list[float]] = {n: [] for n in names}
    for table in results.values():
        order = sorted(names, key=lambda n: -table[n]["auroc"])
        aurocs = [table[n]["auroc"] for n in order]
        for n in names:  # ties share the mean of their ranks
            same = [i + 1 for i, a in enumerate(aurocs) if a == table[n]["auroc"]]
            ranks[n].append(float(np.mean(same)))
    pca = "PyOD PCA" if "PyOD PCA" in names else None
    summary = {}
    for n in names:
        below = [t for t, tab in results.items() if pca and tab[n]["auroc"] < tab[pca]["auroc"] - 2]
        summary[n] = {
            "mean_auroc": float(np.mean([t[n]["auroc"] for t in results.values()])),
            "mean_ap": float(np.mean([t[n]["ap"] for t in results.values()])),
            "mean_rank": float(np.mean(ranks[n])),
            "median_seconds": float(
                np.median([t[n]["fit_s"] + t[n]["score_s"] for t in results.values()])
            ),
            "tables_2_below_pca": below,
        }
    for m in PUBLISHED_METHODS:
        got = [t["_published"][m] for t in results.values()]
        if all(v is not None for v in got):
            summary[f"published {m}"] = {"mean_auroc": float(np.mean(got))}
    return summary


def print_summary(protocol: str, summary: dict[str, Any]) -> None:
    print(f"\n{protocol}: mean AUROC (x100), mean rank, median fit+score s, tables >2 below PCA")
    for name, s in sorted(summary.items(), key=lambda kv: -kv[1]["mean_auroc"]):
        if "mean_rank" in s:
            below = len(s["tables_2_below_pca"])
            print(f"  {name:<28} {s['mean_auroc']:6.2f}  rank {s['mean_rank']:5.2f}  "
                  f"{s['median_seconds']:7.2f} s  {below}")  # fmt: skip
        else:
            print(f"  {name:<28} {s['mean_auroc']:6.2f}  (published, DTE README)")


def method_names(results: dict[str, Any]) -> list[str]:
    """The methods that every table of ``results`` has, in the first table's order."""
    tables = list(results.values())
    names = [k for k in tables[0] if not k.startswith("_")] if tables else []
    return [n for n in names if all(n in t for t in tables)]


def covers(full: dict[str, Any], expected: list[str]) -> bool:
    """Whether every protocol of ``full`` has every ``expected`` table with every method."""
    for got in full["protocols"].values():
        tables = got["tables"]
        every = {k for t in tables.values() for k in t if not k.startswith("_")}
        if not set(expected) <= set(tables) or set(method_names(tables)) != every:
            return False
    return True


def merge(subset_path: str, out_path: str, data: Path) -> None:
    """Replace, per table, ``out_path``'s entries of the methods ``subset_path`` measured.

    ``"complete"`` is then whether every table of ``data`` has every method (:func:`covers`).
    """
    subset = json.loads(Path(subset_path).read_text())
    full = json.loads(Path(out_path).read_text())
    if subset["seeds"] != full["seeds"]:
        raise SystemExit(f"{subset_path} has {subset['seeds']} seeds, {out_path} "
                         f"{full['seeds']}: a merge needs the same seeds")  # fmt: skip
    common = [p for p in subset["protocols"] if p in full["protocols"]]
    if not common:
        raise SystemExit(f"{out_path} has none of {subset_path}'s protocols to merge into")
    for protocol in common:
        got = subset["protocols"][protocol]
        tables = full["protocols"][protocol]["tables"]
        for name, new in got["tables"].items():
            tables[name] = {**tables.get(name, {}), **new}
        summary = contextual_summary if protocol == "contextual" else summarize
        full["protocols"][protocol]["summary"] = summary(tables, method_names(tables))
    expected = sorted(p.stem for p in data.glob("*.npz"))
    if not expected:  # complete against nothing would say nothing
        raise SystemExit(f"no ADBench tables (.npz) in {data}: --data names the folder")
    full["complete"] = covers(full, expected)
    full.setdefault("merged", []).append(
        {"command": subset["command"], "tables": sorted(
            t for p in common for t in subset["protocols"][p]["tables"])}
    )  # fmt: skip
    write_json(out_path, full, indent=1)
    for protocol, got in full["protocols"].items():
        (print_contextual if protocol == "contextual" else print_summary)(
            *([got["summary"]] if protocol == "contextual" else [protocol, got["summary"]])
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DATA), help="folder of ADBench .npz tables")
    parser.add_argument("--out", help=f"JSON results file (default {OUT.name}, "
                        f"{CONTEXTUAL_OUT.name} for the contextual protocol)")  # fmt: skip
    parser.add_argument("--protocol", default="both",
                        choices=["one-class", "unsupervised", "both", "contextual"])  # fmt: skip
    parser.add_argument("--seeds", type=int, help="seeds (default 5; 3 for contextual)")
    parser.add_argument("--tables", nargs="*", help="table names (file stems) to run")
    parser.add_argument("--methods", nargs="*", help="method names to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="6 small tables, 1 seed")
    parser.add_argument("--merge", metavar="SUBSET_JSON",
                        help="merge a subset run's tables into --out (nothing is run)")  # fmt: skip
    args = parser.parse_args()
    if args.merge:
        if not args.out:
            raise SystemExit("--merge needs --out, the full results file to merge into")
        merge(args.merge, args.out, Path(args.data))
        return
    contextual = args.protocol == "contextual"
    if args.seeds is None:
        args.seeds = 3 if contextual else 5
    if args.out is None:
        args.out = str(CONTEXTUAL_OUT if contextual else OUT)
    if args.quick:
        args.seeds, args.tables = 1, args.tables or list(QUICK_TABLES)
    found = methods(args.methods or (list(CONTEXTUAL_METHODS) if contextual else None))
    protocols = ["one-class", "unsupervised"] if args.protocol == "both" else [args.protocol]
    torch.set_num_threads(1)
    start = time.perf_counter()
    out: dict[str, Any] = {
        "protocols": {},
        "complete": False,
        "seeds": args.seeds,
        "max_rows": CONTEXTUAL_MAX_ROWS if contextual else MAX_ROWS,
        "published_source": json.loads(PUBLISHED.read_text())["source"],
        **environment("versions", "cpus", "cpu"),
        "threads": 1,
        "command": "benchmarks/adbench.py " + " ".join(
            f"--protocol {args.protocol} --seeds {args.seeds}".split()
            + (["--tables", *args.tables] if args.tables else [])
        ),
    }  # fmt: skip
    if contextual:
        out["swap"] = (
            "5 % of the test rows (at least 1): two varying columns drawn per row, each set "
            "to the value of a random other row whose value there differs"
        )

    def partial(protocol: str) -> Callable[[dict[str, Any]], None]:
        def write(results: dict[str, Any]) -> None:
            summary = (contextual_summary if contextual else summarize)(results, list(found))
            out["protocols"][protocol] = {"tables": results, "summary": summary}
            out["total_seconds"] = time.perf_counter() - start
            write_json(args.out, out, indent=1)

        return write

    with threadpool_limits(1):
        for protocol in protocols:
            if contextual:
                out["protocols"][protocol] = run_contextual(args, found, partial(protocol))
            else:
                out["protocols"][protocol] = run(args, protocol, found, partial(protocol))
    out["total_seconds"] = time.perf_counter() - start
    out["complete"] = True
    for protocol, got in out["protocols"].items():
        if contextual:
            print_contextual(got["summary"])
        else:
            print_summary(protocol, got["summary"])
    print(f"\ntotal {out['total_seconds']:.0f} s")
    write_json(args.out, out, indent=1)


if __name__ == "__main__":
    main()
