import pytest

from aekit import ConfigError, ModelConfig, TrainConfig


def test_round_trip():
    m = ModelConfig(input_dim=5, code_dim=2, hidden=(8, 4), sparsity="topk", sparsity_k=2)
    assert ModelConfig.from_dict(m.to_dict()) == m
    t = TrainConfig(epochs=3, random_state=7, patience=None, max_time=1.5)
    assert TrainConfig.from_dict(t.to_dict()) == t


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"code_dim": 0}, "code_dim"),
        ({"hidden": (8, 0)}, "hidden"),
        ({"activation": "swish"}, "activation"),
        ({"sparsity": "topk"}, "sparsity_k"),
        ({"sparsity": "topk", "sparsity_k": 5}, "exceeds code_dim"),
        ({"noise": "masking", "noise_level": 1.5}, "noise_level"),
        ({"dropout": 1.0}, "dropout"),
        ({"sparsity": "kl", "sparsity_target": 0.0}, "sparsity_target"),
    ],
)
def test_model_config_rejects(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ModelConfig(**{"input_dim": 4, "code_dim": 2, **kwargs})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epochs": 0}, "epochs"),
        ({"lr": -1.0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"optimizer": "sgd"}, "optimizer"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"patience": 0}, "patience"),
        ({"random_state": -1}, "random_state"),
        ({"precision": "fp8"}, "precision"),
    ],
)
def test_train_config_rejects(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**kwargs)


def test_from_dict_rejects_unknown_keys_and_types():
    data = ModelConfig(input_dim=4).to_dict()
    with pytest.raises(ConfigError, match="unknown ModelConfig key"):
        ModelConfig.from_dict({**data, "evil": 1})
    with pytest.raises(ConfigError, match="code_dim must be of type int"):
        ModelConfig.from_dict({**data, "code_dim": "2"})
    with pytest.raises(ConfigError, match="list of integers"):
        ModelConfig.from_dict({**data, "hidden": [8, "x"]})
    with pytest.raises(ConfigError, match="missing ModelConfig key"):
        ModelConfig.from_dict({k: v for k, v in data.items() if k != "input_dim"})
    with pytest.raises(ConfigError, match="JSON object"):
        ModelConfig.from_dict([1, 2])
    assert ModelConfig(input_dim=3, hidden=(), activation="identity").is_linear
