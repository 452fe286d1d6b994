"""Ensembles in one pass: the stacked network, lock-step training, the call sites.

A one-pass fit must give what fitting the members one after another gives (same seeds, same
batches, same masking draws): the same epochs, the same early stops, and weights and
histories equal up to the rounding of batched matrix products.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from sklearn.base import clone

from aekit import Autoencoder, AutoencoderImputer, AutoencoderOutlierDetector, ModelConfig
from aekit.estimator import ensemble as estimator_ensemble
from aekit.estimator.ensemble import fit_members
from aekit.model.hourglass import Hourglass, Output
from aekit.model.stacked import MemberBatchNorm1d, MemberLinear, StackedHourglass, stack_refusal
from aekit.training.objective import loss_sum
from aekit.training.prepare import member_seeds

RTOL = 1e-5  # relative: batched matrix products round differently from one-by-one ones


def _rows(n: int = 400, d: int = 10, missing: float = 0.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    X[:, d // 2 :] = X[:, : d - d // 2] @ rng.normal(size=(d - d // 2, d // 2))
    if missing:
        X[rng.random(X.shape) < missing] = np.nan
    return X


def _members(base: Autoencoder, n: int = 3) -> list[Autoencoder]:
    return [clone(base).set_params(random_state=s) for s in member_seeds(0, n)]


def _assert_same_fit(
    alone: list[Autoencoder], together: list[Autoencoder], X: np.ndarray, weights: bool = True
) -> None:
    """Same epochs, stops and histories; same weights (or, with ``weights=False``, outputs)."""
    for a, b in zip(alone, together, strict=True):
        assert a.n_iter_ == b.n_iter_
        assert a.history_.best_epoch == b.history_.best_epoch
        assert a.history_.stop_reason == b.history_.stop_reason
        for key in ("train_loss", "val_error", "lr"):
            np.testing.assert_allclose(
                [r[key] for r in a.history_.records], [r[key] for r in b.history_.records], RTOL
            )
        np.testing.assert_allclose(a.score_samples(X), b.score_samples(X), rtol=RTOL * 10)
        if not weights:
            continue
        for (name, v), (_, w) in zip(
            a.module_.state_dict().items(), b.module_.state_dict().items(), strict=True
        ):
            scale = float(v.abs().max()) if v.numel() else 0.0
            diff = float((v.double() - w.double()).abs().max()) if v.numel() else 0.0
            assert diff <= RTOL * max(scale, 1e-6), (name, diff, scale)


@pytest.mark.parametrize(
    ("options", "native"),  # native: runs without vmap
    [
        ({}, True),
        ({"missing": True}, True),
        ({"missing": True, "categorical_blocks": ((6, 9),)}, False),
        ({"batch_norm": True, "output": "sigmoid", "linear_path": True}, True),
        ({"batch_norm": True, "missing": True, "categorical_blocks": ((6, 9),)}, False),
        ({"image_shape": (1, 4, 4), "hidden": (3,), "input_dim": 16}, False),
    ],
)
def test_stacked_forward_is_each_members_forward(options, native):
    config = ModelConfig(**{"input_dim": 12, "code_dim": 3, "hidden": (8,), **options})
    members = [Hourglass(config, torch.Generator().manual_seed(s)) for s in range(3)]
    x = torch.randn(3, 20, config.input_dim, generator=torch.Generator().manual_seed(9))
    if config.missing:
        x[0, :5, 2] = float("nan")
    stack = StackedHourglass(members).train(False)
    assert stack.native == native
    recon, code, *_ = stack.forward(x)
    for i, member in enumerate(members):
        out = member.eval()(x[i])
        torch.testing.assert_close(recon[i], out.recon, rtol=RTOL, atol=1e-6)
        torch.testing.assert_close(code[i], out.code, rtol=RTOL, atol=1e-6)


def test_native_stack_runs_member_linear_layers_and_leaves_members_plain():
    config = ModelConfig(input_dim=6, code_dim=2, hidden=(5,), missing=True, linear_path=True)
    members = [Hourglass(config, torch.Generator().manual_seed(s)) for s in range(2)]
    stack = StackedHourglass(members)
    linears = [m for m in stack.net.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(type(m) is MemberLinear for m in linears)
    assert all(
        type(m) is torch.nn.Linear for m in members[0].modules() if isinstance(m, torch.nn.Linear)
    )


@pytest.mark.parametrize("momentum", [0.1, None])
def test_member_batch_norm_trains_as_each_members_batch_norm(momentum):
    # training mode: each member's rows normalised by their own statistics, and each
    # member's running statistics (and batch count) moved as its own BatchNorm1d moves them
    config = ModelConfig(input_dim=6, code_dim=2, hidden=(5,), batch_norm=True, missing=True)

    def built() -> list[Hourglass]:
        nets = [Hourglass(config, torch.Generator().manual_seed(s)) for s in range(3)]
        for norm in (m for net in nets for m in net.modules()):
            if isinstance(norm, torch.nn.BatchNorm1d):
                norm.momentum = momentum
        return nets

    members, twins = built(), built()
    stack = StackedHourglass(members).train(True)
    assert any(type(m) is MemberBatchNorm1d for m in stack.net.modules())
    g = torch.Generator().manual_seed(4)
    for _ in range(3):
        x = torch.randn(3, 9, 6, generator=g) * torch.tensor([1.0, 3.0, 0.5]).view(3, 1, 1)
        x[1, :2, 4] = float("nan")
        recon = stack.forward(x).recon
        for i, twin in enumerate(twins):
            torch.testing.assert_close(recon[i], twin.train()(x[i]).recon, rtol=RTOL, atol=1e-6)
    stack.write_back()
    for member, twin in zip(members, twins, strict=True):
        ours, theirs = member.state_dict(), twin.state_dict()
        moved = [k for k in ours if "running" in k or "num_batches" in k]
        assert moved
        for name in moved:
            torch.testing.assert_close(ours[name], theirs[name], rtol=RTOL, atol=1e-6, msg=name)


def test_members_view_their_slices_until_write_back():
    config = ModelConfig(input_dim=5, code_dim=2, hidden=(4,), batch_norm=True)
    members = [Hourglass(config, torch.Generator().manual_seed(s)) for s in range(2)]
    stack = StackedHourglass(members)
    with torch.no_grad():
        stack.net.encoder[0].weight.add_(1.0)  # as an optimiser step does
    assert torch.equal(members[1].encoder[0].weight, stack.net.encoder[0].weight[1])
    stack.write_back()
    with torch.no_grad():
        stack.net.encoder[0].weight.add_(1.0)
    assert torch.equal(members[1].encoder[0].weight + 1.0, stack.net.encoder[0].weight[1])


@pytest.mark.parametrize("loss", ["mse", "bce"])
@pytest.mark.parametrize("holes", [False, True])
def test_loss_sum_per_member_is_each_members_sum(loss, holes):
    g = torch.Generator().manual_seed(3)
    recon, logits = torch.rand(3, 7, 4, generator=g), torch.randn(3, 7, 4, generator=g)
    target = torch.rand(3, 7, 4, generator=g)
    if holes:
        target[1, :3, 2] = float("nan")
    observed = ~torch.isnan(target) if holes else None
    out = Output(recon, None, logits, None)
    each = loss_sum(out, target, loss, observed, dim=(1, 2))
    assert each.shape == (3,)
    for i in range(3):
        one = Output(recon[i], None, logits[i], None)
        seen = None if observed is None else observed[i]
        torch.testing.assert_close(each[i], loss_sum(one, target[i], loss, seen))


def test_keep_drops_slices_and_write_back_fills_the_members():
    config = ModelConfig(input_dim=5, code_dim=2, hidden=(4,))
    members = [Hourglass(config, torch.Generator().manual_seed(s)) for s in range(3)]
    stack = StackedHourglass(members)
    with torch.no_grad():
        for p in stack.net.parameters():
            p.add_(1.0)
    before = members[1].encoder[0].weight.detach().clone()
    stack.keep([0, 2])
    assert stack.positions == [0, 2] and len(stack) == 2
    stack.write_back()
    assert torch.equal(members[1].encoder[0].weight, before)  # dropped: left alone
    assert torch.equal(members[2].encoder[0].weight, stack.net.encoder[0].weight[1])


def test_stack_refusal_names_what_cannot_be_stacked():
    plain = ModelConfig(input_dim=5, code_dim=2)
    assert stack_refusal([Hourglass(plain), Hourglass(plain)]) is None
    dropout = ModelConfig(input_dim=5, code_dim=2, hidden=(4,), dropout=0.2)
    assert "dropout" in stack_refusal([Hourglass(dropout), Hourglass(dropout)])
    assert "differ" in stack_refusal([Hourglass(plain), Hourglass(dropout)])
    with pytest.raises(ValueError, match="dropout"):
        StackedHourglass([Hourglass(dropout), Hourglass(dropout)])
    normed = ModelConfig(input_dim=5, code_dim=2, hidden=(4,), batch_norm=True)
    pair = [Hourglass(normed), Hourglass(normed)]
    norms = [[m for m in net.modules() if isinstance(m, torch.nn.BatchNorm1d)] for net in pair]
    for norm in norms[0] + norms[1]:
        norm.momentum = None  # a cumulative average: one over the member's own count
    assert stack_refusal(pair) is None
    norms[1][0].num_batches_tracked.fill_(7)
    assert "counted different numbers of batches" in stack_refusal(pair)
    for norm in norms[0] + norms[1]:
        norm.momentum = 0.1  # a fixed factor: counts may differ
    assert stack_refusal(pair) is None


def test_trainers_refuse_to_stack_on_rows_that_are_not_one_dense_tensor_a_member():
    from aekit.config import TrainConfig
    from aekit.training.ensemble import stack_refusal as training_refusal
    from aekit.training.trainer import Trainer

    config = ModelConfig(input_dim=6, code_dim=2, hidden=(4,))
    pair = [
        Trainer(Hourglass(config, torch.Generator().manual_seed(s)), TrainConfig(random_state=s))
        for s in (0, 1)
    ]
    rows = torch.from_numpy(_rows(40, 6))
    assert training_refusal(pair, rows) is None
    assert training_refusal(pair, [rows, rows + 1]) is None
    assert "dense" in training_refusal(pair, rows.to_sparse())
    assert "dense" in training_refusal(pair, [rows.to_sparse(), rows.to_sparse()])
    assert training_refusal(pair, [rows, rows, rows]) == "3 row tensors for 2 members"


def test_one_pass_equals_members_fitted_one_by_one():
    X = _rows()
    base = Autoencoder(code_dim=3, epochs=4, threads=1, device="cpu", loss="mse")
    alone = fit_members(_members(base), X, together=False)
    together = fit_members(_members(base), X)
    _assert_same_fit(alone, together, X)


def test_members_stop_early_on_their_own_and_match_one_by_one():
    """Masking noise from each member's generator, early stopping per member (frozen slices)."""
    X = _rows(missing=0.1)
    base = Autoencoder(  # validated with entries hidden, as the imputer's members are
        code_dim=3, hidden=(16, 16), missing=True, val_hidden=True, patience=2, epochs=12,
        threads=1, device="cpu",
    )  # fmt: skip
    alone = fit_members(_members(base, 4), X, together=False)
    together = fit_members(_members(base, 4), X)
    assert len({m.n_iter_ for m in together}) > 1  # members stopped at different epochs
    _assert_same_fit(alone, together, X)


def test_batch_norm_members_match_one_by_one():
    X = np.abs(_rows())
    base = Autoencoder(code_dim=3, hidden=(16,), scaling="minmax", epochs=3, threads=1)
    alone = fit_members(_members(base), X, together=False)
    together = fit_members(_members(base), X)
    assert together[0].model_config_.batch_norm  # "auto" on for rows in [0, 1]
    # A bias just before batch norm gets a gradient of rounding noise only, which Adam
    # scales up to full steps: it differs between runs and changes no output (the norm
    # removes it). So the outputs are compared, not the weights.
    _assert_same_fit(alone, together, X, weights=False)


def test_one_pass_is_bit_identical_across_runs():
    X = _rows(missing=0.05)
    base = Autoencoder(code_dim=3, hidden=(8,), missing=True, epochs=3, threads=1)
    first, second = fit_members(_members(base), X), fit_members(_members(base), X)
    for a, b in zip(first, second, strict=True):
        for v, w in zip(
            a.module_.state_dict().values(), b.module_.state_dict().values(), strict=True
        ):
            assert torch.equal(v, w)


def test_members_that_cannot_share_a_network_are_fitted_alone():
    X = _rows()
    base = Autoencoder(code_dim=2, hidden=(8,), dropout=0.1, epochs=2, threads=1)
    fallback = fit_members(_members(base), X)
    alone = [m.fit(X) for m in _members(base)]
    for a, b in zip(alone, fallback, strict=True):  # exactly the sequential fit
        for v, w in zip(
            a.module_.state_dict().values(), b.module_.state_dict().values(), strict=True
        ):
            assert torch.equal(v, w)


@pytest.fixture
def one_by_one(monkeypatch):
    """Make the call sites fit their members one after another (the reference)."""

    def use(module):
        sequential = functools.partial(estimator_ensemble.fit_members, together=False)
        monkeypatch.setattr(module, "fit_members", sequential)

    return use


def test_detector_scores_as_with_members_fitted_alone(one_by_one):
    from aekit.anomaly import detector as detector_module

    X = _rows(300, 8)
    make = functools.partial(
        AutoencoderOutlierDetector,
        Autoencoder(code_dim=2, epochs=3, threads=1, loss="mse"),
        n_estimators=3,
        random_state=0,
    )
    together = make().fit(X)
    one_by_one(detector_module)
    alone = make().fit(X)
    np.testing.assert_allclose(together.score_samples(X), alone.score_samples(X), rtol=1e-4)
    assert len(together.estimators_) == 3


def test_imputer_fills_as_with_members_fitted_alone(one_by_one, tmp_path):
    from aekit.impute import imputer as imputer_module

    X = _rows(300, 8, missing=0.1)
    make = functools.partial(
        AutoencoderImputer,
        Autoencoder(code_dim=3, hidden=(16,), epochs=3, threads=1),
        n_estimators=3,
        random_state=0,
    )
    together = make().fit(X)
    filled = together.transform(X)
    loaded = AutoencoderImputer.load(together.save(tmp_path / "imputer"))
    np.testing.assert_array_equal(loaded.transform(X), filled)  # the folder is the same kind
    one_by_one(imputer_module)
    np.testing.assert_allclose(filled, make().fit(X).transform(X), rtol=1e-4, atol=1e-5)


def test_a_lone_member_starts_as_five_do_without_the_init_search():
    """init="auto" in an ensemble starts from PCA's solution, one member or several."""
    X = _rows(n=120, d=6)
    base = Autoencoder(code_dim=2, hidden=(8,), threads=1, device="cpu")  # init="auto"
    for n in (1, 2):
        members = fit_members(_members(base, n), X)
        for m in members:
            assert "selection" not in (m.history_.initial or {})
    alone = clone(base).set_params(random_state=0).fit(X)
    assert "selection" in alone.history_.initial  # a plain fit still searches
