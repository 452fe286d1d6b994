"""JumpReLU's training: the sparse path, free decoder norms (SAELens's geometry), clipping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aekit.config.sae import SAEConfig
from aekit.errors import ConfigError
from aekit.model import sae_dictionary
from aekit.model.sae_codes import SparseCode, entries_above, jumprelu, step_l0
from aekit.model.sae_dictionary import SparseDictionary
from aekit.sae import SparseAutoencoder
from aekit.sae.objective import step_loss


def jumprelu_module(threshold: float, **changes) -> SparseDictionary:
    config = SAEConfig(
        architecture="jumprelu", code_dim=64, sparsity_coef=0.3, jumprelu_bandwidth=0.2, **changes
    )
    module = SparseDictionary(config, 8)
    module.reset_parameters(torch.Generator().manual_seed(0))
    with torch.no_grad():
        module.jumprelu_threshold.copy_(threshold + 0.3 * torch.rand(64))
        module.b_dec.normal_(generator=torch.Generator().manual_seed(1))
    return module


def loss_and_grads(module: SparseDictionary, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
    module.zero_grad(set_to_none=True)
    loss, fired, _, stats = step_loss(module, x)
    loss.backward()
    grads = {name: p.grad.clone() for name, p in module.named_parameters()}
    return torch.cat([loss[None], stats, fired.float()]), grads


def test_the_sparse_jumprelu_code_has_the_dense_loss_and_gradients(monkeypatch):
    x = torch.randn(200, 8, generator=torch.Generator().manual_seed(2))
    module = jumprelu_module(threshold=1.5)
    code = module.train_code(x).code
    assert isinstance(code, SparseCode)  # few entries near or above the thresholds
    assert 0 < code.values.numel() <= sae_dictionary.SPARSE_SHARE * 200 * 64
    sparse_figures, sparse_grads = loss_and_grads(module, x)
    monkeypatch.setattr(sae_dictionary, "SPARSE_SHARE", -1.0)  # always the dense code
    assert isinstance(module.train_code(x).code, torch.Tensor)
    dense_figures, dense_grads = loss_and_grads(module, x)
    torch.testing.assert_close(sparse_figures, dense_figures, rtol=1e-5, atol=1e-5)
    for name, grad in dense_grads.items():
        assert grad.abs().sum() > 0, name
        torch.testing.assert_close(sparse_grads[name], grad, rtol=1e-4, atol=1e-5)


def test_a_crowded_code_stays_dense():
    x = torch.randn(100, 8, generator=torch.Generator().manual_seed(3))
    assert isinstance(jumprelu_module(threshold=0.0).train_code(x).code, torch.Tensor)


def test_entries_above_keep_their_rows_and_empty_rows():
    pre = torch.tensor([[0.1, 0.9, 0.7], [0.0, 0.0, 0.0], [0.8, 0.2, 0.95]])
    kept = entries_above(pre, pre > torch.tensor([0.5, 0.5, 0.9]))
    assert kept.cols.tolist() == [1, 0, 2] and kept.offsets.tolist() == [0, 1, 1]
    assert kept.values.tolist() == pytest.approx([0.9, 0.8, 0.95])
    dense = torch.where(pre > torch.tensor([0.5, 0.5, 0.9]), pre, 0.0)
    weight = torch.randn(3, 4)
    torch.testing.assert_close(kept.decode(weight), dense @ weight)


def test_per_entry_thresholds_get_the_per_latent_gradients():
    pre = torch.tensor([[0.50, 1.0], [0.55, 0.2]])
    per_latent = torch.tensor([0.52, 0.5], requires_grad=True)
    (jumprelu(pre, per_latent, 0.1).sum() + step_l0(pre, per_latent, 0.1).sum()).backward()
    base = torch.tensor([0.52, 0.5], requires_grad=True)
    per_entry = base.expand(2, 2).reshape(-1)
    flat = pre.reshape(-1)
    (jumprelu(flat, per_entry, 0.1).sum() + step_l0(flat, per_entry, 0.1)).backward()
    torch.testing.assert_close(base.grad, per_latent.grad)


def test_folding_the_decoder_norms_keeps_what_the_sae_computes():
    module = jumprelu_module(threshold=0.2, decoder_init_norm=0.1)
    assert float(module.W_dec.detach().norm(dim=1).max()) == pytest.approx(0.1)
    with torch.no_grad():
        module.W_dec.mul_(torch.rand(64, 1) * 3 + 0.1)  # uneven norms, as training leaves them
    x = torch.randn(50, 8, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        before_codes, before = module.encode(x) > 0, module(x)
        module.fold_decoder_norms()
        torch.testing.assert_close(module.W_dec.norm(dim=1), torch.ones(64))
        assert before_codes.any() and torch.equal(module.encode(x) > 0, before_codes)
        torch.testing.assert_close(module(x), before, rtol=1e-5, atol=1e-5)


def test_free_decoder_norms_train_and_end_folded():
    rng = np.random.default_rng(0)
    X = (rng.random((1200, 8)) < 0.2) * rng.uniform(0.5, 1.5, (1200, 8)) @ rng.normal(size=(8, 8))
    params = {"code_dim": 32, "batch_size": 100, "lr": 1e-2, "sparsity_coef": 0.05, "n_epochs": 20}
    free = SparseAutoencoder(
        "jumprelu", decoder_init_norm=0.1, grad_clip=1.0, b_dec_init="zeros", **params
    ).fit(X.astype(np.float32))
    np.testing.assert_allclose(np.linalg.norm(free.components_, axis=1), 1.0, rtol=1e-5)
    unit = SparseAutoencoder("jumprelu", **params).fit(X.astype(np.float32))
    assert free.history_[-1]["explained_variance"] > 0.5
    assert not np.allclose(free.components_, unit.components_)


def test_grad_clip_bounds_the_step():
    x = torch.randn(256, 8, generator=torch.Generator().manual_seed(5)).numpy()
    start = SparseDictionary(SAEConfig(architecture="jumprelu", code_dim=16, k=4), 8)
    start.reset_parameters(torch.Generator().manual_seed(0))
    moved = {}
    for clip in (None, 1e-12):  # below Adam's eps, a clipped gradient barely moves a weight
        sae = SparseAutoencoder(
            "jumprelu", code_dim=16, k=4, batch_size=64, lr=0.01, b_dec_init="zeros", grad_clip=clip
        ).fit(x)
        moved[clip] = float((sae.module_.W_enc - start.W_enc).detach().abs().max())
    assert moved[None] > 1e-3 and moved[1e-12] < 1e-5


def test_auto_settings_give_jumprelu_saelens_recipe_and_keep_the_others():
    jump = SAEConfig("jumprelu", code_dim=8, k=2)
    assert jump.clip_norm() == 1.0 and jump.b_dec_start() == "zeros"
    assert jump.decoder_start() == 1.0 and not jump.unit_decoder()  # SAELens's free rows
    for arch in ("topk", "l1"):  # BatchTopK's and Matryoshka's: tests/test_sae_rescaled.py
        other = SAEConfig(arch, code_dim=8, k=2)
        assert other.clip_norm() is None and other.b_dec_start() == "mean"
        assert other.unit_decoder()
    given = SAEConfig("jumprelu", code_dim=8, k=2, grad_clip=None, b_dec_init="mean")
    assert given.clip_norm() is None and given.b_dec_start() == "mean"
    with pytest.raises(ConfigError, match="grad_clip"):
        SAEConfig("jumprelu", code_dim=8, k=2, grad_clip="1.0")
