"""aekit's SAELens folders: the documented schema, and SAELens itself reading them.

The schema below is what SAELens 6.54 writes with ``save_inference_model`` and reads with
``SAE.load_from_disk`` (read from its source and checked by running it; the notes are at the
top of ``benchmarks/sae.py``): ``cfg.json`` with these keys, and ``sae_weights.safetensors``
with exactly these tensors, in SAELens's orientation (its loader is strict, so a missing or
an extra tensor fails). The schema tests run without ``sae_lens``; the interop test needs it
(``pip install sae-lens``, in the ``bench`` extra) and is skipped otherwise.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from aekit.sae import SparseAutoencoder
from aekit.sae.files import SAELENS_SCHEMA_VERSION

D_IN, D_SAE, K = 12, 48, 3

# cfg.json keys SAELens's inference configs have (SAEConfig's fields plus "architecture").
SAELENS_CFG_KEYS = {
    "architecture",
    "d_in",
    "d_sae",
    "dtype",
    "device",
    "apply_b_dec_to_input",
    "normalize_activations",
    "reshape_activations",
    "metadata",
}
# aekit's architecture -> (SAELens's inference architecture, extra cfg keys).
SAELENS_ARCHITECTURE = {
    "batchtopk": ("jumprelu", set()),
    "matryoshka": ("jumprelu", set()),
    "jumprelu": ("jumprelu", set()),
    "topk": ("topk", {"k"}),  # rescale_acts_by_decoder_norm: optional (absent = False)
    "l1": ("standard", set()),
}


def saelens_tensor_shapes(architecture: str) -> dict[str, tuple[int, ...]]:
    """The tensors of SAELens's folder of that (SAELens) architecture, with their shapes."""
    shapes = {"W_enc": (D_IN, D_SAE), "b_enc": (D_SAE,), "W_dec": (D_SAE, D_IN), "b_dec": (D_IN,)}
    if architecture == "jumprelu":
        shapes["threshold"] = (D_SAE,)
    return shapes


def activations(n_rows: int = 600, seed: int = 0) -> np.ndarray:
    """Sparse non-negative mixtures of 40 random unit directions plus an offset."""
    rng = np.random.default_rng(seed)
    atoms = rng.normal(size=(40, D_IN))
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    codes = rng.exponential(size=(n_rows, 40)) * (rng.random((n_rows, 40)) < 0.08)
    return (codes @ atoms + 0.5).astype(np.float32)


def fitted(architecture: str, **extra: object) -> SparseAutoencoder:
    """A small SAE of that architecture, fitted to :func:`activations` in under a second."""
    params: dict[str, object] = {
        "code_dim": D_SAE,
        "k": K,
        "batch_size": 100,
        "n_epochs": 2,
        "init_rows": 200,
        "random_state": 0,
    }
    if architecture == "matryoshka":
        params["matryoshka_widths"] = (12, 24, D_SAE)
    params.update(extra)
    return SparseAutoencoder(architecture, **params).fit(activations())  # type: ignore[arg-type]


@pytest.mark.parametrize("architecture", sorted(SAELENS_ARCHITECTURE))
def test_saelens_folder_matches_the_documented_schema(tmp_path, architecture):
    folder = tmp_path / architecture
    fitted(architecture).save(folder, format="saelens")
    assert sorted(p.name for p in folder.iterdir()) == ["cfg.json", "sae_weights.safetensors"]
    cfg = json.loads((folder / "cfg.json").read_text())
    saelens_name, extra_keys = SAELENS_ARCHITECTURE[architecture]
    assert SAELENS_CFG_KEYS | extra_keys <= set(cfg)
    assert cfg["architecture"] == saelens_name
    assert (cfg["d_in"], cfg["d_sae"], cfg["dtype"]) == (D_IN, D_SAE, "float32")
    assert cfg["normalize_activations"] == "none" and cfg["apply_b_dec_to_input"] is True
    # SAELens reads a folder of version >= 6.0 as is (older ones through its conversions)
    assert int(cfg["metadata"]["sae_lens_version"].split(".")[0]) >= 6
    training = {"matryoshka": "matryoshka_batchtopk", "l1": "standard"}.get(architecture)
    assert cfg["metadata"]["training_architecture"] == (training or architecture)
    if saelens_name == "topk":
        assert cfg["k"] == K
    tensors = load_file(folder / "sae_weights.safetensors")
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    assert shapes == saelens_tensor_shapes(saelens_name)
    assert all(t.dtype == np.float32 and np.isfinite(t).all() for t in tensors.values())
    if "threshold" in tensors:
        assert (tensors["threshold"] >= 0).all()


def test_batchtopk_saved_for_saelens_is_a_jumprelu_of_the_learned_threshold(tmp_path):
    sae = fitted("batchtopk")
    sae.save(tmp_path / "f", format="saelens")
    tensors = load_file(tmp_path / "f" / "sae_weights.safetensors")
    # One global threshold on every latent, the one aekit serves; decoder rows of unit norm.
    np.testing.assert_allclose(tensors["threshold"], sae.threshold_, rtol=0, atol=0)
    assert np.unique(tensors["threshold"]).size == 1 and tensors["threshold"][0] > 0
    np.testing.assert_allclose(np.linalg.norm(tensors["W_dec"], axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    ("architecture", "extra"),
    [
        ("batchtopk", {}),
        ("matryoshka", {}),
        ("jumprelu", {"sparsity_coef": 0.01}),
        ("topk", {}),
        ("l1", {"sparsity_coef": 0.01}),
        ("batchtopk", {"normalize": True}),
    ],
)
def test_saelens_loads_an_aekit_folder_and_codes_as_aekit(tmp_path, architecture, extra):
    sae_lens = pytest.importorskip("sae_lens")
    import torch

    sae = fitted(architecture, **extra)
    sae.save(tmp_path / "f", format="saelens")
    theirs = sae_lens.SAE.load_from_disk(tmp_path / "f")
    assert theirs.cfg.architecture() == SAELENS_ARCHITECTURE[architecture][0]
    assert theirs.cfg.metadata.sae_lens_version == SAELENS_SCHEMA_VERSION  # the 6.x path

    X = activations(300, seed=1)
    ours_codes = sae.transform(X)
    assert (ours_codes != 0).any()  # a code to compare, not all zeros
    with torch.no_grad():
        their_codes = theirs.encode(torch.from_numpy(X)).numpy()
        their_rows = theirs.decode(torch.from_numpy(ours_codes)).numpy()
    np.testing.assert_allclose(their_codes, ours_codes, rtol=0, atol=1e-5)
    np.testing.assert_allclose(their_rows, sae.inverse_transform(ours_codes), rtol=0, atol=1e-5)
