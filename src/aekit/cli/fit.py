"""``aekit fit``: train on a data file, save the model folder with its side files.

The run's seed is ``--seed``, or one drawn here when none is given (see :mod:`.options`,
"Seeds"): it splits off the held-out rows, seeds the model, is printed in the summary and
recorded in ``fit.json``, so ``--seed N`` repeats any run exactly. Under DDP every rank uses
rank 0's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError, DataError
from .inputs import (
    FIT_INFO,
    HOLDOUT,
    at_most,
    feature_columns,
    fingerprint,
    is_frame,
    npy_bytes,
    open_streamed,
    read_data,
    rows_at,
    write_png,
)
from .options import (
    InterruptedRunError,
    estimator_kwargs,
    option_value,
    progress_callbacks,
    run_seed,
)

CHECKPOINT_COLUMNS = "columns.json"  # aekit fit's record of its data's columns, for --resume

if TYPE_CHECKING:
    from ..training.distributed import DistributedContext

_SUMMARY_ROWS = (20_000, 5_000)  # fit's closing PCA comparison: training, held-out rows


def cmd_fit(args: argparse.Namespace) -> int:
    """Fit an autoencoder to a data file and save it with its history and held-out rows.

    Under ``torchrun`` (or with ``--nproc N``, which relaunches through it) every process
    joins PyTorch's process group, trains its share of each global batch, and rank 0 alone
    writes the model folder and prints.
    """
    from ..files.folderlock import folder_lock
    from ..training.distributed import distributed_session, relaunch

    if args.nproc < 1:
        raise ConfigError(f"--nproc must be >= 1, got {args.nproc}")
    if args.max_restarts < 0:
        raise ConfigError(f"--max-restarts must be >= 0, got {args.max_restarts}")
    launched = "WORLD_SIZE" in os.environ
    if args.nproc > 1 and not launched:
        return relaunch(_without_option(args.argv, "--nproc"), args.nproc, args.max_restarts)
    if args.max_restarts and not launched:
        raise ConfigError(
            "--max-restarts needs --nproc N (or torchrun's own --max-restarts): a single "
            "process has no one to restart it"
        )
    with distributed_session(option_value(args, "device")) as ctx, contextlib.ExitStack() as held:

        def hold() -> None:  # rank 0 writes the model folder: it holds it for the whole run
            held.enter_context(folder_lock(_checked_out(args.out, args.overwrite, args.data)))

        ctx.agree(hold)  # a second run writing the same folder is refused, on every rank
        return _fit(args, ctx)


def _checked_out(out: str, overwrite: bool, data: str) -> Path:
    """The model folder, checked before training: a writable folder, no model unless told.

    A folder that holds a saved model is refused unless ``--overwrite``, so that no trained
    model is lost by mistake; so is a dataset folder DATA (its files would join its shards).
    """
    from ..data.formats import is_dataset
    from ..files.atomic import check_writable_folder
    from ..files.layouts import check_can_save

    path = Path(out)
    if path.exists() and not path.is_dir():
        raise DataError(f"cannot save a model to {path}: it exists and is not a folder")
    if is_dataset(data) and Path(data).is_dir() and path.resolve() == Path(data).resolve():
        raise ConfigError(
            f"-o {out} is the dataset folder DATA: the model's files would be read as its "
            "shards next time; save the model elsewhere"
        )
    check_can_save(path, overwrite, "--overwrite")
    return check_writable_folder(path)


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


def _agreed_seed(args: argparse.Namespace, world_size: int) -> int:
    """:func:`run_seed`; under DDP, rank 0's (a drawn seed differs from rank to rank).

    Under torchrun a seed not given is drawn from the launch id instead, so that a group
    torchrun restarts draws the same one and can resume the checkpoints of the first.
    """
    from ..training.distributed import run_id, run_seed_of

    launch = run_id()
    drawn = option_value(args, "random_state") is None and launch is not None
    seed = run_seed_of(launch) if drawn and launch else run_seed(args)
    if world_size > 1:
        import torch.distributed as dist

        holder = [seed]
        dist.broadcast_object_list(holder, src=0)
        seed = holder[0]
    return seed


def _fit(args: argparse.Namespace, ctx: DistributedContext) -> int:
    from ..data.sparse import is_sparse

    out = Path(args.out)
    checkpoint_dir = option_value(args, "checkpoint_dir")
    drawn = option_value(args, "random_state") is None
    if args.resume and not checkpoint_dir:
        raise ConfigError("--resume needs --checkpoint-dir (the folder the checkpoints are in)")
    if args.resume and drawn:
        raise ConfigError(
            "--resume needs the --seed of the run it continues (aekit fit prints it when "
            "it draws one, and its resume command includes it)"
        )
    if not 0 <= args.holdout < 1:
        raise ConfigError(f"--holdout must be in [0, 1), got {args.holdout}")
    seed = _agreed_seed(args, ctx.world_size)
    if drawn and checkpoint_dir and ctx.is_main:
        print(f"aekit: note: no --seed given; this run's is --seed {seed}", file=sys.stderr)
    picked = feature_columns(args, label_column=args.label_column)  # --columns less --drop
    source = open_streamed(args.data, args.stream, picked, args.label_column)
    try:
        if source is None:
            table = read_data(args.data, picked, args.label_column)
            X = table.X if is_frame(table.X) or is_sparse(table.X) else np.asarray(table.X)
            columns = table.columns
        else:
            X, columns = source, getattr(source, "columns", None)
        if checkpoint_dir:
            X, columns = _checkpointed_columns(Path(checkpoint_dir), X, columns, args, ctx)
        return _fit_rows(args, X, columns, ctx, out, seed)
    finally:
        if source is not None:
            source.close()


def _checkpointed_columns(
    folder: Path,
    X: Any,
    columns: list[str] | None,
    args: argparse.Namespace,
    ctx: DistributedContext,
) -> tuple[Any, list[str] | None]:
    """The rows in the column order of the run the checkpoints in ``folder`` belong to.

    A fresh run records its data's column names there (:data:`CHECKPOINT_COLUMNS`); a
    resumed one reads them: the same names in another order are put back in that order (rows
    in memory), other names are refused, so the checkpoint's weights never train on other
    columns. A folder without the record (an older run, or rows without names) resumes by
    position, as before; a fresh run on rows without names removes an earlier run's record.
    """
    from ..data.names import named_order
    from ..files.atomic import atomic_write

    record = folder / CHECKPOINT_COLUMNS
    if not args.resume:
        if ctx.is_main and columns is not None:
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write(record, json.dumps(list(columns)).encode())
        elif ctx.is_main:  # an earlier run's names would reorder this run's rows on resume
            record.unlink(missing_ok=True)
        return X, columns
    if columns is None or not record.is_file():
        return X, columns
    written = json.loads(record.read_text(encoding="utf-8"))
    who = f"the run whose checkpoints are in {folder}"
    order = named_order(columns, written, who, what=f"{args.data}'s columns")
    if order is None:
        return X, columns
    if not is_frame(X) and not isinstance(X, np.ndarray):
        raise DataError(
            f"{args.data} has the checkpointed run's columns in another order; a streamed "
            f"file is read in its own order: write it with the columns {written}"
        )
    if is_frame(X):
        return X[order], order
    return X[:, [list(columns).index(name) for name in order]], order


def _resume_command(args: argparse.Namespace, seed: int, world_size: int) -> str:
    """How to continue an interrupted run: its command with ``--resume`` (and its seed)."""
    from ..training.distributed import NPROC_ENV

    argv = [a for a in args.argv if a != "--resume"]
    if option_value(args, "random_state") is None:  # the drawn seed, to resume
        argv += ["--seed", str(seed)]
    if world_size == 1:
        return f"resume with: aekit {shlex.join([*argv, '--resume'])}"
    if os.environ.get(NPROC_ENV) == str(world_size):  # started by aekit fit --nproc N
        return f"resume with: aekit {shlex.join([*argv, '--nproc', str(world_size), '--resume'])}"
    return (
        f"resume by running the same torchrun command with: aekit {shlex.join([*argv, '--resume'])}"
    )


def _fit_rows(
    args: argparse.Namespace, X: Any, columns: Any, ctx: DistributedContext, out: Path, seed: int
) -> int:
    """Fit on rows in memory (an array) or streamed (a source); rank 0 saves and reports."""
    from ..analysis.measurement import measure, split_indices
    from ..analysis.plots import loss_curves
    from ..data.sources import RowSource, RowSubset
    from ..data.sparse import chunk_rows_for
    from ..data.stats import stream_stats
    from ..estimator.autoencoder import Autoencoder
    from ..estimator.rows import EMPTY_COLUMNS, warn_of_empty_columns
    from ..files.atomic import atomic_write
    from ..files.folderlock import saved_folder
    from ..training.progress import StopOnSignal

    n_rows = len(X) if isinstance(X, RowSource) else X.shape[0]
    if args.holdout > 0 and n_rows >= 10:
        train_idx, holdout_idx = split_indices(n_rows, args.holdout, seed)
    else:
        train_idx, holdout_idx = np.arange(n_rows), np.arange(0)
    if not isinstance(X, RowSource):  # an array, a DataFrame or sparse rows
        train = rows_at(X, train_idx)
    else:
        train = RowSubset(X, train_idx) if len(holdout_idx) else X
        if len(holdout_idx):  # the held-out rows are read after training: check them first
            stream_stats(RowSubset(X, holdout_idx))
    ae = Autoencoder(**{**estimator_kwargs(args), "random_state": seed, "device": ctx.device})
    stopper = StopOnSignal()
    try:
        with stopper.installed(), warnings.catch_warnings():
            if columns is not None and isinstance(train, np.ndarray) and train.dtype.kind == "f":
                warn_of_empty_columns(np.isnan(train).all(axis=0), list(columns), 2)
                warnings.filterwarnings("ignore", EMPTY_COLUMNS)  # (the fit's: by index)
            ae.fit(train, callbacks=(*progress_callbacks(args), stopper), resume=args.resume)
    except KeyboardInterrupt:
        if not ctx.is_main:  # rank 0 says how to go on; every rank leaves the group alike
            raise InterruptedRunError("") from None
        if ae.checkpoint_dir:
            raise InterruptedRunError(
                f"interrupted; checkpoint in {ae.checkpoint_dir}; "
                f"{_resume_command(args, seed, ctx.world_size)}"
            ) from None
        raise InterruptedRunError(
            "interrupted; nothing saved (add --checkpoint-dir DIR to make training resumable)"
        ) from None
    if not ctx.is_main:  # under DDP, rank 0 alone writes and reports
        return 0
    info = {
        "data": str(args.data),
        "n_rows": n_rows,
        "fingerprint": fingerprint(X),
        "columns": columns,
        "label_column": args.label_column,
        "holdout_fraction": args.holdout,
        "seed": seed,
    }
    with saved_folder(out) as staged:  # all the fit's files, or (killed, full disk) none
        ae.save(staged, overwrite=True)  # --overwrite was checked before training
        ae.history_.save(staged / "history.json")
        atomic_write(staged / HOLDOUT, npy_bytes(holdout_idx.astype(np.int64)))
        atomic_write(staged / FIT_INFO, (json.dumps(info, indent=2) + "\n").encode())
        loss = ae.train_config_.loss, bool(ae.model_config_.categorical_blocks)
        write_png(staged / "loss.png", loss_curves, ae.history_, *loss)
    summary = (
        f"saved {out}: {len(train_idx)} rows, {len(holdout_idx)} held out, {ae.n_iter_} "
        f"epochs (stopped by {ae.history_.stop_reason}, "
        f"kept epoch {ae.history_.best_epoch}), seed {seed}"
    )
    if len(holdout_idx):  # on samples of big data: the comparison must fit in memory
        sparse = hasattr(X, "indptr")  # wide sparse rows: fewer, so the dense scaled rows fit
        pca_rows, test_rows = (
            at_most(idx, chunk_rows_for(X.shape[1], count) if sparse else count, seed)
            for idx, count in zip((train_idx, holdout_idx), _SUMMARY_ROWS, strict=True)
        )
        found = measure(ae, rows_at(X, pca_rows), rows_at(X, test_rows))
        sampled = "" if len(test_rows) == len(holdout_idx) else f" of {len(test_rows)} rows"
        summary += (
            f"; held-out error{sampled} {found.ae_error:.4g} (PCA with {args.code_dim} "
            f"components: {'-' if found.pca_error is None else f'{found.pca_error:.4g}'}; "
            "per-row squared error, scaled space)"
        )
    print(summary)
    return 0
