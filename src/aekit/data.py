"""Reading arrays from files, and row sources the trainer draws batches from.

A *row source* is anything with ``__len__``, ``n_features`` and ``take(indices)`` returning a
float32 tensor of those rows. :class:`TensorRows` serves in-memory data by tensor indexing
(no per-sample collation).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from .errors import DataError, DataTypeError

__all__ = ["RowSource", "TensorRows", "check_finite_rows", "read_array", "read_idx"]


@runtime_checkable
class RowSource(Protocol):
    """What the trainer needs from a dataset."""

    n_features: int

    def __len__(self) -> int:
        """Number of rows."""
        ...

    def take(self, indices: torch.Tensor) -> torch.Tensor:
        """Return the rows at ``indices`` (a 1-D int64 CPU tensor) as float32 on the device."""
        ...


class TensorRows:
    """In-memory rows, optionally kept on the training device.

    Parameters
    ----------
    data : Tensor of shape (n_rows, n_features)
        Converted to float32.
    """

    def __init__(self, data: torch.Tensor) -> None:
        if data.ndim != 2:
            raise DataError(f"expected a 2-D array of rows, got shape {tuple(data.shape)}")
        self.data = data.to(torch.float32)
        self.n_features = int(data.shape[1])

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def to(self, device: torch.device) -> TensorRows:
        """Move the rows to ``device`` once, so batches are sliced there."""
        self.data = self.data.to(device)
        return self

    def take(self, indices: torch.Tensor) -> torch.Tensor:
        """Gather rows by index."""
        return self.data.index_select(0, indices.to(self.data.device))


def check_finite_rows(array: np.ndarray, what: str = "input") -> None:
    """Raise :class:`DataError` naming the first row that holds NaN or infinity."""
    finite = np.isfinite(array)
    if not finite.all():
        bad = np.argwhere(~finite)[0]
        kind = "NaN" if np.isnan(array[tuple(bad)]) else "infinity"
        raise DataError(
            f"{what} contains {kind} (first at row {bad[0]}, column {bad[-1]}); "
            "drop or impute those values first"
        )


# -- files --------------------------------------------------------------------------------
_IDX_DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not.

    Returns
    -------
    ndarray
        With the file's shape, e.g. ``(10000, 28, 28)`` uint8 for MNIST images.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read IDX file {path}: {exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(f"{path} is truncated or padded: {len(raw)} bytes, expected {expected}")
    return (
        np.frombuffer(raw, dtype=dtype, offset=header)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )


def _is_idx(path: Path) -> bool:
    name = path.name.removesuffix(".gz")
    return name.endswith((".idx", "-ubyte")) or ".idx" in path.suffixes


def read_array(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a 2-D numeric array from ``.npy``, ``.npz``, ``.csv``/``.tsv`` or IDX.

    Images are flattened to one row each. ``.npy`` files are memory-mapped.

    Raises
    ------
    DataError
        Missing file, unknown format, or content that is not a numeric table.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if _is_idx(path):
        array = read_idx(path)
    elif suffix == ".npy":
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            raise DataError(f"{path} is not a numeric .npy file ({exc})") from exc
    elif suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            if not names:
                raise DataError(f"{path} holds no arrays")
            key = "X" if "X" in names else names[0]
            array = archive[key]
    elif suffix in (".csv", ".tsv", ".txt"):
        array = _read_delimited(path, "\t" if suffix == ".tsv" else ",")
    else:
        raise DataError(
            f"unknown file format {suffix or path.name!r} for {path} "
            "(expected .npy, .npz, .csv, .tsv or MNIST IDX)"
        )
    if array.dtype.kind not in "biuf":
        raise DataTypeError(f"{path} holds {array.dtype} data, expected numbers")
    if array.ndim > 2:
        array = array.reshape(array.shape[0], -1)
    return array


def _read_delimited(path: Path, sep: str) -> np.ndarray:
    with path.open(encoding="utf-8") as handle:
        first = handle.readline()
    cells = first.strip().split(sep)
    has_header = not all(_is_number(c) for c in cells)
    try:
        return np.loadtxt(path, delimiter=sep, skiprows=int(has_header), ndmin=2, dtype=np.float64)
    except ValueError as exc:
        raise DataTypeError(f"{path} has a non-numeric value ({exc})") from exc


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
