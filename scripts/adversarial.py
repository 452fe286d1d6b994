"""Adversarial run (issue 24): hundreds of generated misuse and attack cases, counted.

Every case does one thing a careless user or an attacker could do to aekit's three
estimators (model, detector, imputer), through Python or the command line (``aekit.cli.main``
in the worker process): tampered ``config.json``, ``detector.json`` and ``imputer.json``
fields; links, FIFOs, devices and folders in place of saved files; members linked out of
their folder; input bombs (``.npz`` and gzipped IDX files that unpack to 1 GiB, headers of
``.npy``, ``.npz`` and Matrix Market files that claim more than they hold); DataFrames no
estimator can take (duplicate names, list cells, mixed name types, all NaN...); the fitted
columns reordered, renamed, missing or extra (DataFrames and pyarrow Tables); ONNX metadata
that cannot be; checkpoint files that are not regular files; an OUTPUT that is DATA or inside a
dataset folder; CSV files with a byte-order mark; a path given where rows are taken
(``adversarial_recent.py``). The case tables are the tests' (``tests/helpers.py``).

A case is **good** when it ends with the right answer (reordered columns give the answer of
the fitted order; a resumed run the uninterrupted model) or with one clear line (an
:class:`aekit.AekitError` in one line; ``aekit: error: ...`` and a non-zero exit), and leaves
no file behind; **bad** otherwise: a traceback, a wrong answer, a leftover file, or a hang
(no end within 30 s). Cases run in worker processes (this script with ``--worker``), each
under a 30 s alarm; a worker silent for longer is killed and its case counted a hang. Bomb
cases run with ``AEKIT_MAX_INPUT_BYTES`` at 256 MiB (the default is the memory available);
the worker's peak resident memory after each is recorded (it must stay under 1 GiB).

usage: python scripts/adversarial.py [--quick] [--out benchmarks/results/adversarial.json]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT), str(ROOT / "benchmarks")]

CASE_S = 30  # a case that has not ended by then is a hang
QUICK_EVERY = 9  # --quick: every 9th case of each kind (at least one)
RSS_LIMIT_MB = 1024


def all_cases() -> list:
    """Every case, in a fixed order (the parent and its workers build the same list)."""
    from adversarial_cases import bomb_cases, file_cases, tamper_cases
    from adversarial_inputs import (
        checkpoint_cases,
        column_cases,
        frame_cases,
        onnx_cases,
    )
    from adversarial_recent import recent_cases

    return [
        *tamper_cases(), *file_cases(), *bomb_cases(), *frame_cases(), *column_cases(),
        *onnx_cases(), *checkpoint_cases(), *recent_cases(),
    ]  # fmt: skip


def chosen(quick: bool) -> list[int]:
    """The indices of the cases to run: all, or every ``QUICK_EVERY``-th of each kind."""
    seen: collections.Counter = collections.Counter()
    picked = []
    for i, case in enumerate(all_cases()):
        if not quick or seen[case.kind] % QUICK_EVERY == 0:
            picked.append(i)
        seen[case.kind] += 1
    return picked


class _HangError(Exception):
    """The case alarm rang."""


def _alarm(signum: int, frame: object) -> None:
    raise _HangError


def worker(ids: list[int]) -> None:
    """Run the cases ``ids`` in this process; one JSON line on stdout as each starts and ends."""
    from adversarial_cases import Context, Outcome

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    cases = all_cases()
    signal.signal(signal.SIGALRM, _alarm)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Context(Path(tmp))
        for i in ids:
            print(json.dumps({"start": i}), flush=True)
            started = time.perf_counter()
            signal.alarm(CASE_S)
            try:
                outcome = cases[i].run(ctx)
            except _HangError:
                outcome = Outcome(False, f"hang: no end within {CASE_S} s")
            except Exception as exc:  # a fault of the case itself: counted, not hidden
                outcome = Outcome(False, f"case error: {type(exc).__name__}: {exc}"[:300])
            finally:
                signal.alarm(0)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB → MiB
            seconds = round(time.perf_counter() - started, 3)
            record = {"id": i, "good": outcome.good, "why": outcome.why, "seconds": seconds,
                      "peak_rss_mb": peak}  # fmt: skip
            print(json.dumps(record), flush=True)


def run_all(ids: list[int], batch: int) -> dict[int, dict]:
    """Run ``ids`` in worker processes, ``batch`` cases each; a silent worker is killed."""
    results: dict[int, dict] = {}
    pending = list(ids)
    while pending:
        part, pending = pending[:batch], pending[batch:]
        cmd = [sys.executable, __file__, "--worker", ",".join(map(str, part))]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        current, deadline = None, time.monotonic() + 300  # the worker's set-up: fits and saves
        while True:
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if ready:
                line = proc.stdout.readline()
                if not line:
                    break
                if not line.startswith("{"):
                    continue
                record = json.loads(line)
                if "start" in record:
                    current, deadline = record["start"], time.monotonic() + CASE_S + 15
                else:
                    results[record["id"]], current = record, None
            elif time.monotonic() > deadline:
                proc.kill()
                break
        proc.wait()
        if current is not None and current not in results:  # killed, or died, in a case
            why = (
                "hang: killed after 45 s" if proc.returncode == -9 else f"died ({proc.returncode})"
            )
            results[current] = {"id": current, "good": False, "why": why}
        rest = [i for i in part if i not in results]
        if rest and current is None and not results.keys() & set(part):
            for i in rest:  # the worker could not even start
                results[i] = {"id": i, "good": False, "why": f"worker failed ({proc.returncode})"}
        else:
            pending = rest + pending
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the cases (or, with ``--worker``, some of them); 0 when none was bad."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few dozen cases (CI)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "adversarial.json"))
    parser.add_argument("--batch", type=int, default=400, help="cases per worker process")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        worker([int(i) for i in args.worker.split(",")])
        return 0
    from adversarial_cases import BOMBS_ENV, build_bombs

    cases = all_cases()
    ids = chosen(args.quick)
    started = time.perf_counter()
    bombs = [i for i in ids if cases[i].kind == "bomb"]
    with tempfile.TemporaryDirectory() as folder:
        build_bombs(Path(folder))
        os.environ[BOMBS_ENV] = folder  # (the workers inherit it)
        results = run_all([i for i in ids if i not in bombs], args.batch)
        results.update(run_all(bombs, args.batch))  # a worker of their own: its peak memory
    by_kind: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    records = []
    for i in ids:
        case, result = cases[i], results[i]
        counts = by_kind[case.kind]
        counts["tried"] += 1
        counts["good" if result["good"] else "bad"] += 1
        records.append({"kind": case.kind, "name": case.name, "interface": case.interface,
                        **{k: v for k, v in result.items() if k != "id"}})  # fmt: skip
    bomb_rss = [r.get("peak_rss_mb", 0.0) for r in records if r["kind"] == "bomb"]
    print(f"{'kind':<22} {'tried':>6} {'good':>6} {'bad':>5}")
    for kind, counts in by_kind.items():
        print(f"{kind:<22} {counts['tried']:>6} {counts['good']:>6} {counts['bad']:>5}")
    total = collections.Counter()
    for counts in by_kind.values():
        total.update(counts)
    print(f"{'all':<22} {total['tried']:>6} {total['good']:>6} {total['bad']:>5}")
    peak = max(bomb_rss, default=0.0)
    print(f"peak RSS of the bomb cases' worker (set-up included): {peak:.0f} MiB "
          f"(limit {RSS_LIMIT_MB} MiB)")  # fmt: skip
    for record in records:
        if not record["good"]:
            print(
                f"BAD {record['kind']} / {record['name']} ({record['interface']}): {record['why']}"
            )
    from _common import environment, write_json

    write_json(args.out, {
        "mode": "quick" if args.quick else "full",
        "environment": environment("versions", "cpus", "platform"),
        "seconds": round(time.perf_counter() - started, 1),
        "case_limit_s": CASE_S,
        "bomb_input_limit_bytes": 256 << 20,  # 16 MiB for the sparse one
        "bomb_peak_rss_mb": peak,
        "counts": {kind: dict(counts) for kind, counts in by_kind.items()},
        "total": dict(total),
        "cases": records,
    })  # fmt: skip
    return 0 if total["bad"] == 0 and peak < RSS_LIMIT_MB else 1


if __name__ == "__main__":
    sys.exit(main())
