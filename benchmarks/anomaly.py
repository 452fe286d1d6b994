"""Anomaly detection: aekit's outlier detector against its peers, on digits and on tables.

    .venv/bin/python benchmarks/anomaly.py                 # the README's tables (~30 min, CPU)
    .venv/bin/python benchmarks/anomaly.py --quick         # a smoke run: 2 digits, 1 seed
    .venv/bin/python benchmarks/anomaly.py --split dev     # where the defaults were chosen

**MNIST one-class.** For each digit d: train on the images of d among the first 8,000 of
``--data`` (MNIST's test set, pixels scaled to [0, 1]), score all of the last 2,000; the
anomalies are the other digits. ``--split dev`` is the development split the detector's
defaults were chosen on: train among the first 6,000, score images 6,000 to 8,000.

**Tables.** scikit-learn's breast cancer (benign normal, malignant anomalies) and wine
(classes 0 and 1 normal, class 2 anomalies): train on 70 % of the normal rows, score the rest
and all the anomalies; seeds 0 to 4 (``--split dev``: seeds 100 to 104).

Every method sees the same rows; AUROC and average precision treat anomalies as positives and
higher anomaly scores as more anomalous. Fit and score times are wall-clock seconds on one
torch thread, measured side by side in the same run (compare ratios, not absolute times).
Prints a table for each benchmark and writes everything to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.neighbors import LocalOutlierFactor, NearestNeighbors
from sklearn.preprocessing import StandardScaler
from sklearn.svm import OneClassSVM

from aekit import Autoencoder, AutoencoderOutlierDetector
from aekit.data.formats import read_idx

from _common import environment, write_json

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
OUT = Path(__file__).resolve().parent / "results" / "anomaly.json"
DEFAULTS = "aekit detector, defaults"
TODAY = "aekit Autoencoder() error (0.1's default detector)"

# A method: (fit rows, seed) -> a function from rows to anomaly scores (higher = more anomalous).
Method = Callable[[np.ndarray, int], Callable[[np.ndarray], np.ndarray]]


def detector(**params: Any) -> Method:
    def fit(X: np.ndarray, seed: int) -> Callable[[np.ndarray], np.ndarray]:
        model = AutoencoderOutlierDetector(random_state=seed, **params).fit(X)
        return lambda rows: -model.score_samples(rows)

    return fit


def reconstruction(**params: Any) -> Method:
    def fit(X: np.ndarray, seed: int) -> Callable[[np.ndarray], np.ndarray]:
        model = Autoencoder(random_state=seed, **params).fit(X)
        return model.reconstruction_error

    return fit


def standardized(make: Callable[[np.ndarray, int], Any]) -> Method:
    """A scikit-learn detector fitted on standardized rows (the scaler fitted on X)."""

    def fit(X: np.ndarray, seed: int) -> Callable[[np.ndarray], np.ndarray]:
        scaler = StandardScaler().fit(X)
        model = make(scaler.transform(X), seed)
        return lambda rows: model(scaler.transform(rows))

    return fit


def pca_error(k: int) -> Callable[[np.ndarray, int], Any]:
    def fit(X: np.ndarray, seed: int) -> Callable[[np.ndarray], np.ndarray]:
        pca = PCA(min(k, *X.shape), random_state=seed).fit(X)
        return lambda rows: np.square(pca.inverse_transform(pca.transform(rows)) - rows).sum(1)

    return fit


def lof(X: np.ndarray, seed: int) -> Callable[[np.ndarray], np.ndarray]:
    model = LocalOutlierFactor(n_neighbors=20, novelty=True).fit(X)
    return lambda rows: -model.score_samples(rows)


def knn(X: np.ndarray, seed: int) -> Callable[[np.ndarray], np.ndarray]:
    model = NearestNeighbors(n_neighbors=5).fit(X)
    return lambda rows: model.kneighbors(rows)[0][:, -1]


def ocsvm(X: np.ndarray, seed: int) -> Callable[[np.ndarray], np.ndarray]:
    model = OneClassSVM(nu=0.1).fit(X)
    return lambda rows: -model.score_samples(rows)


def iforest(X: np.ndarray, seed: int) -> Callable[[np.ndarray], np.ndarray]:
    model = IsolationForest(random_state=seed).fit(X)
    return lambda rows: -model.score_samples(rows)


def pyod_autoencoder(X: np.ndarray, seed: int) -> Callable[[np.ndarray], np.ndarray]:
    from pyod.models.auto_encoder import AutoEncoder

    model = AutoEncoder(random_state=seed, verbose=0).fit(X)  # its defaults, silent
    return model.decision_function


def methods(kind: str, quick: bool) -> dict[str, Method]:
    """The methods compared on ``kind`` ("mnist" or "tables"), aekit's first."""
    found: dict[str, Method] = {
        DEFAULTS: detector(),
        "aekit detector, 2 autoencoders (ensemble)": detector(n_estimators=2),
        TODAY: reconstruction(),
    }
    if kind == "mnist":
        found["aekit Autoencoder(code_dim=16, loss='mse') error"] = reconstruction(
            code_dim=16, loss="mse"
        )
        if not quick:
            found["aekit convolutional, code 32, error"] = reconstruction(
                code_dim=32, image_shape="auto"
            )
        found["PCA reconstruction error, k=32"] = pca_error(32)
        found["LOF (novelty, 20 neighbours)"] = lof
        found["kNN distance (5th neighbour)"] = knn
        found["OneClassSVM (nu=0.1)"] = ocsvm
    else:
        found["PCA reconstruction error (standardized), k=2"] = standardized(pca_error(2))
        found["LOF (novelty, 20 neighbours, standardized)"] = standardized(lof)
        found["kNN distance (5th neighbour, standardized)"] = standardized(knn)
        found["OneClassSVM (nu=0.1, standardized)"] = standardized(ocsvm)
    found["IsolationForest"] = iforest
    try:
        import pyod  # noqa: F401
    except ImportError:
        print("PyOD is not installed: its AutoEncoder is left out (pip install pyod)")
    else:
        found["PyOD AutoEncoder, its defaults"] = pyod_autoencoder
    return found


def measure(method: Method, train: np.ndarray, test: np.ndarray, labels: np.ndarray, seed: int):
    """AUROC, average precision, fit and score seconds of one method on one split."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # peers' convergence and deprecation chatter
        score = method(train, seed)
        fitted = time.perf_counter()
        scores = np.asarray(score(test), dtype=np.float64)
    done = time.perf_counter()
    return {
        "auroc": float(roc_auc_score(labels, scores)),
        "ap": float(average_precision_score(labels, scores)),
        "fit_s": fitted - start,
        "score_s": done - fitted,
    }


def summarize(runs: list[dict[str, float]]) -> dict[str, float]:
    auroc = [r["auroc"] for r in runs]
    return {
        "mean_auroc": float(np.mean(auroc)),
        "worst_auroc": float(np.min(auroc)),
        "mean_ap": float(np.mean([r["ap"] for r in runs])),
        "fit_s": float(np.sum([r["fit_s"] for r in runs])),
        "score_s": float(np.sum([r["score_s"] for r in runs])),
    }


def run_mnist(data: Path, split: str, quick: bool) -> dict[str, Any]:
    images = read_idx(data / "t10k-images-idx3-ubyte.gz")
    X = images.reshape(len(images), -1).astype(np.float32) / 255.0
    y = read_idx(data / "t10k-labels-idx1-ubyte.gz").astype(int)
    train_end, test = (6000, slice(6000, 8000)) if split == "dev" else (8000, slice(8000, None))
    digits = (2, 8) if quick else tuple(range(10))
    results: dict[str, Any] = {}
    for name, method in methods("mnist", quick).items():
        runs = []
        for digit in digits:
            train = X[:train_end][y[:train_end] == digit]
            runs.append(measure(method, train, X[test], y[test] != digit, seed=0))
            runs[-1]["digit"] = digit
            print(f"  {name}: digit {digit} AUROC {runs[-1]['auroc']:.3f}", flush=True)
        results[name] = {"runs": runs, **summarize(runs)}
    return results


TABLES = {
    "breast_cancer": lambda: (load_breast_cancer().data, load_breast_cancer().target == 0),
    "wine": lambda: (load_wine().data, load_wine().target == 2),
}


def table_split(X: np.ndarray, anomalous: np.ndarray, seed: int):
    """70 % of the normal rows to train; the other normal rows and all anomalies to test."""
    normal = np.random.default_rng(seed).permutation(np.flatnonzero(~anomalous))
    n_train = round(0.7 * len(normal))
    test = np.concatenate([normal[n_train:], np.flatnonzero(anomalous)])
    return X[normal[:n_train]], X[test], anomalous[test]


def run_tables(split: str, quick: bool) -> dict[str, Any]:
    seeds = range(100, 105) if split == "dev" else range(5)
    seeds = seeds[:1] if quick else seeds
    results: dict[str, Any] = {}
    for table, load in TABLES.items():
        X, anomalous = load()
        results[table] = {}
        for name, method in methods("tables", quick).items():
            runs = []
            for seed in seeds:
                train, test, labels = table_split(X, anomalous, seed)
                runs.append({**measure(method, train, test, labels, seed), "seed": seed})
            results[table][name] = {"runs": runs, **summarize(runs)}
            print(f"  {table}: {name} AUROC {results[table][name]['mean_auroc']:.3f}", flush=True)
    return results


def print_mnist(results: dict[str, Any]) -> None:
    base = results[TODAY]["fit_s"]
    digits = [r["digit"] for r in results[DEFAULTS]["runs"]]
    print("\nMNIST one-class (AUROC per digit; fit time relative to 0.1's default detector)")
    columns = " | ".join(map(str, digits))
    print(f"| method | mean AUROC | worst digit | mean AP | fit s | score s | {columns} |")
    print("|---|---|---|---|---|---|" + "---|" * len(digits))
    for name, r in results.items():
        worst = r["runs"][int(np.argmin([x["auroc"] for x in r["runs"]]))]
        cells = " | ".join(f"{x['auroc']:.3f}" for x in r["runs"])
        fit = f"{r['fit_s']:.0f} s ({r['fit_s'] / base:.2f}×)"
        print(
            f"| {name} | {r['mean_auroc']:.3f} | {r['worst_auroc']:.3f} ({worst['digit']}) | "
            f"{r['mean_ap']:.3f} | {fit} | {r['score_s']:.1f} | {cells} |"
        )


def print_tables(results: dict[str, Any]) -> None:
    names = list(next(iter(results.values())))
    print("\nTables (mean AUROC and AP over seeds; total fit time, and relative to 0.1's default)")
    header = " | ".join(f"{t} AUROC | AP | fit" for t in results)
    print(f"| method | {header} |\n|---|" + "---|---|---|" * len(results))
    for name in names:
        cells = []
        for table in results.values():
            r = table[name]
            ratio = r["fit_s"] / table[TODAY]["fit_s"]
            fit = f"{r['fit_s']:.2f} s ({ratio:.2f}×)"
            cells.append(f"{r['mean_auroc']:.3f} | {r['mean_ap']:.3f} | {fit}")
        print(f"| {name} | {' | '.join(cells)} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help=f"MNIST folder ({DATA})")
    parser.add_argument("--split", choices=("test", "dev"), default="test", help="(test)")
    parser.add_argument("--quick", action="store_true", help="2 digits, 1 seed: a smoke run")
    parser.add_argument("--only", choices=("mnist", "tables"), help="run one benchmark")
    parser.add_argument("--out", type=Path, help=f"JSON results (default: {OUT})")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # small models: one thread each, and kind to shared cores
    out = args.out or (OUT.with_name(f"anomaly_{args.split}.json") if args.split == "dev" else OUT)
    report: dict[str, Any] = {
        "split": args.split,
        "quick": args.quick,
        **environment("versions", "threads"),
    }
    if args.only != "tables":
        report["mnist"] = run_mnist(args.data, args.split, args.quick)
    if args.only != "mnist":
        report["tables"] = run_tables(args.split, args.quick)
    if "mnist" in report:
        print_mnist(report["mnist"])
    if "tables" in report:
        print_tables(report["tables"])
    write_json(out, report, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
