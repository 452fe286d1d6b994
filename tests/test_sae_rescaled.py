"""The top-k family with free decoder rows: SAELens's code rescaled by the decoder norms."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

import aekit
from aekit.config.sae import SAEConfig
from aekit.errors import ConfigError
from aekit.model.regularize import topk_mask
from aekit.model.sae_codes import batch_topk
from aekit.model.sae_dictionary import SparseDictionary
from aekit.sae import SparseAutoencoder
from aekit.sae.objective import step_loss

D_IN, WIDTH, K = 8, 32, 3


def free_module(arch: str, seed: int = 0) -> SparseDictionary:
    """A module of ``arch`` with free decoder rows of uneven norms, as training leaves them."""
    config = SAEConfig(
        architecture=arch, code_dim=WIDTH, k=K, decoder_init_norm=0.1, aux_k=4, aux_coef=0.5
    )
    module = SparseDictionary(config, D_IN)
    gen = torch.Generator().manual_seed(seed)
    module.reset_parameters(gen)
    with torch.no_grad():
        module.W_dec.mul_(torch.rand(WIDTH, 1, generator=gen) * 20 + 1)
        module.W_enc.mul_(torch.rand(D_IN, WIDTH, generator=gen) + 0.5)
        module.b_enc.copy_(torch.randn(WIDTH, generator=gen) * 0.01)
        module.b_dec.copy_(torch.randn(D_IN, generator=gen) * 0.1)
    return module


def reference_loss(module: SparseDictionary, x: torch.Tensor, dead: torch.Tensor) -> torch.Tensor:
    """SAELens's rescaled top-k step written densely: code of ``pre * |W_dec|``, decoded by
    ``code / |W_dec| @ W_dec``, every prefix's error summed, plus AuxK on the dead latents."""
    config = module.config
    norms = module.W_dec.norm(dim=1)
    pre = ((x - module.b_dec) @ module.W_enc + module.b_enc) * norms
    select = topk_mask if config.architecture == "topk" else batch_topk
    code = select(pre.relu(), K)
    rows = module.W_dec / norms[:, None]
    recon, loss, start = module.b_dec, x.new_zeros(()), 0
    for width in config.prefix_widths():
        recon = recon + code[:, start:width] @ rows[start:width]
        loss = loss + (recon - x).pow(2).sum(dim=1).mean()
        start = width
    residual = (x - recon).detach()
    aux_k = min(config.aux_k, len(dead))
    picked = pre.detach()[:, dead].topk(aux_k, dim=1).indices
    mask = torch.zeros_like(pre).scatter(1, dead[picked], 1.0)
    aux_code = pre.relu() * mask
    error = (aux_code @ rows - residual).pow(2).sum(dim=1).mean()
    scale = (residual - residual.mean(dim=0)).pow(2).sum(dim=1).mean()
    return loss + config.aux_coef * error / scale


@pytest.mark.parametrize("arch", ["matryoshka", "batchtopk", "topk"])
def test_the_rescaled_step_has_the_dense_losses_and_gradients(arch):
    module = free_module(arch)
    x = torch.randn(40, D_IN, generator=torch.Generator().manual_seed(1)) * 3
    dead = torch.tensor([1, 5, 9, 20, 31])
    loss, _, smallest, _ = step_loss(module, x, dead)
    grads = torch.autograd.grad(loss, list(module.parameters()))
    expected = reference_loss(module, x, dead)
    expected_grads = torch.autograd.grad(expected, list(module.parameters()))
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-5)
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    if arch != "topk":  # BatchTopK's threshold: the smallest kept value, in rescaled units
        with torch.no_grad():
            norms = module.W_dec.norm(dim=1)
            pre = ((x - module.b_dec) @ module.W_enc + module.b_enc) * norms
            kept = batch_topk(pre.relu(), K)
        assert float(smallest) == pytest.approx(float(kept[kept > 0].min()), rel=1e-6)


def test_the_rescaled_code_is_the_folded_unit_dictionarys():
    module = free_module("matryoshka")
    x = torch.randn(30, D_IN, generator=torch.Generator().manual_seed(2)) * 3
    with torch.no_grad():
        free = module.train_code(x).code
        before = module.decoder_rows() * 1.0
        module.fold_decoder_norms()
        unit = SparseDictionary(
            SAEConfig(architecture="matryoshka", code_dim=WIDTH, k=K), D_IN
        ).requires_grad_(False)
        unit.load_state_dict(module.state_dict())
        folded = unit.train_code(x).code
    torch.testing.assert_close(unit.W_dec, before)
    assert torch.equal(free.cols, folded.cols)
    torch.testing.assert_close(free.values, folded.values, rtol=1e-5, atol=1e-6)


def test_free_rows_are_for_every_code_but_l1():
    for arch in ("topk", "batchtopk", "matryoshka", "jumprelu"):
        assert not SAEConfig(architecture=arch, decoder_init_norm=0.1).unit_decoder()
    with pytest.raises(ConfigError, match="decoder_init_norm"):
        SAEConfig(architecture="l1", decoder_init_norm=0.1)
    with pytest.raises(ConfigError, match="grad_clip"):
        SAEConfig(grad_clip=-1.0)


def test_a_rescaled_matryoshka_trains_and_ends_with_unit_rows():
    rng = np.random.default_rng(0)
    X = (rng.random((2000, D_IN)) < 0.2) * rng.uniform(0.5, 1.5, (2000, D_IN))
    X = (X @ rng.normal(size=(D_IN, D_IN))).astype(np.float32)
    params = {"code_dim": WIDTH, "k": 2, "batch_size": 100, "lr": 5e-3, "n_epochs": 10}
    sae = SparseAutoencoder("matryoshka", decoder_init_norm=0.1, **params).fit(X)
    np.testing.assert_allclose(np.linalg.norm(sae.components_, axis=1), 1.0, rtol=1e-5)
    assert sae.history_[-1]["explained_variance"] > 0.5
    codes = sae.transform(X)
    assert 1.0 < (codes > 0).sum(axis=1).mean() < 4.0  # the learned threshold serves k ~ 2


def test_batchtopk_and_matryoshka_train_as_saelenss_trainer_by_default():
    for arch in ("batchtopk", "matryoshka"):
        found = SAEConfig(architecture=arch)
        assert found.decoder_start() == 1.0 and not found.unit_decoder()
        assert found.clip_norm() == 1.0 and found.b_dec_start() == "zeros"
    config = SAEConfig(architecture="matryoshka")
    topk = SAEConfig(architecture="topk")
    assert topk.unit_decoder() and topk.clip_norm() is None and topk.b_dec_start() == "mean"
    assert SAEConfig(architecture="matryoshka", decoder_init_norm=None).unit_decoder()
    with pytest.raises(ConfigError, match="decoder_init_norm"):
        SAEConfig(decoder_init_norm="large")
    module = SparseDictionary(dataclasses.replace(config, code_dim=WIDTH, k=K), D_IN)
    module.reset_parameters(torch.Generator().manual_seed(0))
    torch.testing.assert_close(module.W_dec.detach().norm(dim=1), torch.ones(WIDTH))
    assert module.decoder_gains() is not None  # free rows, the code rescaled by their norms


@pytest.mark.parametrize("arch", ["batchtopk", "matryoshka"])
def test_a_format_3_folder_loads_as_it_was_written(tmp_path, arch):
    X = np.random.default_rng(1).normal(size=(300, D_IN)).astype(np.float32)
    # what format 3 wrote for a default BatchTopK or Matryoshka: unit rows, 'auto' = no clip,
    # b_dec at the mean
    old = {"decoder_init_norm": None, "grad_clip": "auto", "b_dec_init": "auto"}
    sae = SparseAutoencoder(arch, code_dim=WIDTH, k=2, batch_size=100, **old).fit(X)
    sae.save(tmp_path / "v3")
    header_path = tmp_path / "v3" / "sae.json"
    header = json.loads(header_path.read_text())
    assert header["format_version"] == 5 and header["config"]["grad_clip"] == "auto"
    header["format_version"] = 3
    header_path.write_text(json.dumps(header))
    loaded = aekit.load(tmp_path / "v3")
    params = loaded.get_params()
    assert params["decoder_init_norm"] is None
    assert params["grad_clip"] is None and params["b_dec_init"] == "mean"
    np.testing.assert_array_equal(loaded.transform(X), sae.transform(X))
