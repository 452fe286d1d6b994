"""The sparse autoencoder of interpretability: one linear encoder, one dictionary, a sparse code.

``x`` (scaled by :attr:`SparseDictionary.input_scale`, 1 unless normalisation is on) is
encoded as ``code = act((x - b_dec) W_enc + b_enc)`` and rebuilt as ``code W_dec + b_dec``,
in SAELens's layout: ``W_enc`` is (d_in, d_sae), ``W_dec`` (d_sae, d_in), its rows the
dictionary's directions, kept of unit norm (:meth:`SparseDictionary.normalize_decoder`), so a
code value is the length of its direction in the reconstruction and a penalty on code
values needs no decoder-norm factor.

``act`` in training (:meth:`SparseDictionary.train_code`) and at inference
(:meth:`SparseDictionary.encode`) per architecture (:class:`~aekit.config.sae.SAEConfig`):

=============  ============================  ==========================================
architecture   training                      inference
=============  ============================  ==========================================
topk           top k of ReLU per row         the same
batchtopk      top k x batch of the batch    ReLU where ``pre > threshold`` (JumpReLU,
                                             one threshold learned in training)
matryoshka     as batchtopk                  as batchtopk
jumprelu       JumpReLU, learned thresholds  the same
l1             ReLU                          the same
=============  ============================  ==========================================

Initialisation (:meth:`SparseDictionary.reset_parameters`): decoder rows drawn at random
(Kaiming-uniform, then unit norm), encoder = decoder transpose, ``b_enc`` = 0, ``b_dec`` set
from data by the trainer (mean or geometric median). With ``decoder_init_norm`` (SAELens's
geometry) the rows start at that norm and train freely; the top-k family's code is then
SAELens's ``rescale_acts_by_decoder_norm`` one (:meth:`SparseDictionary.decoder_gains`), and
:meth:`SparseDictionary.fold_decoder_norms` gives the rows unit norm after training.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from ..config.sae import SAEConfig
from .regularize import topk_mask
from .sae_codes import (
    SparseCode,
    batch_topk_sparse,
    entries_above,
    jumprelu,
    kept_pre_activations,
    topk_sparse,
)

__all__ = ["SPARSE_SHARE", "SparseDictionary", "TrainCode"]

# JumpReLU trains from its kept entries alone (on the CPU) while they are at most this share
# of the batch's code entries; above it the dense code is cheaper (measured at width 1,024
# over 256 inputs on one thread: the two break even near 0.2).
SPARSE_SHARE = 0.15


class TrainCode(NamedTuple):
    """A training step's code, its pre-activations and the centred input ``x - b_dec``.

    ``pre`` carries a graph for JumpReLU and ReLU codes, none for the top-k family (whose
    ``code.values`` carry it). A JumpReLU code given as a :class:`SparseCode` (its entries
    near or above the thresholds) has for ``pre`` those entries' pre-activations, flat, with
    no graph.
    """

    code: SparseCode | torch.Tensor
    pre: torch.Tensor
    centered: torch.Tensor


class SparseDictionary(nn.Module):
    """A sparse autoencoder: linear encoder, sparse code, linear unit-norm dictionary.

    Parameters
    ----------
    config : SAEConfig
        The architecture and its sizes.
    n_features : int
        Input width (d_in).

    Attributes
    ----------
    W_enc : Parameter of shape (n_features, code_dim)
    b_enc : Parameter of shape (code_dim,)
    W_dec : Parameter of shape (code_dim, n_features)
    b_dec : Parameter of shape (n_features,)
    jumprelu_threshold : Parameter of shape (code_dim,)
        JumpReLU's thresholds (``architecture="jumprelu"`` with
        ``jumprelu_threshold_param="direct"``), kept >= 0 by :meth:`clamp_thresholds`.
    log_threshold : Parameter of shape (code_dim,)
        Their logarithms instead, with ``jumprelu_threshold_param="log"`` (format 1).
    threshold : buffer of shape ()
        BatchTopK's inference threshold (``batchtopk`` and ``matryoshka``; 0 otherwise).
    input_scale : buffer of shape ()
        The factor inputs are multiplied by before encoding (outputs divided by after).
    """

    def __init__(self, config: SAEConfig, n_features: int) -> None:
        super().__init__()
        self.config = config
        self.n_features = int(n_features)
        d, m = self.n_features, config.code_dim
        self.W_enc = nn.Parameter(torch.empty(d, m))
        self.b_enc = nn.Parameter(torch.zeros(m))
        self.W_dec = nn.Parameter(torch.empty(m, d))
        self.b_dec = nn.Parameter(torch.zeros(d))
        if config.architecture == "jumprelu" and config.jumprelu_threshold_param == "log":
            start = math.log(config.jumprelu_init_threshold)
            self.log_threshold = nn.Parameter(torch.full((m,), start))
        elif config.architecture == "jumprelu":
            start = config.jumprelu_init_threshold
            self.jumprelu_threshold = nn.Parameter(torch.full((m,), start))
        self.register_buffer("threshold", torch.zeros(()))
        self.register_buffer("input_scale", torch.ones(()))

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator) -> None:
        """Random decoder rows of unit norm (or ``decoder_init_norm``), encoder = transpose."""
        bound = math.sqrt(6.0 / self.n_features)  # Kaiming-uniform for a fan-in of d_in
        rows = torch.rand(self.W_dec.shape, generator=generator, device=self.W_dec.device)
        self.W_dec.copy_((2 * rows - 1) * bound)
        self.normalize_decoder()
        start = self.config.decoder_start()
        if start is not None:
            self.W_dec.mul_(start)
        self.W_enc.copy_(self.W_dec.T)
        self.b_enc.zero_()
        self.b_dec.zero_()

    # -- the two halves -------------------------------------------------------------------
    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - b_dec) W_enc + b_enc`` for rows ``x`` already in the scaled space."""
        return (x - self.b_dec) @ self.W_enc + self.b_enc

    def thresholds(self) -> torch.Tensor:
        """JumpReLU's per-latent thresholds, or BatchTopK's one, broadcast to (code_dim,)."""
        if self.config.architecture == "jumprelu":
            return self.jumprelu_thresholds()
        return self.threshold.expand(self.config.code_dim)

    def jumprelu_thresholds(self) -> torch.Tensor:
        """JumpReLU's trained thresholds, whichever way they are parameterised (with a graph)."""
        if self.config.jumprelu_threshold_param == "log":
            return self.log_threshold.exp()
        return self.jumprelu_threshold

    @torch.no_grad()
    def clamp_thresholds(self) -> None:
        """Keep directly trained JumpReLU thresholds >= 0.

        Below 0 the gate would pass negative pre-activations. The values are projected after
        the step (not clamped in the graph), so a threshold at 0 still gets its gradient.
        """
        config = self.config
        if config.architecture == "jumprelu" and config.jumprelu_threshold_param == "direct":
            self.jumprelu_threshold.clamp_(min=0.0)

    def train_code(self, x: torch.Tensor) -> TrainCode:
        """The code a training step uses for rows ``x`` in the scaled space (see the table).

        BatchTopK and top-k give a :class:`~aekit.model.sae_codes.SparseCode` (the kept
        entries only): their pre-activations are computed without a graph, and only the kept
        entries carry one (:func:`~aekit.model.sae_codes.kept_pre_activations`), so the
        backward pass never touches the ``rows x code_dim`` matrix. JumpReLU and ReLU give a
        dense code.
        """
        arch = self.config.architecture
        centered = x - self.b_dec
        if arch in ("batchtopk", "matryoshka", "topk"):
            gains = self.decoder_gains()
            with torch.no_grad():
                pre = centered @ self.W_enc + self.b_enc
                if gains is not None:
                    pre = pre * gains
                select = batch_topk_sparse if arch != "topk" else topk_sparse
                kept = select(pre, self.config.k)
            values = self.kept_values(centered, kept, gains).relu()
            return TrainCode(kept._replace(values=values), pre, centered)
        # (x - b_dec) W_enc + b_enc, with b_dec's gradient a vector-matrix product rather
        # than the dense (rows x code_dim) @ (code_dim x n_features) one the input's needs
        pre = torch.addmm(self.b_enc - self.b_dec @ self.W_enc, x, self.W_enc)
        if arch == "jumprelu":
            sparse = self._sparse_jumprelu(pre, centered)
            if sparse is not None:  # pre's graph is left unused
                return sparse
            code = jumprelu(pre, self.jumprelu_thresholds(), self.config.jumprelu_bandwidth)
            return TrainCode(code, pre, centered)
        return TrainCode(pre.relu(), pre, centered)

    def kept_values(
        self, centered: torch.Tensor, kept: SparseCode, gains: torch.Tensor | None
    ) -> torch.Tensor:
        """The pre-activations at ``kept``'s entries with a graph (before the ReLU).

        ``kept.values`` holds them without one, times ``gains`` (:meth:`decoder_gains`)
        when not None: the graph then runs through the unscaled pre-activations
        (:func:`~aekit.model.sae_codes.kept_pre_activations`) and the gains.
        """
        if gains is None:
            return kept_pre_activations(centered, self.W_enc, self.b_enc, kept)
        scale = gains[kept.cols]
        raw = kept._replace(values=kept.values / scale.detach())
        return kept_pre_activations(centered, self.W_enc, self.b_enc, raw) * scale

    def _sparse_jumprelu(self, pre: torch.Tensor, centered: torch.Tensor) -> TrainCode | None:
        """JumpReLU's training code from its entries above ``threshold - bandwidth / 2``.

        The others have no value and no pseudo-gradient, so the kept entries give the dense
        code's loss and gradients while the decoder, its backward pass and the encoder's
        weight gradient cost ``entries x n_features`` instead of ``rows x code_dim x
        n_features``. None (use the dense code) when more than :data:`SPARSE_SHARE` of the
        entries are kept (early in training, before the thresholds rise), or off the CPU
        (counting the entries is a host synchronisation there).
        """
        if centered.device.type != "cpu":
            return None
        threshold, eps = self.jumprelu_thresholds(), self.config.jumprelu_bandwidth
        with torch.no_grad():
            above = pre > threshold - eps / 2
            if int(above.sum()) > SPARSE_SHARE * above.numel():
                return None
            near = entries_above(pre, above)
        values = kept_pre_activations(centered, self.W_enc, self.b_enc, near)
        code = jumprelu(values, threshold[near.cols], eps)
        return TrainCode(near._replace(values=code), near.values, centered)

    def code(self, pre: torch.Tensor) -> torch.Tensor:
        """The inference code of pre-activations (see the module's table)."""
        arch = self.config.architecture
        if arch == "topk":
            return topk_mask(pre.relu(), self.config.k)
        if arch == "l1":
            return pre.relu()
        return pre.relu() * (pre > self.thresholds()).to(pre.dtype)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Inference codes of raw rows ``x`` (scaled by :attr:`input_scale` first)."""
        return self.code(self.pre_activations(x * self.input_scale))

    def decode_scaled(self, code: torch.Tensor) -> torch.Tensor:
        """``code W_dec + b_dec``: the reconstruction in the scaled space."""
        return code @ self.W_dec + self.b_dec

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """The reconstruction of raw rows from their codes (unscaled)."""
        return self.decode_scaled(code) / self.input_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct raw rows through the inference code."""
        return self.decode(self.encode(x))

    # -- the unit-norm dictionary ---------------------------------------------------------
    def decoder_gains(self) -> torch.Tensor | None:
        """The top-k family's decoder norms in training with free rows, else None.

        With ``decoder_init_norm`` set, a top-k family code is SAELens's
        ``rescale_acts_by_decoder_norm``: the pre-activations are multiplied by the decoder
        norms (with a graph) before the top-k and the code decoded by the rows over their
        norms (:meth:`decoder_rows`), so the code is what a unit-norm dictionary would need.
        """
        if self.config.unit_decoder() or self.config.architecture not in (
            "batchtopk",
            "matryoshka",
            "topk",
        ):
            return None
        return self.W_dec.norm(dim=1)

    def decoder_rows(self) -> torch.Tensor:
        """The rows training decodes with: ``W_dec``, over its norms for a rescaled code."""
        gains = self.decoder_gains()
        return self.W_dec if gains is None else self.W_dec / gains[:, None]

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Rescale each decoder row to unit norm."""
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12))

    @torch.no_grad()
    def fold_decoder_norms(self) -> None:
        """Give the decoder rows unit norm without changing what the SAE computes.

        Latent ``j``'s decoder norm ``n_j`` moves into its encoder column, ``b_enc`` and
        JumpReLU threshold (each times ``n_j``): the code values grow by ``n_j`` and the
        decoder rows shrink by it, the gates open on the same rows.
        """
        norms = self.W_dec.norm(dim=1).clamp_min(1e-12)
        self.W_dec.div_(norms[:, None])
        self.W_enc.mul_(norms)
        self.b_enc.mul_(norms)
        if self.config.architecture == "jumprelu":
            if self.config.jumprelu_threshold_param == "log":
                self.log_threshold.add_(norms.log())
            else:
                self.jumprelu_threshold.mul_(norms)

    @torch.no_grad()
    def remove_parallel_grads(self) -> None:
        """Drop the part of each decoder row's gradient along the row (it only changes norms)."""
        grad = self.W_dec.grad
        if grad is not None:
            along = (grad * self.W_dec).sum(dim=1, keepdim=True)
            grad.sub_(along * self.W_dec)
