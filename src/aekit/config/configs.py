"""Model and training configuration: plain dataclasses, validated on creation.

A :class:`ModelConfig` is all that is needed to rebuild a network (plus its weights); a
:class:`TrainConfig` is all that is needed to repeat a training run. Both round-trip through
JSON with :meth:`to_dict` / :meth:`from_dict`, which refuse unknown keys and wrong types, so a
tampered ``config.json`` is rejected instead of half-understood.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .fields import (
    MAX_INT,
    JsonConfig,
    Option,
    check,
    choice,
    documented,
    fill_parameters,
    finite,
    option,
    ordered_pairs,
    positive_int,
)

__all__ = [
    "ACTIVATIONS",
    "HIDE_PATTERNS",
    "INITS",
    "LOSSES",
    "NOISES",
    "SCALINGS",
    "SCHEDULES",
    "SPARSITIES",
    "ModelConfig",
    "Option",
    "TrainConfig",
    "fill_parameters",
    "is_linear",
    "option",
]

ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu", "silu", "tanh", "sigmoid", "identity")
OUTPUTS = ("identity", "sigmoid")
SPARSITIES = ("l1", "kl", "topk")
NOISES = ("gaussian", "masking", "salt_and_pepper")
HIDE_PATTERNS = ("entries", "rows")  # which observed entries training hides (missing=True)
LOSSES = ("mse", "bce")
OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("constant", "cosine", "plateau")
PRECISIONS = ("fp32", "bf16")
SCALINGS = ("auto", "standardize", "minmax", "global_minmax", "unit_variance", "none")
SPARSE_PATHS = ("auto", "sparse", "densify")
SPARSE_OPTIMIZERS = ("lazy", "dense")
INITS = ("auto", "pca", "random")  # "auto": the estimator chooses (estimator/select.py)


@documented
@dataclass(frozen=True)
class ModelConfig(JsonConfig):
    """Architecture of an hourglass autoencoder: with the weights, all a model file needs.

    Parameters
    ----------
    {parameters}
    """

    input_dim: int = field(metadata={"doc": "Number of input features."})
    code_dim: int = option(2, "Width of the code (the bottleneck), like PCA's n_components.")
    hidden: tuple[int, ...] = option(
        (),
        "Widths of the encoder's hidden layers, outermost first; the decoder mirrors them. "
        "() with activation='identity' is the linear autoencoder, which finds PCA's subspace. "
        "With image_shape these are convolution channels.",
    )
    activation: str = option("relu", "Hidden-layer non-linearity.", choices=ACTIVATIONS)
    output: str = option(
        "identity",
        "Activation of the reconstruction; sigmoid suits data scaled to [0, 1].",
        choices=OUTPUTS,
    )
    dropout: float = option(0.0, "Dropout rate after each hidden layer, while training.")
    batch_norm: bool = option(False, "Batch normalisation after each hidden layer.")
    sparsity: str | None = option(
        None,
        "Sparse code: 'l1' (penalty λ‖h‖₁ on non-negative codes, unit-norm decoder columns), "
        "'kl' (sigmoid codes, KL divergence of the mean activation to sparsity_target) or "
        "'topk' (the sparsity_k largest activations of each row kept, the rest zeroed). A "
        "top-k dictionary (hidden=()) encodes rows relative to the decoder's output for an "
        "empty code, started at the training mean (Gao et al. 2024's pre-encoder bias).",
        choices=(None, *SPARSITIES),
    )
    sparsity_weight: float = option(
        1e-3,
        "λ of the L1 penalty, β of the KL penalty, or for a top-k dictionary the weight of "
        "the AuxK loss that revives dead units (Gao et al. use 1/32; 0 turns it off).",
    )
    sparsity_target: float = option(0.05, "Target mean activation ρ for sparsity='kl'.")
    sparsity_k: int | None = option(None, "Active units per row for sparsity='topk'.")
    noise: str | None = option(
        None,
        "Corrupt the scaled training input and reconstruct the clean one: a denoising autoencoder.",
        choices=(None, *NOISES),
    )
    noise_level: float = option(
        0.3, "σ for gaussian noise; the corrupted fraction for masking and salt_and_pepper."
    )
    image_shape: tuple[int, ...] | None = option(
        None,
        "(channels, height, width) of image rows, flattened channel-first: the encoder "
        "becomes stride-2 3×3 convolutions and the decoder the mirrored transposed ones.",
    )
    missing: bool = option(
        False,
        "Train and predict with missing values (NaN): the encoder sees each missing entry as "
        "0 in the scaled space plus a mask indicator (twice the input columns), the loss "
        "counts observed entries only, and training hides hide_share of the observed entries.",
    )
    hide_share: float = option(
        0.3,
        "With missing=True: the share of observed entries hidden (set missing) in each "
        "training batch and counted in the loss, so the model learns to fill holes (0.3 won "
        "benchmarks/impute.py; 0 is much worse at imputing).",
    )
    hide_pattern: str = option(
        "entries",
        "With missing=True, which observed entries a training batch hides: 'entries', a "
        "random hide_share of them; 'rows', those another row of the batch (drawn at random) "
        "is missing, so the model practises filling the holes the data has (a row missing a "
        "block learns to fill blocks). hide_share=0 hides nothing either way.",
        choices=HIDE_PATTERNS,
    )
    linear_path: bool = option(
        False,
        "A linear encoder (input → code) and a linear decoder (code → output) added to the "
        "nonlinear ones: what a PCA start (init='pca') puts PCA's solution in, while the "
        "nonlinear branches start at zero and learn what PCA misses.",
    )
    categorical_blocks: tuple[tuple[int, int], ...] = option(
        (),
        "(start, stop) of each categorical column's one-hot block in the input (from the "
        "table's layout, aekit.data.tables): the output applies a softmax over each block, "
        "whose columns are not scaled, and training adds a cross-entropy per block.",
    )

    def __post_init__(self) -> None:
        positive_int("input_dim", self.input_dim)
        positive_int("code_dim", self.code_dim)
        check(
            isinstance(self.hidden, tuple)
            and all(
                isinstance(h, int) and not isinstance(h, bool) and 1 <= h <= MAX_INT
                for h in self.hidden
            ),
            f"hidden must be a tuple of integers in [1, {MAX_INT}], got {self.hidden!r:.60}",
        )
        choice("activation", self.activation, ACTIVATIONS)
        choice("output", self.output, OUTPUTS)
        check(
            isinstance(self.missing, bool), f"missing must be True or False, got {self.missing!r}"
        )
        finite("hide_share", self.hide_share, 0.0, 1.0, open_high=True)
        choice("hide_pattern", self.hide_pattern, HIDE_PATTERNS)
        finite("dropout", self.dropout, 0.0, 1.0, open_high=True)
        check(
            isinstance(self.batch_norm, bool), f"batch_norm must be a bool, got {self.batch_norm!r}"
        )
        choice("sparsity", self.sparsity, (None, *SPARSITIES))
        finite("sparsity_weight", self.sparsity_weight, 0.0, math.inf, open_high=True)
        finite("sparsity_target", self.sparsity_target, 0.0, 1.0, open_high=True)
        check(
            self.sparsity != "kl" or self.sparsity_target > 0,
            "sparsity_target must be > 0 for sparsity='kl'",
        )
        if self.sparsity == "topk":
            check(self.sparsity_k is not None, "sparsity='topk' needs sparsity_k (active units)")
        if self.sparsity_k is not None:
            positive_int("sparsity_k", self.sparsity_k)
            check(
                self.sparsity_k <= self.code_dim,
                f"sparsity_k={self.sparsity_k} exceeds code_dim={self.code_dim}",
            )
        choice("noise", self.noise, (None, *NOISES))
        high = math.inf if self.noise == "gaussian" else 1.0
        finite("noise_level", self.noise_level, 0.0, high, open_high=self.noise == "gaussian")
        check(
            isinstance(self.linear_path, bool),
            f"linear_path must be a bool, got {self.linear_path!r}",
        )
        ordered_pairs("categorical_blocks", self.categorical_blocks, self.input_dim)
        if self.image_shape is not None:
            shape = self.image_shape
            check(
                isinstance(shape, tuple)
                and len(shape) == 3
                and all(
                    isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= MAX_INT
                    for n in shape
                ),
                f"image_shape must be (channels, height, width) integers in [1, {MAX_INT}], "
                f"got {shape!r:.60}",
            )
            check(
                math.prod(shape) == self.input_dim,
                f"image_shape={shape!r} holds {math.prod(shape)} values, input_dim is "
                f"{self.input_dim}",
            )

    @property
    def is_linear(self) -> bool:
        """True for the linear autoencoder (no hidden layer, identity activations)."""
        return is_linear(self.hidden, self.activation, self.image_shape)

    @property
    def has_linear_decoder(self) -> bool:
        """True when the decoder is one affine map of the code (``hidden=()``, MLP or conv)."""
        return not self.hidden

    @property
    def is_dictionary(self) -> bool:
        """True for a sparse dictionary: an L1 or top-k code with a linear decoder.

        The one rule for "dictionary": its atoms start as the encoder's matched filters, and a
        top-k dictionary encodes rows relative to its origin and trains with AuxK.
        """
        return self.sparsity in ("l1", "topk") and self.has_linear_decoder


def is_linear(hidden: tuple[int, ...], activation: str, image_shape: object) -> bool:
    """The one rule for "linear autoencoder": no hidden layer, identity activation, no conv."""
    return not hidden and activation == "identity" and image_shape is None


@documented
@dataclass(frozen=True)
class TrainConfig(JsonConfig):
    """How to train: optimiser, batches, schedule, stopping, device and checkpoints.

    The defaults are the estimator's where it has a fixed default (batch size, learning rate,
    schedule, weight decay, ...), but a :class:`~aekit.Trainer` built from ``TrainConfig()``
    does not train as :class:`~aekit.Autoencoder` does. The estimator first resolves its
    ``"auto"`` options from the data (:func:`aekit.estimator.resolve.resolve_configs`):
    ``loss`` becomes ``"bce"`` where the output is a sigmoid (a deep model on data in [0, 1]),
    where this default is ``"mse"``; ``epochs`` is 100 or, on small data, enough for 2,000
    steps. It trains with a seed derived from its ``random_state``, not that value itself,
    and it moves the network to PCA's solution before training (``init="pca"``); a Trainer
    trains the module it is given from where it is.

    Parameters
    ----------
    {parameters}
    """

    # A field missing from an older file means the behaviour of the version that wrote it.
    ABSENT_MEANS: ClassVar[dict[str, Any]] = {
        "min_val_rows": 0,
        "improvement_z": 0.0,
        "threads": "torch",
        "val_hidden": True,
    }

    epochs: int = option(
        100, "Maximum passes over the training rows; early stopping usually ends sooner."
    )
    batch_size: int = option(64, "Rows per optimiser step (the global batch under DDP).")
    lr: float = option(3e-3, "Peak learning rate.")
    optimizer: str = option("adam", "Optimiser.", choices=OPTIMIZERS)
    weight_decay: float = option(
        1e-5,
        "L2 (adam) or decoupled (adamw) weight decay; the small default curbs overfitting "
        "(MNIST: 0.36 instead of 0.40 × PCA's error at code size 30). Never applied to a "
        "top-k code's own layers, where Adam would scale it into steps that silence units.",
    )
    lr_schedule: str = option(
        "cosine",
        "Learning-rate schedule over the epochs (cosine decays to 0 at the last epoch).",
        choices=SCHEDULES,
    )
    loss: str = option(
        "mse", "Reconstruction loss while training; bce needs a sigmoid output.", choices=LOSSES
    )
    val_fraction: float = option(
        0.1,
        "Share of rows held out for validation and early stopping; 0 disables it. Skipped "
        "when it would leave no rows for either side.",
    )
    min_val_rows: int = option(
        50,
        "Small data holds out at least min(min_val_rows, n // 4) rows for validation, whatever "
        "val_fraction (a dozen rows rank epochs by noise); 0 holds out exactly val_fraction.",
    )
    patience: int | None = option(
        10,
        "Epochs without validation improvement before stopping (None: never); counted from "
        "the best trained epoch: the model training started from does not count.",
    )
    improvement_z: float = option(
        2.0,
        "How many standard errors a trained model's mean improvement over the model training "
        "started from (per validation row, paired) must reach to replace it; below, the start "
        "(with init='pca': PCA's solution) is kept. Guards small data, where the best of many "
        "epochs on a few validation rows beats the start by luck; 0 takes any improvement. "
        "init='auto' asks the same of each step of its cross-fitted search, over every row.",
    )
    val_hidden: bool = option(
        False,
        "With missing values (ModelConfig.missing): validate with hide_share of the validation "
        "rows' observed entries hidden (the same each time), so early stopping and the "
        "improvement_z rule rank models by how they fill holes (the imputer's aim). False: by "
        "the error of the rows as given, the unit aekit.analysis.measure compares with PCA, so "
        "the PCA start is kept unless training beats it there (older files: True).",
    )
    min_delta: float = option(
        0.0, "Relative improvement of the validation loss that counts as progress."
    )
    max_time: float | None = option(
        None,
        "Wall-clock budget in seconds; training stops after the epoch that exceeds it, or "
        "within that epoch once it runs half the median epoch past the budget.",
    )
    random_state: int | None = option(
        None,
        "Seed for initialisation, splits, shuffling, dropout and corruption; a fixed seed "
        "repeats a CPU run bit for bit (at the same thread count).",
    )
    device: str = option(
        "auto", "'auto' (CUDA, then Apple MPS, then CPU) or a torch device string."
    )
    threads: int | str = option(
        "auto",
        "Intra-op CPU threads while training. 'auto': the CPUs this process may use (affinity "
        "and cgroup quota; its share under DDP), fewer when a probe of a few steps before the "
        "first one finds more threads no faster (a busy core makes threads wait for each "
        "other; probed again between epochs after a slow epoch, or every 30 s while below "
        "the budget), and an explicit torch.set_num_threads or OMP_NUM_THREADS is kept; 'torch': "
        "torch's count, untouched. The count is recorded in the history and reused on resume "
        "(results differ in the last bits between counts); fit restores torch's count.",
    )
    precision: str = option(
        "fp32", "bf16 runs forward passes under bfloat16 autocast.", choices=PRECISIONS
    )
    compile: bool = option(
        False,
        "Train through torch.compile (opt-in: it needs a C++ compiler and tens of seconds of "
        "warm-up, worth it on long runs and GPUs). Weights and saved models are the same.",
    )
    checkpoint_dir: str | None = option(None, "Folder for resumable checkpoints.")
    checkpoint_every: int = option(1, "Epochs between checkpoints.")
    checkpoint_every_steps: int | None = option(
        None, "Also checkpoint every this many optimiser steps, so a long epoch resumes mid-way."
    )
    keep_checkpoints: int = option(3, "Newest checkpoints kept on disk.")
    divergence_retries: int = option(
        0,
        "When the loss becomes NaN or infinite, go back to the start of the epoch, multiply "
        "the learning rate by divergence_lr_factor and try again, this many times.",
    )
    divergence_lr_factor: float = option(
        0.1, "Learning-rate factor of each divergence retry, in (0, 1)."
    )
    verbose: int = option(0, "0 silent; 1 logs one line per epoch (logging, logger 'aekit').")
    sparse_path: str = option(
        "auto",
        "How scipy.sparse training rows are fed. 'sparse': batches stay sparse, the first "
        "layer costs non-zeros × hidden and the loss stays exact over all entries; "
        "'densify': each batch (never the whole matrix) is made dense. 'auto': sparse for "
        "rows at most 3 % non-zero in one process with an MLP encoder, no noise but masking, "
        "no missing=True and no categorical columns, else densify. The path taken is logged "
        "and recorded on the fitted estimator (see its attributes).",
        choices=SPARSE_PATHS,
    )
    sparse_optimizer: str = option(
        "lazy",
        "On the sparse path, how the first layer's weights are updated. 'lazy': Adam in the "
        "columns of the features present in the batch only (cost follows the non-zeros; a "
        "column's moments and weights move only in steps where its feature occurs, unlike "
        "dense Adam's); 'dense': dense Adam on the whole layer, dense training's result.",
        choices=SPARSE_OPTIMIZERS,
    )

    def __post_init__(self) -> None:
        positive_int("epochs", self.epochs)
        positive_int("batch_size", self.batch_size)
        finite("lr", self.lr, 0.0, math.inf, open_high=True)
        check(self.lr > 0, f"lr must be > 0, got {self.lr!r}")
        choice("optimizer", self.optimizer, OPTIMIZERS)
        choice("sparse_path", self.sparse_path, SPARSE_PATHS)
        choice("sparse_optimizer", self.sparse_optimizer, SPARSE_OPTIMIZERS)
        finite("weight_decay", self.weight_decay, 0.0, math.inf, open_high=True)
        choice("lr_schedule", self.lr_schedule, SCHEDULES)
        choice("loss", self.loss, LOSSES)
        finite("val_fraction", self.val_fraction, 0.0, 1.0, open_high=True)
        positive_int("min_val_rows", self.min_val_rows, minimum=0)
        finite("improvement_z", self.improvement_z, 0.0, math.inf, open_high=True)
        if self.patience is not None:
            positive_int("patience", self.patience)
        finite("min_delta", self.min_delta, 0.0, 1.0, open_high=True)
        if self.max_time is not None:
            finite("max_time", self.max_time, 0.0, math.inf, open_high=True)
        if self.random_state is not None:
            check(
                isinstance(self.random_state, int)
                and not isinstance(self.random_state, bool)
                and 0 <= self.random_state < 2**63,
                f"random_state must be a non-negative integer or None, got {self.random_state!r}",
            )
        check(isinstance(self.device, str), f"device must be a string, got {self.device!r}")
        check(
            self.threads in ("auto", "torch")
            or (
                isinstance(self.threads, int)
                and not isinstance(self.threads, bool)
                and 1 <= self.threads <= MAX_INT
            ),
            f"threads must be 'auto', 'torch' or an integer >= 1, got {self.threads!r:.60}",
        )
        choice("precision", self.precision, PRECISIONS)
        check(
            isinstance(self.compile, bool), f"compile must be True or False, got {self.compile!r}"
        )
        check(
            self.checkpoint_dir is None or isinstance(self.checkpoint_dir, str),
            f"checkpoint_dir must be a path string, got {self.checkpoint_dir!r}",
        )
        positive_int("checkpoint_every", self.checkpoint_every)
        if self.checkpoint_every_steps is not None:
            positive_int("checkpoint_every_steps", self.checkpoint_every_steps)
        positive_int("keep_checkpoints", self.keep_checkpoints)
        positive_int("divergence_retries", self.divergence_retries, minimum=0)
        finite("divergence_lr_factor", self.divergence_lr_factor, 0.0, 1.0, open_high=True)
        check(self.divergence_lr_factor > 0, "divergence_lr_factor must be > 0")
        check(
            isinstance(self.verbose, int) and abs(self.verbose) <= MAX_INT,
            f"verbose must be an integer, got {self.verbose!r:.60}",
        )
