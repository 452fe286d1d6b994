"""Dataset folders under DDP: the bytes each rank reads per epoch, and 2 processes' speed vs 1.

    .venv/bin/python benchmarks/shards.py                     # both sections (~5 min on 2 cores)
    .venv/bin/python benchmarks/shards.py --section bytes     # counts: load-independent
    .venv/bin/python benchmarks/shards.py --section speed     # a timing: run it on a quiet machine
    .venv/bin/python benchmarks/shards.py --section curve     # --nproc 2 vs 1 by model size
    .venv/bin/python benchmarks/shards.py --quick             # a smoke run: tiny data, N = 2

Writes a synthetic parquet folder (shards of several row groups, Spark's ``_SUCCESS`` beside
them) and a ``.npy`` folder (shards read in blocks of ``block_rows`` rows) under ``--work``,
then fits an autoencoder on each folder under ``torchrun`` with N gloo processes on the CPU,
streamed (:class:`aekit.data.folders.ShardedRows`). **Bytes** are counted by the block
reader itself (``bytes_read``: a ``.npy`` block's bytes, a parquet row group's compressed
column chunks; the page cache hides re-reads from ``/proc``) and recorded per rank and epoch
in the history: ``train`` is an epoch's training steps, ``validate`` its validation pass
(each rank validates its consecutive 1/N of the sorted validation rows). The target: each rank
reads about 1/N of the dataset's bytes per epoch in training, at most 1.1/N. **Speed** is
rank 0's ``samples_per_s`` (global rows per second of training steps), the median over the
epochs after the first: one process at 1 thread and at one per core, two processes with the
cores split between them (``OMP_NUM_THREADS`` and ``threads=``; on a loaded machine extra
threads can cost far more than they bring, so both one-process figures are kept).
**Curve** (``--section curve``, not part of "all"; a timing): the same ``.npy`` folder
(256 features) fitted by models of growing size (hidden widths :data:`CURVE_HIDDEN`), one
process at one thread a core against two processes with the cores split between them, at the
default batch (256 rows in all, 128 a rank under two processes) and at a per-rank batch as
large as one process's (512 in all: each rank steps on 256 rows): from which model size
``--nproc 2`` pays on a CPU machine (rank 0's samples/s, the median over the epochs after
the first).
Prints a table and writes ``--out`` as JSON (a section run alone keeps the other's figures
there, for the same data size).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from _common import environment, write_json

OUT = Path(__file__).resolve().parent / "results" / "shards.json"
FULL = {"shards": 16, "groups": 8, "group_rows": 2048, "features": 32, "epochs": 3}
QUICK = {"shards": 8, "groups": 4, "group_rows": 256, "features": 16, "epochs": 2}
CURVE = {"shards": 8, "groups": 2, "group_rows": 1024, "features": 256, "epochs": 3}
CURVE_QUICK = {"shards": 4, "groups": 2, "group_rows": 256, "features": 64, "epochs": 2}
CURVE_HIDDEN = [(64,), (512,), (1024, 256), (2048, 1024)]  # ~0.04M to ~3M weights at 256
PARAMS = {
    "code_dim": 8,
    "hidden": (64,),
    "batch_size": 256,
    "lr": 1e-3,
    "val_fraction": 0.1,
    "patience": None,
    "init": "random",
    "random_state": 0,
    "device": "cpu",
}


def write_folders(work: Path, size: dict[str, int]) -> dict[str, Path]:
    """A parquet folder and a ``.npy`` folder of the same synthetic rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    rows = size["groups"] * size["group_rows"]
    folders = {"parquet": work / "parquet", "npy": work / "npy"}
    for folder in folders.values():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    for i in range(size["shards"]):
        X = rng.normal(size=(rows, size["features"])).astype(np.float32)
        table = pa.table({f"x{j}": X[:, j] for j in range(size["features"])})
        pq.write_table(
            table, folders["parquet"] / f"part-{i:05d}.parquet", row_group_size=size["group_rows"]
        )
        np.save(folders["npy"] / f"part-{i:05d}.npy", X)
    (folders["parquet"] / "_SUCCESS").write_bytes(b"")
    return folders


def run(
    folder: Path,
    kind: str,
    nproc: int,
    size: dict[str, int],
    threads: int,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit the folder in ``nproc`` processes; rank 0's history and the dataset's bytes.

    ``params`` override :data:`PARAMS` (the curve's model sizes and batches).
    """
    from aekit.training.distributed import torchrun_command

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        args = [
            __file__,
            "--worker",
            str(folder),
            str(out),
            str(size["group_rows"]),
            str(size["epochs"]),
            json.dumps(params or {}),
        ]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        done = subprocess.run(
            torchrun_command(args, nproc, module=None), env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise SystemExit(f"{kind} N={nproc} failed:\n{done.stderr[-3000:]}")
        return json.loads(out.read_text())


def worker(folder: str, out: str, block_rows: int, epochs: int, params: str = "{}") -> None:
    """Under torchrun: fit the folder streamed; rank 0 writes the history's records."""
    from aekit import Autoencoder
    from aekit.data.folders import ShardedRows
    from aekit.training.distributed import distributed_session, exit_process

    with distributed_session("cpu") as ctx:
        source = ShardedRows(folder, block_rows=block_rows)
        threads = int(os.environ["OMP_NUM_THREADS"])  # the benchmark's choice, no probe
        overrides = json.loads(params)
        ae = Autoencoder(**{**PARAMS, **overrides}, epochs=epochs, threads=threads).fit(source)
        if ctx.is_main:
            result = {
                "records": ae.history_.records,
                "dataset_bytes": int(source.block_bytes.sum()),
                "blocks": source.n_blocks,
                "rows": len(source),
            }
            Path(out).write_text(json.dumps(result))
    exit_process(0)


def bytes_section(
    folders: dict[str, Path], size: dict[str, int], counts: tuple[int, ...]
) -> list[dict[str, Any]]:
    rows = []
    head = f"{'data':8} {'N':>2} {'rank':>4} {'train bytes/epoch':>18} {'× N':>6} {'validate':>9}"
    print(f"{head}   (× N: the bytes as a share of 1/N of the dataset; target ≤ 1.1)")
    for kind, folder in folders.items():
        for nproc in counts:
            found = run(folder, kind, nproc, size, threads=1)
            total = found["dataset_bytes"]
            for rank in range(nproc):
                train = max(r["bytes_read"][rank] for r in found["records"])
                val = max(r["val_bytes_read"][rank] for r in found["records"])
                row = {
                    "data": kind,
                    "N": nproc,
                    "rank": rank,
                    "train_bytes": train,
                    "train_fraction": train / total,
                    "val_bytes": val,
                    "val_fraction": val / total,
                    "dataset_bytes": total,
                    "blocks": found["blocks"],
                }
                rows.append(row)
                print(
                    f"{kind:8} {nproc:>2} {rank:>4} {train:>18,} {train / total * nproc:>6.3f} "
                    f"{val / total * nproc:>9.3f}"
                )
    return rows


def speed_section(folders: dict[str, Path], size: dict[str, int]) -> list[dict[str, Any]]:
    cores = len(os.sched_getaffinity(0))
    rows = []
    print(f"\n{'data':8} {'processes':>9} {'threads each':>12} {'samples/s':>10}")
    for kind, folder in folders.items():
        for nproc, threads in ((1, 1), (1, cores), (2, max(1, cores // 2))):
            found = run(folder, kind, nproc, size, threads)
            rates = [r["samples_per_s"] for r in found["records"]]
            rate = statistics.median(rates[1:] or rates)
            rows.append(
                {"data": kind, "processes": nproc, "threads": threads, "samples_per_s": rate}
            )
            print(f"{kind:8} {nproc:>9} {threads:>12} {rate:>10,.0f}")
    return rows


def curve_section(folder: Path, size: dict[str, int], quick: bool) -> list[dict[str, Any]]:
    """Samples/s of one process and of two, by model size and per-rank batch (the curve)."""
    cores = len(os.sched_getaffinity(0))
    rows = []
    print(f"\n{'hidden':>12} {'weights':>9} {'batch':>6} {'1 proc':>9} {'2 procs':>9} {'2 / 1':>6}")
    for hidden in CURVE_HIDDEN[:2] if quick else CURVE_HIDDEN:
        widths = [size["features"], *hidden, PARAMS["code_dim"]]
        weights = 2 * sum(a * b for a, b in itertools.pairwise(widths))
        for batch in (256, 512):
            rates = {}
            for nproc, threads in ((1, cores), (2, max(1, cores // 2))):
                params = {"hidden": list(hidden), "batch_size": batch}
                found = run(folder, "npy", nproc, size, threads, params)
                speeds = [r["samples_per_s"] for r in found["records"]]
                rates[nproc] = statistics.median(speeds[1:] or speeds)
            rows.append({"hidden": list(hidden), "weights": weights, "batch_size": batch,
                         "per_rank_batch_2": batch // 2, "one_process": rates[1],
                         "two_processes": rates[2], "ratio": rates[2] / rates[1]})  # fmt: skip
            print(f"{'-'.join(map(str, hidden)):>12} {weights:>9,} {batch:>6} {rates[1]:>9,.0f} "
                  f"{rates[2]:>9,.0f} {rates[2] / rates[1]:>6.2f}", flush=True)  # fmt: skip
    return rows


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        folder, out, block_rows, epochs, params = sys.argv[2:7]
        worker(folder, out, int(block_rows), int(epochs), params)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="tiny data; bytes at N = 2, speed on npy"
    )
    parser.add_argument("--section", choices=["all", "bytes", "speed", "curve"], default="all")
    parser.add_argument(
        "--work", type=Path, help="folder for the synthetic data (default: a temporary one)"
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    size = QUICK if args.quick else FULL
    if args.section == "curve":  # its own data size and JSON key
        size = CURVE_QUICK if args.quick else CURVE
        with tempfile.TemporaryDirectory() as tmp:
            folder = write_folders(args.work or Path(tmp), size)["npy"]
            curve = {"size": size, "machine": environment("cpus", "python"),
                     "rows": curve_section(folder, size, args.quick)}  # fmt: skip
        earlier = json.loads(args.out.read_text()) if args.out.is_file() else {}
        write_json(args.out, {**earlier, "curve": curve})
        return
    with tempfile.TemporaryDirectory() as tmp:
        folders = write_folders(args.work or Path(tmp), size)
        result: dict[str, Any] = {
            "size": size,
            "params": PARAMS,
            "machine": environment("cpus", "python"),
        }
        if args.section in ("all", "bytes"):
            result["bytes"] = bytes_section(folders, size, (2,) if args.quick else (1, 2, 4))
        if args.section in ("all", "speed"):
            timed = {"npy": folders["npy"]} if args.quick else folders
            result["speed"] = speed_section(timed, size)
    if args.out.is_file() and args.section != "all":  # one section run alone keeps the other
        earlier = json.loads(args.out.read_text())
        if earlier.get("size") == size:
            result = {**earlier, **result}
    write_json(args.out, result)


if __name__ == "__main__":
    main()
