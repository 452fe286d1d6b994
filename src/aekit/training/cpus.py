"""How many CPUs this process may really use: its affinity and its cgroup's CPU quota.

``os.cpu_count()`` and PyTorch's default thread count see every core of the machine; a process
pinned to some cores (``taskset``, a batch scheduler) or given a CPU quota (a Kubernetes pod
with ``limits: cpu: 2`` on a 64-core node, ``docker run --cpus 2``) may use fewer. More
threads than that wait for each other at every operation. This module reads both limits with
the standard library alone (no torch), so :func:`~aekit.training.distributed.relaunch` can
split them among processes before any of them starts.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "CGROUP_ROOT",
    "SELF_CGROUP",
    "SHARE_ENV",
    "affinity_cpus",
    "cgroup_cpu_limit",
    "process_share",
    "usable_cpus",
]

CGROUP_ROOT = Path("/sys/fs/cgroup")
SELF_CGROUP = Path("/proc/self/cgroup")

# ``aekit fit --nproc N`` sets OMP_NUM_THREADS to each process's share and this variable to
# the same value: an OMP_NUM_THREADS equal to it is aekit's own split, not the user's choice.
SHARE_ENV = "AEKIT_THREAD_SHARE"

_V1_MOUNTS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")  # where cgroup v1's cpu controller lives
_V2_MOUNTS = ("", "unified")  # cgroup v2: the root itself, or beside v1 ("hybrid")


def affinity_cpus() -> int:
    """The CPUs this process may be scheduled on (``os.sched_getaffinity``; all where absent)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS and Windows have no affinity call
        return max(1, os.cpu_count() or 1)


def cgroup_cpu_limit(root: Path = CGROUP_ROOT, self_cgroup: Path = SELF_CGROUP) -> float | None:
    """The CPUs this process's cgroup quota allows (a fraction is possible); None without one.

    Reads cgroup v2's ``cpu.max`` (``"200000 100000"``: 2 CPUs; ``"max 100000"``: none) and
    v1's ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (a quota of -1: none), in the process's
    own cgroup (``/proc/self/cgroup``) and every cgroup above it: the tightest one counts. In a
    container whose cgroup namespace hides that path, the mounted root is its own cgroup.

    Parameters
    ----------
    root : Path, default=Path("/sys/fs/cgroup")
        Where the cgroup file systems are mounted.
    self_cgroup : Path, default=Path("/proc/self/cgroup")
        The process's cgroup membership, one ``id:controllers:path`` line each hierarchy.

    Returns
    -------
    float or None
    """
    try:
        lines = self_cgroup.read_text().splitlines()
    except OSError:
        return None
    limits: list[float] = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            mounts, read = _V2_MOUNTS, _read_cpu_max
        elif "cpu" in controllers.split(","):
            mounts, read = _V1_MOUNTS, _read_cfs_quota
        else:
            continue
        for mount in mounts:
            for folder in _own_and_parents(root / mount if mount else root, path):
                limit = read(folder)
                if limit is not None:
                    limits.append(limit)
    return min(limits, default=None)


def usable_cpus(root: Path = CGROUP_ROOT, self_cgroup: Path = SELF_CGROUP) -> int:
    """The CPUs this process may really use: its affinity, capped by its cgroup's quota.

    A fractional quota rounds down (1.5 CPUs: one thread never waits on a throttled one),
    but never below 1.
    """
    cpus = affinity_cpus()
    limit = cgroup_cpu_limit(root, self_cgroup)
    if limit is not None:
        cpus = min(cpus, max(1, math.floor(limit + 1e-6)))
    return cpus


def process_share(usable: int, processes: int) -> int:
    """One process's share of ``usable`` CPUs among ``processes`` on the same machine (>= 1)."""
    return max(1, usable // max(1, processes))


def _own_and_parents(mount: Path, path: str) -> Iterator[Path]:
    """The cgroup folder of ``path`` under ``mount`` and those above it, up to ``mount``."""
    if not mount.is_dir():
        return
    folder = mount / path.lstrip("/")
    if not folder.is_dir():  # a cgroup namespace: the mount is the process's own cgroup
        yield mount
        return
    while True:
        yield folder
        if folder == mount or mount not in folder.parents:
            return
        folder = folder.parent


def _read_cpu_max(folder: Path) -> float | None:
    try:
        fields = (folder / "cpu.max").read_text().split()
        if not fields or fields[0] == "max":
            return None
        quota, period = float(fields[0]), float(fields[1]) if len(fields) > 1 else 100_000.0
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def _read_cfs_quota(folder: Path) -> float | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        if quota <= 0:
            return None
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if period > 0 else None
