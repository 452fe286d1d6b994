"""Rows streamed from ``.safetensors`` shards: activation caches as SAE tools write them.

SAELens, ``sparsify`` and ``dictionary_learning`` cache model activations as folders of
safetensors files, each holding one 2-D tensor (rows x d_in, often bfloat16). A file, a
folder (walked recursively, names starting with ``_`` or ``.`` skipped, as for the other
shard folders) or a glob of them is one dataset, its rows the files' rows in sorted path
order. Each block of rows is read on its own through safetensors' lazy slices (never a
whole file), so :class:`SafetensorsRows` streams, shuffles and is dealt to ranks exactly as
the ``.npy`` and parquet sources of :mod:`aekit.data.stream` are.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .stream import BlockRows

__all__ = ["SafetensorsRows", "is_safetensors_dataset", "safetensors_files"]

_SUFFIX = ".safetensors"
_OTHER_DATA = frozenset({".npy", ".npz", ".parquet", ".csv", ".tsv", ".txt"})  # refused beside
_BLOCK_BYTES = 16 * 2**20


def safetensors_files(path: str | os.PathLike[str]) -> list[Path]:
    """The ``.safetensors`` files of a file, folder or glob, in sorted path order (maybe none)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        found = [
            p
            for p in path.rglob("*")
            if p.is_file() and not any(s.startswith(("_", ".")) for s in p.relative_to(path).parts)
        ]
        shards = [p for p in found if p.name.endswith(_SUFFIX)]
        others = [p for p in found if p.suffix.lower() in _OTHER_DATA]
        if shards and others:  # they would be left out without a word
            raise DataError(
                f"{path} holds .safetensors shards and other data files ({others[0].name}): "
                "a dataset folder holds one kind of shard; move the others out"
            )
    else:
        found = [Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file()]
    return sorted((p for p in found if p.name.endswith(_SUFFIX)), key=lambda p: p.as_posix())


def is_safetensors_dataset(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a ``.safetensors`` file, or a folder or glob holding some."""
    return str(path).endswith(_SUFFIX) or bool(not Path(path).is_file() and safetensors_files(path))


class SafetensorsRows(BlockRows):
    """A streamed row source over ``.safetensors`` shards of one 2-D tensor each.

    Parameters
    ----------
    path : str or path-like
        A ``.safetensors`` file, or a folder or glob of them.
    key : str or None, default=None
        The tensor to read in each file; None: each file's only tensor.
    block_rows : int or None, default=None
        Rows per block (None: ~16 MiB of float32 per block).
    window_blocks : int, default=4
        Blocks whose rows are shuffled together.

    Attributes
    ----------
    files : list of Path
        The non-empty shards, in order.
    n_rows, n_features : int
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        key: str | None = None,
        block_rows: int | None = None,
        window_blocks: int = 4,
    ) -> None:
        from safetensors import safe_open

        self.path = Path(path)
        files = safetensors_files(path)
        if not files:
            raise DataError(f"{path} holds no .safetensors files")
        self.files: list[Path] = []
        self._keys: list[str] = []
        sizes: list[int] = []
        shape: tuple[int, ...] | None = None
        for file in files:
            try:
                with safe_open(str(file), framework="pt") as handle:
                    names = list(handle.keys())
                    name = key if key is not None else (names[0] if len(names) == 1 else None)
                    if name is None or name not in names:
                        missing = "" if key is None else f"has no tensor {key!r}: it "
                        raise DataError(
                            f"{file} {missing}holds the tensors {names}; name the one to read "
                            "(aekit sae --key NAME; key= of SafetensorsRows in Python)"
                        )
                    part = handle.get_slice(name)
                    file_shape, dtype = tuple(part.get_shape()), part.get_dtype()
            except DataError:
                raise
            except Exception as exc:  # safetensors raises its own error types
                raise DataError(f"{file} is not a readable safetensors file ({exc})") from exc
            if len(file_shape) != 2 or not dtype.startswith(("F", "BF", "I", "U")):
                raise DataError(
                    f"{file}: tensor {name!r} of shape {file_shape} ({dtype}) is not rows"
                )
            if shape is not None and file_shape[1] != shape[1]:
                raise DataError(
                    f"shard {file} has rows of {file_shape[1]} values, not {shape[1]} as "
                    f"{self.files[0]}"
                )
            shape = shape or file_shape
            if file_shape[0]:
                self.files.append(file)
                self._keys.append(name)
                sizes.append(file_shape[0])
        if not self.files:
            raise DataError(f"{path} has no data rows in its {len(files)} shard(s)")
        self.n_features = int(shape[1])  # type: ignore[index]
        self.n_rows = int(sum(sizes))
        self.dtype = np.dtype(np.float32)
        rows = block_rows or max(1, _BLOCK_BYTES // (4 * self.n_features))
        if rows < 1 or window_blocks < 1:
            raise DataError(
                f"block_rows and window_blocks must be >= 1, got {block_rows}, {window_blocks}"
            )
        self.window_blocks = int(window_blocks)
        offsets = np.cumsum([0, *sizes])
        starts, self._file_of = [], []
        for index, size in enumerate(sizes):
            local = np.arange(0, size, rows)
            starts.append(local + offsets[index])
            self._file_of.extend([index] * len(local))
        begin = np.concatenate(starts)
        self._file_start = offsets
        self._handle: Any = None
        self._handle_index = -1
        self._set_blocks(begin, np.diff(np.append(begin, self.n_rows)) * self.n_features * 4)

    def _transient(self) -> tuple[str, ...]:
        return ("_buffer", "_handle")

    def _read_block(self, block: int, target: torch.Tensor) -> None:
        from safetensors import safe_open

        index = self._file_of[block]
        if self._handle is None or self._handle_index != index:
            self._close_file()
            self._handle = safe_open(str(self.files[index]), framework="pt")
            self._handle_index = index
        first = int(self._starts[block]) - int(self._file_start[index])
        rows = self._handle.get_slice(self._keys[index])[first : first + len(target)]
        target.copy_(rows.to(torch.float32))

    def _close_file(self) -> None:
        self._handle = None
        self._handle_index = -1
