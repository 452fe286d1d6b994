"""The imputation grid's tables and holes: what ``benchmarks/impute.py`` fills and scores.

Tables are numeric float64 rows with no hole of their own and no label column:
scikit-learn's bundled diabetes, wine, breast cancer and digits, the penguins' numeric columns
(complete rows; ``palmerpenguins``) and ADBench tables from ``--data`` (``X`` only; rows above
:data:`MAX_ROWS` subsampled with seed 0). Holes follow the three mechanisms of the deep-imputer
literature (Muzellec et al., ICML 2020; hyperimpute's ``simulate_nan``), each hiding ``rate``
of all entries:

- ``mcar``: each entry independently.
- ``mar``: a random :data:`MAR_OBSERVED` share of the columns stays complete; each other column
  is missing with a logistic probability of the complete columns (random weights, the logit
  scaled to unit spread, the intercept set by bisection so the column loses its share).
- ``mnar``: self-masking; each column is missing with a logistic probability of its own
  standardized value (a random positive slope: larger values more likely missing).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_wine

from aekit.data.formats import read_idx

__all__ = ["MASKS", "MAX_ROWS", "adbench_names", "load_table", "mnist", "quadrant"]

MAX_ROWS = 5000
MAR_OBSERVED = 0.3  # share of columns that stay complete under MAR (Muzellec et al.'s p_obs)
ADBENCH = (  # tables of ../shared/data/adbench, each ≤ 5,000 rows after subsampling
    "14_glass", "20_letter", "29_Pima", "37_Stamps", "38_thyroid", "40_vowels", "41_Waveform",
    "43_WDBC", "44_Wilt", "46_WPBC", "47_yeast", "4_breastw", "7_Cardiotocography",
    "35_SpamBase", "19_landsat", "28_pendigits",
)  # fmt: skip
SKLEARN: dict[str, Callable[[], np.ndarray]] = {
    "diabetes": lambda: load_diabetes().data,
    "wine": lambda: load_wine().data,
    "breast_cancer": lambda: load_breast_cancer().data,
    "digits": lambda: load_digits().data,
}


def adbench_names() -> list[str]:
    """The ADBench tables of the grid, as ``adbench:NAME`` (file stem without its number)."""
    return [f"adbench:{name.split('_', 1)[1]}" for name in ADBENCH]


def _penguins() -> np.ndarray:
    from palmerpenguins import load_penguins

    table = load_penguins().select_dtypes("number").dropna()
    return table.to_numpy(np.float64)


def load_table(name: str, data: Path) -> np.ndarray:
    """Rows of table ``name``: complete, numeric, constant columns dropped, ≤ MAX_ROWS rows."""
    if name in SKLEARN:
        X = SKLEARN[name]()
    elif name == "penguins":
        X = _penguins()
    elif name.startswith("adbench:"):
        stem = name.split(":", 1)[1]
        found = [p for p in sorted(data.glob("*.npz")) if p.stem.split("_", 1)[-1] == stem]
        if not found:
            raise KeyError(f"no ADBench table {stem!r} in {data} (expected NUMBER_{stem}.npz)")
        path = found[0]
        with np.load(path, allow_pickle=False) as table:
            X = table["X"]
    else:
        raise KeyError(f"unknown table {name!r}")
    X = np.asarray(X, dtype=np.float64)
    X = X[np.isfinite(X).all(axis=1)]
    if len(X) > MAX_ROWS:
        X = X[np.sort(np.random.default_rng(0).choice(len(X), MAX_ROWS, replace=False))]
    return X[:, X.std(axis=0) > 0]


def mnist(data: Path, rows: int = 5000) -> np.ndarray:
    """The first ``rows`` MNIST test images as rows of pixels in [0, 1]."""
    images = read_idx(data / "t10k-images-idx3-ubyte.gz")[:rows]
    return images.reshape(len(images), -1).astype(np.float64) / 255.0


# -- holes ---------------------------------------------------------------------------------------
def _standardized(X: np.ndarray) -> np.ndarray:
    spread = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(spread > 0, spread, 1.0)


def _intercept(logits: np.ndarray, rate: float) -> float:
    """The shift ``b`` for which ``mean(sigmoid(logits + b)) == rate`` (bisection)."""
    low, high = -50.0, 50.0
    for _ in range(60):
        mid = (low + high) / 2
        if np.mean(1 / (1 + np.exp(-(logits + mid)))) < rate:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def mcar(X: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """Each entry missing with probability ``rate``."""
    return np.random.default_rng(seed).random(X.shape) < rate


def mar(X: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """Logistic MAR: the holed columns' probabilities driven by the complete columns."""
    rng = np.random.default_rng(seed)
    n, d = X.shape
    n_complete = max(1, round(MAR_OBSERVED * d))
    complete = rng.choice(d, n_complete, replace=False)
    holed = np.setdiff1d(np.arange(d), complete)
    per_column = min(rate * d / max(len(holed), 1), 0.95)
    Z = _standardized(X)[:, complete]
    mask = np.zeros(X.shape, dtype=bool)
    for j in holed:
        logits = Z @ rng.standard_normal(n_complete)
        logits /= logits.std() if logits.std() > 0 else 1.0
        p = 1 / (1 + np.exp(-(logits + _intercept(logits, per_column))))
        mask[:, j] = rng.random(n) < p
    return mask


def mnar(X: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """Self-masking MNAR: each entry's chance of missing rises with its own value."""
    rng = np.random.default_rng(seed)
    Z = _standardized(X)
    mask = np.zeros(X.shape, dtype=bool)
    for j in range(X.shape[1]):
        logits = Z[:, j] * rng.uniform(1.0, 3.0)
        p = 1 / (1 + np.exp(-(logits + _intercept(logits, rate))))
        mask[:, j] = rng.random(len(X)) < p
    return mask


MASKS: dict[str, Callable[[np.ndarray, float, int], np.ndarray]] = {
    "mcar": mcar,
    "mar": mar,
    "mnar": mnar,
}


def quadrant(n_rows: int, seed: int, side: int = 28) -> np.ndarray:
    """A random 14×14 quadrant missing in a random half of the images."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((n_rows, side, side), dtype=bool)
    half = side // 2
    for row in rng.permutation(n_rows)[: n_rows // 2]:
        top, left = rng.integers(0, 2, size=2) * half
        mask[row, top : top + half, left : left + half] = True
    return mask.reshape(n_rows, -1)


def complete_rows_kept(mask: np.ndarray) -> np.ndarray:
    """``mask`` with, in each row that lost every entry, one random entry given back."""
    full = mask.all(axis=1)
    if full.any():
        mask = mask.copy()
        mask[np.flatnonzero(full), np.random.default_rng(0).integers(0, mask.shape[1])] = False
    return mask
