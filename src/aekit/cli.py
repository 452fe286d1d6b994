"""The ``aekit`` command: a thin layer over the library.

Every subcommand is a function ``cmd_NAME(args) -> int``; :func:`main` parses, dispatches and
turns aekit's errors into one line on stderr with a non-zero exit (2 for usage and data
problems, 1 for anything else, 130 after Ctrl-C), with the traceback only under ``--debug``.
Output paths are checked before any work starts, and every file is written atomically.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import logging
import os
import shlex
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .errors import AekitError, ConfigError, DataError, DataTypeError, ModelFileError

__all__ = ["build_parser", "main"]

_USAGE_ERRORS = (ConfigError, DataError, DataTypeError, ModelFileError)
FIT_INFO = "fit.json"  # beside the model: where its data came from and the held-out rows
HOLDOUT = "holdout.npy"
_STREAM_BYTES = 2**30  # --stream's default: stream .npy / .parquet files larger than this
_SUMMARY_ROWS = (20_000, 5_000)  # fit's closing PCA comparison: training, held-out rows


class InterruptedRunError(Exception):
    """Ctrl-C ended a command; the message says how to go on."""


# -- reading data -------------------------------------------------------------------------
def _read(path: str, columns: list[str] | None, label_column: str | None) -> Any:
    from .data import check_finite_rows, read_table

    table = read_table(path, columns=columns, label_column=label_column)
    if table.X.shape[0] == 0 or table.X.shape[1] == 0:
        raise DataError(f"{path} has no data ({table.X.shape[0]} rows, {table.X.shape[1]} columns)")
    check_finite_rows(np.asarray(table.X), what=str(path))
    return table


def _fingerprint(X: Any) -> str:
    """SHA-256 of the rows as float32: tells whether a file holds the fit-time data.

    ``X`` is an array or a streamed source (hashed chunk by chunk: the same digest).
    """
    if isinstance(X, np.ndarray):
        return hashlib.sha256(np.ascontiguousarray(X, dtype=np.float32).tobytes()).hexdigest()
    digest = hashlib.sha256()
    for _, rows in X.chunks():
        digest.update(rows.numpy().tobytes())
    return digest.hexdigest()


def _streamed(data: str, stream: bool | None, columns: Any, label_column: str | None) -> Any:
    """DATA as a source read from disk block by block, or None (``stream``: ``--stream``)."""
    from .stream import open_rows

    path = Path(data)
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".parquet"):
        if stream:
            raise ConfigError(f"--stream reads .npy and .parquet files, not {path.name}")
        return None
    big = path.is_file() and path.stat().st_size > _STREAM_BYTES
    if not (stream or (stream is None and big)):
        return None
    if suffix == ".npy" and (columns is not None or label_column is not None):
        raise ConfigError(
            "a streamed .npy file is read with all its columns: drop --columns and "
            "--label-column, or pass --no-stream to read it into memory"
        )
    source: Any = open_rows(path, columns=columns, label_column=label_column)
    if len(source) == 0 or source.n_features == 0:
        source.close()
        raise DataError(f"{path} has no data ({len(source)} rows, {source.n_features} columns)")
    return source


def _rows_at(X: Any, index: np.ndarray) -> np.ndarray:
    """Rows ``index`` (sorted) of an array or a streamed source, as an array."""
    if isinstance(X, np.ndarray):
        return X[index]
    import torch

    return X.take(torch.from_numpy(index.astype(np.int64))).numpy()


def _at_most(index: np.ndarray, count: int, seed: int) -> np.ndarray:
    """``index`` itself, or a seeded sorted sample of ``count`` of its entries."""
    if len(index) <= count:
        return index
    return np.sort(np.random.default_rng(seed).choice(index, count, replace=False))


def _fit_info(model: str) -> dict[str, Any]:
    path = Path(model) / FIT_INFO
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{path} is not valid JSON ({exc})") from exc
    return info if isinstance(info, dict) else {}


@contextlib.contextmanager
def _model_and_data(
    args: argparse.Namespace, label_column: str | None = None, *, stream: bool = False
) -> Iterator[tuple[Any, dict[str, Any], Any]]:
    """Load the model, then DATA with the model's columns; check the feature count.

    Yields ``(model, fit info, data)``: DATA as a :class:`~aekit.data.Table`, or with
    ``stream`` (and ``--stream``, or a big file) as a source read block by block, closed
    when the block ends.
    """
    from .estimator import load

    ae = load(args.model)
    info = _fit_info(args.model)
    columns = args.columns
    if columns is None and info.get("columns") and Path(args.data).suffix.lower() in (
        ".csv", ".tsv", ".parquet",
    ):  # fmt: skip
        columns = info["columns"]  # the fit-time columns, by name
    source = _streamed(args.data, args.stream, columns, label_column) if stream else None
    try:
        data = source if source is not None else _read(args.data, columns, label_column)
        n_features = source.n_features if source is not None else data.X.shape[1]
        if n_features != ae.n_features_in_:
            raise DataError(
                f"{args.data} has {n_features} feature columns, the model {args.model} "
                f"expects {ae.n_features_in_}"
            )
        yield ae, info, data
    finally:
        if source is not None:
            source.close()


def _apply(data: Any, path: str, fn: Any) -> Iterator[np.ndarray]:
    """``fn`` of DATA's rows: all at once for a table, block by block for a streamed source.

    A streamed block is checked for NaN and infinity as it comes (rows numbered in the file).
    """
    from .data import Table, check_finite_rows

    if isinstance(data, Table):
        yield fn(data.X)
        return
    for first, rows in data.chunks():
        part = rows.numpy()
        check_finite_rows(part, what=path, first_row=first)
        yield fn(part)


def _write_rows(
    path: str, data: Any, parts: Iterator[np.ndarray], n_columns: int, names: Any
) -> int:
    """Write the ``parts`` (DATA's rows, in order) to ``path`` as float32, one at a time."""
    from .data import Table, row_writer

    n_rows = data.X.shape[0] if isinstance(data, Table) else len(data)
    with row_writer(path, n_rows, n_columns, names, dtype=np.float32) as write:
        for part in parts:
            write(part)
    return n_rows


# -- training options ---------------------------------------------------------------------
def _parse_kind(text: str, kinds: dict[str, tuple[str, type]], what: str) -> dict[str, Any]:
    name, _, value = text.partition(":")
    if name not in kinds:
        raise argparse.ArgumentTypeError(
            f"unknown {what} {name!r}: expected one of {', '.join(kinds)}"
        )
    out: dict[str, Any] = {what: name}
    if value:
        key, kind = kinds[name]
        try:
            out[key] = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{what} {name}: expected a {kind.__name__} after ':', got {value!r}"
            ) from None
    return out


def _sparsity(text: str) -> dict[str, Any]:
    kinds = {
        "l1": ("sparsity_weight", float),
        "kl": ("sparsity_target", float),
        "topk": ("sparsity_k", int),
    }
    return _parse_kind(text, kinds, "sparsity")


def _noise(text: str) -> dict[str, Any]:
    kinds = {k: ("noise_level", float) for k in ("gaussian", "masking", "salt_and_pepper")}
    return _parse_kind(text, kinds, "noise")


def _hidden(text: str) -> str | tuple[int, ...]:
    if text in ("auto", "none"):
        return "auto" if text == "auto" else ()
    return tuple(_int_list(text))


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


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _estimator_params(args: argparse.Namespace) -> dict[str, Any]:
    """Autoencoder arguments from the shared training options."""
    names = (
        "hidden", "activation", "batch_norm", "dropout", "scaling", "loss", "epochs",
        "batch_size", "lr", "lr_schedule", "weight_decay", "val_fraction", "max_time",
        "precision",
    )  # fmt: skip
    params: dict[str, Any] = {
        name: getattr(args, name) for name in names if getattr(args, name) is not None
    }
    if args.patience is not None:
        params["patience"] = args.patience if args.patience > 0 else None
    params.update(random_state=args.seed, device=args.device)
    if args.compile:
        params["compile"] = True
    params.update(args.sparsity or {})
    params.update(args.noise or {})
    if args.sparsity_weight is not None:
        params["sparsity_weight"] = args.sparsity_weight
    return params


def _callbacks(args: argparse.Namespace) -> tuple[Any, ...]:
    from .progress import ProgressBar

    return () if args.quiet else (ProgressBar(),)


def _write_png(path: Path, draw: Any, *what: Any) -> bool:
    """Write a figure if matplotlib is there; say so and go on if it is not."""
    from .io import atomic_write
    from .plots import require_matplotlib

    try:
        require_matplotlib()
    except ConfigError as exc:
        print(f"aekit: note: {path.name} skipped: {exc}", file=sys.stderr)
        return False
    atomic_write(path, draw(*what))
    return True


# -- commands -----------------------------------------------------------------------------
def cmd_fit(args: argparse.Namespace) -> int:
    """Fit an autoencoder to a data file and save it with its history and held-out rows.

    Under ``torchrun`` (or with ``--nproc N``, which relaunches through it) every process
    joins PyTorch's process group, trains its share of each global batch, and rank 0 alone
    writes the model folder and prints.
    """
    from .distributed import distributed_session, relaunch

    if args.nproc < 1:
        raise ConfigError(f"--nproc must be >= 1, got {args.nproc}")
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        return relaunch(_without_option(args.argv, "--nproc"), args.nproc)
    with distributed_session(args.device) as ctx:
        return _fit(args, ctx.device, ctx.is_main)


def _without_option(argv: Sequence[str], name: str) -> list[str]:
    """``argv`` less ``name VALUE`` / ``name=VALUE``."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == name:
            skip = True
        elif not arg.startswith(name + "="):
            out.append(arg)
    return out


def _fit(args: argparse.Namespace, device: str, is_main: bool) -> int:
    from .data import check_writable_folder

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise DataError(f"cannot save a model to {out}: it exists and is not a folder")
    check_writable_folder(out)
    if args.resume and not args.checkpoint_dir:
        raise ConfigError("--resume needs --checkpoint-dir (the folder the checkpoints are in)")
    if not 0 <= args.holdout < 1:
        raise ConfigError(f"--holdout must be in [0, 1), got {args.holdout}")
    source = _streamed(args.data, args.stream, args.columns, args.label_column)
    try:
        if source is None:
            table = _read(args.data, args.columns, args.label_column)
            X, columns = np.asarray(table.X), table.columns
        else:
            X, columns = source, getattr(source, "columns", None)
        return _fit_rows(args, X, columns, device, is_main, out)
    finally:
        if source is not None:
            source.close()


def _fit_rows(
    args: argparse.Namespace, X: Any, columns: Any, device: str, is_main: bool, out: Path
) -> int:
    """Fit on rows in memory (an array) or streamed (a source); rank 0 saves and reports."""
    from .analysis import pca_reconstruction, row_errors, split_indices
    from .estimator import Autoencoder
    from .io import atomic_write
    from .plots import loss_curves
    from .progress import StopOnSignal
    from .stream import RowSubset

    if args.holdout > 0 and len(X) >= 10:
        train_idx, holdout_idx = split_indices(len(X), args.holdout, args.seed)
    else:
        train_idx, holdout_idx = np.arange(len(X)), np.arange(0)
    if isinstance(X, np.ndarray):
        train = X[train_idx]
    else:
        train = RowSubset(X, train_idx) if len(holdout_idx) else X
    params = {**_estimator_params(args), "device": device}
    ae = Autoencoder(code_dim=args.code_dim, checkpoint_dir=args.checkpoint_dir, **params)
    stopper = StopOnSignal()
    try:
        with stopper.installed():
            ae.fit(train, callbacks=(*_callbacks(args), stopper), resume=args.resume)
    except KeyboardInterrupt:
        if args.checkpoint_dir:
            argv = [a for a in args.argv if a != "--resume"]
            raise InterruptedRunError(
                f"interrupted; checkpoint in {args.checkpoint_dir}; resume with: "
                f"aekit {shlex.join([*argv, '--resume'])}"
            ) from None
        raise InterruptedRunError(
            "interrupted; nothing saved (add --checkpoint-dir DIR to make training resumable)"
        ) from None
    if not is_main:  # under DDP, rank 0 alone writes and reports
        return 0
    ae.save(out)
    ae.history_.save(out / "history.json")
    atomic_write(out / HOLDOUT, _npy_bytes(holdout_idx.astype(np.int64)))
    info = {
        "data": str(args.data),
        "n_rows": len(X),
        "fingerprint": _fingerprint(X),
        "columns": columns,
        "label_column": args.label_column,
        "holdout_fraction": args.holdout,
        "seed": args.seed,
    }
    atomic_write(out / FIT_INFO, (json.dumps(info, indent=2) + "\n").encode())
    _write_png(out / "loss.png", loss_curves, ae.history_)
    summary = (
        f"saved {out}: {len(train_idx)} rows, {len(holdout_idx)} held out, {ae.n_iter_} "
        f"epochs (stopped by {ae.history_.stop_reason}, "
        f"kept epoch {ae.history_.best_epoch})"
    )
    if len(holdout_idx):  # on samples of big data: the comparison must fit in memory
        pca_rows, test_rows = (
            _at_most(idx, count, args.seed)
            for idx, count in zip((train_idx, holdout_idx), _SUMMARY_ROWS, strict=True)
        )
        X_test = _rows_at(X, test_rows)
        ae_error = float(ae.reconstruction_error(X_test).mean())
        pca = pca_reconstruction(_rows_at(X, pca_rows), X_test, args.code_dim, random_state=0)
        pca_error = float(row_errors(X_test, pca).mean())
        sampled = "" if len(test_rows) == len(holdout_idx) else f" of {len(test_rows)} rows"
        summary += (
            f"; held-out error{sampled} {ae_error:.4g} (PCA with {args.code_dim} components: "
            f"{pca_error:.4g})"
        )
    print(summary)
    return 0


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def cmd_encode(args: argparse.Namespace) -> int:
    """Write the codes of DATA's rows."""
    from .data import check_output

    check_output(args.output)
    with _model_and_data(args, stream=True) as (ae, _, data):
        names = list(ae.get_feature_names_out())
        n = _write_rows(args.output, data, _apply(data, args.data, ae.transform), len(names), names)
    print(f"wrote {args.output}: {n} codes of {len(names)} numbers")
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    """Write DATA's rows as the model reconstructs them."""
    from .data import check_output

    check_output(args.output)
    with _model_and_data(args, stream=True) as (ae, _, data):
        parts = _apply(data, args.data, ae.reconstruct)
        names = getattr(data, "columns", None)  # a table's, or a streamed parquet file's
        n = _write_rows(args.output, data, parts, ae.n_features_in_, names)
    print(f"wrote {args.output}: {n} reconstructed rows")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """Write each row's reconstruction error; flag outliers above a threshold."""
    from .data import check_output, write_array
    from .outlier import threshold_for

    check_output(args.output)
    if args.threshold is not None and args.contamination is not None:
        raise ConfigError("give --threshold or --contamination, not both")
    with _model_and_data(args, stream=True) as (ae, _, data):
        parts = _apply(data, args.data, ae.reconstruction_error)
        errors = np.concatenate([np.asarray(p, dtype=np.float64) for p in parts])
    threshold = args.threshold
    if args.contamination is not None:
        contamination = args.contamination
        threshold = threshold_for(
            errors, "auto" if contamination == "auto" else float(contamination)
        )
    line = f"wrote {args.output}: {len(errors)} rows, mean error {errors.mean():.4g}"
    if threshold is None:
        write_array(args.output, errors, ["error"])
    else:
        flags = (errors > threshold).astype(np.float64)
        write_array(args.output, np.column_stack([errors, flags]), ["error", "outlier"])
        line += f"; {int(flags.sum())} outliers (error > {threshold:.4g})"
    print(line)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Autoencoder vs PCA at several code sizes on a held-out split."""
    from .analysis import compare, pca_error_curve, split_indices
    from .data import check_writable_folder
    from .io import atomic_write
    from .plots import error_vs_code_size

    if args.out is not None:
        check_writable_folder(args.out)
    if not 0 < args.test_fraction < 1:
        raise ConfigError(f"--test-fraction must be in (0, 1), got {args.test_fraction}")
    X = np.asarray(_read(args.data, args.columns, args.label_column).X)
    train_idx, test_idx = split_indices(len(X), args.test_fraction, args.seed)
    X_train, X_test = X[train_idx], X[test_idx]
    params = _estimator_params(args)
    result = compare(X_train, X_test, args.code_dims, callbacks=_callbacks(args), **params)
    print(result.table())
    if args.out is not None:
        out = Path(args.out)
        atomic_write(out / "compare.json", (json.dumps(result.to_dict(), indent=2) + "\n").encode())
        curve = pca_error_curve(X_train, X_test, max(args.code_dims))
        dims = ([r.code_dim for r in result.rows], [r.ae_error for r in result.rows])
        _write_png(out / "compare.png", error_vs_code_size, curve, dims)
        print(f"wrote {out / 'compare.json'} and the plot compare.png")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write an HTML report of a model on a data file."""
    from .data import check_writable_folder, read_labels
    from .report import build_report

    check_writable_folder(args.output)
    info = _fit_info(args.model)
    label_column = None
    labels_file = None
    if args.labels is not None:
        if Path(args.labels).is_file():
            labels_file = args.labels
        else:
            label_column = args.labels
    elif info.get("label_column") is not None and Path(args.data).suffix.lower() in (
        ".csv", ".tsv", ".parquet",
    ):  # fmt: skip
        label_column = info["label_column"]
    with _model_and_data(args, label_column) as (ae, info, table):  # in memory: all rows plot
        labels = read_labels(labels_file) if labels_file is not None else table.labels
        X = np.asarray(table.X)
    holdout, notes = None, []
    if info.get("fingerprint") == _fingerprint(X):
        holdout = np.load(Path(args.model) / HOLDOUT, allow_pickle=False)
        if len(holdout) == 0:
            holdout = None
            notes.append("The model was fitted without held-out rows: errors are in-sample.")
    else:
        notes.append(
            f"{args.data} is not the data {args.model} was fitted on (or that is unknown): "
            "errors are measured on all its rows, and PCA is fitted on those same rows."
        )
    report = build_report(
        ae,
        X,
        labels=labels,
        holdout=holdout,
        image_shape=args.image_shape,
        title=f"aekit report: {Path(args.model).name} on {Path(args.data).name}",
        notes=notes,
    )
    page = report.write(args.output)
    print(f"wrote {page}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Fit on scikit-learn's bundled digits, compare with PCA, write a report."""
    import torch
    from sklearn.datasets import load_digits

    from .analysis import compare, split_indices
    from .data import check_writable_folder
    from .report import build_report

    check_writable_folder(args.out)
    digits = load_digits()
    X = digits.data / 16.0  # 8×8 images, pixels scaled to [0, 1]
    train_idx, test_idx = split_indices(len(X), 0.2, random_state=args.seed)
    print(
        f"aekit {__version__} demo: scikit-learn digits, {len(train_idx)} train / "
        f"{len(test_idx)} held-out rows of {X.shape[1]} pixels"
    )
    # The digits models are tiny: one CPU thread is as fast, and far faster when the cores
    # are shared (13 s against 62 s for the whole demo on two busy cores, same numbers).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = compare(
            X[train_idx],
            X[test_idx],
            args.code_dims,
            random_state=args.seed,
            device=args.device,
            epochs=args.epochs,
            keep_models=True,
        )
    finally:
        torch.set_num_threads(threads)
    print(result.table())
    report = build_report(
        result.models[-1],
        X,
        labels=digits.target,
        holdout=test_idx,
        title=f"aekit demo: digits, code size {result.rows[-1].code_dim}",
    )
    page = report.write(args.out)
    print(f"report: {page}")
    return 0


# -- the parser ---------------------------------------------------------------------------
def _training_options() -> argparse.ArgumentParser:
    opts = argparse.ArgumentParser(add_help=False)
    group = opts.add_argument_group("model and training")
    add = group.add_argument
    # Defaults are the library's own (None here = not passed): one place for each default.
    lib = " (default: Autoencoder's)"
    add("--hidden", type=_hidden, help="widths, e.g. 512,256; auto; none" + lib)
    add("--activation", help="hidden non-linearity, e.g. relu, silu" + lib)
    add("--batch-norm", action=argparse.BooleanOptionalAction, help="batch normalisation" + lib)
    add("--dropout", type=float, help="dropout after each hidden layer" + lib)
    add("--scaling", help="auto, standardize, minmax, global_minmax, none" + lib)
    add("--sparsity", type=_sparsity, help="l1:WEIGHT, kl:TARGET_RATE or topk:K")
    add("--sparsity-weight", type=float, help="λ (l1) or β (kl) when not given in --sparsity")
    add("--noise", type=_noise, help="denoising: gaussian:SIGMA, masking:P or salt_and_pepper:P")
    add("--loss", help="auto, mse or bce" + lib)
    add("--epochs", type=int, help="maximum epochs" + lib)
    add("--batch-size", type=int, help="rows per step" + lib)
    add("--lr", type=float, help="learning rate" + lib)
    add("--lr-schedule", help="constant, cosine or plateau" + lib)
    add("--weight-decay", type=float, help="weight decay" + lib)
    add("--val-fraction", type=float, help="validation share" + lib)
    add("--patience", type=int, help="early-stopping patience; 0: off" + lib)
    add("--max-time", type=float, help="training budget in seconds")
    add("--seed", type=int, default=0, help="random seed (default: 0)")
    add("--device", default="auto", help="auto, cpu, cuda, mps (default: auto)")
    add("--precision", help="fp32, or bf16 autocast (fast on GPUs and bf16 CPUs)" + lib)
    add("--compile", action="store_true", help="train through torch.compile (needs a C++ compiler)")
    add("-q", "--quiet", action="store_true", help="no progress output")
    return opts


def _data_options() -> argparse.ArgumentParser:
    opts = argparse.ArgumentParser(add_help=False)
    group = opts.add_argument_group("data")
    group.add_argument("--columns", type=_names, help="feature columns, by name or 0-based index")
    group.add_argument("--label-column", help="a column that is a label, not a feature")
    return opts


def _image_shape(text: str) -> tuple[int, int] | str | None:
    if text in ("auto", "none"):
        return None if text == "none" else "auto"
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected HxW (e.g. 28x28), auto or none: {text!r}"
        ) from None
    return (height, width)


def _stream_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stream",
        action=argparse.BooleanOptionalAction,
        help="read a .npy or .parquet DATA from disk block by block instead of into memory "
        "(default: when the file is over 1 GiB)",
    )


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
    train, data = _training_options(), _data_options()

    def command(name: str, func: Any, help: str, example: str, parents: list[Any]) -> Any:
        p = sub.add_parser(
            name,
            help=help,
            description=help[0].upper() + help[1:] + ".",
            epilog=f"example:\n  {example}",
            parents=[*parents, debug],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(func=func)
        return p

    fit = command(
        "fit", cmd_fit, "fit an autoencoder to a data file and save it",
        "aekit fit t10k-images-idx3-ubyte.gz --code-dim 30 --out model/", [data, train],
    )  # fmt: skip
    fit.add_argument("data", metavar="DATA", help=".npy .npz .csv .tsv .parquet or MNIST IDX")
    fit.add_argument("--code-dim", type=int, required=True, help="size of the code")
    fit.add_argument("-o", "--out", required=True, metavar="MODEL_DIR", help="model folder")
    fit.add_argument("--holdout", type=float, default=0.1, help="rows kept out (default: 0.1)")
    _stream_option(fit)
    fit.add_argument("--checkpoint-dir", help="write resumable checkpoints here every epoch")
    fit.add_argument("--resume", action="store_true", help="continue from --checkpoint-dir")
    fit.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help="train in N processes on this machine with PyTorch DDP (gloo on CPU, NCCL on "
        "GPU); the same as 'torchrun --standalone --nproc-per-node N -m aekit fit ...'",
    )

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
        p.add_argument("data", metavar="DATA", help="data file")
        p.add_argument("-o", "--output", required=True, help="output: .npy .csv .tsv .parquet")
        _stream_option(p)
        if name == "score":
            p.add_argument("--threshold", type=float, help="flag rows with a larger error")
            p.add_argument(
                "--contamination", help="flag this share of rows (0-0.5], or auto (Tukey's fence)"
            )

    cmp = command(
        "compare", cmd_compare, "compare autoencoders with PCA at several code sizes",
        "aekit compare data.npy --code-dims 2,8,16,32 --out results/", [data, train],
    )  # fmt: skip
    cmp.add_argument("data", metavar="DATA", help="data file")
    cmp.add_argument(
        "--code-dims", type=_int_list, default=[2, 8, 16, 32], help="default: 2,8,16,32"
    )
    cmp.add_argument("--test-fraction", type=float, default=0.2, help="held-out share (0.2)")
    cmp.add_argument("-o", "--out", help="folder for compare.json and compare.png")

    rep = command(
        "report", cmd_report, "write an HTML report of a model on a data file",
        "aekit report model/ t10k-images-idx3-ubyte.gz --labels t10k-labels-idx1-ubyte.gz "
        "-o report/", [data],
    )  # fmt: skip
    rep.add_argument("model", metavar="MODEL", help="model folder from 'aekit fit'")
    rep.add_argument("data", metavar="DATA", help="data file")
    rep.add_argument("--labels", metavar="COL|FILE", help="label column, or a file of labels")
    rep.add_argument("--image-shape", type=_image_shape, default="auto", help="HxW, auto, none")
    rep.add_argument("-o", "--output", required=True, metavar="DIR", help="report folder")

    demo = command(
        "demo", cmd_demo, "fit on the bundled digits, compare with PCA, write a report",
        "aekit demo --code-dims 2,8,16", [],
    )  # fmt: skip
    demo.add_argument("--code-dims", type=_int_list, default=[2, 8, 16], help="default: 2,8,16")
    demo.add_argument("--epochs", type=int, default=100, help="maximum epochs (default: 100)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.add_argument("--device", default="auto", help="auto, cpu, cuda, mps (default: auto)")
    demo.add_argument("-o", "--out", default="aekit-demo", help="report folder (aekit-demo)")
    return parser


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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
