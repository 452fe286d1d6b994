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
from aekit.files.layouts import SAVED_NAMES
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


# A refit is all or nothing (issue 24): files.atomic_folder writes the whole new folder
# beside the old one and swaps it in; a process killed (SIGKILL, simulated by os._exit in a
# forked child) at any file-system step leaves the old folder or the new one, file for file.

OLD_FIT = {"config.json": b"old config", "weights.safetensors": b"old weights", "fit.json": b"1"}
NEW_FIT = {"config.json": b"new config", "weights.safetensors": b"new", "history.json": b"2"}
KEPT = {".aekit.lock": b"held", "ck/checkpoint.safetensors": b"a checkpoint", "notes": b"mine"}
DROPPED = {"loss.png": b"a plot of the old fit"}  # a file the new contents do not write
STEPS = ["os.rename", "os.replace", "os.link", "os.symlink", "os.fsync", "shutil.rmtree"]


def _write_fit(folder, files):
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)


def _killed_at(step, write, steps=STEPS, exchange=True):
    """Run ``write()`` in a forked child killed at its ``step``-th file-system step (os._exit
    without cleanup, as SIGKILL); True if the child was killed, False if it finished."""
    import aekit.files.atomic as atomic

    pid = os.fork()
    if pid == 0:  # the child: count steps, die at the chosen one
        try:
            count = [0]

            def counted(real):
                def step_then(*args, **kwargs):
                    count[0] += 1
                    if count[0] == step:
                        os._exit(137)
                    return real(*args, **kwargs)

                return step_then

            for dotted in steps:
                module, name = dotted.split(".")
                owner = {"os": os, "shutil": shutil}[module]
                setattr(owner, name, counted(getattr(owner, name)))
            atomic._exchange = counted(atomic._exchange if exchange else lambda a, b: False)
            write()
        except BaseException:
            os._exit(1)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code in (0, 137), f"the child failed at step {step}"
    return code == 137


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
@pytest.mark.parametrize("first_save", [False, True], ids=["refit", "first-save"])
def test_a_folder_replaced_and_killed_at_any_step_is_the_old_or_the_new(
    tmp_path, exchange, first_save
):
    from aekit.files.atomic import atomic_folder, recover_folder

    target = tmp_path / "m"

    def write():
        with atomic_folder(target, SAVED_NAMES) as staged:
            _write_fit(staged, NEW_FIT)

    old_folder = {} if first_save else {**OLD_FIT, **KEPT, **DROPPED}
    new = {**NEW_FIT, **({} if first_save else KEPT)}
    outcomes = set()
    for step in range(1, 100):
        shutil.rmtree(tmp_path, ignore_errors=True)
        tmp_path.mkdir()
        if not first_save:
            target.mkdir()
            _write_fit(target, old_folder)
        killed = _killed_at(step, write, exchange=exchange)
        if not target.exists() and not first_save:  # killed between the fallback's renames:
            recover_folder(target)  # the next writer (or this) brings the old folder back
        found = {str(k): v for k, v in snapshot(target).items()} if target.exists() else {}
        assert found in (old_folder, new), f"killed at step {step}: {sorted(found)}"
        outcomes.add("new" if found == new else "old")
        with atomic_folder(target, SAVED_NAMES) as staged:  # the next run cleans what the kill left
            _write_fit(staged, NEW_FIT)
        assert [p.name for p in tmp_path.iterdir()] == ["m"]
        if not killed:
            break
    assert not killed and outcomes == {"old", "new"}


def _fit_files(folder):
    """The files of a fit (a plot's bytes vary between runs; a killed run's lock file stays)."""
    skip = (".png", ".lock")
    return {str(k): v for k, v in snapshot(folder).items() if k.suffix not in skip}


def _fit_argv(tmp_path, data, seed):
    """A fit into ``tmp_path/m`` that may replace the model there (a refit: ``--overwrite``)."""
    return ["fit", str(data), "--code-dim", "2", "--epochs", "3", "--seed", str(seed), "-o",
            str(tmp_path / "m"), "--overwrite"]  # fmt: skip


@pytest.mark.slow  # 24 fits, each killed at another step
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_refit_killed_at_any_step_of_its_save_leaves_the_old_fit_or_the_new(
    tmp_path, digits, capsys
):
    """``aekit fit -o M`` over a fitted M, SIGKILLed at each rename or link of its save:
    M is the old fit or the new one, file for file (never new weights beside the old
    fit.json), and the model in it loads."""
    np.save(tmp_path / "a.npy", digits[:120])
    np.save(tmp_path / "b.npy", digits[120:240])
    target, pristine = tmp_path / "m", tmp_path / "old"
    assert main(_fit_argv(tmp_path, tmp_path / "b.npy", 2)) == 0
    new_fit = _fit_files(target)
    shutil.rmtree(target)
    assert main(_fit_argv(tmp_path, tmp_path / "a.npy", 1)) == 0
    shutil.copytree(target, pristine)
    old_fit = _fit_files(pristine)
    # config.json and history.json record the epochs' times: equal up to those
    same = ("fit.json", "holdout.npy", "weights.safetensors")
    outcomes = []
    for step in range(1, 60):
        shutil.rmtree(target)
        shutil.copytree(pristine, target)
        argv = _fit_argv(tmp_path, tmp_path / "b.npy", 2)
        steps = STEPS  # every rename, link, fsync and removal: before and after the swap
        killed = _killed_at(step, lambda argv=argv: main(argv), steps=steps)
        found = _fit_files(target)
        is_new = found.keys() == new_fit.keys() and all(found[k] == new_fit[k] for k in same)
        assert found == old_fit or is_new, f"killed at step {step}: {sorted(found)}"
        outcomes.append("new" if is_new else "old")
        load(target)  # and its config names the checksum of the weights beside it
        if not killed:
            break
    capsys.readouterr()
    assert not killed and {"old", "new"} == set(outcomes) and len(outcomes) >= 20
    assert not list(tmp_path.glob(".m.*"))  # the last run removed what the kills left


def test_a_folder_swapped_in_under_a_lock_is_still_locked(tmp_path):
    import fcntl

    from aekit.files import folder_lock, lock_path
    from aekit.files.atomic import atomic_folder

    target = tmp_path / "m"
    _write_fit(target, {**OLD_FIT, "notes.txt": b"the user's own file"})
    with folder_lock(target):
        with atomic_folder(target, SAVED_NAMES) as staged:
            _write_fit(staged, NEW_FIT)
        fd = os.open(lock_path(target), os.O_RDWR)  # the held lock's file, beside the folder
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    # the old fit's files go, the user's own file stays
    assert sorted(p.name for p in target.iterdir()) == sorted([*NEW_FIT, "notes.txt"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # the lock went with its holder


def test_a_first_fit_on_a_full_disk_leaves_no_folder(tmp_path, digits, refuse, capsys):
    np.save(tmp_path / "a.npy", digits[:120])
    refuse(errno.ENOSPC, after=1)  # the weights fit, the config does not
    assert main(_fit_argv(tmp_path, tmp_path / "a.npy", 1)) == 1
    assert "no space left" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy"]


def test_a_refit_on_a_full_disk_keeps_the_old_fit_whole(tmp_path, digits, refuse, capsys):
    np.save(tmp_path / "a.npy", digits[:120])
    assert main(_fit_argv(tmp_path, tmp_path / "a.npy", 1)) == 0
    before = snapshot(tmp_path)
    refuse(errno.ENOSPC, after=3)  # weights, config and history fit; the rest does not
    assert main(_fit_argv(tmp_path, tmp_path / "a.npy", 2)) == 1
    assert "no space left" in capsys.readouterr().err
    assert snapshot(tmp_path) == before and sorted(p.name for p in tmp_path.iterdir()) == [
        "a.npy",
        "m",
    ]


def test_a_folder_reached_through_a_link_is_replaced_and_the_link_kept(tmp_path):
    from aekit.files.atomic import atomic_folder

    real, link = tmp_path / "real", tmp_path / "link"
    _write_fit(real, OLD_FIT)
    link.symlink_to(real, target_is_directory=True)
    with atomic_folder(link, SAVED_NAMES) as staged:
        _write_fit(staged, NEW_FIT)
    assert link.is_symlink() and {str(k): v for k, v in snapshot(link).items()} == NEW_FIT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]


def test_a_fit_into_a_folder_of_the_users_files_keeps_them(tmp_path, digits, capsys):
    """``aekit fit DATA -o DIR`` where DIR holds the data (and other files of the user's):
    they stay; every file the fit writes is one a later save replaces (SAVED_NAMES)."""
    folder = tmp_path / "m"
    folder.mkdir()
    np.save(folder / "a.npy", digits[:120])
    assert main([*_fit_argv(tmp_path, folder / "a.npy", 1)]) == 0, capsys.readouterr().err
    written = {p.name for p in folder.iterdir()} - {"a.npy"}
    assert (folder / "a.npy").is_file() and written and written <= SAVED_NAMES
    np.testing.assert_array_equal(np.load(folder / "a.npy"), digits[:120])


def test_a_save_onto_a_file_is_refused_and_the_file_kept(tmp_path, fitted, digits, capsys):
    # the file was swapped out for the model's folder, overwrite or not: `aekit sae x.npy -o
    # x.npy` deleted the training data
    from aekit.sae import SparseAutoencoder

    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    sae = SparseAutoencoder("topk", code_dim=16, k=2, n_epochs=1).fit(digits[:100])
    saves = (lambda: fitted.save(notes, overwrite=True), lambda: sae.save(notes))
    for save in saves:
        with pytest.raises(OutputError, match="exists and is not a folder"):
            save()
    np.save(tmp_path / "x.npy", digits[:100].astype(np.float32))
    argv = ["sae", str(tmp_path / "x.npy"), "-o", str(tmp_path / "x.npy"), "--code-dim", "16"]
    assert main([*argv, "--k", "2"]) == 1
    assert "exists and is not a folder" in capsys.readouterr().err
    assert notes.read_text() == "mine" and np.load(tmp_path / "x.npy").shape == (100, 64)


def test_a_file_in_the_place_of_an_output_folder_is_named(tmp_path, fitted, capsys):
    # Python's "afile: File exists" was all the message said
    fitted.save(tmp_path / "m")
    (tmp_path / "afile").write_text("mine")
    for out in ("afile/x.onnx", "afile/deeper/x.onnx"):
        assert main(["export", str(tmp_path / "m"), "-o", str(tmp_path / out)]) == 1
        assert f"{tmp_path / 'afile'} is a file, not a folder" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "m"), "-o", str(tmp_path / ".onnx")]) == 2
    assert "must be a NAME.onnx file" in capsys.readouterr().err
    assert (tmp_path / "afile").read_text() == "mine"
