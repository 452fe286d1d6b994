"""init="auto": the start chosen by cross-fitting on small data (aekit.estimator.select)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aekit import Autoencoder
from aekit.analysis import measure, split_indices
from aekit.estimator.select import (
    SELECT_MAX_ROWS,
    Selection,
    cross_fit_folds,
    select_start,
    selection_applies,
)


def _linear_table(n: int = 150, seed: int = 0) -> np.ndarray:
    """A rank-2 table with noise: PCA's two components are the best code of size 2."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 2)) @ rng.normal(size=(2, 8)) + 0.3 * rng.normal(size=(n, 8))


def _circle(n: int = 150, seed: int = 0) -> np.ndarray:
    """Points on a circle in 6 dimensions: one angle codes them, one component does not."""
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0, 2 * np.pi, n)
    plane = np.c_[np.cos(angle), np.sin(angle)]
    return plane @ rng.normal(size=(2, 6)) + 0.02 * rng.normal(size=(n, 6))


def _params(**changes: object) -> dict[str, object]:
    return {**Autoencoder(random_state=0, init="auto").get_params(), **changes}


def _stats(n: int, d: int) -> dict[str, np.ndarray]:
    return {"n_rows": np.asarray(n), "min": np.zeros(d), "max": np.ones(d)}


def test_folds_validate_every_row_once_and_repeat_with_the_seed() -> None:
    for n in (31, 300, 301, 2000):
        folds = cross_fit_folds(n, seed=5)
        assert len(folds) == (5 if n <= 300 else 3)
        every = np.sort(np.concatenate(folds))
        assert np.array_equal(every, np.arange(n))
        again = cross_fit_folds(n, seed=5)
        assert all(np.array_equal(a, b) for a, b in zip(folds, again, strict=True))
    assert not np.array_equal(cross_fit_folds(90, 1)[0], cross_fit_folds(90, 2)[0])


def test_the_search_runs_only_where_fits_are_cheap() -> None:
    rows = torch.zeros(100, 4)
    assert selection_applies(_params(), rows, _stats(100, 4)) == "cross-fit"
    big = _stats(SELECT_MAX_ROWS + 1, 4)
    assert selection_applies(_params(), torch.zeros(1, 4), big) == "large"
    assert selection_applies(_params(), rows, _stats(100, 1000)) == "large"  # entries
    assert selection_applies(_params(), rows[:10], _stats(10, 4)) == "few-rows"
    assert selection_applies(_params(epochs=5), rows, _stats(100, 4)) == "budget"
    assert selection_applies(_params(max_time=3.0), rows, _stats(100, 4)) == "budget"
    assert selection_applies(_params(sparsity="topk"), rows, _stats(100, 4)) == "sparse-code"
    assert selection_applies(_params(checkpoint_dir="x"), rows, _stats(100, 4)) == "checkpointed"
    assert selection_applies(_params(), object(), _stats(100, 4)) == "streamed"


def test_skipping_the_search_is_one_pca_fit_and_says_why() -> None:
    X = _linear_table(60)
    params, record = select_start(_params(epochs=3), torch.from_numpy(X).float(), _stats(60, 8))
    assert params["init"] == "pca" and record == Selection("budget")
    auto = Autoencoder(code_dim=2, epochs=3, random_state=0, init="auto").fit(X)
    pca = Autoencoder(code_dim=2, epochs=3, random_state=0, init="pca").fit(X)
    assert auto.history_.initial["selection"]["rule"] == "budget"
    assert np.array_equal(auto.transform(X), pca.transform(X))


def test_where_pca_is_optimal_the_default_keeps_it_and_is_not_worse() -> None:
    X = _linear_table(200)
    train, test = split_indices(len(X), 0.25, 0)
    ae = Autoencoder(code_dim=2, hidden=(32,), random_state=0, init="auto").fit(X[train])
    selection = ae.history_.initial["selection"]
    assert selection["rule"] == "cross-fit" and selection["folds"] == 5
    assert selection["init"] == "pca" and selection["z"] < 0  # random validates worse
    assert selection["errors"]["pca"] < selection["errors"]["random"]
    assert ae.model_config_.linear_path  # the PCA start's architecture
    assert measure(ae, X[train], X[test]).ratio <= 1.0 + 1e-6


@pytest.mark.slow  # two searches of ten fold fits each
def test_the_choice_repeats_with_the_seed_and_survives_saving(tmp_path) -> None:
    X = _linear_table(90, seed=3)
    first = Autoencoder(code_dim=2, hidden=(8,), patience=3, random_state=7, init="auto").fit(X)
    second = Autoencoder(code_dim=2, hidden=(8,), patience=3, random_state=7, init="auto").fit(X)
    assert first.history_.initial["selection"]["rule"] == "cross-fit"
    assert first.history_.initial["selection"] == second.history_.initial["selection"]
    assert np.array_equal(first.transform(X), second.transform(X))
    loaded = Autoencoder.load(first.save(tmp_path / "model"))
    assert loaded.init == "auto"
    assert loaded.history_.initial["selection"] == first.history_.initial["selection"]
    assert np.array_equal(loaded.transform(X), first.transform(X))


def test_partial_fit_starts_from_pca_without_a_search() -> None:
    X = _linear_table(80)
    ae = Autoencoder(code_dim=2, random_state=0, init="auto").partial_fit(X)
    assert ae.model_config_.linear_path
    assert ae.history_.initial is None or "selection" not in ae.history_.initial


def _fold_errors_where(winner: str, margin: float):
    """A stand-in for the fold fits: ``winner`` validates ``margin`` lower on every row, with
    some spread (row-dependent noise the same for both starts, plus a little of its own)."""

    def fold_errors(params, rows, stats, train, held, threads):
        base = 1.0 + torch.from_numpy(held % 7).double()
        jitter = 0.05 * torch.from_numpy(np.cos(held * (1.0 if params["init"] == "pca" else 2.0)))
        return base + jitter - (margin if params["init"] == winner else 0.0)

    return fold_errors


@pytest.mark.parametrize(("winner", "margin", "chosen"), [
    ("random", 0.2, "random"),  # clearly better on every row: far beyond 2 standard errors
    ("random", 0.001, "pca"),  # a gain within noise keeps PCA's start
    ("pca", 0.2, "pca"),
])  # fmt: skip
def test_the_rule_takes_the_random_start_only_where_it_clearly_wins(
    monkeypatch, winner, margin, chosen
) -> None:
    import aekit.estimator.select as select

    monkeypatch.setattr(select, "_fold_errors", _fold_errors_where(winner, margin))
    X = _linear_table(120)
    params, record = select_start(_params(code_dim=2), torch.from_numpy(X).float(), _stats(120, 8))
    assert params["init"] == chosen == record.init
    assert record.rule == "cross-fit" and record.folds == 5
    if winner == "random":
        assert record.errors["random"] == pytest.approx(record.errors["pca"] - margin, abs=0.01)
        assert (record.z >= 2) == (chosen == "random")
    else:
        assert record.z < -2


def test_where_the_random_start_wins_the_model_is_trained_from_it(monkeypatch) -> None:
    import aekit.estimator.select as select

    monkeypatch.setattr(select, "_fold_errors", _fold_errors_where("random", 0.2))
    X = _linear_table(120)
    ae = Autoencoder(code_dim=2, hidden=(16,), random_state=0, init="auto").fit(X)
    assert ae.history_.initial["selection"]["init"] == "random"
    assert not ae.model_config_.linear_path  # no PCA path: the random start's architecture
    plain = Autoencoder(code_dim=2, hidden=(16,), random_state=0, init="random").fit(X)
    assert np.array_equal(ae.transform(X), plain.transform(X))  # exactly init="random"'s fit
