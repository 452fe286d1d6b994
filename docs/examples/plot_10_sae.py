"""
Sparse autoencoders for interpretability
========================================

:class:`aekit.sae.SparseAutoencoder` fits the wide sparse codes used to study the inside of
neural networks: many more latents than input values, a few active per row. Here the
"activations" are synthetic, so the truth is known: each row is a sparse sum of 48 hidden
unit directions in 24 dimensions (about 3 active per row), plus an offset. A good SAE's
dictionary should find those directions; MCC measures how well (1 = each true direction has
a latent pointing exactly along it), F1 whether each latent fires when its feature is on.

``AEKIT_DOCS_QUICK=1`` (how the test suite runs this gallery) trains for fewer epochs.
"""

import json
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import aekit
from aekit.sae import SparseAutoencoder

QUICK = os.environ.get("AEKIT_DOCS_QUICK", "") not in ("", "0")
rng = np.random.default_rng(0)
n_true, d_in, n_rows = 48, 24, 3000
features = rng.normal(size=(n_true, d_in))
features /= np.linalg.norm(features, axis=1, keepdims=True)
true_codes = (rng.random((n_rows, n_true)) < 3 / n_true) * rng.uniform(0.5, 1.5, (n_rows, n_true))
X = (true_codes @ features + 0.3).astype(np.float32)
print(f"true L0: {(true_codes > 0).sum(1).mean():.2f} active features per row")

# %%
# Three architectures, one budget
# -------------------------------
# BatchTopK keeps the ``k x batch`` largest activations of a whole batch (an average of k per
# row) and, at inference, a threshold it learned in training; JumpReLU learns one threshold
# per latent under an L0 penalty; Matryoshka is BatchTopK whose first 24 latents must also
# reconstruct the rows on their own. Each has 48 latents, as many as there are true features.
# Matryoshka's nested prefixes pay off on features that nest (a general feature and its
# special cases, as in language models); on these flat, independent ones the prefix's own
# reconstruction costs it a little.
common = {"code_dim": 48, "batch_size": 100, "n_epochs": 5 if QUICK else 15, "dead_rows": 1000}
models = {
    "batchtopk": SparseAutoencoder("batchtopk", k=3, lr=5e-3, **common),
    "jumprelu": SparseAutoencoder(
        "jumprelu",
        sparsity_coef=0.3,
        jumprelu_init_threshold=0.1,
        jumprelu_bandwidth=0.2,
        lr=1e-2,
        **common,
    ),
    "matryoshka": SparseAutoencoder(
        "matryoshka", k=3, lr=5e-3, matryoshka_widths=(24, 48), **common
    ),
}
figures = {}
print(f"{'':>11} {'MCC':>6} {'F1':>6} {'EV':>6} {'L0':>6} {'dead':>6}")
for name, sae in models.items():
    sae.fit(X)
    figures[name] = sae.evaluate(X, true_features=features, true_codes=true_codes)
    f = figures[name]
    print(
        f"{name:>11} {f['mcc']:6.3f} {f['f1']:6.3f} {f['explained_variance']:6.3f} "
        f"{f['l0']:6.2f} {f['dead_fraction']:6.1%}"
    )

# %%
# How training went
# -----------------
# ``history_`` records the field's figures every ``log_every`` steps: explained variance,
# L0, the share of dead latents (no activity over ``dead_rows`` rows), shrinkage.
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
for name, sae in models.items():
    steps = [r["step"] for r in sae.history_]
    ax1.plot(steps, [r["explained_variance"] for r in sae.history_], label=name)
    ax2.plot(steps, [r["l0"] for r in sae.history_], label=name)
ax1.set(xlabel="step", ylabel="explained variance")
ax2.set(xlabel="step", ylabel="L0 (active latents per row)")
ax1.legend()
fig.tight_layout()

# %%
# Saving for SAELens
# ------------------
# ``save(..., format="saelens")`` writes SAELens's ``cfg.json`` and
# ``sae_weights.safetensors``; BatchTopK is saved as the JumpReLU it is at inference.
# ``aekit.load`` reads either folder back.
with tempfile.TemporaryDirectory() as tmp:
    models["batchtopk"].save(Path(tmp) / "sae", format="saelens")
    cfg = json.loads((Path(tmp) / "sae" / "cfg.json").read_text())
    print({key: cfg[key] for key in ("architecture", "d_in", "d_sae", "normalize_activations")})
    again = aekit.load(Path(tmp) / "sae")
    gap = np.abs(again.transform(X) - models["batchtopk"].transform(X)).max()
    print(f"largest code difference after the round trip: {gap:.1e}")
