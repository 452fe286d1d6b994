"""Samples/s epoch after epoch: no slowdown over a run, and ``max_time`` kept to an epoch.

Issue 28 saw a bag-of-words fit (20,689 x 2,938, 7.6 non-zeros a row) slow from ~5 s to ~78 s
an epoch over 8 epochs, and stay flat with ``torch.set_flush_denormal(True)``: denormal
numbers. aekit now flushes them while it trains on the CPU (``aekit.training.denormals``).
Sections (``--section``, default all):

- ``slowdown``: a synthetic bag-of-words matrix of that shape and sparsity (Zipf-distributed
  words, 0/1 entries, so the default model has a sigmoid output and BCE: the outputs of absent
  words are pushed towards 0, through the denormal range) on the sparse path, and dense rows
  (MNIST's 10,000 test images, or synthetic ones of that shape), each trained ``--epochs``
  epochs with denormals flushed (aekit's default) and without (``FLUSH = False``), one run
  after the other. Reported: samples/s of every epoch, and the median of the last two epochs
  over the median of the first two (target: at least 0.8, i.e. within 20 %).
- ``max-time``: the same bag-of-words fit with ``max_time`` set to ``--budget-epochs`` times
  the first run's median epoch: how far training ran past the budget, against the median
  epoch (target: at most one median epoch).

Run ``python benchmarks/epochs.py`` (about 6 minutes on 2 quiet cores; ``--rows`` shrinks the
bag of words, ``--quick`` is a smoke run). Writes ``benchmarks/results/epochs.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from aekit import Autoencoder
from aekit.data.formats import read_array
from aekit.training import denormals

from _common import environment, write_json

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
RESULTS = Path(__file__).resolve().parent / "results" / "epochs.json"
SECTIONS = ("slowdown", "max-time")
TARGET_RATIO = 0.8  # the last epochs' samples/s at least this share of the first epochs'


def bag_of_words(rows: int, cols: int = 2938, per_row: float = 7.6, seed: int = 0) -> Any:
    """A 0/1 CSR matrix: each row ~Poisson(``per_row``) distinct words drawn by Zipf's law."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(per_row, rows).clip(1, cols)
    p = 1.0 / np.arange(1, cols + 1) ** 1.07
    p /= p.sum()
    words = [np.unique(rng.choice(cols, k, p=p)) for k in counts]
    indptr = np.concatenate([[0], np.cumsum([len(w) for w in words])])
    data = np.ones(indptr[-1], dtype=np.float32)
    return sp.csr_array((data, np.concatenate(words), indptr), shape=(rows, cols))


def dense_rows(folder: Path) -> tuple[np.ndarray, str]:
    """MNIST's 10,000 test images in [0, 1], or synthetic rows of that shape."""
    images = folder / "t10k-images-idx3-ubyte.gz"
    if images.exists():
        X = np.asarray(read_array(images), dtype=np.float32).reshape(10000, -1) / 255
        return X, str(images)
    rng = np.random.default_rng(0)
    z = rng.normal(size=(10000, 30)) @ rng.normal(size=(30, 784)) / 4
    return (1 / (1 + np.exp(-z))).astype(np.float32), "synthetic"


def fit(X: Any, epochs: int, flush: bool, threads: Any, **params: Any) -> Autoencoder:
    """A default fit (``patience=None``: every epoch runs) with denormals flushed or not."""
    denormals.FLUSH = flush
    try:
        ae = Autoencoder(code_dim=32, epochs=epochs, patience=None, random_state=0,
                         threads=threads, **params)  # fmt: skip
        return ae.fit(X)
    finally:
        denormals.FLUSH = True


def ratio(speeds: list[float]) -> float:
    """The median samples/s of the last two epochs over that of the first two."""
    return statistics.median(speeds[-2:]) / statistics.median(speeds[:2])


def section_slowdown(args: argparse.Namespace) -> dict[str, Any]:
    X_dense, source = dense_rows(args.data)
    data = {"bag of words (sparse path)": bag_of_words(args.rows), "dense rows": X_dense}
    out: dict[str, Any] = {"dense_source": source}
    for name, X in data.items():
        for flush in (True, False):
            ae = fit(X, args.epochs, flush, args.threads)
            speeds = [r["samples_per_s"] for r in ae.history_.records]
            key = f"{name}, {'flushed' if flush else 'not flushed'}"
            out[key] = {
                "shape": list(X.shape), "input_path": ae.input_path_,
                "output": ae.model_config_.output, "threads": ae.history_.threads,
                "samples_per_s": speeds, "last_over_first": ratio(speeds),
            }  # fmt: skip
            print(f"  {key}: " + " ".join(f"{s:.0f}" for s in speeds)
                  + f" samples/s; last/first {ratio(speeds):.2f}", flush=True)  # fmt: skip
    return out


def section_max_time(args: argparse.Namespace) -> dict[str, Any]:
    X = bag_of_words(args.rows)
    first = fit(X, 2, True, args.threads)
    epoch = statistics.median(r["seconds"] for r in first.history_.records)
    budget = args.budget_epochs * epoch
    tick = time.perf_counter()
    ae = fit(X, 10_000, True, args.threads, max_time=budget)
    wall = time.perf_counter() - tick
    seconds = [r["seconds"] for r in ae.history_.records]
    trained = sum(seconds)  # epoch seconds; validation and fixed costs are outside them
    median = statistics.median(seconds)
    res = {
        "max_time": budget, "epochs": len(seconds), "stop_reason": ae.history_.stop_reason,
        "epoch_seconds": seconds, "median_epoch": median, "fit_wall_seconds": wall,
        "setup_seconds": ae.history_.setup_seconds,
        "overshoot_epochs_only": trained - budget,
        "overshoot_wall": wall - sum(ae.history_.setup_seconds.values()) - budget,
    }  # fmt: skip
    print(f"  max_time {budget:.1f} s: {len(seconds)} epochs, overshoot "
          f"{res['overshoot_wall']:.1f} s (median epoch {median:.1f} s)")  # fmt: skip
    return res


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="MNIST folder")
    parser.add_argument("--section", choices=SECTIONS, action="append")
    parser.add_argument("--rows", type=int, default=20_689, help="bag-of-words rows")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--budget-epochs", type=float, default=4.5, help="max-time section")
    parser.add_argument("--threads", default="auto", help="'auto' (aekit's) or a count")
    parser.add_argument("--quick", action="store_true", help="a smoke run (seconds)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.threads = args.threads if args.threads == "auto" else int(args.threads)
    if args.quick:
        args.rows, args.epochs, args.budget_epochs = 2000, 3, 1.5
    res: dict[str, Any] = {**environment("versions", "cpus", "cpu"), "rows": args.rows,
                           "epochs": args.epochs, "threads_option": args.threads,
                           "load_average": {"start": os.getloadavg()}}  # fmt: skip
    for section in args.section or SECTIONS:
        print(f"\n{section}", flush=True)
        res[section] = (section_slowdown if section == "slowdown" else section_max_time)(args)
    res["load_average"]["end"] = os.getloadavg()
    print("\ntargets (issue 28)")
    for key, run in res.get("slowdown", {}).items():
        if isinstance(run, dict) and "flushed" in key and "not" not in key:
            met = "met" if run["last_over_first"] >= TARGET_RATIO else "MISSED"
            print(f"  {key}: last/first {run['last_over_first']:.2f} ≥ {TARGET_RATIO} {met}")
    if "max-time" in res:
        r = res["max-time"]
        met = "met" if r["overshoot_wall"] <= r["median_epoch"] else "MISSED"
        print(f"  max_time overshoot {r['overshoot_wall']:.1f} s ≤ median epoch "
              f"{r['median_epoch']:.1f} s {met}")  # fmt: skip
    write_json(args.out, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
