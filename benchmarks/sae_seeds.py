"""Seed-to-seed spread of ``benchmarks/sae.py``: its runs at several ``--train-seed``, summarised.

Reads the ``--out`` files of ``sae.py`` runs on the same data (scale, sizes, data ``--seed``)
and budget, at different ``--train-seed``; merges them (:func:`sae.merge`: one row per
architecture, library and train seed) and writes, per architecture and library, the rows of
each seed and the mean and standard deviation (``ddof=1``) over the seeds of each figure, and
per architecture aekit's mean minus SAELens's with issue 29's verdict (aekit's mean MCC and
explained variance at least SAELens's - 0.005)::

    python benchmarks/sae_seeds.py /tmp/jr/*.json --out benchmarks/results/sae-3m-seeds.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from sae import merge

from _common import write_json

FIGURES = ("mcc", "f1", "explained_variance", "l0", "dead_pct", "shrinkage", "samples_per_s")
MARGIN = 0.005  # issue 29: aekit's MCC and explained variance >= SAELens's - 0.005


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per (architecture, library): seeds, mean and std; per architecture: aekit - SAELens."""
    groups: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for r in sorted(rows, key=lambda r: r["train_seed"]):
        if "error" not in r:
            groups.setdefault(r["architecture"], {}).setdefault(r["library"], []).append(r)
    out: dict[str, Any] = {}
    for arch, libraries in groups.items():
        out[arch] = {}
        for library, runs in libraries.items():
            settings = {json.dumps([r.get("l0_coef"), r.get("aekit_params")]) for r in runs}
            if len(settings) > 1:
                raise SystemExit(f"{arch} {library}: runs of other settings {sorted(settings)}")
            values = {f: np.array([r[f] for r in runs], dtype=float) for f in FIGURES}
            out[arch][library] = {
                "train_seeds": [r["train_seed"] for r in runs],
                "mean": {f: float(v.mean()) for f, v in values.items()},
                "std": {f: float(v.std(ddof=1)) if len(v) > 1 else None for f, v in values.items()},
            }
        if {"aekit", "sae_lens"} <= set(libraries):
            a, s = out[arch]["aekit"], out[arch]["sae_lens"]
            gap = {f: a["mean"][f] - s["mean"][f] for f in ("mcc", "explained_variance", "f1")}
            out[arch]["aekit_minus_sae_lens"] = gap
            out[arch]["target_met"] = all(gap[f] >= -MARGIN for f in ("mcc", "explained_variance"))
    return out


def nan(value: float | None) -> float:
    """``value``, or NaN for the spread of a single run."""
    return float("nan") if value is None else value


def table(summary: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """Per-seed rows, then mean +- std per (architecture, library), then the gaps."""
    cols = ("mcc", "f1", "explained_variance", "l0")
    lines = [f"{'architecture':12} {'library':8} {'seed':>6} " + " ".join(f"{c:>20}" for c in cols)]
    for r in sorted(rows, key=lambda r: (r["architecture"], r["library"], r["train_seed"])):
        figures = " ".join(f"{r[c]:>20.4f}" for c in cols)
        lines.append(f"{r['architecture']:12} {r['library']:8} {r['train_seed']:>6} {figures}")
    for arch, libraries in summary.items():
        for library in ("aekit", "sae_lens"):
            if library in libraries:
                m, s = libraries[library]["mean"], libraries[library]["std"]
                figures = " ".join(
                    f"{m[c]:>11.4f} +- {nan(s[c]):.4f}"
                    if c != "l0"
                    else f"{m[c]:>10.2f} +- {nan(s[c]):.2f}"
                    for c in cols
                )
                lines.append(f"{arch:12} {library:8} {'mean':>6} {figures}")
        if "aekit_minus_sae_lens" in libraries:
            gap = libraries["aekit_minus_sae_lens"]
            lines.append(
                f"{arch:12} aekit - sae_lens: MCC {gap['mcc']:+.4f}, EV "
                f"{gap['explained_variance']:+.4f}, F1 {gap['f1']:+.4f}; within {MARGIN}: "
                f"{libraries['target_met']}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Merge the runs named, summarise them, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="sae.py --out files")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--note", default="", help="a sentence added to the file's note")
    args = parser.parse_args(argv)
    results = [json.loads(path.read_text()) for path in args.runs]
    merged = {**results[0], "rows": [], "merged_runs": []}  # every run in merged_runs
    for new in results:
        merged = merge(new, merged)
    summary = summarise(merged["rows"])
    print(table(summary, merged["rows"]))
    merged["benchmark"] = "sae-seeds"
    merged["command"] = " ".join(
        ["python benchmarks/sae_seeds.py", *(sys.argv[1:] if argv is None else argv)]
    )
    merged["note"] = " ".join(filter(None, [merged.get("note", ""), args.note]))
    merged["summary"] = summary
    for name in ("train_seed",):  # the file's rows each say theirs
        merged.pop(name, None)
    write_json(args.out, merged)
    return merged


if __name__ == "__main__":
    main()
