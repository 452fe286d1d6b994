"""SAE folders: aekit's own (``sae.json`` + ``sae.safetensors``) and SAELens's (``cfg.json`` + ...).

**aekit's folder** holds ``sae.json`` (format ``aekit-sae`` version 5: the
:class:`~aekit.config.sae.SAEConfig`, ``n_features``, ``column_labels`` (a DataFrame's
columns at fit, by which ``transform`` reads a DataFrame; new in version 5, absent or null:
by position), the history, the aekit version and the SHA-256 of the weights) and
``sae.safetensors`` (``W_enc``, ``b_enc``, ``W_dec``, ``b_dec``, ``threshold``,
``input_scale``, and ``jumprelu_threshold`` for JumpReLU), written together,
atomically. It reloads exactly, training settings included (:func:`aekit.load`). Version 1
folders (JumpReLU's thresholds trained and stored as ``log_threshold``, the config without
``jumprelu_threshold_param``) keep loading, as ``jumprelu_threshold_param="log"``.

**SAELens's folder** (``cfg.json`` + ``sae_weights.safetensors``, as ``SAE.save_model``
writes and ``SAE.load_from_disk`` reads) is for inference: ``W_enc`` (d_in, d_sae),
``W_dec`` (d_sae, d_in), ``b_enc``, ``b_dec``, and ``threshold`` (d_sae) for a JumpReLU.
The architectures map to SAELens's as ``topk`` → ``topk`` (with ``k``), ``l1`` →
``standard``, ``jumprelu`` → ``jumprelu``, and ``batchtopk`` and ``matryoshka`` →
``jumprelu`` with their learned threshold on every latent (how they are served). The input
scale of ``normalize=True`` is folded into the weights (``W_enc * s``, ``W_dec / s``,
``b_dec / s``, as SAELens's ``fold_activation_norm_scaling_factor``), so the folder
reads raw activations with ``normalize_activations: "none"``. Reading one back gives an
inference-only SAE of the matching aekit architecture (``batchtopk`` saved so reads back as
``jumprelu``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from ..config.sae import BATCHTOPK_FAMILY, SAEConfig
from ..data.names import label_kind
from ..errors import AekitError, ModelFileError
from ..files import (
    SAE_NAME,
    SAELENS_CONFIG_NAME,
    atomic_files,
    check_tensors,
    json_bytes,
    parse_safetensors,
    read_checked_folder,
    read_json,
    read_regular,
    saved_folder,
    tensor_bytes,
    write_checked_folder,
)
from ..model.sae_dictionary import SparseDictionary

__all__ = [
    "SAELENS_SCHEMA_VERSION",
    "SAELENS_WEIGHTS_NAME",
    "SAE_FORMAT",
    "SAE_WEIGHTS_NAME",
    "read_sae",
    "read_saelens",
    "write_sae",
    "write_saelens",
]

SAE_FORMAT = "aekit-sae"
# 2: jumprelu_threshold_param, JumpReLU's direct thresholds; 3: decoder_init_norm, grad_clip;
# 4: decoder_init_norm for the top-k family too (a code rescaled by the decoder norms), and
# 'auto' giving Matryoshka SAELens's trainer (free rows from 1.0, clipping, b_dec from zeros)
SAE_FORMAT_VERSION = 5
# what 'auto' meant for each architecture before format 4, where it means something else now
_AUTO_BEFORE_4 = {arch: {"grad_clip": None, "b_dec_init": "mean"} for arch in BATCHTOPK_FAMILY}
SAE_WEIGHTS_NAME = "sae.safetensors"
SAELENS_WEIGHTS_NAME = "sae_weights.safetensors"
_TO_SAELENS = {
    "topk": "topk",
    "l1": "standard",
    "jumprelu": "jumprelu",
    "batchtopk": "jumprelu",
    "matryoshka": "jumprelu",
}
_FROM_SAELENS = {"topk": "topk", "standard": "l1", "jumprelu": "jumprelu"}
# SAELens's name of each architecture as trained (``metadata.training_architecture``)
_SAELENS_TRAINING = {
    "topk": "topk",
    "l1": "standard",
    "jumprelu": "jumprelu",
    "batchtopk": "batchtopk",
    "matryoshka": "matryoshka_batchtopk",
}
# The SAELens release whose folder schema aekit writes (and its tests load): SAELens reads a
# cfg.json whose metadata.sae_lens_version is >= 6.0 as is, older ones through its pre-6.0
# conversions.
SAELENS_SCHEMA_VERSION = "6.54.12"


def _build(
    config: SAEConfig, n_features: int, tensors: dict[str, torch.Tensor], source: Path
) -> SparseDictionary:
    with torch.device("meta"):  # shapes only: a tampered config allocates nothing
        expected = SparseDictionary(config, n_features).state_dict()
    check_tensors(expected, tensors, source)
    module = SparseDictionary(config, n_features)
    module.load_state_dict(tensors)
    return module.eval()


def write_sae(
    folder: str | os.PathLike[str], module: SparseDictionary, meta: dict[str, Any]
) -> Path:
    """Write aekit's SAE folder (``sae.json`` last, naming the weights' checksum)."""
    head = {
        "format": SAE_FORMAT,
        "format_version": SAE_FORMAT_VERSION,
        "aekit_version": __version__,
        "config": module.config.to_dict(),
        "n_features": module.n_features,
    }
    names = (SAE_NAME, SAE_WEIGHTS_NAME)
    return write_checked_folder(folder, names, module.state_dict(), head, meta)


def read_sae(folder: str | os.PathLike[str]) -> tuple[SparseDictionary, dict[str, Any]]:
    """Read aekit's SAE folder: the module (CPU, eval mode) and the parsed ``sae.json``.

    Raises
    ------
    ModelFileError
        A missing, truncated, tampered or foreign file.
    """
    folder = Path(folder)
    names = (SAE_NAME, SAE_WEIGHTS_NAME)
    header, raw = read_checked_folder(folder, names, SAE_FORMAT, SAE_FORMAT_VERSION, "SAE")
    n_features = header.get("n_features")
    if not isinstance(n_features, int) or isinstance(n_features, bool) or n_features < 1:
        raise ModelFileError(f"{folder / SAE_NAME}: n_features must be a positive int")
    written = header.get("config")
    if isinstance(written, dict) and header.get("format_version", 0) < 4:
        old = _AUTO_BEFORE_4.get(written.get("architecture"), {})
        written = {**written, **{k: v for k, v in old.items() if written.get(k) == "auto"}}
    try:
        config = SAEConfig.from_dict(written)
    except AekitError as exc:
        raise ModelFileError(f"{folder / SAE_NAME}: invalid SAE config: {exc}") from exc
    labels = header.get("column_labels")  # format 5: a DataFrame's columns at fit, or null
    if labels is not None and label_kind(labels, n_features) is None:
        raise ModelFileError(
            f"{folder / SAE_NAME}: column_labels must be null or {n_features} distinct names "
            "(all text or all integers)"
        )
    tensors = parse_safetensors(raw, folder / SAE_WEIGHTS_NAME)
    return _build(config, n_features, tensors, folder / SAE_WEIGHTS_NAME), header


def saelens_tensors(module: SparseDictionary) -> dict[str, torch.Tensor]:
    """SAELens's tensors of the module, the input scale folded in."""
    s = module.input_scale.detach().cpu()
    out = {
        "W_enc": module.W_enc.detach().cpu() * s,
        "b_enc": module.b_enc.detach().cpu().clone(),
        "W_dec": module.W_dec.detach().cpu() / s,
        "b_dec": module.b_dec.detach().cpu() / s,
    }
    if _TO_SAELENS[module.config.architecture] == "jumprelu":
        out["threshold"] = module.thresholds().detach().cpu().clone()
    return {k: v.contiguous() for k, v in out.items()}


def write_saelens(folder: str | os.PathLike[str], module: SparseDictionary) -> Path:
    """Write SAELens's folder (``cfg.json`` + ``sae_weights.safetensors``) for inference."""
    folder = Path(folder)
    config = module.config
    architecture = _TO_SAELENS[config.architecture]
    cfg: dict[str, Any] = {
        "architecture": architecture,
        "d_in": module.n_features,
        "d_sae": config.code_dim,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": {
            "sae_lens_version": SAELENS_SCHEMA_VERSION,
            "training_architecture": _SAELENS_TRAINING[config.architecture],
            "model_name": None,
            "hook_name": None,
        },
        "aekit": {"architecture": config.architecture, "aekit_version": __version__},
    }
    if architecture == "topk":
        cfg["k"] = config.k
        cfg["rescale_acts_by_decoder_norm"] = False
    with saved_folder(folder) as staged, atomic_files(staged) as put:  # all or nothing
        put(SAELENS_WEIGHTS_NAME, tensor_bytes(saelens_tensors(module)))
        put(SAELENS_CONFIG_NAME, json_bytes(cfg))
    return folder


def read_saelens(folder: str | os.PathLike[str]) -> SparseDictionary:
    """Read SAELens's folder (``standard``, ``topk`` or ``jumprelu``) as an inference SAE.

    Raises
    ------
    ModelFileError
        A missing file, another architecture, normalisation other than ``"none"``, or
        tensors that do not fit the config.
    """
    folder = Path(folder)
    source = folder / SAELENS_CONFIG_NAME
    cfg = read_json(source)
    architecture = _FROM_SAELENS.get(cfg.get("architecture"))  # type: ignore[arg-type]
    if architecture is None:
        raise ModelFileError(
            f"{source}: architecture {cfg.get('architecture')!r} is not one aekit reads "
            "(standard, topk, jumprelu)"
        )
    if cfg.get("normalize_activations", "none") != "none" or not cfg.get(
        "apply_b_dec_to_input", True
    ):
        raise ModelFileError(
            f"{source}: aekit reads SAELens folders with normalize_activations='none' and "
            "apply_b_dec_to_input=true"
        )
    if cfg.get("rescale_acts_by_decoder_norm", False):
        raise ModelFileError(
            f"{source}: rescale_acts_by_decoder_norm=true is not read by aekit (fold the "
            "decoder norms into the encoder first: SAELens's fold_W_dec_norm)"
        )
    d_in, d_sae = cfg.get("d_in"), cfg.get("d_sae")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (d_in, d_sae)):
        raise ModelFileError(f"{source}: d_in and d_sae must be positive ints")
    weights = folder / SAELENS_WEIGHTS_NAME
    tensors = {
        k: v.to(torch.float32) for k, v in parse_safetensors(read_regular(weights), weights).items()
    }
    architecture, k = _activation(cfg, architecture, source)
    try:
        config = SAEConfig(architecture=architecture, code_dim=d_sae, k=k)
    except AekitError as exc:
        raise ModelFileError(f"{source}: {exc}") from exc
    if architecture == "jumprelu":
        threshold = tensors.pop("threshold", None)
        if threshold is None or not bool((threshold >= 0).all()):
            raise ModelFileError(f"{weights}: a jumprelu SAE needs a 'threshold' >= 0")
        tensors["jumprelu_threshold"] = threshold
    ref = {"threshold": torch.zeros(()), "input_scale": torch.ones(())}
    return _build(config, d_in, {**tensors, **ref}, weights)  # type: ignore[arg-type]


def _activation(cfg: dict, architecture: str, source: Path) -> tuple[str, int]:
    """Return the architecture and ``k`` a SAELens config's activation function means.

    SAELens before version 6 wrote a top-k SAE as ``architecture: "standard"`` with
    ``activation_fn_str: "topk"`` (older: ``activation_fn``) and ``k`` in
    ``activation_fn_kwargs``: read as ReLU, its codes would be silently dense. Any
    activation other than ReLU or top-k, and a top-k without a positive integer ``k``,
    is refused.
    """
    activation = cfg.get("activation_fn_str", cfg.get("activation_fn"))
    kwargs = cfg.get("activation_fn_kwargs") or {}
    if activation == "topk" and architecture in ("l1", "topk"):
        architecture = "topk"
    elif activation not in (None, "relu"):
        raise ModelFileError(
            f"{source}: activation function {activation!r} is not one aekit reads for "
            f"a {cfg.get('architecture')!r} SAE (relu, or topk with k)"
        )
    if architecture != "topk":
        return architecture, 1
    k = cfg.get("k", kwargs.get("k") if isinstance(kwargs, dict) else None)
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ModelFileError(f"{source}: a topk SAE needs a positive integer 'k', got {k!r}")
    return architecture, k
