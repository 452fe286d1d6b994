"""Imputation: aekit's AutoencoderImputer against scikit-learn's imputers.

    .venv/bin/python benchmarks/impute.py             # the README's table (long: IterativeImputer)
    .venv/bin/python benchmarks/impute.py --quick     # a smoke run: 2 tables, 1 rate, 1 seed
    .venv/bin/python benchmarks/impute.py --only tables --imputers aekit,simple,knn

**Tables** (scikit-learn's diabetes, wine, breast cancer and digits): each seed hides a
random share (MCAR 10, 20, 40 %) of the entries; each imputer is fitted on the rows with
holes and fills them; RMSE over the hidden entries in standardized units (each column
divided by its standard deviation over the complete data). **MNIST** (the first 5,000 rows
of ``--data``, pixels in [0, 1]): MCAR at the same rates, and a missing 14×14 quadrant (a
random quadrant in half of the rows), RMSE in pixel units. Each run also reports a plain
downstream model on the imputed rows (``LogisticRegression`` accuracy, ``Ridge`` R² for
diabetes, on a fixed 70/30 split), and fit + impute wall-clock seconds (compare ratios
within one run; the lead measures times on a quiet machine).

The baselines: ``SimpleImputer`` (mean), ``KNNImputer`` (5 neighbours), and
``IterativeImputer`` with ``BayesianRidge`` and with ``ExtraTreesRegressor`` (100 trees,
``max_features="sqrt"``); on MNIST's 784 columns IterativeImputer uses
``n_nearest_features=50`` (as scikit-learn recommends for wide data; all 784 would take
hours). Every baseline fit runs in a subprocess killed after ``--timeout`` seconds (600):
such a run reads "timeout".

**Outliers**: the breast-cancer set-up of ``benchmarks/anomaly.py`` (train on 70 % of the
benign rows, score the rest and the malignant ones), 20 % MCAR in a random half of the test
rows, seeds 0 to 4: the detector's AUROC on the rows with holes and on those without, and
the same holed rows scored complete (the paired figure).

More datasets: add a loader to :data:`DATASETS` (the categorical columns' penguins row hooks
in here) or a whole row to :data:`EXTRA_BENCHMARKS`.
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
import sklearn
import torch
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_wine
from sklearn.ensemble import ExtraTreesRegressor
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
from sklearn.linear_model import BayesianRidge, LogisticRegression, Ridge
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from aekit import AutoencoderImputer, AutoencoderOutlierDetector
from aekit.data.formats import read_idx

from _common import environment, write_json

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
OUT = Path(__file__).resolve().parent / "results" / "impute.json"
RATES = (0.1, 0.2, 0.4)
MNIST_ROWS = 5000


# -- datasets: name -> () -> (X, y, kind); kind "table" (standardized RMSE) or "image" -------
def _mnist(data: Path) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(data / "t10k-images-idx3-ubyte.gz")[:MNIST_ROWS]
    labels = read_idx(data / "t10k-labels-idx1-ubyte.gz")[:MNIST_ROWS].astype(int)
    return images.reshape(len(images), -1).astype(np.float64) / 255.0, labels


DATASETS: dict[str, Callable[[argparse.Namespace], tuple[np.ndarray, np.ndarray, str]]] = {
    "diabetes": lambda args: (*load_diabetes(return_X_y=True), "table"),
    "wine": lambda args: (*load_wine(return_X_y=True), "table"),
    "breast_cancer": lambda args: (*load_breast_cancer(return_X_y=True), "table"),
    "digits": lambda args: (*load_digits(return_X_y=True), "table"),
    "mnist": lambda args: (*_mnist(args.data), "image"),
}

# Whole extra rows: name -> (args) -> a JSON-ready dict (printed as it is).
EXTRA_BENCHMARKS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {}


# -- imputers: name -> (seed, wide) -> an unfitted imputer ------------------------------------
def _iterative(estimator: Any, seed: int, wide: bool) -> IterativeImputer:
    return IterativeImputer(
        estimator=estimator,
        random_state=seed,
        max_iter=10,
        n_nearest_features=50 if wide else None,
        tol=1e-3,
    )


IMPUTERS: dict[str, Callable[[int, bool, dict[str, Any]], Any]] = {
    "aekit": lambda seed, wide, params: AutoencoderImputer(random_state=seed, **params),
    "simple": lambda seed, wide, params: SimpleImputer(),
    "knn": lambda seed, wide, params: KNNImputer(),
    "iterative_br": lambda seed, wide, params: _iterative(BayesianRidge(), seed, wide),
    "iterative_et": lambda seed, wide, params: _iterative(
        ExtraTreesRegressor(n_estimators=100, max_features="sqrt", random_state=seed, n_jobs=1),
        seed,
        wide,
    ),
}
IN_PROCESS = ("aekit", "simple")  # fast and in-process; the others run under the timeout


def _child(make: Callable[[], Any], X: np.ndarray, conn: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        filled = make().fit_transform(X)
        conn.send((filled, time.perf_counter() - start))
    conn.close()


def impute(name: str, X: np.ndarray, seed: int, wide: bool, args: argparse.Namespace):
    """``(filled rows, seconds)`` of imputer ``name`` fitted on ``X``; None on a timeout."""

    def make() -> Any:
        return IMPUTERS[name](seed, wide, args.aekit_params)

    if name in IN_PROCESS:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=sklearn.exceptions.ConvergenceWarning)
            filled = make().fit_transform(X)
        return filled, time.perf_counter() - start
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(make, X, send))
    process.start()
    send.close()
    try:
        if not receive.poll(args.timeout):
            return None
        return receive.recv()
    finally:
        process.kill()
        process.join()


# -- masks -------------------------------------------------------------------------------------
def mcar(shape: tuple[int, int], rate: float, seed: int) -> np.ndarray:
    """Each entry missing with probability ``rate``."""
    return np.random.default_rng(seed).random(shape) < rate


def quadrant(n_rows: int, seed: int, side: int = 28) -> np.ndarray:
    """A random 14×14 quadrant missing in a random half of the images."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((n_rows, side, side), dtype=bool)
    half = side // 2
    for row in rng.permutation(n_rows)[: n_rows // 2]:
        top, left = rng.integers(0, 2, size=2) * half
        mask[row, top : top + half, left : left + half] = True
    return mask.reshape(n_rows, -1)


def downstream(X: np.ndarray, y: np.ndarray, seed: int) -> float:
    """A plain model on imputed rows: accuracy (classes) or R² (diabetes), 70/30 split."""
    classes = y.dtype.kind in "iub"
    split = train_test_split(
        X, y, test_size=0.3, random_state=seed, stratify=y if classes else None
    )
    X_train, X_test, y_train, y_test = split
    final = LogisticRegression(max_iter=300) if classes else Ridge()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = make_pipeline(StandardScaler(), final).fit(X_train, y_train)
    return float(model.score(X_test, y_test))


def run_case(X, y, kind, mask, seed, args) -> dict[str, Any]:
    """Every imputer on one masked copy of ``X``: RMSE on the hidden entries, downstream, time."""
    unit = X.std(axis=0) if kind == "table" else np.ones(X.shape[1])
    unit = np.where(unit > 0, unit, 1.0)
    holed = np.where(mask, np.nan, X)
    results: dict[str, Any] = {}
    for name in args.imputers:
        found = impute(name, holed, seed, X.shape[1] > 100, args)
        if found is None:
            results[name] = "timeout"
            continue
        filled, seconds = found
        error = ((filled - X) / unit)[mask]
        results[name] = {
            "rmse": float(np.sqrt(np.mean(error**2))),
            "downstream": downstream(filled, y, seed),
            "seconds": seconds,
        }
    return results


def summarize(runs: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """Mean RMSE, downstream score and time over seeds (a timeout in any seed: timeout)."""
    out: dict[str, Any] = {}
    for name in names:
        got = [r[name] for r in runs]
        if any(g == "timeout" for g in got):
            out[name] = "timeout"
            continue
        out[name] = {
            k: float(np.mean([g[k] for g in got])) for k in ("rmse", "downstream", "seconds")
        }
    return out


def run_imputation(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for dataset in args.datasets:
        X, y, kind = DATASETS[dataset](args)
        X = X.astype(np.float64)
        shape = X.shape
        cases: dict[str, Callable[[int], np.ndarray]] = {
            f"mcar{round(rate * 100)}": (lambda seed, r=rate, s=shape: mcar(s, r, seed))
            for rate in args.rates
        }
        if dataset == "mnist" and not args.quick:
            cases["quadrant"] = lambda seed, n=shape[0]: quadrant(n, seed)
        results[dataset] = {}
        for case, make_mask in cases.items():
            runs = []
            for seed in args.seeds:
                runs.append(run_case(X, y, kind, make_mask(seed), seed, args))
                line = ", ".join(
                    f"{n} {r['rmse']:.4f}" if isinstance(r, dict) else f"{n} {r}"
                    for n, r in runs[-1].items()
                )
                print(f"  {dataset} {case} seed {seed}: {line}", flush=True)
            results[dataset][case] = {"runs": runs, **summarize(runs, args.imputers)}
    return results


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


# -- printing ----------------------------------------------------------------------------------
def print_imputation(results: dict[str, Any], names: list[str]) -> None:
    print("\nRMSE on the hidden entries (standardized units for tables, pixels for MNIST), mean")
    print("over seeds; aekit/best = aekit's RMSE over the best scikit-learn imputer's")
    header = (
        f"{'data':<14}{'case':<10}" + "".join(f"{n:>14}" for n in names) + f"{'aekit/best':>12}"
    )
    print(header)
    for dataset, cases in results.items():
        for case, found in cases.items():
            cells, best = [], np.inf
            for name in names:
                got = found[name]
                if got == "timeout":
                    cells.append(f"{'timeout':>14}")
                    continue
                cells.append(f"{got['rmse']:>14.4f}")
                if name != "aekit":
                    best = min(best, got["rmse"])
            ratio = (
                found["aekit"]["rmse"] / best if "aekit" in found and np.isfinite(best) else np.nan
            )
            print(f"{dataset:<14}{case:<10}" + "".join(cells) + f"{ratio:>12.3f}")
    print("\nDownstream score (accuracy; diabetes: R²) and fit + impute seconds")
    for dataset, cases in results.items():
        for case, found in cases.items():
            cells = [
                f"{'timeout':>20}"
                if found[n] == "timeout"
                else f"{found[n]['downstream']:>11.3f}{found[n]['seconds']:>8.1f}s"
                for n in names
            ]
            print(f"{dataset:<14}{case:<10}" + "".join(cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help=f"MNIST folder ({DATA})")
    parser.add_argument("--quick", action="store_true", help="2 tables, 1 rate, 1 seed")
    parser.add_argument("--only", choices=("tables", "outliers"), help="run one part")
    parser.add_argument("--datasets", help="comma-separated subset of " + ",".join(DATASETS))
    parser.add_argument("--imputers", help="comma-separated subset of " + ",".join(IMPUTERS))
    parser.add_argument("--rates", help="comma-separated missing rates (0.1,0.2,0.4)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per case (3)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per baseline fit")
    parser.add_argument("--aekit-params", default="{}", help="JSON: AutoencoderImputer params")
    parser.add_argument("--out", type=Path, default=OUT, help=f"JSON results ({OUT})")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # small models: one thread each, and kind to shared cores
    quick_sets = "diabetes,wine"
    args.datasets = (args.datasets or (quick_sets if args.quick else ",".join(DATASETS))).split(",")
    args.imputers = (args.imputers or ",".join(IMPUTERS)).split(",")
    args.rates = [
        float(r) for r in (args.rates or ("0.2" if args.quick else "0.1,0.2,0.4")).split(",")
    ]
    args.seeds = list(range(1 if args.quick else args.seeds))
    args.outlier_seeds = list(range(1 if args.quick else 5))
    args.aekit_params = json.loads(args.aekit_params)
    report: dict[str, Any] = {
        "quick": args.quick,
        "aekit_params": args.aekit_params,
        **environment("versions", "threads"),
    }
    if args.only != "outliers":
        report["imputation"] = run_imputation(args)
    if args.only != "tables":
        report["outliers"] = run_outliers(args)
        for name, run in EXTRA_BENCHMARKS.items():
            report[name] = run(args)
    if "imputation" in report:
        print_imputation(report["imputation"], args.imputers)
    if "outliers" in report:
        found = report["outliers"]
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
