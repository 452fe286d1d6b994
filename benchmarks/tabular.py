"""The default autoencoder vs PCA on scikit-learn's bundled tables, over several seeds.

    .venv/bin/python benchmarks/tabular.py --seeds 10
    .venv/bin/python benchmarks/tabular.py '{"batch_norm": true, "epochs": 100}'

Each table is standardized and split (a quarter of the rows held out) with seed ``s``, and the
autoencoder is fitted with ``random_state=s``, at code sizes 2 and 4. Prints the error ratio
(autoencoder / PCA, on the held-out rows) of every fit, then each table's mean and worst
ratio. The README's table figures are such a run; the optional JSON object overrides
:class:`aekit.Autoencoder` arguments.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.preprocessing import StandardScaler

from aekit.analysis import compare, split_rows

TABLES = {"diabetes": load_diabetes, "wine": load_wine, "breast_cancer": load_breast_cancer}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("params", nargs="?", default="{}", help="Autoencoder arguments (JSON)")
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0, 1, ... (default: 10)")
    parser.add_argument("--codes", default="2,4", help="code sizes (default: 2,4)")
    args = parser.parse_args(argv)
    params = json.loads(args.params)
    codes = [int(c) for c in args.codes.split(",")]
    torch.set_num_threads(1)  # tiny models: one thread is as fast, and kinder to shared cores
    for name, loader in TABLES.items():
        X = StandardScaler().fit_transform(loader().data)
        ratios = []
        for seed in range(args.seeds):
            train, test = split_rows(X, 0.25, random_state=seed)
            result = compare(train, test, codes, random_state=seed, device="cpu", **params)
            row = [r.ratio for r in result.rows]
            ratios.append(row)
            print(f"{name:<14} seed {seed}: " + "  ".join(f"{r:.3f}" for r in row), flush=True)
        table = np.array(ratios)
        print(
            f"{name:<14} mean {table.mean():.3f}  worst {table.max():.3f}  "
            f"(per code size: mean {', '.join(f'{m:.3f}' for m in table.mean(axis=0))})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
