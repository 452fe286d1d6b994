"""THE image-shape rule: when rows are images, and of which ``(channels, height, width)``.

The estimator (``image_shape="auto"`` for convolutional models), the anomaly detector (residuals
pooled over image patches) and the HTML report (rows drawn as pictures) all ask this module.
``"auto"`` reads a row of ``n`` features as one square channel when ``n`` is a square
(784 → 1×28×28, 64 → 1×8×8); a pair ``(height, width)`` means one channel.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError

__all__ = ["COHERENCE", "drawing_shape", "image_shape", "pooling_shape", "spatially_coherent"]

COHERENCE = 0.7  # neighbouring pixels differ by at most this share of random pairs' difference
_COHERENCE_ROWS = 2000  # rows the measure reads


def image_shape(value: Any, n_features: int) -> tuple[int, ...] | None:
    """Turn an ``image_shape`` parameter into ``(channels, height, width)``, or None.

    Parameters
    ----------
    value : None, "auto", or a tuple
        ``"auto"``: one square channel; ``(height, width)``: one channel;
        ``(channels, height, width)`` as given.
    n_features : int
        The row width; ``"auto"`` needs it to be a square.

    Raises
    ------
    ConfigError
        For another string, a non-tuple, or ``"auto"`` on a width that is not a square.
    """
    if value is None:
        return None
    if isinstance(value, str):
        side = math.isqrt(n_features)
        if value != "auto" or side * side != n_features:
            raise ConfigError(
                f"image_shape={value!r}: expected (channels, height, width), or 'auto' "
                f"for square images, but {n_features} features are not a square"
            )
        return (1, side, side)
    if not isinstance(value, (tuple, list)):
        raise ConfigError(f"image_shape={value!r}: expected a tuple, 'auto' or None")
    shape = tuple(value)
    return (1, *shape) if len(shape) == 2 else shape


def drawing_shape(
    n_features: int, value: tuple[int, ...] | str | None = "auto", *, pixels: bool = True
) -> tuple[int, int] | None:
    """The ``(height, width)`` to draw rows as, or None for tabular data.

    ``"auto"`` follows :func:`image_shape` for rows that are ``pixels`` (data in [0, 1] or
    8-bit, which the model reconstructs through a sigmoid); a table whose width happens to be
    a square is not drawn as an image. A given shape, ``(height, width)`` or
    ``(1, height, width)``, must multiply out to ``n_features``.

    Raises
    ------
    DataError
        A given shape that does not hold ``n_features`` pixels, or of more than one channel.
    """
    if value == "auto":
        if not pixels:
            return None
        try:
            shape = image_shape("auto", n_features)
        except ConfigError:  # not a square
            return None
        return None if shape is None else (int(shape[1]), int(shape[2]))
    if value is None or isinstance(value, str):
        return None
    shape = tuple(value)[1:] if len(value) == 3 and value[0] == 1 else tuple(value)
    if len(shape) != 2:
        raise DataError(f"image shape {value!r}: rows are drawn as (height, width), one channel")
    height, width = shape
    if height * width != n_features:
        raise DataError(
            f"image shape {height}x{width} has {height * width} pixels, the data has "
            f"{n_features} features"
        )
    return (int(height), int(width))


def pooling_shape(
    value: object, n_features: int, model_shape: tuple[int, ...] | None, *, pixels: bool
) -> tuple[int, ...] | None:
    """The ``(channels, height, width)`` a detector pools residuals over, or None (a table).

    ``"auto"``: a convolutional model's own ``model_shape``; otherwise the drawing rule of
    :func:`drawing_shape`. A given shape must hold ``n_features``.

    Raises
    ------
    ConfigError
        A given shape that does not hold the features.
    """
    if value != "auto":
        shape = image_shape(value, n_features)
        if shape is not None and (len(shape) != 3 or math.prod(shape) != n_features):
            raise ConfigError(f"image_shape={value!r} does not hold the {n_features} features")
        return None if shape is None else tuple(int(n) for n in shape)
    if model_shape is not None:
        return tuple(model_shape)
    square = drawing_shape(n_features, "auto", pixels=pixels)
    return None if square is None else (1, *square)


def spatially_coherent(rows: Any, shape: tuple[int, ...]) -> bool:
    """Whether ``rows`` drawn as ``shape`` images look like images: neighbours alike.

    The mean absolute difference between horizontally and vertically neighbouring pixels
    (of the first :data:`_COHERENCE_ROWS` rows; holes left out) over the mean difference
    between pixels paired at random (one fixed permutation), at most :data:`COHERENCE`. In
    a picture neighbouring pixels are alike; in a table laid out as a square, columns
    side by side are no more alike than any two. Measured on [0, 1] data: MNIST 0.32,
    scikit-learn's and ADBench's 8 x 8 digits 0.63 and 0.63; the ADBench tables of a square
    width, min-max scaled (landsat, pendigits, satimage-2, shuttle, Stamps, breastw), 1.04
    to 1.19, the square first columns of the others 0.74 (ALOI) to 1.21, and random
    columns 1.06.
    """
    dense = rows[:_COHERENCE_ROWS]
    dense = dense.toarray() if hasattr(dense, "toarray") else np.asarray(dense, np.float64)
    height, width = shape[-2:]
    pictures = dense.reshape(len(dense), -1, height, width)
    near = np.concatenate(
        [np.abs(np.diff(pictures, axis=3)).ravel(), np.abs(np.diff(pictures, axis=2)).ravel()]
    )
    order = np.random.default_rng(0).permutation(dense.shape[1])
    far = np.abs(dense - dense[:, order])
    near_mean, far_mean = _mean_seen(near), _mean_seen(far)
    return bool(near_mean <= COHERENCE * far_mean) if far_mean > 0 else False


def _mean_seen(values: np.ndarray) -> float:
    """The mean of the values that are not NaN; 0 where there are none."""
    seen = values[~np.isnan(values)]
    return float(seen.mean()) if seen.size else 0.0
