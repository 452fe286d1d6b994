"""Ensembles in one pass: an ensemble's fit time against one member's, side by side.

    .venv/bin/python benchmarks/ensembles.py            # the table (a few minutes on 2 cores)
    .venv/bin/python benchmarks/ensembles.py --quick    # a smoke run: small table, few epochs
    .venv/bin/python benchmarks/ensembles.py --no-sequential   # skip the "before" rows

The imputer's and the outlier detector's members train as one stacked network
(:func:`aekit.estimator.ensemble.fit_members`). On one table, this times, in one run:

- ``AutoencoderImputer`` with its defaults (its own autoencoder, validated blend and all:
  what a user fits; with ``--epochs``, :func:`~aekit.impute.defaults.imputer_autoencoder`'s
  members of that many epochs, without the blend, whose layers are 256 units wide) and 1
  member, 5 members in one pass, and 5 members fitted one after another (the code path
  before the one-pass fit, kept as ``fit_members(..., together=False)``); the rows have
  20 % of their entries missing (MCAR), and the imputation RMSE on them (standardized
  units) shows the two 5-member fits agree;
- ``AutoencoderOutlierDetector`` with its default autoencoder and 1, 2 and 5 members in one
  pass, and 5 one after another, on the complete rows.

Each row's "× one member" divides its seconds by the 1-member fit's seconds of the same
estimator (the issue's target: a 5-member ensemble ≤ 1.5 × one member); the same for the
process's CPU seconds (all threads), steadier than wall-clock on a busy machine. Each fit
chooses its thread count (``threads="auto"``; the one-pass fit once for all members) unless
``--threads`` fixes it (``torch.set_num_threads`` and ``OMP_NUM_THREADS``, as a user would:
the variable makes the count explicit where it equals torch's own at start-up, which aekit
cannot tell from its default); the table shows the counts used. An ensemble runs as many
epochs as its longest-training member (early stopping is per member), so the table also
shows each fit's largest epoch count.

The table is synthetic unless ``--table`` names a ``.npy`` or ``.csv`` file of numbers:
1,800 rows × 21 columns, five latent factors mixed linearly plus noise (the imputation
grid's median table size). ``--data`` is where ``--table`` is looked up when relative
(default ``../shared/data``). Timings on a shared machine are noisy: compare the ratios
within one run. One untimed warm-up fit of each estimator comes first.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aekit import AutoencoderImputer, AutoencoderOutlierDetector
from aekit.anomaly import detector as detector_module
from aekit.estimator import ensemble
from aekit.impute import imputer as imputer_module

from _common import environment, write_json

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
OUT = Path(__file__).resolve().parent / "results" / "ensembles.json"


def synthetic_table(n_rows: int, n_columns: int, seed: int) -> np.ndarray:
    """Rows of five latent factors mixed linearly, plus noise (standardized columns)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, 5)) @ rng.normal(size=(5, n_columns))
    X += 0.3 * rng.normal(size=X.shape)
    return (X - X.mean(axis=0)) / X.std(axis=0)


def read_table(path: Path) -> np.ndarray:
    """A ``.npy`` array or a ``.csv`` of numbers (one header line)."""
    if path.suffix == ".npy":
        return np.load(path).astype(np.float64)
    return np.loadtxt(path, delimiter=",", skiprows=1)


@contextlib.contextmanager
def one_after_another(module: Any) -> Iterator[None]:
    """Make ``module``'s call site fit its members one after another (the code path before)."""
    saved = module.fit_members
    module.fit_members = functools.partial(ensemble.fit_members, together=False)
    try:
        yield
    finally:
        module.fit_members = saved


def timed(make: Any, X: np.ndarray) -> tuple[Any, float, float]:
    """A fit, its wall-clock seconds and this process's CPU seconds (all its threads)."""
    tick, cpu = time.perf_counter(), time.process_time()
    fitted = make().fit(X)
    return fitted, time.perf_counter() - tick, time.process_time() - cpu


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.table is None:
        full = synthetic_table(args.rows, args.columns, args.seed)
        source = f"synthetic {args.rows} x {args.columns} (five factors + noise)"
    else:
        path = args.table if args.table.is_absolute() else args.data / args.table
        full, source = read_table(path), str(path)
    rng = np.random.default_rng(args.seed + 1)
    holes = rng.random(full.shape) < args.missing
    X = np.where(holes, np.nan, full)
    extra = {} if args.epochs is None else {"epochs": args.epochs}
    threads = args.threads if args.threads == "auto" else int(args.threads)
    rows: list[dict[str, Any]] = []

    if threads != "auto":  # an explicit count, as a user sets it (the imputer's own members)
        torch.set_num_threads(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)  # explicit even at torch's own count

    def imputer(k: int) -> AutoencoderImputer:
        from aekit.impute.defaults import imputer_autoencoder

        if not extra:  # the default imputer, its validated blend and all: what users fit
            return AutoencoderImputer(n_estimators=k, random_state=args.seed)
        base = imputer_autoencoder(X).set_params(threads=threads, **extra)  # 256-unit members
        return AutoencoderImputer(base, n_estimators=k, random_state=args.seed)

    def detector(k: int) -> AutoencoderOutlierDetector:
        from aekit.anomaly import detector_autoencoder

        base = detector_autoencoder(*full.shape).set_params(threads=threads, **extra)
        return AutoencoderOutlierDetector(base, n_estimators=k, random_state=args.seed)

    def add(name: str, k: int, how: str, run: tuple[Any, float, float], one: tuple, **more: Any):
        fitted, seconds, cpu = run
        epochs = max(m.n_iter_ for m in fitted.estimators_)
        threads = sorted({m.history_.threads for m in fitted.estimators_})
        row = {"estimator": name, "members": k, "how": how, "seconds": seconds}
        row |= {"x_one_member": seconds / one[1], "cpu_seconds": cpu, "x_one_cpu": cpu / one[2]}
        row |= {"max_epochs": epochs, "threads": threads, **more}
        rows.append(row)
        print(
            f"{name:9} {k} members {how:18} {seconds:7.1f} s {seconds / one[1]:5.2f} x one"
            f"  cpu {cpu:7.1f} s {cpu / one[2]:5.2f} x one  epochs {epochs:4}  threads {threads}"
            + "".join(f"  {k}={v:.4g}" for k, v in more.items()),
            flush=True,
        )

    def rmse(fitted: AutoencoderImputer) -> float:
        return float(np.sqrt(np.mean((fitted.transform(X)[holes] - full[holes]) ** 2)))

    # untimed warm-up: first calls (imports, vmap, kernels) cost seconds, once per process
    for make, rows_in in ((imputer, X), (detector, full.astype(np.float32))):
        warm = make(2)
        if warm.estimator is not None:
            warm.estimator.set_params(epochs=1)
        warm.fit(rows_in[:300])
    one = timed(lambda: imputer(1), X)
    add("imputer", 1, "alone", one, one, rmse=rmse(one[0]))
    five = timed(lambda: imputer(5), X)
    add("imputer", 5, "one pass", five, one, rmse=rmse(five[0]))
    if args.sequential:
        with one_after_another(imputer_module):
            five = timed(lambda: imputer(5), X)
        add("imputer", 5, "one after another", five, one, rmse=rmse(five[0]))

    complete = full.astype(np.float32)
    one = timed(lambda: detector(1), complete)
    add("detector", 1, "alone", one, one)
    for k in (2, 5):
        add("detector", k, "one pass", timed(lambda k=k: detector(k), complete), one)
    if args.sequential:
        with one_after_another(detector_module):
            add("detector", 5, "one after another", timed(lambda: detector(5), complete), one)
    return {
        "table": source,
        "shape": list(full.shape),
        "missing": args.missing,
        "threads": args.threads,
        "epochs": args.epochs or "default",
        "rows": rows,
        "environment": environment("versions", "threads", "cpus", "cpu", "platform"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help=f"data folder ({DATA})")
    parser.add_argument("--table", type=Path, help=".npy or .csv table (default: synthetic)")
    parser.add_argument("--rows", type=int, default=1800, help="synthetic rows (1800)")
    parser.add_argument("--columns", type=int, default=21, help="synthetic columns (21)")
    parser.add_argument("--missing", type=float, default=0.2, help="MCAR share (0.2)")
    parser.add_argument("--epochs", type=int, help="epochs of every fit (default: its own)")
    parser.add_argument("--threads", default="auto", help="threads of every fit ('auto')")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-sequential", dest="sequential", action="store_false")
    parser.add_argument("--quick", action="store_true", help="400 rows, 5 epochs")
    parser.add_argument("--out", type=Path, default=OUT, help=f"JSON results ({OUT})")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.epochs = 400, args.epochs or 5
    write_json(args.out, run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
