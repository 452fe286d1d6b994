"""The ``aekit`` command: a thin layer over the library.

Every subcommand is a function ``cmd_NAME(args) -> int``; :func:`main` parses, dispatches and
turns aekit's errors into one line on stderr with a non-zero exit (2 for usage and data
problems, 1 for anything else, 130 after Ctrl-C), with the traceback only under ``--debug``.
Output paths are checked before any work starts, and every file is written atomically.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from ..errors import AekitError, ConfigError, DataError, DataTypeError, ModelFileError
from .options import InterruptedRunError
from .parser import build_parser

__all__ = ["main", "run"]


_USAGE_ERRORS = (ConfigError, DataError, DataTypeError, ModelFileError)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``aekit`` command; return its exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors (argparse printed them)
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help()
        return 2
    args.argv = argv
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return int(args.func(args))
    except InterruptedRunError as exc:
        if str(exc):  # (under DDP, rank 0's alone)
            print(f"aekit: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("aekit: interrupted", file=sys.stderr)
        return 130
    except (*_USAGE_ERRORS, AekitError, OSError) as exc:
        if args.debug:
            raise
        print(f"aekit: error: {_one_line(exc)}", file=sys.stderr)
        return 2 if isinstance(exc, _USAGE_ERRORS) else 1


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    return " ".join(str(exc).split())


def run() -> None:
    """The console entry point: :func:`main`, then exit with its code.

    A ``torchrun`` worker whose distributed session has ended exits at once
    (:func:`aekit.training.distributed.exit_process`), past the interpreter teardown in which
    PyTorch's gloo backend can abort a process that has done its work.
    """
    code = main()
    distributed = sys.modules.get("aekit.training.distributed")  # imported only if it ran
    if distributed is not None and distributed.left_a_group():
        distributed.exit_process(code)
    sys.exit(code)
