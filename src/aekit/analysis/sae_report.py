"""The report of a sparse autoencoder for interpretability: the field's figures, one HTML page.

:func:`build_sae_report` measures a fitted :class:`~aekit.sae.SparseAutoencoder` on rows of
activations by the field's names (:meth:`~aekit.sae.SparseAutoencoder.evaluate`): explained
variance and FVU, L0, the share of dead latents (never active on these rows), shrinkage
(output norm over input norm) and, given the true feature directions (and which of them fire
in each row), MCC, uniqueness and F1. It draws the latents' activity and the training
history, and returns a :class:`~aekit.analysis.report.Report` (``index.html`` and
``summary.json``, as ``aekit report`` writes for an autoencoder).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..config.sae import BATCHTOPK_FAMILY
from . import plots
from .report import Report, Section

__all__ = ["SAE_FIGURES", "build_sae_report", "sae_figures_text"]

_MAX_ROWS_DRAWN = 5000  # rows whose codes the activity figure draws

# The figures' names, in the report's order, with how each reads.
SAE_FIGURES = {
    "explained_variance": "explained variance",
    "fvu": "FVU (fraction of variance unexplained)",
    "l0": "L0 (active latents per row)",
    "dead_fraction": "dead latents (share never active on these rows)",
    "shrinkage": "shrinkage (output norm / input norm)",
    "mcc": "MCC (decoder rows matched one to one with the true features)",
    "f1": "F1 (each latent as a detector of its closest true feature)",
    "uniqueness": "uniqueness (share of true features some latent matches best)",
}


def sae_figures_text(figures: dict[str, float]) -> str:
    """The figures present in ``figures`` as one line: ``name value; ...``."""
    parts = []
    for key, words in SAE_FIGURES.items():
        if key in figures:
            value = figures[key]
            shown = f"{100 * value:.1f}%" if key == "dead_fraction" else f"{value:.4g}"
            parts.append(f"{words} {shown}")
    return "; ".join(parts) + "."


def build_sae_report(
    sae: Any,
    X: Any,
    *,
    true_features: Any = None,
    true_codes: Any = None,
    title: str = "aekit SAE report",
    notes: list[str] | None = None,
) -> Report:
    """Measure a fitted :class:`~aekit.sae.SparseAutoencoder` on ``X``; draw the figures.

    Parameters
    ----------
    sae : SparseAutoencoder
        Fitted.
    X : array-like of shape (n_rows, n_features)
        Activations.
    true_features : array-like of shape (n_true, n_features), optional
        Known feature directions: adds MCC and uniqueness.
    true_codes : array-like of shape (n_rows, n_true), optional
        Which true features fire in each row of ``X`` (> 0): adds F1 (needs
        ``true_features``).
    title : str
    notes : list of str, optional
        Remarks shown at the top.

    Returns
    -------
    Report
        ``summary`` holds the figures under ``"sae"``, the architecture and sizes.
    """
    plots.require_matplotlib()
    X = np.asarray(X, dtype=np.float32)
    figures = sae.evaluate(X, true_features=true_features, true_codes=true_codes)
    config = sae.module_.config
    facts = {
        "architecture": config.architecture,
        "latents": f"{config.code_dim:,} over {sae.n_features_in_:,} inputs",
        "rows measured": f"{len(X):,}",
        "training steps": f"{sae.n_steps_:,}",
    }
    if config.architecture in ("topk", *BATCHTOPK_FAMILY):
        facts["k"] = str(config.k)
    sections = [
        Section(
            "Sparse autoencoder figures",
            f"On these {len(X):,} rows: "
            + sae_figures_text(figures)
            + ("" if true_features is not None else " (no true features given: no MCC or F1)"),
        )
    ]
    drawn = X[:_MAX_ROWS_DRAWN]
    sections.append(
        Section(
            "Latent activity",
            f"The active code values and each latent's share of rows active, on the first "
            f"{len(drawn):,} rows: a dead latent is a bar of zero height at the right.",
            plots.code_activity(sae.transform(drawn)),
        )
    )
    if sae.history_:
        sections.append(
            Section(
                "Training",
                "Explained variance and L0 over the training rows, as history_ records them.",
                plots.sae_history(sae.history_),
            )
        )
    summary = {
        "architecture": config.architecture,
        "code_dim": config.code_dim,
        "n_features": sae.n_features_in_,
        "rows": len(X),
        "sae": figures,
    }
    return Report(title, facts, sections, summary, list(notes or []))
