"""
A linear autoencoder finds PCA's subspace
=========================================

With no hidden layer, no non-linearity and squared error, an autoencoder's best
reconstruction is PCA's: its decoder spans the subspace of the first ``k`` principal
components (not necessarily the components themselves). Training from a random start shows
it being found: the principal angles between the decoder's columns and PCA's components fall
towards zero, pass after pass.

How fast depends on the **eigengap** λ\\ :sub:`k` / λ\\ :sub:`k+1`: the ratio of the
variance along the k-th component to the next. A large gap makes the k-th direction stand
out and it is found quickly; a gap near 1 leaves it barely defined. Two synthetic datasets
that differ only in that gap show the effect, and then the digits.

``AEKIT_DOCS_QUICK=1`` (how the test suite runs this gallery) trains for fewer passes.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA

from aekit import Autoencoder
from aekit.analysis import decoder_basis, principal_angles

QUICK = os.environ.get("AEKIT_DOCS_QUICK", "") not in ("", "0")
passes = 15 if QUICK else 60


def angles_over_training(X, k):
    """Largest and mean principal angle to PCA's k-subspace after each pass of training."""
    target = PCA(n_components=k).fit(X).components_.T
    ae = Autoencoder(
        code_dim=k,
        hidden=(),
        activation="identity",
        init="random",
        scaling="none",
        batch_size=64,
        lr=3e-3,
        random_state=0,
    )
    largest, mean = [], []
    for _ in range(passes):
        ae.partial_fit(X)  # one shuffled pass, the optimiser continuing
        theta = principal_angles(decoder_basis(ae), target)
        largest.append(theta.max())
        mean.append(theta.mean())
    return np.array(largest), np.array(mean)


# %%
# The eigengap's effect
# ---------------------
# 2,000 rows in 20 dimensions with variances 9, 6, 4 along three directions, then either a
# low floor (eigengap 4 / 0.25 = 16) or one more direction just below the third
# (eigengap 4 / 3.6 ≈ 1.1).
rng = np.random.default_rng(0)
basis, _ = np.linalg.qr(rng.normal(size=(20, 20)))
curves = {}
for label, fourth in (("eigengap 16", 0.25), ("eigengap 1.1", 3.6)):
    variances = np.array([9.0, 6.0, 4.0, fourth] + [0.25] * 16)
    X = (rng.normal(size=(2000, 20)) * np.sqrt(variances)) @ basis.T
    curves[label] = angles_over_training(X, 3)

digits = load_digits().data / 16.0
spectrum = PCA().fit(digits).explained_variance_
k = 8
curves[f"digits, k={k} (eigengap {spectrum[k - 1] / spectrum[k]:.2f})"] = angles_over_training(
    digits, k
)

print(f"{'largest angle to PCA, degrees':>38}  pass 1  pass 10  pass {passes}")
for label, (largest, _) in curves.items():
    print(f"{label:>38}  {largest[0]:6.2f}  {largest[9]:7.2f}  {largest[-1]:7.2f}")

# %%
# The angles
# ----------
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharex=True)
for label, (largest, mean) in curves.items():
    axes[0].plot(np.arange(1, passes + 1), largest, label=label)
    axes[1].plot(np.arange(1, passes + 1), mean, label=label)
axes[0].set(title="largest principal angle", ylabel="degrees", yscale="log")
axes[1].set(title="mean principal angle", yscale="log")
for ax in axes:
    ax.set_xlabel("passes over the data")
axes[1].legend(fontsize=8)
fig.tight_layout()
plt.show()
