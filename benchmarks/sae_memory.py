"""Peak memory of SAE training from a ``.npy`` file far larger than what it may hold in RAM.

Writes a ``--gib`` GiB ``.npy`` file of float32 rows (256 columns: one 64 Ki-row block of
random values repeated, so writing it costs disk time, not CPU), trains a BatchTopK
:class:`~aekit.sae.SparseAutoencoder` (width 1,024, k 25, batches of 1,024) on it by path for
``--rows`` rows, and reports the peak resident set size (``VmHWM`` of ``/proc/self/status``)
above the one after importing aekit and torch. The file is deleted afterwards unless
``--keep``. Target (issue 29): a 20 GB file trains within 2 GB of RSS.

``python benchmarks/sae_memory.py --gib 20`` (Linux; needs the disk space; writing 20 GiB took
7 minutes on the shared development machine, training 1,000,000 rows another 7).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import environment, write_json

RESULTS = Path(__file__).parent / "results" / "sae_memory.json"
N_FEATURES = 256


def rss_kib(field: str = "VmRSS") -> int:
    """A memory figure of this process from ``/proc/self/status``, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status (Linux only)")


def write_rows(path: Path, n_rows: int) -> float:
    """Write an ``(n_rows, 256)`` float32 ``.npy`` file block by block; return the seconds."""
    t0 = time.perf_counter()
    block = (np.random.default_rng(0).normal(size=(65536, N_FEATURES)) + 0.5).astype("<f4")
    header = {"descr": "<f4", "fortran_order": False, "shape": (n_rows, N_FEATURES)}
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_2_0(handle, header)
        left = n_rows
        while left:
            part = block[: min(left, len(block))]
            handle.write(part.tobytes())
            left -= len(part)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Write the file, train on it, print and write the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gib", type=float, default=20.0, help="file size in GiB")
    parser.add_argument("--rows", type=int, default=1_000_000, help="training rows")
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--keep", action="store_true", help="keep the file")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    n_rows = int(args.gib * 2**30) // (4 * N_FEATURES)
    path = args.folder / f"aekit-sae-memory-{os.getpid()}.npy"
    try:
        write_seconds = write_rows(path, n_rows)
        import torch

        from aekit.sae import SparseAutoencoder

        torch.set_num_threads(1)
        base = rss_kib()
        t0 = time.perf_counter()
        sae = SparseAutoencoder(
            "batchtopk", code_dim=1024, k=25, batch_size=1024, lr=1e-3, max_rows=args.rows
        ).fit(path)
        seconds = time.perf_counter() - t0
        peak = rss_kib("VmHWM")
    finally:
        if not args.keep:
            path.unlink(missing_ok=True)
    gib = 2**20  # KiB per GiB
    results = {
        "benchmark": "sae_memory",
        "file_gib": round(n_rows * 4 * N_FEATURES / 2**30, 2),
        "file_rows": n_rows,
        "n_features": N_FEATURES,
        "trained_rows": args.rows,
        "write_seconds": round(write_seconds, 1),
        "train_seconds": round(seconds, 1),
        "rss_after_import_gib": base / gib,
        "peak_rss_gib": peak / gib,
        "peak_rss_above_import_gib": (peak - base) / gib,
        "explained_variance": sae.history_[-1]["explained_variance"],
        "environment": environment("versions", "threads", "cpus", "cpu", "platform"),
    }
    print(
        f"{args.gib:g} GiB file, {n_rows:,} rows; {args.rows:,} trained in {seconds:.0f} s; "
        f"peak RSS {peak / gib:.3f} GiB, {(peak - base) / gib:.3f} GiB above the "
        f"{base / gib:.3f} GiB after imports"
    )
    write_json(args.out, results)
    return results


if __name__ == "__main__":
    main()
