"""The ``aekit`` command: a thin layer over the library.

Every subcommand is a function ``cmd_NAME(args) -> int``; :func:`main` parses, dispatches and
turns aekit's errors into one line on stderr with a non-zero exit (2 for usage and data
problems, 1 for anything else), with the traceback only under ``--debug``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from . import __version__
from .errors import AekitError, ConfigError, DataError, DataTypeError, ModelFileError

__all__ = ["main"]

_USAGE_ERRORS = (ConfigError, DataError, DataTypeError, ModelFileError)


def cmd_demo(args: argparse.Namespace) -> int:
    """Fit on scikit-learn's bundled digits and compare with PCA."""
    from sklearn.datasets import load_digits

    from .analysis import compare, split_rows

    X = load_digits().data / 16.0  # 8×8 images, pixels scaled to [0, 1]
    X_train, X_test = split_rows(X, 0.2, random_state=args.seed)
    print(
        f"aekit {__version__} demo: scikit-learn digits, {len(X_train)} train / "
        f"{len(X_test)} held-out rows of {X.shape[1]} pixels"
    )
    result = compare(X_train, X_test, args.code_dims, random_state=args.seed, device=args.device)
    print(result.table())
    return 0


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``aekit`` command."""
    parser = argparse.ArgumentParser(
        prog="aekit",
        description="Autoencoders as a nonlinear PCA: fit, encode, reconstruct, score, compare.",
    )
    parser.add_argument("--version", action="version", version=f"aekit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="fit on the bundled digits and compare with PCA (no files, no network)",
        description="Fit autoencoders on scikit-learn's bundled 8×8 digits and compare their "
        "held-out reconstruction error with PCA at the same code sizes.",
        epilog="example: aekit demo --code-dims 2,8,16",
    )
    demo.add_argument("--code-dims", type=_int_list, default=[2, 8, 16], help="default: 2,8,16")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.add_argument("--device", default="auto", help="auto, cpu, cuda, mps (default: auto)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``aekit`` command; return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return int(args.func(args))
    except _USAGE_ERRORS as exc:
        if args.debug:
            raise
        print(f"aekit: error: {exc}", file=sys.stderr)
        return 2
    except AekitError as exc:
        if args.debug:
            raise
        print(f"aekit: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
