"""Dataset folders: a folder (or a glob) of ``.parquet`` or ``.npy`` shards, read as one dataset.

The layouts Spark, Dask, pandas and pyarrow write are read as they are:

- the folder is walked recursively; files and folders whose names start with ``_`` or ``.``
  are skipped, as pyarrow's dataset discovery skips them (Spark's ``_SUCCESS``,
  ``_metadata``, ``_common_metadata``, its ``.part-*.crc`` checksums); any other file must be
  a shard, all of one format (``.parquet`` or ``.npy``);
- hive partition folders (``key=value/``) are walked like any folder. **Partition keys do not
  become columns**: the features are the columns stored in the files, and a key named as a
  column is refused with a message that says so (a key is constant within a file, and
  usually an identifier such as a date, not a feature);
- a glob (``data/part-*.parquet``, ``data/**/*.npy``, recursive) picks the shards itself.

**Order.** The dataset's rows are the shards' rows in *sorted shard path order* (paths compared
as strings), each shard's rows in file order (parquet: its row groups in turn). ``encode``,
``score`` and ``reconstruct`` write rows in that order, and row numbers in messages count in it.

Every shard must match the first one: parquet shards the same feature column names with the
same types, read by name in the first shard's order (columns picked by position need the same
order in every shard; a row index pandas stored is no feature), ``.npy`` shards the same row
shape and dtype; a mismatch is one :class:`~aekit.errors.DataError` naming the shard, the
first shard and what differs. Empty
shards (Spark writes some) are skipped. Each block of a shard (a parquet row group, a range
of ``.npy`` rows) is a block of :class:`ShardedRows`, so the dataset streams, shuffles and is
dealt to DDP ranks exactly as one file is (:mod:`aekit.data.stream`, :mod:`aekit.data.shares`).
"""

from __future__ import annotations

import fnmatch
import glob
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .checks import check_finite_rows
from .readers import Table, open_parquet, parquet_columns
from .stream import BlockRows, NpyRows, ParquetRows

__all__ = [
    "SHARD_KINDS",
    "ShardedRows",
    "list_shards",
    "read_folder",
    "shard_format",
    "would_be_shard",
]

# The streamed formats a dataset's shards may have (each class names its format's suffix).
SHARD_KINDS: tuple[type[NpyRows] | type[ParquetRows], ...] = (NpyRows, ParquetRows)
_SKIPPED = ("_", ".")  # name prefixes of files and folders that are not shards
_OPEN_SHARDS = 8  # shards whose files (and read buffers) stay open at once


def _skipped(relative: Path) -> bool:
    return any(part.startswith(_SKIPPED) for part in relative.parts)


def list_shards(path: str | os.PathLike[str]) -> list[Path]:
    """The shard files of a dataset folder or glob, in the dataset's order (sorted paths).

    Raises
    ------
    DataError
        No shard, a file that is not a ``.parquet`` or ``.npy`` shard, or shards of both.
    """
    path = Path(path)
    if path.is_dir():
        files = [p for p in path.rglob("*") if not _skipped(p.relative_to(path)) and not p.is_dir()]
    else:
        files = [Path(p) for p in glob.glob(str(path), recursive=True) if not Path(p).is_dir()]
    files.sort(key=lambda p: p.as_posix())
    if not files:
        found = "holds no data files" if path.is_dir() else "matches no files"
        raise DataError(f"{path} {found} (expected .parquet or .npy shards)")
    shard_format(files, path)
    return files


def would_be_shard(output: str | os.PathLike[str], dataset: str | os.PathLike[str]) -> bool:
    """Whether a file written at ``output`` would be read as a shard of ``dataset`` next time.

    ``dataset``: a folder (an output anywhere under it whose name does not start with ``_``
    or ``.``) or a glob pattern (an output it matches).
    """
    root, out = Path(dataset), Path(os.path.abspath(output))
    if root.is_dir():
        root = Path(os.path.abspath(root))
        return out.is_relative_to(root) and not _skipped(out.relative_to(root))
    return fnmatch.fnmatchcase(str(out), os.path.abspath(dataset))  # (* also spans folders)


def shard_format(
    files: Sequence[Path], where: str | os.PathLike[str]
) -> type[NpyRows] | type[ParquetRows]:
    """The one streamed kind of ``files`` (shards of the dataset ``where``).

    A class of :data:`SHARD_KINDS`, whose ``name``, ``named_columns`` and ``read`` describe
    the format.

    Raises
    ------
    DataError
        A file that is not a shard, or shards of two kinds.
    """
    kinds: dict[str, tuple[type[NpyRows] | type[ParquetRows], Path]] = {}
    for file in files:
        found = next((k for k in SHARD_KINDS if file.name.lower().endswith(k.suffix)), None)
        if found is None:
            raise DataError(
                f"{file} in the dataset {where} is not a .parquet or .npy shard (a dataset "
                "folder holds shards of one format; names starting with _ or . are skipped)"
            )
        kinds.setdefault(found.name, (found, file))
    if len(kinds) > 1:
        (a, first), (b, other) = kinds.values()
        raise DataError(f"{where} mixes {a.name} and {b.name} shards ({first}, {other})")
    return next(iter(kinds.values()))[0]


def _partition_keys(files: Sequence[Path], root: Path) -> set[str]:
    """Hive partition keys (``key=value`` folder names) above the shards."""
    keys = set()
    for file in files:
        parts = file.relative_to(root).parts if root.is_dir() else file.parent.parts
        keys.update(part.split("=", 1)[0] for part in parts[:-1] if "=" in part)
    return keys


def _schema_difference(
    schema: Any, reference: Any, names: list[str], wanted: list[str], by_position: bool
) -> str | None:
    """What differs between a shard's arrow schema and the first shard's, or None.

    ``names`` and ``wanted`` are the two shards' feature columns. They are matched by name
    (the same names in another order are read by name); columns picked by position
    (``by_position``) need every column in the same order.
    """
    if by_position and list(schema.names) != list(reference.names):
        found, expected = list(schema.names), list(reference.names)
        if set(found) == set(expected):
            return (
                f"its columns are in another order ({found}, not {expected}): columns "
                "picked by position need the same order in every shard"
            )
        names, wanted = found, expected
    missing = [n for n in wanted if n not in names]
    extra = [n for n in names if n not in wanted]
    if missing or extra:
        return f"columns {missing or 'none'} missing and {extra or 'none'} extra"
    for name in wanted:
        kind, want = schema.field(name).type, reference.field(name).type
        if kind != want:
            return f"column {name!r} holds {kind}, not {want}"
    return None


def _feature_names(
    file: Path, schema: Any, columns: Sequence[str | int] | None, label_column: str | int | None
) -> list[str]:
    """A parquet shard's feature columns (:func:`~aekit.data.readers.parquet_columns`)."""
    _, picked = parquet_columns(file, schema, columns, label_column)
    return [str(schema.names[i]) for i in picked]


class ShardedRows(BlockRows):
    """A :class:`~aekit.data.RowSource` over a dataset folder or glob of shards.

    Parameters
    ----------
    path : str or path-like
        A folder, or a glob pattern, of ``.parquet`` or ``.npy`` files (see the module
        docstring for the layouts read and the order of the rows).
    columns, label_column : optional
        Feature columns and a column left out, as for :class:`~aekit.data.stream.ParquetRows`
        (parquet shards only; hive partition keys are not columns).
    window_blocks : int, default=4
        Blocks whose rows are shuffled together.
    block_rows : int or None, default=None
        Rows per block of ``.npy`` shards (None: ~16 MiB blocks).
    max_buffer_bytes : int, default=1 GiB
        Bound on the buffers for parquet shards, as for ``ParquetRows``.

    Attributes
    ----------
    shards : list of NpyRows or ParquetRows
        The non-empty shards, in order.
    columns : list of str or None
        Names of the feature columns (parquet).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        columns: Sequence[str | int] | None = None,
        label_column: str | int | None = None,
        window_blocks: int = 4,
        block_rows: int | None = None,
        max_buffer_bytes: int = 2**30,
    ) -> None:
        self.path = Path(path)
        self._open: list[int] = []
        files = list_shards(path)
        kind = shard_format(files, path).name
        if kind == "npy" and (columns is not None or label_column is not None):
            raise DataError(f"{path} holds .npy shards: they have no columns to pick by name")
        self.shards: list[BlockRows] = []
        if kind == "parquet":
            self._open_parquet(files, columns, label_column, window_blocks, max_buffer_bytes)
        else:
            self._open_npy(files, block_rows, window_blocks)
        if not self.shards:
            raise DataError(f"{path} has no data rows in its {len(files)} shard(s)")
        first = self.shards[0]
        self.n_features, self.dtype = first.n_features, first.dtype
        self.columns = getattr(first, "columns", None)
        self.n_rows = sum(len(shard) for shard in self.shards)
        offsets = np.cumsum([0] + [len(shard) for shard in self.shards])[:-1]
        starts = [s._starts[:-1].numpy() + o for s, o in zip(self.shards, offsets, strict=True)]
        self._set_blocks(
            np.concatenate(starts),
            np.concatenate([shard.block_bytes for shard in self.shards]),
        )
        self._shard_of = np.repeat(np.arange(len(self.shards)), [s.n_blocks for s in self.shards])
        self._local = np.concatenate([np.arange(s.n_blocks) for s in self.shards])
        if kind == "parquet":
            self._fit_window(window_blocks, max_buffer_bytes)
        else:
            self.window_blocks = int(window_blocks)

    def _open_parquet(
        self,
        files: list[Path],
        columns: Sequence[str | int] | None,
        label_column: str | int | None,
        window_blocks: int,
        max_buffer_bytes: int,
    ) -> None:
        reference: tuple[Path, Any, list[str]] | None = None
        by_position = any(isinstance(c, int) for c in [*(columns or ()), label_column])
        for file in files:
            parquet = open_parquet(file)
            schema, n_rows = parquet.schema_arrow, parquet.metadata.num_rows
            parquet.close()
            if reference is None:  # (a partition key named as a column: said so first)
                self._check_keys(files, schema, columns, label_column)
            names = _feature_names(file, schema, columns, label_column)
            if reference is None:
                reference = (file, schema, names)
            elif (
                difference := _schema_difference(
                    schema, reference[1], names, reference[2], by_position
                )
            ) is not None:
                raise DataError(f"shard {file} does not match shard {reference[0]}: {difference}")
            if n_rows:
                shard = ParquetRows(  # the first shard's columns, by name in every shard
                    file,
                    columns=columns if names == reference[2] else reference[2],
                    label_column=label_column,
                    window_blocks=window_blocks,
                    max_buffer_bytes=max_buffer_bytes,
                )
                shard.close()  # reopened on its first read
                self.shards.append(shard)

    def _check_keys(
        self,
        files: list[Path],
        schema: Any,
        columns: Sequence[str | int] | None,
        label_column: str | int | None,
    ) -> None:
        """Refuse a hive partition key named as a column, saying why."""
        keys = _partition_keys(files, self.path) - set(schema.names)
        for name in [*(columns or ()), label_column]:
            if isinstance(name, str) and name in keys:
                raise DataError(
                    f"{name!r} is a hive partition key of {self.path} (its folders are named "
                    f"{name}=...), not a column stored in the files; aekit reads the stored "
                    "columns only"
                )

    def _open_npy(self, files: list[Path], block_rows: int | None, window_blocks: int) -> None:
        first: NpyRows | None = None
        for file in files:
            shard = NpyRows(file, block_rows=block_rows, window_blocks=window_blocks)
            if first is None:
                first = shard
            elif (shard.shape[1:], shard.dtype) != (first.shape[1:], first.dtype):
                raise DataError(
                    f"shard {file} does not match shard {first.path}: rows of shape "
                    f"{shard.shape[1:]} and dtype {shard.dtype}, not {first.shape[1:]} and "
                    f"{first.dtype}"
                )
            if len(shard):
                self.shards.append(shard)

    def locate(self, row: int) -> tuple[Path, int]:
        """The shard file that holds row ``row`` of the folder, and the row's number in it."""
        ends = np.cumsum([len(shard) for shard in self.shards])
        index = int(np.searchsorted(ends, row, side="right"))
        return Path(self.shards[index].path), row - (int(ends[index - 1]) if index else 0)

    def _read_block(self, block: int, target: torch.Tensor) -> None:
        index = int(self._shard_of[block])
        self.shards[index]._read_block(int(self._local[block]), target)
        if index in self._open:
            self._open.remove(index)
        self._open.append(index)
        if len(self._open) > _OPEN_SHARDS:  # close the least recently read shard's file
            self.shards[self._open.pop(0)].close()

    def _close_file(self) -> None:
        for index in getattr(self, "_open", ()):
            self.shards[index].close()
        self._open = []


def read_folder(
    path: Path, columns: Sequence[str | int] | None, label_column: str | int | None
) -> Table:
    """A dataset folder or glob read whole: its shards' tables, checked, in order."""
    files = list_shards(path)
    shards = shard_format(files, path)
    picks = {"columns": columns, "label_column": label_column} if shards.named_columns else {}
    sharded = ShardedRows(path, **picks)  # the schema check (.npy columns are picked below)
    sharded.close()
    if sharded.columns is not None:  # parquet: the first shard's columns, by name in each
        columns = sharded.columns
    read = shards.read
    tables = [read(file, columns, label_column) for file in files]
    for file, table in zip(files, tables, strict=True):  # an infinity named by its shard
        if table.X.dtype.kind == "f":
            check_finite_rows(table.X, str(file), allow_nan=True)
    labels = [t.labels for t in tables]
    return Table(
        np.concatenate([t.X for t in tables]),
        None if labels[0] is None else np.concatenate(labels),  # type: ignore[arg-type]
        tables[0].columns,
    )
