"""
Denoising
=========

A denoising autoencoder is trained on corrupted inputs to reconstruct the clean ones. Given a
noisy image it returns a cleaned one. Here: held-out digits with Gaussian noise of three
strengths, cleaned by a plain autoencoder, by a denoising autoencoder trained at that noise
level, and by PCA (projecting the noisy image onto the training digits' principal subspace).
Every error is measured against the *clean* image.

``AEKIT_DOCS_QUICK=1`` (how the test suite runs this gallery) trains for fewer epochs.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA

from aekit import Autoencoder
from aekit.analysis import row_errors, split_rows

QUICK = os.environ.get("AEKIT_DOCS_QUICK", "") not in ("", "0")
X = load_digits().data / 16.0
X_train, X_test = split_rows(X, 0.2, random_state=0)
code, epochs = 16, (20 if QUICK else 100)
rng = np.random.default_rng(0)

plain = Autoencoder(code_dim=code, epochs=epochs, random_state=0).fit(X_train)
pca = PCA(n_components=code, random_state=0).fit(X_train)

levels = [0.2, 0.4] if QUICK else [0.2, 0.4, 0.6]
grids, table = {}, []
for sigma in levels:
    noisy = np.clip(X_test + rng.normal(0, sigma, X_test.shape), 0, 1)
    dae = Autoencoder(
        code_dim=code, noise="gaussian", noise_level=sigma, epochs=epochs, random_state=0
    ).fit(X_train)
    outputs = {
        "noisy": noisy,
        "plain AE": plain.reconstruct(noisy),
        "denoising AE": dae.reconstruct(noisy),
        "PCA": pca.inverse_transform(pca.transform(noisy)),
    }
    table.append((sigma, {name: row_errors(X_test, out).mean() for name, out in outputs.items()}))
    grids[sigma] = outputs

print(f"{'σ':>4} " + " ".join(f"{name:>13}" for name in table[0][1]))
for sigma, errors in table:
    print(f"{sigma:>4} " + " ".join(f"{e:>13.3f}" for e in errors.values()))

# %%
# The grids
# ---------
# For each noise level: the noisy input, then each model's answer, for six held-out digits.
names = ["noisy", "plain AE", "denoising AE", "PCA"]
fig, axes = plt.subplots(len(names), 6 * len(levels), figsize=(2.0 * 3 * len(levels), 5.2))
for block, sigma in enumerate(levels):
    for r, name in enumerate(names):
        for c in range(6):
            ax = axes[r, block * 6 + c]
            ax.imshow(grids[sigma][name][c].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if block * 6 + c == 0:
                ax.set_ylabel(name, fontsize=8)
    axes[0, block * 6].set_title(f"σ = {sigma}", loc="left", fontsize=10)
fig.tight_layout()

# %%
# Error against the clean digits
# ------------------------------
fig, ax = plt.subplots(figsize=(6, 3.6))
for name in names:
    ax.plot(levels, [errors[name] for _, errors in table], "o-", label=name)
ax.set(xlabel="noise σ", ylabel="squared error vs clean image", yscale="log")
ax.legend()
fig.tight_layout()
plt.show()
