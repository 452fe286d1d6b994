"""``SparseAutoencoder``: a scikit-learn estimator over the SAE module, its loop and its files."""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin

from ..config.fields import describe, fill_parameters
from ..config.sae import SAEConfig
from ..data.checks import as_codes
from ..data.names import check_unique_names, in_named_order, warn_of_fitted_order
from ..errors import AekitWarning, ConfigError, DataError, ModelFileError, NotFittedError
from ..files import SAE_NAME, SAELENS_CONFIG_NAME
from ..files.layouts import check_can_save
from ..model.sae_dictionary import SparseDictionary
from ..training.checkpoint import checkpoint_columns, refuse_fresh_run
from ..training.prepare import resolve_device
from .files import read_sae, read_saelens, write_sae, write_saelens
from .loop import SAETrainer
from .metrics import (
    RunningMetrics,
    check_true_codes,
    check_true_features,
    cosine_matrix,
    mcc,
    uniqueness,
)
from .streams import activation_rows, activation_source, check_activations

__all__ = ["SparseAutoencoder"]

_CHUNK_VALUES = 2**24  # code values per chunk of inference (64 MiB of float32)


class SparseAutoencoder(TransformerMixin, BaseEstimator):
    """A sparse autoencoder for interpretability: a wide sparse code of activations.

    One linear encoder, a sparse code (BatchTopK, JumpReLU, Matryoshka, top-k or L1) and a
    dictionary of unit-norm directions, trained on unscaled activations from memory, files
    larger than memory or any iterable (:mod:`aekit.sae`). Saves to aekit's folder or
    SAELens's.

    Parameters
    ----------
    {parameters}

    Attributes
    ----------
    module_ : SparseDictionary
        The trained network (on the CPU).
    components_ : ndarray of shape (code_dim, n_features)
        The dictionary: decoder rows of unit norm (as PCA's ``components_``).
    threshold_ : ndarray of shape (code_dim,) or None
        The inference thresholds of the JumpReLU-served architectures.
    scale_ : float
        The factor inputs are multiplied by (1 unless ``normalize``).
    history_ : list of dict
        Training records (:class:`~aekit.sae.loop.SAETrainer`), the field's figures each.
    n_features_in_ : int
    n_steps_ : int
        Optimiser steps done.
    stopped_early_ : bool
        True when ``fit(stop_after=...)`` stopped before the budget (resume to go on).

    Examples
    --------
    >>> import numpy as np
    >>> from aekit.sae import SparseAutoencoder
    >>> X = np.random.default_rng(0).normal(size=(512, 16)).astype("float32")
    >>> sae = SparseAutoencoder(code_dim=64, k=4, batch_size=128, n_epochs=2).fit(X)
    >>> sae.transform(X, sparse=True).shape
    (512, 64)
    """

    def __init__(
        self,
        architecture: str = "batchtopk",
        *,
        code_dim: int = 4096,
        k: int = 32,
        sparsity_coef: float = 1.0,
        jumprelu_bandwidth: float = 0.05,
        jumprelu_init_threshold: float = 0.01,
        jumprelu_threshold_param: str = "direct",
        decoder_init_norm: float | str | None = "auto",
        grad_clip: float | str | None = "auto",
        matryoshka_widths: tuple[int, ...] | None = None,
        aux_k: int | None = None,
        aux_coef: float = 1 / 32,
        dead_rows: int = 1_000_000,
        threshold_lr: float = 0.01,
        batch_size: int = 4096,
        lr: float = 3e-4,
        lr_warmup_steps: int = 0,
        lr_decay_steps: int = 0,
        n_epochs: int = 1,
        max_rows: int | None = None,
        normalize: bool = False,
        b_dec_init: str = "auto",
        init_rows: int = 16384,
        log_every: int = 100,
        checkpoint_dir: str | None = None,
        checkpoint_every: int = 1000,
        keep_checkpoints: int = 2,
        device: str = "cpu",
        random_state: int = 0,
    ) -> None:
        self.architecture = architecture
        self.code_dim = code_dim
        self.k = k
        self.sparsity_coef = sparsity_coef
        self.jumprelu_bandwidth = jumprelu_bandwidth
        self.jumprelu_init_threshold = jumprelu_init_threshold
        self.jumprelu_threshold_param = jumprelu_threshold_param
        self.decoder_init_norm = decoder_init_norm
        self.grad_clip = grad_clip
        self.matryoshka_widths = matryoshka_widths
        self.aux_k = aux_k
        self.aux_coef = aux_coef
        self.dead_rows = dead_rows
        self.threshold_lr = threshold_lr
        self.batch_size = batch_size
        self.lr = lr
        self.lr_warmup_steps = lr_warmup_steps
        self.lr_decay_steps = lr_decay_steps
        self.n_epochs = n_epochs
        self.max_rows = max_rows
        self.normalize = normalize
        self.b_dec_init = b_dec_init
        self.init_rows = init_rows
        self.log_every = log_every
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every
        self.keep_checkpoints = keep_checkpoints
        self.device = device
        self.random_state = random_state

    # -- configuration --------------------------------------------------------------------
    def sae_config(self) -> SAEConfig:
        """The :class:`SAEConfig` of the current parameters (checked)."""
        params = self.get_params()
        widths = params["matryoshka_widths"]
        if widths is not None:
            params["matryoshka_widths"] = tuple(
                _converted(int, "matryoshka_widths", w, "integers") for w in widths
            )
        if params["checkpoint_dir"] is not None:
            params["checkpoint_dir"] = _converted(
                os.fspath, "checkpoint_dir", params["checkpoint_dir"], "a path"
            )
        for name in ("sparsity_coef", "jumprelu_bandwidth", "jumprelu_init_threshold"):
            params[name] = _converted(float, name, params[name], "a number")
        for name in ("decoder_init_norm", "grad_clip"):
            if params[name] is not None and params[name] != "auto":
                params[name] = _converted(float, name, params[name], "a number, 'auto' or None")
        return SAEConfig(**params)

    # -- fit --------------------------------------------------------------------------------
    def fit(
        self,
        X: Any,
        y: None = None,
        *,
        resume: bool | str | os.PathLike[str] = False,
        stop_after: int | None = None,
        true_features: Any = None,
    ) -> SparseAutoencoder:
        """Train on activations ``X``: an array, a memmap, a path, or an iterable of arrays.

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features), path, BlockRows or iterable
            See :func:`aekit.sae.streams.activation_source`.
        y : None
            Ignored.
        resume : bool or path, default=False
            True: continue from the newest checkpoint of ``checkpoint_dir`` (start afresh
            when there is none); a path: from that checkpoint file. A DataFrame with the
            checkpoint's columns in another order is read by name; a file or an iterable
            whose columns differ from the checkpoint's, in names or order, is refused.
        stop_after : int or None, default=None
            Stop at a step boundary once this many steps are done in all (a checkpoint is
            written when ``checkpoint_dir`` is set); the schedule is the full run's.
        true_features : array-like of shape (n_true, n_features), optional
            Known feature directions: the last ``history_`` record gets ``mcc`` and
            ``uniqueness``.

        Returns
        -------
        self
        """
        config = self.sae_config()
        if resume and config.checkpoint_dir is None and not isinstance(resume, (str, os.PathLike)):
            raise ConfigError("resume=True needs checkpoint_dir, the folder of the checkpoints")
        if config.matryoshka_widths is not None and config.architecture != "matryoshka":
            raise ConfigError(
                f"matryoshka_widths is for architecture='matryoshka', not "
                f"{config.architecture!r}: it would be ignored"
            )
        if not resume:  # its checkpoints would be pruned among another run's
            refuse_fresh_run(config.checkpoint_dir)
        check_unique_names(X)  # (a name given twice: which column would it read?)
        if resume:  # a DataFrame of the checkpoint's columns in another order: read by name
            written = checkpoint_columns(config.checkpoint_dir, resume, "column_labels")
            X = in_named_order(X, written, "the checkpointed run")
        source = activation_source(X)
        if config.n_epochs > 1 and getattr(source, "one_shot", False):
            warnings.warn(
                f"n_epochs={config.n_epochs}, but an iterator is read once: one epoch is "
                "trained (pass a callable that returns a fresh iterable for more)",
                AekitWarning,
                stacklevel=2,
            )
        if true_features is not None:  # before training, not after it
            check_true_features(true_features, source.n_features)
        labels = source.labels  # a DataFrame's or a file's: frames are read by them later
        device = resolve_device(config.device)
        torch.manual_seed(config.random_state)  # nothing draws from it; kept for user modules
        module = SparseDictionary(config, source.n_features).to(device)
        trainer = SAETrainer(module, source, device)
        path = os.fspath(resume) if isinstance(resume, (str, os.PathLike)) else None
        if not (resume and trainer.load_checkpoint(path)):
            trainer.start(torch.Generator(device=device).manual_seed(config.random_state))
        trainer.run(stop_after)
        if not config.unit_decoder():  # the checkpoints keep the unfolded training state
            module.fold_decoder_norms()
        self.module_ = module.cpu().eval()
        self.history_ = trainer.history
        self.n_steps_ = trainer.position["step"]
        self.stopped_early_ = trainer.stopped
        self._set_fitted(source.n_features, labels)
        if true_features is not None and self.history_:
            self.history_[-1].update(self.match_features(true_features))
        return self

    def _set_fitted(self, n_features: int, labels: list[Any] | None) -> None:
        self.n_features_in_ = int(n_features)
        self._column_labels = labels  # all str or all int: a DataFrame's columns at fit
        if labels is not None and all(isinstance(n, str) for n in labels):
            self.feature_names_in_ = np.asarray(labels, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self.components_ = self.module_.W_dec.detach().numpy().copy()
        arch = self.module_.config.architecture
        thresholds = self.module_.thresholds().detach().numpy().copy()
        self.threshold_ = thresholds if arch in ("batchtopk", "matryoshka", "jumprelu") else None
        self.scale_ = float(self.module_.input_scale)

    # -- inference ------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "module_"):
            raise NotFittedError("this SparseAutoencoder is not fitted yet; call fit first")

    def _chunks(self, X: Any) -> Iterator[torch.Tensor]:
        self._check_fitted()
        X = in_named_order(X, getattr(self, "_column_labels", None), "this SparseAutoencoder")
        if isinstance(X, (str, os.PathLike)) or (
            not hasattr(X, "shape") and not isinstance(X, (list, tuple))
        ):
            raise DataError(
                f"X must be rows in memory (an array, a tensor, a DataFrame or a list of rows), "
                f"got {type(X).__name__}: fit streams files and iterables, transform does not"
            )
        if isinstance(X, torch.Tensor):
            X = X.detach().cpu()
        elif not hasattr(X, "shape"):
            X = np.asarray(X)
        if len(X.shape) != 2 or X.shape[1] != self.n_features_in_:
            raise DataError(
                f"X has shape {tuple(X.shape)}; expected rows of {self.n_features_in_} features"
            )
        rows = max(64, _CHUNK_VALUES // self.module_.config.code_dim)
        for start in range(0, X.shape[0], rows):
            part = activation_rows(X[start : start + rows], "X")
            yield check_activations(part, "X", start)  # no NaN, no infinity: named

    @torch.no_grad()
    def transform(self, X: Any, *, sparse: bool = False) -> Any:
        """The inference codes of ``X``: dense ndarray, or ``scipy.sparse`` CSR when ``sparse``.

        Returns
        -------
        ndarray or csr_matrix of shape (n_rows, code_dim)
        """
        parts = [self.module_.encode(chunk) for chunk in self._chunks(X)]
        if not sparse:
            return torch.cat(parts).numpy() if parts else np.zeros((0, self.code_dim), np.float32)
        import scipy.sparse

        blocks = [scipy.sparse.csr_matrix(p.numpy()) for p in parts]
        return (
            scipy.sparse.vstack(blocks, format="csr")
            if blocks
            else scipy.sparse.csr_matrix((0, self.module_.config.code_dim), dtype=np.float32)
        )

    @torch.no_grad()
    def inverse_transform(self, codes: Any) -> np.ndarray:
        """Rows rebuilt from their codes (dense or sparse), in the input's units."""
        self._check_fitted()
        dense = codes.toarray() if hasattr(codes, "toarray") else codes
        checked = as_codes(dense, self.module_.config.code_dim)  # shape and values, named
        return self.module_.decode(torch.as_tensor(checked, dtype=torch.float32)).numpy()

    @torch.no_grad()
    def reconstruct(self, X: Any) -> np.ndarray:
        """``X`` through the SAE: ``inverse_transform(transform(X))``, columns in fitted order."""
        labels = getattr(self, "_column_labels", None)  # stacklevel 3: past no_grad's wrapper
        warn_of_fitted_order(X, labels, "reconstruct", stacklevel=3)
        parts = [self.module_(chunk) for chunk in self._chunks(X)]
        return torch.cat(parts).numpy() if parts else np.zeros((0, self.n_features_in_), np.float32)

    def match_features(self, true_features: Any) -> dict[str, float]:
        """``mcc`` and ``uniqueness`` of the dictionary against known feature directions."""
        self._check_fitted()
        return {
            "mcc": mcc(self.components_, true_features),
            "uniqueness": uniqueness(self.components_, true_features),
        }

    @torch.no_grad()
    def evaluate(
        self, X: Any, *, true_features: Any = None, true_codes: Any = None
    ) -> dict[str, float]:
        """The field's figures on rows ``X`` (:mod:`aekit.sae.metrics`).

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)
        true_features : array-like of shape (n_true, n_features), optional
            Adds ``mcc`` and ``uniqueness``.
        true_codes : array-like of shape (n_rows, n_true), optional
            Which true features are active in each row (> 0): adds ``f1`` (needs
            ``true_features``).

        Returns
        -------
        dict
            ``explained_variance``, ``fvu``, ``l0``, ``dead_fraction``, ``shrinkage`` and the
            ground-truth figures asked for.
        """
        match = None
        if true_codes is not None and true_features is None:
            raise ConfigError("true_codes needs true_features: F1 matches latents to them")
        if true_codes is not None and hasattr(true_codes, "tocsr"):
            true_codes = true_codes.tocsr()  # (a COO matrix takes no row slices)
        if true_features is not None and true_codes is not None:
            match = cosine_matrix(self.components_, true_features).argmax(axis=1)
            n_rows = X.shape[0] if hasattr(X, "shape") else len(X)
            check_true_codes(true_codes, n_rows, len(np.asarray(true_features)))
        running = RunningMetrics(self.module_.config.code_dim, match)
        start = 0
        for chunk in self._chunks(X):
            codes = self.module_.encode(chunk)
            truth = None if true_codes is None else true_codes[start : start + len(chunk)]
            running.add(chunk, self.module_.decode(codes), codes, truth)
            start += len(chunk)
        if start == 0:
            raise DataError("X has no rows: the figures of an SAE are measured on rows")
        out = running.result()
        if true_features is not None:
            out.update(self.match_features(true_features))
        return out

    # -- files --------------------------------------------------------------------------
    def save(
        self, path: str | os.PathLike[str], *, overwrite: bool = False, format: str = "aekit"
    ) -> Path:
        """Save to a folder: ``format="aekit"`` (reloads exactly) or ``"saelens"`` (inference).

        Raises
        ------
        OutputError
            ``path`` already holds a saved model and ``overwrite`` is False.
        ConfigError
            An unknown ``format``.
        """
        self._check_fitted()
        if format not in ("aekit", "saelens"):
            raise ConfigError(f"format={format!r} is not one of 'aekit', 'saelens'")
        check_can_save(path, overwrite)
        if format == "saelens":
            return write_saelens(path, self.module_)
        meta = {"history": self.history_, "n_steps": self.n_steps_}
        labels = getattr(self, "_column_labels", None)  # (none on an SAE pickled before 5)
        return write_sae(path, self.module_, meta | {"column_labels": labels})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SparseAutoencoder:
        """Load an SAE saved by :meth:`save`, in aekit's format or SAELens's.

        Raises
        ------
        ModelFileError
            No SAE folder there, or a damaged one.
        """
        folder = Path(path)
        if (folder / SAE_NAME).exists():
            module, header = read_sae(folder)
            history, steps = header.get("history", []), header.get("n_steps", 0)
            labels = header.get("column_labels")  # checked by read_sae; absent before format 5
        elif (folder / SAELENS_CONFIG_NAME).exists():
            module, history, steps, labels = read_saelens(folder), [], 0, None
        else:
            raise ModelFileError(f"no SAE folder at {folder} (neither {SAE_NAME} nor cfg.json)")
        params = {
            name: getattr(module.config, name)
            for name in (f.name for f in dataclasses.fields(SAEConfig))
        }
        sae = cls(**params)
        sae.module_ = module
        sae.history_ = list(history) if isinstance(history, list) else []
        sae.n_steps_ = int(steps) if isinstance(steps, int) else 0
        sae.stopped_early_ = False
        sae._set_fitted(module.n_features, labels)
        return sae


SparseAutoencoder.__doc__ = fill_parameters(SparseAutoencoder.__doc__, describe(SAEConfig))


def _converted(kind: Any, name: str, value: Any, what: str) -> Any:
    """``kind(value)``, or a :class:`ConfigError` saying parameter ``name`` must be ``what``."""
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be {what}, got {value!r}")
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be {what}, got {value!r}") from None
