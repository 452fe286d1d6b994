"""Shared fixtures (small deterministic datasets, no files, no network) and marker skips.

Tests marked ``gpu`` need a CUDA GPU and tests marked ``browser`` a Chromium on ``PATH``;
where either is missing they skip with that reason, which ``-ra`` lists at the end of a run.
Helpers that test modules import live in ``tests/helpers.py``, not here.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings
from sklearn.datasets import load_digits

from tests.helpers import DOCS_TIMES, chromium, cuda_available

# Property tests repeat the same examples on every run (no example database, no timing
# deadline on a shared machine); each test picks its own modest max_examples.
settings.register_profile(
    "aekit",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("aekit")


@pytest.fixture(scope="session")
def digits() -> np.ndarray:
    """scikit-learn's bundled 8×8 digits, pixels scaled to [0, 1] (1797 × 64)."""
    return load_digits().data / 16.0


@pytest.fixture(scope="session")
def spectrum() -> tuple[np.ndarray, int]:
    """2000 rows in 20-D with three strong directions and a flat noise floor (eigengap 100)."""
    rng = np.random.default_rng(0)
    d, k = 20, 3
    basis, _ = np.linalg.qr(rng.normal(size=(d, d)))
    scales = np.array([5.0, 4.0, 3.0] + [0.3] * (d - k))
    return (rng.normal(size=(2000, d)) * scales) @ basis.T + 1.0, k


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Run the suite's many tiny trainings on one torch thread.

    Their matrices are too small to gain from threads, and on a busy 2-core machine idle
    worker threads spinning for a core make them tens of times slower.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_collection_modifyitems(config, items):
    """Skip, with a visible reason, the marked tests this machine cannot run."""
    missing = {
        "gpu": None if cuda_available() else "needs a CUDA GPU (PyTorch sees none)",
        "browser": None if chromium() else "needs chromium on PATH (apt-get install chromium)",
    }
    for item in items:
        for marker, reason in missing.items():
            if reason and item.get_closest_marker(marker):
                item.add_marker(pytest.mark.skip(reason=f"{marker}: {reason}"))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto`` (in ``addopts``): one worker per CPU this process may use, at most 8.

    xdist's own count is the machine's cores, blind to a cgroup quota (a 2-CPU CI container
    on a 64-core host would start 64 workers); :func:`aekit.training.cpus.usable_cpus` reads
    the affinity and the quota. Each worker trains on one torch thread (``one_thread``) and
    ``--dist loadfile`` keeps a file's tests, and its module fixtures, on one worker.
    """
    from aekit.training.cpus import usable_cpus

    return max(1, min(usable_cpus(), 8))


def pytest_sessionfinish(session):
    """On an xdist worker, hand the docs build's times to the controller's summary."""
    times = session.config.stash.get(DOCS_TIMES, None)
    if times and hasattr(session.config, "workeroutput"):
        session.config.workeroutput["docs_times"] = times


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """On the xdist controller, keep the docs times a worker sent (``pytest_sessionfinish``)."""
    times = getattr(node, "workeroutput", {}).get("docs_times")
    if times:
        node.config.stash[DOCS_TIMES] = times


def pytest_terminal_summary(terminalreporter, config):
    """Print the docs build's and each gallery example's time when tests/test_docs.py ran."""
    times = config.stash.get(DOCS_TIMES, None)
    if times:
        terminalreporter.write_sep("-", "documentation")
        terminalreporter.write_line(times)
