"""One autoencoder fit on the quality benchmark's MNIST split: the runs behind the defaults.

    .venv/bin/python benchmarks/tune.py '{"epochs": 40, "weight_decay": 0}'

Takes :class:`aekit.Autoencoder` arguments as JSON (``code_dim`` defaults to 30, the seed to
0), prints one JSON line: the test error, PCA's at the same code size, their ratio, epochs and
wall time. The README's "how the defaults were chosen" figures are such runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from quality import DEFAULT_DATA, fit, load_mnist, mean_error

from aekit.analysis import pca_reconstruction


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("params", help="Autoencoder arguments as a JSON object")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="MNIST folder")
    args = parser.parse_args(argv)
    params = {"code_dim": 30, **json.loads(args.params)}
    train, test = load_mnist(args.data, quick=False)
    model, seconds = fit(train, False, **params)
    error = mean_error(test, model.reconstruct(test))
    pca_error = mean_error(test, pca_reconstruction(train, test, params["code_dim"]))
    record = {
        "params": params,
        "error": error,
        "pca_error": pca_error,
        "ratio": error / pca_error,
        "epochs": model.n_iter_,
        "best_epoch": model.history_.best_epoch,
        "fit_seconds": seconds,
    }
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
