"""Training on a ``.npy`` or parquet file larger than memory: peak resident memory and throughput.

Writes a float32 ``.npy`` (or, with ``--format parquet``, a parquet file of 784 float32
columns in row groups of ``--group-rows`` rows, ~16 MiB each by default) of MNIST's shape
(784 features, default 3 GB ≈ 956k rows) after checking free disk, then trains the 784-256-30
model in fresh subprocesses, one run at a time:

- ``stream``: ``Autoencoder.fit(path)``, one epoch streamed in shuffled blocks from disk;
- ``memory``: the first ``--memory-rows`` rows loaded into RAM, ``fit`` on the array
  (run before and after the streamed run; the median is the reference);
- ``idle``: only imports aekit and torch (the floor of resident memory);
- ``cli`` (with ``--cli``): ``aekit fit PATH`` for one whole epoch, streaming (the file is over
  1 GiB), with its 10 % hold-out, fingerprint pass and closing comparison with PCA; then that
  model's ``aekit encode``, ``aekit score`` and ``aekit reconstruct`` over the whole file, each
  in its own process (streamed too: read block by block, written block by block; the
  reconstruction is a second file of the same size, so ``--cli`` needs twice the disk).

Each subprocess reports its peak resident set size (``resource.getrusage``) and its training
throughput (rows per second from the first batch to the last; ``--max-batches N`` ends each
run after N batches, for a short run on a busy machine: the streamed run still makes its
scaling pass over the whole file and draws its batches from all of it). The file is deleted
afterwards unless ``--keep``. Just written, it sits in the OS page cache; a cold disk bounds the
streamed rate by its read speed instead.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from _common import write_json

FEATURES = 784
PARAMS = {
    "code_dim": 30, "hidden": (256,), "batch_size": 128, "val_fraction": 0.0,
    "patience": None, "random_state": 0, "device": "cpu",
}  # fmt: skip


def make_rows(n_rows: int, chunk: int) -> Iterator[np.ndarray]:
    """Float32 rows in [0, 1] near a 30-d manifold, ``chunk`` rows at a time."""
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(30, FEATURES)).astype(np.float32) / 4
    for start in range(0, n_rows, chunk):
        z = rng.normal(size=(min(chunk, n_rows - start), 30)).astype(np.float32)
        yield (1 / (1 + np.exp(-(z @ basis)))).astype("<f4")


def write_npy(path: Path, n_rows: int, chunk: int = 32768) -> None:
    """The rows as a float32 .npy, written with plain writes."""
    header = {"descr": "<f4", "fortran_order": False, "shape": (n_rows, FEATURES)}
    with path.open("wb") as handle:
        np.lib.format.write_array_header_2_0(handle, header)
        for rows in make_rows(n_rows, chunk):
            handle.write(rows.tobytes())


def write_parquet(path: Path, n_rows: int, group_rows: int) -> None:
    """The rows as parquet: columns ``x0``... of float32, one row group per ``group_rows``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([(f"x{i}", pa.float32()) for i in range(FEATURES)])
    with pq.ParquetWriter(path, schema) as writer:
        for rows in make_rows(n_rows, group_rows):
            writer.write_table(pa.Table.from_arrays(list(rows.T), schema=schema))


def read_head(path: str, n_rows: int) -> np.ndarray:
    """The first ``n_rows`` rows of the file, in memory."""
    if not path.endswith(".parquet"):
        return np.array(np.load(path, mmap_mode="r")[:n_rows])
    import pyarrow.parquet as pq

    parquet, out, done = pq.ParquetFile(path), np.empty((n_rows, FEATURES), np.float32), 0
    for group in range(parquet.num_row_groups):  # one row group at a time: no extra copies
        if done == n_rows:
            break
        columns = parquet.read_row_group(group).columns
        count = min(len(columns[0]), n_rows - done)
        for j, column in enumerate(columns):
            out[done : done + count, j] = column.to_numpy()[:count]
        done += count
    return out[:done]


class _EnoughError(Exception):
    pass


def child(mode: str, path: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one measurement in this (fresh) process."""
    import torch

    from aekit import Autoencoder, Callback

    class Clock(Callback):
        """Time the batches; stop after ``max_batches`` of them (0: never)."""

        start, batches, seconds = 0.0, 0, 0.0

        def on_epoch_begin(self, trainer: Any, epoch: int) -> None:
            self.start = self.start or time.perf_counter()

        def on_batch_end(self, trainer: Any, batch: int, n_batches: int) -> None:
            self.batches += 1
            self.seconds = time.perf_counter() - self.start
            if self.batches == args.max_batches:
                raise _EnoughError

    torch.set_num_threads(args.threads)
    tick = time.perf_counter()
    out: dict[str, Any] = {"mode": mode}
    if mode == "cli":
        from aekit.cli import main as aekit_main

        argv = ["fit", path, "--code-dim", "30", "--hidden", "256", "--batch-size", "128"]
        argv += ["--epochs", "1", "--device", "cpu", "-q", "-o", args.model]
        if aekit_main(argv) != 0:
            raise SystemExit("aekit fit failed")
        record = json.loads(Path(args.model, "history.json").read_text())["records"][0]
        out["samples_per_s"] = record["samples_per_s"]
        out["fit_seconds"] = time.perf_counter() - tick
        out["before_training_s"] = out["fit_seconds"] - record["seconds"]  # all but training
    elif mode in APPLY:
        from aekit.cli import main as aekit_main

        output = Path(path).with_name(f"{Path(path).stem}-{mode}.npy")
        try:
            if aekit_main([mode, args.model, path, "-o", str(output)]) != 0:
                raise SystemExit(f"aekit {mode} failed")
            out["output_mb"] = output.stat().st_size / 1e6
        finally:
            output.unlink(missing_ok=True)
        out["fit_seconds"] = time.perf_counter() - tick  # here: the command's seconds
    elif mode != "idle":
        clock = Clock()
        if mode == "stream":
            data: Any = path
        else:
            data = read_head(path, args.memory_rows)
        with contextlib.suppress(_EnoughError):
            Autoencoder(epochs=1, **PARAMS).fit(data, callbacks=(clock,))
        out["batches"] = clock.batches
        out["samples_per_s"] = clock.batches * PARAMS["batch_size"] / clock.seconds
        out["fit_seconds"] = time.perf_counter() - tick
        out["before_training_s"] = clock.start - tick  # reading, or the streamed scaling pass
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


APPLY = ("encode", "score", "reconstruct")


def measure(mode: str, path: Path, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", mode, "--path", str(path)]
    command += ["--model", str(args.model)]
    command += ["--memory-rows", str(args.memory_rows), "--threads", str(args.threads)]
    command += ["--max-batches", str(args.max_batches)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{mode} run failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  {mode}: {json.dumps(result)}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=3.0, help="size of the file (float32)")
    parser.add_argument("--format", choices=("npy", "parquet"), default="npy")
    parser.add_argument("--group-rows", type=int, default=2**24 // (4 * FEATURES),
                        help="rows per parquet row group (default ~16 MiB)")  # fmt: skip
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--memory-rows", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--max-batches", type=int, default=0, help="stop runs early (0: never)")
    parser.add_argument("--keep", action="store_true", help="keep the data file")
    parser.add_argument(
        "--out", type=Path, help="default: benchmarks/results/streaming[-parquet].json"
    )
    parser.add_argument("--cli", action="store_true", help="also time `aekit fit` over the file")
    parser.add_argument(
        "--child", choices=("stream", "memory", "idle", "cli", *APPLY), help=argparse.SUPPRESS
    )
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.path, args)))
        return 0

    n_rows = int(args.gigabytes * 1e9 / (4 * FEATURES))
    size = n_rows * FEATURES * 4
    free, needed = shutil.disk_usage(args.dir).free, size * (2 if args.cli else 1)
    if free < needed + 2**30:
        print(f"not enough free disk in {args.dir}: {free / 1e9:.1f} GB free, "
              f"{needed / 1e9:.1f} GB + 1 GB margin needed", file=sys.stderr)  # fmt: skip
        return 2
    path = args.dir / f"aekit-streaming-{os.getpid()}.{args.format}"
    model = tempfile.TemporaryDirectory()
    args.model = model.name
    try:
        tick = time.perf_counter()
        if args.format == "npy":
            write_npy(path, n_rows)
        else:
            write_parquet(path, n_rows, args.group_rows)
        size = path.stat().st_size
        print(f"wrote {path} ({size / 1e9:.2f} GB, {n_rows} rows) in "
              f"{time.perf_counter() - tick:.0f} s", flush=True)  # fmt: skip
        modes = ["idle", "memory", "stream", "memory", *(["cli", *APPLY] if args.cli else [])]
        runs = [measure(mode, path, args) for mode in modes]
    finally:
        model.cleanup()
        if not args.keep:
            path.unlink(missing_ok=True)
    idle, stream, memory = runs[0], runs[2], [runs[1], runs[3]]
    reference = statistics.median(m["samples_per_s"] for m in memory)
    res = {
        "format": args.format, "file_gb": size / 1e9, "rows": n_rows, "threads": args.threads,
        "load_average": os.getloadavg(),
        "memory_rows": args.memory_rows, "runs": runs,
        "ratio": stream["samples_per_s"] / reference,
        "stream_peak_rss_mb": stream["peak_rss_mb"],
    }  # fmt: skip
    print(f"\n{'run':<34}{'samples/s':>11}{'peak RSS MB':>13}{'fit s':>8}")
    print(f"{'idle (import aekit, torch)':<34}{'-':>11}{idle['peak_rss_mb']:13.0f}{'-':>8}")
    for m in memory:
        print(f"{f'in memory ({args.memory_rows} rows)':<34}{m['samples_per_s']:11.0f}"
              f"{m['peak_rss_mb']:13.0f}{m['fit_seconds']:8.1f}")  # fmt: skip
    print(f"{f'streamed ({size / 1e9:.1f} GB .{args.format})':<34}{stream['samples_per_s']:11.0f}"
          f"{stream['peak_rss_mb']:13.0f}{stream['fit_seconds']:8.1f}")  # fmt: skip
    if args.cli:
        cli = runs[4]
        res["cli_peak_rss_mb"] = cli["peak_rss_mb"]
        print(f"{'aekit fit (whole epoch, streamed)':<34}{cli['samples_per_s']:11.0f}"
              f"{cli['peak_rss_mb']:13.0f}{cli['fit_seconds']:8.1f}")  # fmt: skip
        for run in runs[5:]:
            res[f"{run['mode']}_peak_rss_mb"] = run["peak_rss_mb"]
            what = f"aekit {run['mode']} (whole file)"
            print(f"{what:<34}{n_rows / run['fit_seconds']:11.0f}"
                  f"{run['peak_rss_mb']:13.0f}{run['fit_seconds']:8.1f}")  # fmt: skip
    print(f"streamed scaling pass: {stream['before_training_s']:.0f} s before the first batch "
          f"({size / 1e6 / stream['before_training_s']:.0f} MB/s read)")  # fmt: skip
    print(f"\nstreamed / in-memory throughput {res['ratio']:.2f} (target ≥ 0.8); "
          f"streamed peak RSS {stream['peak_rss_mb']:.0f} MB (target ≤ 1024)")  # fmt: skip
    print(f"load average (1, 5, 15 min) at the end: {res['load_average']}")
    if args.out is None:
        suffix = "" if args.format == "npy" else f"-{args.format}"
        args.out = Path(f"benchmarks/results/streaming{suffix}.json")
    write_json(args.out, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
