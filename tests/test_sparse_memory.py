"""The sparse path's memory savings give the same numbers: block steps, kept weights."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from aekit.config import ModelConfig, TrainConfig
from aekit.data.sparse import CsrRows
from aekit.model import Hourglass, gram_error
from aekit.model.sparse_net import exact_squared_error, scaled_batch
from aekit.training.kept_weights import KeptWeights
from aekit.training.optim import make_optimizer


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
