"""``Autoencoder``: the scikit-learn transformer, a thin adapter over config, model and trainer."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import validate_data

from ._resolve import (
    AUTO_CHANNELS,
    _resolve_auto,
    _scaling_params,
    auto_epochs,
    auto_hidden,
    resolve_image_shape,
)
from .config import SCALINGS, ModelConfig, TrainConfig
from .data.checks import (
    FLOATS,
    aekit_errors,
    as_codes,
    check_finite_chunk,
    check_finite_output,
    check_float32_range,
)
from .data.formats import read_array
from .data.sources import RowSource, as_tensor
from .data.stream import BlockRows, open_rows, stream_stats
from .errors import ConfigError, DataError, DataTypeError, NotFittedError
from .model import Hourglass
from .modelfile import write_model
from .training import Callback, History, Trainer
from .training.trainer import derive_seeds

__all__ = ["Autoencoder"]

_ROW_BLOCK = 16  # inference pads batches to whole blocks of rows (see _pad_rows)
logger = logging.getLogger("aekit")

# Constructor arguments that go into ModelConfig / TrainConfig under the same name.
_MODEL_KEYS = (
    "code_dim", "activation", "dropout", "batch_norm", "sparsity", "sparsity_weight",
    "sparsity_target", "sparsity_k", "noise", "noise_level",
)  # fmt: skip
_TRAIN_KEYS = (
    "epochs", "batch_size", "lr", "optimizer", "weight_decay", "lr_schedule",
    "val_fraction", "patience", "min_delta", "max_time", "device", "precision",
    "compile", "checkpoint_dir", "checkpoint_every", "checkpoint_every_steps",
    "divergence_retries", "verbose",
)  # fmt: skip


class Autoencoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Autoencoder as a scikit-learn transformer: a nonlinear PCA.

    ``transform`` maps rows to codes, ``inverse_transform`` maps codes back to rows,
    ``score_samples`` gives minus each row's reconstruction error (higher = more normal).
    Sparse, denoising and linear autoencoders are settings of this one class.

    Parameters
    ----------
    code_dim : int, default=2
        Size of the code (the bottleneck), like ``PCA(n_components=...)``.
    hidden : "auto", tuple of int, or int, default="auto"
        Encoder hidden widths, outermost first; the decoder mirrors them. ``"auto"`` picks two
        layers from the feature count (see :func:`auto_hidden`); ``()`` means no hidden layer.
        ``hidden=()`` with ``activation="identity"`` is the linear autoencoder, which finds
        PCA's subspace. With ``image_shape`` these are convolution channels (auto: 32, 64).
    image_shape : tuple of int, "auto" or None, default=None
        Treat rows as images, ``(channels, height, width)`` flattened channel-first (or
        ``(height, width)``): the encoder becomes stride-2 convolutions and the decoder
        transposed convolutions. ``"auto"``: one square channel (784 features → 28×28).
    activation : str, default="relu"
        Hidden non-linearity: relu, leaky_relu, elu, gelu, silu, tanh, sigmoid or identity.
    output : {"auto", "identity", "sigmoid"}, default="auto"
        Output activation. ``"auto"``: sigmoid when the scaled training data lies in [0, 1]
        (and the model is not linear), identity otherwise.
    dropout : float, default=0.0
        Dropout after each hidden layer while training.
    batch_norm : bool or "auto", default="auto"
        Batch normalisation after each hidden layer. ``"auto"``: on when the scaled training
        data lies in [0, 1] (images: it roughly halves the epochs needed on MNIST, see
        ``benchmarks/quality.py``), off otherwise: on standardized tables it widens the gap
        between training and held-out error (diabetes and wine: up to 1.12× PCA's held-out
        error with it, at most 1.05× without, with ``epochs="auto"``; see
        ``benchmarks/tabular.py``).
    sparsity : {"l1", "kl", "topk"} or None, default=None
        Sparse code: L1 penalty (non-negative codes, unit-norm decoder columns), KL divergence
        to a target activation rate (sigmoid codes), or top-k (k active units per row). A
        top-k dictionary (``hidden=()``) encodes rows relative to its origin, the decoder's
        output for an empty code, which starts at the training mean (Gao et al. 2024's
        pre-encoder bias); that keeps units from never reaching the top k.
    sparsity_weight : float, default=1e-3
        λ of the L1 penalty, β of the KL penalty, or for a top-k dictionary the weight of the
        AuxK loss that revives dead units (Gao et al. use 1/32; 0 turns it off).
    sparsity_target : float, default=0.05
        Target mean activation ρ for ``sparsity="kl"``.
    sparsity_k : int or None, default=None
        Active units per row for ``sparsity="topk"``.
    noise : {"gaussian", "masking", "salt_and_pepper"} or None, default=None
        Corrupt the (scaled) training input and reconstruct the clean one: a denoising
        autoencoder.
    noise_level : float, default=0.3
        σ for gaussian noise; the corrupted fraction for masking and salt-and-pepper.
    scaling : {"auto", "standardize", "minmax", "global_minmax", "none"}, default="auto"
        Input scaling learned in ``fit`` and inverted on the way back; ``global_minmax`` maps
        the data's overall range to [0, 1] with one offset and scale for all features (the
        right thing for images). ``"auto"``: global_minmax for uint8 data, none when
        the data already lies in [0, 1], standardize otherwise.
    loss : {"auto", "mse", "bce"}, default="auto"
        Reconstruction loss while training (``bce`` needs a sigmoid output). ``"auto"``:
        ``bce`` with a sigmoid output (data in [0, 1]), ``mse`` otherwise. Errors are always
        reported as squared error.
    epochs : int or "auto", default="auto"
        Maximum epochs; early stopping usually ends sooner. ``"auto"``: 100, or on small data
        enough epochs for 2,000 optimiser steps (see :func:`auto_epochs`).
    batch_size : int, default=64
        Rows per optimiser step.
    lr : float, default=3e-3
        Peak learning rate.
    optimizer : {"adam", "adamw"}, default="adam"
        Optimiser.
    weight_decay : float, default=1e-5
        L2 weight decay (adam) or decoupled weight decay (adamw); the small default curbs
        overfitting (MNIST benchmark: 0.36 instead of 0.40 × PCA's error at code size 30).
        Not applied to a top-k code's own layers, where it silences units (Adam scales the
        decay of a unit that gets no other gradient up to a step of about ``lr``).
    lr_schedule : {"constant", "cosine", "plateau"}, default="cosine"
        Learning-rate schedule (cosine decays to 0 over ``epochs``).
    val_fraction : float, default=0.1
        Rows held out for early stopping (skipped when too few rows).
    patience : int or None, default=10
        Epochs without validation improvement before stopping; the best weights are kept.
    min_delta : float, default=0.0
        Relative improvement that counts as progress.
    max_time : float or None, default=None
        Training budget in seconds.
    device : str, default="auto"
        ``auto`` (CUDA, MPS, CPU) or a torch device string.
    precision : {"fp32", "bf16"}, default="fp32"
        ``bf16`` trains under bfloat16 autocast.
    compile : bool, default=False
        Train through ``torch.compile``: opt-in, as it needs a C++ compiler and a warm-up of
        tens of seconds (worth it on long runs and GPUs). The fitted model is the same kind.
    checkpoint_dir : str or None, default=None
        Folder for resumable checkpoints.
    checkpoint_every : int, default=1
        Epochs between checkpoints.
    checkpoint_every_steps : int or None, default=None
        Also checkpoint every this many optimiser steps (resume mid-epoch).
    divergence_retries : int, default=0
        If the loss becomes NaN or infinite, restart the epoch with a 10× lower learning
        rate, up to this many times, before raising ``TrainingDivergedError``.
    transform_batch_size : int, default=4096
        Rows per chunk in ``transform`` and friends, so memory stays flat.
    random_state : int or None, default=None
        Seed; a fixed seed makes CPU runs repeat exactly.
    verbose : int, default=0
        1 logs one line per epoch (``logging``, logger ``"aekit"``).

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
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names, when ``X`` had string column names.
    n_iter_ : int
        Epochs run.

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
        scaling: str = "auto",
        loss: str = "auto",
        epochs: int | str = "auto",
        batch_size: int = 64,
        lr: float = 3e-3,
        optimizer: str = "adam",
        weight_decay: float = 1e-5,
        lr_schedule: str = "cosine",
        val_fraction: float = 0.1,
        patience: int | None = 10,
        min_delta: float = 0.0,
        max_time: float | None = None,
        device: str = "auto",
        precision: str = "fp32",
        compile: bool = False,
        checkpoint_dir: str | None = None,
        checkpoint_every: int = 1,
        checkpoint_every_steps: int | None = None,
        divergence_retries: int = 0,
        transform_batch_size: int = 4096,
        random_state: int | None = None,
        verbose: int = 0,
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
        self.scaling = scaling
        self.loss = loss
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.lr_schedule = lr_schedule
        self.val_fraction = val_fraction
        self.patience = patience
        self.min_delta = min_delta
        self.max_time = max_time
        self.device = device
        self.precision = precision
        self.compile = compile
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every
        self.checkpoint_every_steps = checkpoint_every_steps
        self.divergence_retries = divergence_retries
        self.transform_batch_size = transform_batch_size
        self.random_state = random_state
        self.verbose = verbose

    # -- scikit-learn plumbing ------------------------------------------------------------
    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "module_")

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

    def _validate(self, X: Any, *, reset: bool, finite: bool = True) -> np.ndarray:
        """Check and convert input rows; aekit's errors, scikit-learn's wording.

        ``finite=False`` leaves the NaN/inf/float32-range checks to :meth:`_run`, which makes
        them chunk by chunk on the float32 tensors it builds anyway (one pass, not three).
        """
        if isinstance(X, (str, os.PathLike)):  # fit and partial_fit open paths before this
            raise DataTypeError(
                f"got the path {str(X)!r}: only fit and partial_fit take file paths; "
                "read the rows first (aekit.data.read_array)"
            )
        with aekit_errors():
            X = validate_data(
                self, X, reset=reset, dtype=FLOATS, ensure_min_samples=1, ensure_all_finite=finite
            )
        if finite:
            check_float32_range(X)
        return X

    # -- fit ------------------------------------------------------------------------------
    def _resolve_configs(
        self, stats: dict[str, np.ndarray]
    ) -> tuple[ModelConfig, TrainConfig, str]:
        if self.scaling not in SCALINGS:
            raise ConfigError(f"scaling={self.scaling!r} is not one of {', '.join(SCALINGS)}")
        n_features = len(stats["min"])
        in_unit = bool(stats["min"].min() >= 0 and stats["max"].max() <= 1)
        scaling = self.scaling
        if scaling == "auto":  # 8-bit data (images) keep their common scale: /255, not z-scores
            scaling = "none" if in_unit else "global_minmax" if stats["uint8"] else "standardize"
        image_shape = resolve_image_shape(self.image_shape, n_features)
        hidden = self.hidden
        if isinstance(hidden, str):
            if hidden != "auto":
                raise ConfigError(f"hidden={hidden!r}: expected 'auto', an int or a tuple of ints")
            hidden = AUTO_CHANNELS if image_shape else auto_hidden(n_features, self.code_dim)
        elif isinstance(hidden, (int, np.integer)):
            hidden = (int(hidden),)
        linear = not hidden and self.activation == "identity" and image_shape is None
        unit_after_scaling = scaling in ("minmax", "global_minmax") or (
            scaling == "none" and in_unit
        )
        output = self.output
        if output == "auto":
            output = "sigmoid" if unit_after_scaling and not linear else "identity"
        model_kwargs = {key: getattr(self, key) for key in _MODEL_KEYS}
        model_kwargs["batch_norm"] = _resolve_auto(
            "batch_norm", self.batch_norm, unit_after_scaling
        )
        model = ModelConfig(
            input_dim=n_features,
            hidden=tuple(hidden),
            output=output,
            image_shape=image_shape,
            **model_kwargs,
        )
        train_kwargs = {key: getattr(self, key) for key in _TRAIN_KEYS}
        if self.epochs == "auto":
            train_kwargs["epochs"] = auto_epochs(
                int(stats["n_rows"]), self.batch_size, self.val_fraction
            )
        loss = self.loss
        if loss == "auto":
            loss = "bce" if output == "sigmoid" else "mse"
        seed = derive_seeds(self.random_state, 2)[1] if self.random_state is not None else None
        train = TrainConfig(random_state=seed, loss=loss, **train_kwargs)
        return model, train, scaling

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
        X : array-like of shape (n_samples, n_features), path, or row source
            Training rows (NumPy, pandas, anything array-like); or a file path: a ``.npy``
            or ``.parquet`` file is streamed from disk in shuffled blocks (see
            :class:`aekit.stream.NpyRows` and :class:`aekit.stream.ParquetRows`: all
            numeric columns of a parquet file) and never loaded whole, other formats are
            read into memory; or a row source such as :class:`~aekit.stream.ParquetRows`
            (which picks columns). :meth:`transform` and the other methods take arrays, not
            paths: read rows with :func:`aekit.data.read_array`, or chunk by chunk.
        y : None
            Ignored.
        callbacks : tuple of Callback, optional
            Extra training hooks (progress bars...).
        resume : bool or path, default=False
            ``True`` continues from the newest valid checkpoint in ``checkpoint_dir``; a path
            names one checkpoint file.

        Returns
        -------
        self : Autoencoder
        """
        rows, stats = self._rows_and_stats(X, reset=True)
        trainer, scaling = self._build(stats, callbacks)
        try:
            history = trainer.fit(rows, resume=resume)
        finally:
            _close_opened(X, rows)
        self._trainer_: Trainer | None = None
        module = trainer.module.eval()
        self._set_fitted(module, module.config, trainer.config, scaling, history)
        return self

    def partial_fit(self, X: Any, y: None = None) -> Autoencoder:
        """One more pass of training over ``X``, continuing where the last call stopped.

        Like ``IncrementalPCA.partial_fit``: feed the data batch by batch (or file by file)
        when it does not fit in memory at once. The first call (on an unfitted estimator)
        builds the model and fixes the input scaling from that first ``X``; each call then
        makes one shuffled pass of ``batch_size`` steps over its rows, keeping the
        optimiser's state between calls. No rows are held out: ``val_fraction``,
        ``patience``, ``lr_schedule`` and ``epochs`` do not apply.

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
        first = not hasattr(self, "module_")
        rows, stats = self._rows_and_stats(X, reset=first)
        trainer = getattr(self, "_trainer_", None)
        if first:
            trainer, scaling = self._build(stats, ())
            module = trainer.module
            self._set_fitted(module, module.config, trainer.config, scaling, trainer.history)
        elif trainer is None:  # after fit() or unpickling: a fresh optimiser on these weights
            trainer = Trainer(self.module_, self.train_config_)
            trainer.history = self.history_
        self._trainer_ = trainer
        try:
            trainer.partial_fit(rows)
        finally:
            _close_opened(X, rows)
        self.history_, self.n_iter_ = trainer.history, len(trainer.history)
        return self

    def _rows_and_stats(
        self, X: Any, *, reset: bool
    ) -> tuple[torch.Tensor | RowSource, dict[str, np.ndarray]]:
        """Training rows (a tensor, or a source streamed from disk) and their column stats."""
        if isinstance(X, (str, os.PathLike)):
            streamed = open_rows(X)
            X = read_array(X) if streamed is None else streamed
        if not isinstance(X, RowSource):
            bytes_in = getattr(X, "dtype", None) == np.uint8
            X = self._validate(X, reset=reset)
            stats = {
                "n_rows": np.asarray(X.shape[0]),
                "min": X.min(axis=0),
                "max": X.max(axis=0),
                "mean": X.mean(axis=0),
                "std": X.std(axis=0),
                "uint8": np.asarray(bytes_in),
            }
            return as_tensor(X), stats
        if not reset and X.n_features != self.n_features_in_:
            raise DataError(
                f"X has {X.n_features} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input"
            )
        if reset:
            self.n_features_in_ = X.n_features
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        stats = stream_stats(X) if reset else {}
        stats["n_rows"] = np.asarray(len(X))
        stats["uint8"] = np.asarray(getattr(X, "dtype", None) == np.uint8)
        return X, stats

    def _build(
        self, stats: dict[str, np.ndarray], callbacks: tuple[Callback, ...]
    ) -> tuple[Trainer, str]:
        """A fresh model (scaling set from ``stats``) and its trainer; and the scaling used."""
        model_config, train_config, scaling = self._resolve_configs(stats)
        if self.verbose and not logger.handlers:
            logger.addHandler(logging.StreamHandler())
            logger.setLevel(logging.INFO)
        init_seed = derive_seeds(self.random_state, 2)[0]
        generator = torch.Generator().manual_seed(init_seed)
        module = Hourglass(model_config, generator)
        offset, scale = _scaling_params(stats, scaling)
        module.offset.copy_(torch.from_numpy(offset))
        module.scale.copy_(torch.from_numpy(scale))
        mean = torch.from_numpy(np.asarray(stats["mean"], dtype=np.float32))
        module.set_origin_(module.scale_input(mean))
        # Scaling is monotone per column: if the extremes stay finite in float32, all do.
        extremes = torch.from_numpy(np.stack([stats["min"], stats["max"]]).astype(np.float32))
        check_finite_output(module.scale_input(extremes).numpy().T, "input scaling", "column")
        return Trainer(module, train_config, callbacks), scaling

    def _set_fitted(
        self,
        module: Hourglass,
        model_config: ModelConfig,
        train_config: TrainConfig,
        scaling: str,
        history: History,
    ) -> None:
        self.module_ = module
        self.model_config_ = model_config
        self.train_config_ = train_config
        self.scaling_ = scaling
        self.history_ = history
        self.n_iter_ = len(history)

    # -- inference ------------------------------------------------------------------------
    def _run(
        self, X: np.ndarray, fn: Any, out_dtype: np.dtype, *, check_input: bool = False
    ) -> np.ndarray:
        """Apply ``fn`` (scaled tensor → tensor) to ``X`` in chunks; return ``out_dtype``.

        ``check_input`` refuses NaN, infinity and values beyond float32's range, chunk by chunk
        (for rows validated with ``finite=False``).
        """
        module = self.module_
        device = module.offset.device
        was_training = module.training
        module.eval()
        chunks = []
        with torch.inference_mode():  # one (empty) chunk for no rows: the width is still right
            for start in range(0, max(X.shape[0], 1), self.transform_batch_size):
                part = X[start : start + self.transform_batch_size]
                with np.errstate(over="ignore"):  # beyond float32 becomes inf: refused below
                    batch = as_tensor(part).to(device)
                if check_input:  # on the device: a GPU checks its copy faster than the CPU
                    check_finite_chunk(batch, part, start)
                chunks.append(fn(_pad_rows(batch))[: len(part)].to("cpu", torch.float32).numpy())
        module.train(was_training)
        out = np.concatenate(chunks)
        check_finite_output(out, "the network")
        return out.astype(out_dtype, copy=False)

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
            return module.encode(module.scale_input(rows))

        return self._run(X, encode, X.dtype, check_input=True)

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Decode codes back into rows in the original units.

        Parameters
        ----------
        X : array-like of shape (n_samples, code_dim)
            Codes, e.g. from :meth:`transform`.

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features_in_)
        """
        self._check_fitted()
        codes = as_codes(X, self.model_config_.code_dim)
        module = self.module_
        return self._run(codes, lambda c: module.unscale_output(module.decode(c)), codes.dtype)

    def reconstruct(self, X: Any) -> np.ndarray:
        """Encode and decode rows: ``inverse_transform(transform(X))`` in one pass.

        Returns
        -------
        X_reconstructed : ndarray of shape (n_samples, n_features_in_)
        """
        self._check_fitted()
        return self._reconstruct_rows(self._validate(X, reset=False, finite=False))

    def _reconstruct_rows(self, X: np.ndarray) -> np.ndarray:
        module = self.module_

        def recon(rows: torch.Tensor) -> torch.Tensor:
            return module.unscale_output(module(module.scale_input(rows)).recon)

        return self._run(X, recon, X.dtype, check_input=True)

    def reconstruction_error(self, X: Any) -> np.ndarray:
        """Per-row sum of squared errors in the original units (aekit's one error unit).

        Returns
        -------
        errors : ndarray of shape (n_samples,)
        """
        self._check_fitted()
        X = self._validate(X, reset=False, finite=False)
        recon = self._reconstruct_rows(X)  # validated once, checked chunk by chunk there
        errors = np.square(np.asarray(X, dtype=np.float64) - recon, dtype=np.float64).sum(axis=1)
        with np.errstate(over="ignore"):
            errors = errors.astype(recon.dtype, copy=False)
        check_finite_output(errors, "its float32 error (pass float64 rows)")
        return errors

    def score_samples(self, X: Any) -> np.ndarray:
        """Minus each row's reconstruction error: higher means more normal.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
        """
        return -self.reconstruction_error(X)

    def score(self, X: Any, y: None = None) -> float:
        """Minus the mean reconstruction error (per-row sum of squares), as in scikit-learn.

        Returns
        -------
        score : float
        """
        return float(np.mean(self.score_samples(X)))

    # -- persistence ----------------------------------------------------------------------
    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Save to a model folder: ``config.json`` + ``weights.safetensors`` (no pickle).

        Returns
        -------
        Path
            The folder.
        """
        self._check_fitted()
        names = getattr(self, "feature_names_in_", None)
        meta = {
            "train": self.train_config_.to_dict(),
            "estimator": self.get_params(),
            "scaling": self.scaling_,
            "n_features_in": int(self.n_features_in_),
            "feature_names": None if names is None else [str(n) for n in names],
            "history": self.history_.to_dict(),
        }
        return write_model(folder, self.module_, meta)

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


def _close_opened(X: Any, rows: Any) -> None:
    """Close a file that ``fit`` opened from a path (not one the caller handed over)."""
    if isinstance(X, (str, os.PathLike)) and isinstance(rows, BlockRows):
        rows.close()


def _pad_rows(batch: torch.Tensor, block: int = _ROW_BLOCK) -> torch.Tensor:
    """Pad to a whole number of ``block`` rows (at least one block).

    Matrix-multiply kernels pick their code path by the row count, and a path for a few rows
    rounds differently; with padded blocks a row's result never depends on how many rows
    came with it, so ``transform`` of a subset equals the subset of ``transform``.
    """
    n = batch.shape[0]
    padded = max(block, -(-n // block) * block)
    if padded == n:
        return batch
    return torch.cat([batch, batch.new_zeros((padded - n, *batch.shape[1:]))])
