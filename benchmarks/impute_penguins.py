"""Categorical accuracy on penguins: aekit against the most-frequent and iterative imputers.

    .venv/bin/python benchmarks/impute_penguins.py          # 3 seeds × 10/20/40 % (minutes)
    .venv/bin/python benchmarks/impute_penguins.py --quick  # 1 seed, 20 %, 1 member (smoke)

Data: ``palmerpenguins.load_penguins()`` (344 rows; ``pip install 'aekit[bench]'``): five
numeric columns with real holes, and three categorical ones, species, island and sex (sex
has 11 holes). ``benchmarks/impute.py`` can import :func:`run` as its penguins section.

Two settings, each at MCAR rates of 10, 20 and 40 % and seeds 0, 1, 2:

- **transductive** (the imputation benchmark proper): a share of the *observed* cells of the
  whole table is hidden as well (MCAR over every column); each imputer fits on the table
  with its real and added holes and fills them; the figure is the accuracy on the hidden
  categorical cells. aekit's entry is ``AutoencoderImputer`` with its defaults
  (:data:`IMPUTER`; ``--quick``: one member instead of the ensemble of five).
- **held-out** (runs without missing-value support): the rows without holes are split 70/30;
  each method fits on the training rows; on the test rows the share of categorical cells is
  hidden and predicted. aekit's model is trained with masking noise (``noise="masking"``),
  and a hidden cell enters as an all-zero one-hot block (no category), its prediction the
  block's most probable category.

Baselines: the most frequent category of the fitted rows (``SimpleImputer``), and
``IterativeImputer`` (BayesianRidge) on the standardized numeric columns and the one-hot
columns, each block's largest imputed value picking the category. The target (issue 14):
aekit ≥ the most-frequent imputer + 10 points and ≥ IterativeImputer. Prints a table and
writes ``benchmarks/results/impute_penguins.json``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, SimpleImputer

from aekit import Autoencoder, AutoencoderImputer
from aekit.data.tables import TableLayout
from aekit.errors import AekitWarning, DataError

from _common import write_json

CATEGORICAL = ("species", "island", "sex")
RATES = (0.1, 0.2, 0.4)
RESULTS = Path(__file__).resolve().parent / "results" / "impute_penguins.json"
AEKIT = {
    "code_dim": 6,
    "noise": "masking",
    "noise_level": 0.3,
    "dropout": 0.1,
    "patience": 30,
    "device": "cpu",
}
IMPUTER: dict[str, Any] = {}  # AutoencoderImputer's own defaults (its autoencoder chooses the CPU
# on this machine; the parameters are the imputer's, not an Autoencoder's)


def load() -> pd.DataFrame:
    """The penguins table, its text columns as pandas ``category`` columns."""
    from palmerpenguins import load_penguins

    table = load_penguins()
    return table.astype({c: "category" for c in CATEGORICAL})


def hide(table: pd.DataFrame, rate: float, seed: int, columns: Any = None) -> np.ndarray:
    """A boolean mask of ``rate`` of the observed cells (of ``columns``, default all), MCAR."""
    observed = table.notna().to_numpy()
    if columns is not None:
        observed &= np.isin(table.columns, list(columns))[None, :]
    draw = np.random.default_rng(seed).random(observed.shape) < rate
    return observed & draw


def with_holes(table: pd.DataFrame, mask: np.ndarray) -> pd.DataFrame:
    out = table.copy()
    for j, name in enumerate(table.columns):
        out.loc[mask[:, j], name] = np.nan
    return out


def accuracy(guess: pd.DataFrame, truth: pd.DataFrame, mask: np.ndarray) -> float:
    hits, count = 0, 0
    for j, name in enumerate(truth.columns):
        if name in CATEGORICAL and mask[:, j].any():
            rows = mask[:, j]
            hits += int((guess[name].to_numpy()[rows] == truth[name].to_numpy()[rows]).sum())
            count += int(rows.sum())
    return hits / max(count, 1)


# -- the imputers: fit on ``train`` (with holes), fill ``test`` (with holes) -------------------
def most_frequent(train: pd.DataFrame, test: pd.DataFrame, seed: int) -> pd.DataFrame:
    out = test.copy()
    for name in CATEGORICAL:
        mode = SimpleImputer(strategy="most_frequent").fit(train[[name]].astype(object))
        out[name] = out[name].fillna(mode.statistics_[0])
    return out


def iterative(train: pd.DataFrame, test: pd.DataFrame, seed: int) -> pd.DataFrame:
    """IterativeImputer on standardized numbers and one-hot blocks less their first column.

    Without the first column of each block the rest are not collinear (a full block sums to
    1, and each column is then imputed from its block's other columns, left at their means
    after the first round: every cell became the most frequent category). The first
    column's value is 1 minus the others'; the largest entry picks the category. Fitted on
    the training and test rows together (it imputes only features it saw missing in fit).
    """
    layout = TableLayout.fit(train.dropna())
    both = test if train is test else pd.concat([train, test], ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unseen-category and convergence notes
        rows = layout.encode(both, np.float64)
        firsts = [start for start, _ in layout.blocks]
        kept = np.setdiff1d(np.arange(layout.width), firsts)
        mean, std = np.nanmean(rows, axis=0), np.nanstd(rows, axis=0)
        for start, stop in layout.blocks:
            mean[start:stop], std[start:stop] = 0.0, 1.0
        std[std == 0] = 1.0
        imputer = IterativeImputer(max_iter=10, random_state=seed)
        filled = rows.copy()
        filled[:, kept] = imputer.fit_transform(((rows - mean) / std)[:, kept]) * std[kept]
        filled[:, kept] += mean[kept]
    for start, stop in layout.blocks:
        filled[:, start] = 1.0 - filled[:, start + 1 : stop].sum(axis=1)
    return layout.decode(filled[len(both) - len(test) :])


def aekit_transductive(
    train: pd.DataFrame, test: pd.DataFrame, seed: int, params: dict[str, Any]
) -> pd.DataFrame:
    """``AutoencoderImputer`` with its defaults (``params``: its constructor's parameters)."""
    imputer = AutoencoderImputer(**{**IMPUTER, **params}, random_state=seed)
    return imputer.fit(train).transform(test)


def aekit_heldout(
    train: pd.DataFrame, test: pd.DataFrame, seed: int, params: dict[str, Any]
) -> pd.DataFrame:
    """Trained with masking noise on complete rows; a hidden cell is an all-zero block."""
    ae = Autoencoder(**{**AEKIT, **params}, random_state=seed).fit(train)
    layout, module = ae.table_layout_, ae.module_
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AekitWarning)
        rows = torch.from_numpy(layout.encode(test))
    with torch.inference_mode():
        scaled = torch.nan_to_num(module.scale_input(rows), nan=0.0)
        recon = module.unscale_output(module(scaled).recon)
    return layout.decode(recon.numpy())


METHODS = {"most_frequent": most_frequent, "iterative": iterative}


def one(table: pd.DataFrame, setting: str, rate: float, seed: int, quick: bool) -> dict[str, Any]:
    """Every method's accuracy on one draw of hidden cells."""
    if setting == "transductive":
        params: dict[str, Any] = {"n_estimators": 1} if quick else {}
        mask = hide(table, rate, seed)
        holed = with_holes(table, mask)
        train, test, truth = holed, holed, table
        ours = aekit_transductive
    else:
        complete = table.dropna().reset_index(drop=True)
        order = np.random.default_rng(seed).permutation(len(complete))
        cut = int(0.7 * len(complete))
        train = complete.iloc[np.sort(order[:cut])].reset_index(drop=True)
        truth = complete.iloc[np.sort(order[cut:])].reset_index(drop=True)
        mask = hide(truth, rate, seed, CATEGORICAL)
        test = with_holes(truth, mask)
        ours = aekit_heldout
        params = {"epochs": 30} if quick else {}
    hidden = int(mask[:, np.isin(table.columns, CATEGORICAL)].sum())
    row: dict[str, Any] = {"setting": setting, "rate": rate, "seed": seed, "hidden": hidden}
    for name, method in {**METHODS, "aekit": ours}.items():
        tick = time.perf_counter()
        try:
            guess = (
                method(train, test, seed, params) if name == "aekit" else method(train, test, seed)
            )
        except DataError as exc:  # no missing-value support in this aekit
            row[name], row[f"{name}_note"] = None, str(exc).split(";")[0][:80]
            continue
        row[name] = accuracy(guess, truth, mask)
        row[f"{name}_seconds"] = time.perf_counter() - tick
    return row


def run(seeds: tuple[int, ...] = (0, 1, 2), quick: bool = False) -> dict[str, Any]:
    """Both settings at every rate and seed; returns the rows and the per-rate means."""
    torch.set_num_threads(1)
    table = load()
    rates = (0.2,) if quick else RATES
    rows = [
        one(table, setting, rate, seed, quick)
        for setting in ("held-out", "transductive")
        for rate in rates
        for seed in seeds
    ]
    return {
        "rows": rows,
        "means": means(rows),
        "quick": quick,
        "aekit_params": AEKIT,
        "imputer_params": IMPUTER,
    }


def means(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for key in dict.fromkeys((r["setting"], r["rate"]) for r in rows):
        group = [r for r in rows if (r["setting"], r["rate"]) == key]
        entry: dict[str, Any] = {"setting": key[0], "rate": key[1]}
        for name in (*METHODS, "aekit"):
            values = [r[name] for r in group if r.get(name) is not None]
            entry[name] = float(np.mean(values)) if len(values) == len(group) else None
        out.append(entry)
    return out


def table_text(result: dict[str, Any]) -> str:
    lines = [f"{'setting':<13} {'MCAR':>5} {'most freq':>9} {'iterative':>9} {'aekit':>7}"]
    for m in result["means"]:
        cells = [f"{m[k]:.3f}" if m[k] is not None else "n/a" for k in (*METHODS, "aekit")]
        lines.append(
            f"{m['setting']:<13} {m['rate']:>5.0%} {cells[0]:>9} {cells[1]:>9} {cells[2]:>7}"
        )
    notes = {r["aekit_note"] for r in result["rows"] if r.get("aekit_note")}
    lines += [f"aekit n/a: {n}" for n in notes]
    lines.append("(accuracy on the hidden categorical cells of species, island and sex)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, 20 %%, a smaller aekit")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    result = run(tuple(range(1 if args.quick else args.seeds)), args.quick)
    print(table_text(result))
    write_json(args.out, result)


if __name__ == "__main__":
    main()
