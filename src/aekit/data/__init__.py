"""Data in: row sources, file formats, streamed files and the one input check.

- :mod:`aekit.data.sources`: what the trainer draws batches from (in memory, subsets).
- :mod:`aekit.data.formats`: the one table of file formats (suffix → reader, writer, stream);
  the readers and writers themselves are in :mod:`aekit.data.readers` and
  :mod:`aekit.data.writers`.
- :mod:`aekit.data.stream`: files larger than memory, read block by block.
- :mod:`aekit.data.folders`: a folder or glob of shards read as one dataset.
- :mod:`aekit.data.shares`: each DDP rank's share of a streamed epoch.
- :mod:`aekit.data.checks`: the input check (shape, dtype, NaN/infinity, float32's range).
- :mod:`aekit.data.tables`: a table's categorical columns as one-hot blocks and back.
- :mod:`aekit.data.kinds`: what a DataFrame's column is (numbers, categorical, or a date
  refused by name), from its dtype and an ``object`` column's values.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .formats import Table, read_array, read_idx, read_labels, read_table, row_writer, write_array

if TYPE_CHECKING:
    from .sources import RowSource, RowSubset, TensorRows, as_tensor

_SOURCES = ("RowSource", "RowSubset", "TensorRows", "as_tensor")  # need torch: loaded on use

__all__ = [
    "RowSource",
    "RowSubset",
    "Table",
    "TensorRows",
    "as_tensor",
    "read_array",
    "read_idx",
    "read_labels",
    "read_table",
    "row_writer",
    "write_array",
]


def __getattr__(name: str) -> Any:
    """Import the row sources (and so torch) on first use: reading a file needs neither."""
    if name not in _SOURCES:
        raise AttributeError(f"module 'aekit.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(".sources", __name__), name)
    globals()[name] = value
    return value
