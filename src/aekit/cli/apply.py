"""``aekit encode``, ``reconstruct`` and ``score``: a model applied to a data file's rows."""

from __future__ import annotations

import argparse

import numpy as np

from ..errors import ConfigError
from .inputs import map_rows, model_and_data, write_rows


def cmd_encode(args: argparse.Namespace) -> int:
    """Write the codes of DATA's rows."""
    from ..data.formats import check_output

    check_output(args.output)
    with model_and_data(args, stream=True) as (ae, _, data):
        names = list(ae.get_feature_names_out())
        codes = map_rows(data, args.data, ae.transform)
        n = write_rows(args.output, data, codes, len(names), names)
    print(f"wrote {args.output}: {n} codes of {len(names)} numbers")
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    """Write DATA's rows as the model reconstructs them."""
    from ..data.formats import check_output

    check_output(args.output)
    with model_and_data(args, stream=True) as (ae, _, data):
        if getattr(ae, "table_layout_", None) is not None:
            raise ConfigError(
                f"{args.model} models a table with categorical columns: aekit reconstruct "
                "does not write such rows yet (use Autoencoder.reconstruct, which returns a "
                "DataFrame)"
            )
        parts = map_rows(data, args.data, ae.reconstruct)
        names = getattr(data, "columns", None)  # a table's, or a streamed parquet file's
        n = write_rows(args.output, data, parts, ae.n_features_in_, names)
    print(f"wrote {args.output}: {n} reconstructed rows")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """Write each row's reconstruction error; flag outliers above a threshold."""
    from ..anomaly.detector import threshold_for
    from ..data.formats import check_output, write_array

    check_output(args.output)
    if args.threshold is not None and args.contamination is not None:
        raise ConfigError("give --threshold or --contamination, not both")
    with model_and_data(args, stream=True) as (ae, _, data):
        parts = map_rows(data, args.data, ae.reconstruction_error)
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
