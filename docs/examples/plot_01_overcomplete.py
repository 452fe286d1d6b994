"""
Overcomplete vs undercomplete codes
===================================

An autoencoder whose code is narrower than its input (*undercomplete*) has to compress: it
can only keep what the digits share. Once the code is as wide as the input (*overcomplete*,
past 64 units for 8×8 images) nothing in the architecture stops it from fitting each
training image on its own. This example grows the code from a few units to 256 on a small
training set (150 images) and compares the error on those training images with the error on
held-out ones: the gap between the two is what the model memorised rather than learned.
Input noise (a denoising autoencoder, here masking 30 % of the pixels) and an L1 sparsity
penalty are the textbook constraints on a wide code; their gaps are shown beside the plain
model's.

``AEKIT_DOCS_QUICK=1`` (how the test suite runs this gallery) tries fewer code sizes and
trains for fewer epochs.
"""

import os
import warnings

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits

from aekit import Autoencoder
from aekit.analysis import split_rows

QUICK = os.environ.get("AEKIT_DOCS_QUICK", "") not in ("", "0")
X = load_digits().data / 16.0  # 1797 images of 8×8 pixels in [0, 1]
X_train, X_test = split_rows(X, 0.3, random_state=0)
X_train = X_train[:150]  # a small training set makes memorising visible

# %%
# The same network (one hidden layer of 256 units) at each code size, trained from a random
# start with no validation split and no early stopping, so that what it can do is what it
# does. aekit warns about the plain overcomplete ones (they can learn the identity); the
# warnings are collected here and the first one printed.
codes = [8, 64, 256] if QUICK else [4, 8, 16, 32, 64, 128, 256]
variants = {
    "plain": {},
    "denoising (masking 30 %)": {"noise": "masking", "noise_level": 0.3},
    "sparse (L1)": {"sparsity": "l1", "sparsity_weight": 3e-3},
}
common = {"hidden": (256,), "epochs": 150 if QUICK else 400, "val_fraction": 0, "init": "random"}
results, models = {}, {}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for name, extra in variants.items():
        for k in codes:
            ae = Autoencoder(code_dim=k, random_state=0, **common, **extra).fit(X_train)
            train, test = ae.reconstruction_error(X_train), ae.reconstruction_error(X_test)
            results[name, k] = (train.mean(), test.mean())
            models[name, k] = (ae, train, test)
print(f"aekit warned {len(caught)} times; the first: {caught[0].message}")

print(f"{'model':>25} {'code':>5} {'train':>7} {'held-out':>9} {'held-out / train':>17}")
for (name, k), (train, test) in results.items():
    print(f"{name:>25} {k:>5} {train:>7.3f} {test:>9.3f} {test / train:>17.1f}")

# %%
# Errors as the code grows
# ------------------------
# Solid lines: the training images; dashed: held-out images. As the code widens, the plain
# model's training error falls much faster than its held-out error: the gap grows past the
# input size. Masking noise keeps the gap near 3 at every code size; this L1 weight does not
# stop the memorising.
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for i, name in enumerate(variants):
    colour = f"C{i}"
    axes[0].plot(codes, [results[name, k][0] for k in codes], "o-", color=colour, label=name)
    axes[0].plot(codes, [results[name, k][1] for k in codes], "o--", color=colour)
    ratio = [results[name, k][1] / results[name, k][0] for k in codes]
    axes[1].plot(codes, ratio, "o-", color=colour, label=name)
for ax in axes:
    ax.axvline(64, color="grey", ls=":", lw=1)
    ax.set(xscale="log", xlabel="code size (input: 64 pixels)")
axes[0].set(yscale="log", ylabel="mean squared error per image", title="training and held-out")
axes[1].set(ylabel="held-out error / training error", title="the gap")
axes[1].legend(fontsize=8)
fig.tight_layout()

# %%
# The memorising model, shown
# ---------------------------
# The widest plain model on eight training images (top two rows: image, reconstruction)
# and on eight held-out images (bottom two rows); the number above each reconstruction is
# its squared error.
ae, train_err, test_err = models["plain", codes[-1]]
fig, axes = plt.subplots(4, 8, figsize=(8, 4.8))
for block, (images, errors, label) in enumerate(
    [(X_train, train_err, "training"), (X_test, test_err, "held-out")]
):
    recon = ae.reconstruct(images[:8])
    for c in range(8):
        for r, picture in ((2 * block, images[c]), (2 * block + 1, recon[c])):
            axes[r, c].imshow(picture.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
            axes[r, c].set_axis_off()
        axes[2 * block + 1, c].set_title(f"{errors[c]:.2f}", fontsize=7)
    axes[2 * block, 0].set_title(f"{label} images", loc="left", fontsize=9)
fig.suptitle(f"plain autoencoder, code {codes[-1]}: reconstructions and their errors")
fig.tight_layout()
plt.show()
