"""
Resuming after Ctrl-C
=====================

With ``checkpoint_dir`` set, an interrupted fit (Ctrl-C) saves a checkpoint at the last
finished optimiser step, and ``fit(X, resume=True)`` continues from it. On the CPU, with a
fixed ``random_state``, the resumed run ends **bit for bit** where an uninterrupted run would
have: same weights, same codes, same loss history.

To interrupt deterministically, a small callback raises ``KeyboardInterrupt`` (what Ctrl-C
raises in Python) at a chosen optimiser step, in the middle of an epoch.

``AEKIT_DOCS_QUICK=1`` (how the test suite runs this gallery) trains for fewer epochs.
"""

import os
import tempfile

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

from aekit import Autoencoder, Callback

QUICK = os.environ.get("AEKIT_DOCS_QUICK", "") not in ("", "0")
X = load_digits().data / 16.0
settings = {"code_dim": 8, "epochs": 8 if QUICK else 40, "random_state": 0}


class CtrlCAt(Callback):
    """Raise KeyboardInterrupt, as Ctrl-C does, after optimiser step ``step``."""

    def __init__(self, step):
        self.step = step

    def on_batch_end(self, trainer, **kwargs):
        """Called by the trainer after every optimiser step."""
        if trainer.step == self.step:
            raise KeyboardInterrupt


# %%
# The uninterrupted run, then the interrupted one
# -----------------------------------------------
reference = Autoencoder(**settings).fit(X)

folder = tempfile.mkdtemp()
stop_at = 60  # epoch 3's middle: 1,617 training rows are 26 batches an epoch
try:
    Autoencoder(**settings, checkpoint_dir=folder).fit(X, callbacks=(CtrlCAt(stop_at),))
except KeyboardInterrupt:
    print(f"interrupted at step {stop_at}; checkpoints: {sorted(os.listdir(folder))[-1]}")

# %%
# Resume, in a new estimator (as a new process would), and compare.
resumed = Autoencoder(**settings, checkpoint_dir=folder).fit(X, resume=True)
same_codes = np.array_equal(resumed.transform(X), reference.transform(X))
same_history = resumed.history_.train_loss == reference.history_.train_loss
diff = np.abs(resumed.transform(X) - reference.transform(X)).max()
print(
    f"resumed == uninterrupted: codes {same_codes} (max |difference| {diff}), "
    f"loss history {same_history}"
)

fig, ax = plt.subplots(figsize=(6, 3.5))
epochs = np.arange(1, len(reference.history_) + 1)
ax.plot(epochs, reference.history_.train_loss, "o-", lw=3, alpha=0.4, label="uninterrupted")
ax.plot(epochs, resumed.history_.train_loss, "x--", color="k", label="interrupted + resumed")
ax.axvline(stop_at / 26 + 1, color="tab:red", ls=":", label="Ctrl-C")
ax.set(xlabel="epoch", ylabel="training loss")
ax.legend()
fig.tight_layout()
plt.show()
