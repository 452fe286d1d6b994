"""
Choosing the code size with a Pipeline and GridSearchCV
=======================================================

:class:`aekit.Autoencoder` is a scikit-learn transformer, so it goes into a ``Pipeline`` and
its parameters into ``GridSearchCV`` like ``PCA``'s. Two searches over the code size:

- on its own, scored by ``Autoencoder.score`` (minus the mean reconstruction error): a wider
  code always reconstructs better, so this search picks the largest code offered;
- as the features of a classifier, scored by accuracy: the search picks the code size whose
  codes predict the digits' labels best, a question about the task rather than about
  reconstruction.

``AEKIT_DOCS_QUICK=1`` (how the test suite runs this gallery) searches fewer sizes with fewer
epochs.
"""

import os

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline

from aekit import Autoencoder

QUICK = os.environ.get("AEKIT_DOCS_QUICK", "") not in ("", "0")
digits = load_digits()
X_train, X_test, y_train, y_test = train_test_split(
    digits.data / 16.0, digits.target, test_size=0.3, random_state=0
)
codes = [2, 4, 8, 16] if QUICK else [2, 4, 8, 16, 24]
ae = Autoencoder(epochs=5 if QUICK else 20, random_state=0)

# %%
# Reconstruction alone
# --------------------
search = GridSearchCV(ae, {"code_dim": codes}, cv=3).fit(X_train)
recon = -search.cv_results_["mean_test_score"]
print("reconstruction error by code size:", dict(zip(codes, recon.round(3).tolist(), strict=True)))
print("best by reconstruction:", search.best_params_)

# %%
# Codes as a classifier's features
# --------------------------------
pipe = Pipeline([("ae", ae), ("clf", LogisticRegression(max_iter=2000))])
search = GridSearchCV(pipe, {"ae__code_dim": codes}, cv=3).fit(X_train, y_train)
accuracy = search.cv_results_["mean_test_score"]
print(
    "cross-validated accuracy by code size:",
    dict(zip(codes, accuracy.round(3).tolist(), strict=True)),
)
print(f"best: {search.best_params_}, held-out accuracy {search.score(X_test, y_test):.3f}")

fig, ax1 = plt.subplots(figsize=(6.5, 3.8))
ax1.plot(codes, recon, "o-", color="tab:red")
ax1.set(xlabel="code size", ylabel="reconstruction error (CV)", xscale="log")
ax2 = ax1.twinx()
ax2.plot(codes, accuracy, "s-", color="tab:blue")
ax2.axvline(search.best_params_["ae__code_dim"], color="tab:blue", ls=":")
ax2.set_ylabel("classifier accuracy (CV)", color="tab:blue")
fig.tight_layout()
plt.show()
