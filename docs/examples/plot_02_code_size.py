"""
Choosing the code size
======================

How many code units does a dataset need? Plot the held-out reconstruction error against the
code size, for the autoencoder and for PCA, measured alike (:func:`aekit.analysis.measure`:
the same held-out rows, the same scaled space). Where the curve flattens, more units buy
little. The gap between the two curves is what the nonlinear code buys: "PCA needs N
components to match the autoencoder's k".

``AEKIT_DOCS_QUICK=1`` (how the test suite runs this gallery) trains for fewer epochs.
"""

import os

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits

from aekit import Autoencoder
from aekit.analysis import measure, split_rows

QUICK = os.environ.get("AEKIT_DOCS_QUICK", "") not in ("", "0")
X = load_digits().data / 16.0
X_train, X_test = split_rows(X, 0.2, random_state=0)

# %%
# One default autoencoder per code size; PCA's whole error curve comes from one fit.
codes = [2, 4, 8, 16] if QUICK else [1, 2, 4, 8, 12, 16, 24, 32]
found = {}
for k in codes:
    ae = Autoencoder(code_dim=k, epochs=25 if QUICK else "auto", random_state=0).fit(X_train)
    found[k] = measure(ae, X_train, X_test, max_components=64)

pca_k, pca_err = found[codes[0]].pca_components, found[codes[0]].pca_errors
print(f"{'code':>5} {'AE':>8} {'PCA':>8} {'AE/PCA':>7}  PCA components to match")
for k, m in found.items():
    match = m.components_to_match
    print(f"{k:>5} {m.ae_error:>8.3f} {m.pca_error:>8.3f} {m.ratio:>7.3f}  {match or '> 64'}")

# %%
# The curves
# ----------
# Each arrow goes from an autoencoder's code size to the number of PCA components that
# reconstruct the held-out digits as well.
fig, ax = plt.subplots(figsize=(7, 4.2))
ax.plot(pca_k, pca_err, "-", color="tab:grey", label="PCA")
ax.plot(codes, [found[k].ae_error for k in codes], "o-", color="tab:blue", label="autoencoder")
for k, m in found.items():
    if m.components_to_match:
        ax.annotate(
            "",
            xy=(m.components_to_match, m.ae_error),
            xytext=(k, m.ae_error),
            arrowprops={"arrowstyle": "->", "color": "tab:blue", "alpha": 0.5},
        )
ax.set(xscale="log", xlabel="code size / PCA components", ylabel="held-out squared error")
ax.legend()
fig.tight_layout()
plt.show()
