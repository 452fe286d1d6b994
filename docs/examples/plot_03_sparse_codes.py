"""
Sparse codes and dictionary atoms
=================================

A sparse autoencoder may have more code units than input pixels but uses only a few of them
for each image. With a linear decoder (``hidden=()``) it is a *sparse dictionary*: each image
is rebuilt as a sum of a few decoder columns, the **atoms**, which can be drawn as images.

Two ways are shown: an L1 penalty, whose weight λ trades error for sparsity, and top-k codes
(exactly k active units per image), with and without AuxK, aekit's remedy for units that
stop firing ("dead units").

``AEKIT_DOCS_QUICK=1`` (how the test suite runs this gallery) trains for fewer epochs.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

from aekit import Autoencoder
from aekit.analysis import decoder_basis, sparsity_stats, split_rows

QUICK = os.environ.get("AEKIT_DOCS_QUICK", "") not in ("", "0")
X = load_digits().data / 16.0
X_train, X_test = split_rows(X, 0.2, random_state=0)
epochs = 15 if QUICK else 60

# %%
# L1: sparsity and error as λ grows
# ---------------------------------
# 128 non-negative code units for 64 pixels. L0 is the mean number of active units per
# image (``|h| > 1e-6``).
lambdas = [1e-4, 1e-3, 1e-2] if QUICK else [1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2]
l1 = {}
for lam in lambdas:
    ae = Autoencoder(
        code_dim=128, hidden=(), sparsity="l1", sparsity_weight=lam, epochs=epochs, random_state=0
    ).fit(X_train)
    stats = sparsity_stats(ae.transform(X_test))
    l1[lam] = (stats["l0"], ae.reconstruction_error(X_test).mean(), ae)
print(f"{'λ':>8} {'L0':>6} {'error':>7}")
for lam, (l0, err, _) in l1.items():
    print(f"{lam:>8.0e} {l0:>6.1f} {err:>7.3f}")

fig, ax1 = plt.subplots(figsize=(6.5, 3.8))
ax1.plot(lambdas, [v[0] for v in l1.values()], "o-", color="tab:blue")
ax1.set(xscale="log", xlabel="L1 weight λ", ylabel="active units per image (L0)")
ax2 = ax1.twinx()
ax2.plot(lambdas, [v[1] for v in l1.values()], "s--", color="tab:red")
ax2.set_ylabel("held-out squared error", color="tab:red")
fig.tight_layout()

# %%
# The dictionary's atoms
# ----------------------
# The decoder columns of the model whose L0 is closest to 16 active units, in the original
# pixel units, the most used first: each image is rebuilt as a weighted sum of a few of
# these patterns.
lam = min(l1, key=lambda value: abs(l1[value][0] - 16))
model = l1[lam][2]
atoms = decoder_basis(model).T  # (128, 64)
usage = (np.abs(model.transform(X_test)) > 1e-6).mean(axis=0)
order = np.argsort(-usage)[:32]
fig, axes = plt.subplots(4, 8, figsize=(8, 4.4))
for ax, unit in zip(axes.ravel(), order, strict=True):
    atom = atoms[unit].reshape(8, 8)
    ax.imshow(atom, cmap="RdBu_r", vmin=-np.abs(atom).max(), vmax=np.abs(atom).max())
    ax.set_title(f"{usage[unit]:.0%}", fontsize=7)
    ax.set_axis_off()
fig.suptitle(f"L1 dictionary atoms (λ={lam:.0e}); share of images using each")
fig.tight_layout()

# %%
# Top-k, with and without AuxK
# ----------------------------
# 512 units, k = 8 active per image. Without a remedy many units never make the top k
# again once they fall behind; AuxK (weighted by ``sparsity_weight``; 0 turns it off) gives
# units that have not fired for 2,048 rows a loss of their own: their largest activations
# must explain what the live code left unexplained. On MNIST with 1,024 units and k = 32 it
# took dead units from 61.2 % to 2.0 % (``benchmarks/quality.py --sections sparse``). On
# these 64-pixel images, with 8 times more units than pixels, the printed figures say how
# much it revives here: far fewer units have anything left to explain.
topk = {}
for label, weight in (("no AuxK", 0.0), ("AuxK", 1 / 8)):
    ae = Autoencoder(
        code_dim=512,
        hidden=(),
        sparsity="topk",
        sparsity_k=8,
        sparsity_weight=weight,
        epochs=epochs,
        random_state=0,
    ).fit(X_train)
    codes = ae.transform(X_test)
    topk[label] = (sparsity_stats(codes), ae.reconstruction_error(X_test).mean(), codes)
for label, (stats, err, _) in topk.items():
    print(
        f"top-k {label:>8}: dead units {stats['dead_fraction']:.1%}, L0 {stats['l0']:.1f}, "
        f"error {err:.3f}"
    )

fig, axes = plt.subplots(1, 2, figsize=(9, 3), sharey=True)
for ax, (label, (stats, _, codes)) in zip(axes, topk.items(), strict=True):
    ax.bar(np.arange(codes.shape[1]), np.sort((codes > 1e-6).mean(axis=0))[::-1], width=1.0)
    ax.set(title=f"{label}: {stats['dead_fraction']:.0%} dead", xlabel="unit (by use)")
axes[0].set_ylabel("share of images using it")
fig.tight_layout()
plt.show()
