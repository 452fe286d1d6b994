"""The adversarial run of issue 24 on a small budget: ``scripts/adversarial.py --quick``.

A few dozen of its generated cases (every kind: tampered config, detector and imputer
fields, links, FIFOs and devices in place of files, input bombs, bad DataFrames, other
columns, ONNX metadata, checkpoint files, outputs over their data, byte-order marks, paths
given for rows), each ending with the right answer or one clear
line, none with a traceback, a hang, a wrong answer or a leftover file. The full run is by
hand: ``python scripts/adversarial.py`` (benchmarks/results/adversarial.json).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KINDS = {
    "tampered config.json", "tampered detector.json", "tampered imputer.json",
    "not a regular file", "member linked out", "bomb", "bad DataFrame", "other columns",
    "ONNX metadata", "checkpoint file", "output over data", "byte-order mark", "path for rows",
}  # fmt: skip


@pytest.mark.slow  # a worker process fits three estimators, then runs ~50 cases
def test_the_quick_adversarial_run_has_no_bad_outcome(tmp_path):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "adversarial.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "adversarial.py"), "--quick", "--out", str(out)],
        capture_output=True, text=True, timeout=600, env=env, cwd=ROOT,
    )  # fmt: skip
    result = json.loads(out.read_text())
    bad = [f"{c['kind']} / {c['name']}: {c['why']}" for c in result["cases"] if not c["good"]]
    assert done.returncode == 0 and not bad, (bad, done.stdout[-2000:], done.stderr[-2000:])
    assert set(result["counts"]) == KINDS and result["total"]["tried"] >= 40
    assert result["bomb_peak_rss_mb"] < 1024
