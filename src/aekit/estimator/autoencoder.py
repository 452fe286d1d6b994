"""``Autoencoder``: the scikit-learn transformer, a thin adapter over config, model and trainer.

``fit`` resolves the ``"auto"`` parameters from the data (:mod:`aekit.estimator.resolve`),
builds the network from the resulting :class:`~aekit.ModelConfig` and trains it with a
:class:`~aekit.Trainer` on the :class:`~aekit.TrainConfig`; inference runs in chunks
(:mod:`aekit.estimator.inference`); :meth:`Autoencoder.save` and :meth:`Autoencoder.load`
write and read the model-folder layout of :mod:`aekit.estimator.modelfile`.

**The error unit.** Every reconstruction error aekit reports is the squared error per entry
in the model's *scaled* space (the space the network trains in: standardized columns for a
table, pixels in [0, 1] for 8-bit images), summed over a row. Each feature then weighs by its
spread rather than its units, and the PCA baselines aekit compares with are fitted on the
same scaled rows. ``reconstruction_error(X, units="original")`` gives the sum in the original
units instead. A categorical column of a table (:mod:`aekit.data.tables`) adds the squared
error between its one-hot row and the predicted probabilities (the model's softmax block).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin

from ..config.configs import ModelConfig, TrainConfig, fill_parameters
from ..config.options import estimator_defaults
from ..data.names import in_named_order
from ..data.sources import RowSource
from ..errors import DataError, NotFittedError
from ..files.layouts import check_can_save
from ..files.names import adopt_names, saved_names
from ..model.hourglass import Hourglass
from ..model.sparse_net import encode_rows
from ..training import Callback, History, Trainer
from ..training.checkpoint import checkpoint_columns
from ..training.optim import partly_stepped
from ..training.prepare import seed_from
from ..training.threads import ThreadChoice, choose_threads, using_threads
from .inference import InferenceMixin
from .modelfile import estimator_meta, read_estimator, write_model
from .resolve import initial_model, resolve_configs
from .rows import RowsMixin
from .select import Selection, select_start

__all__ = ["Autoencoder"]

logger = logging.getLogger("aekit")


class Autoencoder(
    RowsMixin, InferenceMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    """Autoencoder as a scikit-learn transformer: a nonlinear PCA.

    ``transform`` maps rows to codes, ``inverse_transform`` maps codes back to rows,
    ``score_samples`` gives minus each row's reconstruction error (higher = more normal),
    measured in the model's scaled space (see the module docstring). Sparse, denoising and
    linear autoencoders are settings of this one class.

    The parameters and their defaults are those of
    :func:`aekit.config.options.estimator_defaults`: the fields of
    :class:`~aekit.ModelConfig` and :class:`~aekit.TrainConfig`, with the data-dependent
    ``"auto"`` defaults of :class:`aekit.config.options.EstimatorOptions`.

    Parameters
    ----------
    {parameters}

    Attributes
    ----------
    module_ : Hourglass
        The trained ``torch.nn.Module``.
    model_config_ : ModelConfig
        Architecture as resolved from the data.
    train_config_ : TrainConfig
        Training settings used.
    history_ : History
        Per-epoch losses.
    scaling_ : str
        Scaling actually applied (``"auto"`` resolved).
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Column names, when ``X`` had string column names.
    table_layout_ : TableLayout or None
        How a table's categorical columns are encoded (one-hot blocks in, a softmax per
        block out; :mod:`aekit.data.tables`), or None for numeric input.
    n_iter_ : int
        Epochs run.
    input_path_ : str
        How the training rows were fed: ``"dense"``; for ``scipy.sparse`` rows ``"sparse"``
        (batches kept sparse) or ``"densify"`` (each batch made dense); see ``sparse_path``.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from aekit import Autoencoder
    >>> X = load_digits().data / 16.0
    >>> ae = Autoencoder(code_dim=8, epochs=5, random_state=0).fit(X)
    >>> ae.transform(X).shape
    (1797, 8)
    """

    def __init__(
        self,
        code_dim: int = 2,
        *,
        hidden: str | tuple[int, ...] | int = "auto",
        image_shape: str | tuple[int, ...] | None = None,
        activation: str = "relu",
        output: str = "auto",
        dropout: float = 0.0,
        batch_norm: bool | str = "auto",
        sparsity: str | None = None,
        sparsity_weight: float = 1e-3,
        sparsity_target: float = 0.05,
        sparsity_k: int | None = None,
        noise: str | None = None,
        noise_level: float = 0.3,
        missing: bool | str = "auto",
        hide_share: float = 0.3,
        hide_pattern: str = "entries",
        scaling: str = "auto",
        loss: str = "auto",
        epochs: int | str = "auto",
        batch_size: int = 64,
        lr: float = 3e-3,
        optimizer: str = "adam",
        weight_decay: float = 1e-5,
        lr_schedule: str = "cosine",
        val_fraction: float = 0.1,
        min_val_rows: int = 50,
        patience: int | None = 10,
        improvement_z: float = 2.0,
        min_delta: float = 0.0,
        val_hidden: bool = False,
        max_time: float | None = None,
        device: str = "auto",
        threads: int | str = "auto",
        precision: str = "fp32",
        compile: bool = False,
        checkpoint_dir: str | None = None,
        checkpoint_every: int = 1,
        checkpoint_every_steps: int | None = None,
        keep_checkpoints: int = 3,
        divergence_retries: int = 0,
        divergence_lr_factor: float = 0.1,
        init: str = "auto",
        transform_batch_size: int = 4096,
        categorical_features: Any = None,
        max_categories: int = 50,
        random_state: int | None = None,
        verbose: int = 0,
        sparse_path: str = "auto",
        sparse_optimizer: str = "lazy",
    ) -> None:
        self.code_dim = code_dim
        self.hidden = hidden
        self.image_shape = image_shape
        self.activation = activation
        self.output = output
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.sparsity = sparsity
        self.sparsity_weight = sparsity_weight
        self.sparsity_target = sparsity_target
        self.sparsity_k = sparsity_k
        self.noise = noise
        self.noise_level = noise_level
        self.missing = missing
        self.hide_share = hide_share
        self.hide_pattern = hide_pattern
        self.scaling = scaling
        self.loss = loss
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.lr_schedule = lr_schedule
        self.val_fraction = val_fraction
        self.min_val_rows = min_val_rows
        self.patience = patience
        self.improvement_z = improvement_z
        self.min_delta = min_delta
        self.val_hidden = val_hidden
        self.max_time = max_time
        self.device = device
        self.threads = threads
        self.precision = precision
        self.compile = compile
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every
        self.checkpoint_every_steps = checkpoint_every_steps
        self.keep_checkpoints = keep_checkpoints
        self.divergence_retries = divergence_retries
        self.divergence_lr_factor = divergence_lr_factor
        self.init = init
        self.transform_batch_size = transform_batch_size
        self.categorical_features = categorical_features
        self.max_categories = max_categories
        self.random_state = random_state
        self.verbose = verbose
        self.sparse_path = sparse_path
        self.sparse_optimizer = sparse_optimizer

    # -- scikit-learn plumbing ------------------------------------------------------------
    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.input_tags.allow_nan = True  # a missing value; infinity is refused
        tags.input_tags.sparse = True  # scipy.sparse rows (no NaN inside: check_sparse_values)
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "module_") and not getattr(self, "_torn_", None)

    @property
    def _n_features_out(self) -> int:
        """Number of code features (names: ``autoencoder0``, ``autoencoder1``, ...)."""
        return self.model_config_.code_dim

    def _check_fitted(self) -> None:
        if not hasattr(self, "module_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator."
            )
        self._check_whole()

    def _check_whole(self) -> None:
        """Refuse a model that a ``partial_fit`` left partly stepped (:func:`partly_stepped`)."""
        torn = getattr(self, "_torn_", None)
        if torn:
            raise NotFittedError(
                f"the last partial_fit stopped inside an optimiser step ({torn}): some of the "
                "weights took the step and others did not; fit again, or load a saved copy"
            )

    # -- fit ------------------------------------------------------------------------------
    def fit(
        self,
        X: Any,
        y: None = None,
        *,
        callbacks: tuple[Callback, ...] = (),
        resume: bool | str | os.PathLike[str] = False,
    ) -> Autoencoder:
        """Train the autoencoder on ``X``.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features), path, or row source
            Training rows (NumPy, pandas, anything array-like, ``scipy.sparse`` matrices and
            arrays of any format: converted to CSR float32 once and never densified whole,
            see ``sparse_path``); or a file path: a ``.npy``
            or ``.parquet`` file is streamed from disk in shuffled blocks (see
            :class:`aekit.data.stream.NpyRows` and :class:`aekit.data.stream.ParquetRows`: all
            numeric columns of a parquet file) and never loaded whole, other formats are
            read into memory; a folder or glob of ``.parquet`` or ``.npy`` shards streams
            as one dataset (:mod:`aekit.data.folders`; under DDP each rank reads its share,
            :mod:`aekit.data.shares`); or a row source such as
            :class:`~aekit.data.stream.ParquetRows` (which picks columns). :meth:`transform`
            and the other methods take arrays, not paths: read rows with
            :func:`aekit.data.read_array`, or chunk by chunk.
        y : None
            Ignored.
        callbacks : tuple of Callback, optional
            Extra training hooks (progress bars...).
        resume : bool or path, default=False
            ``True`` continues from the newest valid checkpoint in ``checkpoint_dir``; a path
            names one checkpoint file. A DataFrame with the checkpoint's columns in another
            order is read by name (as ``aekit fit --resume``); other columns are refused.

        Returns
        -------
        self : Autoencoder
        """
        if resume:  # a DataFrame of the checkpoint's columns in another order: read by name
            written = checkpoint_columns(self.checkpoint_dir, resume, "column_names")
            X = in_named_order(X, written, "the checkpointed run")
        with self._training_rows(X, reset=True) as (rows, stats):
            trainer, scaling, selection = self._build(rows, stats, callbacks)
            names = saved_names(self)  # a resumed run's columns must be the checkpoint's
            trainer.column_names = names["feature_names"] or names["column_labels"]
            trainer.fit(rows, resume=resume)
        if selection is not None:  # which rule chose the start: kept with the history
            initial = trainer.history.initial or {}
            trainer.history.initial = {**initial, "selection": selection.to_dict()}
        return self._keep_fit(trainer, scaling)

    def _keep_fit(self, trainer: Trainer, scaling: str) -> Autoencoder:
        """Take what ``trainer`` fitted (:meth:`_build`'s, after its fit) as the fitted state."""
        self._trainer_: Trainer | None = None
        module = trainer.module.eval()
        self._set_fitted(module, module.config, trainer.config, scaling, trainer.history)
        self.input_path_ = trainer.input_path
        return self

    def partial_fit(self, X: Any, y: None = None) -> Autoencoder:
        """One more pass of training over ``X``, continuing where the last call stopped.

        Like ``IncrementalPCA.partial_fit``: feed the data batch by batch (or file by file)
        when it does not fit in memory at once. The first call (on an unfitted estimator)
        builds the model and fixes the input scaling (and a table's categories) from that
        first ``X``; each call then makes one shuffled pass of ``batch_size`` steps over its
        rows, keeping the optimiser's state between calls. No rows are held out: ``val_fraction``,
        ``patience``, ``lr_schedule`` (the rate stays ``lr``) and ``epochs`` do not apply. The
        settings are the first call's (``set_params`` between calls changes nothing); the
        optimiser's state lives in memory: after pickling, copying or ``save``/``load`` the
        next call starts a fresh one.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), path, or row source
            As in :meth:`fit`.
        y : None
            Ignored.

        Returns
        -------
        self : Autoencoder
        """
        self._check_whole()
        first = not hasattr(self, "module_")
        trainer = getattr(self, "_trainer_", None)
        with self._training_rows(X, reset=first) as (rows, stats):
            if first:
                trainer, scaling, _ = self._build(rows, stats, (), select=False)
                module = trainer.module
                self._set_fitted(module, module.config, trainer.config, scaling, trainer.history)
            elif bool(stats.get("has_missing", False)) and not self.model_config_.missing:
                raise DataError(
                    "X has missing values (NaN, or categories the first call did not see) but the "
                    "model was first fitted on complete rows (missing=False); fit with missing=True"
                )
            if trainer is None:  # after fit() or unpickling: a fresh optimiser, same weights
                trainer = Trainer(self.module_, self.train_config_)
                trainer.history = self.history_
            self._trainer_ = trainer
            try:
                trainer.partial_fit(rows)
            except BaseException as exc:  # (MemoryError, Ctrl-C) in the backward pass
                if partly_stepped(trainer.optimizer):
                    self._torn_ = type(exc).__name__
                raise
            self.input_path_ = trainer.input_path
        self.history_, self.n_iter_ = trainer.history, len(trainer.history)
        return self

    def _build(
        self,
        rows: torch.Tensor | RowSource,
        stats: dict[str, np.ndarray],
        callbacks: tuple[Callback, ...],
        threads: ThreadChoice | None = None,
        *,
        select: bool = True,
        members: int = 1,
    ) -> tuple[Trainer, str, Selection | None]:
        """A fresh model and its trainer, the scaling used, and how the start was chosen.

        The scaling is set from ``stats``; the choice is that of ``init="auto"`` (None for
        another ``init``). The thread count is chosen first (unless given: an ensemble's
        members share one, probed for ``members`` trained at once), so that the PCA start (and
        the search of :func:`~aekit.estimator.select.select_start`) runs at the training's.
        ``partial_fit`` (``select=False``) starts from PCA's solution for ``init="auto"``.
        """
        if self.verbose and not logger.handlers:
            logger.addHandler(logging.StreamHandler())
            logger.setLevel(logging.INFO)
        # a RandomState is drawn from once here, so the init and training seeds agree
        params = {**self.get_params(), "random_state": seed_from(self.random_state)}
        auto = params["init"] == "auto"
        if auto:
            params["init"] = "pca"  # until the search decides: the threads are chosen for it
        resolved = resolve_configs(params, stats)
        tick = time.perf_counter()
        if threads is None:
            threads = choose_threads(resolved[1], resolved[0], rows, members=members)
        chosen = time.perf_counter()
        selection = None
        with using_threads(threads.count):
            if auto and select:
                params, selection = select_start(params, rows, stats, threads)
                resolved = resolve_configs(params, stats)
            module, train_config, scaling = initial_model(params, rows, stats, resolved)
        trainer = Trainer(module, train_config, callbacks)
        trainer.thread_choice = threads
        setup = {"threads": chosen - tick, "start": time.perf_counter() - chosen}
        trainer.history.setup_seconds.update(setup)
        return trainer, scaling, selection

    def _set_fitted(
        self,
        module: Hourglass,
        model_config: ModelConfig,
        train_config: TrainConfig,
        scaling: str,
        history: History,
    ) -> None:
        self.module_, self._torn_ = module, None
        self.model_config_ = model_config
        self.train_config_ = train_config
        self.scaling_ = scaling
        self.history_ = history
        self.n_iter_ = len(history)

    # -- inference (the rest: InferenceMixin) ------------------------------------------------
    # transform is defined here: scikit-learn's set_output wraps only the class's own methods
    def transform(self, X: Any) -> np.ndarray:
        """Encode rows into codes.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        codes : ndarray of shape (n_samples, code_dim)
            Same float dtype as ``X`` (float64 for other dtypes).
        """
        self._check_fitted()
        X = self._validate(X, reset=False, finite=False)
        module = self.module_

        def encode(rows: torch.Tensor) -> torch.Tensor:
            return encode_rows(module, rows)

        return self._run(X, encode, X.dtype, check_input=True)

    # -- persistence ----------------------------------------------------------------------
    def save(self, folder: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Save to a model folder: ``config.json`` + ``weights.safetensors`` (no pickle).

        Parameters
        ----------
        folder : path
            Created if missing; other files in it are left alone.
        overwrite : bool, default=False
            Replace a model (or detector) already saved in ``folder``; without it such a
            folder is refused, so that no trained model is lost by mistake.

        Returns
        -------
        Path
            The folder.

        Raises
        ------
        OutputError
            ``folder`` already holds a saved model and ``overwrite`` is False (the message
            names the folder), or it cannot be written.
        """
        self._check_fitted()
        check_can_save(folder, overwrite)
        return write_model(folder, self.module_, estimator_meta(self))

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> Autoencoder:
        """Load a model folder written by :meth:`save`; nothing in it is executed.

        Raises
        ------
        ModelFileError
            If the folder is missing, a file is truncated or tampered with, or not aekit's.
        """
        saved = read_estimator(folder, set(cls().get_params()))
        est = cls(**saved.params)
        module = saved.module
        est._set_fitted(module, module.config, saved.train_config, saved.scaling, saved.history)
        est.n_features_in_ = saved.n_features_in
        est.table_layout_ = saved.table_layout
        adopt_names(est, saved.feature_names, saved.column_labels)
        return est

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_trainer_", None)  # optimiser state of partial_fit is not kept
        if "module_" in state:  # CPU weights: a GPU-fitted model unpickles anywhere
            module = state.pop("module_")
            state["_module_state"] = {k: v.to("cpu") for k, v in module.state_dict().items()}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        module_state = state.pop("_module_state", None)
        self.__dict__.update(state)
        if module_state is not None:
            module = Hourglass(self.model_config_)
            module.load_state_dict(module_state)
            self.module_ = module.eval()


# The Parameters section comes from the one table of defaults, like the CLI's options.
Autoencoder.__doc__ = fill_parameters(Autoencoder.__doc__, estimator_defaults())
