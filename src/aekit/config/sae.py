"""THE defaults of an interpretability SAE (:class:`~aekit.sae.SparseAutoencoder`).

One field, one default, one text: the estimator's parameters are these fields, its docstring
is written from them, and a saved SAE folder stores them (``sae.json``), so the SAE is rebuilt
from this config plus its weights. The defaults follow the field's usual ones (SAELens,
Gao et al. 2024, Bussmann et al. 2024, Rajamanoharan et al. 2024): Adam at 3e-4, batches of
4,096 rows, JumpReLU's threshold trained directly from 0.01 with a kernel bandwidth of 0.05
(SAELens 6's defaults), AuxK at 1/32 with ``d_in // 2`` auxiliary latents.

A saved config without ``jumprelu_threshold_param`` (aekit-sae format 1) was trained with
the threshold's logarithm, and reads back so (:attr:`SAEConfig.ABSENT_MEANS`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, ClassVar

from .fields import JsonConfig, check, choice, documented, finite, option, positive_int

__all__ = [
    "BATCHTOPK_FAMILY",
    "SAE_ARCHITECTURES",
    "SAE_B_DEC_INITS",
    "SAE_THRESHOLD_PARAMS",
    "SAEConfig",
]

SAE_ARCHITECTURES = ("topk", "batchtopk", "jumprelu", "matryoshka", "l1")
SAE_B_DEC_INITS = ("auto", "mean", "geometric_median", "zeros")
SAE_THRESHOLD_PARAMS = ("direct", "log")
# trained with BatchTopK, served as a JumpReLU; free decoder rows from norm 1 by default
BATCHTOPK_FAMILY = ("batchtopk", "matryoshka")
# the architectures whose 'auto' settings are SAELens's trainer's: clipping at 1.0, b_dec from 0
_SAELENS_TRAINER = ("jumprelu", *BATCHTOPK_FAMILY)


@documented
@dataclass(frozen=True)
class SAEConfig(JsonConfig):
    """How a sparse autoencoder is built and trained: every field with its default.

    Parameters
    ----------
    {parameters}
    """

    # fields an older saved config lacks, and the behaviour it was trained with
    ABSENT_MEANS: ClassVar[dict[str, Any]] = {
        "jumprelu_threshold_param": "log",
        "decoder_init_norm": None,  # format 2 and older: unit-norm rows throughout
        "grad_clip": None,
    }

    architecture: str = option(
        "batchtopk",
        "The code: 'topk' (the k largest per row, with AuxK), 'batchtopk' (the k x batch "
        "largest over the whole batch in training, a learned global threshold at inference, "
        "i.e. a JumpReLU; with AuxK), 'jumprelu' (learned per-latent thresholds with a "
        "straight-through L0 penalty), 'matryoshka' (BatchTopK whose nested prefixes of the "
        "dictionary each reconstruct the input, their losses summed) or 'l1' (ReLU with an "
        "L1 penalty).",
        choices=SAE_ARCHITECTURES,
    )
    code_dim: int = option(4096, "Latents in the dictionary (d_sae); usually several times d_in.")
    k: int = option(32, "Active latents per row for 'topk', 'batchtopk' and 'matryoshka'.")
    sparsity_coef: float = option(
        1.0,
        "Weight of the sparsity penalty: the L0 penalty of 'jumprelu', the L1 penalty of 'l1' "
        "(each row's sum of code values times decoder norms, which are 1).",
    )
    jumprelu_bandwidth: float = option(
        0.05, "Width of the rectangle kernel of JumpReLU's pseudo-gradient (epsilon)."
    )
    jumprelu_init_threshold: float = option(0.01, "JumpReLU's threshold at the start.")
    jumprelu_threshold_param: str = option(
        "direct",
        "What Adam trains for JumpReLU's thresholds: 'direct' (the thresholds themselves, "
        "kept >= 0 after each step, as SAELens 6 does: a step moves a threshold by about lr, "
        "so the L0 penalty reaches its sparsity within a short run) or 'log' (their "
        "logarithms, as Rajamanoharan et al. 2024 and aekit-sae format 1: a step scales a "
        "threshold by about exp(lr), so a small start barely moves).",
        choices=SAE_THRESHOLD_PARAMS,
    )
    decoder_init_norm: float | str | None = option(
        "auto",
        "None: the decoder rows are kept of unit norm throughout. A number (not for 'l1'): "
        "they start at this norm (the encoder their transpose) and train freely, as SAELens's "
        "training SAEs do (0.1 there); the top-k family's code is then SAELens's "
        "rescale_acts_by_decoder_norm one (pre-activations times the rows' norms, decoded by "
        "the rows over their norms). The trained norms are folded into the encoder, its bias "
        "and the thresholds at the end of fit, so the fitted dictionary has unit rows. "
        "'auto': 1.0 for 'batchtopk', 'matryoshka' and 'jumprelu' (SAELens's free rows from "
        "aekit's unit start; 'jumprelu' kept unit rows in earlier 0.2 builds), None for the "
        "others.",
    )
    grad_clip: float | str | None = option(
        "auto",
        "Largest norm of all the gradients together, rescaled to it before each step "
        "(SAELens's trainer clips at 1.0); None: no clipping; 'auto': 1.0 for 'jumprelu' "
        "(whose straight-through threshold gradients need it to reach its L0 without losing "
        "features), 'batchtopk' and 'matryoshka' (SAELens's trainer with its free rows), None "
        "for the others.",
    )
    matryoshka_widths: tuple[int, ...] | None = option(
        None,
        "The nested prefix sizes of 'matryoshka', increasing, the last code_dim; None: "
        "code_dim/8, code_dim/4, code_dim/2, code_dim.",
    )
    aux_k: int | None = option(
        None, "Dead latents AuxK asks to explain the residual; None: n_features // 2."
    )
    aux_coef: float = option(1 / 32, "Weight of the AuxK loss (0: no dead-latent revival).")
    dead_rows: int = option(
        1_000_000, "A latent is dead when it has not fired over this many training rows."
    )
    threshold_lr: float = option(
        0.01,
        "Rate of the running mean of BatchTopK's smallest kept activation, the threshold used "
        "at inference.",
    )
    batch_size: int = option(4096, "Rows per optimiser step.")
    lr: float = option(3e-4, "Adam's learning rate.")
    lr_warmup_steps: int = option(0, "Steps of linear learning-rate warm-up from 0.")
    lr_decay_steps: int = option(0, "Final steps over which the learning rate falls to 0.")
    n_epochs: int = option(1, "Passes over a finite dataset.")
    max_rows: int | None = option(
        None,
        "Training rows in all (the run's budget: the schedule ends there); None: n_epochs "
        "passes, or until an iterable ends.",
    )
    normalize: bool = option(
        False,
        "Scale the input so its mean squared norm is n_features (as SAELens's "
        "'expected_average_only_in'), the factor estimated from the first init_rows rows.",
    )
    b_dec_init: str = option(
        "auto",
        "The decoder bias at the start: the mean of the first init_rows rows, their "
        "geometric median, or zeros; 'auto': zeros for 'jumprelu', 'batchtopk' and "
        "'matryoshka' (as SAELens starts it), the mean for the others.",
        choices=SAE_B_DEC_INITS,
    )
    init_rows: int = option(16384, "Rows read before training to set b_dec and the scale.")
    log_every: int = option(100, "Steps between two records of the training history.")
    checkpoint_dir: str | None = option(
        None, "Folder of resumable checkpoints (None: no checkpoints)."
    )
    checkpoint_every: int = option(1000, "Steps between two checkpoints.")
    keep_checkpoints: int = option(2, "Checkpoints kept in checkpoint_dir (the newest).")
    device: str = option("cpu", "Where to train: 'cpu', 'cuda', 'cuda:N' or 'auto'.")
    random_state: int = option(0, "Seed of the initial weights and of the data order.")

    def __post_init__(self) -> None:
        choice("architecture", self.architecture, SAE_ARCHITECTURES)
        choice("b_dec_init", self.b_dec_init, SAE_B_DEC_INITS)
        choice("jumprelu_threshold_param", self.jumprelu_threshold_param, SAE_THRESHOLD_PARAMS)
        for name in ("code_dim", "k", "dead_rows", "batch_size", "n_epochs", "init_rows"):
            positive_int(name, getattr(self, name))
        for name in ("log_every", "checkpoint_every", "keep_checkpoints"):
            positive_int(name, getattr(self, name))
        for name in ("lr_warmup_steps", "lr_decay_steps"):
            positive_int(name, getattr(self, name), minimum=0)
        positive_int("random_state", self.random_state, minimum=0)
        if self.decoder_init_norm is not None and self.decoder_init_norm != "auto":
            check(
                isinstance(self.decoder_init_norm, (int, float))
                and not isinstance(self.decoder_init_norm, bool),
                f"decoder_init_norm must be a number, 'auto' or None, got "
                f"{self.decoder_init_norm!r}",
            )
            finite("decoder_init_norm", self.decoder_init_norm, 1e-6, 1e6)
            check(
                self.architecture != "l1",
                f"decoder_init_norm={self.decoder_init_norm} (free decoder norms) is not for "
                f"architecture='l1'; use None",
            )
        if self.grad_clip is not None and self.grad_clip != "auto":
            check(
                isinstance(self.grad_clip, (int, float)) and not isinstance(self.grad_clip, bool),
                f"grad_clip must be a number, 'auto' or None, got {self.grad_clip!r}",
            )
            finite("grad_clip", self.grad_clip, 1e-12, 1e12)
        if self.aux_k is not None:
            positive_int("aux_k", self.aux_k)
        if self.max_rows is not None:
            positive_int("max_rows", self.max_rows)
        check(self.k <= self.code_dim, f"k={self.k} must be at most code_dim={self.code_dim}")
        finite("sparsity_coef", self.sparsity_coef, 0.0, 1e12)
        finite("jumprelu_bandwidth", self.jumprelu_bandwidth, 1e-12, 1e6)
        finite("jumprelu_init_threshold", self.jumprelu_init_threshold, 1e-12, 1e6)
        finite("aux_coef", self.aux_coef, 0.0, 1e6)
        finite("threshold_lr", self.threshold_lr, 0.0, 1.0)
        finite("lr", self.lr, 0.0, 1e3)
        check(isinstance(self.normalize, bool), f"normalize must be a bool, got {self.normalize!r}")
        check(isinstance(self.device, str), f"device must be a string, got {self.device!r}")
        widths = self.matryoshka_widths
        if widths is not None:
            check(
                isinstance(widths, tuple)
                and len(widths) > 0
                and all(isinstance(w, int) and not isinstance(w, bool) for w in widths)
                and all(0 < a < b for a, b in itertools.pairwise(widths))
                and widths[0] > 0
                and widths[-1] == self.code_dim,
                f"matryoshka_widths must be increasing positive integers ending at code_dim="
                f"{self.code_dim}, got {widths!r}",
            )

    def prefix_widths(self) -> tuple[int, ...]:
        """The nested prefix sizes Matryoshka trains (``(code_dim,)`` for the others)."""
        if self.architecture != "matryoshka":
            return (self.code_dim,)
        if self.matryoshka_widths is not None:
            return self.matryoshka_widths
        widths = [self.code_dim // d for d in (8, 4, 2) if self.code_dim // d >= 1]
        return tuple(sorted({*widths, self.code_dim}))

    def clip_norm(self) -> float | None:
        """The gradient norm clipped to before each step (``grad_clip`` with 'auto' resolved)."""
        if self.grad_clip == "auto":
            return 1.0 if self.architecture in _SAELENS_TRAINER else None
        return None if self.grad_clip is None else float(self.grad_clip)

    def b_dec_start(self) -> str:
        """How ``b_dec`` starts (``b_dec_init`` with 'auto' resolved)."""
        if self.b_dec_init == "auto":
            return "zeros" if self.architecture in _SAELENS_TRAINER else "mean"
        return self.b_dec_init

    def decoder_start(self) -> float | None:
        """The decoder rows' starting norm when they train freely, None for unit rows."""
        if self.decoder_init_norm == "auto":
            return 1.0 if self.architecture in _SAELENS_TRAINER else None
        return None if self.decoder_init_norm is None else float(self.decoder_init_norm)

    def unit_decoder(self) -> bool:
        """True when the decoder rows are kept of unit norm in training."""
        return self.decoder_start() is None

    def uses_batch_threshold(self) -> bool:
        """True for the codes trained with BatchTopK and served as a JumpReLU."""
        return self.architecture in BATCHTOPK_FAMILY

    def uses_auxk(self) -> bool:
        """True for the top-k family, whose dead latents AuxK revives."""
        return self.architecture in ("topk", *BATCHTOPK_FAMILY) and self.aux_coef > 0
