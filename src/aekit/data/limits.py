"""Input files checked before allocation: what a header claims must fit what is there.

A compressed file (``.npz``, gzipped IDX or Matrix Market) can claim gigabytes in a few
kilobytes, and a header can claim a shape its file does not hold. The readers ask here,
from the headers alone, before unpacking anything: the claimed size must fit
:func:`max_input_bytes` (the memory available, or ``AEKIT_MAX_INPUT_BYTES``), and an array
must not claim more bytes than its file holds. Each refusal is one
:class:`~aekit.errors.DataError`.
"""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError

__all__ = [
    "MAX_INPUT_ENV",
    "check_npz",
    "check_unpacked_size",
    "declared_bytes",
    "max_input_bytes",
    "npy_header",
]

MAX_INPUT_ENV = "AEKIT_MAX_INPUT_BYTES"


def max_input_bytes() -> int:
    """The most bytes the arrays read from one compressed file may unpack to.

    ``AEKIT_MAX_INPUT_BYTES`` (an integer) where set; else the memory available now (Linux
    ``MemAvailable``; elsewhere the physical memory).
    """
    text = os.environ.get(MAX_INPUT_ENV)
    if text is not None:
        try:
            return max(int(text), 0)
        except ValueError:
            raise DataError(f"{MAX_INPUT_ENV}={text!r:.40} is not a number of bytes") from None
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # no sysconf: no limit known
        return 2**63


def check_unpacked_size(path: Path, nbytes: int, what: str) -> None:
    """Refuse ``what`` in ``path`` if it would unpack to more than :func:`max_input_bytes`."""
    limit = max_input_bytes()
    if nbytes > limit:
        raise DataError(
            f"{path}: {what} would unpack to {nbytes:,} bytes, more than the {limit:,} "
            f"available (set {MAX_INPUT_ENV} to change the limit)"
        )


def npy_header(handle: Any, path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype a ``.npy`` header declares (nothing more is read)."""
    from numpy.lib import format as npy_format

    try:
        version = npy_format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = npy_format.read_array_header_1_0(handle)
        else:
            shape, _, dtype = npy_format.read_array_header_2_0(handle)
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise DataError(f"{path} is not a numeric .npy file ({exc})") from exc
    return shape, dtype


def declared_bytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    """Bytes of an array of ``shape`` and ``dtype``, in Python integers (no overflow)."""
    return math.prod(int(n) for n in shape) * dtype.itemsize


def check_npz(path: Path) -> None:
    """Refuse a ``.npz`` archive whose arrays would unpack beyond what they or memory hold.

    Reads only the zip directory and each array's ``.npy`` header: the archive's declared
    unpacked size must fit :func:`max_input_bytes` (a zip bomb does not), and no array may
    declare more bytes than its member holds.

    Raises
    ------
    DataError
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            check_unpacked_size(path, sum(m.file_size for m in members), "its arrays")
            for member in members:
                if not member.filename.endswith(".npy"):
                    continue
                with archive.open(member) as handle:
                    shape, dtype = npy_header(handle, path)
                    held = member.file_size - handle.tell()
                if not dtype.hasobject and declared_bytes(shape, dtype) > held:
                    raise DataError(
                        f"{path}: array {member.filename!r} declares shape {shape} of {dtype}, "
                        f"more than the {held:,} bytes it holds"
                    )
    except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise DataError(f"{path} is not a readable .npz file ({exc})") from exc
