"""The model report: what a fitted autoencoder does on a data file, as one HTML page.

:func:`build_report` measures (held-out error against PCA, reconstructions, a 2-D map of the
codes, per-feature error, code sparsity) and draws the figures; :meth:`Report.write` saves a
self-contained ``index.html`` (every image embedded as a PNG data URI, no script, nothing
fetched) and the numbers as ``summary.json``.
"""

from __future__ import annotations

import base64
import html
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..data.images import drawing_shape
from ..errors import DataError
from ..files.atomic import atomic_files
from ..files.core import json_bytes
from . import plots
from .measurement import measure, pca_reconstruction, sparsity_stats

__all__ = ["Report", "Section", "build_report"]

_MAX_POINTS = 5000  # rows in the code map
_N_EXAMPLES = 10  # rows shown as originals vs reconstructions
_PCA_CURVE = 32  # PCA components drawn at least (more when the code is wider)

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 960px; margin: 2em auto; color: #222;
       padding: 0 1em; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; } td, th { padding: 2px 12px 2px 0; text-align: left; }
img { max-width: 100%; height: auto; } .note { background: #fff6d5; padding: .5em .8em; }
"""


@dataclass
class Section:
    """One part of the report: a heading, a paragraph and an optional figure."""

    title: str
    text: str
    png: bytes | None = None


@dataclass
class Report:
    """A report's facts, sections and numbers (see :func:`build_report`)."""

    title: str
    facts: dict[str, str]
    sections: list[Section]
    summary: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def html(self) -> str:
        """The page: self-contained HTML5, images as base64 PNG data URIs."""
        esc = html.escape
        parts = [
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">',
            f'<link rel="icon" href="data:,">\n<title>{esc(self.title)}</title>',
            f"<style>{_CSS}</style>\n</head>\n<body>\n<h1>{esc(self.title)}</h1>",
        ]
        parts += [f'<p class="note">{esc(note)}</p>' for note in self.notes]
        rows = "".join(
            f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in self.facts.items()
        )
        parts.append(f"<table>{rows}</table>")
        for section in self.sections:
            parts.append(f"<section>\n<h2>{esc(section.title)}</h2>\n<p>{esc(section.text)}</p>")
            if section.png is not None:
                data = base64.b64encode(section.png).decode()
                parts.append(f'<img alt="{esc(section.title)}" src="data:image/png;base64,{data}">')
            parts.append("</section>")
        parts.append(f"<footer><p>aekit {esc(__version__)}</p></footer>\n</body>\n</html>\n")
        return "\n".join(parts)

    def write(self, folder: str | os.PathLike[str]) -> Path:
        """Write ``index.html`` and ``summary.json`` into ``folder``; return the page's path."""
        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise DataError(f"cannot write a report to {folder}: it exists and is not a folder")
        with atomic_files(folder) as put:  # both or neither
            put("summary.json", json_bytes(self.summary, sort_keys=False, strict=True))
            put("index.html", self.html().encode())
        return folder / "index.html"


def build_report(
    estimator: Any,
    X: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    holdout: np.ndarray | None = None,
    image_shape: tuple[int, ...] | str | None = "auto",
    title: str = "aekit report",
    notes: list[str] | None = None,
    feature_names: list[str] | None = None,
) -> Report:
    """Measure a fitted :class:`~aekit.Autoencoder` on ``X`` and draw the report's figures.

    Parameters
    ----------
    estimator : Autoencoder
        Fitted.
    X : ndarray or DataFrame of shape (n_rows, n_features)
        The data; with ``holdout``, the very rows the model was fitted from. A DataFrame for
        a model fitted on a table with categorical (text) columns.
    labels : ndarray of shape (n_rows,), optional
        Colours of the code map.
    holdout : ndarray of int, optional
        Rows of ``X`` the model did not train on: the autoencoder and PCA (fitted on the
        other rows) are compared there. Without it both are measured on all of ``X``, PCA
        fitted on those same rows, which says so in the report.
    image_shape : (int, int), (1, int, int), "auto" or None, default="auto"
        Draw rows as images of this shape (see :func:`aekit.data.images.drawing_shape`).
    title : str
        Page title.
    notes : list of str, optional
        Remarks shown at the top (e.g. that the data differs from the fit-time data).
    feature_names : list of str, optional
        The columns' names, for the axes and ``summary.json`` (default: the model's
        ``feature_names_in_``, or a categorical table's columns; else features are numbered).

    Tables (rows not drawn as images) are plotted in the model's scaled space, where each
    feature weighs by its spread, not its units; a categorical column's error is the sum
    over its one-hot block.

    Returns
    -------
    Report
    """
    plots.require_matplotlib()
    n_rows, n_features = X.shape
    if labels is not None and len(labels) != n_rows:
        raise DataError(f"{len(labels)} labels for {n_rows} rows")
    config = estimator.model_config_
    layout = getattr(estimator, "table_layout_", None)
    names = _feature_names(estimator, n_features, feature_names)
    if config.image_shape is not None and image_shape == "auto":
        image_shape = tuple(config.image_shape[1:])  # the convolutional model's own shape
    shape = (
        None
        if layout is not None
        else drawing_shape(n_features, image_shape, pixels=config.output == "sigmoid")
    )
    code_dim = int(config.code_dim)
    notes = list(notes or [])
    if holdout is not None:
        test_idx = np.asarray(holdout, dtype=np.int64)
        train_idx = np.setdiff1d(np.arange(n_rows), test_idx)
        where = f"the {len(test_idx)} held-out rows the model did not train on"
    else:
        train_idx = test_idx = np.arange(n_rows)
        where = f"all {n_rows} rows, PCA fitted on the same rows (no held-out split known)"
    X_train, X_test = _rows(X, train_idx), _rows(X, test_idx)
    found = measure(estimator, X_train, X_test, max_components=max(_PCA_CURVE, 2 * code_dim))
    ae_error, pca_same = found.ae_error, found.pca_error
    ks, pca_errors = found.pca_components, found.pca_errors
    loss = plots.loss_text(estimator.train_config_.loss, bool(config.categorical_blocks))
    summary: dict[str, Any] = {
        "n_rows": n_rows,
        "n_features": n_features,
        "feature_names": names,
        "code_dim": code_dim,
        "measured_on": where,
        "error_unit": "per-row sum of squared errors in the model's scaled space",
        "loss": loss,
        "n_test": len(test_idx),
        "ae_error": ae_error,
        "pca_error": pca_same,
        "pca_components_to_match": found.components_to_match,
        "pca_curve": {"n_components": ks.tolist(), "error": pca_errors.tolist()},
    }
    history = estimator.history_
    facts = {
        "data": f"{n_rows} rows × {n_features} features",
        "model": _describe(estimator),
        "training": f"{len(history)} epochs, stopped by {history.stop_reason or '?'}, "
        f"kept epoch {history.best_epoch}",
        "training loss": loss,
        "autoencoder error": f"{ae_error:.4g} (mean per-row squared error in the model's "
        f"scaled space, on {where})",
        "PCA error, same code size": "-" if pca_same is None else f"{pca_same:.4g}",
    }
    sections = []
    if len(history):
        sections.append(
            Section(
                "Loss curves",
                f"Training and validation loss per epoch ({loss}); {_kept_text(history)}",
                plots.loss_curves(
                    history,
                    estimator.train_config_.loss,
                    categorical=bool(config.categorical_blocks),
                ),
            )
        )
    match_text = (
        f"PCA needs {summary['pca_components_to_match']} components to do as well."
        if summary["pca_components_to_match"]
        else f"PCA with up to {len(ks)} components does not do as well."
    )
    sections.append(
        Section(
            "Autoencoder vs PCA",
            f"Mean per-row squared error in the model's scaled space (PCA fitted on the same "
            f"scaled rows) on {where}: autoencoder {ae_error:.4g} with a "
            f"{code_dim}-number code, PCA {'-' if pca_same is None else f'{pca_same:.4g}'} "
            f"with {code_dim} components. {match_text}",
            plots.error_vs_code_size((ks, pca_errors), ([code_dim], [ae_error])),
        )
    )
    scaled = estimator.scale_rows(X_test)
    scaled_recon = estimator.reconstruct_scaled(X_test)
    if shape is None:
        sections.append(_profiles(scaled, scaled_recon, _encoded_names(layout, names), summary))
    else:
        recon = estimator.unscale_rows(scaled_recon)
        sections.append(_examples(estimator, X_train, X_test, recon, shape, code_dim))
    sections.append(_code_map(estimator, X, labels))
    per_feature = _per_column(np.square(scaled - scaled_recon), config)
    summary["feature_error"] = per_feature.tolist()
    grouped = " (a categorical column: summed over its one-hot block)" if layout else ""
    sections.append(
        Section(
            "Error per feature",
            f"Mean squared reconstruction error of each feature (scaled space){grouped} on "
            f"{where}.{_worst(per_feature, names)}",
            plots.feature_errors(per_feature, shape, None if shape else names),
        )
    )
    if estimator.model_config_.sparsity is not None:
        codes = estimator.transform(X_test)
        stats = sparsity_stats(codes)
        summary["sparsity"] = stats
        facts["dead code units"] = f"{stats['dead_units']} of {code_dim}"
        sections.append(
            Section(
                "Code activity",
                f"{stats['l0']:.1f} active units per row on average; {stats['dead_units']} of "
                f"{code_dim} units never active on these rows (dead).",
                plots.code_activity(codes),
            )
        )
    return Report(title, facts, sections, summary, notes)


def _describe(estimator: Any) -> str:
    cfg = estimator.model_config_
    hidden = "-".join(str(h) for h in cfg.hidden) or "none"
    text = f"{cfg.input_dim} → hidden {hidden} → code {cfg.code_dim}, {cfg.activation}"
    if cfg.sparsity:
        text += f", sparsity {cfg.sparsity}"
    if cfg.noise:
        text += f", denoising ({cfg.noise} {cfg.noise_level:g})"
    return text


def _rows(X: Any, index: np.ndarray) -> Any:
    """Rows of an array or a DataFrame (by position)."""
    return X.iloc[index] if hasattr(X, "iloc") else np.asarray(X[index])


def _feature_names(estimator: Any, n_features: int, given: list[str] | None) -> list[str] | None:
    """The columns' names: given, the model's ``feature_names_in_``, its table's, or None."""
    if given is None:
        given = getattr(estimator, "feature_names_in_", None)
    if given is None and getattr(estimator, "table_layout_", None) is not None:
        given = [c.name for c in estimator.table_layout_.columns]
    if given is None:
        return None
    names = [str(n) for n in given]
    if len(names) != n_features:
        raise DataError(f"{len(names)} feature names for {n_features} features")
    return names


def _encoded_names(layout: Any, names: list[str] | None) -> list[str] | None:
    """Names of the model's columns: a categorical column's block as ``name=category``."""
    if layout is None:
        return names
    return [
        str(c.name) if c.categories is None else f"{c.name}={value}"
        for c in layout.columns
        for value in (c.categories or (None,))
    ]


def _per_column(squared: np.ndarray, config: Any) -> np.ndarray:
    """Mean squared error of each input column over the observed rows, blocks summed."""
    with warnings.catch_warnings():  # a column missing in every row: NaN, said as such
        warnings.simplefilter("ignore", RuntimeWarning)
        each = np.nanmean(squared, axis=0) if len(squared) else np.zeros(squared.shape[1])
    blocks = config.categorical_blocks
    if not blocks:
        return each
    from ..data.missing import groups_from_blocks  # (torch: imported when it is needed)

    groups = np.asarray(groups_from_blocks(config.input_dim, blocks))
    return np.bincount(groups, weights=each)


def _worst(errors: np.ndarray, names: list[str] | None, most: int = 5) -> str:
    """The features with the largest errors, by name (nothing without names)."""
    if not names or not np.isfinite(errors).any():
        return ""
    order = np.argsort(np.nan_to_num(errors, nan=-np.inf))[::-1][: min(most, len(names))]
    listed = ", ".join(f"{names[i]} {errors[i]:.3g}" for i in order)
    return f" Largest: {listed}."


def _kept_text(history: Any) -> str:
    """What the dotted line of the loss curves marks, and why that epoch was kept."""
    watched = any(r.get("val_error") is not None for r in history.records)
    if not watched:
        return "the dotted line marks the epoch whose weights were kept."
    text = (
        "right: the validation error (mean per-row squared error, scaled space), which "
        "early stopping watches whatever the loss, from the model before training (epoch 0); "
        "the dotted line marks the epoch whose weights were kept"
    )
    z = (history.initial or {}).get("best_epoch_z")
    if history.best_epoch == 0 and z is not None:
        return (
            f"{text}: the start, as the best epoch beat it by only {z:.2f} standard errors "
            "per validation row (within noise)."
        )
    return f"{text}, where it is lowest."


def _profiles(
    scaled: np.ndarray,
    scaled_recon: np.ndarray,
    names: list[str] | None,
    summary: dict[str, Any],
) -> Section:
    """A table's rows, original and reconstructed, in the model's scaled space."""
    show = np.unique(np.linspace(0, len(scaled) - 1, min(5, len(scaled))).astype(int))
    original, recon = scaled[show], scaled_recon[show]
    summary["examples"] = {
        "test_rows": show.tolist(),
        "columns": names,
        "scaled_original": np.where(np.isnan(original), None, original).tolist(),
        "scaled_reconstruction": recon.tolist(),
    }
    return Section(
        "Originals and reconstructions",
        f"{len(show)} rows' features, original and reconstructed, in the model's scaled space "
        "(each feature in units of its spread, so no column's units flatten the others'; a "
        "categorical column as its one-hot block against the predicted probabilities).",
        plots.row_profiles(original, recon, names),
    )


def _examples(
    estimator: Any,
    X_train: np.ndarray,
    X_test: np.ndarray,
    recon: np.ndarray,
    shape: tuple[int, int],
    code_dim: int,
) -> Section:
    pick = np.unique(np.linspace(0, len(X_test) - 1, min(_N_EXAMPLES, len(X_test))).astype(int))
    originals = X_test[pick]
    pca = estimator.unscale_rows(
        pca_reconstruction(estimator.scale_rows(X_train), estimator.scale_rows(originals), code_dim)
    )
    return Section(
        "Originals and reconstructions",
        f"Top: {len(pick)} rows; middle: the autoencoder's reconstructions; bottom: PCA's with "
        f"{code_dim} components.",
        plots.image_grid(
            [("original", originals), ("autoencoder", recon[pick]), ("PCA", pca)], shape
        ),
    )


def _code_map(estimator: Any, X: np.ndarray, labels: np.ndarray | None) -> Section:
    rng = np.random.default_rng(0)
    rows = np.sort(rng.permutation(len(X))[:_MAX_POINTS])
    codes = estimator.transform(_rows(X, rows))
    sub_labels = None if labels is None else np.asarray(labels)[rows]
    coloured = "" if labels is None else ", coloured by label"
    if codes.shape[1] == 1:
        points = np.column_stack([codes[:, 0], rng.uniform(-1, 1, len(codes))])
        text, axes = f"The 1-D code of {len(rows)} rows (vertical jitter){coloured}.", ("code", "")
    elif codes.shape[1] == 2:
        points = codes
        text, axes = f"The 2-D codes of {len(rows)} rows{coloured}.", ("code 1", "code 2")
    else:
        from sklearn.decomposition import PCA

        points = PCA(n_components=2, random_state=0).fit_transform(codes)
        text = (
            f"The {codes.shape[1]}-D codes of {len(rows)} rows, projected on their first two "
            f"principal components{coloured}."
        )
        axes = ("PC 1 of the codes", "PC 2 of the codes")
    text += " The axes frame the central 99% of the points."
    return Section(
        "Map of the codes", text, plots.code_map(points, sub_labels, xlabel=axes[0], ylabel=axes[1])
    )
