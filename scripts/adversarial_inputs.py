"""More cases of ``scripts/adversarial.py``: bad input, other columns, ONNX, checkpoints.

Bad DataFrames, the fitted columns reordered, renamed, missing or extra, ONNX metadata that
cannot be, checkpoint files that are not regular files (the folder-side cases are in
``scripts/adversarial_cases.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from adversarial_cases import (
    COLUMNS,
    Case,
    Context,
    Outcome,
    _same,
    _same_file,
    _use,
    cli_call,
    python_call,
)

from tests.helpers import FAST, ONNX_METADATA, REPLACEMENTS, set_onnx_metadata

ESTIMATORS = ("model", "detector", "imputer")


# -- DataFrames that cannot be rows ----------------------------------------------------------
def _frames(ctx: Context) -> dict[str, tuple[pd.DataFrame, bool]]:
    """Bad frames made from the context's frame, and whether an answer may come back."""
    X = ctx.frame.copy()
    text = X.assign(f=np.where(X["f"] > 0, "up", "down"))
    lists = X.astype(object)
    lists["c"] = [[v] for v in X["c"]]
    dicts = X.astype(object)
    dicts["c"] = [{"v": v} for v in X["c"]]
    mixed = X.set_axis([0, "b", "c", "d", "e", "f"], axis=1)
    zero = X.set_axis([0, "0", "c", "d", "e", "f"], axis=1)
    one_true = X.astype(object)
    one_true["f"] = [1 if i % 2 else True for i in range(len(X))]
    return {
        "duplicate-names": (X.set_axis(["a", "a", "c", "d", "e", "f"], axis=1), False),
        "duplicate-names-text": (text.set_axis(["a", "b", "c", "d", "f", "f"], axis=1), False),
        "list-cells": (lists, False),
        "dict-cells": (dicts, False),
        "mixed-name-types": (mixed, False),
        "names-0-and-'0'": (zero, False),
        "all-nan": (X * np.nan, False),
        "no-rows": (X.iloc[:0], False),
        "infinity": (X.replace(X.iloc[3, 2], np.inf), False),
        "one-true-column": (one_true, True),
        "all-nan-column": (X.assign(c=np.nan), True),
    }


def _frame_case(name: str, kind: str, step: str):
    def run(ctx: Context) -> Outcome:
        from aekit import Autoencoder, AutoencoderImputer, AutoencoderOutlierDetector

        where = ctx.case_dir()
        bad, may_work = _frames(ctx)[name]
        if name == "all-nan" and kind == "imputer" and step == "use":
            may_work = True  # holes everywhere: filled, as SimpleImputer does
        if step == "fit":
            ae = Autoencoder(code_dim=2, hidden=(8,), **FAST)
            make = {
                "model": lambda: ae,
                "detector": lambda: AutoencoderOutlierDetector(ae, n_estimators=2),
                "imputer": lambda: AutoencoderImputer(ae, n_estimators=2),
            }[kind]
            return python_call(lambda: make().fit(bad), _finite if may_work else None, where)
        return python_call(lambda: _use_on(kind, ctx, bad), _finite if may_work else None, where)

    return run


def _use_on(kind: str, ctx: Context, X: Any) -> Any:
    estimator = ctx.estimator(kind)
    return estimator.predict(X) if kind == "detector" else estimator.transform(X)


def _finite(result: Any) -> str | None:
    """A fitted estimator, or finite numbers (a DataFrame of them)."""
    if hasattr(result, "fit"):
        return None
    values = np.asarray(result, dtype=np.float64)
    return None if np.isfinite(values).all() else "non-finite answer"


def _cli_frame_case(name: str, command: str):
    """The frames a CSV can hold, through ``aekit fit`` and ``aekit encode``."""

    def run(ctx: Context) -> Outcome:
        where = ctx.case_dir()
        bad, may_work = _frames(ctx)[name]
        data = where / "bad.csv"
        bad.to_csv(data, index=False)
        if command == "fit":
            out = where / "m"
            argv = ["fit", data, "--code-dim", "2", "--epochs", "2", "-q", "-o", out]
        else:
            out = where / "codes.npy"
            argv = ["encode", ctx.folders["model"], data, "-o", out]
        # a CSV reader names repeated header names apart ('a', 'a.1'): a table like any other
        may_work = may_work or (command == "fit" and name == "duplicate-names")
        return cli_call(argv, where, out, (lambda o: None) if may_work else None)

    return run


def frame_cases() -> list[Case]:
    """Bad DataFrames in ``fit`` and in use, for the three estimators; CSVs of them."""
    listed = [
        "duplicate-names", "duplicate-names-text", "list-cells", "dict-cells",
        "mixed-name-types", "names-0-and-'0'", "all-nan", "no-rows", "infinity",
        "one-true-column", "all-nan-column",
    ]  # fmt: skip
    cases = [
        Case("bad DataFrame", f"{kind}:{step}:{name}", "python", _frame_case(name, kind, step))
        for name in listed
        for kind in ESTIMATORS
        for step in ("fit", "use")
    ]
    for name in ("duplicate-names", "all-nan", "no-rows", "infinity", "all-nan-column"):
        for command in ("fit", "encode"):
            cases.append(Case("bad DataFrame", f"csv:{command}:{name}", "cli",
                              _cli_frame_case(name, command)))  # fmt: skip
    return cases


# -- the fitted columns reordered, renamed, missing or extra ---------------------------------
def _variant(X: pd.DataFrame, how: str) -> pd.DataFrame:
    return {
        "reordered": lambda: X[COLUMNS[::-1]],
        "renamed": lambda: X.rename(columns={"a": "z"}),
        "missing": lambda: X[COLUMNS[:-1]],
        "extra": lambda: X.assign(g=1.0),
    }[how]()


def _column_case(kind: str, how: str, interface: str):
    def run(ctx: Context) -> Outcome:
        where = ctx.case_dir()
        right = how == "reordered"
        if interface == "python":
            X = _variant(ctx.holes if kind == "imputer" else ctx.frame, how)
            estimator = ctx.estimator(kind)
            expected = _use(kind, estimator, ctx)
            call = {
                "imputer": lambda: estimator.transform(X),
                "detector": lambda: estimator.score_samples(X),
                "model": lambda: estimator.transform(X),
            }[kind]
            return python_call(call, _same(expected) if right else None, where)
        data, out = where / "x.csv", where / "s.npy"
        _variant(ctx.frame, how).to_csv(data, index=False)
        reference = where / "ref.npy"
        cli_call(["score", ctx.folders[kind], ctx.csv, "-o", reference], where, reference, None)
        expected = np.load(reference)
        reference.unlink()
        check = _same_file(expected) if right else None
        return cli_call(["score", ctx.folders[kind], data, "-o", out], where, out, check)

    return run


def _runner_column_case(kind: str, how: str):
    """The same for a runner without scikit-learn's name check: an ONNX file, an SAE."""

    def run(ctx: Context) -> Outcome:
        where = ctx.case_dir()
        if kind == "onnx":
            from aekit.export import OnnxModel

            runner = OnnxModel(ctx.onnx)
            use = lambda X: runner.run(X)["anomaly_score"]  # noqa: E731
        else:
            from aekit.sae import SparseAutoencoder

            sae = SparseAutoencoder(code_dim=8, k=2, batch_size=32, n_epochs=1, random_state=0)
            use = sae.fit(ctx.frame).transform
        X = _variant(ctx.frame, how)
        return python_call(lambda: use(X), _same(use(ctx.frame)) if how == "reordered" else None,
                           where)  # fmt: skip

    return run


def column_cases() -> list[Case]:
    """The fitted columns reordered, renamed, missing or extra, by Python and the CLI.

    The three estimators by both; an exported ONNX file (``OnnxModel.run``) and a
    ``SparseAutoencoder`` by Python: they read a DataFrame by its columns, not their places.
    """
    hows = ("reordered", "renamed", "missing", "extra")
    return [
        *[
            Case("other columns", f"{kind}:{how}", interface, _column_case(kind, how, interface))
            for kind in ESTIMATORS
            for how in hows
            for interface in ("python", "cli")
        ],
        *[
            Case("other columns", f"{kind}:{how}", "python", _runner_column_case(kind, how))
            for kind in ("onnx", "sae")
            for how in hows
        ],
    ]


# -- ONNX metadata that cannot be --------------------------------------------------------------
def _onnx_case(key: str, text: str, interface: str):
    def run(ctx: Context) -> Outcome:
        from aekit.export import OnnxModel

        where = ctx.case_dir()
        path = set_onnx_metadata(ctx.onnx, where / "d.onnx", key, text)
        if interface == "python":
            return python_call(lambda: OnnxModel(path).run(ctx.frame.to_numpy()), None, where)
        out = where / "s.npy"
        return cli_call(["score", path, ctx.csv, "-o", out], where, out, None)

    return run


def onnx_cases() -> list[Case]:
    """ONNX metadata that cannot be, read by ``OnnxModel`` and ``aekit score``."""
    return [
        Case("ONNX metadata", f"{key}={text[:12]}", interface, _onnx_case(key, text, interface))
        for key, text, _ in ONNX_METADATA
        for interface in ("python", "cli")
    ]


# -- checkpoint files that are not regular files ---------------------------------------------
def _checkpoint_case(replacement: str) -> Callable[[Context], Outcome]:
    def run(ctx: Context) -> Outcome:
        from aekit import Autoencoder

        where = ctx.case_dir()
        folder = where / "ck"
        params = {"code_dim": 2, "hidden": (8,), **FAST, "checkpoint_dir": str(folder)}
        reference = Autoencoder(**params).fit(ctx.frame)
        newest = sorted(folder.glob("checkpoint-*.safetensors"))[-1]
        REPLACEMENTS[replacement][0](newest)

        def resume() -> Any:
            return Autoencoder(**params).fit(ctx.frame, resume=True)

        check = lambda est: _resumed(est, reference, ctx)  # noqa: E731
        return python_call(resume, check, where, new_files="ck/checkpoint-")  # its own

    return run


def _resumed(est: Any, reference: Any, ctx: Context) -> str | None:
    same = np.array_equal(est.transform(ctx.frame), reference.transform(ctx.frame))
    return None if same else "resumed to another model"


def checkpoint_cases() -> list[Case]:
    """The newest checkpoint replaced by a link, FIFO, device or folder; then resume."""
    return [
        Case("checkpoint file", replacement, "python", _checkpoint_case(replacement))
        for replacement in REPLACEMENTS
    ]
