"""The ``aekit`` command's argument parser."""

from __future__ import annotations

import argparse
import re
from typing import Any

from .._version import __version__
from .apply import cmd_encode, cmd_reconstruct, cmd_score
from .explore import cmd_compare, cmd_demo, cmd_report
from .export import register as register_export
from .fit import cmd_fit
from .impute import register as register_impute
from .options import (
    NOT_FOR_COMPARISONS,
    add_estimator_options,
    add_quiet_option,
    image_shape_type,
    int_list,
    positive_int,
)
from .sae import register as register_sae

__all__ = ["build_parser"]


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _data_options() -> argparse.ArgumentParser:
    opts = argparse.ArgumentParser(add_help=False)
    group = opts.add_argument_group("data")
    group.add_argument("--columns", type=_names, help="feature columns, by name or 0-based index")
    group.add_argument("--label-column", help="a column that is a label, not a feature")
    group.add_argument(
        "--drop",
        action="append",
        metavar="COL",
        help="leave out this column, by name (repeatable); a column the model was not fitted "
        "on is refused unless it is left out",
    )
    return opts


def _stream_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stream",
        action=argparse.BooleanOptionalAction,
        help="read a .npy or .parquet DATA from disk block by block instead of into memory "
        "(default: when the file is over 1 GiB)",
    )


_NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``aekit`` command."""
    parser = argparse.ArgumentParser(
        prog="aekit",
        description="Autoencoders as a nonlinear PCA: fit, encode, reconstruct, score, compare.",
        epilog="Run 'aekit COMMAND --help' for a command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"aekit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    data = _data_options()

    def command(name: str, func: Any, help: str, example: str, parents: list[Any]) -> Any:
        p = sub.add_parser(
            name,
            help=help,
            description=help[0].upper() + help[1:] + ".",
            epilog=f"example:\n  {example}",
            parents=[*parents, debug],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        # a number in e-notation is a value, not an option: --threshold -1e9 (argparse before
        # Python 3.13 knew only -1 and -1.5 as negative numbers)
        p._negative_number_matcher = _NEGATIVE_NUMBER
        p.set_defaults(func=func)
        return p

    fit = command(
        "fit", cmd_fit, "fit an autoencoder to a data file and save it",
        "aekit fit t10k-images-idx3-ubyte.gz --code-dim 30 --out model/", [data],
    )  # fmt: skip
    fit.add_argument(
        "data",
        metavar="DATA",
        help=".npy .npz .csv .tsv .parquet or MNIST IDX, or a folder or glob of .parquet or "
        ".npy shards",
    )
    fit.add_argument("-o", "--out", required=True, metavar="MODEL_DIR", help="model folder")
    fit.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a model already saved in MODEL_DIR (refused without it)",
    )
    fit.add_argument(
        "--holdout", type=float, default=0.1, help="rows kept out, seeded (default: 0.1)"
    )
    _stream_option(fit)
    fit.add_argument(
        "--resume",
        action="store_true",
        help="continue from --checkpoint-dir (give the --seed of the run it continues)",
    )
    fit.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help="train in N processes on this machine with PyTorch DDP (gloo on CPU, NCCL on "
        "GPU); the same as 'torchrun --standalone --nproc-per-node N -m aekit fit ...'",
    )
    fit.add_argument(
        "--max-restarts",
        type=int,
        default=0,
        metavar="K",
        help="with --nproc: when a process dies, restart the group up to K times; with "
        "--checkpoint-dir it resumes from its last checkpoint (torchrun's --max-restarts)",
    )
    add_quiet_option(fit)
    add_estimator_options(fit, required=("code_dim",))  # the code size is the user's choice

    for name, func, help, example in (
        ("encode", cmd_encode, "write the codes of a data file's rows",
         "aekit encode model/ data.csv -o codes.parquet"),
        ("reconstruct", cmd_reconstruct, "write a data file's rows as the model rebuilds them",
         "aekit reconstruct model/ data.npy -o recon.npy"),
        ("score", cmd_score, "write each row's reconstruction error, optionally flag outliers",
         "aekit score model/ data.csv -o scores.csv --contamination 0.01"),
    ):  # fmt: skip
        p = command(name, func, help, example, [data])
        p.add_argument("model", metavar="MODEL", help="model folder from 'aekit fit'")
        p.add_argument("data", metavar="DATA", help="data file, or a folder or glob of shards")
        p.add_argument("-o", "--output", required=True, help="output: .npy .csv .tsv .parquet")
        _stream_option(p)
        if name == "score":
            p.add_argument("--threshold", type=float, help="flag rows with a larger error")
            p.add_argument(
                "--contamination", help="flag this share of rows (0-0.5], or auto (Tukey's fence)"
            )
    register_export(command, sub)  # aekit export; score also reads detectors and .onnx files
    register_sae(command)  # aekit sae: sparse autoencoders for interpretability
    register_impute(command, data)  # aekit impute DATA -o FILLED

    cmp = command(
        "compare", cmd_compare, "compare autoencoders with PCA at several code sizes",
        "aekit compare data.npy --code-dims 2,8,16,32 --out results/", [data],
    )  # fmt: skip
    cmp.add_argument("data", metavar="DATA", help="data file")
    cmp.add_argument(
        "--code-dims", type=int_list, default=[2, 8, 16, 32], help="default: 2,8,16,32"
    )
    cmp.add_argument("--test-fraction", type=float, default=0.2, help="held-out share (0.2)")
    cmp.add_argument("-o", "--out", help="folder for compare.json and compare.png")
    add_quiet_option(cmp)
    add_estimator_options(cmp, exclude=NOT_FOR_COMPARISONS)

    rep = command(
        "report", cmd_report, "write an HTML report of a model on a data file",
        "aekit report model/ t10k-images-idx3-ubyte.gz --labels t10k-labels-idx1-ubyte.gz "
        "-o report/", [data],
    )  # fmt: skip
    rep.add_argument("model", metavar="MODEL", help="model folder from 'aekit fit' or 'aekit sae'")
    rep.add_argument("data", metavar="DATA", help="data file (a .npy of activations for an SAE)")
    sae = rep.add_argument_group("sparse autoencoders (an SAE folder)")
    sae.add_argument(
        "--true-features", metavar="NPY", help="known feature directions (n_true x n_features)"
    )
    sae.add_argument(
        "--true-codes",
        metavar="NPY|NPZ",
        help="which true features fire in each row of DATA (.npy, or a scipy.sparse .npz)",
    )
    sae.add_argument(
        "--rows",
        type=positive_int,
        default=100_000,
        help="the first rows of DATA measured (100,000)",
    )
    rep.add_argument("--labels", metavar="COL|FILE", help="label column, or a file of labels")
    read, metavar = image_shape_type()  # fit's own reader and format
    rep.add_argument(
        "--image-shape",
        type=read,
        metavar=metavar,
        default="auto",
        help="draw rows as images of (height, width), or (1, height, width); auto: the "
        "model's own, or square rows of pixels; none: never (default: auto)",
    )
    rep.add_argument("-o", "--output", required=True, metavar="DIR", help="report folder")

    demo = command(
        "demo", cmd_demo, "fit on the bundled digits, compare with PCA, write a report",
        "aekit demo --code-dims 2,8,16", [],
    )  # fmt: skip
    demo.add_argument("--code-dims", type=int_list, default=[2, 8, 16], help="default: 2,8,16")
    demo.add_argument("-o", "--out", default="aekit-demo", help="report folder (aekit-demo)")
    # The demo's seed is part of its content, like its data: every run shows the same numbers.
    add_estimator_options(demo, exclude=NOT_FOR_COMPARISONS, defaults={"random_state": 0})
    return parser
