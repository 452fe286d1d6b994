"""``aekit sae``: fit a sparse autoencoder for interpretability to activations, save it.

``aekit sae DATA -o SAE_DIR`` trains :class:`aekit.sae.SparseAutoencoder` on a ``.npy`` or
parquet file, or a folder or glob of ``.npy``, parquet or ``.safetensors`` shards, streamed
(never loaded whole), and saves it in aekit's folder or, with ``--format saelens``, in
SAELens's. Every parameter of :class:`~aekit.config.sae.SAEConfig` is an option
(``--code-dim``, ``--k``, ``--architecture``, ...). It ends with one line of the field's
figures over the last logged steps: explained variance (FVU), L0, dead latents, shrinkage.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..config.fields import describe
from ..config.sae import SAEConfig
from ..files.layouts import check_can_save
from .options import (
    InterruptedRunError,
    add_estimator_options,
    add_quiet_option,
    positive_int,
)

__all__ = ["cmd_sae", "register", "sae_report", "summary"]


def register(command: Any) -> None:
    """Add ``sae`` to the parser (``command`` is the parser's helper that adds a subcommand)."""
    p = command(
        "sae", cmd_sae,
        "fit a sparse autoencoder (BatchTopK, JumpReLU, Matryoshka, top-k, L1) to activations",
        "aekit sae activations/ --code-dim 16384 --k 32 --normalize -o sae/ --format saelens",
        [],
    )  # fmt: skip
    p.add_argument(
        "data",
        metavar="DATA",
        help=".npy or .parquet file, or a folder or glob of .npy, .parquet or .safetensors "
        "shards (streamed)",
    )
    p.add_argument("-o", "--out", required=True, metavar="SAE_DIR", help="SAE folder")
    p.add_argument(
        "--format",
        choices=("aekit", "saelens"),
        default="aekit",
        help="aekit's folder (sae.json, reloads exactly) or SAELens's (cfg.json, "
        "sae_weights.safetensors) (default: aekit)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an SAE saved in SAE_DIR")
    p.add_argument(
        "--resume", action="store_true", help="continue from --checkpoint-dir's newest checkpoint"
    )
    p.add_argument(
        "--stop-after",
        type=positive_int,
        metavar="STEPS",
        help="stop at this step (checkpointed in --checkpoint-dir, if given)",
    )
    p.add_argument(
        "--key",
        metavar="NAME",
        help="the tensor to read in each .safetensors shard (default: a shard's only tensor)",
    )
    add_quiet_option(p)
    add_estimator_options(p, table=describe(SAEConfig), owner="aekit.sae.SparseAutoencoder")


def summary(history: list[dict[str, Any]], n_steps: int = 0, log_every: int = 0) -> str:
    """The field's figures of a history's last record, as one line.

    With no record yet (``--stop-after`` below ``--log-every``), it says so: ``n_steps`` ran,
    fewer than one log interval.
    """
    if not history:
        return (
            f"{n_steps:,} step(s), fewer than one log interval (--log-every {log_every:,}): "
            "no figures recorded yet"
        )
    last = history[-1]
    return (
        f"{last['step']:,} steps, {last['rows']:,} rows: explained variance "
        f"{last['explained_variance']:.4f} (FVU {last['fvu']:.4f}), L0 {last['l0']:.1f}, "
        f"dead {last['dead_fraction']:.1%}, shrinkage {last['shrinkage']:.3f}, "
        f"{last['rows_per_s']:,.0f} rows/s"
    )


def cmd_sae(args: argparse.Namespace) -> int:
    """Fit a sparse autoencoder to DATA and save it to SAE_DIR; print its figures."""
    from ..sae import SparseAutoencoder

    check_can_save(args.out, args.overwrite, "--overwrite")  # before any work
    given = vars(args)
    kwargs = {name: given[name] for name in describe(SAEConfig) if name in given}
    try:
        sae = SparseAutoencoder(**kwargs).fit(
            _activations(args.data, args.key), resume=args.resume, stop_after=args.stop_after
        )
    except KeyboardInterrupt:
        if getattr(args, "checkpoint_dir", None) is None:
            why = "nothing saved (add --checkpoint-dir DIR to make training resumable)"
        else:
            why = f"checkpoint in {args.checkpoint_dir}; run the same command with --resume"
        raise InterruptedRunError(f"interrupted; {why}") from None
    sae.save(args.out, overwrite=args.overwrite, format=args.format)
    resumable = (
        getattr(args, "checkpoint_dir", None) is not None
    )  # else the stopped run cannot go on
    go_on = "--resume to go on" if resumable else "no --checkpoint-dir: it cannot be resumed"
    stopped = f" (stopped early: {go_on})" if sae.stopped_early_ else ""
    if not getattr(args, "quiet", False) or stopped:
        figures = summary(sae.history_, sae.n_steps_, sae.sae_config().log_every)
        print(f"wrote {args.out} ({args.format}){stopped}: {figures}")
    return 0


def _activations(data: str, key: str | None) -> Any:
    """DATA for the SAE: its path, or ``--key``'s tensor of its ``.safetensors`` shards."""
    if key is None:
        return data
    from ..data.safetensors_rows import SafetensorsRows, is_safetensors_dataset
    from ..errors import ConfigError

    if not is_safetensors_dataset(data):
        raise ConfigError(f"--key names a tensor of .safetensors shards: {data} holds none")
    return SafetensorsRows(data, key=key)


def _read_array(path: str, what: str, rows: int | None = None) -> Any:
    """A ``.npy`` array (its first ``rows`` rows), or a scipy.sparse ``.npz`` (CSR)."""
    import numpy as np
    import scipy.sparse

    from ..errors import DataError

    try:
        if path.endswith(".npz"):
            array = scipy.sparse.load_npz(path).tocsr()
        else:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {what} {path}: expected a .npy or .npz file ({exc})") from exc
    if array.ndim != 2:
        raise DataError(f"{what} {path} has shape {array.shape}; expected a 2-D array")
    return array if rows is None else array[:rows]


def _report_rows(data: str, rows: int | None) -> Any:
    """DATA's first ``rows`` rows in any format ``aekit sae`` trains on (all where None)."""
    import torch

    from ..data.formats import read_table
    from ..data.safetensors_rows import SafetensorsRows, is_safetensors_dataset
    from ..errors import DataTypeError

    if data.endswith((".npy", ".npz")):
        return _read_array(data, "DATA", rows)
    if is_safetensors_dataset(data):
        source = SafetensorsRows(data)
        return source.take(torch.arange(min(rows or len(source), len(source)))).numpy()
    X = read_table(data).X
    if getattr(X, "dtype", None) is None or X.dtype.kind not in "biuf":  # (a frame: text)
        raise DataTypeError(f"{data} has text columns: an SAE trains on numbers (activations)")
    return X[:rows]


def sae_report(args: argparse.Namespace) -> int:
    """``aekit report`` for an SAE folder: the field's figures on DATA's first rows."""
    import numpy as np

    from ..analysis.sae_report import build_sae_report
    from ..errors import ConfigError
    from ..sae import SparseAutoencoder

    if args.true_codes is not None and args.true_features is None:
        raise ConfigError("--true-codes needs --true-features (F1 matches latents to them)")
    sae = SparseAutoencoder.load(args.model)
    X = np.array(_report_rows(args.data, args.rows), dtype=np.float32)  # a copy
    features = None if args.true_features is None else _read_array(args.true_features, "features")
    codes = None
    if args.true_codes is not None:
        codes = _read_array(args.true_codes, "true codes", args.rows)
        if codes.shape[0] != len(X):
            raise ConfigError(
                f"--true-codes has {codes.shape[0]:,} rows for the {len(X):,} rows of DATA measured"
            )
    report = build_sae_report(
        sae,
        X,
        true_features=None if features is None else np.asarray(features),
        true_codes=codes,
        title=f"aekit SAE report: {args.model} on {args.data}",
    )
    page = report.write(args.output)
    print(f"wrote {page}: " + ", ".join(f"{k} {v:.4g}" for k, v in report.summary["sae"].items()))
    return 0
