"""What the benchmark scripts share: the environment record and writing the results JSON.

Each script runs as ``python benchmarks/NAME.py`` (its folder first on ``sys.path``) and
imports this module as ``_common``. :func:`environment` gives the named fields of the
machine and software a result was measured on, one definition each; :func:`write_json`
writes a results file whole or not at all.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aekit.files.atomic import atomic_write

__all__ = ["FIELDS", "environment", "versions", "write_json"]


def versions() -> dict[str, str]:
    """The versions of aekit, torch, scikit-learn and Python."""
    import sklearn
    import torch

    import aekit

    return {
        "aekit": aekit.__version__,
        "torch": torch.__version__,
        "sklearn": sklearn.__version__,
        "python": platform.python_version(),
    }


def _torch_version() -> str:
    import torch

    return torch.__version__


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _cpu_flags() -> dict[str, bool]:
    """Which of the CPU flags that decide bf16 and fp32 speed this machine has (Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])  # fmt: skip
    return {name: name in flags for name in ("avx2", "avx512f", "avx512_bf16", "amx_bf16")}


# One definition of each environment field (torch is imported only by the fields that need it).
FIELDS: dict[str, Callable[[], Any]] = {
    "versions": versions,  # aekit, torch, sklearn, python
    "torch": _torch_version,
    "python": platform.python_version,
    "threads": _torch_threads,  # torch's intra-op threads at the time of the record
    "cpus": lambda: len(os.sched_getaffinity(0)),  # the CPUs this process may run on
    "cpu": lambda: platform.processor() or platform.machine(),
    "machine": platform.machine,
    "platform": platform.platform,
    "cpu_flags": _cpu_flags,  # avx2, avx512f, avx512_bf16, amx_bf16: bf16 has hardware or not
}


def environment(*names: str) -> dict[str, Any]:
    """The named :data:`FIELDS` of this machine and its software, in the order given.

    Raises
    ------
    KeyError
        If a name is not one of :data:`FIELDS`.
    """
    unknown = [name for name in names if name not in FIELDS]
    if unknown:
        raise KeyError(f"unknown environment field(s) {unknown}: expected some of {list(FIELDS)}")
    return {name: FIELDS[name]() for name in names}


def write_json(path: Path | str, data: Any, *, indent: int = 2) -> Path:
    """Write ``data`` as JSON (ending in a newline) to ``path`` atomically; print where.

    The parent folders are made as needed; a reader never sees a half-written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, (json.dumps(data, indent=indent) + "\n").encode())
    print(f"wrote {path}")
    return path
