"""Sparse files: scipy .npz, Matrix Market, 10x Genomics folders, AnnData; the CLI on them."""

from __future__ import annotations

import gzip
import sys

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

from aekit import DataError
from aekit.cli import main
from aekit.data.formats import read_table


@pytest.fixture(scope="module")
def counts() -> sp.csr_array:
    rng = np.random.default_rng(1)
    rate = rng.gamma(1.0, 1.0, (120, 3)) @ rng.gamma(0.3, 1.0, (3, 30)) * 0.2
    return sp.csr_array(rng.poisson(rate).astype(np.float64))


def _same(table, counts) -> None:
    assert sp.issparse(table.X) and table.X.format == "csr"
    assert np.array_equal(table.X.toarray(), counts.toarray())


def test_scipy_npz_and_plain_npz(tmp_path, counts):
    sp.save_npz(tmp_path / "x.npz", counts)
    _same(read_table(tmp_path / "x.npz"), counts)
    np.savez(tmp_path / "plain.npz", X=counts.toarray())  # an archive of arrays, as before
    assert isinstance(read_table(tmp_path / "plain.npz").X, np.ndarray)


@pytest.mark.parametrize("name", ["x.mtx", "x.mtx.gz"])
def test_matrix_market(tmp_path, counts, name):
    scipy.io.mmwrite(tmp_path / "x.mtx", counts)
    if name.endswith(".gz"):
        (tmp_path / name).write_bytes(gzip.compress((tmp_path / "x.mtx").read_bytes()))
        (tmp_path / "x.mtx").unlink()
    _same(read_table(tmp_path / name), counts)


def write_10x(folder, counts):
    folder.mkdir()
    scipy.io.mmwrite(folder / "matrix.mtx", sp.coo_array(counts.T))  # features × cells
    (folder / "matrix.mtx.gz").write_bytes(gzip.compress((folder / "matrix.mtx").read_bytes()))
    (folder / "matrix.mtx").unlink()
    genes = "".join(f"G{i}\tgene{i}\tGene Expression\n" for i in range(counts.shape[1]))
    (folder / "features.tsv.gz").write_bytes(gzip.compress(genes.encode()))
    cells = "".join(f"AAAC{i}-1\n" for i in range(counts.shape[0]))
    (folder / "barcodes.tsv.gz").write_bytes(gzip.compress(cells.encode()))
    return folder


def test_a_10x_folder_reads_one_row_per_cell(tmp_path, counts):
    table = read_table(write_10x(tmp_path / "tenx", counts))
    _same(table, counts)
    assert table.columns[:2] == ["G0", "G1"]
    picked = read_table(tmp_path / "tenx", columns=["G3", "G1"])
    assert np.array_equal(picked.X.toarray(), counts.toarray()[:, [3, 1]])


def test_h5ad(tmp_path, counts):
    anndata = pytest.importorskip("anndata")
    anndata.AnnData(sp.csr_matrix(counts)).write_h5ad(tmp_path / "x.h5ad")
    _same(read_table(tmp_path / "x.h5ad"), counts)


def test_h5ad_without_anndata_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "x.h5ad").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "anndata", None)  # import anndata now fails
    with pytest.raises(DataError, match=r"needs anndata: pip install 'aekit\[h5ad\]'"):
        read_table(tmp_path / "x.h5ad")


def test_fit_encode_score_reconstruct_on_a_10x_folder(tmp_path, counts, capsys):
    data = str(write_10x(tmp_path / "tenx", counts))
    model = str(tmp_path / "model")
    options = ["--code-dim", "2", "--epochs", "2", "--seed", "0", "--hidden", "8"]
    assert main(["fit", data, "--out", model, *options]) == 0
    assert "held-out error" in capsys.readouterr().out
    for command in ("encode", "score", "reconstruct"):
        out = tmp_path / f"{command}.npy"
        assert main([command, model, data, "-o", str(out)]) == 0
        assert np.load(out).shape[0] == counts.shape[0]
    assert np.load(tmp_path / "reconstruct.npy").shape == counts.shape
