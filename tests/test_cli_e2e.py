"""The real ``aekit`` command in subprocesses, on small files of every input format."""

import gzip
import json
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aekit.data.formats import read_table
from tests.helpers import chromium

TINY = ["--hidden", "16", "--epochs", "2", "--batch-size", "64", "--device", "cpu"]


def aekit(*args, check=True, **kw):
    proc = subprocess.run(
        [sys.executable, "-m", "aekit", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        **kw,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def files(tmp_path_factory, digits):
    """The same 200 digit images as gzipped IDX (uint8), .npy, .npz, .csv, .tsv, .parquet."""
    folder = tmp_path_factory.mktemp("e2e")
    pixels = np.round(digits[:200] * 255).astype(np.uint8)
    header = bytes([0, 0, 0x08, 3]) + struct.pack(">III", 200, 8, 8)
    with gzip.open(folder / "images-idx3-ubyte.gz", "wb") as handle:
        handle.write(header + pixels.tobytes())
    X = pixels.reshape(200, 64).astype(np.float64)
    names = [f"p{i}" for i in range(64)]
    np.save(folder / "x.npy", X)
    np.savez(folder / "x.npz", X=X)
    for name, sep in (("x.csv", ","), ("x.tsv", "\t")):
        np.savetxt(folder / name, X, delimiter=sep, header=sep.join(names), comments="", fmt="%g")
    pq.write_table(pa.table({n: X[:, i] for i, n in enumerate(names)}), folder / "x.parquet")
    return folder, X


@pytest.fixture(scope="module")
def model(files):
    folder, _ = files
    proc = aekit("fit", folder / "images-idx3-ubyte.gz", "--code-dim", "2", *TINY, "-o",
                 folder / "m")  # fmt: skip
    assert "saved" in proc.stdout and "held-out error" in proc.stdout
    assert "epoch 2/2" in proc.stderr  # plain progress lines: stderr is not a terminal
    return folder / "m"


@pytest.mark.slow  # aekit commands in subprocesses
def test_every_format_in_and_out(files, model):
    """IDX was fitted on; parquet, CSV and TSV go in here, .npz in the report, .npy in Ctrl-C."""
    import aekit as lib

    folder, X = files
    aekit("encode", model, folder / "x.parquet", "-o", folder / "codes.csv")
    aekit("score", model, folder / "x.csv", "-o", folder / "scores.parquet")
    aekit("reconstruct", model, folder / "x.tsv", "-o", folder / "recon.npy")
    ae = lib.load(model)
    codes = read_table(folder / "codes.csv").X
    assert np.allclose(codes, ae.transform(X), atol=1e-6)
    scores = read_table(folder / "scores.parquet")
    assert scores.columns == ["error"] and scores.X.shape == (200, 1)
    recon = np.load(folder / "recon.npy")
    # a row's error: its squared distance to its reconstruction in the model's scaled space
    distance = ((ae.scale_rows(X) - ae.scale_rows(recon)) ** 2).sum(axis=1)
    assert np.allclose(scores.X[:, 0], distance, rtol=1e-4)


@pytest.mark.slow  # aekit commands in subprocesses
def test_error_is_one_line_without_traceback(files, model):
    folder, _ = files
    proc = aekit("encode", model, folder / "x.npy", "-o", folder / "codes.xlsx", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"aekit: error: cannot write {folder / 'codes.xlsx'}: unknown output format '.xlsx' "
        "(expected .npy, .npz, .csv, .tsv, .parquet)"
    ]
    assert not (folder / "codes.xlsx").exists()


@pytest.mark.slow  # aekit commands in subprocesses
def test_ctrl_c_exits_130_with_a_resume_hint(tmp_path, digits):
    np.save(tmp_path / "x.npy", digits)
    cmd = [sys.executable, "-m", "aekit", "fit", str(tmp_path / "x.npy"), "--code-dim", "2",
           "--hidden", "16", "--epochs", "500", "--batch-size", "16", "--patience", "0",
           "--device", "cpu", "-o", str(tmp_path / "m"),
           "--checkpoint-dir", str(tmp_path / "c")]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            lines.append(proc.stderr.readline())
            if lines[-1].startswith("epoch 1/500"):
                break
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, "".join(lines) + rest
    last = rest.strip().splitlines()[-1]
    assert last.startswith("aekit: interrupted; checkpoint in") and last.endswith("--resume")
    assert "Traceback" not in rest
    assert sum("resume" in line for line in rest.splitlines()) == 1  # one hint: the command's
    assert list((tmp_path / "c").glob("checkpoint-*.safetensors"))
    assert not (tmp_path / "m").exists()


_PROBE = """<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const bad = imgs.filter((i) => !(i.complete && i.naturalWidth > 0));
  document.body.setAttribute("data-probe", "images " + imgs.length + " broken " + bad.length);
  console.log("probe done");
});
</script>"""


@pytest.mark.slow  # aekit commands in subprocesses
@pytest.mark.browser  # conftest skips it, saying why, where there is no chromium
def test_report_renders_in_headless_chromium(files, model, tmp_path):
    """The page loads, every image decodes, and the page logs nothing to the console."""
    folder, _ = files
    aekit("report", model, folder / "x.npz", "-o", tmp_path / "r")
    page = (tmp_path / "r" / "index.html").read_text()
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["n_test"] == 20
    # A copy with a probe script: the report itself has none.
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", _PROBE + "</body>"))
    proc = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
         "--v=0", "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert 'data-probe="images 5 broken 0"' in proc.stdout, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert len(console) == 1 and '"probe done"' in console[0], console


_HELP = """
import argparse, json, sys
from aekit.cli import main
from aekit.cli.parser import build_parser

sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
codes = {name: main([name, "--help"]) for name in sub.choices}
codes["aekit"] = main(["--help"])
heavy = sorted(name for name in ("torch", "sklearn") if name in sys.modules)
print(json.dumps({"codes": codes, "heavy": heavy}))
"""


def test_help_imports_neither_torch_nor_sklearn():
    """``aekit --help`` and every ``aekit COMMAND --help`` answer without the heavy imports."""
    proc = subprocess.run(
        [sys.executable, "-c", _HELP], capture_output=True, text=True, check=True, timeout=60
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    commands = [
        "fit",
        "encode",
        "reconstruct",
        "score",
        "export",
        "impute",
        "sae",
        "compare",
        "report",
    ]
    assert result["codes"] == dict.fromkeys([*commands, "demo", "aekit"], 0)
    assert result["heavy"] == []


def test_import_stays_light():
    code = "import sys, aekit, aekit.cli; print('matplotlib' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False"
