"""Quality benchmark: autoencoder variants vs PCA on MNIST, side by side in one run.

Split: the first 8,000 images of the MNIST test set train, the last 2,000 test; pixels in
[0, 1]. Error: squared error summed over the 784 pixels, averaged over test images (Hinton &
Salakhutdinov 2006's unit; PCA-30 scores 14.33 here). Prints a table and writes JSON.

    .venv/bin/python benchmarks/quality.py                  # full run (about 30 min, 2 cores)
    .venv/bin/python benchmarks/quality.py --quick          # smoke run (a minute)

Sections: 1. undercomplete AE (default settings and the documented best recipe) vs PCA;
2. linear AE vs PCA (principal angles, eigengap); 3. denoising; 4. sparse codes (top-k with and
without the AuxK dead-unit loss, L1; every top-k dictionary is centred and its code layers
are spared weight decay); 5. convolutional AE. Each fit's wall time is kept.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.decomposition import PCA

from aekit import Autoencoder
from aekit.analysis import (
    compare,
    decoder_basis,
    normalized_mse,
    pca_reconstruction,
    principal_angles,
    row_errors,
    sparsity_stats,
)
from aekit.data.formats import read_array

from _common import environment, write_json

SEED = 0
IMAGES = "t10k-images-idx3-ubyte.gz"
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"

# The documented best recipe for code size 30 (README "Results").
BEST = {"hidden": (1024, 256), "epochs": 150}
# Linear AE: no hidden layer, identity activation; a long cosine schedule lets the last,
# weakly separated directions (eigengap ~1.07) settle, not just the error.
LINEAR = {
    "init": "random",  # the demonstration: a random start finds PCA's subspace by training
    "hidden": (),
    "activation": "identity",
    "lr": 3e-3,
    "lr_schedule": "cosine",
    "epochs": 200,
    "batch_size": 256,
    "patience": None,
    "val_fraction": 0.0,
}
# Sparse codes: 1,024 units, linear decoder (a sparse dictionary), identity output.
SPARSE = {"code_dim": 1024, "hidden": (), "output": "identity", "loss": "mse"}
TOPK = {**SPARSE, "sparsity": "topk", "sparsity_k": 32}
L1 = {**SPARSE, "sparsity": "l1", "sparsity_weight": 3e-4}
AUXK_WEIGHT = 1 / 32  # Gao et al. 2024's α
CONV = {"image_shape": (1, 28, 28)}
QUICK = {"epochs": 3}
SECTIONS = ("undercomplete", "linear", "denoising", "sparse", "convolutional")


def load_mnist(folder: Path, quick: bool) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) pixel rows in [0, 1]: first 8,000 / last 2,000 test-set images."""
    images = np.asarray(read_array(folder / IMAGES), dtype=np.float32).reshape(10000, -1) / 255
    train, test = images[:8000], images[8000:]
    return (train[:2000], test[:500]) if quick else (train, test)


def fit(train: np.ndarray, quick: bool, **params: Any) -> tuple[Autoencoder, float]:
    """Fit an autoencoder with a fixed seed; return it and its wall time in seconds."""
    params = {"random_state": SEED, **params, **(QUICK if quick else {})}
    tick = time.perf_counter()
    model = Autoencoder(**params).fit(train)
    return model, time.perf_counter() - tick


def mean_error(clean: np.ndarray, recon: np.ndarray) -> float:
    """Squared error summed over pixels, averaged over rows."""
    return float(row_errors(clean, recon).mean())


def undercomplete(
    train: np.ndarray, test: np.ndarray, quick: bool, init: str = "pca"
) -> dict[str, Any]:
    """Section 1: default AE at code sizes 2, 8, 30 and the best recipe at 30, vs PCA."""
    extra = {**(QUICK if quick else {}), "init": init}  # init="random": aekit 0.1's start
    default = compare(train, test, (2, 8, 30), keep_models=True, random_state=SEED, **extra)
    best = compare(train, test, (30,), **{"random_state": SEED, **BEST, **extra})
    rows = [{"model": "default", **row} for row in default.to_dict()["rows"]]
    rows += [{"model": "best recipe", **row} for row in best.to_dict()["rows"]]
    return {
        "rows": rows,
        "best_recipe": _jsonable(BEST),
        "plain_ae_k30": default.models[2],
    }


def linear(train: np.ndarray, test: np.ndarray, quick: bool) -> list[dict[str, Any]]:
    """Section 2: linear AE vs PCA at k = 8 and 30: angles, error ratio, eigengap."""
    rows = []
    for k in (8, 30):
        pca = PCA(n_components=k + 1, random_state=SEED).fit(train)
        pca_error = mean_error(test, pca_reconstruction(train, test, k))
        model, seconds = fit(train, quick, code_dim=k, **LINEAR)
        angles = principal_angles(decoder_basis(model), pca.components_[:k].T)
        error = mean_error(test, model.reconstruct(test))
        variances = pca.explained_variance_
        rows.append(
            {
                "code_dim": k,
                "ae_error": error,
                "pca_error": pca_error,
                "ratio": error / pca_error,
                "mean_angle_deg": float(angles.mean()),
                "max_angle_deg": float(angles.max()),
                "eigengap": float(variances[k - 1] / variances[k]),
                "epochs": model.n_iter_,
                "fit_seconds": seconds,
            }
        )
    return rows


def corrupted(test: np.ndarray) -> dict[str, np.ndarray]:
    """The two corrupted test sets: Gaussian σ = 0.5 clipped to [0, 1], and 25% masking."""
    rng = np.random.default_rng(SEED)
    gaussian = np.clip(test + 0.5 * rng.standard_normal(test.shape), 0, 1).astype(np.float32)
    masked = np.where(rng.random(test.shape) < 0.25, 0, test).astype(np.float32)
    return {"gaussian": gaussian, "masking": masked}


def denoising(
    train: np.ndarray, test: np.ndarray, plain: Autoencoder, quick: bool
) -> list[dict[str, Any]]:
    """Section 3: error against the clean images, for the DAE, the plain AE and PCA (k=30)."""
    pca = PCA(n_components=30, random_state=SEED).fit(train)
    rows = []
    for kind, noisy in corrupted(test).items():
        level = 0.5 if kind == "gaussian" else 0.25
        dae, seconds = fit(train, quick, code_dim=30, noise=kind, noise_level=level)
        pca_error = mean_error(test, pca.inverse_transform(pca.transform(noisy)))
        dae_error = mean_error(test, dae.reconstruct(noisy))
        rows.append(
            {
                "noise": kind,
                "level": level,
                "dae_error": dae_error,
                "plain_ae_error": mean_error(test, plain.reconstruct(noisy)),
                "pca_error": pca_error,
                "noisy_input_error": mean_error(test, noisy),
                "dae_over_pca": dae_error / pca_error,
                "fit_seconds": seconds,
            }
        )
    return rows


def sparse(train: np.ndarray, test: np.ndarray, quick: bool) -> list[dict[str, Any]]:
    """Section 4: top-k (with and without AuxK) and L1 codes: normalized MSE, L0, dead units."""
    mean = train.mean(axis=0)
    pca_nmse = normalized_mse(test, pca_reconstruction(train, test, 32), mean)
    variants = {
        "topk, no AuxK": {**TOPK, "sparsity_weight": 0.0},
        "topk + AuxK": {**TOPK, "sparsity_weight": AUXK_WEIGHT},
        "l1": L1,
    }
    rows = []
    for name, params in variants.items():
        model, seconds = fit(train, quick, **params)
        stats = sparsity_stats(model.transform(test))
        rows.append(
            {
                "model": name,
                "nmse": normalized_mse(test, model.reconstruct(test), mean),
                "pca32_nmse": pca_nmse,
                **stats,
                "epochs": model.n_iter_,
                "fit_seconds": seconds,
            }
        )
    return rows


def convolutional(train: np.ndarray, test: np.ndarray, quick: bool) -> dict[str, Any]:
    """Section 5: the convolutional encoder/decoder at code size 30."""
    model, seconds = fit(train, quick, code_dim=30, **CONV)
    error = mean_error(test, model.reconstruct(test))
    pca_error = mean_error(test, pca_reconstruction(train, test, 30))
    return {
        "code_dim": 30,
        "hidden": list(model.model_config_.hidden),
        "ae_error": error,
        "pca_error": pca_error,
        "ratio": error / pca_error,
        "epochs": model.n_iter_,
        "fit_seconds": seconds,
    }


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}


# Printed columns per section: (header, JSON key, format spec).
COLUMNS = {
    "undercomplete": [
        ("model", "model", "<12"), ("code", "code_dim", ">4"), ("AE", "ae_error", ">8.3f"),
        ("PCA", "pca_error", ">8.3f"), ("AE/PCA", "ratio", ">7.3f"), ("ep", "epochs", ">4"),
        ("s", "fit_seconds", ">6.0f"),
    ],
    "linear": [
        ("code", "code_dim", ">4"), ("AE/PCA", "ratio", ">7.4f"),
        ("mean°", "mean_angle_deg", ">6.2f"), ("max°", "max_angle_deg", ">6.2f"),
        ("gap", "eigengap", ">5.3f"), ("ep", "epochs", ">4"), ("s", "fit_seconds", ">6.0f"),
    ],
    "denoising": [
        ("noise", "noise", "<9"), ("DAE", "dae_error", ">7.2f"),
        ("plain", "plain_ae_error", ">7.2f"), ("PCA", "pca_error", ">7.2f"),
        ("noisy", "noisy_input_error", ">7.2f"), ("DAE/PCA", "dae_over_pca", ">7.3f"),
        ("s", "fit_seconds", ">6.0f"),
    ],
    "sparse": [
        ("model", "model", "<17"), ("nMSE", "nmse", ">6.3f"), ("PCA-32", "pca32_nmse", ">6.3f"),
        ("L0", "l0", ">6.1f"), ("dead", "dead_fraction", ">6.1%"), ("ep", "epochs", ">4"),
        ("s", "fit_seconds", ">6.0f"),
    ],
    "convolutional": [
        ("code", "code_dim", ">4"), ("AE", "ae_error", ">8.3f"), ("PCA", "pca_error", ">8.3f"),
        ("AE/PCA", "ratio", ">7.3f"), ("ep", "epochs", ">4"), ("s", "fit_seconds", ">6.0f"),
    ],
}  # fmt: skip
TITLES = {
    "undercomplete": "1. undercomplete: mean squared error per test image (AE/PCA < 1: AE wins)",
    "linear": "2. linear AE vs PCA: error ratio, principal angles, eigengap λk/λk+1",
    "denoising": "3. denoising, code 30: error against the clean images",
    "sparse": "4. sparse codes, 1,024 units: normalized MSE (PCA-32 for reference), L0, dead",
    "convolutional": "5. convolutional encoder/decoder, code 30",
}


def table(results: dict[str, Any]) -> str:
    """The printed summary: one block per section that ran."""
    out: list[str] = []
    for name, columns in COLUMNS.items():
        if name not in results:
            continue
        section = results[name]
        rows = section["rows"] if isinstance(section, dict) and "rows" in section else section
        rows = rows if isinstance(rows, list) else [rows]
        out.append(TITLES[name])
        out.append(_line([(h, f) for h, _, f in columns], header=True))
        out += [_line([(format(row[key], f), f) for _, key, f in columns]) for row in rows]
    return "\n".join(out)


def _line(cells: list[tuple[str, str]], header: bool = False) -> str:
    """One table line; each cell padded to its column's format width, aligned like it."""
    parts = []
    for text, spec in cells:
        width = int("".join(ch for ch in spec.split(".")[0] if ch.isdigit()) or 0)
        align = "<" if spec.startswith("<") else ">"
        parts.append(f"{text:{align}{max(width, len(text) if header else 0)}}")
    return "   " + " ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="MNIST folder")
    parser.add_argument("--out", type=Path, default=Path("quality.json"), help="JSON results")
    parser.add_argument("--quick", action="store_true", help="smoke run: few rows, 3 epochs")
    parser.add_argument(
        "--init", default="pca", choices=("pca", "random"), help="section 1's start (pca)"
    )
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of {','.join(SECTIONS)} (default: all)",
    )
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        print(f"quality.py: error: unknown section(s) {', '.join(unknown)}", file=sys.stderr)
        return 2
    if not (args.data / IMAGES).is_file():
        print(f"quality.py: error: {args.data / IMAGES} not found (see --data)", file=sys.stderr)
        return 2
    tick = time.perf_counter()
    train, test = load_mnist(args.data, args.quick)
    results: dict[str, Any] = {}
    plain = None
    if "undercomplete" in chosen:
        results["undercomplete"] = undercomplete(train, test, args.quick, args.init)
        plain = results["undercomplete"].pop("plain_ae_k30")
    if "linear" in chosen:
        results["linear"] = linear(train, test, args.quick)
    if "denoising" in chosen:
        if plain is None:  # the plain AE of section 1, fitted here when section 1 is skipped
            plain, _ = fit(train, args.quick, code_dim=30)
        results["denoising"] = denoising(train, test, plain, args.quick)
    if "sparse" in chosen:
        results["sparse"] = sparse(train, test, args.quick)
    if "convolutional" in chosen:
        results["convolutional"] = convolutional(train, test, args.quick)
    results["meta"] = {
        "quick": args.quick,
        "n_train": len(train),
        "n_test": len(test),
        "seed": SEED,
        **environment("torch", "threads", "machine"),
        "total_seconds": time.perf_counter() - tick,
    }
    print(table(results))
    write_json(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
