"""Fit throughput on a shared CPU: quiet, beside busy processes, under a quota, and DDP.

Every contender fits 784-256-30 (mirrored decoder, batch 128, the hand loop's recipe of
``speed.py``: MSE, constant lr 1e-3, no batch norm, no validation, a random start) on the
first ``--rows`` MNIST images (``--data``; synthetic rows of that shape without them):

- aekit's policy (``threads="auto"``), and the same with ``OMP_WAIT_POLICY=PASSIVE``;
- torch's default count (``threads="torch"``), and each fixed count 1, 2, 4, ... up to the
  usable CPUs (the best of these is "the best fixed count");
- scikit-learn's ``MLPRegressor`` fitted X → X with the same widths, batch and rate.

Each contender lives in its own worker process, started afresh for each condition (so
torch's count is its start-up default and no variable is inherited) and warmed up by one
untimed fit. Conditions: ``quiet``; ``busy1`` and ``busy2``, one and two competing busy
processes (a Python loop each); ``quota``, half the usable CPUs: a cgroup with a CPU quota
(v1 ``cpu.cfs_quota_us`` or v2 ``cpu.max``) where this runs as root on a writable cgroup file
system, else CPU affinity on half the cores; ``ddp``, two DDP processes (gloo) with each its
share of the cores, as ``aekit fit --nproc 2`` starts them, against one process, global batch
128. Rounds interleave the contenders (the order rotating); medians of ``--repeats`` rounds.
Two rates: ``fit``, samples over the wall time of the whole ``fit`` call (aekit's probe
included: the first fit of a worker probes, a fit within a minute of it reuses its timings,
as repeated fits do), and ``loop``, the training loop's own (``History`` epoch seconds). An
aekit fit stops after the epoch that passes :data:`MAX_SECONDS` (collapsed counts would
take minutes); its rates count the epochs it ran. The JSON keeps every sample and the
thread count aekit chose in each.

Run ``python benchmarks/contention.py`` on an otherwise quiet machine (about 10 minutes on 2
cores); ``--quick`` is a smoke run whose figures mean nothing. Writes
``benchmarks/results/contention.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import environment, write_json

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist"
HIDDEN, CODE_DIM, BATCH = (256,), 30, 128
MAX_SECONDS = 20.0  # a collapsed aekit fit stops after the epoch that passes this
CONDITIONS = ("quiet", "busy1", "busy2", "quota", "ddp")
AEKIT, TORCH = "aekit (auto)", "torch default"
CLEAN_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "AEKIT_THREAD_SHARE")


# -- the workers ------------------------------------------------------------------------------
def load_rows(folder: Path, rows: int) -> Any:
    """float32 rows in [0, 1]: the first MNIST images, or synthetic rows of that shape."""
    import numpy as np

    images = folder / "t10k-images-idx3-ubyte.gz"
    if images.exists():
        from aekit.data.formats import read_array

        return read_array(images).astype(np.float32)[:rows] / 255.0
    rng = np.random.default_rng(0)
    z = rng.normal(size=(rows, CODE_DIM)) @ rng.normal(size=(CODE_DIM, 784)) / 4
    return (1 / (1 + np.exp(-z))).astype(np.float32)


def one_fit(spec: dict[str, Any], X: Any, epochs: int) -> dict[str, Any]:
    """One timed fit of the contender ``spec``: its rates and (aekit) thread count."""
    samples = len(X) * epochs
    if spec.get("sklearn"):
        import warnings

        from sklearn.neural_network import MLPRegressor

        mlp = MLPRegressor(
            hidden_layer_sizes=(*HIDDEN, CODE_DIM, *reversed(HIDDEN)), batch_size=BATCH,
            learning_rate_init=1e-3, alpha=0.0, max_iter=epochs, tol=0.0,
            n_iter_no_change=epochs + 1, random_state=0,
        )  # fmt: skip
        tick = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlp.fit(X, X)
        rate = samples / (time.perf_counter() - tick)
        return {"fit": rate, "loop": rate, "threads": None}
    from aekit import Autoencoder

    ae = Autoencoder(
        CODE_DIM, hidden=HIDDEN, epochs=epochs, batch_size=BATCH, val_fraction=0.0,
        patience=None, init="random", device="cpu", random_state=0, threads=spec["threads"],
        max_time=MAX_SECONDS,
        output="sigmoid", scaling="none", batch_norm=False, loss="mse", lr=1e-3,
        lr_schedule="constant", weight_decay=0.0,
    )  # fmt: skip
    tick = time.perf_counter()
    ae.fit(X)
    wall = time.perf_counter() - tick
    samples = len(X) * len(ae.history_.records)  # fewer where max_time ended a collapsed fit
    loop = samples / sum(r["seconds"] for r in ae.history_.records)
    return {"fit": samples / wall, "loop": loop, "threads": ae.history_.threads}


def worker(args: argparse.Namespace) -> int:
    """Join the quota (cgroup or affinity) first, then fit once per ``fit`` line on stdin."""
    spec = json.loads(args.worker)
    if args.cgroup:
        Path(args.cgroup, "cgroup.procs").write_text(str(os.getpid()))
    if args.cpus:
        os.sched_setaffinity(0, [int(c) for c in args.cpus.split(",")])
    X = load_rows(args.data, args.rows)
    one_fit(spec, X, 1)  # warm-up
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if line.strip() != "fit":
            break
        print(json.dumps(one_fit(spec, X, args.epochs)), flush=True)
    return 0


def ddp_worker(args: argparse.Namespace) -> int:
    """Under torchrun (or alone): one warm-up fit and one timed; rank 0 prints the rates."""
    from aekit.training.distributed import distributed_session

    with distributed_session(device="cpu") as ctx:
        X = load_rows(args.data, args.rows)
        one_fit({"threads": "auto"}, X, 1)
        result = one_fit({"threads": "auto"}, X, args.epochs)
        if ctx.is_main:
            print(json.dumps({**result, "processes": ctx.world_size}), flush=True)
    return 0


# -- conditions -------------------------------------------------------------------------------
def usable() -> list[int]:
    """The CPUs this process may run on."""
    return sorted(os.sched_getaffinity(0))


def make_quota(cpus: int) -> tuple[Path | None, str]:
    """A cgroup limited to ``cpus`` CPUs (as root), or None and why not."""
    name, why = f"aekit-contention-{os.getpid()}", []
    v1, v2 = Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup")
    quota = cpus * 100_000
    options = []
    if (v1 / "cpu.cfs_quota_us").exists():
        options.append(
            (v1 / name, "v1", {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": str(quota)})
        )
    controllers = v2 / "cgroup.controllers"
    if controllers.exists() and "cpu" in controllers.read_text().split():
        options.append((v2 / name, "v2", {"cpu.max": f"{quota} 100000"}))
    for folder, kind, files in options:
        try:
            folder.mkdir()
            if not (folder / "cgroup.procs").exists():  # not a cgroup file system after all
                raise OSError("no cgroup.procs in a new folder")
            for file, text in files.items():
                (folder / file).write_text(text)
        except OSError as exc:
            drop_quota(folder)
            why.append(f"{folder.parent}: {exc.strerror or exc}")
            continue
        return folder, f"cgroup {kind} quota of {cpus} CPU(s) ({folder})"
    return None, "no writable cgroup: " + ("; ".join(why) or "none with a cpu controller")


def drop_quota(folder: Path | None) -> None:
    """Remove the quota's cgroup (a plain folder, if the kernel did not make it a cgroup)."""
    if folder is not None and folder.is_dir() and not (folder / "cgroup.procs").exists():
        for file in folder.iterdir():
            file.unlink()
    for _ in range(50):  # the workers may take a moment to leave
        try:
            if folder is not None and folder.is_dir():
                folder.rmdir()
            return
        except OSError:
            time.sleep(0.1)


class Workers:
    """One worker process per contender, in the condition's quota (cgroup or affinity)."""

    def __init__(self, args: argparse.Namespace, specs: dict[str, dict[str, Any]], **join: str):
        base = [sys.executable, __file__, "--data", str(args.data), "--rows", str(args.rows)]
        base += ["--epochs", str(args.epochs), *(f"--{k}={v}" for k, v in join.items())]
        self.procs = {}
        for name, spec in specs.items():
            env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV} | spec.get("env", {})
            self.procs[name] = subprocess.Popen(
                [*base, "--worker", json.dumps(spec)], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, text=True, env=env,
            )  # fmt: skip
            # Its warm-up fit, alone: a thread probe then measures the condition, not the
            # other workers' warm-ups (started all at once, aekit's probe saw a busy machine).
            self._read(name)

    def _read(self, name: str) -> dict[str, Any]:
        line = self.procs[name].stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError(f"worker {name!r} ended (exit code {self.procs[name].wait()})")
        return json.loads(line)

    def fit(self, name: str) -> dict[str, Any]:
        """One timed fit of contender ``name``."""
        self.procs[name].stdin.write("fit\n")  # type: ignore[union-attr]
        self.procs[name].stdin.flush()  # type: ignore[union-attr]
        return self._read(name)

    def close(self) -> None:
        """End every worker (they leave on a closed stdin)."""
        for proc in self.procs.values():
            proc.stdin.close()  # type: ignore[union-attr]
        for proc in self.procs.values():
            proc.wait(timeout=60)


def contenders(n_cpus: int) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {
        AEKIT: {"threads": "auto"},
        "aekit, OMP_WAIT_POLICY=PASSIVE": {
            "threads": "auto",
            "env": {"OMP_WAIT_POLICY": "PASSIVE"},
        },
        TORCH: {"threads": "torch"},
    }
    count = 1
    while count < n_cpus:
        found[f"{count} thread(s)"] = {"threads": count}
        count *= 2
    found[f"{n_cpus} thread(s)"] = {"threads": n_cpus}
    found["sklearn MLPRegressor"] = {"sklearn": True}
    return found


def run_condition(args: argparse.Namespace, condition: str) -> dict[str, Any]:
    """Every contender, interleaved, in one condition; medians and the raw samples."""
    cpus = usable()
    specs, join, busy, setup = contenders(len(cpus)), {}, [], condition
    folder = None
    if condition.startswith("busy"):
        spin = [sys.executable, "-c", "while True: pass"]
        busy = [subprocess.Popen(spin) for _ in range(int(condition[-1]))]
        setup = f"{len(busy)} busy process(es) beside the fits"
    elif condition == "quota":
        half = max(1, len(cpus) // 2)
        folder, setup = make_quota(half) if os.geteuid() == 0 else (None, "not root")
        if folder is not None:
            join["cgroup"] = str(folder)
        else:
            join["cpus"] = ",".join(map(str, cpus[:half]))
            setup = f"affinity on CPUs {join['cpus']} ({setup})"
    try:
        workers = Workers(args, specs, **join)
        samples: dict[str, list[dict[str, Any]]] = {name: [] for name in specs}
        names = list(specs)
        for round_ in range(args.repeats):
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                samples[name].append(workers.fit(name))
        workers.close()
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
        drop_quota(folder)
    return {
        "setup": setup,
        "contenders": {name: summarise(found) for name, found in samples.items()},
    }


def run_ddp(args: argparse.Namespace) -> dict[str, Any]:
    """One process against two DDP processes with their share each, launches interleaved."""
    cpus = len(usable())
    share = str(max(1, cpus // 2))
    script = [__file__, "--ddp-worker", "--data", str(args.data), "--rows", str(args.rows)]
    script += ["--epochs", str(args.epochs)]
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    runs = {
        "1 process": ([sys.executable, *script], env),
        "2 DDP processes": (
            [sys.executable, "-m", "torch.distributed.run", "--standalone",
             "--nproc-per-node=2", *script],
            env | {"OMP_NUM_THREADS": share, "AEKIT_THREAD_SHARE": share},
        ),
    }  # fmt: skip
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, (command, run_env) in runs.items():
            done = subprocess.run(command, env=run_env, capture_output=True, text=True, check=True)
            samples[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {"setup": f"global batch {BATCH}, {share} thread(s) per DDP process at most",
            "contenders": {name: summarise(found) for name, found in samples.items()}}  # fmt: skip


def summarise(found: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "fit": statistics.median(r["fit"] for r in found),
        "loop": statistics.median(r["loop"] for r in found),
        "threads": [r["threads"] for r in found],
        "samples": found,
    }


# -- report -----------------------------------------------------------------------------------
def targets(res: dict[str, Any]) -> list[tuple[str, str, float, float]]:
    """(what, rate, value, goal) of issue 17's targets that this run measured."""
    out = []
    for rate in ("loop", "fit"):
        for condition, goal in (("quiet", 0.95), ("busy1", 0.9)):
            found = res["conditions"].get(condition, {}).get("contenders")
            if found:
                best = max(v[rate] for k, v in found.items() if k.endswith("thread(s)"))
                out.append(
                    (
                        f"{condition}: aekit / best fixed count",
                        rate,
                        found[AEKIT][rate] / best,
                        goal,
                    )
                )
                if condition == "busy1":
                    ratio = found[AEKIT][rate] / found[TORCH][rate]
                    out.append(("busy1: aekit / torch default", rate, ratio, 5.0))
        ddp = res["conditions"].get("ddp", {}).get("contenders")
        if ddp:
            ratio = ddp["2 DDP processes"][rate] / ddp["1 process"][rate]
            out.append(("ddp: 2 processes / 1 process", rate, ratio, 0.9))
    return out  # fmt: skip


def print_report(res: dict[str, Any]) -> None:
    print(
        f"{res['rows']} rows × {res['epochs']} epoch(s), batch {BATCH}, 784-256-30; medians "
        f"of {res['repeats']} interleaved rounds; {res['cpus']} usable CPU(s)"
    )
    for condition, info in res["conditions"].items():
        print(f"\n{condition}: {info['setup']}")
        print(f"  {'contender':<34}{'fit samples/s':>15}{'loop samples/s':>16}  threads")
        for name, c in info["contenders"].items():
            shown = ",".join(str(t) for t in c["threads"]) if c["threads"][0] is not None else "-"
            print(f"  {name:<34}{c['fit']:15.0f}{c['loop']:16.0f}  {shown}")
    print("\ntargets (issue 17)")
    for what, rate, value, goal in res["targets"]:
        verdict = "met" if value >= goal else "MISSED"
        print(f"  {what:<40}{rate:>5}{value:8.2f}  target ≥ {goal:<5}{verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with MNIST IDX")
    parser.add_argument("--rows", type=int, default=8000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--conditions", default=",".join(CONDITIONS), help="comma-separated")
    parser.add_argument("--quick", action="store_true", help="smoke run: figures mean nothing")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/contention.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--ddp-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cgroup", help=argparse.SUPPRESS)
    parser.add_argument("--cpus", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    if args.ddp_worker:
        return ddp_worker(args)
    if args.quick:
        args.rows, args.epochs, args.repeats = 1000, 1, 1
    res: dict[str, Any] = {
        "rows": args.rows, "epochs": args.epochs, "repeats": args.repeats, "quick": args.quick,
        "cpus": len(usable()), **environment("cpu"),
        "load_average_start": os.getloadavg(), "conditions": {},
    }  # fmt: skip
    for condition in args.conditions.split(","):
        if condition not in CONDITIONS:
            parser.error(f"unknown condition {condition!r}: expected some of {CONDITIONS}")
        print(f"running {condition} ...", file=sys.stderr, flush=True)
        found = run_ddp(args) if condition == "ddp" else run_condition(args, condition)
        res["conditions"][condition] = found
    res["load_average_end"] = os.getloadavg()
    res["targets"] = targets(res)
    print_report(res)
    write_json(args.out, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
