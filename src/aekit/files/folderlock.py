"""One writer per folder: an advisory lock that a second run is refused by, with its holder.

A run that writes a folder (``aekit fit --out``, a checkpoint folder, a model save) holds
:func:`folder_lock` on it: an exclusive ``flock`` on the lock file *beside* the folder,
``.NAME.aekit.lock`` in its parent (:func:`lock_path`), which holds the holder's process id,
host and start time. Beside, not inside: taking the lock creates no folder, so a first save
that fails or is killed leaves no half folder (the whole folder appears at once, see
:func:`~aekit.files.atomic.atomic_folder`), and swapping a new folder in does not touch the
lock. A second process asking for the same folder gets :class:`~aekit.errors.FolderInUseError`
naming the holder, at once rather than after its own run. The kernel drops the lock when its
holder dies, however it dies (``SIGKILL`` included), so a restarted run, an elastic restart
under ``torchrun`` among them, takes it again; the holder removes the file when it lets go
(a killed holder's empty-handed file is reused, then removed, by the next run). Inside one
process the lock is re-entrant (``aekit fit`` holds its output folder, then saves the model
into it).

``flock`` is advisory and local: it keeps aekit runs on one machine (or on a file system
that forwards ``flock``, as NFSv4 and Lustre do) apart, not other programs.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import FolderInUseError
from .atomic import atomic_folder, output_error, refused_write
from .layouts import SAVED_NAMES

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no locking
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "folder_lock", "lock_path", "saved_folder"]

LOCK_NAME = ".aekit.lock"  # the lock of FOLDER is PARENT/.FOLDER.aekit.lock

_HELD: dict[str, list[int]] = {}  # real path of a locked folder -> [fd, depth], this process
_GUARD = threading.Lock()
_STAGED: contextvars.ContextVar[Path | None] = contextvars.ContextVar("staged", default=None)


def lock_path(folder: str | os.PathLike[str]) -> Path:
    """The lock file of ``folder``: ``.NAME.aekit.lock`` beside it, links to it resolved."""
    real = Path(os.path.realpath(folder))
    return real.parent / f".{real.name}{LOCK_NAME}"


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the lock on ``folder`` for the block; ``folder`` itself is not created.

    Parent folders it creates for the lock file go again if left empty.

    Raises
    ------
    FolderInUseError
        If another process holds it; the message names the holder.
    OutputError
        If the lock file beside the folder cannot be written (read-only, full, forbidden).
    """
    folder = Path(folder)
    if fcntl is None:
        yield folder
        return
    path = lock_path(folder)
    created = _make_parents(path.parent)  # removed again if the run leaves them empty
    key = str(path)
    try:
        with _GUARD:
            held = _HELD.get(key)
            if held is None:
                held = _HELD[key] = [_acquire(folder, path), 0]
            held[1] += 1
    except BaseException:
        _remove_empty(created)
        raise
    try:
        yield folder
    finally:
        with _GUARD:
            held[1] -= 1
            if held[1] == 0:
                del _HELD[key]
                _release(held[0], path)
                _remove_empty(created)


@contextlib.contextmanager
def saved_folder(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """A save's whole folder: held (:func:`folder_lock`) and written all or nothing.

    The block writes every file into the temporary folder it gets, beside ``folder``, which
    then takes ``folder``'s place at once (:func:`~aekit.files.atomic.atomic_folder`): a
    failed or killed save leaves the old folder, or for a first save none. The old folder's
    saved files the block did not write go (:data:`~aekit.files.layouts.SAVED_NAMES`), other
    entries are kept (a checkpoint folder, the user's files). A save inside
    the block into the staged folder (an ensemble's members) writes there directly.
    """
    outer = _STAGED.get()
    if outer is not None and Path(os.path.realpath(folder)).is_relative_to(outer):
        yield Path(folder)  # a save inside a save (an ensemble's member): already staged
        return
    with folder_lock(folder), atomic_folder(folder, SAVED_NAMES) as staged:
        token = _STAGED.set(Path(os.path.realpath(staged)))
        try:
            yield staged
        finally:
            _STAGED.reset(token)


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; the ones created, deepest first."""
    missing = []
    part = folder
    while not part.exists() and part != part.parent:
        missing.append(part)
        part = part.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if refused_write(exc):
            raise output_error(folder, exc) from exc
        raise
    return missing


def _remove_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (deepest first) where they are empty; stop at the first that is not."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def _acquire(folder: Path, path: Path) -> int:
    """Open and lock ``path``; the open file descriptor."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if refused_write(exc):  # named by the folder: its lock beside it is a detail
                raise output_error(folder, exc) from exc
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise FolderInUseError(
                f"{folder} is in use by another aekit run ({holder}); wait for it to end "
                "or write somewhere else"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        # Its last holder may have removed the file between our open and our lock: then the
        # lock is on a file nobody else sees, and the path must be opened again.
        if _same_file(fd, path):
            break
        os.close(fd)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with contextlib.suppress(OSError):  # a full disk: the lock holds, the text is missing
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {stamp}".encode(), 0)
    return fd


def _release(fd: int, path: Path) -> None:
    """Remove the lock file (while still holding it, so no one locks a removed file) and let go."""
    with contextlib.suppress(OSError):
        if _same_file(fd, path):
            os.unlink(path)
    os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        mine, named = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (named.st_dev, named.st_ino)


def _holder(fd: int) -> str:
    """The holder's note in the lock file ('pid 12 on host, since ...')."""
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "holder unknown"
