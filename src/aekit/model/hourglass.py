"""The hourglass network: an encoder narrowing to a code and a mirrored decoder.

The encoder is an MLP, or for image rows (``ModelConfig.image_shape``) a stack of strided
convolutions whose channel counts are ``hidden``; the decoder mirrors it with transposed
convolutions. Code activations, penalties and noise are the same for both.

The module carries its own input scaling as buffers (``offset`` and ``scale``), so a saved
model needs nothing else to turn raw rows into codes. The network itself works in the
scaled space: ``forward(model.scale(x))``.

A top-k dictionary (``sparsity="topk"`` with a linear decoder) encodes each row relative to
its origin, the decoder's output for an empty code: the pre-encoder bias of Gao et al. 2024,
shared with the decoder's bias. :meth:`Hourglass.set_origin_` starts it at the data's mean
(:class:`~aekit.Autoencoder` does so in ``fit``).

Missing values (NaN in the scaled rows) are filled with 0 on the way into the encoder; a
model trained with them (``ModelConfig.missing``) also sees their mask, as extra input
columns (image rows: extra channels), see :mod:`aekit.data.missing`.
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import torch
from torch import nn

from ..config.configs import ModelConfig
from ..data.missing import fill_holes, group_matrix, groups_from_blocks, with_indicators
from .regularize import topk_mask

__all__ = ["Hourglass", "Output", "softmax_blocks"]

LOGIT_CLAMP = 0.01  # a sigmoid start expands the logit around the mean clipped to [c, 1 - c]


class Output(NamedTuple):
    """What :meth:`Hourglass.forward` returns."""

    recon: torch.Tensor  # reconstruction, in the scaled space
    code: torch.Tensor  # the code (after the code activation and any top-k)
    logits: torch.Tensor  # reconstruction before the output activation
    pre: torch.Tensor  # the code before the code activation (top-k's auxiliary loss uses it)


def _activation(name: str) -> nn.Module:
    return {
        "relu": nn.ReLU,
        "leaky_relu": nn.LeakyReLU,
        "elu": nn.ELU,
        "gelu": nn.GELU,
        "silu": nn.SiLU,
        "tanh": nn.Tanh,
        "sigmoid": nn.Sigmoid,
        "identity": nn.Identity,
    }[name]()


class SeededDropout(nn.Module):
    """Dropout that draws from an explicit generator instead of the global random state."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Zero a fraction ``p`` of entries and rescale the rest (training only)."""
        if not self.training or self.p == 0:
            return x
        keep = torch.rand(x.shape, generator=self.generator, device=x.device) >= self.p
        return x * keep.to(x.dtype) / (1 - self.p)


def _stack(widths: list[int], config: ModelConfig) -> list[nn.Module]:
    """Linear (+ batch norm) + activation (+ dropout) for each consecutive pair of widths."""
    layers: list[nn.Module] = []
    for fan_in, fan_out in itertools.pairwise(widths):
        layers.append(nn.Linear(fan_in, fan_out))
        if config.batch_norm:
            layers.append(nn.BatchNorm1d(fan_out))
        layers.append(_activation(config.activation))
        if config.dropout > 0:
            layers.append(SeededDropout(config.dropout))
    return layers


def _conv_sizes(image_shape: tuple[int, ...], n_layers: int) -> list[tuple[int, int]]:
    """Spatial size (height, width) before each stride-2 convolution and after the last."""
    sizes = [(image_shape[1], image_shape[2])]
    for _ in range(n_layers):
        h, w = sizes[-1]
        sizes.append(((h + 1) // 2, (w + 1) // 2))
    return sizes


def _conv_pair(config: ModelConfig) -> tuple[list[nn.Module], list[nn.Module]]:
    """Strided-convolution encoder and transposed-convolution decoder for image rows.

    Each encoder layer is a 3×3 convolution with stride 2 (halving height and width) and
    ``hidden[i]`` output channels; a linear layer maps the last feature map to the code and
    back. The decoder mirrors the encoder, its output padding chosen to restore each size.
    """
    assert config.image_shape is not None
    channels = [config.image_shape[0] * (2 if config.missing else 1), *config.hidden]
    sizes = _conv_sizes(config.image_shape, len(config.hidden))
    h, w = sizes[-1]
    flat = channels[-1] * h * w
    encoder: list[nn.Module] = []
    for fan_in, fan_out in itertools.pairwise(channels):
        encoder += [nn.Conv2d(fan_in, fan_out, 3, stride=2, padding=1), *_extras(fan_out, config)]
    encoder += [nn.Flatten(), nn.Linear(flat, config.code_dim)]
    back = [config.image_shape[0], *config.hidden]  # the output: no indicator channels
    steps = list(zip(reversed(back[1:]), reversed(back[:-1]), reversed(sizes[:-1]), strict=True))
    decoder: list[nn.Module] = [nn.Linear(config.code_dim, back[-1] * h * w)]
    if steps:
        decoder += [*_extras(None, config), nn.Unflatten(1, (channels[-1], h, w))]
    for i, (fan_in, fan_out, (out_h, out_w)) in enumerate(steps):
        in_h, in_w = sizes[len(steps) - i]
        pad = (out_h - 2 * in_h + 1, out_w - 2 * in_w + 1)
        decoder.append(nn.ConvTranspose2d(fan_in, fan_out, 3, 2, padding=1, output_padding=pad))
        if i < len(steps) - 1:
            decoder += _extras(fan_out, config)
    return encoder, [*decoder, nn.Flatten()] if steps else decoder


def _extras(channels: int | None, config: ModelConfig) -> list[nn.Module]:
    """Batch norm (over channels, when given), activation and dropout after a conv layer."""
    layers: list[nn.Module] = []
    if config.batch_norm and channels is not None:
        layers.append(nn.BatchNorm2d(channels))
    layers.append(_activation(config.activation))
    if config.dropout > 0:
        layers.append(SeededDropout(config.dropout))
    return layers


class Hourglass(nn.Module):
    """An autoencoder built from a :class:`~aekit.config.ModelConfig`.

    Parameters
    ----------
    config : ModelConfig
        The architecture.
    generator : torch.Generator, optional
        Source of the initial weights (the global random state is never used).

    Attributes
    ----------
    encoder : nn.Sequential
        Input → code (before the code activation).
    decoder : nn.Sequential
        Code → reconstruction logits (before the output activation).
    offset, scale : Tensor of shape (input_dim,)
        Input scaling buffers: ``scaled = (x - offset) / scale``.
    """

    def __init__(self, config: ModelConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config
        fan_in = config.input_dim * (2 if config.missing else 1)  # the mask indicators
        widths = [fan_in, *config.hidden]
        back = [config.code_dim, *reversed(config.hidden)]
        # nn.Linear draws a throw-away init from the global generator; fork it so building a
        # model leaves the caller's random state as it was (reset_parameters draws the real one).
        with torch.random.fork_rng(devices=[]):
            if config.image_shape is not None:
                encoder, decoder = _conv_pair(config)
            else:
                encoder = [*_stack(widths, config), nn.Linear(widths[-1], config.code_dim)]
                decoder = [*_stack(back, config), nn.Linear(back[-1], config.input_dim)]
            self.encoder = nn.Sequential(*encoder)
            self.decoder = nn.Sequential(*decoder)
            if config.linear_path:  # PCA's home in a deep model: input → code → output
                self.linear_encoder = nn.Linear(fan_in, config.code_dim)
                self.linear_decoder = nn.Linear(config.code_dim, config.input_dim)
        self.register_buffer("offset", torch.zeros(config.input_dim))
        self.register_buffer("scale", torch.ones(config.input_dim))
        if config.sparsity == "topk":  # training rows since each code unit last fired
            self.register_buffer("rows_since_fired", torch.zeros(config.code_dim))
        blocks = config.categorical_blocks  # a one-hot block is one column of the table
        members = group_matrix(groups_from_blocks(config.input_dim, blocks)) if blocks else None
        self.register_buffer("group_members", members, persistent=False)
        self.reset_parameters(generator)

    # -- parameters ---------------------------------------------------------------------
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Draw fresh weights (PyTorch's default init) from ``generator``."""
        for layer in self.modules():
            if isinstance(layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
                bound = 1 / math.sqrt(layer.weight[0].numel())  # PyTorch's fan-in
                nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
        self.normalize_decoder_()
        self._tie_dictionary_init()

    @torch.no_grad()
    def _tie_dictionary_init(self) -> None:
        """Sparse dictionary (L1 or top-k code, linear decoder): encoder = decoderᵀ at start.

        Unit-norm decoder columns and the encoder as their transpose, biases zero: every unit
        starts as a matched filter of its own atom, which keeps far fewer units from never
        firing (Gao et al. 2024, "Scaling and evaluating sparse autoencoders").
        """
        if not self.config.is_dictionary:
            return
        encoder_out, decoder_in = self.encoder[-1], self.code_layer
        atoms = decoder_in.weight
        atoms /= atoms.norm(dim=0, keepdim=True).clamp_min(1e-12)
        d = self.config.input_dim  # mask indicators (missing=True) start at zero
        encoder_out.weight[:, :d] = atoms.T
        encoder_out.weight[:, d:] = 0
        encoder_out.bias.zero_()

    @property
    def centred(self) -> bool:
        """True for a top-k dictionary, whose encoder sees rows minus :meth:`origin`.

        Uncentred rows (pixels in [0, 1], say) share one large mean direction; a unit whose
        encoder row points away from it stays below the top-k threshold on every row.
        """
        return self.config.is_dictionary and self.config.sparsity == "topk"

    def origin(self) -> torch.Tensor:
        """The decoder's output for an all-zero code, in the scaled space."""
        return self.output_activation(self.code_layer.bias)

    @torch.no_grad()
    def set_origin_(self, mean: torch.Tensor) -> None:
        """Move :meth:`origin` to ``mean`` (scaled rows' mean, shape (input_dim,)).

        Only for :attr:`centred` models; others are left as they are. With a sigmoid output
        the mean is clipped to (0.001, 0.999) before its logit is taken.
        """
        if not self.centred:
            return
        bias = self.code_layer.bias
        mean = mean.to(bias)
        if self.config.output == "sigmoid":
            mean = torch.logit(mean.clamp(1e-3, 1 - 1e-3))
        bias.copy_(mean)

    @property
    def pca_start(self) -> str | None:
        """How :meth:`start_from_pca_` starts this model, or None where it keeps the random start.

        ``"exact"``: PCA's reconstruction (identity output); ``"logit"``: its first-order
        equivalent through a sigmoid output; ``"signed_pairs"``: an L1 dictionary whose units
        come in ± pairs of principal directions. Top-k and KL codes (and L1 codes with hidden
        layers) have no PCA equivalent worth starting from: a top-k code of ± principal
        directions would leave every unit beyond the first few below the top k (dead from the
        first step), and sigmoid codes cannot be signed coordinates.
        """
        config = self.config
        linear_core = config.linear_path or (
            config.has_linear_decoder and config.image_shape is None
        )
        if not linear_core or config.sparsity in ("topk", "kl"):
            return None
        if config.sparsity == "l1":
            return "signed_pairs" if not config.linear_path else None
        return "logit" if config.output == "sigmoid" else "exact"

    @torch.no_grad()
    def start_from_pca_(
        self, mean: torch.Tensor, components: torch.Tensor, fill: torch.Tensor | None = None
    ) -> bool:
        """Start at PCA's solution: codes are principal coordinates, outputs PCA's reconstruction.

        Parameters
        ----------
        mean : Tensor of shape (input_dim,)
            Mean of the scaled training rows.
        components : Tensor of shape (n_components, input_dim)
            Orthonormal principal directions of the scaled rows, largest variance first.
        fill : Tensor of shape (input_dim,), optional
            What a missing entry stands for in the PCA the start copies (the scaled rows'
            observed column means; a model with ``missing``). Each mask indicator's encoder
            weights start at the units times its column's fill, so a hole is encoded as that
            value, as PCA of mean-filled rows encodes it. None: as 0.

        Returns
        -------
        bool
            False where the model keeps its random start (see :attr:`pca_start`).

        Notes
        -----
        The linear encoder maps a row to ``V (x - mean)`` and the linear decoder a code back to
        ``Vᵀ h + mean`` (``V``: the first ``code_dim`` components; units beyond the number of
        components start at zero). In a deep model these are the linear path, and the
        nonlinear branches' last layers start at zero, so the whole model equals PCA until
        training moves it (rows with holes: PCA of the rows filled with ``fill``). With a
        sigmoid output the decoder's logits start at the first-order expansion of
        ``logit(PCA reconstruction)`` around the mean (clipped to [0.01, 0.99]), and a
        categorical block's softmax (whose one-hot mean ``m`` sums to 1) at
        ``log m + (r - m) / m`` for PCA's reconstruction ``r``: equal to ``r`` to first order.
        """
        how = self.pca_start
        if how is None:
            return False
        units = _pca_units(components.to(self.offset), self.config.code_dim, how == "signed_pairs")
        n = len(units)  # signed pairs: units beyond the pairs keep their random start
        mean = mean.to(self.offset)
        encoder = self.linear_encoder if self.config.linear_path else self.encoder[-1]
        decoder = self.linear_decoder if self.config.linear_path else self.decoder[-1]
        d = self.config.input_dim  # mask indicators (missing=True) start at zero
        encoder.weight[:n, :d] = units
        encoder.weight[:n, d:] = 0 if fill is None else units * fill.to(units)
        encoder.bias[:n] = -(units @ mean)
        if how == "logit":
            centre = mean.clamp(LOGIT_CLAMP, 1 - LOGIT_CLAMP)
            decoder.weight[:, :n] = units.T / (centre * (1 - centre))[:, None]
            decoder.bias.copy_(torch.logit(centre))
        else:
            decoder.weight[:, :n] = units.T
            decoder.bias.copy_(mean)
        for start, stop in self.config.categorical_blocks:  # softmax: its first-order expansion
            centre = mean[start:stop].clamp(LOGIT_CLAMP, 1 - LOGIT_CLAMP)
            decoder.weight[start:stop, :n] = units.T[start:stop] / centre[:, None]
            decoder.bias[start:stop] = torch.log(centre)
        if self.config.linear_path:  # the nonlinear branches add nothing at the start
            for branch in (self.encoder, self.decoder):
                last = [m for m in branch if isinstance(m, (nn.Linear, nn.ConvTranspose2d))][-1]
                last.weight.zero_()
                last.bias.zero_()
        self.pca_started = True  # for the log; what the weights are is in the weights
        return True

    def set_generator(self, generator: torch.Generator | None) -> None:
        """Route every dropout layer's randomness through ``generator``."""
        for layer in self.modules():
            if isinstance(layer, SeededDropout):
                layer.generator = generator

    def code_parameters(self) -> list[nn.Parameter]:
        """The encoder's last and the decoder's first layer: each code unit's row and atom."""
        return [*self.encoder[-1].parameters(), *self.code_layer.parameters()]

    @property
    def code_layer(self) -> nn.Linear:
        """The decoder's first linear layer, whose columns are the code's dictionary atoms."""
        layer = self.decoder[0]
        assert isinstance(layer, nn.Linear)
        return layer

    @torch.no_grad()
    def normalize_decoder_(self) -> None:
        """Rescale the decoder's code columns to unit norm (only for ``sparsity="l1"``).

        An L1 penalty on the code can otherwise be dodged by shrinking the code while the
        decoder grows; with unit-norm columns the penalty means what it says.
        """
        if self.config.sparsity == "l1":
            weight = self.code_layer.weight
            weight /= weight.norm(dim=0, keepdim=True).clamp_min(1e-12)

    # -- scaling ------------------------------------------------------------------------
    def scale_input(self, x: torch.Tensor) -> torch.Tensor:
        """Map raw rows to the scaled space the network works in."""
        return (x - self.offset) / self.scale

    def unscale_output(self, x: torch.Tensor) -> torch.Tensor:
        """Map scaled rows back to the original units."""
        return x * self.scale + self.offset

    # -- the network --------------------------------------------------------------------
    def code_activation(self, pre: torch.Tensor) -> torch.Tensor:
        """Apply the code non-linearity the sparsity setting calls for."""
        sparsity = self.config.sparsity
        if sparsity == "l1":
            return torch.relu(pre)
        if sparsity == "kl":
            return torch.sigmoid(pre)
        if sparsity == "topk":
            assert self.config.sparsity_k is not None
            return topk_mask(torch.relu(pre), self.config.sparsity_k)
        return pre

    def encode_pre(self, x: torch.Tensor) -> torch.Tensor:
        """Scaled rows (NaN where missing) → codes before the code activation."""
        if self.centred:
            x = x - self.origin()
        if self.config.missing:
            x = with_indicators(x)
        elif not self.training:  # trained on complete rows: a hole is the training mean
            x = fill_holes(x)
        rows = x
        if self.config.image_shape is not None:  # the indicators: as many channels more
            channels, *size = self.config.image_shape
            x = x.reshape(-1, channels * (2 if self.config.missing else 1), *size)
        pre = self.encoder(x)
        return pre + self.linear_encoder(rows) if self.config.linear_path else pre

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Scaled rows → codes."""
        return self.code_activation(self.encode_pre(x))

    def decode_logits(self, code: torch.Tensor) -> torch.Tensor:
        """Codes → reconstruction before the output activation."""
        logits = self.decoder(code)
        if not self.config.linear_path:
            return logits
        linear = self.linear_decoder(code)
        if torch.is_grad_enabled() or linear.dtype != logits.dtype or logits is code:
            return logits + linear
        return logits.add_(linear)  # no gradient: no third rows × width tensor (same values)

    def output_activation(self, logits: torch.Tensor) -> torch.Tensor:
        """Apply the output activation (identity or sigmoid), and a softmax per one-hot block.

        The columns of a categorical block (``ModelConfig.categorical_blocks``) become its
        categories' probabilities: every reconstruction, error and score sees those.
        """
        out = torch.sigmoid(logits) if self.config.output == "sigmoid" else logits
        blocks = self.config.categorical_blocks
        return softmax_blocks(logits, out, blocks) if blocks else out

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """Codes → reconstructions in the scaled space."""
        return self.output_activation(self.decode_logits(code))

    def forward(self, x: torch.Tensor) -> Output:
        """Encode and decode scaled rows; return reconstruction, code and logits."""
        pre = self.encode_pre(x)
        code = self.code_activation(pre)
        logits = self.decode_logits(code)
        return Output(self.output_activation(logits), code, logits, pre)


def softmax_blocks(
    logits: torch.Tensor, out: torch.Tensor, blocks: tuple[tuple[int, int], ...]
) -> torch.Tensor:
    """``out`` with the columns of each ``(start, stop)`` block the softmax of ``logits``'."""
    parts, end = [], 0
    for start, stop in blocks:
        parts += [out[:, end:start], torch.softmax(logits[:, start:stop], dim=1)]
        end = stop
    parts.append(out[:, end:])
    return torch.cat(parts, dim=1)


def _pca_units(components: torch.Tensor, code_dim: int, signed_pairs: bool) -> torch.Tensor:
    """The first code units' directions, one row each, principal directions in order.

    All ``code_dim`` units, those beyond the number of components as zero rows (so the start
    reconstructs exactly as PCA does); or with ``signed_pairs`` the ``2 · min(code_dim // 2,
    n_components)`` units ``+v_0, -v_0, +v_1, -v_1, ...`` (non-negative codes represent a
    signed coordinate as the difference of a pair), the rest left to the caller.
    """
    if signed_pairs:
        pairs = min(code_dim // 2, len(components))
        units = components.new_empty((2 * pairs, components.shape[1]))
        units[0::2] = components[:pairs]
        units[1::2] = -components[:pairs]
        return units
    units = components.new_zeros((code_dim, components.shape[1]))
    n = min(code_dim, len(components))
    units[:n] = components[:n]
    return units
