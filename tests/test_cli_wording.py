"""The command line's words: hints name options the command has, one format per option.

``aekit sae``'s errors name ``--key`` (which it has), not ``key=`` or ``--no-stream`` (which
it lacks); ``--image-shape`` reads alike in ``fit`` and ``report``; a numeric model given a
text column names the column; ``--stop-after`` below ``log_every`` says what happened.
"""

import argparse
import re

import numpy as np
import pandas as pd
import pytest

from aekit import Autoencoder
from aekit.cli import main
from aekit.cli.parser import build_parser
from aekit.data.images import drawing_shape
from aekit.errors import DataError
from tests.helpers import FAST

SAE = ["--code-dim", "32", "--k", "2", "--batch-size", "10"]


def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _options(command):
    """Every option string the subcommand accepts."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {s for action in sub.choices[command]._actions for s in action.option_strings}


def _named_options(err):
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", err))


def test_the_sae_commands_hints_name_options_it_has(tmp_path, capsys):
    from safetensors.numpy import save_file

    (tmp_path / "acts").mkdir()
    rows = np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32)
    save_file({"resid": rows, "mlp": rows * 2}, str(tmp_path / "acts" / "part-0.safetensors"))
    pd.DataFrame({"x": np.arange(60.0), "t": ["a", "b"] * 30}).to_parquet(tmp_path / "t.parquet")
    has = _options("sae")
    for data, says in (("acts", "--key NAME"), ("t.parquet", "column 't' holds string")):
        code, _, err = _cli(capsys, "sae", tmp_path / data, "-o", tmp_path / "s", *SAE)
        assert code == 2 and says in err and err.count("\n") == 1, err
        assert "--no-stream" not in err and " key= to" not in err
        assert _named_options(err) <= has, err
    code, _, err = _cli(capsys, "sae", tmp_path / "acts", "-o", tmp_path / "s", *SAE, "--key", "x")
    assert code == 2 and "has no tensor 'x'" in err and "'mlp', 'resid'" in err
    assert (
        _cli(capsys, "sae", tmp_path / "acts", "-o", tmp_path / "s", *SAE, "--key", "mlp")[0] == 0
    )
    code, _, err = _cli(capsys, "sae", tmp_path / "t.parquet", "-o", tmp_path / "z", "--key", "mlp")
    assert code == 2 and "--key names a tensor of .safetensors shards" in err
    # aekit fit streams it too, and can read it into memory instead: its hint says so
    argv = ["fit", tmp_path / "t.parquet", "-o", tmp_path / "m", "--code-dim", "1", "--stream"]
    code, _, err = _cli(capsys, *argv)
    assert code == 2 and "--no-stream" in err and _named_options(err) <= _options("fit"), err


@pytest.mark.parametrize(
    ("text", "value"),
    [("1,8,8", (1, 8, 8)), ("8,8", (8, 8)), ("8x8", (8, 8)), ("auto", "auto"), ("none", None)],
)
def test_image_shape_reads_alike_in_fit_and_report(text, value):
    parser = build_parser()
    fit = parser.parse_args(["fit", "d.npy", "-o", "m", "--code-dim", "2", "--image-shape", text])
    report = parser.parse_args(["report", "m", "d.npy", "-o", "r", "--image-shape", text])
    assert fit.image_shape == report.image_shape == value
    if isinstance(value, tuple):
        assert drawing_shape(64, value) == (8, 8)  # the report draws a 1-channel shape too


def test_image_shape_is_written_alike_in_fit_and_report(capsys):
    metavars = []
    for command in ("fit", "report"):
        assert main([command, "--help"]) == 0
        found = re.search(r"^\s+--image-shape (\S+)$", capsys.readouterr().out, re.MULTILINE)
        metavars.append(found.group(1))
    assert metavars[0] == metavars[1] == "INT,INT,...|auto|none"
    with pytest.raises(DataError, match="one channel"):
        drawing_shape(48, (3, 4, 4))


def test_a_numeric_model_names_the_text_column(tmp_path, capsys):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(80, 3)), columns=["a", "b", "c"])
    ae = Autoencoder(code_dim=1, **FAST).fit(frame)
    ae.save(tmp_path / "m")
    text = frame.assign(b=frame["b"].astype(str))
    text.loc[5, "b"] = "oops"
    with pytest.raises(DataError, match=r"column 'b' holds 'oops' \(first at row 5\)"):
        ae.transform(text)
    words = np.where(frame["b"] > 0, "up", "down")  # a text column, all words: named too
    text.assign(b=words).to_csv(tmp_path / "t.csv", index=False)
    code, out, err = _cli(
        capsys, "score", tmp_path / "m", tmp_path / "t.csv", "-o", tmp_path / "s.npy"
    )
    assert code == 2 and out == "" and err.count("\n") == 1
    assert f"column 'b' holds {str(words[0])!r}" in err and "fitted on numbers" in err


def test_stop_after_below_log_every_says_what_happened(tmp_path, capsys):
    np.save(tmp_path / "a.npy", np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32))
    argv = ["sae", tmp_path / "a.npy", "-o", tmp_path / "s", *SAE, "--stop-after", "5"]
    code, out, _ = _cli(capsys, *argv)
    assert code == 0 and "no steps" not in out
    assert "5 step(s), fewer than one log interval (--log-every 100)" in out
    assert _named_options(out) <= _options("sae")
