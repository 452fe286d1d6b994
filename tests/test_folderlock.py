"""Two runs, one output folder: the second is refused, naming the first; a dead holder's
lock goes with it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from aekit import FolderInUseError, load
from aekit.cli import main
from aekit.files.folderlock import folder_lock, lock_path

FIT = ["--code-dim", "3", "--hidden", "8", "--epochs", "2", "--batch-size", "32",
       "--seed", "0", "--device", "cpu", "--quiet", "--init", "random"]  # fmt: skip


def test_the_lock_is_reentrant_in_a_process_and_leaves_nothing_behind(tmp_path):
    folder = tmp_path / "new" / "m"
    lock = tmp_path / "new" / ".m.aekit.lock"  # beside the folder, not inside
    assert lock_path(folder) == lock
    with folder_lock(folder):
        note = lock.read_text()
        assert note.startswith(f"pid {os.getpid()} on {socket.gethostname()}, since ")
        assert not folder.exists()  # taking the lock makes no folder
        with folder_lock(folder):  # aekit fit holds its folder, then saves into it
            pass
        assert lock.exists()
    assert not (tmp_path / "new").exists()  # it made the parent, and left it empty: gone
    with folder_lock(folder):
        folder.mkdir()
        (folder / "kept").write_text("x")
    assert [p.name for p in folder.iterdir()] == ["kept"]
    assert [p.name for p in folder.parent.iterdir()] == ["m"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("which", ["model", "detector", "imputer"])
def test_a_first_save_killed_or_failed_leaves_no_folder(tmp_path, which):
    """A save killed (SIGKILL) while writing its files leaves no folder, only hidden
    debris beside it that the next save of that folder removes; a failed one leaves nothing."""
    from unittest import mock

    from aekit import Autoencoder, AutoencoderImputer, AutoencoderOutlierDetector
    from aekit.errors import OutputError
    from tests.helpers import FAST

    X = np.random.default_rng(0).normal(size=(60, 4))
    ae = Autoencoder(code_dim=2, **FAST)
    estimator = {
        "model": lambda: ae.fit(X),
        "detector": lambda: AutoencoderOutlierDetector(ae, n_estimators=2).fit(X),
        "imputer": lambda: AutoencoderImputer(ae, n_estimators=2).fit(X),
    }[which]()
    target = tmp_path / "m"
    pid = os.fork()
    if pid == 0:  # the child dies (as SIGKILL would) at its second file written
        try:
            calls = [0]
            real = os.replace

            def die_at_second(*args, **kwargs):
                calls[0] += 1
                if calls[0] == 2:
                    os._exit(137)
                return real(*args, **kwargs)

            os.replace = die_at_second
            estimator.save(target)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 137
    assert not target.exists()  # hidden debris beside it at most
    assert all(p.name.startswith(".m.") for p in tmp_path.iterdir())
    full = mock.patch("os.replace", side_effect=OSError(28, "No space left on device"))
    with full, pytest.raises(OutputError, match=f"cannot write {target}.*no space left"):
        estimator.save(target)
    assert not target.exists()
    estimator.save(target)  # the next save removes the debris of the killed one
    assert [p.name for p in tmp_path.iterdir()] == ["m"]
    assert load(target).__class__ is type(estimator)


def wait_for(path, process, timeout=120.0):
    """Until ``path`` exists (``process``'s hook made it); fail if ``process`` ends first or
    ``timeout`` seconds pass (the process is killed then)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()[1][-5000:]
        if time.monotonic() > deadline:
            process.kill()
            err = process.communicate()[1][-5000:]
            raise AssertionError(f"{path.name} did not appear within {timeout:.0f} s: {err}")
        time.sleep(0.05)


@pytest.mark.slow  # two aekit fit processes
def test_a_second_run_on_a_held_folder_is_refused_until_the_holder_dies(tmp_path, digits, capsys):
    """Run A holds m/ and ck/ (paused by a hook after its second step). A second fit into
    m/, and one into m2/ checkpointing into ck/, are refused with A's pid and host; when A is
    killed, the lock goes with it and the second run writes m/ whole."""
    data = tmp_path / "x.npy"
    np.save(data, digits[:300].astype(np.float32))
    event = tmp_path / "event"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AEKIT_TEST_WAIT_AT_STEP": f"0:2:{event}"}
    first = ["fit", str(data), *FIT, "--out", str(tmp_path / "m")]
    holder = subprocess.Popen(
        [sys.executable, "-m", "aekit", *first, "--checkpoint-dir", str(tmp_path / "ck")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(event.with_suffix(".reached"), holder)
        who = rf"pid {holder.pid} on {socket.gethostname()}"
        with (
            pytest.raises(FolderInUseError, match=rf"{tmp_path / 'm'} is in use .*\({who}"),
            folder_lock(tmp_path / "m"),
        ):
            pass
        capsys.readouterr()
        assert main(first) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"aekit: error: {tmp_path / 'm'} is in use by another aekit run")
        assert f"pid {holder.pid} on " in err and err.count("\n") == 1
        second = ["fit", str(data), *FIT, "--out", str(tmp_path / "m2")]
        assert main([*second, "--checkpoint-dir", str(tmp_path / "ck")]) == 1
        assert f"{tmp_path / 'ck'} is in use by another aekit run (pid {holder.pid}" in (
            capsys.readouterr().err
        )
        assert not (tmp_path / "m2").exists()  # the refused run left nothing
        assert not (tmp_path / "m").exists() or not any((tmp_path / "m").glob("*.json"))
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.communicate()
    assert main(first) == 0  # a SIGKILLed holder's lock went with it
    assert load(tmp_path / "m").n_iter_ == 2
    assert not lock_path(tmp_path / "m").exists()
