"""Readers of sparse matrix files: scipy ``.npz``, Matrix Market, 10x Genomics folders, AnnData.

Each returns a :class:`~aekit.data.readers.Table` whose ``X`` is a ``scipy.sparse`` CSR
array with float values, never densified; :mod:`aekit.data.formats` lists them. All are
read whole into memory in their compact CSR form (a compressed ``.npz`` or ``.mtx.gz`` has
no row index to seek by; AnnData's backed mode could stream row blocks, which aekit does
not do yet): the CSR of a 1,000,000 × 100,000 matrix with 50 values a row is 0.6 GB where
its dense form is 400 GB.

A 10x Genomics folder (Cell Ranger's ``filtered_feature_bc_matrix``) holds
``matrix.mtx[.gz]``, ``features.tsv[.gz]`` (``genes.tsv`` before Cell Ranger 3) and
``barcodes.tsv[.gz]``; the matrix is stored features × cells and is read transposed, one row
per cell, the feature ids naming the columns.
"""

from __future__ import annotations

import gzip
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import DataError, DataTypeError
from .limits import check_npz, check_unpacked_size
from .readers import Columns, Label, Table, as_labels, pick_columns, read_npz, require

__all__ = [
    "is_10x_folder",
    "read_10x",
    "read_any_npz",
    "read_h5ad",
    "read_mtx",
    "read_sparse_npz",
    "sparse_npz",
    "sparse_table",
]

_TENX_MATRIX = ("matrix.mtx.gz", "matrix.mtx")
_TENX_FEATURES = ("features.tsv.gz", "features.tsv", "genes.tsv.gz", "genes.tsv")


def sparse_table(
    path: Path, X: Any, columns: Columns, label_column: Label, names: list[str] | None = None
) -> Table:
    """A sparse matrix as a :class:`Table` (CSR, float), columns picked by name or index."""
    X = sp.csr_array(X)
    if X.dtype.kind not in "biuf":
        raise DataTypeError(f"{path} holds {X.dtype} data, expected numbers")
    if X.dtype.kind != "f":
        X = X.astype(np.float64)
    if columns is None and label_column is None:
        return Table(X, columns=names)
    label_idx, feature_idx = pick_columns(path, names, X.shape[1], columns, label_column)
    labels = None
    if label_idx is not None:
        labels = as_labels(X[:, [label_idx]].toarray().ravel())
    picked = None if names is None else [names[i] for i in feature_idx]
    return Table(sp.csr_array(X[:, feature_idx]), labels, picked)


def sparse_npz(path: Path) -> bool:
    """Whether a ``.npz`` archive is a matrix written by ``scipy.sparse.save_npz``."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = {Path(n).stem for n in archive.namelist()}
    except (OSError, zipfile.BadZipFile):
        return False
    return {"format", "shape", "data"} <= names


def read_any_npz(path: Path, columns: Columns, label_column: Label) -> Table:
    """A ``.npz`` file: a ``scipy.sparse.save_npz`` matrix, or else an archive of arrays."""
    if sparse_npz(path):
        return read_sparse_npz(path, columns, label_column)
    return read_npz(path, columns, label_column)


def read_sparse_npz(path: Path, columns: Columns, label_column: Label) -> Table:
    """A ``scipy.sparse.save_npz`` file (its arrays checked first: :func:`check_npz`)."""
    check_npz(path)
    try:
        X = sp.load_npz(path)
    except (ValueError, OSError, KeyError) as exc:
        raise DataError(f"{path} is not a readable scipy sparse .npz file ({exc})") from exc
    return sparse_table(path, X, columns, label_column)


def _mtx_header(path: Path) -> tuple[int, int, int, str, str]:
    """``(rows, cols, entries, layout, symmetry)`` from a Matrix Market header (read alone)."""
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            banner = handle.readline(1024).decode("ascii", "replace").lower().split()
            line = handle.readline(1024)
            while line.startswith(b"%") or not line.strip():
                if not line:
                    raise ValueError("no size line")
                line = handle.readline(1024)
        sizes = [int(n) for n in line.split()]
    except (ValueError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path} is not a readable Matrix Market file ({exc})") from exc
    if (
        len(banner) != 5
        or banner[0] != "%%matrixmarket"
        or banner[2]
        not in (
            "coordinate",
            "array",
        )
    ):
        raise DataError(f"{path} is not a Matrix Market file (bad banner)")
    layout, symmetry = banner[2], banner[4]
    if len(sizes) != (3 if layout == "coordinate" else 2) or min(sizes) < 0:
        raise DataError(f"{path} is not a Matrix Market file (bad size line)")
    rows, cols = sizes[:2]
    return rows, cols, sizes[2] if layout == "coordinate" else rows * cols, layout, symmetry


def _check_mtx_header(path: Path) -> None:
    """Refuse a Matrix Market header whose claimed size the file or memory cannot hold.

    A coordinate entry takes at least 4 bytes of text (``1 1`` and a newline), a dense one
    2; what the matrix takes in memory (indices and values, twice for a symmetric one, and a
    vector per row and per column) must fit :func:`~aekit.data.limits.max_input_bytes`.
    """
    rows, cols, entries, layout, symmetry = _mtx_header(path)
    size = path.stat().st_size
    written = entries  # entries in the text: a symmetric dense matrix stores one triangle
    if layout == "array" and symmetry != "general":
        written = rows * (rows - 1) // 2
    if not path.name.endswith(".gz") and written * (2 if layout == "array" else 4) > size:
        raise DataError(
            f"{path}: its header claims {entries:,} entries ({rows:,} × {cols:,}), more than "
            f"its {size:,} bytes can hold"
        )
    claimed = 8 * (rows + 1 + cols) + 24 * entries * (1 if symmetry == "general" else 2)
    check_unpacked_size(path, claimed, f"its header's {rows:,} × {cols:,} matrix")


def _mmread(path: Path) -> Any:
    import scipy.io

    _check_mtx_header(path)
    try:
        return scipy.io.mmread(str(path))
    except (ValueError, OSError, EOFError, IndexError) as exc:
        raise DataError(f"{path} is not a readable Matrix Market file ({exc})") from exc


def read_mtx(path: Path, columns: Columns, label_column: Label) -> Table:
    """A Matrix Market ``.mtx`` or ``.mtx.gz`` file, rows as stored."""
    X = _mmread(path)
    if not sp.issparse(X):  # an "array" (dense) Matrix Market file
        X = sp.csr_array(np.asarray(X))
    return sparse_table(path, X, columns, label_column)


def _first(folder: Path, names: tuple[str, ...]) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_file()), None)


def is_10x_folder(path: Path) -> bool:
    """Whether ``path`` is a folder laid out as 10x Genomics writes a matrix."""
    return (
        path.is_dir()
        and _first(path, _TENX_MATRIX) is not None
        and _first(path, _TENX_FEATURES) is not None
    )


def _tsv_first_column(path: Path) -> list[str]:
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            return [line.rstrip("\n").split("\t")[0] for line in handle if line.strip()]
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc


def read_10x(path: Path, columns: Columns, label_column: Label) -> Table:
    """A 10x Genomics folder: cells as rows, feature ids as column names."""
    matrix = _first(path, _TENX_MATRIX)
    features = _first(path, _TENX_FEATURES)
    assert matrix is not None and features is not None
    X = sp.csr_array(sp.coo_array(_mmread(matrix)).T)  # stored features × cells
    names = _tsv_first_column(features)
    if len(names) != X.shape[1]:
        raise DataError(
            f"{features} names {len(names)} features, but {matrix} has {X.shape[1]} (features "
            "× cells as 10x stores them)"
        )
    return sparse_table(path, X, columns, label_column, names)


def read_h5ad(path: Path, columns: Columns, label_column: Label) -> Table:
    """An AnnData ``.h5ad`` file's ``X`` (cells × genes), gene names as column names.

    Needs the optional ``anndata`` package (``pip install 'aekit[h5ad]'``).
    """
    require("anndata", f"reading {path}")
    import anndata

    try:
        adata = anndata.read_h5ad(path)
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path} is not a readable .h5ad file ({exc})") from exc
    X = adata.X
    if X is None:
        raise DataError(f"{path} has no X matrix")
    names = [str(n) for n in adata.var_names]
    if not sp.issparse(X):
        X = sp.csr_array(np.asarray(X))
    return sparse_table(path, X, columns, label_column, names)
