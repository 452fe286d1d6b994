"""aekit's Adam(W): PyTorch's fused steps bit for bit, without importing ``torch._dynamo``."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from aekit.training.optim import Adam, AdamW


def _train(kind: type[torch.optim.Optimizer], steps: int = 25) -> tuple[torch.Tensor, dict]:
    """A small net trained by ``kind`` (two groups, one decayed) under a cosine schedule."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(20, 8), torch.nn.ReLU(), torch.nn.Linear(8, 20))
    groups = [
        {"params": list(net[0].parameters()), "weight_decay": 1e-2},
        {"params": list(net[2].parameters()), "weight_decay": 0.0},
    ]
    optimizer = kind(groups, lr=3e-3, fused=True)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10)
    x = torch.randn(64, 20)
    for _ in range(steps):
        optimizer.zero_grad()
        ((net(x) - x) ** 2).mean().backward()
        optimizer.step()
        schedule.step()
    return torch.cat([p.detach().flatten() for p in net.parameters()]), optimizer.state_dict()


@pytest.mark.parametrize(("ours", "theirs"), [(Adam, torch.optim.Adam), (AdamW, torch.optim.AdamW)])
def test_steps_and_state_match_pytorch_fused_bit_for_bit(ours, theirs):
    weights, state = _train(ours)
    ref_weights, ref_state = _train(theirs)
    assert torch.equal(weights, ref_weights)
    assert state["param_groups"] == ref_state["param_groups"]
    for index, entry in ref_state["state"].items():
        for key, value in entry.items():
            assert torch.equal(state["state"][index][key], value), (index, key)


def test_state_moves_between_ours_and_pytorchs():
    torch.manual_seed(1)
    p = torch.nn.Parameter(torch.randn(5))
    ours = Adam([p], lr=1e-2, fused=True)
    p.grad = torch.randn(5)
    ours.step()
    theirs = torch.optim.Adam([p], lr=1e-2, fused=True)
    theirs.load_state_dict(ours.state_dict())
    back = Adam([p], lr=1e-2, fused=True)
    back.load_state_dict(theirs.state_dict())
    assert torch.equal(back.state[p]["exp_avg_sq"], ours.state[p]["exp_avg_sq"])


def test_options_outside_the_direct_path_take_pytorchs_step():
    torch.manual_seed(2)
    results = []
    for kind in (Adam, torch.optim.Adam):
        p = torch.nn.Parameter(torch.ones(4))
        optimizer = kind([p], lr=1e-1, amsgrad=True, fused=True)
        for g in (torch.tensor([1.0, -2.0, 3.0, 0.5]), torch.tensor([0.1, 0.2, -0.3, 4.0])):
            p.grad = g.clone()
            optimizer.step()
        results.append(p.detach().clone())
    assert torch.equal(*results)


def test_training_never_imports_the_compiler():
    """Each of the three estimators and the SAE trains without ``torch._dynamo`` (1-2 s)."""
    code = """
import sys
import numpy as np
from aekit import Autoencoder, AutoencoderImputer, AutoencoderOutlierDetector, SparseAutoencoder
rng = np.random.default_rng(0)
X = rng.random((120, 6)).astype(np.float32)
Autoencoder(2, epochs=2, random_state=0).fit(X)
AutoencoderOutlierDetector(random_state=0).fit(X)
holes = X.copy()
holes[rng.random(X.shape) < 0.2] = np.nan
AutoencoderImputer(random_state=0).fit_transform(holes)
SparseAutoencoder(code_dim=16, k=2, batch_size=32).fit(X)
print("torch._dynamo" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stdout + out.stderr
