"""The report of a sparse autoencoder: ``build_sae_report`` and ``aekit report SAE_DIR``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse

pytest.importorskip("matplotlib")

from aekit.analysis import build_sae_report
from aekit.analysis.sae_report import sae_figures_text
from aekit.cli import main
from aekit.sae import SparseAutoencoder


@pytest.fixture(scope="module")
def planted():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(16, 16))
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    codes = (rng.random((1500, 16)) < 0.12) * rng.uniform(0.5, 1.5, (1500, 16))
    X = (codes @ features + 0.3).astype(np.float32)
    sae = SparseAutoencoder(
        code_dim=32, k=2, batch_size=100, lr=5e-3, n_epochs=4, dead_rows=500, log_every=5
    ).fit(X)
    return X, features, codes, sae


def test_the_report_has_the_fields_figures(planted):
    X, features, codes, sae = planted
    report = build_sae_report(sae, X, true_features=features, true_codes=codes)
    figures = report.summary["sae"]
    assert set(figures) == {
        "explained_variance", "fvu", "l0", "dead_fraction", "shrinkage", "mcc", "f1",
        "uniqueness",
    }  # fmt: skip
    assert figures == sae.evaluate(X, true_features=features, true_codes=codes)
    page = report.html()
    for words in ("explained variance", "FVU", "L0", "dead latents", "shrinkage", "MCC", "F1"):
        assert words in page
    assert page.count("data:image/png;base64,") == 2  # the latents' activity, the training


def test_without_ground_truth_the_report_says_so(planted):
    X, _, _, sae = planted
    report = build_sae_report(sae, X[:300])
    assert "mcc" not in report.summary["sae"] and "no true features given" in report.html()
    assert report.summary["rows"] == 300


def test_the_figures_text_reads_each_figure():
    text = sae_figures_text({"l0": 24.5, "dead_fraction": 0.0125, "mcc": 0.41})
    assert text == (
        "L0 (active latents per row) 24.5; dead latents (share never active on these rows) "
        "1.2%; MCC (decoder rows matched one to one with the true features) 0.41."
    )


def test_aekit_report_accepts_an_sae_folder(tmp_path, planted, capsys):
    X, features, codes, sae = planted
    sae.save(tmp_path / "sae")
    np.save(tmp_path / "acts.npy", X)
    np.save(tmp_path / "features.npy", features)
    scipy.sparse.save_npz(tmp_path / "codes.npz", scipy.sparse.csr_matrix(codes > 0))
    argv = ["report", str(tmp_path / "sae"), str(tmp_path / "acts.npy"), "-o"]
    argv += [str(tmp_path / "rep"), "--true-features", str(tmp_path / "features.npy")]
    argv += ["--true-codes", str(tmp_path / "codes.npz"), "--rows", "1000"]
    assert main(argv) == 0
    assert "mcc" in capsys.readouterr().out
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    expected = sae.evaluate(X[:1000], true_features=features, true_codes=codes[:1000])
    assert summary["rows"] == 1000 and summary["sae"] == pytest.approx(expected)
    assert "MCC" in (tmp_path / "rep" / "index.html").read_text()


def test_true_codes_of_other_rows_are_one_clear_error(tmp_path, planted, capsys):
    X, features, codes, sae = planted
    sae.save(tmp_path / "sae")
    np.save(tmp_path / "acts.npy", X[:500])
    np.save(tmp_path / "features.npy", features)
    np.save(tmp_path / "codes.npy", codes[:400])
    argv = ["report", str(tmp_path / "sae"), str(tmp_path / "acts.npy"), "-o"]
    argv += [str(tmp_path / "rep"), "--true-features", str(tmp_path / "features.npy")]
    assert main([*argv, "--true-codes", str(tmp_path / "codes.npy")]) != 0
    err = capsys.readouterr().err
    assert "400 rows" in err and "500 rows" in err and "Traceback" not in err
    assert not (tmp_path / "rep").exists()


def test_aekit_report_reads_an_sae_on_every_format_it_trains_on(tmp_path, planted, capsys):
    # a parquet file was refused as "pickled (object) data"; only .npy and .npz were read
    import pandas as pd
    from safetensors.numpy import save_file

    X, _, _, sae = planted
    sae.save(tmp_path / "sae")
    pd.DataFrame(X[:300]).rename(columns=str).to_parquet(tmp_path / "acts.parquet")
    save_file({"acts": X[:300]}, str(tmp_path / "acts.safetensors"))
    expected = sae.evaluate(X[:200])
    for name in ("acts.parquet", "acts.safetensors"):
        argv = ["report", str(tmp_path / "sae"), str(tmp_path / name), "--rows", "200", "-o"]
        assert main([*argv, str(tmp_path / name.replace(".", "-"))]) == 0
        summary = json.loads((tmp_path / name.replace(".", "-") / "summary.json").read_text())
        assert summary["rows"] == 200 and summary["sae"] == pytest.approx(expected)
    (tmp_path / "text.csv").write_text("a,b\n1,x\n2,y\n")
    assert main(["report", str(tmp_path / "sae"), str(tmp_path / "text.csv"), "-o", "r"]) == 2
    assert "has text columns" in capsys.readouterr().err
