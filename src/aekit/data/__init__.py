"""Data in: row sources, file formats, streamed files and the one input check.

- :mod:`aekit.data.sources`: what the trainer draws batches from (in memory, subsets).
- :mod:`aekit.data.formats`: readers and writers by file suffix.
- :mod:`aekit.data.stream`: files larger than memory, read block by block.
- :mod:`aekit.data.checks`: shape, dtype, NaN/infinity and float32-range checks.
"""

from .formats import Table, read_array, read_idx, read_labels, read_table, row_writer, write_array
from .sources import RowSource, RowSubset, TensorRows, as_tensor

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
