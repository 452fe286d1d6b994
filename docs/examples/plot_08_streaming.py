"""
Training on a file larger than memory
=====================================

``Autoencoder.fit("big.npy")`` streams the file from disk in blocks and never loads it
whole. To show it, this example writes a ``.npy`` of jittered digits (51 MB in CI mode, 256 MB
otherwise), then, in a fresh Python process so that its peak memory is this fit's
alone, measures the process's peak resident memory before and after fitting on the file —
streamed, then loaded into memory for comparison.

``AEKIT_DOCS_QUICK=1`` (how the test suite runs this gallery) writes the smaller file.
The peak is read from ``/proc/self/status`` (Linux) or :mod:`resource` (macOS).
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

QUICK = os.environ.get("AEKIT_DOCS_QUICK", "") not in ("", "0")
rows = 200_000 if QUICK else 1_000_000  # × 64 float32 columns: 51 MB or 256 MB

folder = Path(tempfile.mkdtemp())
path = folder / "digits-big.npy"
digits = (load_digits().data / 16.0).astype(np.float32)
big = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, 64))
rng = np.random.default_rng(0)
for start in range(0, rows, 50_000):  # written in slices: this process never holds it all
    stop = min(rows, start + 50_000)
    chunk = digits[rng.integers(0, len(digits), stop - start)]
    big[start:stop] = np.clip(chunk + rng.normal(0, 0.05, chunk.shape), 0, 1)
big.flush()
del big
print(f"{path.name}: {rows:,} rows × 64 float32 = {path.stat().st_size / 2**20:.0f} MiB")

# %%
# The measurement, in a fresh process
# -----------------------------------
# A warm-up fit first, so that the baseline includes PyTorch and its allocator; then one
# epoch streamed from the file (1 MiB blocks, shuffled within windows of 4 blocks), then
# the same file read into memory and fitted.
PROBE = """
import json, resource, sys
import numpy as np
from aekit import Autoencoder
from aekit.data.stream import NpyRows

def peak_mib():
    try:  # Linux: this process's own high-water mark (ru_maxrss survives exec)
        with open("/proc/self/status") as status:
            line = next(s for s in status if s.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    except OSError:  # macOS: ru_maxrss, in bytes there
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

path = sys.argv[1]
settings = dict(code_dim=8, hidden=(64,), epochs=1, batch_size=1024, random_state=0)
Autoencoder(**settings).fit(np.random.default_rng(0).random((2048, 64), dtype=np.float32))
base = peak_mib()
streamed = Autoencoder(**settings).fit(NpyRows(path, block_rows=4096, window_blocks=4))
after_stream = peak_mib()
X = np.load(path)
in_memory = Autoencoder(**settings).fit(X)
after_memory = peak_mib()
print(json.dumps({"base": base, "streamed": after_stream - base,
                  "in_memory": after_memory - after_stream,
                  "stop": streamed.history_.stop_reason}))
"""
out = subprocess.run(
    [sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, check=True
)
found = json.loads(out.stdout.strip().splitlines()[-1])
size = path.stat().st_size / 2**20
print(f"file size:                            {size:7.0f} MiB")
print(f"peak memory added by the streamed fit: {found['streamed']:7.0f} MiB")
print(f"peak memory added by np.load + fit:    {found['in_memory']:7.0f} MiB")
print(f"(baseline after importing torch and a warm-up fit: {found['base']:.0f} MiB)")

# %%
# Memory, compared
# ----------------
fig, ax = plt.subplots(figsize=(6, 2.8))
labels = ["file on disk", "streamed fit", "in-memory fit"]
values = [size, found["streamed"], found["in_memory"]]
ax.barh(labels, values, color=["tab:grey", "tab:green", "tab:red"])
for i, v in enumerate(values):
    ax.text(v, i, f" {v:.0f} MiB", va="center")
ax.set(xlabel="MiB (peak resident memory added, or file size)")
ax.invert_yaxis()
fig.tight_layout()
plt.show()
path.unlink()
