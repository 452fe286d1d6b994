"""The ``fixed-costs`` section of ``benchmarks/speed.py``: what a fit spends before its first step.

A default fit (``Autoencoder(code_dim=30)``, every other option at its default) records in
``history_.setup_seconds`` the seconds it spent choosing its thread count (the probe), building
its starting model (the PCA start) and validating that start. This section fits ``--repeats``
times on the same rows (seeds 0, 1, ...; an untimed warm-up fit first), and reports each part's
median share of the whole fit's wall-clock time: issue 28's target is at most 10 % together. A
one-epoch fit of the small model (the shape of ``speed.py``'s time-to-quality runs, where fixed
costs weigh most) is measured the same way, interleaved with the default fits.

A user's first fit in a new process (each CLI command) also pays one-off imports. The
``fresh process`` part times, in new interpreters, a small fit (1,000 x 20 rows, 5 epochs)
with aekit's optimiser and with PyTorch's own fused ``torch.optim.Adam`` patched in, whose
first step imports ``torch._dynamo``; the variants alternate, repeat by repeat.

Run ``python benchmarks/speed.py --section fixed-costs`` (about 5 minutes on 2 quiet cores);
it writes ``benchmarks/results/speed_fixed_costs.json``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np

from aekit import Autoencoder

PARTS = ("threads", "start", "start_validation")
TARGET = 0.10  # issue 28: the fixed costs together at most this share of a default fit


def fits(code_dim: int, small: tuple[int, ...], batch_size: int) -> dict[str, dict[str, Any]]:
    """The fits measured: aekit's defaults, and one epoch of the small model without validation."""
    return {
        "default fit": {"code_dim": code_dim},
        "one epoch, small model": {
            "code_dim": code_dim,
            "hidden": small,
            "epochs": 1,
            "batch_size": batch_size,
            "val_fraction": 0.0,
            "patience": None,
        },
    }


def run_fixed_costs(
    X: np.ndarray, repeats: int, code_dim: int, small: tuple[int, ...], batch_size: int
) -> dict[str, Any]:
    """Median seconds of each fixed cost and of the whole fit, and their shares, per fit kind."""
    kinds = fits(code_dim, small, batch_size)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in kinds}
    for params in kinds.values():  # untimed warm-up: allocators, kernels, the probe's cache
        Autoencoder(**{**params, "epochs": 1}, random_state=0).fit(X[:2048])
    for rep in range(repeats):
        names = list(kinds)
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            ae = Autoencoder(**kinds[name], random_state=rep)
            tick = time.perf_counter()
            ae.fit(X)
            total = time.perf_counter() - tick
            parts = {part: ae.history_.setup_seconds.get(part, 0.0) for part in PARTS}
            runs[name].append({**parts, "total": total, "epochs": len(ae.history_)})
            shown = ", ".join(f"{p} {s:.2f} s" for p, s in parts.items())
            print(f"  rep {rep + 1}: {name}: {total:.2f} s ({shown})", flush=True)
    out: dict[str, Any] = {}
    for name, found in runs.items():
        median = {key: statistics.median(r[key] for r in found) for key in (*PARTS, "total")}
        shares = [sum(r[p] for p in PARTS) / r["total"] for r in found]
        out[name] = {
            "params": kinds[name],
            "runs": found,
            "median_seconds": median,
            "fixed_share": statistics.median(shares),
            "epochs": statistics.median(r["epochs"] for r in found),
        }
    return out


FRESH = """
import json, sys, time
tick = time.perf_counter()
import numpy as np, torch
import aekit.training.optim as optim
from aekit import Autoencoder
imported = time.perf_counter() - tick
if sys.argv[1] == "pytorch":
    optim.Adam, optim.AdamW = torch.optim.Adam, torch.optim.AdamW
X = np.random.default_rng(0).normal(size=(1000, 20)).astype(np.float32)
tick = time.perf_counter()
Autoencoder(code_dim=4, epochs=5, random_state=0).fit(X)
fit = time.perf_counter() - tick
print(json.dumps({"import": imported, "fit": fit, "dynamo": "torch._dynamo" in sys.modules}))
"""
FRESH_VARIANTS = {"aekit Adam": "aekit", "torch.optim.Adam": "pytorch"}


def run_fresh_process(repeats: int) -> dict[str, Any]:
    """Median import and first-fit seconds in new interpreters, per optimiser variant."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in FRESH_VARIANTS}
    for rep in range(repeats):
        names = list(FRESH_VARIANTS)
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            out = subprocess.run(
                [sys.executable, "-c", FRESH, FRESH_VARIANTS[name]],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"  rep {rep + 1}: fresh process, {name}: {runs[name][-1]}", flush=True)
    return {
        name: {
            "runs": found,
            "median_import_s": statistics.median(r["import"] for r in found),
            "median_first_fit_s": statistics.median(r["fit"] for r in found),
            "imports_dynamo": all(r["dynamo"] for r in found),
        }
        for name, found in runs.items()
    }


def print_fixed_costs(res: dict[str, Any]) -> None:
    """The section's table: median seconds of each part and the fixed costs' share."""
    print(f"\nfixed costs ({res['rows']} rows, medians of {res['repeats']} interleaved repeats)")
    print(f"  {'fit':<24}{'epochs':>7}{'total s':>9}" + "".join(f"{p:>18}" for p in PARTS)
          + f"{'fixed share':>13}")  # fmt: skip
    for name, info in res["fits"].items():
        m = info["median_seconds"]
        print(f"  {name:<24}{info['epochs']:7.0f}{m['total']:9.2f}"
              + "".join(f"{m[p]:18.3f}" for p in PARTS)
              + f"{100 * info['fixed_share']:12.1f}%")  # fmt: skip
    fresh = res.get("fresh_process", {})
    for name, info in fresh.items():
        print(
            f"  fresh process, {name:<17} import {info['median_import_s']:5.2f} s, first fit "
            f"{info['median_first_fit_s']:5.2f} s, imports torch._dynamo: {info['imports_dynamo']}"
        )
    share = res["fits"]["default fit"]["fixed_share"]
    verdict = "met" if share <= TARGET else "MISSED"
    print(f"  target: fixed costs ≤ {TARGET:.0%} of a default fit: {100 * share:.1f}% {verdict}")
