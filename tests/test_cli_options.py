"""The CLI's estimator options: generated from the one table, forwarded only when given."""

import argparse

import pytest

from aekit.cli.impute import NOT_FOR_IMPUTERS
from aekit.cli.options import (
    EXCLUDED,
    NOT_FOR_COMPARISONS,
    SHORTHANDS,
    estimator_kwargs,
    run_seed,
)
from aekit.cli.parser import build_parser
from aekit.config.options import estimator_defaults

TABLE = estimator_defaults()
REQUIRED = {"fit": ["DATA", "-o", "m"], "compare": ["DATA"], "demo": [], "impute": ["D", "-o", "F"]}
OFFERED = {
    "fit": set(TABLE) - EXCLUDED,
    "compare": set(TABLE) - EXCLUDED - NOT_FOR_COMPARISONS,
    "demo": set(TABLE) - EXCLUDED - NOT_FOR_COMPARISONS,
    "impute": set(TABLE) - EXCLUDED - NOT_FOR_IMPUTERS,
}


def command_parser(name):
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def parse(command, *options):
    argv = [command, *REQUIRED[command]]
    if command == "fit" and "--code-dim" not in options:
        argv += ["--code-dim", "3"]
    return build_parser().parse_args([*argv, *options])


def test_the_exclusions_are_parameters():
    assert (EXCLUDED | NOT_FOR_COMPARISONS).issubset(TABLE)
    assert {"code_dim", "random_state", "keep_checkpoints", "divergence_lr_factor"} <= set(TABLE)


@pytest.mark.parametrize("command", sorted(OFFERED))
def test_generated_options_cover_the_table(command):
    """One option per parameter, --name-with-dashes, with the table's default in its help."""
    actions = {a.dest: a for a in command_parser(command)._actions if a.dest in TABLE}
    assert set(actions) == OFFERED[command]
    for name, action in actions.items():
        default, doc = TABLE[name].default, TABLE[name].doc
        assert "--" + name.replace("_", "-") == action.option_strings[0]
        assert action.help.startswith(doc.split(". ")[0])  # its one documentation text
        if action.required:
            assert action.help.endswith("(required)")
        elif action.default is argparse.SUPPRESS:  # not passed: not in the namespace
            shown = "none" if default is None else default
            shown = ("on" if default else "off") if isinstance(default, bool) else shown
            assert action.help.endswith(f"(default: {shown})"), action.help
    assert actions["random_state"].option_strings == ["--random-state", "--seed"]


@pytest.mark.parametrize("command", sorted(OFFERED))
def test_no_options_forward_nothing(command):
    """The library's defaults apply: the CLI forwards only what was typed (and its rules)."""
    expected = {
        "fit": {"code_dim": 3},
        "compare": {},
        "demo": {"random_state": 0},
        "impute": {"random_state": 0},
    }
    assert estimator_kwargs(parse(command)) == expected[command]


def sample(name, row):
    """A value other than the default, and how it is typed."""
    kinds = row.kind.split(" or ")
    if "bool" in kinds:
        value = row.default is not True
        return value, ["--" + ("" if value else "no-") + name.replace("_", "-")]
    if row.choices:
        value = next(c for c in reversed(row.choices) if c not in (row.default, None))
    elif "tuple of int" in kinds:
        value = (4, 2) if name == "hidden" else (1, 8, 8)
    elif "int" in kinds:
        value = (row.default if isinstance(row.default, int) else 0) + 7
    elif "float" in kinds:
        value = 0.25 if row.default != 0.25 else 0.5
    else:
        value = "cpu" if name == "device" else "x"
    text = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
    return value, ["--" + name.replace("_", "-"), text]


@pytest.mark.parametrize("name", sorted(OFFERED["fit"]))
def test_each_option_is_forwarded_with_its_type(name):
    value, typed = sample(name, TABLE[name])
    kwargs = estimator_kwargs(parse("fit", *typed))
    assert kwargs == {"code_dim": 3, name: value}
    assert type(kwargs[name]) is type(value)


def test_every_option_reaches_the_estimator():
    from aekit import Autoencoder

    for name in sorted(OFFERED["fit"]):
        value, typed = sample(name, TABLE[name])
        params = Autoencoder(**estimator_kwargs(parse("fit", *typed))).get_params()
        assert params[name] == value


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        (["--sparsity", "l1:0.01"], {"sparsity": "l1", "sparsity_weight": 0.01}),
        (["--sparsity", "kl:0.1"], {"sparsity": "kl", "sparsity_target": 0.1}),
        (["--sparsity", "topk:32"], {"sparsity": "topk", "sparsity_k": 32}),
        (["--sparsity", "topk"], {"sparsity": "topk"}),
        (["--sparsity", "none"], {"sparsity": None}),
        (["--sparsity", "l1:0.01", "--sparsity-weight", "0.5"],
         {"sparsity": "l1", "sparsity_weight": 0.5}),  # the last one typed wins
        (["--noise", "gaussian:0.3"], {"noise": "gaussian", "noise_level": 0.3}),
        (["--noise", "salt_and_pepper:0.1"], {"noise": "salt_and_pepper", "noise_level": 0.1}),
        (["--hidden", "512,256"], {"hidden": (512, 256)}),
        (["--hidden", "16"], {"hidden": (16,)}),
        (["--hidden", "auto"], {"hidden": "auto"}),
        (["--hidden", "none"], {"hidden": ()}),
        (["--patience", "0"], {"patience": None}),
        (["--patience", "none"], {"patience": None}),
        (["--patience", "3"], {"patience": 3}),
        (["--seed", "7"], {"random_state": 7}),
        (["--random-state", "none"], {"random_state": None}),
        (["--epochs", "auto"], {"epochs": "auto"}),
        (["--image-shape", "auto"], {"image_shape": "auto"}),
        (["--max-time", "none"], {"max_time": None}),
        (["--scaling", "none"], {"scaling": "none"}),  # a choice, not None
        (["--no-batch-norm"], {"batch_norm": False}),
    ],
)  # fmt: skip
def test_shorthands_users_already_type(typed, expected):
    assert estimator_kwargs(parse("fit", *typed)) == {"code_dim": 3, **expected}


def test_the_shorthand_kinds_are_the_choices():
    for name, pairs in SHORTHANDS.items():
        assert set(pairs) == set(TABLE[name].choices) - {None}
        assert set(pairs.values()) <= set(TABLE)


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        (["--sparsity", "l3:1"], "unknown sparsity 'l3'"),
        (["--sparsity", "topk:x"], "sparsity topk: expected INT|none (sparsity_k) after ':'"),
        (["--noise", "none:0.3"], "noise none takes no ':NUMBER'"),
        (["--activation", "swish"], "expected {relu,"),
        (["--epochs", "many"], "expected INT|auto, got 'many'"),
        (["--hidden", "16,x"], "expected INT,INT,...|auto|none, got '16,x'"),
        (["--lr", "fast"], "expected FLOAT, got 'fast'"),
    ],
)
def test_bad_values_are_usage_errors(capsys, typed, message):
    with pytest.raises(SystemExit) as exc:
        parse("fit", *typed)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_fit_needs_a_code_dim(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["fit", "DATA", "-o", "m"])
    assert "--code-dim" in capsys.readouterr().err


def test_run_seed_is_the_given_one_or_a_fresh_draw():
    assert run_seed(parse("fit", "--seed", "11")) == 11
    assert run_seed(parse("demo")) == 0  # the demo's own, fixed seed
    drawn = {run_seed(parse("fit")) for _ in range(4)}
    assert len(drawn) > 1 and all(0 <= seed < 2**32 for seed in drawn)
