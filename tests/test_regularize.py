import math

import torch

from aekit.model.regularize import corrupt, dead_unit_code, kl_penalty, l1_penalty, topk_mask


def test_l1_is_row_mean_of_abs_sum():
    code = torch.tensor([[1.0, -2.0], [0.0, 3.0]])
    assert l1_penalty(code).item() == 3.0


def test_kl_zero_at_target_and_positive_elsewhere():
    at_target = torch.full((10, 4), 0.05)
    assert abs(kl_penalty(at_target, 0.05).item()) < 1e-6
    busy = torch.full((10, 4), 0.5)
    expected = 4 * (0.05 * math.log(0.05 / 0.5) + 0.95 * math.log(0.95 / 0.5))
    assert math.isclose(kl_penalty(busy, 0.05).item(), expected, rel_tol=1e-5)


def test_topk_keeps_exactly_k_largest():
    code = torch.tensor([[0.1, 0.9, 0.5, 0.7], [4.0, 3.0, 2.0, 1.0]])
    out = topk_mask(code, 2)
    assert torch.equal(out, torch.tensor([[0.0, 0.9, 0.0, 0.7], [4.0, 3.0, 0.0, 0.0]]))


def test_corruptions_hit_the_requested_share():
    gen = torch.Generator().manual_seed(0)
    x = torch.full((200, 50), 0.5)
    masked = corrupt(x, "masking", 0.25, gen)
    assert abs((masked == 0).float().mean().item() - 0.25) < 0.02
    sp = corrupt(x, "salt_and_pepper", 0.2, gen, low=torch.zeros(50), high=torch.ones(50))
    changed = sp != 0.5
    assert abs(changed.float().mean().item() - 0.2) < 0.02
    assert set(sp[changed].unique().tolist()) == {0.0, 1.0}
    noisy = corrupt(x, "gaussian", 0.3, gen)
    assert abs((noisy - x).std().item() - 0.3) < 0.01


def test_corruption_is_reproducible_from_the_generator():
    x = torch.rand(8, 8)
    a = corrupt(x, "gaussian", 1.0, torch.Generator().manual_seed(3))
    b = corrupt(x, "gaussian", 1.0, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_dead_unit_code_keeps_top_dead_units_only():
    pre = torch.tensor([[5.0, -1.0, 2.0, -3.0], [0.5, -4.0, -2.0, 1.0]], requires_grad=True)
    dead = torch.tensor([False, True, True, True])
    aux = dead_unit_code(pre, dead, 2)
    assert torch.equal(aux, torch.tensor([[0.0, -1.0, 2.0, 0.0], [0.0, 0.0, -2.0, 1.0]]))
    aux.sum().backward()
    assert torch.equal(pre.grad, torch.tensor([[0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 1.0, 1.0]]))


def test_dead_unit_code_with_fewer_dead_units_than_k_is_finite():
    pre = torch.randn(3, 5)
    aux = dead_unit_code(pre, torch.tensor([False, False, True, False, False]), 4)
    assert torch.isfinite(aux).all()
    assert torch.equal(aux[:, 2], pre[:, 2]) and (aux[:, [0, 1, 3, 4]] == 0).all()
    assert (dead_unit_code(pre, torch.zeros(5, dtype=torch.bool), 2) == 0).all()


def test_masking_noise_is_the_missing_value_draw_filled_with_zero():
    """One rule for hiding a random share of entries: ``corrupt`` masks what hide_entries hides."""
    from aekit.data.missing import hide_entries

    x = torch.randn(40, 7, generator=torch.Generator().manual_seed(1))
    masked = corrupt(x, "masking", 0.3, torch.Generator().manual_seed(5))
    hidden = hide_entries(x, 0.3, torch.Generator().manual_seed(5))
    assert torch.equal(masked == 0, hidden.isnan())
    assert torch.equal(masked, hidden.nan_to_num(0.0))


def test_seeds_derived_as_before():
    """Seeds are part of every result at a fixed random_state: pinned to aekit 0.x's values."""
    from aekit.training.prepare import derive_seeds, member_seeds

    assert member_seeds(7, 3) == [7, 3939563265, 4185785210]
    assert member_seeds(None, 2) == [None, None]
    assert derive_seeds(7, 2) == [4474668370826950401, 8988905292657444080]
