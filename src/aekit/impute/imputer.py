"""AutoencoderImputer: scikit-learn's imputer API, holes filled by a denoising autoencoder.

The imputer composes an :class:`~aekit.Autoencoder` trained with missing values
(``missing=True``): each training batch hides ``hide_share`` of the observed entries and the
loss counts every observed entry, so the network learns to rebuild an entry from the others.
``transform`` keeps the observed entries as given and fills each hole with the model's
reconstruction (one pass; its own imputations are never fed back).

On a table with categorical columns (pandas ``category``, ``object``, string or ``bool``
columns, or those ``categorical_features`` names) the autoencoder encodes them itself
(:class:`~aekit.data.tables.TableLayout`, its ``table_layout_``); a hole in such a column
becomes the category its members vote for (each member's most probable one), and the output
is the input table with its holes filled: same columns, order, index and dtypes.

``scipy.sparse`` rows are taken like ``SimpleImputer`` takes them: a stored entry equal to
``missing_values`` is a hole (implicit zeros are observed zeros); :meth:`AutoencoderImputer.fit`
densifies the rows it trains on, :meth:`~AutoencoderImputer.transform` only the rows with a hole,
chunk by chunk, and returns CSR rows.
"""

from __future__ import annotations

import numbers
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.impute import MissingIndicator
from sklearn.utils._set_output import _get_output_config
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted

from ..data.checks import CheckedRows
from ..data.frames import dtype_named
from ..data.names import fitted_labels, warn_of_fitted_order
from ..data.sparse import is_sparse
from ..data.tables import needs_layout
from ..errors import AekitWarning, ConfigError
from ..estimator.autoencoder import Autoencoder
from ..estimator.ensemble import fit_members
from ..estimator.rows import EMPTY_COLUMNS
from ..files.names import adopt_names
from ..training.prepare import member_seeds
from .blend import Blend, blend_runs, held_out_cells, weigh_candidates
from .defaults import ENSEMBLE_ENTRIES, imputer_autoencoder
from .imputerfile import read_imputer, save_imputer
from .markers import marked_cells, marked_rows, warn_empty

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SPARSE_CHUNK_ROWS", "AutoencoderImputer"]

SPARSE_CHUNK_ROWS = 4096  # transform on sparse rows: rows with a hole densified this many at once


class AutoencoderImputer(TransformerMixin, BaseEstimator):
    """Fill missing values with a denoising autoencoder's reconstruction.

    A drop-in for scikit-learn's imputers (``SimpleImputer``, ``KNNImputer``,
    ``IterativeImputer``): use it in a ``Pipeline`` before any estimator. Observed entries
    are returned as given; each missing entry of a numeric column becomes the autoencoder's
    reconstruction of it from the row's observed entries, clipped to the range of the
    column's observed values in ``fit`` (as ``IterativeImputer``'s ``min_value``/``max_value``
    would: a rarely used column's reconstruction can stray far outside it; digits, 40 % MCAR:
    RMSE 14.98 → 1.22). On a table the bounds are those of its numeric columns, in their
    own units (``bounds_``); a categorical column's hole gets a category, never clipped.

    The default autoencoder (:func:`imputer_autoencoder`) is what won ``benchmarks/impute.py``:
    two hidden layers of 4 units a column (32 to 256, :func:`hidden_width_for`; 256 where no
    chain is blended in), a code one unit a column up to 10 columns and half as wide beyond
    (2 to 64, :func:`code_width_for`), each training row hiding another row's holes
    (:func:`hide_pattern_for`; rows without any hole: a random 15 % of the entries,
    :func:`hide_share_for`; no masking is much worse), the loss on every
    observed entry, mask indicators in the input, early stopping on held-out rows with entries
    hidden the same way (``patience=20`` epochs, or 150 optimiser steps where an epoch has fewer
    than 8 batches, :func:`patience_for`; ``improvement_z=0``, ``min_val_rows=20``: small
    tables keep more rows to train on), its own imputations never fed back, and the other
    :class:`~aekit.Autoencoder` defaults (``epochs="auto"``), but ``init="pca"`` (a PCA start of
    rows filled with column means), not the estimator's search. Image-like rows
    (:func:`shared_scale`: non-negative, most columns reaching one maximum) keep one global
    scale; other tables are standardized. With
    ``n_estimators="auto"`` small data (up to 100,000 entries) gets an ensemble of 5.

    **The validated blend** (default autoencoder, numeric rows of up to 100,000 entries and
    64 columns; :mod:`aekit.impute.blend`): 10 % of the observed cells are held out, hidden as
    other rows' holes; the members, a linear chain (:mod:`aekit.impute.chain`) and a
    nearest-neighbour fill (:mod:`aekit.impute.neighbours`) are weighed on them (``blend_``,
    ``neighbour_weight_``), then extra trees grown on that blend's fill
    (:mod:`aekit.impute.trees`, ``tree_weight_``); every fill is clipped to ``bounds_``, and
    what gets a weight besides the members is refitted on every observed cell.

    **Tables.** Fitted on a DataFrame with categorical columns (``category``, ``object``,
    string or ``bool`` dtypes), or with ``categorical_features``, the autoencoder one-hot
    encodes those columns inside the model (its ``table_layout_``; see
    :mod:`aekit.data.tables`) and the imputer fills a missing numeric cell with the members'
    mean reconstruction (clipped to the column's range in ``fit``) and a missing categorical
    cell with the category most members find most probable (ties: the first category).
    ``transform`` then returns a copy of the input DataFrame with its holes filled: the
    input's columns (in the fitted order, as ``get_feature_names_out`` says, where only the
    order differed), index and dtypes (a ``category`` column keeps its categories;
    integer columns get rounded fills); observed cells unchanged. A category unseen in
    ``fit`` counts as missing (with a warning) and is replaced. With ``add_indicator=True``
    the indicator's columns are appended as ``bool`` columns named
    ``missingindicator_<column>``. An array fitted with ``categorical_features`` gives back
    an array (a categorical hole gets its category's code). Numeric input (every column a
    number) is unchanged by all this: an ndarray out.

    Parameters
    ----------
    estimator : Autoencoder, optional
        The autoencoder to train (cloned, with ``missing=True, val_hidden=True``). None: the
        default above.
    missing_values : float, int, str or None, default=np.nan
        The placeholder of a missing value; every entry equal to it is imputed. As in
        scikit-learn, a text marker needs a table with text columns: on numeric rows it is
        a :class:`~aekit.errors.DataTypeError` (no number equals ``"-1"``). On
        ``scipy.sparse`` rows it may not be 0 (every implicit zero would be a hole).
    add_indicator : bool, default=False
        Append ``MissingIndicator``'s columns (features with a missing value in ``fit``).
    categorical_features : None, sequence of str or int, or boolean mask, default=None
        Integer-coded columns to treat as categorical, passed to the autoencoder (as
        :class:`~aekit.Autoencoder` takes it). None keeps the estimator's own setting.
    keep_empty_features : bool, default=False
        As ``SimpleImputer``: a column with no observed value in ``fit`` is dropped from the
        output, or with ``True`` kept and filled with 0 (nothing was seen to fill it from);
        ``fit`` warns of such columns (:class:`~aekit.errors.AekitWarning`).
    n_estimators : int or "auto", default="auto"
        Autoencoders trained (each from its own seed) whose reconstructions are averaged:
        an ensemble fills holes more closely (wine at 20 % MCAR: 0.768 → 0.739). "auto": 5
        for data of up to 100,000 entries, else 1.
    random_state : int, numpy.random.RandomState or None, default=0
        Seed of the autoencoders (members after the first get seeds drawn from it). The
        default 0 makes two fits on the same data (and thread count) fill the same values,
        as scikit-learn's deterministic imputers do; it wins over the ``estimator``'s own
        ``random_state``. None keeps the estimator's own (fresh entropy if that is None too);
        a ``RandomState`` gives one seed drawn from it per fit
        (:func:`~aekit.training.prepare.seed_from`, through the members' seeds).

    Attributes
    ----------
    estimators_ : list of Autoencoder
        The fitted autoencoders.
    estimator_ : Autoencoder
        The first of them.
    indicator_ : MissingIndicator or None
        The missing-value indicator (``add_indicator=True``).
    blend_ : float
        The members' weight in the fill (1.0: the members alone).
    linear_ : LinearChain or None
        The chain blended in with weight ``1 - blend_ - neighbour_weight_``.
    neighbours_ : NeighbourFill or None
        The nearest-neighbour fill blended in with weight ``neighbour_weight_``.
    neighbour_weight_ : float
    trees_ : TreeFill or None
        Extra trees blended in with weight ``tree_weight_`` against the rest of the fill.
    tree_weight_ : float
    held_out_rmse_ : list of float
        RMSE on the held-out cells of each weight triple (``aekit.impute.blend.BLEND_WEIGHTS``);
        set where the blend ran.
    bounds_ : ndarray of shape (2, n_features_in)
        Each input column's lowest and highest observed value in ``fit``, the range its
        fills are clipped to; NaN for a categorical column and a column with no value.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined when ``X`` has feature names.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.linear_model import LogisticRegression
    >>> model = make_pipeline(AutoencoderImputer(), LogisticRegression())  # doctest: +SKIP

    The fitted imputer saves as a folder (:meth:`save`, :meth:`load`, :func:`aekit.load`;
    layout in :mod:`aekit.impute.imputerfile`).
    """

    def __init__(
        self,
        estimator: Autoencoder | None = None,
        *,
        missing_values: float | int | str | None = np.nan,
        add_indicator: bool = False,
        categorical_features: Any = None,
        keep_empty_features: bool = False,
        n_estimators: int | str = "auto",
        random_state: int | np.random.RandomState | None = 0,
    ) -> None:
        self.estimator = estimator
        self.n_estimators = n_estimators
        self.missing_values = missing_values
        self.add_indicator = add_indicator
        self.categorical_features = categorical_features
        self.keep_empty_features = keep_empty_features
        self.random_state = random_state

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    # -- input ----------------------------------------------------------------------------
    def _rows(self, X: Any, *, reset: bool) -> Any:
        """Checked float rows, every hole NaN (:func:`~aekit.impute.markers.marked_rows`).

        A DataFrame with a text ``missing_values`` has its holes marked as its cells are read.
        """
        if self._text_frame(X):
            return marked_rows(self, self._cells(X, reset=reset), np.nan, reset=reset)
        return marked_rows(self, X, self.missing_values, reset=reset)

    def _text_frame(self, X: Any) -> bool:
        """Whether ``X`` is a DataFrame whose holes a text ``missing_values`` marks."""
        return isinstance(self.missing_values, str) and hasattr(X, "columns")

    # -- fit / transform --------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> AutoencoderImputer:
        """Train the autoencoders on the rows' observed entries (and weigh the blend).

        Where the validated blend runs (see the class docstring), 10 % of the observed cells
        are withheld from the members (and the first chain) to choose ``blend_``; the members
        are not refitted on them, the chain is.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features), or DataFrame
            Rows with missing values (``missing_values``); sparse rows are densified.
        y : None
            Ignored.

        Returns
        -------
        self : AutoencoderImputer

        Raises
        ------
        DataError
            Fewer than 2 rows (the autoencoders refuse them), infinity, or values beyond
            float32.
        DataTypeError
            A text ``missing_values`` on numeric rows.
        """
        if not isinstance(self.add_indicator, (bool, np.bool_)):
            raise ConfigError(f"add_indicator must be True or False, got {self.add_indicator!r}")
        own = self.estimator.categorical_features if self.estimator is not None else None
        categorical = own if self.categorical_features is None else self.categorical_features
        cells = self._cells(X, reset=True) if self._text_frame(X) else None  # read once
        self._table = needs_layout(X if cells is None else cells, categorical)
        frame_dtypes = getattr(X, "dtypes", None)  # a DataFrame's, recorded in a saved folder
        self._dtypes = None if frame_dtypes is None else [str(t) for t in frame_dtypes]
        if self._table:  # the members encode the table; the defaults see its cells' holes
            data = self._cells(X, reset=True) if cells is None else cells
            rows = np.where(data.isna().to_numpy(), np.nan, 0.0)
        elif cells is not None:
            data = rows = marked_rows(self, cells, np.nan, reset=True)
        else:
            data = rows = self._rows(X, reset=True)
            if is_sparse(rows):  # the members train on dense rows with NaN holes
                data = rows = rows.toarray()
        n = self.n_estimators
        if n == "auto":
            n = 5 if rows.size <= ENSEMBLE_ENTRIES else 1
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ConfigError(f"n_estimators must be a positive integer or 'auto', got {n!r}")
        blended = self.estimator is None and not self._table and blend_runs(rows)
        base = (
            imputer_autoencoder(rows, blended=blended) if self.estimator is None else self.estimator
        )
        seed = self.random_state if self.random_state is not None else base.random_state
        given = {} if self.categorical_features is None else {"categorical_features": categorical}
        seeds = member_seeds(seed, int(n))
        members = [
            clone(base).set_params(missing=True, val_hidden=True, random_state=s, **given)
            for s in seeds
        ]
        hidden = held_out_cells(rows, seeds[0]) if blended else None
        train = data if hidden is None else np.where(hidden, np.nan, rows)
        with warnings.catch_warnings():  # empty columns: warn_empty below says it the imputer's way
            warnings.filterwarnings("ignore", EMPTY_COLUMNS, AekitWarning)
            self.estimators_ = fit_members(members, train)  # one pass where they share a network
        self.estimator_ = self.estimators_[0]
        self._empty = np.isnan(rows).all(axis=0)
        warn_empty(self._empty, getattr(self, "feature_names_in_", None), self.keep_empty_features)
        self.linear_, self.blend_, self.neighbours_, self.neighbour_weight_ = None, 1.0, None, 0.0
        self.trees_, self.tree_weight_ = None, 0.0
        numbers_seen = rows
        if self._table:  # the numeric columns in their units; categorical ones: no bounds
            layout = self.estimator_.table_layout_
            numbers_seen = layout.encode(data, np.float64)[:, layout.starts]
            numbers_seen[:, [c.categories is not None for c in layout.columns]] = np.nan
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an empty column: NaN bounds
            self.bounds_ = np.stack(
                [np.nanmin(numbers_seen, axis=0), np.nanmax(numbers_seen, axis=0)]
            )
        if hidden is not None:  # weigh the autoencoders, chain and neighbours on hidden cells
            found, self.held_out_rmse_ = weigh_candidates(
                rows, hidden, self._guess(train), self._clip, seeds[0], self._guess(rows)
            )
            self.blend_, self.linear_ = found.members, found.linear
            self.neighbours_, self.neighbour_weight_ = found.neighbours, found.neighbour_weight
            self.trees_, self.tree_weight_ = found.trees, found.tree_weight
        self.indicator_ = None
        if self.add_indicator:
            self.indicator_ = MissingIndicator(missing_values=np.nan, error_on_new=False)
            self.indicator_.fit(rows)
        return self

    def transform(self, X: Any) -> Any:
        """Fill the missing entries of ``X`` with the autoencoder's reconstruction.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features), or DataFrame

        Returns
        -------
        X_imputed : ndarray or CSR matrix of shape (n_samples, n_features_out), or DataFrame
            Observed entries as given, holes filled; columns empty in ``fit`` dropped
            (unless ``keep_empty_features``), then the indicator's columns if asked for.
            Fitted on a DataFrame with categorical columns: a DataFrame with the input's
            columns, index and dtypes (see the class docstring).
        """
        check_is_fitted(self, "estimator_")
        if getattr(self, "_table", False):
            return self._fill_table(X)
        if _get_output_config("transform", self)["dense"] == "default":  # else labelled
            warn_of_fitted_order(X, fitted_labels(self), "transform")
        rows = self._rows(X, reset=False)
        if is_sparse(rows):
            return self._fill_sparse(rows)
        holes = np.isnan(rows)
        filled = np.where(holes, self._guess(rows).astype(rows.dtype, copy=False), rows)
        filled[holes & self._empty] = 0.0  # a column empty in fit: observed values kept
        if not self.keep_empty_features:
            filled = filled[:, ~self._empty]
        if self.indicator_ is not None:
            flags = self.indicator_.transform(rows).astype(filled.dtype)
            filled = np.hstack([filled, flags])
        return filled

    def _guess(self, rows: np.ndarray) -> np.ndarray:
        """The fill of checked rows (all holes too), blended where ``blend_`` < 1.

        The members' mean reconstruction, clipped; weighed with the linear chain's fill
        (clipped too) where the held-out cells chose one (:mod:`aekit.impute.blend`).
        """
        guesses = [m.reconstruct(CheckedRows(rows)) for m in self.estimators_]
        guess = self._clip(np.mean(guesses, axis=0))
        return self._blend().fill(rows, guess, self._clip)

    def _blend(self) -> Blend:
        """The fitted blend (the members alone before it is weighed)."""
        return Blend(
            getattr(self, "blend_", 1.0), getattr(self, "linear_", None),
            getattr(self, "neighbours_", None), getattr(self, "neighbour_weight_", 0.0),
            getattr(self, "trees_", None), getattr(self, "tree_weight_", 0.0),
        )  # fmt: skip

    def _clip(self, values: np.ndarray, columns: Any = slice(None)) -> np.ndarray:
        """``values`` within the observed range (``bounds_``) of their ``columns``."""
        low, high = self.bounds_[0, columns], self.bounds_[1, columns]
        return np.clip(values, np.nan_to_num(low, nan=-np.inf), np.nan_to_num(high, nan=np.inf))

    def _fill_sparse(self, rows: Any) -> Any:
        """:meth:`transform` on CSR rows: only the rows with a hole are densified, in chunks."""
        from scipy import sparse

        row_of = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
        holes = np.flatnonzero(np.isnan(rows.data))
        filled = rows.copy()
        holed_rows = np.unique(row_of[holes])
        for start in range(0, len(holed_rows), SPARSE_CHUNK_ROWS):
            chunk = holed_rows[start : start + SPARSE_CHUNK_ROWS]
            dense = rows[chunk].toarray()
            guess = self._guess(dense)
            here = holes[np.isin(row_of[holes], chunk)]
            local = np.searchsorted(chunk, row_of[here])
            filled.data[here] = guess[local, rows.indices[here]]
        filled.data[holes[self._empty[rows.indices[holes]]]] = 0.0  # (observed values kept)
        if not self.keep_empty_features:
            filled = filled[:, np.flatnonzero(~self._empty)]
        if self.indicator_ is not None:
            flags = self.indicator_.transform(rows)
            filled = sparse.hstack([filled, flags.astype(filled.dtype)], format="csr")
        return filled

    # -- tables ---------------------------------------------------------------------------
    def _cells(self, X: Any, *, reset: bool) -> pd.DataFrame:
        """The input as a DataFrame copy, its columns checked, ``missing_values`` as NaN."""
        return marked_cells(self, X, reset=reset)

    def _fill_table(self, X: Any) -> Any:
        """:meth:`transform` on a table: each hole gets the members' numbers or category."""
        import pandas as pd

        table = self._cells(X, reset=False)
        layout = self.estimator_.table_layout_
        encoded = layout.encode(table, np.float64)  # warns once of unseen categories
        holes = np.isnan(encoded[:, layout.starts])  # missing, or a category unseen in fit
        for j in np.flatnonzero((holes & table.notna().to_numpy()).any(axis=0)):
            table.iloc[holes[:, j], j] = np.nan  # unseen: a hole, not warned of again
        out = layout.as_numbers(table, encoded)  # (a copy) numbers given as text: numbers
        kinds = self._kinds(X, out.columns)
        if holes.any():  # numbers averaged over the members, categories by their votes
            votes = np.mean([layout.encode(m.reconstruct(table)) for m in self.estimators_], 0)
            guess = pd.DataFrame(layout.decode(votes))
            numeric = [c.categories is None for c in layout.columns]
            for j in np.flatnonzero(holes.any(axis=0)):
                values = guess.iloc[holes[:, j], j].to_numpy()
                if numeric[j]:  # within the column's observed range in fit
                    values = self._clip(values.astype(np.float64), j)
                if {out.dtypes.iloc[j].kind, kinds[out.columns[j]].kind} & set("iu"):  # integers
                    values = np.round(values.astype(np.float64))
                out.iloc[holes[:, j], j] = values
        for j in np.flatnonzero(self._empty):  # 0 in the holes; observed values kept
            out.iloc[holes[:, j], j] = 0.0
        out = out.astype({n: k for n, k in kinds.items() if out[n].dtype != k and k.kind in "iu"})
        if not self.keep_empty_features:
            out = out.iloc[:, ~self._empty]
        frame = isinstance(X, pd.DataFrame)
        if self.indicator_ is not None:
            flags = self.indicator_.transform(np.where(holes, np.nan, 0.0))
            names = self.get_feature_names_out()[out.shape[1] :]
            flags = flags if frame else flags.astype(np.float64)
            out = pd.concat([out, pd.DataFrame(flags, columns=names, index=out.index)], axis=1)
        return out if frame else out.to_numpy()

    def _kinds(self, X: Any, columns: Any) -> Any:
        """Each column's kind: ``X``'s own (a frame), else (an object array) the fitted frame's."""
        import pandas as pd

        kinds = getattr(X, "dtypes", None)  # a NumPy integer column marked: back to its kind
        if kinds is not None:
            return kinds
        fitted = [dtype_named(k) for k in getattr(self, "_dtypes", None) or []]
        if len(fitted) == len(columns) and np.asarray(X).dtype == object:
            return pd.Series(fitted, index=columns)
        return pd.Series(np.asarray(X).dtype, index=columns)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the output columns: the kept input features, then the indicator's.

        Returns
        -------
        names : ndarray of str
        """
        check_is_fitted(self, "estimator_")
        names = _check_feature_names_in(self, input_features)
        kept = names if self.keep_empty_features else names[~self._empty]
        if self.indicator_ is None:
            return kept
        flagged = self.indicator_.get_feature_names_out(names)
        return np.concatenate([kept, flagged])

    # -- persistence ----------------------------------------------------------------------
    def save(self, folder: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Save to an imputer folder (:mod:`aekit.impute.imputerfile`; no pickle).

        Returns
        -------
        Path
            The folder (one that holds a saved model is refused unless ``overwrite=True``).
        """
        check_is_fitted(self, "estimator_")
        return save_imputer(self, folder, overwrite=overwrite)

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> AutoencoderImputer:
        """Load an imputer folder written by :meth:`save`; nothing in it is executed.

        Raises
        ------
        ModelFileError
            If a file is missing, truncated, tampered with, or not aekit's.
        """
        saved = read_imputer(folder)
        params = dict(saved.params)
        if saved.estimator_given:  # as given (format 6), else its first member's parameters
            given = saved.estimator
            params["estimator"] = clone(saved.members[0]) if given is None else given
        imputer = cls(**params)
        imputer.estimators_, imputer.estimator_ = saved.members, saved.members[0]
        imputer._table, imputer._empty, imputer.bounds_ = saved.table, saved.empty, saved.bounds
        imputer.indicator_ = None
        if saved.indicator_features is not None:  # refit on a row missing exactly those
            flags = np.zeros((1, len(saved.empty)))
            flags[0, saved.indicator_features] = np.nan
            imputer.indicator_ = MissingIndicator(missing_values=np.nan, error_on_new=False)
            imputer.indicator_.fit(flags)
        imputer.n_features_in_, imputer._dtypes = len(saved.empty), saved.dtypes
        imputer.linear_, imputer.blend_ = saved.linear, saved.blend
        imputer.neighbours_, imputer.neighbour_weight_ = saved.neighbours, saved.neighbour_weight
        imputer.trees_, imputer.tree_weight_ = saved.trees, saved.tree_weight
        adopt_names(imputer, saved.feature_names, saved.column_labels)
        return imputer
