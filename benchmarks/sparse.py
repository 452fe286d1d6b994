"""Sparse input: the same answer as dense rows, quality against TruncatedSVD and PCA, scale.

Sections (``--section``, default all but ``speed``):

- ``same``: MNIST (8,000 train / 2,000 test, pixels in [0, 1], 81 % zeros) as a CSR matrix
  on the sparse path (``sparse_path="sparse"``: at 19 % non-zero "auto" densifies each batch)
  and as a dense array, same seed: with the defaults (target: test errors within 2 %) and
  with an identity output, MSE and dense Adam on the first layer (``sparse_optimizer=
  "dense"``; target: within 1e-4 relative). Which path each run took (``input_path_``).
- ``quality``: held-out error at k = 8 and 30 of the autoencoder (defaults, sparse input),
  ``TruncatedSVD`` and ``PCA(svd_solver="arpack")`` (both on the sparse rows), on MNIST CSR
  and on synthetic negative-binomial low-rank counts (20,000 × 5,000, ~2 % non-zero; 80/20
  split). All errors per-row squared error in the autoencoder's scaled space (for sparse
  counts ``unit_variance``: each feature divided by its standard deviation; the SVD and PCA
  are fitted on those same scaled rows, which stay sparse).
- ``memory``: a synthetic CSR (default 1,000,000 × 100,000, 50 distinct non-zeros a row,
  written by a separate process) fitted for ``--max-batches`` steps in a fresh process,
  then its validation rows measured as an epoch's end measures them: peak resident memory
  above the baseline (after the imports and a tiny warm-up fit: lazy imports and one-time
  allocations; the figure above the bare post-import baseline is recorded too), after the
  steps and after the validation, against 2 × the CSR's bytes + model + optimiser state
  (target: the larger peak at most that).
- ``speed`` (timing: run on a quiet machine): samples/s of the sparse path against
  densifying each batch, on ``--speed-rows`` (default 50,000) rows of ``--cols`` (100,000)
  features; ``TruncatedSVD(30)``'s fit time and held-out error, and the autoencoder's time
  to reach it (its fit capped at ``--speed-seconds``); one step's time and its parts (first
  layer, output layer, optimiser) at widths 10k, 30k and 100k with the same non-zeros per row.

``--quick`` shrinks everything to a smoke test (seconds to a minute). Prints a table per
section and writes ``benchmarks/results/sparse.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from _common import write_json

SEED = 0
IMAGES = "t10k-images-idx3-ubyte.gz"
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
RESULTS = Path(__file__).resolve().parent / "results" / "sparse.json"
SECTIONS = ("same", "quality", "memory", "speed")
QUICK = {"epochs": 3}


# -- data ---------------------------------------------------------------------------------
def load_mnist(folder: Path, quick: bool) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) pixel rows in [0, 1]: first 8,000 / last 2,000 test-set images."""
    from aekit.data.formats import read_array

    images = np.asarray(read_array(folder / IMAGES), dtype=np.float32).reshape(10000, -1) / 255
    train, test = images[:8000], images[8000:]
    return (train[:2000], test[:500]) if quick else (train, test)


def nb_counts(n_rows: int, n_cols: int, rank: int = 10, seed: int = SEED) -> sp.csr_array:
    """Negative-binomial counts (dispersion 2) around a rank-``rank`` mean, ~2 % non-zero."""
    rng = np.random.default_rng(seed)
    loadings = rng.gamma(0.5, 1.0, (rank, n_cols))
    parts = []
    for start in range(0, n_rows, 2000):  # a chunk of means at a time, never the whole
        factors = rng.gamma(0.5, 1.0, (min(2000, n_rows - start), rank))
        mean = factors @ loadings * 0.0083
        counts = rng.negative_binomial(2.0, 2.0 / (2.0 + mean))
        parts.append(sp.csr_array(counts.astype(np.float32)))
    return sp.csr_array(sp.vstack(parts))


def topic_csr(n_rows: int, n_cols: int, per_row: int, seed: int = SEED) -> sp.csr_array:
    """Rows of ``per_row`` distinct features from one of 30 topics (Zipf-weighted), counts 1-5.

    Each row draws its features without replacement, with probabilities following the
    topic's Zipf weights (the Gumbel top-k trick: the ``per_row`` largest of log-weight plus
    Gumbel noise), so every row has exactly ``per_row`` non-zeros.
    """
    rng = np.random.default_rng(seed)
    size = min(per_row * 20, n_cols)  # features a topic draws from
    per_row = min(per_row, size)
    topics = [rng.permutation(n_cols)[:size] for _ in range(30)]
    log_weights = -np.log(np.arange(1, size + 1))
    indptr = np.arange(0, (n_rows + 1) * per_row, per_row, dtype=np.int64)
    indices = np.empty((n_rows, per_row), dtype=np.int32)
    which = rng.integers(0, 30, n_rows)
    for t in range(30):  # rows of one topic at a time, in chunks (keys are rows × size)
        rows = np.flatnonzero(which == t)
        for start in range(0, len(rows), 8192):
            chunk = rows[start : start + 8192]
            keys = log_weights + rng.gumbel(size=(len(chunk), size))
            picks = np.argpartition(-keys, per_row - 1, axis=1)[:, :per_row]
            indices[chunk] = np.sort(topics[t][picks], axis=1)
    data = rng.integers(1, 6, n_rows * per_row).astype(np.float32)
    return sp.csr_array((data, indices.ravel(), indptr), shape=(n_rows, n_cols))


def generate(path: str, rows: int, cols: int, per_row: int) -> None:
    """Write the synthetic CSR (uncompressed .npz): the ``--generate`` child process."""
    sp.save_npz(path, topic_csr(rows, cols, per_row), compressed=False)


def csr_bytes(X: Any) -> int:
    """Bytes of a CSR matrix's three arrays."""
    return int(X.data.nbytes + X.indices.nbytes + X.indptr.nbytes)


# -- measurements -------------------------------------------------------------------------
def scaled_error(ae: Any, rows: Any) -> float:
    """The autoencoder's mean per-row squared error in its scaled space."""
    return float(np.mean(ae.reconstruction_error(rows)))


def linear_errors(ae: Any, train: Any, test: Any, k: int) -> dict[str, float]:
    """Held-out error of TruncatedSVD and PCA (arpack) with ``k`` components, scaled space."""
    from sklearn.decomposition import PCA, TruncatedSVD

    scale = ae.module_.scale.numpy().astype(np.float64)
    offset = ae.module_.offset.numpy().astype(np.float64)
    assert not offset.any(), "sparse scalings have no offset"

    def scaled(X: Any) -> sp.csr_array:
        return sp.csr_array(sp.csr_array(X, dtype=np.float64) @ sp.diags_array(1 / scale))

    strain, stest = scaled(train), scaled(test)
    out = {}
    for name, model in (
        ("truncated_svd", TruncatedSVD(k, algorithm="arpack", random_state=SEED)),
        ("pca_arpack", PCA(k, svd_solver="arpack", random_state=SEED)),
    ):
        tick = time.perf_counter()
        model.fit(strain)
        seconds = time.perf_counter() - tick
        dense = stest.toarray()
        recon = model.inverse_transform(model.transform(stest))
        out[name] = float(((dense - recon) ** 2).sum(axis=1).mean())
        out[f"{name}_seconds"] = seconds
    return out


def section_same(args: argparse.Namespace) -> list[dict[str, Any]]:
    """MNIST CSR vs dense: defaults (within 2 %), identity + MSE + dense Adam (1e-4)."""
    from aekit import Autoencoder

    train, test = load_mnist(args.data, args.quick)
    sparse_train = sp.csr_array(train)
    print(f"MNIST: {sparse_train.nnz / train.size:.1%} non-zero")
    rows = []
    settings = {
        "defaults": {},
        "identity+mse+dense adam": {
            "output": "identity",
            "loss": "mse",
            "sparse_optimizer": "dense",
        },
    }
    for name, extra in settings.items():
        params = {"code_dim": 30, "random_state": SEED, **extra, **(QUICK if args.quick else {})}
        errors, paths = {}, {}
        for kind, X in (("dense", train), ("csr", sparse_train)):
            tick = time.perf_counter()
            path = {"sparse_path": "sparse"} if kind == "csr" else {}  # auto would densify
            ae = Autoencoder(**params, **path).fit(X)
            errors[kind] = scaled_error(ae, test if kind == "dense" else sp.csr_array(test))
            paths[kind] = ae.input_path_
            print(f"  {name}, {kind}: {time.perf_counter() - tick:.0f} s, path {ae.input_path_}")
        relative = abs(errors["csr"] - errors["dense"]) / errors["dense"]
        target = 0.02 if name == "defaults" else 1e-4
        rows.append(
            {
                "setting": name,
                "dense_error": errors["dense"],
                "csr_error": errors["csr"],
                "relative_difference": relative,
                "target": target,
                "met": relative <= target,
                "paths": paths,
            }
        )
    table(rows, ("setting", "dense_error", "csr_error", "relative_difference", "target", "met"))
    return rows


def section_quality(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Autoencoder vs TruncatedSVD and PCA at k = 8, 30 on MNIST CSR and NB counts."""
    from aekit import Autoencoder

    train, test = load_mnist(args.data, args.quick)
    shape = (2000, 1000) if args.quick else (20000, 5000)
    counts = nb_counts(*shape)
    cut = int(0.8 * shape[0])
    datasets = {
        "mnist_csr": (sp.csr_array(train), sp.csr_array(test)),
        "nb_counts": (counts[:cut], counts[cut:]),
    }
    print(f"NB counts {shape[0]} × {shape[1]}: {counts.nnz / np.prod(shape):.2%} non-zero")
    rows = []
    for name, (tr, te) in datasets.items():
        for k in (8, 30):
            params = {"code_dim": k, "random_state": SEED, **(QUICK if args.quick else {})}
            tick = time.perf_counter()
            ae = Autoencoder(**params).fit(tr)
            seconds = time.perf_counter() - tick
            row = {"data": name, "k": k, "autoencoder": scaled_error(ae, te), "ae_seconds": seconds}
            row |= linear_errors(ae, tr, te, k)
            row["ae_over_svd"] = row["autoencoder"] / row["truncated_svd"]
            row["ae_over_pca"] = row["autoencoder"] / row["pca_arpack"]
            row |= {"path": ae.input_path_, "scaling": ae.scaling_, "epochs": ae.n_iter_}
            rows.append(row)
            print(f"  {name} k={k}: {seconds:.0f} s")
    table(rows, ("data", "k", "autoencoder", "truncated_svd", "pca_arpack", "ae_over_svd"))
    return rows


def section_memory(args: argparse.Namespace) -> dict[str, Any]:
    """Peak RSS of a sparse fit, in a fresh process, against the CSR's bytes + model state."""
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "rows.npz")
        rows, cols = (20000, 10000) if args.quick else (args.rows, args.cols)
        tick = time.perf_counter()
        generate = ["--generate", path, "--rows", str(rows), "--cols", str(cols)]
        subprocess.run(
            [sys.executable, __file__, *generate, "--per-row", str(args.per_row)], check=True
        )
        print(f"  generated {rows} × {cols} in {time.perf_counter() - tick:.0f} s")
        command = [sys.executable, __file__, "--child-memory", path]
        command += [
            "--max-batches",
            str(args.max_batches),
            "--val-fraction",
            str(args.val_fraction),
        ]
        found = json.loads(subprocess.run(command, check=True, capture_output=True).stdout)
    found["budget_bytes"] = 2 * found["csr_bytes"] + found["model_bytes"] + found["state_bytes"]
    peak = max(
        found["peak_above_baseline_bytes"], found["peak_with_validation_above_baseline_bytes"]
    )
    found["met"] = peak <= found["budget_bytes"]
    found["command"] = " ".join(sys.argv[1:])
    table([{k: v for k, v in found.items() if not isinstance(v, dict)}], tuple(found))
    return found


def _rss() -> int:
    """The resident bytes of this process now."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize()


def child_memory(path: str, max_batches: int, val_fraction: float) -> None:
    """Fit for ``max_batches`` steps; print peak RSS above the baseline as JSON."""
    import torch

    from aekit import Autoencoder, Callback

    torch.set_num_threads(1)
    imported = _rss()
    # a tiny fit first: what fits import on first use (torch._dynamo, sympy, sklearn) and
    # allocate once goes into the baseline, which is then what the data and model cost
    tiny = sp.random(200, 300, density=0.02, format="csr", dtype=np.float32, random_state=SEED)
    Autoencoder(code_dim=2, random_state=SEED, device="cpu", threads=1, epochs=1).fit(tiny)
    baseline = _rss()

    class Stop(Callback):
        def on_batch_end(self, trainer: Any, batch: int, n_batches: int, **kwargs: Any) -> None:
            if trainer.step >= max_batches:
                self.trainer = trainer
                raise KeyboardInterrupt

    X = sp.load_npz(path)
    X = sp.csr_array(X)
    stop = Stop()
    ae = Autoencoder(
        code_dim=30, random_state=SEED, device="cpu", threads=1, val_fraction=val_fraction
    )
    tick = time.perf_counter()
    with contextlib.suppress(KeyboardInterrupt):  # Stop ends the fit after max_batches
        ae.fit(X, callbacks=(stop,))
    trainer = stop.trainer
    params = sum(p.numel() for p in trainer.module.parameters())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    # the epoch's end: the validation rows go through the model in dense chunks (early
    # stopping's copy of the weights is spilled to a temporary file, not held in memory)
    with torch.no_grad():
        trainer.objective.validation(trainer.source, trainer.val_idx)
    validated = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        json.dumps(
            {
                "shape": list(X.shape),
                "nnz": int(X.nnz),
                "csr_bytes": csr_bytes(X),
                "model_bytes": params * 4,
                "state_bytes": 2 * params * 4,  # Adam's two moments
                "grad_bytes": params * 4,  # dense gradients (all but the first layer's)
                "peak_above_baseline_bytes": peak - baseline,
                "peak_above_import_bytes": peak - imported,
                "peak_with_validation_above_baseline_bytes": validated - baseline,
                "validation_rows": len(trainer.val_idx),
                "input_path": trainer.input_path,
                "steps": trainer.step,
                "seconds": time.perf_counter() - tick,
            }
        )
    )


def module_error(module: Any, X: Any) -> float:
    """Mean per-row squared error (scaled space) of a network on sparse rows, in chunks."""
    import torch

    from aekit.data.sparse import SparseBatch, chunk_rows_for
    from aekit.model.sparse_net import forward_rows

    total, step = 0.0, chunk_rows_for(X.shape[1], 4096)
    module.eval()
    with torch.no_grad():
        for start in range(0, X.shape[0], step):
            out, clean = forward_rows(module, SparseBatch.from_scipy(X[start : start + step]))
            total += float((out.recon.double() - clean.double()).square().sum())
    return total / X.shape[0]


# -- speed (timing; the lead runs these on a quiet machine) --------------------------------
def section_speed(args: argparse.Namespace) -> dict[str, Any]:
    """Samples/s sparse vs densified, TruncatedSVD's time to its error, step parts by width."""
    widths = (2000, 5000) if args.quick else (10_000, 30_000, 100_000)
    parts = [step_parts(width, args.per_row, args.quick, args.step_repeats) for width in widths]
    table(parts, tuple(parts[0]))
    command = " ".join(sys.argv[1:])
    return {"step_parts": parts, "throughput": throughput(args), "command": command}


def step_parts(width: int, per_row: int, quick: bool, repeats: int = 20) -> dict[str, Any]:
    """Median seconds of one step and of its parts on a ``width``-wide synthetic batch."""
    import torch

    from aekit.config import ModelConfig, TrainConfig
    from aekit.data.sparse import CsrRows
    from aekit.model import Hourglass
    from aekit.model.sparse_net import (
        SparseLinear,
        exact_squared_error,
        gram_is_cheaper,
        lazy_grads,
        scaled_batch,
        sparse_encode_pre,
    )
    from aekit.training.optim import make_optimizer

    X = topic_csr(640, width, per_row)
    module = Hourglass(ModelConfig(input_dim=width, code_dim=30, hidden=(512, 256)))
    module.train()
    optimizer = make_optimizer(module, TrainConfig(), lazy=True)
    batch = scaled_batch(module, CsrRows(X).take(torch.arange(64)))
    first = module.encoder[0]
    repeats = 3 if quick else repeats

    def timed(fn: Any) -> float:
        fn()
        times = []
        for _ in range(repeats):
            tick = time.perf_counter()
            fn()
            times.append(time.perf_counter() - tick)
        return float(np.median(times))

    def first_layer() -> None:
        out = SparseLinear.apply(
            first.weight, batch.rows(), batch.cols, batch.values, 64, lazy_grads(first.weight)
        )
        out.sum().backward()
        lazy_grads(first.weight).clear()

    code = torch.randn(64, 30)

    def output_layer() -> None:
        gram = gram_is_cheaper(module, 64)
        exact_squared_error(module, code, batch, gram=gram).backward()

    def forward_backward(keep: bool = False) -> None:
        optimizer.zero_grad(set_to_none=True)
        pre = sparse_encode_pre(module, batch, lazy=True)
        exact_squared_error(module, pre, batch, gram=gram_is_cheaper(module, 64)).backward()
        if not keep:
            lazy_grads(first.weight).clear()

    def whole() -> None:
        forward_backward(keep=True)
        optimizer.step()

    t_step = timed(whole)
    t_first = timed(first_layer)
    t_out = timed(output_layer)
    t_opt = t_step - timed(forward_backward)  # the lazy column step and the dense rest
    return {
        "width": width,
        "step_s": t_step,
        "first_layer_s": t_first,
        "output_layer_s": t_out,
        "optimizer_s": t_opt,
        "output_share": t_out / t_step,
    }


def throughput(args: argparse.Namespace) -> dict[str, Any]:
    """Samples/s sparse vs densify on a wide CSR; TruncatedSVD(30) fit time and time-to-error."""
    from sklearn.decomposition import TruncatedSVD

    from aekit import Autoencoder, Callback

    rows, cols = (5000, 5000) if args.quick else (args.speed_rows, args.cols)
    X = topic_csr(rows, cols, args.per_row)
    test = X[-2000:]
    out: dict[str, Any] = {"shape": [rows, cols], "steps": args.max_batches - 1}
    for path in ("sparse", "densify"):

        class Clock(Callback):
            start, seconds = 0.0, 0.0

            def on_batch_end(self, trainer: Any, batch: int, n_batches: int, **kw: Any) -> None:
                self.start = self.start or time.perf_counter()
                if trainer.step >= args.max_batches:
                    self.seconds = time.perf_counter() - self.start
                    raise KeyboardInterrupt

        clock = Clock()
        ae = Autoencoder(code_dim=30, sparse_path=path, random_state=SEED, init="random")
        with contextlib.suppress(KeyboardInterrupt):  # the clock ends it
            ae.fit(X[: rows // 2], callbacks=(clock,))
        out[f"{path}_samples_per_s"] = (args.max_batches - 1) * 64 / max(clock.seconds, 1e-9)
    out["speedup"] = out["sparse_samples_per_s"] / out["densify_samples_per_s"]
    tick = time.perf_counter()
    svd = TruncatedSVD(30, random_state=SEED).fit(X[:-2000])
    out["svd_seconds"] = time.perf_counter() - tick
    dense = test.toarray()
    out["svd_error"] = float(
        ((dense - svd.inverse_transform(svd.transform(test))) ** 2).sum(1).mean()
    )
    curve: list[tuple[float, float]] = []

    class Watch(Callback):
        def on_epoch_end(self, trainer: Any, record: dict[str, Any], **kw: Any) -> None:
            curve.append((trainer.elapsed(), module_error(trainer.module, test)))
            trainer.module.train()

    ae = Autoencoder(code_dim=30, scaling="none", random_state=SEED, epochs=3 if args.quick else 20,
                     max_time=args.speed_seconds)  # fmt: skip
    ae.fit(X[:-2000], callbacks=(Watch(),))
    out["ae_curve"] = curve
    reached = [t for t, e in curve if e <= out["svd_error"]]
    out["ae_seconds_to_svd_error"] = reached[0] if reached else None
    print(json.dumps({k: v for k, v in out.items() if k != "ae_curve"}, indent=1))
    return out


# -- output -------------------------------------------------------------------------------
def table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    """Print rows as an aligned table."""

    def show(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    cells = [[show(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="MNIST folder")
    parser.add_argument("--quick", action="store_true", help="a smoke test, seconds")
    parser.add_argument("--section", choices=SECTIONS, action="append")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cols", type=int, default=100_000)
    parser.add_argument("--per-row", type=int, default=50)
    parser.add_argument("--max-batches", type=int, default=200)
    parser.add_argument(
        "--speed-rows", type=int, default=50_000, help="speed: rows of the --cols-wide CSR"
    )
    parser.add_argument(
        "--speed-seconds", type=float, default=240.0, help="speed: the AE's time-to-error budget"
    )
    parser.add_argument("--step-repeats", type=int, default=20, help="speed: timed steps")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="memory: held out")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--generate", help=argparse.SUPPRESS)
    parser.add_argument("--child-memory", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        return generate(args.generate, args.rows, args.cols, args.per_row)
    if args.child_memory:
        return child_memory(args.child_memory, args.max_batches, args.val_fraction)
    sections = args.section or [s for s in SECTIONS if s != "speed"]
    functions = {
        "same": section_same,
        "quality": section_quality,
        "memory": section_memory,
        "speed": section_speed,
    }
    results: dict[str, Any] = {"quick": args.quick}
    if args.out.is_file():  # sections run separately add up in one file
        results = {**json.loads(args.out.read_text()), "quick": args.quick}
    for name in sections:
        print(f"== {name}")
        results[name] = functions[name](args)
    write_json(args.out, results, indent=1)


if __name__ == "__main__":
    main()
