"""``aekit impute DATA -o FILLED``: a data file with its holes filled by an autoencoder.

DATA is read whole with its columns' kinds (:mod:`aekit.data.frames`): a ``.csv``, ``.tsv`` or
``.parquet`` table keeps its integer, float, text and boolean columns, a ``.npy``/``.npz``
array its dtype. The imputer (:class:`~aekit.AutoencoderImputer`) is fitted on DATA's feature
columns, or with ``--model DIR`` loaded from a folder it was saved to (``--save DIR``,
:meth:`~aekit.AutoencoderImputer.save`), whose columns are then picked from DATA by name as
every command picks a model's (:mod:`aekit.cli.inputs`). FILLED holds every column of DATA,
in its order and kinds, with the holes of the feature columns filled (an integer column's
fills rounded) and the other columns (``--label-column``, ``--drop``) as they were.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AekitWarning, ConfigError, DataError
from .options import add_estimator_options, estimator_kwargs

__all__ = ["NOT_FOR_IMPUTERS", "cmd_impute", "register"]

# Autoencoder options the imputer sets itself (missing values), that would clash between its
# members (one checkpoint folder), or whose flag is FILLED's (--output, the output activation,
# is the imputer's choice); random_state and categorical_features are the imputer's own.
NOT_FOR_IMPUTERS = frozenset(
    {"missing", "output", "checkpoint_dir", "checkpoint_every", "checkpoint_every_steps",
     "keep_checkpoints"}
)  # fmt: skip
_IMPUTER_OWN = ("random_state", "categorical_features")


def _estimators(text: str) -> int | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or auto: {text!r}") from None


def _marker(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def register(command: Any, data: Any) -> None:
    """Add ``impute`` to the parser (``command``: the parser's helper; ``data``: --columns...)."""
    p = command(
        "impute", cmd_impute, "fill the missing values of a data file with an autoencoder",
        "aekit impute survey.csv -o filled.csv --save imputer/", [data],
    )  # fmt: skip
    p.add_argument("data", metavar="DATA", help=".csv .tsv .txt .parquet .npy or .npz file")
    p.add_argument(
        "-o", "--output", required=True, metavar="FILLED", dest="filled",
        help="output: .csv .tsv .parquet (every column, kinds kept) or .npy .npz (numbers)",
    )  # fmt: skip
    p.add_argument("--model", metavar="DIR", help="use the imputer saved in DIR (no training)")
    p.add_argument("--save", metavar="DIR", help="save the fitted imputer to DIR")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an imputer already saved in --save DIR, or DATA itself when FILLED is DATA",
    )
    group = p.add_argument_group("imputer", "aekit.AutoencoderImputer's parameters.")
    group.add_argument(
        "--n-estimators", type=_estimators, default=argparse.SUPPRESS, metavar="INT|auto",
        help="autoencoders averaged (default: auto, 5 up to 100,000 entries, else 1)",
    )  # fmt: skip
    p.add_argument(
        "--missing-values", type=_marker, metavar="MARKER",
        help="a number or text that marks a missing cell too, besides empty cells and NA, "
        "null, NaN, None (which always do)",
    )  # fmt: skip
    # the imputer's own default seed, 0: two runs on the same file fill the same values
    add_estimator_options(p, exclude=NOT_FOR_IMPUTERS, defaults={"random_state": 0})


def cmd_impute(args: argparse.Namespace) -> int:
    """Fill DATA's holes and write FILLED; fit the imputer, or load it with ``--model``."""
    from ..data.formats import check_output
    from ..files.atomic import check_writable_folder
    from ..files.layouts import check_can_save
    from .inputs import by_position, checked_output, refuse_in_models

    # dest "filled": "output" is an Autoencoder parameter; FILLED over DATA with --overwrite
    if args.overwrite:
        output = check_output(args.filled)
    else:
        output = checked_output(args.filled, args.data, "FILLED", "pass --overwrite to replace it")
    refuse_in_models(output, "FILLED", [args.model, args.save])
    trained = estimator_kwargs(args)
    own = {k: trained.pop(k) for k in _IMPUTER_OWN if k in trained}
    if hasattr(args, "n_estimators"):
        own["n_estimators"] = args.n_estimators
    told = [k for k in [*trained, *own] if k != "random_state"]  # a loaded imputer needs no seed
    if args.model is not None and (told or args.save):
        given = ", ".join("--" + k.replace("_", "-") for k in told)
        raise ConfigError(
            f"--model {args.model} fills with the imputer saved there as it is: leave out "
            f"{given or '--save'}"
        )
    if args.save is not None:
        check_can_save(args.save, args.overwrite, "--overwrite")
        check_writable_folder(args.save)
    imputer = _loaded(args.model) if args.model is not None else None
    read, named = _read(args.data, args.missing_values)
    columns = _columns(args, read, imputer, named)
    frame = _marked(read, columns, args.data, args.missing_values)
    if imputer is not None:
        frame = _fitted_kinds(frame, columns, imputer)
    X = _features(frame, columns, named)
    if imputer is None:
        imputer = _fitted(X, trained, own)
        if not isinstance(frame, np.ndarray):  # the kinds as read (Int64, boolean...), which
            imputer._dtypes = [str(t) for t in frame[columns].dtypes]  # --model gives back
    elif imputer.n_features_in_ != len(columns):
        raise DataError(
            f"{args.data} has {len(columns)} feature columns, the imputer {args.model} "
            f"expects {imputer.n_features_in_}"
        )
    X = by_position(imputer, X)  # fitted in Python on integer column labels
    with warnings.catch_warnings():  # columns matched by name here, or DATA names none
        warnings.filterwarnings("ignore", "X does not have valid feature names")
        try:
            filled, holes = _filled(frame, columns, X, imputer)
        except (ValueError, TypeError) as exc:  # a category where DATA has numbers...
            raise DataError(
                f"{args.data}: the imputer's fills do not fit DATA's columns in kind "
                f"({' '.join(str(exc).split())}): are they the columns it was fitted on, in "
                "its order (--columns)?"
            ) from exc
    if isinstance(read, np.ndarray) and read.dtype.kind in "iu":
        filled = _integers(read, frame, filled, args.data)
    _write(output, filled, named)
    line = f"wrote {output}: {len(X)} rows, {holes} missing values filled in {len(columns)} columns"
    if args.save is not None:
        imputer.save(args.save, overwrite=args.overwrite)
        line += f"; imputer saved to {args.save}"
    print(line)
    return 0


def _loaded(folder: str) -> Any:
    """The imputer saved in ``folder``; another kind of folder is a ConfigError."""
    from .. import load
    from ..files.layouts import folder_kind

    kind = folder_kind(folder) if Path(folder).is_dir() else None
    if kind is not None and kind != "imputer":
        raise ConfigError(
            f"{folder} holds a saved {kind}, not an imputer (save one with 'aekit impute "
            "--save DIR' or AutoencoderImputer.save)"
        )
    return load(folder)


def _read(path: str, marker: float | str | None) -> tuple[Any, bool]:
    """DATA whole with its kinds (:func:`~aekit.data.frames.read_frame`), text ``marker`` read.

    A text ``marker`` makes a text table's column of numbers with such cells numbers; which
    cells are missing is :func:`_marked`'s, once the feature columns are known.
    """
    from ..data.frames import read_frame

    frame, named = read_frame(path, [v for v in _marks(marker) if isinstance(v, str)])
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise DataError(f"{path} has no data ({frame.shape[0]} rows, {frame.shape[1]} columns)")
    _check_finite(frame, path)
    return frame, named


def _marks(marker: float | str | None) -> list[Any]:
    """The values that ``--missing-values`` names: the marker as given, as text, as an integer."""
    values: list[Any] = [] if marker is None else [marker, str(marker)]
    if isinstance(marker, float) and marker.is_integer():
        values += [int(marker), str(int(marker))]
    return values


def _marked(frame: Any, columns: list[Any], path: str, marker: float | str | None) -> Any:
    """DATA with its feature ``columns``' marked cells missing, the other columns as written.

    The other columns (the label, dropped ones) are read again as written
    (:func:`~aekit.data.frames.read_verbatim`): no marker, ``NA`` or ``None`` text in them is
    a missing value, so FILLED has them as DATA does. An integer array with marked cells
    becomes float64 (NaN cannot be an integer) until filled: FILLED is then written in its
    integer dtype, the fills rounded (as a table's integer column's are), unless a fill is
    missing or beyond the dtype's range (:func:`_integers`).
    """
    from ..data.frames import read_verbatim
    from ..data.textcells import marker_cells

    values = _marks(marker)
    if isinstance(frame, np.ndarray):
        if isinstance(marker, str) or (values and not np.issubdtype(frame.dtype, np.number)):
            raise DataError(f"--missing-values {marker!r}: {path} holds numbers only")
        marked = np.zeros(frame.shape, dtype=bool)
        if values:
            marked[:, columns] = frame[:, columns] == marker
        if marked.any():  # a copy: a .npy file's rows are memory-mapped, read-only
            floats = np.issubdtype(frame.dtype, np.floating)
            frame = frame.astype(frame.dtype if floats else np.float64)
            frame[marked] = np.nan
        return frame
    others = [c for c in frame.columns if c not in columns]
    frame = frame.copy()
    if values:
        frame[columns] = frame[columns].mask(marker_cells(frame[columns], values))
    if others:
        as_written = read_verbatim(path, others)
        for c in others:
            frame[c] = as_written[c]
    return frame


def _fitted_kinds(frame: Any, columns: list[Any], imputer: Any) -> Any:
    """DATA with each feature column that has no value at all in the kind seen in ``fit``.

    A column with only empty cells has no kind of its own (the CSV reader makes it an integer
    column, whose fills would be rounded): it takes the one the saved imputer was fitted on,
    numbers (float, the fills as they are) or categories (text, booleans: a category each).
    """
    import pandas as pd

    from ..data.frames import dtype_named

    kinds = getattr(imputer, "_dtypes", None)
    if isinstance(frame, np.ndarray) or kinds is None or len(kinds) != len(columns):
        return frame
    empty = [(c, k) for c, k in zip(columns, kinds, strict=True) if frame[c].isna().all()]
    if not empty:
        return frame
    frame = frame.copy()
    for column, kind in empty:
        dtype = dtype_named(kind)  # (a kind this pandas does not know: object, categories)
        if pd.api.types.is_bool_dtype(dtype):
            frame[column] = frame[column].astype("boolean")
        elif pd.api.types.is_integer_dtype(dtype):
            frame[column] = frame[column].astype("Int64")
        elif pd.api.types.is_float_dtype(dtype):
            frame[column] = frame[column].astype("Float64")
        else:
            frame[column] = frame[column].astype(object)
    return frame


def _integers(read: np.ndarray, marked: np.ndarray, filled: np.ndarray, path: str) -> np.ndarray:
    """FILLED in the dtype of DATA's integer array ``read``: its cells as read, fills rounded.

    Only the marked cells (NaN in ``marked``) take a fill, so the other cells stay exact (an
    int64 beyond 2**53 would not survive a float64). Where a fill is missing or beyond the
    dtype's range (fills keep to the range the imputer saw in ``fit``, which may be wider),
    FILLED stays float64, with a warning.
    """
    holes = np.isnan(marked) if marked.dtype.kind == "f" else np.zeros(read.shape, bool)
    values = np.round(np.asarray(filled, dtype=np.float64)[holes])
    limits = np.iinfo(read.dtype)
    if np.isnan(values).any() or (values < limits.min).any() or (values > limits.max).any():
        warnings.warn(
            f"{path}: some fills are missing or beyond {read.dtype}'s range: FILLED is "
            "written as float64",
            AekitWarning,
            stacklevel=2,
        )
        return filled
    out = read.copy()
    out[holes] = values.astype(read.dtype)
    return out


def _check_finite(frame: Any, path: str) -> None:
    """Refuse infinity (and float32's overflow) in DATA, named by the file, row and column."""
    import pandas as pd

    from ..data.checks import check_finite_rows, first_unusable, unusable_message

    if isinstance(frame, np.ndarray):
        check_finite_rows(frame, path, allow_nan=True)
        return
    floats = [name for name, kind in frame.dtypes.items() if pd.api.types.is_float_dtype(kind)]
    values = frame[floats].to_numpy(dtype=np.float64, na_value=np.nan)
    where = first_unusable(values, float32=True, allow_nan=True)  # as the imputer would
    if where is not None:
        row, column = where
        raise DataError(unusable_message(path, values[row, column], row, str(floats[column])))


def _columns(args: argparse.Namespace, frame: Any, imputer: Any, named: bool) -> list[Any]:
    """DATA's feature columns (names, or positions where DATA has no names), in model order.

    A parquet file's columns are names even where pandas labels them ``0, 1, ...``.
    """
    from .inputs import feature_columns, model_columns

    expected = None if imputer is None or not named else model_columns({}, imputer)
    picked = feature_columns(args, expected, args.label_column)
    every = list(range(frame.shape[1])) if isinstance(frame, np.ndarray) else list(frame.columns)
    label, by_name = args.label_column, {str(c): c for c in every} if named else {}
    if label is not None and str(label) not in {str(c) for c in every}:
        raise ConfigError(f"--label-column {label!r}: DATA has no such column")
    if picked is None:
        return [c for c in every if str(c) != str(label)]
    out = []
    for c in picked:
        if c in every:
            out.append(c)
        elif str(c) in by_name:
            out.append(by_name[str(c)])
        elif str(c).isdigit() and int(c) < len(every):
            out.append(every[int(c)])
        else:
            raise ConfigError(f"--columns {c!r}: DATA has no such column")
    return out


def _features(frame: Any, columns: list[Any], named: bool) -> Any:
    """The imputer's input: an array, or a DataFrame of the feature columns (names kept)."""
    import pandas as pd

    from ..data.frames import plain_frame

    if isinstance(frame, np.ndarray):
        return frame[:, columns]
    X = plain_frame(frame[columns])
    numeric = all(pd.api.types.is_float_dtype(t) for t in X.dtypes)
    if named:  # names the imputer records (pandas' 0, 1, ... are no names to scikit-learn)
        return X.set_axis([str(c) for c in X.columns], axis=1)
    return X if not numeric else X.to_numpy()


def _fitted(X: Any, trained: dict[str, Any], own: dict[str, Any]) -> Any:
    """An imputer fitted on ``X``: the default autoencoder, with the options given."""
    from ..impute import AutoencoderImputer, imputer_autoencoder

    base = None
    if trained:  # the imputer's default autoencoder, as it would build it, with the options
        holes = X.isna().to_numpy() if hasattr(X, "isna") else np.isnan(X.astype(np.float64))
        layout = np.where(holes, np.nan, 0.0) if hasattr(X, "isna") else X.astype(np.float64)
        base = imputer_autoencoder(layout).set_params(**trained)
    return AutoencoderImputer(base, keep_empty_features=True, **own).fit(X)


def _kept(imputer: Any, columns: list[Any]) -> list[Any]:
    """The feature columns that ``transform``'s output starts with, in order.

    A column empty when the imputer was fitted is not among them where it was fitted with
    ``keep_empty_features=False`` (as in Python; the CLI's own fits keep it): it is written
    as read, with a warning where it has holes. The indicator's columns that ``add_indicator``
    appends are not written either.
    """
    names = getattr(imputer, "feature_names_in_", None)
    names = [f"x{i}" for i in range(len(columns))] if names is None else list(names)
    out = set(imputer.get_feature_names_out()[: len(columns)])
    return [c for c, name in zip(columns, names, strict=True) if name in out]


def _filled(frame: Any, columns: list[Any], X: Any, imputer: Any) -> tuple[Any, int]:
    """DATA with its feature columns filled, and how many cells were filled."""
    import pandas as pd

    from ..data.frames import restore_kinds

    out, kept = imputer.transform(X), _kept(imputer, columns)  # then the indicator's columns
    if isinstance(frame, np.ndarray):
        result = frame.copy()
        missing = np.isnan(frame[:, columns].astype(np.float64))
        result[:, kept] = np.asarray(out, dtype=np.float64)[:, : len(kept)]
    else:
        missing = frame[columns].isna().to_numpy()
        if isinstance(out, pd.DataFrame):  # a table's: its kinds, named by the model
            values = out.iloc[:, : len(kept)].set_axis(kept, axis=1)
        else:
            values = pd.DataFrame(np.asarray(out)[:, : len(kept)], columns=kept, index=frame.index)
        result = restore_kinds(values, frame)
    holed = zip(columns, missing.any(axis=0), strict=True)
    left = [c for c, holes in holed if holes and c not in kept]  # dropped by the model
    if left:
        warnings.warn(
            f"column(s) {', '.join(map(repr, left))} had no value when the imputer was fitted "
            "(keep_empty_features=False): their holes are left missing",
            AekitWarning,
            stacklevel=2,
        )
    return result, int(missing[:, [c in kept for c in columns]].sum())


def _write(output: Path, filled: Any, named: bool) -> None:
    from ..data.frames import write_frame

    write_frame(output, filled, header=named)
