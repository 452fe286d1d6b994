"""``AutoencoderOutlierDetector``: anomalies are the rows autoencoders reconstruct badly.

It follows scikit-learn's outlier-detector conventions (those of ``IsolationForest``):
``fit`` learns what normal rows look like and a threshold, ``predict`` says +1 (inlier) or
−1 (outlier), ``score_samples`` is higher for more normal rows, and ``decision_function`` is
``score_samples - offset_``, negative for outliers. The score itself is computed by
:class:`aekit.anomaly.scorer.AnomalyScorer` (see there for its terms), the same module that
:func:`aekit.export.to_onnx` writes out; :mod:`aekit.anomaly.detectorfile` is its folder layout.
"""

from __future__ import annotations

import os
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin, clone
from sklearn.utils.validation import check_is_fitted

from ..config.fields import check, positive_int
from ..data.checks import (
    CheckedRows,
    check_n_features,
    check_table_names,
    refuse_sparse_table,
    validate_rows,
)
from ..data.names import fitted_labels, in_named_order
from ..data.tables import needs_layout
from ..errors import ConfigError, NotFittedError
from ..estimator.autoencoder import Autoencoder
from ..estimator.ensemble import fit_members
from ..estimator.inference import run_in_chunks
from ..estimator.resolve import AUTO_EPOCHS, AUTO_MIN_STEPS
from ..files.names import adopt_fitted_names, adopt_names
from ..training.prepare import batches_per_epoch, member_seeds
from .detectorfile import read_detector, save_detector
from .scorer import MAX_REFERENCE, AnomalyScorer, image_shape_of, rows_with_values
from .threshold import threshold_for

__all__ = [
    "AutoencoderOutlierDetector",
    "detector_autoencoder",
    "detector_batch_size",
    "detector_code_dim",
    "detector_density_term",
    "threshold_for",
]

_MAX_CODE = 16  # the default autoencoder's code: one unit per 8 features, 1 to 16 units
_NARROW = 8  # the density term's rule: tables of at most this many (encoded) columns
_LONG_BATCH = 256  # the batch rule's long-table batch (detector_batch_size)
_DTYPES = [np.float64, np.float32, np.uint8]  # 8-bit rows stay 8-bit: images (global_minmax)


def _handed(member: Any, rows: Any) -> Any:
    """Checked numeric ``rows`` as the detector hands them to ``member``.

    An aekit :class:`~aekit.Autoencoder` takes them as :class:`~aekit.data.checks.CheckedRows`
    (not converted or checked again); any other estimator gets the rows as they are. (A
    table is never handed so: its autoencoders encode and check it themselves.)
    """
    return CheckedRows(rows) if isinstance(member, Autoencoder) else rows


def _is_bool(value: object) -> bool:
    return isinstance(value, (bool, np.bool_))


def detector_code_dim(n_features: int) -> int:
    """The default autoencoder's code size: one unit per 8 features, between 1 and 16.

    Chosen on the development splits of ``benchmarks/anomaly.py``: a code of 2 is too narrow
    for digits (784 pixels get 16), a wide one too lenient for small tables (wine's 13
    columns get 1, breast cancer's 30 get 3).
    """
    return max(1, min(_MAX_CODE, n_features // 8))


def detector_batch_size(n_rows: int) -> int:
    """The default autoencoder's batch: 256 rows where that keeps the epochs, else 64.

    256 where ``epochs="auto"`` gives batches of 256 the same 100 epochs as batches of 64
    (an epoch of at least 20 of them, about 5,400 training rows or more): the rows are seen
    as many times, in a quarter of the steps. On fewer rows ``epochs="auto"`` would train
    more epochs to make up its 2,000 steps, which saved no time and learned the rows longer:
    batches of 256 from 2,048 rows on, decided on the odd-indexed ADBench tables of
    ``benchmarks/adbench.py``'s one-class protocol (seed 0, mean AUROC 88.84 → 88.82), cost
    the unsupervised protocol 0.6 to 0.7 points at two seeds (musk 74 → 57, its anomalies
    learned), where this rule moved it by 0.2 either way; one-class, 5 seeds, 86.03 → 86.07,
    and the fits of the long tables 1.7 to 5.7 times faster (see ``docs/benchmarks.rst``).
    """
    held = Autoencoder()  # the validation rows it holds out: the estimator's own defaults
    steps = batches_per_epoch(n_rows, _LONG_BATCH, held.val_fraction, held.min_val_rows)
    return _LONG_BATCH if steps >= AUTO_MIN_STEPS // AUTO_EPOCHS else 64


def detector_autoencoder(n_rows: int, n_features: int) -> Autoencoder:
    """The autoencoder ``estimator=None`` trains on ``n_rows`` × ``n_features`` rows."""
    code, batch = detector_code_dim(n_features), detector_batch_size(n_rows)
    return Autoencoder(code_dim=code, loss="mse", init="pca", batch_size=batch)


def detector_density_term(n_features: int) -> bool:
    """Whether ``density_term="auto"`` adds the density term: tables of at most 8 columns.

    Decided on the odd-indexed ADBench tables (sorted names) of ``benchmarks/adbench.py``'s
    contextual protocol, seed 0, where LOF beat the detector mostly on narrow tables, and
    confirmed on the even-indexed ones and the other protocols (see ``docs/benchmarks.rst``).
    On few columns rows fill the space densely, an anomaly is an unusual combination of
    values, and the ratio of local densities sees it where the distance to the nearest rows
    and a one-unit code blur it; with 12 or 16 as the bound the one-class mean fell (tables of
    9 to 16 columns such as vowels and Stamps lost), so 8 it is.
    """
    return n_features <= _NARROW


class AutoencoderOutlierDetector(OutlierMixin, BaseEstimator):
    """Outlier detection with autoencoders, following ``IsolationForest``'s conventions.

    Autoencoders learn to reconstruct the training rows; the rows they rebuild much worse,
    or whose codes lie far from the training codes, are flagged. The anomaly score of one
    autoencoder adds up terms, each measured in interquartile ranges of its own training
    distribution (``(term - median) / IQR``), so no term and no feature dominates by its units:

    - the reconstruction residual, in the model's scaled space (standardized columns, pixels
      in [0, 1]). For tables each feature's squared residual is divided by its mean on the
      training rows; for images the residual is averaged over 3×3 pixel neighbourhoods;
    - for tables, the squared Mahalanobis distance of the code to the training codes;
    - for tables, the mean distance to the 3 nearest training rows in the scaled space, beside
      which the autoencoder's terms weigh 0.5: on ADBench's one-class tables the nearest
      normal rows separate anomalies better than the reconstruction alone;
    - for narrow tables (at most 8 columns, :func:`detector_density_term`), the local outlier
      factor among the training rows with 10 neighbours (weight 1): on few columns an anomaly
      is often an unusual combination of ordinary values, in a sparse gap between dense
      clusters, which a density ratio sees better than a distance.

    Several autoencoders trained with different seeds average their scores. A row with no
    observed value scores NaN (``predict``: -1), not a typical row's score.

    Parameters
    ----------
    estimator : Autoencoder or None, default=None
        The autoencoder to train (cloned in ``fit``). None: :func:`detector_autoencoder`, a
        code of one unit per 8 features (1 to 16) trained on the squared error the score
        measures, one fit from PCA's solution a member (no search of starts), in batches of 64
        rows (256 from about 5,400 training rows on).
    n_estimators : int, default=1
        Autoencoders trained with different seeds, their scores averaged (two gained at most
        0.001 AUROC for twice the fit time on ``benchmarks/anomaly.py``'s development split).
    code_term : bool or "auto", default="auto"
        Add the code's Mahalanobis distance to the training codes. ``"auto"``: for tables,
        not for images (where it measured worse; see :mod:`aekit.anomaly.scorer`).
    neighbour_term : bool or "auto", default="auto"
        Add the mean distance to the 3 nearest training rows in the scaled space, the
        autoencoder's terms then weighing 0.5 each (see :mod:`aekit.anomaly.scorer`).
        ``"auto"``: for tables, not for images (not measured there). Detectors saved before
        this option load without it.
    density_term : bool or "auto", default="auto"
        Add the local outlier factor among the training rows kept as neighbours (needs the
        neighbour term; see :mod:`aekit.anomaly.scorer`). ``"auto"``: for tables of at most
        8 columns as the autoencoder sees them (:func:`detector_density_term`). Detectors
        saved before this option load without it.
    image_shape : "auto", tuple of int or None, default="auto"
        ``(height, width)`` or ``(channels, height, width)`` of image rows, whose residuals
        are pooled over pixel neighbourhoods. ``"auto"``: a convolutional model's shape, or
        one square channel for pixel data (in [0, 1] or 8-bit, a square feature count,
        neighbouring pixels alike: :func:`~aekit.data.images.spatially_coherent`); None:
        a table.
    contamination : "auto" or float, default="auto"
        Expected share of outliers in the training rows, in (0, 0.5]: the threshold is the
        score that many rows exceed. ``"auto"``: Tukey's fence on the training scores,
        ``Q3 + 1.5·IQR``.
    prefit : bool, default=False
        True: ``estimator`` is already fitted and is the only autoencoder; ``fit`` only
        learns the score's normalisation and the threshold from ``X``.
    random_state : int, numpy.random.RandomState or None, default=None
        Seed of the first autoencoder (the others get seeds derived from it; a
        ``RandomState`` gives one integer seed per fit); None uses ``estimator``'s own
        ``random_state``.

    Attributes
    ----------
    estimator_ : Autoencoder
        The first fitted autoencoder (codes, reconstructions, errors).
    estimators_ : list of Autoencoder
        All fitted autoencoders.
    scorer_ : AnomalyScorer or None
        The torch module that computes the score (what :func:`aekit.export.to_onnx` exports);
        None for an ``estimator`` that is not an aekit Autoencoder.
    threshold_ : float
        Rows with an anomaly score above it are outliers.
    offset_ : float
        ``-threshold_``: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of features seen in ``fit``.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from aekit import Autoencoder, AutoencoderOutlierDetector
    >>> X = load_digits().data / 16.0
    >>> ae = Autoencoder(code_dim=8, epochs=5, random_state=0)
    >>> detector = AutoencoderOutlierDetector(ae, contamination=0.05).fit(X)
    >>> labels = detector.predict(X)  # +1 inlier, -1 outlier
    >>> int((labels == -1).sum())
    90
    """

    def __init__(
        self,
        estimator: Autoencoder | None = None,
        *,
        n_estimators: int = 1,
        code_term: bool | str = "auto",
        neighbour_term: bool | str = "auto",
        density_term: bool | str = "auto",
        image_shape: str | tuple[int, ...] | None = "auto",
        contamination: str | float = "auto",
        prefit: bool = False,
        random_state: int | None = None,
    ) -> None:
        self.estimator = estimator
        self.n_estimators = n_estimators
        self.code_term = code_term
        self.neighbour_term = neighbour_term
        self.density_term = density_term
        self.image_shape = image_shape
        self.contamination = contamination
        self.prefit = prefit
        self.random_state = random_state

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.sparse = True
        return tags

    def fit(self, X: Any, y: None = None) -> AutoencoderOutlierDetector:
        """Fit the autoencoders (unless ``prefit``), the score's normalisation and threshold.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training rows, mostly normal.
        y : None
            Ignored.

        Returns
        -------
        self : AutoencoderOutlierDetector
        """
        self._check_params()
        if self.prefit:  # a DataFrame in the columns' order the estimator was fitted on
            X = in_named_order(X, fitted_labels(self.estimator), "the prefit estimator")
        table = self._is_table(X)
        refuse_sparse_table(X, table)
        if table:  # the autoencoders encode (and check) the table themselves
            check_table_names(self, X, reset=True)
        else:
            X = self._rows(X, reset=True)
        if self.prefit:
            if self.estimator is None or not hasattr(self.estimator, "n_features_in_"):
                raise NotFittedError("prefit=True needs a fitted estimator")
            check_n_features(X.shape[1], self.estimator.n_features_in_, "the estimator")
            if fitted_labels(self) is None:  # rows by position: the estimator's names hold
                adopt_fitted_names(self, self.estimator)
            members = [self.estimator]
        else:
            unfitted = self._unfitted_members(*X.shape)  # one pass where they share a network
            members = fit_members(unfitted, X if table else _handed(unfitted[0], X))
        if table:  # the scorer takes the rows the autoencoders see: one-hot blocks
            X = members[0].table_layout_.encode(X, np.float64)
        if all(isinstance(m, Autoencoder) for m in members):
            X = rows_with_values(X)  # a row with no observed value: NaN, calibrated without
            self._set_scorer(members, X)
            train_scores = self.scorer_.calibrate_(X, int(members[0].transform_batch_size))
        else:  # another object with reconstruction_error: its errors are the score
            self.estimator_, self.estimators_, self.scorer_ = members[0], members, None
            train_scores = self.anomaly_score(X)
        self._set_threshold_value(threshold_for(train_scores, self.contamination))
        return self

    def _check_params(self) -> None:
        """Refuse a bad parameter of the detector's own, before any training.

        aekit's one style for an estimator's own parameters: the checks of
        :mod:`aekit.config.fields` (which the configs behind :class:`~aekit.Autoencoder` make
        too), called at the start of ``fit``, each a :class:`~aekit.ConfigError` naming the
        parameter, what it takes and the value given.
        """
        est = self.estimator
        methods = all(callable(getattr(est, m, None)) for m in ("fit", "reconstruction_error"))
        check(
            est is None or methods,
            f"estimator must be an Autoencoder (an object with fit and reconstruction_error) "
            f"or None, got {type(est).__name__}",
        )
        positive_int("n_estimators", self.n_estimators)
        shape = self.image_shape
        for name in ("code_term", "neighbour_term", "density_term"):
            term = getattr(self, name)
            check(
                term == "auto" if isinstance(term, str) else _is_bool(term),
                f"{name}={term!r}: expected True, False or 'auto'",
            )
        sized = shape is None or isinstance(shape, (tuple, list))
        check(
            shape == "auto" if isinstance(shape, str) else sized,
            "image_shape must be 'auto', None, (height, width) or (channels, height, width), "
            f"got {shape!r}",
        )
        threshold_for(np.zeros(1), self.contamination)  # the threshold's own rule, checked now
        check(_is_bool(self.prefit), f"prefit must be True or False, got {self.prefit!r}")
        seed = self.random_state
        whole = isinstance(seed, Integral) and not _is_bool(seed) and seed >= 0
        check(
            seed is None or whole or isinstance(seed, np.random.RandomState),
            f"random_state must be None, an integer >= 0 or a numpy RandomState, got {seed!r}",
        )

    def _is_table(self, X: Any) -> bool:
        """Whether ``X`` is a table with categorical columns (:mod:`aekit.data.tables`)."""
        base = self.estimator
        if self.prefit:
            return getattr(base, "table_layout_", None) is not None
        return needs_layout(X, getattr(base, "categorical_features", None))

    def _unfitted_members(self, n_rows: int, n_features: int) -> list[Autoencoder]:
        """``n_estimators`` clones of the base autoencoder, each with its own seed."""
        if self.estimator is None:
            # one fit a member: the ensemble, not a search of starts, is the detector's remedy
            base = detector_autoencoder(n_rows, n_features)
        else:
            base = self.estimator
        own = base.get_params().get("random_state")
        seeds = member_seeds(
            self.random_state if self.random_state is not None else own, self.n_estimators
        )
        if "random_state" not in base.get_params():
            return [clone(base) for _ in seeds]
        return [clone(base).set_params(random_state=s) for s in seeds]

    def _set_scorer(self, members: list[Autoencoder], X: Any) -> None:
        """Build the scorer over fitted ``members`` (weights shared, nothing copied)."""
        first, n_rows = members[0].module_, X.shape[0]
        shape = image_shape_of(first, self.image_shape, X)
        code_term = shape is None if self.code_term == "auto" else bool(self.code_term)
        neighbours = shape is None if self.neighbour_term == "auto" else bool(self.neighbour_term)
        n_reference = min(n_rows, MAX_REFERENCE) if neighbours and n_rows > 1 else 0
        width = first.config.input_dim
        auto = shape is None and detector_density_term(width)
        density = auto if self.density_term == "auto" else bool(self.density_term)
        scorer = AnomalyScorer(
            [m.module_ for m in members], shape, code_term, n_reference, density and neighbours
        )
        self._adopt(members, scorer.to(first.offset.device).eval())

    def _adopt(self, members: list[Autoencoder], scorer: AnomalyScorer) -> None:
        """Take fitted ``members`` and their scorer as this detector's fitted state."""
        self.estimator_, self.estimators_, self.scorer_ = members[0], members, scorer

    def _set_threshold_value(self, threshold: float) -> None:
        self.threshold_ = float(threshold)
        self.offset_ = -self.threshold_

    def _check(self, X: Any, *, finite: bool = True) -> np.ndarray:
        """Checked rows; a table's encoded with the autoencoders' layout (one-hot blocks).

        ``finite=False`` leaves dense rows' values to the chunked check of the run that
        follows (:func:`~aekit.estimator.inference.run_in_chunks` with ``check_input``).
        """
        check_is_fitted(self)
        layout = getattr(self.estimator_, "table_layout_", None)
        if layout is None:
            return self._rows(X, reset=False, finite=finite)
        refuse_sparse_table(X, True)
        X = check_table_names(self, X, reset=False)  # (in the fitted column order)
        return layout.encode(X, np.float64)

    def _rows(self, X: Any, *, reset: bool, finite: bool = True) -> Any:
        """Checked rows: NaN is a missing value (scored on the observed entries), not infinity.

        :func:`~aekit.data.checks.validate_rows`, 8-bit rows kept 8-bit; ``scipy.sparse``
        rows come back as CSR (densified chunk by chunk when scored), their stored values
        checked by :func:`~aekit.data.checks.check_sparse_values`.
        """
        return validate_rows(self, X, reset=reset, dtype=_DTYPES, finite=finite, observed=reset)

    def reconstruction_error(self, X: Any) -> np.ndarray:
        """The first autoencoder's per-row sum of squared errors in its scaled space.

        Returns
        -------
        errors : ndarray of shape (n_samples,)
        """
        first = self.estimator_
        rows = self._check(X, finite=not isinstance(first, Autoencoder))
        # a table: the autoencoder encodes (and checks) it itself; numeric rows: an aekit
        # autoencoder checks their values once, chunk by chunk
        table = getattr(first, "table_layout_", None) is not None
        rows = X if table else _handed(first, rows)
        return np.asarray(first.reconstruction_error(rows), dtype=np.float64)

    def anomaly_score(self, X: Any) -> np.ndarray:
        """Each row's anomaly score: higher is more abnormal, 0 a typical training row.

        The terms of each autoencoder (see the class docstring) in interquartile ranges of
        their training distribution, summed, and averaged over the autoencoders. For an
        ``estimator`` that is not an aekit :class:`~aekit.Autoencoder` (any object with
        ``fit`` and ``reconstruction_error``), its mean reconstruction error.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
        """
        X = self._check(X, finite=getattr(self, "scorer_", None) is None)  # else by chunks
        if self.scorer_ is None:
            errors = [m.reconstruction_error(X) for m in self.estimators_]
            return np.mean(np.asarray(errors, dtype=np.float64), axis=0)
        first = self.estimator_
        return run_in_chunks(  # NaN: a row with no observed value (AnomalyScorer.score)
            first.module_, X, self.scorer_.score, np.dtype(np.float64),
            first.transform_batch_size, check_input=True, holes_out=True,
        )  # fmt: skip

    def score_samples(self, X: Any) -> np.ndarray:
        """Minus the anomaly score (:meth:`anomaly_score`): the lower, the more abnormal.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
        """
        return -self.anomaly_score(X)

    def decision_function(self, X: Any) -> np.ndarray:
        """``score_samples(X) - offset_``: negative for outliers, positive for inliers.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
        """
        return self.score_samples(X) - self.offset_

    def predict(self, X: Any) -> np.ndarray:
        """+1 for inliers, −1 for outliers (anomaly score above ``threshold_``).

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        return np.where(self.decision_function(X) >= 0, 1, -1)

    def save(self, folder: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Save to a model folder that ``aekit score`` and ``aekit export`` read (no pickle).

        The first autoencoder is the folder's model (``aekit encode`` reads it as any model
        folder); see :mod:`aekit.anomaly.detectorfile` for the rest.

        Parameters
        ----------
        folder : path
            Created if missing.
        overwrite : bool, default=False
            Replace a model or detector already saved in ``folder``; without it such a
            folder is refused (:class:`~aekit.errors.OutputError`, naming it).

        Returns
        -------
        Path
            The folder.
        """
        check_is_fitted(self)
        if self.scorer_ is None:
            raise ConfigError("only a detector of aekit Autoencoders can be saved")
        return save_detector(self, folder, overwrite=overwrite)

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> AutoencoderOutlierDetector:
        """Load a detector folder written by :meth:`save`; nothing in it is executed.

        Raises
        ------
        ModelFileError
            If a file is missing, truncated, tampered with, or not aekit's.
        """
        saved = read_detector(folder)
        params, members = saved.params, saved.members
        if params["prefit"]:
            params["estimator"] = members[0]
        elif saved.estimator_given:  # as given (format 5), else its first member's parameters
            params["estimator"] = clone(members[0]) if saved.estimator is None else saved.estimator
        detector = cls(**params)
        detector._adopt(members, saved.scorer)
        detector._set_threshold_value(saved.threshold)
        detector.n_features_in_ = members[0].n_features_in_
        adopt_names(detector, saved.feature_names, saved.column_labels)
        return detector
