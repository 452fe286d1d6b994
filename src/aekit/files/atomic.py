"""Atomic file writes: a file appears complete at its path, or not at all.

Every file aekit writes goes through here. A write that the file system refuses because it
is full, read-only or forbidden (``ENOSPC``, ``EDQUOT``, ``EROFS``, ``EACCES``, ``EPERM``)
becomes one :class:`~aekit.errors.OutputError` naming the path; the file that was there
before stays as it was, and no temporary file is left behind. :func:`atomic_files` writes
several files of one folder (a model's config and weights) so that either all of them are
replaced or none is; :func:`atomic_folder` replaces a whole folder (a refit's model, record,
history and plots) so that a kill at any moment leaves the old folder or the new one.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import BinaryIO

from ..errors import DataError, OutputError

__all__ = [
    "atomic_file",
    "atomic_files",
    "atomic_folder",
    "atomic_write",
    "check_writable_folder",
    "output_error",
    "recover_folder",
    "refuse_non_folder",
    "refused_write",
]

# What a file system says when it refuses a write for good, and how a user should read it.
_REFUSALS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EISDIR: "a folder is in its place",
}


def refused_write(exc: BaseException) -> bool:
    """True when ``exc`` is the file system refusing a write (full, read-only, forbidden)."""
    return isinstance(exc, OSError) and exc.errno in _REFUSALS


def output_error(path: str | os.PathLike[str], exc: OSError) -> OutputError:
    """The one error for a write to ``path`` the file system refused with ``exc``."""
    reason = _REFUSALS.get(exc.errno or 0) or exc.strerror or str(exc)
    error = OutputError(f"cannot write {path}: {reason}")
    error.errno = exc.errno  # still an OSError with its errno, for code that checks it
    return error


def _make_parent(target: Path) -> None:
    """Create ``target``'s folder and the missing ones above it.

    Raises
    ------
    OutputError
        Where a file stands in the place of one of them (Python's "File exists").
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        above = (target.parent, *target.parent.parents)
        in_the_way = next((p for p in above if p.is_file()), target.parent)
        raise OutputError(f"cannot write {target}: {in_the_way} is a file, not a folder") from exc


@contextlib.contextmanager
def _translated(path: Path) -> Iterator[None]:
    """Turn a refused write inside the block into :func:`output_error`."""
    try:
        yield
    except OutputError:
        raise
    except OSError as exc:
        if not refused_write(exc):
            raise
        raise output_error(path, exc) from exc


@contextlib.contextmanager
def _temporary(target: Path) -> Iterator[tuple[BinaryIO, str]]:
    """A temporary file beside ``target``: flushed to disk and kept if the block succeeds.

    Yields the open file and its path; on an exception the file is removed. The caller
    renames it over ``target`` (:func:`_replace`).
    """
    _make_parent(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes 0600; give the usual umask-based mode
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            yield handle, tmp
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _replace(tmp: str, target: Path) -> None:
    """Rename ``tmp`` over ``target``; remove it if that fails."""
    try:
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A binary file that appears at ``path`` complete, or not at all.

    What the block writes goes to a temporary file in the same folder; when the block ends
    without an exception the file is flushed to disk (fsync) and renamed over ``path``, and
    the folder entry is synced too. On an exception the temporary file is removed, and an
    older file at ``path`` stays as it was.

    Raises
    ------
    OutputError
        If the file system refuses the write (full, read-only, forbidden); names ``path``.
    """
    target = Path(path)
    with _translated(target):
        with _temporary(target) as (handle, tmp):
            yield handle
        _replace(tmp, target)
    _fsync_dir(target.parent)


@contextlib.contextmanager
def atomic_files(folder: str | os.PathLike[str]) -> Iterator[Callable[[str, bytes], None]]:
    """Write several files of ``folder`` so that all of them are replaced, or none is.

    The block gets ``put(name, data)``. Each file goes to a temporary file, flushed to disk;
    only when the block ends without an exception are they renamed over their names, in the
    order they were put (renames take no space: a full disk stops the writes before any file
    is replaced). On an exception every temporary file is removed.

    Raises
    ------
    OutputError
        If the file system refuses a write; names the file.
    """
    folder = Path(folder)
    staged: list[tuple[str, Path]] = []

    def put(name: str, data: bytes) -> None:
        with _translated(folder / name), _temporary(folder / name) as (handle, tmp):
            handle.write(data)
        staged.append((tmp, folder / name))

    try:
        yield put
        while staged:
            tmp, target = staged[0]
            with _translated(target):
                os.replace(tmp, target)
            staged.pop(0)
    finally:
        for tmp, _ in staged:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    _fsync_dir(folder)


_NEW, _OLD = ".aekit-new-", ".aekit-old-"  # temporary folders beside a target: .NAME.aekit-...


def refuse_non_folder(target: str | os.PathLike[str]) -> None:
    """Refuse a folder's path where something else is (a file the folder would replace).

    Raises
    ------
    OutputError
        If ``target`` exists and is not a folder (nor a link to one).
    """
    if os.path.lexists(target) and not os.path.isdir(target):
        raise OutputError(
            f"{target} exists and is not a folder: aekit saves a folder there, which would "
            "replace it; choose another path"
        )


@contextlib.contextmanager
def atomic_folder(
    target: str | os.PathLike[str], replaced: Collection[str] = frozenset()
) -> Iterator[Path]:
    """A whole folder that appears at ``target`` complete, or not at all.

    The block gets an empty temporary folder beside ``target`` and writes every file there.
    When it ends without an exception, the entries of the old ``target`` that the block did
    not write are hard-linked into it (a checkpoint folder, the user's own files), except
    those named in ``replaced``: they belonged to the old contents (an old fit record or
    plot beside new weights would describe another model), and the debris of killed writes
    (``.NAME.*.tmp``). The new folder is flushed to disk and
    takes ``target``'s place in one atomic exchange
    (Linux ``renameat2(RENAME_EXCHANGE)``; elsewhere two renames, and a run killed between
    them gets the old folder back at the next call). The old folder is then removed. So a
    process killed at any moment leaves either the old folder, whole, or the new one, whole;
    on an exception (a full disk) the temporary folder is removed and ``target`` is as it
    was; a first save that fails leaves no folder. Temporary folders left by a killed run
    are removed at the next call for the same target.

    Raises
    ------
    OutputError
        If the file system refuses a write (full, read-only, forbidden); names the path.
    """
    target = Path(target)
    if target.is_symlink():  # a link to the folder: replace the folder, keep the link
        target = target.resolve()
    refuse_non_folder(target)
    with _translated(target):
        _make_parent(target)
        recover_folder(target)
        staged = Path(tempfile.mkdtemp(prefix=f".{target.name}{_NEW}", dir=target.parent))
    leftover: Path | None = staged  # removed at the end: the new folder on failure, else the old
    try:
        with _translated(target), _named_as(staged, target):
            os.chmod(staged, 0o777 & ~_umask())  # mkdtemp makes 0700: the usual mode
            yield staged
            if target.is_dir():
                _link_missing(target, staged, replaced)
            _fsync_dir(staged)
            leftover = _swap_in(staged, target)
        _fsync_dir(target.parent)
    finally:
        if leftover is not None:
            shutil.rmtree(leftover, ignore_errors=True)


@contextlib.contextmanager
def _named_as(staged: Path, target: Path) -> Iterator[None]:
    """An :class:`OutputError` of the block names ``target``, not the temporary ``staged``."""
    try:
        yield
    except OutputError as exc:
        error = type(exc)(str(exc).replace(str(staged), str(target)))
        error.errno = exc.errno
        raise error from exc.__cause__


def recover_folder(target: str | os.PathLike[str]) -> None:
    """Undo what an :func:`atomic_folder` killed midway left beside ``target``.

    A run killed between the two renames of the fallback swap left no folder at ``target``:
    the old folder is renamed back. Temporary folders are removed. :func:`atomic_folder`
    calls this first; only one process may write ``target`` at a time (a folder lock).
    """
    target = Path(target)
    siblings = sorted(target.parent.glob(f".{_glob_escape(target.name)}.aekit-*"))
    old = [p for p in siblings if p.name.startswith(f".{target.name}{_OLD}")]
    if old and not os.path.lexists(target):  # killed between the two renames
        os.rename(old[0], target)
    for path in siblings:
        if path.is_dir() and not path.is_symlink() and path != target:
            shutil.rmtree(path, ignore_errors=True)


def _glob_escape(name: str) -> str:
    """``name`` with the characters :meth:`Path.glob` treats specially escaped."""
    return "".join(f"[{c}]" if c in "*?[]" else c for c in name)


def _link_missing(old: Path, new: Path, replaced: Collection[str]) -> None:
    """Hard-link into ``new`` the entries of ``old`` it lacks, but ``replaced`` and debris."""
    for entry in os.scandir(old):
        folder = entry.is_dir(follow_symlinks=False)
        debris = entry.name.startswith(".") and entry.name.endswith(".tmp")
        if os.path.lexists(new / entry.name) or debris or entry.name in replaced:
            continue
        if folder:
            shutil.copytree(entry.path, new / entry.name, symlinks=True, copy_function=os.link)
        elif entry.is_symlink():
            os.symlink(os.readlink(entry.path), new / entry.name)
        else:
            os.link(entry.path, new / entry.name, follow_symlinks=False)


def _swap_in(staged: Path, target: Path) -> Path | None:
    """Put ``staged`` at ``target``; the old folder's new path (None: there was none)."""
    if not os.path.lexists(target):
        os.rename(staged, target)
        return None
    if _exchange(staged, target):
        return staged
    old = target.with_name(f".{target.name}{_OLD}{staged.name.rsplit('-', 1)[-1]}")
    os.rename(target, old)  # a kill here: the next call renames old back
    os.rename(staged, target)
    return old


def _exchange(a: Path, b: Path) -> bool:
    """Swap ``a`` and ``b`` in one step (Linux ``renameat2``); False where not supported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    renameat2.argtypes += [ctypes.c_uint]
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):  # this file system cannot
        return False
    raise OSError(code, os.strerror(code), str(b))


def atomic_write(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    See :func:`atomic_file`.
    """
    with atomic_file(path) as handle:
        handle.write(data)


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a folder
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def check_writable_folder(folder: str | os.PathLike[str]) -> Path:
    """Raise :class:`DataError` unless ``folder`` is, or can be created as, a writable folder."""
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise DataError(f"cannot write to {folder}: {existing} is not a writable folder")
    return folder
