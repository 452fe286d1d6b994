"""``aekit compare``, ``report`` and ``demo``: autoencoders measured against PCA."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .._version import __version__
from ..errors import ConfigError
from .inputs import (
    HOLDOUT,
    feature_columns,
    fingerprint,
    fit_info,
    is_frame,
    model_and_data,
    model_columns,
    read_data,
    write_png,
)
from .options import estimator_kwargs, progress_callbacks, run_seed


def cmd_compare(args: argparse.Namespace) -> int:
    """Autoencoder vs PCA at several code sizes on a held-out split."""
    from ..analysis.measurement import compare, split_indices
    from ..analysis.plots import error_vs_code_size
    from ..files.atomic import atomic_write, check_writable_folder
    from ..files.core import json_bytes

    if args.out is not None:
        check_writable_folder(args.out)
    if not 0 < args.test_fraction < 1:
        raise ConfigError(f"--test-fraction must be in (0, 1), got {args.test_fraction}")
    picked = feature_columns(args, label_column=args.label_column)  # --columns less --drop
    X = read_data(args.data, picked, args.label_column).X
    X = X.toarray() if hasattr(X, "indptr") else np.asarray(X)  # sparse rows: compared dense
    seed = run_seed(args)  # drawn when not given, and printed: the run can be repeated
    train_idx, test_idx = split_indices(len(X), args.test_fraction, seed)
    X_train, X_test = X[train_idx], X[test_idx]
    params = {**estimator_kwargs(args), "random_state": seed}
    result = compare(X_train, X_test, args.code_dims, callbacks=progress_callbacks(args), **params)
    print(result.table())
    print(f"seed {seed}")
    if args.out is not None:
        out = Path(args.out)
        atomic_write(
            out / "compare.json", json_bytes(result.to_dict(), sort_keys=False, strict=True)
        )
        dims = ([r.code_dim for r in result.rows], [r.ae_error for r in result.rows])
        write_png(out / "compare.png", error_vs_code_size, result.pca_curve, dims)
        print(f"wrote {out / 'compare.json'} and the plot compare.png")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write an HTML report of a model on a data file."""
    from ..analysis.report import build_report
    from ..data.formats import names_columns, read_labels
    from ..files.atomic import check_writable_folder
    from ..files.layouts import folder_kind
    from .sae import sae_report

    check_writable_folder(args.output)
    if folder_kind(args.model) == "sae":
        return sae_report(args)
    info = fit_info(args.model)
    label_column = None
    labels_file = None
    if args.labels is not None:
        if Path(args.labels).is_file():
            labels_file = args.labels
        else:
            label_column = args.labels
    elif info.get("label_column") is not None and names_columns(args.data):
        label_column = info["label_column"]
    with model_and_data(args, label_column) as (ae, info, table):  # in memory: all rows plot
        labels = read_labels(labels_file) if labels_file is not None else table.labels
        sparse = hasattr(table.X, "indptr")  # the report plots rows: dense (the file's digest
        X = table.X.toarray() if sparse else table.X  # is of its sparse form); a table with
        if not is_frame(X):  # categorical columns stays a DataFrame
            X = np.asarray(X)
        holdout, notes = None, []
        if info.get("fingerprint") == fingerprint(table.X if sparse else X):
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
            feature_names=model_columns(info, ae),  # fit.json's, or the model's own
        )
    page = report.write(args.output)
    print(f"wrote {page}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Fit on scikit-learn's bundled digits, compare with PCA, write a report."""
    import torch
    from sklearn.datasets import load_digits

    from ..analysis.measurement import compare, split_indices
    from ..analysis.report import build_report
    from ..files.atomic import check_writable_folder

    check_writable_folder(args.out)
    digits = load_digits()
    X = digits.data / 16.0  # 8×8 images, pixels scaled to [0, 1]
    train_idx, test_idx = split_indices(len(X), 0.2, random_state=args.random_state)
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
            X[train_idx], X[test_idx], args.code_dims, keep_models=True, **estimator_kwargs(args)
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
