"""Sparse autoencoders for interpretability: BatchTopK, JumpReLU, Matryoshka, SAELens folders.

API summary (stable; the benchmark and the docs build on it)::

    from aekit.sae import SparseAutoencoder

    sae = SparseAutoencoder("batchtopk", code_dim=4096, k=32, batch_size=4096, lr=3e-4,
                            normalize=True, checkpoint_dir="run/")   # every field: SAEConfig
    sae.fit(X)                      # ndarray / memmap / path (.npy, parquet, folder or glob of
                                    # .npy, parquet or .safetensors shards) / any iterable of
                                    # arrays / a function returning one
    sae.fit(X, resume=True)         # continue from checkpoint_dir's newest checkpoint
    sae.fit(X, stop_after=1000)     # stop at step 1000 (checkpointed), resume later
    sae.fit(X, true_features=F)     # + mcc, uniqueness in history_[-1]
    codes = sae.transform(X)                  # dense ndarray (n_rows, code_dim)
    codes = sae.transform(X, sparse=True)     # scipy.sparse CSR
    X_hat = sae.inverse_transform(codes); X_hat = sae.reconstruct(X)
    sae.evaluate(X, true_features=F, true_codes=C)
        # {explained_variance, fvu, l0, dead_fraction, shrinkage, mcc, uniqueness, f1}
    sae.history_                    # list of dicts: step, rows, loss, mse, explained_variance,
                                    # fvu, l0, dead_fraction, shrinkage, aux_loss, lr, threshold,
                                    # seconds, rows_per_s
    sae.components_, sae.threshold_, sae.scale_, sae.module_ (W_enc [d_in, d_sae], W_dec
                                    # [d_sae, d_in], b_enc, b_dec, SAELens's layout)
    sae.save("folder")                        # aekit: sae.json + sae.safetensors
    sae.save("folder", format="saelens")      # cfg.json + sae_weights.safetensors
    SparseAutoencoder.load("folder"); aekit.load("folder")   # either format
    from aekit.sae.metrics import mcc, explained_variance, l0, dead_fraction, shrinkage

Architectures (``architecture=``): ``"batchtopk"`` (trained with BatchTopK, served as a
JumpReLU with the threshold learned in training; saved to SAELens as ``jumprelu``),
``"jumprelu"`` (per-latent learned thresholds, straight-through L0 penalty
``sparsity_coef``), ``"matryoshka"`` (BatchTopK with nested prefixes each reconstructing,
widths ``matryoshka_widths``), ``"topk"`` and ``"l1"``. The code lives in
:mod:`aekit.model.sae_codes` and :mod:`aekit.model.sae_dictionary`; the defaults in
:mod:`aekit.config.sae`.

Why a family and an estimator of its own rather than options of
:class:`~aekit.Autoencoder`: an SAE shares almost nothing with the hourglass beyond the word
"sparse". It is one linear encoder and one unit-norm dictionary in SAELens's layout (no
hidden layers, no input scaling per feature, no validation split, no "auto" rules fitted to
a table), trained on unscaled activations from streams whose length may be unknown, for a
budget in rows, judged by the field's figures, and exchanged in the field's file format.
As options of ``Autoencoder`` each of those would be a branch through the hourglass, its
trainer and its model file; here the architectures are options of one estimator (they
compose: Matryoshka is BatchTopK plus prefixes, AuxK applies to the whole top-k family), as
DESIGN.md asks, and the family sits between ``training`` (whose checkpoint files it reuses)
and ``estimator``. ``Autoencoder(sparsity="topk"/"l1")`` keeps serving sparse codes of
tables and images.

Modules: :mod:`~aekit.sae.streams` (where batches come from), :mod:`~aekit.sae.objective`
(the loss of a step), :mod:`~aekit.sae.loop` (the training loop, resumable bit for bit),
:mod:`~aekit.sae.metrics` (the field's figures), :mod:`~aekit.sae.files` (aekit's and
SAELens's folders), :mod:`~aekit.sae.estimator` (:class:`SparseAutoencoder`).
"""

from .estimator import SparseAutoencoder
from .streams import activation_source

__all__ = ["SparseAutoencoder", "activation_source"]
