"""Figures as PNG bytes: loss curves, error vs code size, reconstructions, code maps.

Every function draws on its own ``matplotlib.figure.Figure`` (no pyplot, no global state,
the Agg renderer) and returns the PNG file's bytes, ready for a file or a data URI.
matplotlib is imported here only, when a figure is first drawn; without it
:func:`require_matplotlib` raises a one-line :class:`~aekit.ConfigError`.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..training.history import History

__all__ = [
    "code_activity",
    "code_map",
    "error_vs_code_size",
    "feature_errors",
    "image_grid",
    "loss_curves",
    "loss_text",
    "require_matplotlib",
    "row_profiles",
    "sae_history",
]

_MAX_NAMES = 40  # feature names on an axis at most (every k-th beyond)
_MAX_LEGEND = 20  # more distinct labels than this get a colour bar instead of a legend


def require_matplotlib() -> None:
    """Raise :class:`ConfigError` when matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError(
            "plots need matplotlib, a dependency of aekit: pip install 'matplotlib>=3.7'"
        ) from None


def _figure(width: float, height: float) -> Any:
    require_matplotlib()
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


_LOSS_WORDS = {"mse": "squared error", "bce": "binary cross-entropy"}


def loss_text(loss: str, categorical: bool = False) -> str:
    """The training loss in words, as the loss curves' axis and the report's caption say it.

    The trainer records ``train_loss`` and ``val_loss`` as the loss summed over a batch's
    entries divided by their number (rows × the model's columns, a one-hot column each), in
    the model's scaled space; categorical blocks add their cross-entropy to that sum.

    Parameters
    ----------
    loss : {"mse", "bce"}
        The model's ``train_config_.loss``.
    categorical : bool, default=False
        Whether the model has categorical (one-hot) blocks.

    Raises
    ------
    ConfigError
        For a loss aekit does not know.
    """
    if loss not in _LOSS_WORDS:
        raise ConfigError(f"no description of the loss {loss!r}: expected one of mse, bce")
    words = _LOSS_WORDS[loss]
    if categorical:
        words = f"{words} (numeric columns) + cross-entropy (categorical columns)"
    return f"{words}, mean per feature, scaled data"


def loss_curves(history: History, loss: str = "mse", categorical: bool = False) -> bytes:
    """Training and validation loss per epoch (log scale), the kept epoch marked.

    The panel's title names the loss (:func:`loss_text`). When the history records a
    validation error (``val_error``, the per-row squared error that early stopping watches,
    whatever the loss), a second panel draws it: the kept epoch is the one where it is
    lowest, epoch 0 being the model before training (``history.initial``).
    """
    epochs = [r["epoch"] for r in history.records]
    initial = history.initial or {}
    val_error = [r.get("val_error") for r in history.records]
    watched = any(v is not None for v in val_error)
    fig = _figure(10 if watched else 6, 3.6)
    axes = fig.subplots(1, 2 if watched else 1, squeeze=False)[0]
    marker = "." if len(epochs) < 30 else None
    ax = axes[0]
    ax.plot(epochs, history.train_loss, label="train", marker=marker)
    val = [np.nan if v is None else v for v in history.val_loss]
    if not np.isnan(val).all():
        before = [] if initial.get("val_loss") is None else [initial["val_loss"]]
        ax.plot([0] * len(before) + epochs, before + val, label="validation", marker=marker)
    ax.set(xlabel="epoch", ylabel="loss", yscale="log")
    ax.set_title(loss_text(loss, categorical), fontsize="small", wrap=True)
    if watched:
        right = axes[1]
        before = [] if initial.get("val_error") is None else [initial["val_error"]]
        errors = [np.nan if v is None else v for v in val_error]
        right.plot([0] * len(before) + epochs, before + errors, marker=marker, color="C1")
        right.set(xlabel="epoch", ylabel="per-row squared error, scaled", yscale="log")
        right.set_title("validation error (picks the kept epoch)", fontsize="small")
    for panel in axes:
        if history.best_epoch is not None:
            panel.axvline(history.best_epoch, color="grey", linestyle=":", label="kept epoch")
    ax.legend()
    return _png(fig)


def error_vs_code_size(
    pca: tuple[Sequence[int], Sequence[float]],
    autoencoder: tuple[Sequence[int], Sequence[float]],
    *,
    title: str = "",
) -> bytes:
    """Held-out error of PCA and of the autoencoder against the code size.

    Parameters
    ----------
    pca : (code sizes, errors)
        PCA's mean per-row squared error at each number of components.
    autoencoder : (code sizes, errors)
        The autoencoder's, one point per fitted model.
    """
    fig = _figure(6, 3.6)
    ax = fig.add_subplot()
    ax.plot(pca[0], pca[1], marker=".", label="PCA")
    ax.plot(autoencoder[0], autoencoder[1], marker="o", linestyle="-", label="autoencoder")
    ax.set(xlabel="code size (components)", ylabel="mean per-row squared error", yscale="log")
    if title:
        ax.set_title(title)
    ax.legend()
    return _png(fig)


def image_grid(rows: Sequence[tuple[str, np.ndarray]], shape: tuple[int, int]) -> bytes:
    """Rows of images (e.g. originals, autoencoder, PCA), one named row each.

    Parameters
    ----------
    rows : sequence of (name, ndarray of shape (n_images, h·w))
    shape : (height, width)
    """
    n = max(len(images) for _, images in rows)
    fig = _figure(1.1 * n + 1.2, 1.15 * len(rows))
    axes = fig.subplots(len(rows), n, squeeze=False)
    low = min(float(np.min(images)) for _, images in rows)
    high = max(float(np.max(images)) for _, images in rows)
    for r, (name, images) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(images):
                ax.imshow(images[c].reshape(shape), cmap="gray", vmin=low, vmax=high)
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center")
    return _png(fig)


def row_profiles(
    original: np.ndarray, reconstructed: np.ndarray, names: Sequence[str] | None = None
) -> bytes:
    """Non-image rows: each row's features as a line, original against reconstruction.

    ``names`` label the x axis (every feature up to 40 of them); features are numbered
    without them.
    """
    n = len(original)
    fig = _figure(6, 1.4 * n + 0.4 + (0.8 if names else 0))
    axes = fig.subplots(n, 1, squeeze=False, sharex=True)
    for i in range(n):
        ax = axes[i, 0]
        ax.plot(original[i], marker=".", label="original")
        ax.plot(reconstructed[i], marker=".", label="reconstruction")
    axes[0, 0].legend(fontsize="small")
    _name_features(axes[-1, 0], names)
    return _png(fig)


def _name_features(ax: Any, names: Sequence[str] | None) -> None:
    """Label the x axis with the features' names (a subset when there are many)."""
    ax.set_xlabel("feature")
    if not names:
        return
    step = max(1, -(-len(names) // _MAX_NAMES))
    ticks = np.arange(0, len(names), step)
    ax.set_xticks(ticks, [_verbatim(names[t]) for t in ticks], rotation=60, ha="right", fontsize=7)


def _verbatim(value: object) -> str:
    """``value`` as text matplotlib draws as written (a ``$`` pair would start maths)."""
    return str(value).replace("$", r"\$")


def code_map(points: np.ndarray, labels: np.ndarray | None, *, xlabel: str, ylabel: str) -> bytes:
    """A scatter of 2-D code coordinates, coloured by label when labels are given."""
    fig = _figure(6, 5)
    ax = fig.add_subplot()
    style = {"s": 6, "alpha": 0.7, "linewidths": 0}
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], **style)
    else:
        if labels.dtype == object:  # texts with None among them: np.unique cannot sort
            labels = np.array([str(v) for v in labels])
        values, codes = np.unique(labels, return_inverse=True)
        if len(values) <= _MAX_LEGEND:
            import matplotlib

            colours = matplotlib.colormaps["tab10" if len(values) <= 10 else "tab20"]
            for i, value in enumerate(values):
                keep = labels == value
                ax.scatter(
                    points[keep, 0],
                    points[keep, 1],
                    color=colours(i),
                    label=_verbatim(value),
                    **style,
                )
            ax.legend(markerscale=3, fontsize="small", loc="best")
        else:
            numbers = labels.dtype.kind in "biuf"  # else: texts, coloured by their rank
            colour = labels.astype(float) if numbers else codes.astype(float)
            art = ax.scatter(points[:, 0], points[:, 1], c=colour, **style)
            fig.colorbar(art, ax=ax, label="label" if numbers else "label (in sorted order)")
    # Frame the bulk of the points: a few far-out codes would squash everything else.
    low, high = np.percentile(points, [0.5, 99.5], axis=0)
    pad = 0.05 * np.maximum(high - low, 1e-12)
    ax.set_xlim(low[0] - pad[0], high[0] + pad[0])
    ax.set_ylim(low[1] - pad[1], high[1] + pad[1])
    ax.set(xlabel=xlabel, ylabel=ylabel)
    return _png(fig)


def feature_errors(
    errors: np.ndarray, image_shape: tuple[int, int] | None, names: Sequence[str] | None = None
) -> bytes:
    """Mean squared error of each feature: a heat map for images, bars otherwise.

    ``names`` label the bars (see :func:`row_profiles`).
    """
    fig = _figure(5 if image_shape else 6, 4 if image_shape else 3 + (0.8 if names else 0))
    ax = fig.add_subplot()
    if image_shape:
        art = ax.imshow(errors.reshape(image_shape), cmap="magma")
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(art, ax=ax, label="mean squared error")
    else:
        ax.bar(np.arange(len(errors)), errors, width=1.0)
        ax.set(ylabel="mean squared error")
        _name_features(ax, names)
    return _png(fig)


def code_activity(codes: np.ndarray, threshold: float = 1e-6) -> bytes:
    """Sparse codes: a histogram of the active values, and each unit's activation rate."""
    fig = _figure(9, 3.4)
    left, right = fig.subplots(1, 2)
    active = np.abs(codes) > threshold
    values = codes[active]
    left.hist(values if values.size else np.zeros(1), bins=50)
    left.set(xlabel="activation (active units only)", ylabel="count", yscale="log")
    rate = np.sort(active.mean(axis=0))[::-1]
    right.bar(np.arange(len(rate)), rate, width=1.0)
    right.set(xlabel="code unit (sorted)", ylabel="share of rows active")
    return _png(fig)


def sae_history(history: Sequence[dict[str, Any]]) -> bytes:
    """A sparse autoencoder's training: explained variance and L0 against the rows seen."""
    fig = _figure(9, 3.4)
    left, right = fig.subplots(1, 2)
    rows = [record["rows"] for record in history]
    left.plot(rows, [record["explained_variance"] for record in history], marker=".")
    left.set(xlabel="training rows", ylabel="explained variance")
    right.plot(rows, [record["l0"] for record in history], marker=".")
    right.set(xlabel="training rows", ylabel="L0 (active latents per row)")
    return _png(fig)
