"""The sparse path's memory savings give the same numbers: block steps, row blocks, kept weights."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from aekit import Autoencoder, Callback
from aekit.config import ModelConfig, TrainConfig
from aekit.data.sparse import DENSE_CHUNK_VALUES, CsrRows, source_chunk_rows
from aekit.model import Hourglass, gram_error, sparse_net
from aekit.model.sparse_net import (
    exact_squared_error,
    forward_rows,
    lazy_grads,
    scaled_batch,
    sparse_encode_pre,
)
from aekit.training.kept_weights import KeptWeights
from aekit.training.optim import _LazyColumns, make_optimizer


def _model_and_batch(hidden: tuple[int, ...], linear_path: bool):
    torch.manual_seed(0)
    X = sp.random(64, 700, density=0.02, format="csr", dtype=np.float32, random_state=1)
    config = ModelConfig(input_dim=700, code_dim=5, hidden=hidden, linear_path=linear_path)
    module = Hourglass(config)
    batch = scaled_batch(module, CsrRows(sp.csr_array(X)).take(torch.arange(64)))
    return module, batch


@pytest.mark.parametrize("gram", [True, False])
@pytest.mark.parametrize("linear_path", [True, False])
def test_block_steps_equal_the_whole_step(gram, linear_path, monkeypatch):
    monkeypatch.setattr(gram_error, "BLOCK_BYTES", 4096)  # many blocks of output rows
    hidden = (16, 8) if gram else (128, 96)  # the Gram form only where hidden ≤ batch
    states = []
    for blocks in (False, True):
        module, batch = _model_and_batch(hidden, linear_path)
        optimizer = make_optimizer(module, TrainConfig(weight_decay=1e-3), lazy=True)
        for _ in range(3):
            optimizer.zero_grad(set_to_none=True)
            code = module.encode(batch.dense())
            step = optimizer.block_step if blocks else None
            exact_squared_error(module, code, batch, gram=gram, block_step=step).backward()
            if blocks:  # no gradient of the output weights was kept
                assert module.decoder[-1].weight.grad is None
            optimizer.step()
        states.append({k: v.clone() for k, v in module.state_dict().items()})
        assert int(optimizer.state[module.decoder[-1].weight]["step"]) == 3
    for key, value in states[0].items():
        # the fused kernel's update row block by row block: its vector/tail split may differ
        torch.testing.assert_close(states[1][key], value, rtol=1e-6, atol=1e-7, msg=key)


def test_the_blocked_loss_equals_the_dense_loss(monkeypatch):
    monkeypatch.setattr(gram_error, "BLOCK_BYTES", 4096)
    module, batch = _model_and_batch((128, 96), True)
    code = module.encode(batch.dense())
    got = exact_squared_error(module, code, batch, gram=False)
    want = (module.decode_logits(code) - batch.dense()).square().sum()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=0)


@pytest.mark.parametrize("spill_bytes", [0, 1 << 30])
def test_kept_weights_come_back_bit_for_bit(spill_bytes):
    module, _ = _model_and_batch((16, 8), True)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    kept = KeptWeights(module.state_dict(), spill_bytes=spill_bytes)
    assert kept.spilled == (spill_bytes == 0)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(1.0)
    kept.load_into(module)
    for key, value in module.state_dict().items():
        assert torch.equal(value, before[key]), key
        assert torch.equal(kept.tensors()[key], before[key]), key


def test_spilled_weights_refuse_a_module_whose_tensors_changed_shape_or_dtype():
    module, _ = _model_and_batch((16, 8), True)
    kept = KeptWeights(module.state_dict(), spill_bytes=0)
    with pytest.raises(RuntimeError, match="kept weights"):
        kept.load_into(module.double())  # float64 now: reading the float32 bytes would misalign


def _reference_lazy_step(self, param, cols, g, group):
    """The lazy step as it was before the row blocks (hidden × columns temporaries)."""
    state = self._state_of(param)
    beta1, beta2 = group["betas"]
    lr, eps, decay = group["lr"], group["eps"], group["weight_decay"]
    state["step"] += 1
    step = float(state["step"])
    weights = param.index_select(1, cols)
    if decay and not self.decoupled:
        g = g + decay * weights
    m = state["exp_avg"].index_select(1, cols).mul_(beta1).add_(g, alpha=1 - beta1)
    v = state["exp_avg_sq"].index_select(1, cols).mul_(beta2).addcmul_(g, g, value=1 - beta2)
    denom = v.sqrt().div_((1 - beta2**step) ** 0.5).add_(eps)
    if decay and self.decoupled:
        weights.mul_(1 - lr * decay)
    weights.addcdiv_(m, denom, value=-lr / (1 - beta1**step))
    param.index_copy_(1, cols, weights)
    state["exp_avg"].index_copy_(1, cols, m)
    state["exp_avg_sq"].index_copy_(1, cols, v)


def _lazy_steps(kind: str, optimizer_name: str) -> dict[str, torch.Tensor]:
    """Weights and first-layer moments after 3 lazy steps: whole, row blocks, in backward."""
    module, batch = _model_and_batch((160, 96), True)  # 160 rows: blocks of 64, 64 and 32
    config = TrainConfig(weight_decay=1e-3, optimizer=optimizer_name)
    optimizer = make_optimizer(module, config, lazy=True)
    column_step = optimizer.column_step if kind == "backward" else None
    for _ in range(3):
        optimizer.zero_grad(set_to_none=True)
        pre = sparse_encode_pre(module, batch, lazy=True, column_step=column_step)
        code = module.code_activation(pre)
        exact_squared_error(module, code, batch, gram=False).backward()
        first = module.encoder[0].weight
        assert (not lazy_grads(first)) == (kind == "backward")  # no whole gradient kept
        optimizer.step()
    state = optimizer.state[module.encoder[0].weight]
    assert int(state["step"]) == 3
    out = {k: v.clone() for k, v in module.state_dict().items()}
    return out | {"exp_avg": state["exp_avg"], "exp_avg_sq": state["exp_avg_sq"]}


@pytest.mark.parametrize("optimizer_name", ["adam", "adamw"])
def test_lazy_steps_in_row_blocks_equal_the_whole_step_bit_for_bit(optimizer_name, monkeypatch):
    monkeypatch.setattr(sparse_net, "LAZY_BLOCK_VALUES", 1)  # the smallest blocks: 64 rows
    found = {kind: _lazy_steps(kind, optimizer_name) for kind in ("blocks", "backward")}
    monkeypatch.setattr(_LazyColumns, "_lazy_step", _reference_lazy_step)
    reference = _lazy_steps("whole", optimizer_name)
    for kind, state in found.items():
        for key, value in reference.items():
            assert torch.equal(state[key], value), (kind, key)


def test_a_sparse_fit_equals_the_fit_without_row_blocks_bit_for_bit(monkeypatch):
    X = sp.random(600, 2000, density=0.01, format="csr", dtype=np.float32, random_state=2)
    settings = {"code_dim": 5, "hidden": (96, 64), "epochs": 2, "random_state": 0}

    def fit() -> tuple[list[float], dict[str, torch.Tensor]]:
        kept = {}

        class Last(Callback):  # the weights trained (early stopping may restore the start's)
            def on_train_end(self, trainer, **kwargs):
                kept.update({k: v.clone() for k, v in trainer.module.state_dict().items()})

        ae = Autoencoder(**settings, sparse_path="sparse", threads=1).fit(X, callbacks=(Last(),))
        losses = [r[k] for r in ae.history_.records for k in ("train_loss", "val_loss")]
        return losses, kept

    monkeypatch.setattr(sparse_net, "LAZY_BLOCK_VALUES", 1)
    losses, weights = fit()
    monkeypatch.setattr(_LazyColumns, "_lazy_step", _reference_lazy_step)
    monkeypatch.setattr(_LazyColumns, "column_step", None)  # gradients kept whole for step
    reference_losses, reference_weights = fit()
    assert losses == reference_losses
    for key, value in reference_weights.items():
        assert torch.equal(weights[key], value), key


@pytest.mark.parametrize("sparse", [True, False])
def test_validation_sums_the_squared_error_once_with_the_same_bits(sparse):
    from aekit.data.sources import TensorRows
    from aekit.training.distributed import Ranks
    from aekit.training.objective import (
        Objective,
        _squared_error_sum,
        eval_chunk_rows,
        table_loss_sum,
    )

    module, _ = _model_and_batch((32, 16), True)
    X = sp.random(300, 700, density=0.02, format="csr", dtype=np.float32, random_state=3)
    source = CsrRows(X) if sparse else TensorRows(torch.from_numpy(X.toarray()))
    rows = torch.arange(300)
    objective = Objective(module, TrainConfig(), Ranks.current(), torch.device("cpu"))
    loss, error = objective.validation(source, rows)
    sums = torch.zeros(2, dtype=torch.float64)  # as validation summed them before
    with torch.no_grad():
        for chunk in rows.split(eval_chunk_rows(source)):
            out, clean = forward_rows(module, source.take(chunk))
            sums[0] += table_loss_sum(out, clean, "mse", ()).double()
            sums[1] += _squared_error_sum(out.recon, clean).double()
    assert loss == sums[0].item() / (300 * 700)
    assert error == sums[1].item() / 300


def test_validation_of_wide_sparse_rows_densifies_small_chunks():
    """An epoch's end holds a few dense arrays of a chunk: at 100,000 features, ~4 MB each."""
    from aekit.training.distributed import Ranks
    from aekit.training.objective import _EVAL_VALUES, Objective

    width = 100_000
    X = sp.random(60, width, density=5e-4, format="csr", dtype=np.float32, random_state=3)
    source = CsrRows(sp.csr_array(X))
    module = Hourglass(ModelConfig(input_dim=width, code_dim=2, hidden=(4,)))
    chunks = []
    module.decoder.register_forward_pre_hook(lambda _, args: chunks.append(args[0].shape[0]))
    objective = Objective(module, TrainConfig(), Ranks.current(), torch.device("cpu"))
    objective.validation(source, torch.arange(60))
    assert sum(chunks) == 60
    assert max(chunks) * width <= _EVAL_VALUES < DENSE_CHUNK_VALUES
    assert max(chunks) < source_chunk_rows(source, 4096)  # (the chunks of transform, larger)


def test_decoding_without_gradients_adds_the_linear_path_in_place_with_the_same_bits():
    module, _ = _model_and_batch((32, 16), True)
    code = torch.randn(50, 5)
    with torch.no_grad():
        in_place = module.decode_logits(code)
    expected = module.decoder(code) + module.linear_decoder(code)  # with gradients: a new sum
    assert torch.equal(in_place, expected.detach())
    assert module.decode_logits(code).requires_grad
