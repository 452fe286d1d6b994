"""Cases of ``scripts/adversarial.py`` for the silent paths closed since its first run.

An OUTPUT that is DATA (under its name or a link to it) or lies inside a dataset folder;
CSV files that start with UTF-8's byte-order mark; pyarrow Tables with the fitted columns in
another order; a file path given to an estimator that takes rows; answers with a column per
feature for a DataFrame in another order (the fitted order, and a warning that says so).
Each ends with the right answer or one clear line, as every case of the run.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from adversarial_cases import COLUMNS, Case, Context, Outcome, _same, cli_call, python_call

REORDERED = COLUMNS[::-1]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- an OUTPUT that would replace DATA, or a shard of it ---------------------------------------
def _over_data_case(command: str, how: str) -> Callable[[Context], Outcome]:
    def run(ctx: Context) -> Outcome:
        where = ctx.case_dir()
        data = where / "x.csv"
        ctx.frame.to_csv(data, index=False)
        out = data
        if how == "link":
            out = where / "y.csv"
            os.symlink(data, out)
        before = _digest(data)
        argv = {
            "encode": ["encode", ctx.folders["model"], data, "-o", out],
            "reconstruct": ["reconstruct", ctx.folders["model"], data, "-o", out],
            "score": ["score", ctx.folders["detector"], data, "-o", out],
            "impute": ["impute", data, "-o", out, "--model", ctx.folders["imputer"]],
        }[command]
        outcome = cli_call(argv, where, None, None)
        if _digest(data) != before:
            return Outcome(False, "DATA was changed")
        return outcome

    return run


def _in_dataset_case(command: str) -> Callable[[Context], Outcome]:
    def run(ctx: Context) -> Outcome:
        where = ctx.case_dir()
        shards = where / "shards"
        shards.mkdir()
        half = len(ctx.frame) // 2
        np.save(shards / "part-0.npy", ctx.frame.to_numpy()[:half])
        np.save(shards / "part-1.npy", ctx.frame.to_numpy()[half:])
        out = shards / "part-2.npy"  # would be read as a third shard by the next command
        kind = "detector" if command == "score" else "model"
        return cli_call([command, ctx.folders[kind], shards, "-o", out], where, None, None)

    return run


# -- CSV with a byte-order mark --------------------------------------------------------------
def _bom_case(what: str) -> Callable[[Context], Outcome]:
    def run(ctx: Context) -> Outcome:
        where = ctx.case_dir()
        data = where / "bom.csv"
        if what == "header":  # Excel's "CSV UTF-8": the mark, then the header
            ctx.frame.to_csv(data, index=False, encoding="utf-8-sig")
            out = where / "s.npy"
            expected = ctx.cli_outputs["score", "model"]
            return cli_call(["score", ctx.folders["model"], data, "-o", out], where, out,
                            lambda o: _same(expected)(np.load(o)))  # fmt: skip
        from aekit.data import read_array

        values = ctx.frame.to_numpy()  # the mark, then a first row of numbers (no header)
        data.write_bytes(b"\xef\xbb\xbf" + ctx.frame.to_csv(index=False, header=False).encode())
        return python_call(lambda: read_array(data), _close(values), where)

    return run


def _close(expected: np.ndarray) -> Callable[[Any], str | None]:
    def check(result: Any) -> str | None:
        same = np.shape(result) == expected.shape and np.allclose(result, expected, rtol=1e-12)
        return None if same else f"wrong answer (shape {np.shape(result)})"

    return check


# -- pyarrow Tables with the fitted columns in another order ------------------------------------
def _arrow_case(kind: str) -> Callable[[Context], Outcome]:
    def run(ctx: Context) -> Outcome:
        import pyarrow as pa

        where = ctx.case_dir()
        if kind == "onnx":
            from aekit.export import OnnxModel

            runner = OnnxModel(ctx.onnx)
            table = pa.Table.from_pandas(ctx.frame[REORDERED], preserve_index=False)
            expected = runner.run(ctx.frame)["anomaly_score"]
            return python_call(lambda: runner.run(table)["anomaly_score"], _same(expected), where)
        X = ctx.holes if kind == "imputer" else ctx.frame
        table = pa.Table.from_pandas(X[REORDERED], preserve_index=False)
        estimator = ctx.estimator(kind)
        use = {"model": "transform", "detector": "score_samples", "imputer": "transform"}[kind]
        return python_call(lambda: getattr(estimator, use)(table), _same(ctx.answers[kind]), where)

    return run


# -- a file path where rows are taken ----------------------------------------------------------
def _path_case(kind: str) -> Callable[[Context], Outcome]:
    def run(ctx: Context) -> Outcome:
        where = ctx.case_dir()
        estimator = ctx.estimator(kind)
        use = {"model": "transform", "detector": "score_samples", "imputer": "transform"}[kind]
        return python_call(lambda: getattr(estimator, use)(str(ctx.csv)), None, where)

    return run


# -- answers with a column per feature, for a DataFrame in another order ------------------------
def _order_case(kind: str) -> Callable[[Context], Outcome]:
    def run(ctx: Context) -> Outcome:
        from aekit.errors import AekitWarning

        where = ctx.case_dir()
        if kind == "sae":
            from aekit.sae import SparseAutoencoder

            sae = SparseAutoencoder(code_dim=8, k=2, batch_size=32, n_epochs=1, random_state=0)
            use = sae.fit(ctx.frame).reconstruct
            X = ctx.frame
        elif kind == "imputer":
            use, X = ctx.imputer.transform, ctx.holes
        else:
            use, X = ctx.model.reconstruct, ctx.frame
        expected = use(X)

        def call() -> Any:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = use(X[REORDERED])
            said = any(issubclass(w.category, AekitWarning) and "fitted order" in str(w.message)
                       for w in caught)  # fmt: skip
            return result, said

        def check(got: Any) -> str | None:
            result, said = got
            return _same(expected)(result) or (None if said else "the order was not said")

        return python_call(call, check, where)

    return run


def recent_cases() -> list[Case]:
    """The cases above, counted under their own kinds."""
    commands = ("encode", "reconstruct", "score", "impute")
    return [
        *[Case("output over data", f"{c}:{how}", "cli", _over_data_case(c, how))
          for c in commands for how in ("same", "link")],
        *[Case("output over data", f"{c}:in-dataset", "cli", _in_dataset_case(c))
          for c in ("encode", "reconstruct", "score")],
        *[Case("byte-order mark", what, i, _bom_case(what))
          for what, i in (("header", "cli"), ("numbers", "python"))],
        *[Case("other columns", f"{k}:arrow-reordered", "python", _arrow_case(k))
          for k in ("model", "detector", "imputer", "onnx")],
        *[Case("path for rows", k, "python", _path_case(k))
          for k in ("model", "detector", "imputer")],
        *[Case("other columns", f"{k}:order-said", "python", _order_case(k))
          for k in ("model", "imputer", "sae")],
    ]  # fmt: skip
