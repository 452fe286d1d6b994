import math

import pytest
import torch

from aekit import ConfigError, Hourglass, ModelConfig


def build(**kwargs):
    return Hourglass(
        ModelConfig(**{"input_dim": 6, "code_dim": 3, **kwargs}), torch.Generator().manual_seed(0)
    )


def test_shapes_and_mirrored_decoder():
    model = build(hidden=(16, 8))
    out = model(torch.rand(5, 6))
    assert out.recon.shape == (5, 6) and out.code.shape == (5, 3)
    enc = [m.out_features for m in model.encoder if isinstance(m, torch.nn.Linear)]
    dec = [m.out_features for m in model.decoder if isinstance(m, torch.nn.Linear)]
    assert enc == [16, 8, 3] and dec == [8, 16, 6]


def test_linear_model_is_one_affine_map_each_way():
    model = build(hidden=(), activation="identity")
    assert len(model.encoder) == 1 and len(model.decoder) == 1
    x = torch.rand(4, 6)
    lin = model.decoder[0](model.encoder[0](x))
    assert torch.allclose(model(x).recon, lin)


def test_sigmoid_output_in_unit_interval():
    model = build(hidden=(8,), output="sigmoid")
    recon = model(torch.randn(50, 6) * 10).recon
    assert recon.min() >= 0 and recon.max() <= 1


def keeps_exactly_the_k_largest(code, pre, k):
    """Each row of ``code`` is ``pre`` at that row's ``k`` largest entries and zero elsewhere."""
    kept = code != 0
    largest = torch.zeros_like(kept).scatter_(1, pre.topk(k, dim=1).indices, True)
    exactly_k = bool((kept.sum(dim=1) == k).all())
    return exactly_k and torch.equal(kept, largest) and torch.equal(code[kept], pre[kept])


def test_topk_code_keeps_exactly_the_k_largest_activations():
    model = build(code_dim=10, hidden=(16,), sparsity="topk", sparsity_k=3)
    last = [m for m in model.encoder if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():  # every pre-activation positive, so the ReLU zeroes none of them
        last.weight.mul_(0.01)
        last.bias.copy_(torch.linspace(1.0, 2.0, 10))
    x = torch.rand(32, 6, generator=torch.Generator().manual_seed(0))
    pre = model.encode_pre(x)
    assert (pre > 0).all() and (pre.sort(dim=1).values.diff(dim=1) > 0).all()  # no ties
    assert keeps_exactly_the_k_largest(model.encode(x), pre, 3)
    # the check itself fails on what a broken top-k would give
    assert not keeps_exactly_the_k_largest(torch.zeros_like(pre), pre, 3)
    assert not keeps_exactly_the_k_largest(pre, pre, 3)
    smallest = torch.zeros_like(pre).scatter(1, (-pre).topk(3, dim=1).indices, 1.0) * pre
    assert not keeps_exactly_the_k_largest(smallest, pre, 3)


def test_l1_codes_nonnegative_and_decoder_columns_unit_norm():
    model = build(hidden=(8,), sparsity="l1")
    assert (model.encode(torch.randn(20, 6)) >= 0).all()
    norms = model.code_layer.weight.norm(dim=0)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-6)


def test_same_generator_same_weights_and_global_rng_untouched():
    state = torch.get_rng_state()
    a, b = build(hidden=(8,)), build(hidden=(8,))
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert torch.equal(state, torch.get_rng_state())


def test_scaling_round_trip():
    model = build()
    model.offset.fill_(2.0)
    model.scale.fill_(4.0)
    x = torch.rand(3, 6, generator=torch.Generator().manual_seed(0))
    # (x - 2) / 4 * 4 + 2 rounds to float32's spacing near 2, about 2.4e-7, for any x in [0, 1)
    assert torch.allclose(model.unscale_output(model.scale_input(x)), x, rtol=0, atol=5e-7)


def test_conv_model_shapes_and_mirrored_sizes():
    for shape, hidden in [((1, 28, 28), (8, 16)), ((3, 7, 5), (4,)), ((1, 8, 8), ())]:
        config = ModelConfig(
            input_dim=math.prod(shape), code_dim=5, hidden=hidden, image_shape=shape
        )
        model = Hourglass(config, torch.Generator().manual_seed(0))
        out = model(torch.rand(3, config.input_dim))
        assert out.recon.shape == (3, config.input_dim) and out.code.shape == (3, 5)
        convs = [m for m in model.encoder if isinstance(m, torch.nn.Conv2d)]
        assert [c.out_channels for c in convs] == list(hidden)
        deconvs = [m for m in model.decoder if isinstance(m, torch.nn.ConvTranspose2d)]
        expected = [*reversed(hidden[:-1]), shape[0]] if hidden else []
        assert [c.out_channels for c in deconvs] == expected


def test_conv_image_shape_must_match_input_dim():
    with pytest.raises(ConfigError, match="image_shape"):
        ModelConfig(input_dim=100, image_shape=(1, 28, 28))
    with pytest.raises(ConfigError, match="image_shape"):
        ModelConfig(input_dim=784, image_shape=(28, 28))
    conv_linear = ModelConfig(input_dim=4, hidden=(), activation="identity", image_shape=(1, 2, 2))
    assert not conv_linear.is_linear


def test_output_pre_is_code_before_activation():
    model = build(code_dim=10, hidden=(16,), sparsity="topk", sparsity_k=3)
    out = model(torch.rand(8, 6))
    assert out.pre.shape == (8, 10)
    assert torch.equal(out.code, model.code_activation(out.pre))
    assert model.rows_since_fired.shape == (10,)
    assert "rows_since_fired" not in build(code_dim=10).state_dict()


@pytest.mark.parametrize("output", ["identity", "sigmoid"])
def test_topk_dictionary_encodes_rows_relative_to_its_origin(output):
    model = build(code_dim=10, hidden=(), sparsity="topk", sparsity_k=3, output=output)
    mean = torch.linspace(0.1, 0.9, 6)
    model.set_origin_(mean)
    assert model.centred and torch.allclose(model.origin(), mean, atol=1e-6)
    assert torch.allclose(model.decode(torch.zeros(1, 10)), mean, atol=1e-6)
    x = torch.rand(4, 6)
    assert torch.allclose(model.encode_pre(x), model.encoder[0](x - mean), atol=1e-6)


def test_only_topk_dictionaries_are_centred():
    assert not build(code_dim=10, hidden=(8,), sparsity="topk", sparsity_k=3).centred
    assert not build(code_dim=10, hidden=(), sparsity="l1").centred
    model = build(hidden=(), activation="identity")
    before = model.code_layer.bias.clone()
    model.set_origin_(torch.ones(6))
    assert torch.equal(model.code_layer.bias, before)
