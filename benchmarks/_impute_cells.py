"""Categorical cells: accuracy on hidden text cells, aekit against missForest's idea.

Tables that packages ship with their data: penguins (``palmerpenguins``: species, island,
sex), and from ``vega_datasets``' local files cars (origin and cylinders; the car's name and
date dropped), Seattle weather (the day's weather; the date dropped) and iris (species).
Each seed hides ``rate`` of the observed cells of every column (MCAR); each imputer fits on
the holed table; the figure is the accuracy on the hidden categorical cells.

Peers: the most frequent category of the column, and per categorical column a
``RandomForestClassifier`` (100 trees) trained on the rows where that column is observed,
from the other columns (numbers mean-filled, categories one-hot with a hole as no category):
missForest's first pass. aekit: ``AutoencoderImputer`` with its defaults on the DataFrame.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier

from aekit import AutoencoderImputer

__all__ = ["TABLES", "print_cells", "run_cells"]


def _penguins() -> pd.DataFrame:
    from palmerpenguins import load_penguins

    return load_penguins().drop(columns="year")


def _vega(name: str, drop: tuple[str, ...] = ()) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        from vega_datasets import data

        return getattr(data, name)().drop(columns=list(drop))

    return load


def _cars() -> pd.DataFrame:
    table = _vega("cars", ("Name", "Year"))()
    return table.astype({"Cylinders": str})


TABLES: dict[str, Callable[[], pd.DataFrame]] = {
    "penguins": _penguins,
    "cars": _cars,
    "seattle_weather": _vega("seattle_weather", ("date",)),
    "iris": _vega("iris"),
}


def _categorical(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]


def most_frequent(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    filled = table.copy()
    for c in columns:
        filled[c] = filled[c].fillna(filled[c].mode().iloc[0])
    return filled


def _features(table: pd.DataFrame, columns: list[str], target: str) -> np.ndarray:
    """The other columns as numbers: numeric ones mean-filled, categorical ones one-hot."""
    others = table.drop(columns=target)
    numeric = others.select_dtypes("number")
    parts = [numeric.fillna(numeric.mean()).to_numpy(np.float64)]
    for c in columns:
        if c != target:
            parts.append(pd.get_dummies(others[c], dtype=np.float64).to_numpy())
    return np.hstack(parts)


def forest(table: pd.DataFrame, columns: list[str], seed: int) -> pd.DataFrame:
    filled = table.copy()
    for c in columns:
        holes = table[c].isna().to_numpy()
        if not holes.any():
            continue
        X = _features(table, columns, c)
        model = RandomForestClassifier(random_state=seed, n_jobs=1)
        model.fit(X[~holes], table[c][~holes].astype(str))
        filled.loc[holes, c] = model.predict(X[holes])
    return filled


def _aekit(params: dict[str, Any]) -> Callable[[pd.DataFrame, list[str], int], pd.DataFrame]:
    def fill(table: pd.DataFrame, columns: list[str], seed: int) -> pd.DataFrame:
        cats = table.astype({c: "category" for c in columns})
        return AutoencoderImputer(random_state=seed, **params).fit_transform(cats)

    return fill


def run_cells(rates: list[float], seeds: list[int], params: dict[str, Any]) -> list[dict]:
    """Accuracy on hidden categorical cells per table × rate, mean over seeds, and seconds."""
    methods = {
        "aekit": _aekit(params),
        "most_frequent": lambda t, c, s: most_frequent(t, c),
        "random_forest": forest,
    }
    out = []
    for name, load in TABLES.items():
        try:
            table = load()
        except ImportError as exc:
            print(f"  categorical {name}: skipped ({exc})", flush=True)
            continue
        columns = _categorical(table)
        truth = table.copy()
        for rate in rates:
            got: dict[str, list[tuple[float, float]]] = {m: [] for m in methods}
            for seed in seeds:
                draw = np.random.default_rng(seed).random(table.shape) < rate
                hidden = draw & table.notna().to_numpy()
                holed = table.mask(hidden)
                for method, fill in methods.items():
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        start = time.perf_counter()
                        filled = fill(holed, columns, seed)
                        seconds = time.perf_counter() - start
                    right = total = 0
                    for j, c in enumerate(table.columns):
                        if c in columns and hidden[:, j].any():
                            was = truth[c].to_numpy()[hidden[:, j]].astype(str)
                            now = np.asarray(filled[c])[hidden[:, j]].astype(str)
                            right, total = right + int((was == now).sum()), total + len(was)
                    got[method].append((right / max(total, 1), seconds))
            row = {
                "table": name, "rows": len(table), "categorical": columns, "rate": rate,
                "seeds": len(seeds),
                **{m: float(np.mean([a for a, _ in v])) for m, v in got.items()},
                "seconds": {m: float(np.mean([s for _, s in v])) for m, v in got.items()},
            }  # fmt: skip
            out.append(row)
            print(f"  categorical {name} {rate:.0%}: " + ", ".join(
                f"{m} {row[m]:.3f}" for m in methods), flush=True)  # fmt: skip
    return out


def print_cells(rows: list[dict[str, Any]]) -> None:
    print("\nAccuracy on hidden categorical cells (MCAR over every column), mean over seeds")
    print(f"{'table':<18}{'rate':>6}{'most frequent':>15}{'random forest':>15}{'aekit':>8}")
    for r in rows:
        print(
            f"{r['table']:<18}{r['rate']:>6.0%}{r['most_frequent']:>15.3f}"
            f"{r['random_forest']:>15.3f}{r['aekit']:>8.3f}"
        )
