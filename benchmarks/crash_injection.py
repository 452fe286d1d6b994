"""Crash injection: kill or interrupt training at random moments, resume, compare bitwise.

Each run starts a child process (this script with ``--child``) that trains a small
autoencoder on the CPU with checkpoints every epoch and every few steps, printing each step.
Once it reports a seeded random step, it gets SIGKILL or SIGINT after a further random delay
of up to 50 ms (into a step or a checkpoint write); a second child then resumes from the
newest usable checkpoint to the end. The final weights are compared bit for
bit with those of an uninterrupted child. Prints a table and writes JSON.

usage: python benchmarks/crash_injection.py [--runs 10] [--seed 0] [--out crash_injection.json]
"""

from __future__ import annotations

import argparse
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import write_json

RUN = {"epochs": 4, "batch_size": 64, "checkpoint_every_steps": 10, "keep_checkpoints": 2}
STEPS = 4 * 29  # 1800 training rows in batches of 64, four epochs


def child(folder: str) -> None:
    """Train (resuming if there is a checkpoint) and save the final weights."""
    import logging

    import numpy as np
    import torch
    from safetensors.torch import save_file

    from aekit import Callback, Hourglass, ModelConfig, TrainConfig, Trainer

    class Report(Callback):
        def on_batch_end(self, trainer: Trainer, **kwargs: object) -> None:
            print(trainer.step, flush=True)

    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    rows = torch.from_numpy(np.random.default_rng(0).normal(size=(2000, 20)).astype(np.float32))
    module = Hourglass(
        ModelConfig(input_dim=20, code_dim=4, hidden=(64,), dropout=0.1, noise="gaussian"),
        torch.Generator().manual_seed(0),
    )
    config = TrainConfig(random_state=0, device="cpu", checkpoint_dir=folder, **RUN)
    Trainer(module, config, [Report()]).fit(rows, resume=True)
    state = {k: v.contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(Path(folder) / "final.safetensors"))


def _spawn(folder: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "--child", str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(folder: Path) -> None:
    """Run a child to the end."""
    proc = _spawn(folder)
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"child failed: {err[-2000:]}")


def one_run(folder: Path, sig: signal.Signals, step: int, delay: float) -> dict[str, object]:
    """Interrupt a child ``delay`` s after it reports ``step``, resume it, describe the result."""
    from aekit.training.checkpoint import latest_checkpoint

    proc = _spawn(folder)
    assert proc.stdout is not None
    for line in proc.stdout:
        if int(line) >= step:
            break
    time.sleep(delay)
    proc.send_signal(sig)
    _, err = proc.communicate()
    if "checkpoint saved to" in err:
        saved = "saved at the interrupt"
    elif "inside an optimiser update" in err:
        saved = "in an update: kept the last"
    else:
        saved = "-" if proc.returncode == -signal.SIGKILL else "finished first"
    newest = latest_checkpoint(folder)
    stale = len(list(folder.glob(".checkpoint-*.tmp")))
    _finish(folder)
    return {
        "signal": sig.name,
        "step": step,
        "delay_s": round(delay, 4),
        "exit_code": proc.returncode,
        "on_interrupt": saved,
        "resumed_from": None if newest is None else newest.name,
        "stale_temp_files": stale,
        "final": (folder / "final.safetensors").read_bytes(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=10, help="runs per signal (default: 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the delays (default: 0)")
    parser.add_argument("--out", default="crash_injection.json", help="JSON results file")
    args = parser.parse_args(argv)
    if args.child:
        child(args.child)
        return 0
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        reference = Path(tmp) / "reference"
        _finish(reference)
        expected = (reference / "final.safetensors").read_bytes()
        results = []
        for i in range(2 * args.runs):
            sig = signal.SIGKILL if i % 2 == 0 else signal.SIGINT
            step, delay = rng.randint(1, STEPS - 1), rng.uniform(0.0, 0.05)
            run = one_run(Path(tmp) / f"run{i}", sig, step, delay)
            run["bitwise_equal"] = run.pop("final") == expected
            results.append(run)
    print(f"{2 * args.runs} interrupted runs of {STEPS} steps each")
    print(
        f"{'signal':8} {'step':>5} {'+ms':>4}  {'on interrupt':28} {'resumed from':42} stale  equal"
    )
    for r in results:
        print(
            f"{r['signal']:8} {r['step']:5} {1000 * r['delay_s']:4.0f}  {r['on_interrupt']:28} "
            f"{r['resumed_from'] or '(fresh start)':42} {r['stale_temp_files']:5}  "
            f"{r['bitwise_equal']}"
        )
    equal = sum(bool(r["bitwise_equal"]) for r in results)
    print(f"bitwise equal to the uninterrupted run: {equal} of {len(results)}")
    summary = {"config": RUN, "steps": STEPS, "runs": results, "equal": equal}
    write_json(args.out, summary)
    return 0 if equal == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
