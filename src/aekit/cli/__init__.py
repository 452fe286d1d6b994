"""The ``aekit`` command: a thin layer over the library.

Every subcommand is a function ``cmd_NAME(args) -> int``; :func:`main` parses, dispatches and
turns aekit's errors into one line on stderr with a non-zero exit (2 for usage and data
problems, 1 for anything else, 130 after Ctrl-C), with the traceback only under ``--debug``.
Output paths are checked before any work starts, and every file is written atomically.

What a command says besides its result goes to stderr, one line each (:func:`_said`): the
``aekit`` logger's lines (only warnings under ``-q``; the thread choice only under ``-v``),
Python warnings as ``aekit: warning: MESSAGE`` without the source line, and after Ctrl-C one
way to resume, the command's (the library's ``resume=True`` hint is not repeated).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

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
    with _said(args):
        return _run_command(args)


def _run_command(args: Any) -> int:
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


class _CommandLog(logging.Filter):
    """The ``aekit`` logger's lines a command shows: see the module docstring."""

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        if record.module == "threads" and record.levelno < logging.WARNING:
            return self.verbose  # the thread choice: -v
        # the command prints its own resume line (the whole command to run)
        return not (record.module == "callbacks" and "resume=True" in str(record.msg))


def _show_warning(message: Any, category: Any, *_: Any, **__: Any) -> None:
    print(f"aekit: warning: {_one_line(message)}", file=sys.stderr)


@contextlib.contextmanager
def _said(args: Any) -> Iterator[None]:
    """Set, for one command, what it says on stderr (the module docstring); then restore it."""
    logger = logging.getLogger("aekit")
    level = logger.level
    quiet, verbose = getattr(args, "quiet", False), getattr(args, "details", False)
    logger.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)
    log_filter = _CommandLog(verbose)
    logger.addFilter(log_filter)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            yield
    finally:
        logger.removeFilter(log_filter)
        logger.setLevel(level)


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
