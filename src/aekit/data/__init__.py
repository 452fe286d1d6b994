"""Data in: row sources, file formats, streamed files and the one input check.

- :mod:`aekit.data.sources`: what the trainer draws batches from (in memory, subsets).
- :mod:`aekit.data.formats`: the one table of file formats (suffix → reader, writer, stream);
  the readers and writers themselves are in :mod:`aekit.data.readers` and
  :mod:`aekit.data.writers`.
- :mod:`aekit.data.stream`: files larger than memory, read block by block.
- :mod:`aekit.data.checks`: the input check (shape, dtype, NaN/infinity, float32's range).
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
