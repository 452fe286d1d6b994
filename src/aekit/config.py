"""Model and training configuration: plain dataclasses, validated on creation.

A :class:`ModelConfig` is all that is needed to rebuild a network (plus its weights); a
:class:`TrainConfig` is all that is needed to repeat a training run. Both round-trip through
JSON with :meth:`to_dict` / :meth:`from_dict`, which refuse unknown keys and wrong types, so a
tampered ``config.json`` is rejected instead of half-understood.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import ConfigError

__all__ = [
    "ACTIVATIONS",
    "LOSSES",
    "NOISES",
    "SCHEDULES",
    "SPARSITIES",
    "ModelConfig",
    "TrainConfig",
]

ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu", "silu", "tanh", "sigmoid", "identity")
OUTPUTS = ("identity", "sigmoid")
SPARSITIES = ("l1", "kl", "topk")
NOISES = ("gaussian", "masking", "salt_and_pepper")
LOSSES = ("mse", "bce")
OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("constant", "cosine", "plateau")
PRECISIONS = ("fp32", "bf16")

_C = TypeVar("_C", bound="_Config")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _choice(name: str, value: object, allowed: tuple[object, ...]) -> None:
    _check(value in allowed, f"{name}={value!r} is not one of {', '.join(map(repr, allowed))}")


def _positive_int(name: str, value: object, *, minimum: int = 1) -> None:
    _check(
        isinstance(value, int) and not isinstance(value, bool) and value >= minimum,
        f"{name} must be an integer >= {minimum}, got {value!r}",
    )


def _finite(name: str, value: object, low: float, high: float, *, open_high: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and low <= value and (value < high if open_high else value <= high)
    bracket = ")" if open_high else "]"
    _check(ok, f"{name} must be a number in [{low}, {high}{bracket}, got {value!r}")


class _Config:
    """Shared JSON round-trip with strict key and type checks."""

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as a JSON-ready dict (tuples become lists)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls: type[_C], data: object) -> _C:
        """Rebuild a configuration from :meth:`to_dict` output, refusing unknown keys or types."""
        if not isinstance(data, dict):
            raise ConfigError(f"{cls.__name__} must be a JSON object, got {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} key(s): {', '.join(unknown)}")
        required = {
            f.name
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        missing = sorted(required - set(data))
        if missing:
            raise ConfigError(f"missing {cls.__name__} key(s): {', '.join(missing)}")
        kwargs = {key: _coerce(cls.__name__, key, value, hints[key]) for key, value in data.items()}
        return cls(**kwargs)


def _coerce(owner: str, key: str, value: object, hint: object) -> object:
    """Check ``value`` against a simple type hint; lists become tuples for tuple fields."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        hint = next(h for h in options if h is not type(None))
        origin = typing.get_origin(hint)
    if origin is tuple:
        ok = isinstance(value, (list, tuple)) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        )
        if not ok:
            raise ConfigError(f"{owner}.{key} must be a list of integers, got {value!r}")
        return tuple(value)  # type: ignore[arg-type]
    expected = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}[hint]  # type: ignore[index]
    if not isinstance(value, expected) or (hint is not bool and isinstance(value, bool)):
        raise ConfigError(f"{owner}.{key} must be of type {hint.__name__}, got {value!r}")  # type: ignore[union-attr]
    return float(value) if hint is float else value


@dataclass(frozen=True)
class ModelConfig(_Config):
    """Architecture of an hourglass autoencoder.

    Parameters
    ----------
    input_dim : int
        Number of input features.
    code_dim : int, default=2
        Width of the code (bottleneck).
    hidden : tuple of int, default=()
        Widths of the encoder's hidden layers, outermost first; the decoder mirrors them.
        ``()`` with ``activation="identity"`` is the linear autoencoder.
    activation : str, default="relu"
        Hidden-layer non-linearity, one of ``ACTIVATIONS``.
    output : {"identity", "sigmoid"}, default="identity"
        Activation of the reconstruction; ``sigmoid`` suits data scaled to [0, 1].
    dropout : float, default=0.0
        Dropout rate after each hidden layer (training only).
    batch_norm : bool, default=False
        Batch normalisation after each hidden linear layer.
    sparsity : {"l1", "kl", "topk"} or None, default=None
        Code penalty: ``l1`` (λ‖h‖₁ on non-negative codes, decoder columns kept at unit norm),
        ``kl`` (sigmoid codes, KL divergence of the mean activation to ``sparsity_target``), or
        ``topk`` (keep the ``sparsity_k`` largest activations of each row, zero the rest).
    sparsity_weight : float, default=1e-3
        λ for ``l1``, β for ``kl``; weight of the dead-unit auxiliary loss (AuxK) for ``topk``
        with a linear decoder (``hidden=()``).
    sparsity_target : float, default=0.05
        Target mean activation ρ for ``kl``.
    sparsity_k : int or None, default=None
        Active units per row for ``topk`` (required there).
    noise : {"gaussian", "masking", "salt_and_pepper"} or None, default=None
        Input corruption while training (denoising autoencoder).
    noise_level : float, default=0.3
        σ for ``gaussian``; the fraction of corrupted features otherwise.
    image_shape : tuple of int or None, default=None
        ``(channels, height, width)`` of image rows (flattened channel-first, so
        ``input_dim`` is their product): the encoder becomes stride-2 3×3 convolutions with
        ``hidden`` channels and the decoder the mirrored transposed convolutions.
    """

    input_dim: int
    code_dim: int = 2  # width of the bottleneck
    hidden: tuple[int, ...] = ()  # encoder hidden widths, outermost first; decoder mirrors
    activation: str = "relu"  # hidden non-linearity
    output: str = "identity"  # reconstruction activation: identity or sigmoid
    dropout: float = 0.0  # dropout after each hidden layer, training only
    batch_norm: bool = False  # batch norm after each hidden linear layer
    sparsity: str | None = None  # l1, kl, topk or None
    sparsity_weight: float = 1e-3  # λ (l1), β (kl), auxiliary-loss weight (topk)
    sparsity_target: float = 0.05  # ρ for kl
    sparsity_k: int | None = None  # active units per row for topk
    noise: str | None = None  # gaussian, masking, salt_and_pepper or None
    noise_level: float = 0.3  # σ (gaussian) or corrupted fraction (masking, salt_and_pepper)
    image_shape: tuple[int, ...] | None = None  # (channels, height, width): convolutional

    def __post_init__(self) -> None:
        _positive_int("input_dim", self.input_dim)
        _positive_int("code_dim", self.code_dim)
        _check(
            isinstance(self.hidden, tuple)
            and all(isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in self.hidden),
            f"hidden must be a tuple of positive integers, got {self.hidden!r}",
        )
        _choice("activation", self.activation, ACTIVATIONS)
        _choice("output", self.output, OUTPUTS)
        _finite("dropout", self.dropout, 0.0, 1.0, open_high=True)
        _check(
            isinstance(self.batch_norm, bool), f"batch_norm must be a bool, got {self.batch_norm!r}"
        )
        _choice("sparsity", self.sparsity, (None, *SPARSITIES))
        _finite("sparsity_weight", self.sparsity_weight, 0.0, math.inf, open_high=True)
        _finite("sparsity_target", self.sparsity_target, 0.0, 1.0, open_high=True)
        _check(
            self.sparsity != "kl" or self.sparsity_target > 0,
            "sparsity_target must be > 0 for sparsity='kl'",
        )
        if self.sparsity == "topk":
            _check(self.sparsity_k is not None, "sparsity='topk' needs sparsity_k (active units)")
        if self.sparsity_k is not None:
            _positive_int("sparsity_k", self.sparsity_k)
            _check(
                self.sparsity_k <= self.code_dim,
                f"sparsity_k={self.sparsity_k} exceeds code_dim={self.code_dim}",
            )
        _choice("noise", self.noise, (None, *NOISES))
        high = math.inf if self.noise == "gaussian" else 1.0
        _finite("noise_level", self.noise_level, 0.0, high, open_high=self.noise == "gaussian")
        if self.image_shape is not None:
            shape = self.image_shape
            _check(
                isinstance(shape, tuple)
                and len(shape) == 3
                and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape),
                f"image_shape must be (channels, height, width) positive integers, got {shape!r}",
            )
            _check(
                math.prod(shape) == self.input_dim,
                f"image_shape={shape!r} holds {math.prod(shape)} values, input_dim is "
                f"{self.input_dim}",
            )

    @property
    def is_linear(self) -> bool:
        """True for the linear autoencoder (no hidden layer, identity activations)."""
        return not self.hidden and self.activation == "identity" and self.image_shape is None


@dataclass(frozen=True)
class TrainConfig(_Config):
    """How to train: optimiser, batches, schedule, stopping, device and checkpoints.

    Parameters
    ----------
    epochs : int, default=100
        Maximum number of passes over the training rows.
    batch_size : int, default=128
        Rows per optimiser step (global batch, summed over processes under DDP).
    lr : float, default=1e-3
        Learning rate.
    optimizer : {"adam", "adamw"}, default="adam"
        Optimiser.
    weight_decay : float, default=0.0
        L2 (adam) or decoupled (adamw) weight decay; never on a top-k code's own layers.
    lr_schedule : {"constant", "cosine", "plateau"}, default="constant"
        Learning-rate schedule over epochs.
    loss : {"mse", "bce"}, default="mse"
        Reconstruction loss; ``bce`` needs targets in [0, 1].
    val_fraction : float, default=0.1
        Share of rows held out for validation and early stopping; 0 disables it. Skipped
        when it would leave no rows for either side.
    patience : int or None, default=10
        Epochs without improvement of the validation loss before stopping (None: never).
    min_delta : float, default=0.0
        Relative improvement of the validation loss that counts as progress.
    max_time : float or None, default=None
        Wall-clock budget in seconds; training stops after the epoch that exceeds it.
    random_state : int or None, default=None
        Seed for initialisation, splits, shuffling, dropout and corruption.
    device : str, default="auto"
        ``auto`` (CUDA, then Apple MPS, then CPU) or a torch device string.
    precision : {"fp32", "bf16"}, default="fp32"
        ``bf16`` runs forward passes under bfloat16 autocast.
    compile : bool, default=False
        Train through ``torch.compile`` (opt-in: it needs a C++ compiler, and its warm-up
        takes tens of seconds, worth it on long runs and GPUs). Weights, checkpoints and
        saved models are the same either way.
    checkpoint_dir : str or None, default=None
        Folder for resumable checkpoints.
    checkpoint_every : int, default=1
        Epochs between checkpoints.
    checkpoint_every_steps : int or None, default=None
        Also checkpoint every this many optimiser steps, so a long epoch resumes mid-way.
    keep_checkpoints : int, default=3
        Newest checkpoints kept on disk.
    divergence_retries : int, default=0
        When the loss becomes NaN or infinite, go back to the start of the epoch, multiply
        the learning rate by ``divergence_lr_factor`` and try again, this many times.
    divergence_lr_factor : float, default=0.1
        Learning-rate factor of each retry, in (0, 1).
    verbose : int, default=0
        0 silent; 1 logs one line per epoch through :mod:`logging`.
    """

    epochs: int = 100  # maximum passes over the training rows
    batch_size: int = 128  # rows per optimiser step (global under DDP)
    lr: float = 1e-3  # learning rate
    optimizer: str = "adam"  # adam or adamw
    weight_decay: float = 0.0  # L2 (adam) or decoupled (adamw) weight decay
    lr_schedule: str = "constant"  # constant, cosine or plateau
    loss: str = "mse"  # mse or bce
    val_fraction: float = 0.1  # held-out share for validation and early stopping
    patience: int | None = 10  # epochs without improvement before stopping
    min_delta: float = 0.0  # relative improvement that counts as progress
    max_time: float | None = None  # wall-clock budget in seconds
    random_state: int | None = None  # seed for everything random
    device: str = "auto"  # auto, cpu, cuda, cuda:1, mps
    precision: str = "fp32"  # fp32 or bf16 autocast
    compile: bool = False  # train through torch.compile (opt-in)
    checkpoint_dir: str | None = None  # folder for resumable checkpoints
    checkpoint_every: int = 1  # epochs between checkpoints
    checkpoint_every_steps: int | None = None  # optimiser steps between mid-epoch checkpoints
    keep_checkpoints: int = 3  # newest checkpoints kept
    divergence_retries: int = 0  # restarts of a diverged epoch at a lower learning rate
    divergence_lr_factor: float = 0.1  # learning-rate factor of each such restart
    verbose: int = 0  # 0 silent, 1 one log line per epoch

    def __post_init__(self) -> None:
        _positive_int("epochs", self.epochs)
        _positive_int("batch_size", self.batch_size)
        _finite("lr", self.lr, 0.0, math.inf, open_high=True)
        _check(self.lr > 0, f"lr must be > 0, got {self.lr!r}")
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _finite("weight_decay", self.weight_decay, 0.0, math.inf, open_high=True)
        _choice("lr_schedule", self.lr_schedule, SCHEDULES)
        _choice("loss", self.loss, LOSSES)
        _finite("val_fraction", self.val_fraction, 0.0, 1.0, open_high=True)
        if self.patience is not None:
            _positive_int("patience", self.patience)
        _finite("min_delta", self.min_delta, 0.0, 1.0, open_high=True)
        if self.max_time is not None:
            _finite("max_time", self.max_time, 0.0, math.inf, open_high=True)
        if self.random_state is not None:
            _check(
                isinstance(self.random_state, int)
                and not isinstance(self.random_state, bool)
                and 0 <= self.random_state < 2**63,
                f"random_state must be a non-negative integer or None, got {self.random_state!r}",
            )
        _check(isinstance(self.device, str), f"device must be a string, got {self.device!r}")
        _choice("precision", self.precision, PRECISIONS)
        _check(
            isinstance(self.compile, bool), f"compile must be True or False, got {self.compile!r}"
        )
        _check(
            self.checkpoint_dir is None or isinstance(self.checkpoint_dir, str),
            f"checkpoint_dir must be a path string, got {self.checkpoint_dir!r}",
        )
        _positive_int("checkpoint_every", self.checkpoint_every)
        if self.checkpoint_every_steps is not None:
            _positive_int("checkpoint_every_steps", self.checkpoint_every_steps)
        _positive_int("keep_checkpoints", self.keep_checkpoints)
        _positive_int("divergence_retries", self.divergence_retries, minimum=0)
        _finite("divergence_lr_factor", self.divergence_lr_factor, 0.0, 1.0, open_high=True)
        _check(self.divergence_lr_factor > 0, "divergence_lr_factor must be > 0")
        _check(isinstance(self.verbose, int), f"verbose must be an integer, got {self.verbose!r}")
