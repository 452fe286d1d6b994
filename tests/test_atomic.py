"""Full disks, read-only and forbidden folders: every save ends with one error naming the path,
the file that was there before intact, and no temporary file left behind.

Two kinds of test: fault injection at the write (always runs), and real file systems, a
64 KiB tmpfs and a read-only remount of one (when the tests run as root and ``mount``
works; they skip with the reason otherwise, which ``-rs`` shows).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import uuid

import numpy as np
import pytest

from aekit import Autoencoder, AutoencoderOutlierDetector, OutputError, load
from aekit.analysis.report import Report
from aekit.cli import main
from aekit.training.checkpoint import read_checkpoint, write_checkpoint
from tests.helpers import FAST

REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
}


def debris(folder):
    """Temporary files left in ``folder`` (and below)."""
    return sorted(p.name for p in folder.rglob(".*.tmp"))


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture()
def refuse(monkeypatch):
    """``refuse(code)``: from now on every file aekit writes fails with ``code`` — at the
    write for ENOSPC (the disk fills up: ``after=n`` lets n more files in first), at the
    open for EROFS and EACCES."""

    def install(code, after=0):
        real_fdopen = os.fdopen
        allowed = [after]  # files that still fit

        class Full:
            def __init__(self, handle):
                self.handle = handle
                self.fits = allowed[0] > 0
                allowed[0] -= 1

            def write(self, data):
                if self.fits:
                    return self.handle.write(data)
                raise OSError(code, os.strerror(code))

            def __getattr__(self, name):
                return getattr(self.handle, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.handle.close()

        if code == errno.ENOSPC:
            monkeypatch.setattr(os, "fdopen", lambda fd, mode: Full(real_fdopen(fd, mode)))
        else:

            def mkstemp(*args, **kwargs):
                raise OSError(code, os.strerror(code), kwargs.get("dir"))

            monkeypatch.setattr("tempfile.mkstemp", mkstemp)

    return install


@pytest.fixture(scope="module")
def fitted(digits):
    return Autoencoder(code_dim=3, hidden=(8,), **FAST).fit(digits[:200])


@pytest.mark.parametrize("code", sorted(REASONS))
def test_a_refused_save_keeps_the_previous_files_and_leaves_no_debris(
    tmp_path, fitted, digits, refuse, code
):
    detector = AutoencoderOutlierDetector(Autoencoder(code_dim=2, **FAST)).fit(digits[:200])
    model, det, ck, report = (tmp_path / name for name in ("m", "d", "ck", "r"))
    fitted.save(model)
    detector.save(det)
    state = {"format": "aekit-checkpoint", "weights": fitted.module_.state_dict()}
    write_checkpoint(ck / "checkpoint.safetensors", state)
    Report("before", {}, [], {}).write(report)
    before = snapshot(tmp_path)
    refuse(code)
    writes = {
        model: lambda: fitted.save(model, overwrite=True),
        det: lambda: detector.save(det, overwrite=True),
        ck / "checkpoint.safetensors": lambda: write_checkpoint(
            ck / "checkpoint.safetensors", state
        ),
        report: lambda: Report("after", {}, [], {}).write(report),
    }
    for where, write in writes.items():
        with pytest.raises(OutputError, match=REASONS[code]) as caught:
            write()
        assert str(where) in str(caught.value)  # names the file (or its folder)
        assert caught.value.errno == code  # still an OSError with its errno
    assert snapshot(tmp_path) == before
    assert debris(tmp_path) == []
    assert load(model).transform(digits[:5]).tolist() == fitted.transform(digits[:5]).tolist()


def test_a_disk_that_fills_between_two_files_of_a_folder_replaces_neither(
    tmp_path, fitted, digits, refuse
):
    """Model, detector and report folders hold two files each: the first fits, the second
    does not, and the folder keeps both old ones (no new weights beside an old config)."""
    detector = AutoencoderOutlierDetector(Autoencoder(code_dim=2, **FAST)).fit(digits[:200])
    other = Autoencoder(code_dim=3, hidden=(8,), **{**FAST, "random_state": 1}).fit(digits[:200])
    fitted.save(tmp_path / "m")
    detector.save(tmp_path / "d")
    Report("before", {}, [], {}).write(tmp_path / "r")
    before = snapshot(tmp_path)
    for write in (
        lambda: other.save(tmp_path / "m", overwrite=True),
        lambda: detector.save(
            tmp_path / "d", overwrite=True
        ),  # its model folder, then its own two files
        lambda: Report("after", {}, [], {}).write(tmp_path / "r"),
    ):
        refuse(errno.ENOSPC, after=1)
        with pytest.raises(OutputError, match="no space left"):
            write()
        assert snapshot(tmp_path) == before and debris(tmp_path) == []


@pytest.mark.parametrize("code", sorted(REASONS))
def test_cli_outputs_that_cannot_be_written_end_with_one_line(
    tmp_path, fitted, digits, refuse, code, capsys
):
    fitted.save(tmp_path / "m")
    np.save(tmp_path / "x.npy", digits[:50])
    codes = tmp_path / "codes.npy"
    assert main(["encode", str(tmp_path / "m"), str(tmp_path / "x.npy"), "-o", str(codes)]) == 0
    before = codes.read_bytes()
    capsys.readouterr()
    refuse(code)
    assert main(["encode", str(tmp_path / "m"), str(tmp_path / "x.npy"), "-o", str(codes)]) == 1
    err = capsys.readouterr().err
    assert err == f"aekit: error: cannot write {codes}: {REASONS[code]}\n"
    assert codes.read_bytes() == before and debris(tmp_path) == []


def test_a_checkpoint_the_disk_refuses_stops_training_with_the_path(tmp_path, digits, refuse):
    ae = Autoencoder(code_dim=3, checkpoint_dir=str(tmp_path / "ck"), **FAST)
    refuse(errno.ENOSPC)
    with pytest.raises(OutputError, match=r"checkpoint-e000001-b000000\.safetensors: no space"):
        ae.fit(digits[:200])
    assert debris(tmp_path) == [] and not list((tmp_path / "ck").glob("checkpoint-*"))


# -- real file systems ---------------------------------------------------------------------


@pytest.fixture()
def tmpfs(tmp_path):
    """A mounted 64 KiB tmpfs (root and a working ``mount`` only; else the test skips)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("real file-system tests need root and mount: fault injection ran instead")
    point = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): fault injection ran")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_a_full_tmpfs_keeps_the_saved_model_whole(tmpfs, fitted, digits):
    """A 64 KiB disk holds the small model, not a 200 KiB one saved over it."""
    fitted.save(tmpfs / "m")
    before = snapshot(tmpfs)
    big = Autoencoder(code_dim=3, hidden=(400,), **{**FAST, "epochs": 1}).fit(digits[:100])
    with pytest.raises(OutputError, match=f"cannot write {tmpfs / 'm'}.*no space left"):
        big.save(tmpfs / "m", overwrite=True)
    assert snapshot(tmpfs) == before and debris(tmpfs) == []
    assert load(tmpfs / "m").transform(digits[:5]).tolist() == fitted.transform(digits[:5]).tolist()
    # a checkpoint (weights and Adam's two moments) does not fit either
    ae = Autoencoder(code_dim=3, hidden=(400,), checkpoint_dir=str(tmpfs / "ck"), **FAST)
    with pytest.raises(OutputError, match=r"checkpoint-e000001-b000000\.safetensors: no space"):
        ae.fit(digits[:100])
    assert debris(tmpfs) == []


def test_a_read_only_mount_refuses_saves_with_one_line(tmpfs, fitted, digits, capsys):
    fitted.save(tmpfs / "m")
    np.save(tmpfs / "x.npy", digits[:20])
    state = {"format": "aekit-checkpoint", "weights": fitted.module_.state_dict()}
    write_checkpoint(tmpfs / "ck" / "checkpoint.safetensors", state)
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    before = snapshot(tmpfs)
    with pytest.raises(OutputError, match=f"{tmpfs / 'm'}.*read-only"):
        fitted.save(tmpfs / "m", overwrite=True)
    with pytest.raises(OutputError, match="read-only"):
        write_checkpoint(tmpfs / "ck" / "checkpoint.safetensors", state)
    capsys.readouterr()
    codes = tmpfs / "codes.npy"
    assert main(["encode", str(tmpfs / "m"), str(tmpfs / "x.npy"), "-o", str(codes)]) == 2
    assert capsys.readouterr().err.count("\n") == 1  # one line, naming the folder
    assert snapshot(tmpfs) == before
    assert read_checkpoint(tmpfs / "ck" / "checkpoint.safetensors")["format"] == "aekit-checkpoint"
