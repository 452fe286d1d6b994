"""init="auto": the start chosen by cross-fitting on small data (aekit.estimator.select)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_diabetes

import aekit
from aekit import Autoencoder
from aekit.analysis import measure, split_indices
from aekit.estimator.select import (
    SELECT_MAX_ROWS,
    Selection,
    cross_fit_folds,
    row_groups,
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
        assert len(folds) == 5
        every = np.sort(np.concatenate(folds))
        assert np.array_equal(every, np.arange(n))
        again = cross_fit_folds(n, seed=5)
        assert all(np.array_equal(a, b) for a, b in zip(folds, again, strict=True))
    assert not np.array_equal(cross_fit_folds(90, 1)[0], cross_fit_folds(90, 2)[0])


def test_copies_of_a_row_are_validated_in_one_fold() -> None:
    # dealt by row, a held-out row's copies trained the fold's models: the random start,
    # which memorises, won the search (z = 3.3) and did worse than PCA's start on new rows
    rows = np.repeat(np.random.default_rng(0).normal(size=(60, 6)), 4, axis=0)
    groups = row_groups(torch.from_numpy(rows))
    folds = cross_fit_folds(len(rows), 5, groups)
    assert np.array_equal(np.sort(np.concatenate(folds)), np.arange(240))
    assert [len(f) for f in folds] == [48] * 5
    for fold in folds:
        rest = np.setdiff1d(np.arange(240), fold)
        assert not set(map(tuple, rows[fold])) & set(map(tuple, rows[rest]))
    distinct = row_groups(torch.from_numpy(rows[::4]))  # no copies: the folds as before
    for a, b in zip(cross_fit_folds(60, 5, distinct), cross_fit_folds(60, 5), strict=True):
        assert np.array_equal(a, b)
    same = torch.ones(40, 3)  # one row 40 times: too few distinct rows to search
    assert selection_applies(_params(), same, _stats(40, 3)) == "few-rows"


def test_the_search_runs_only_where_fits_are_cheap() -> None:
    rows = torch.randn(100, 4, generator=torch.Generator().manual_seed(0))  # distinct rows
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
    ae = Autoencoder(code_dim=2, hidden=(32,), random_state=0).fit(X[train])  # the default
    selection = ae.history_.initial["selection"]
    assert selection["rule"] == "cross-fit" and selection["folds"] == 5
    assert selection["init"] == "pca" and selection["improvement_z"] is None  # guarded
    assert selection["z"] < 2  # neither trained start beats PCA's solution clearly
    assert selection["errors"]["pca_solution"] < selection["errors"]["random"]
    assert ae.model_config_.linear_path  # the PCA start's architecture
    assert ae.train_config_.improvement_z == 2.0
    assert measure(ae, X[train], X[test]).ratio <= 1.005


@pytest.mark.slow  # a search of ten fold fits and two fits on 353 rows
def test_the_default_trains_past_pca_where_the_guard_alone_would_keep_it() -> None:
    """diabetes (442 × 10, scikit-learn), code 8 of 10, benchmarks/tabular.py's split 1: the
    PCA start's improvement_z guard keeps PCA's solution on its 50 validation rows, while the
    cross-fit over all 353 rows shows the trained PCA start far better, and it is."""
    X = load_diabetes().data
    train, test = split_indices(len(X), 0.2, 1)
    guarded = Autoencoder(code_dim=8, random_state=1, init="pca").fit(X[train])
    default = Autoencoder(code_dim=8, random_state=1).fit(X[train])
    selection = default.history_.initial["selection"]
    assert selection["init"] == "pca" and selection["improvement_z"] == 0.0
    assert selection["errors"]["pca"] < selection["errors"]["pca_solution"] and selection["z"] >= 2
    assert measure(guarded, X[train], X[test]).ratio == pytest.approx(1.0, abs=1e-4)
    assert measure(default, X[train], X[test]).ratio < 0.6


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


def _fold_errors_where(gains: dict[str, float]):
    """A stand-in for the fold fits: PCA's solution errs 1 to 7 on a row (row-dependent), the
    model trained from each start ``gains[init]`` less, with a little spread of its own."""

    def fold_errors(fits, rows, stats, threads):
        found = []
        for params, held in fits:
            base = 1.0 + torch.from_numpy(held % 7).double()
            own = 0.05 * torch.from_numpy(np.cos(held * (1.0 if params["init"] == "pca" else 2.0)))
            found.append((base, base + own - gains[params["init"]]))
        return found

    return fold_errors


@pytest.mark.parametrize(("pca_gain", "random_gain", "init", "improvement_z"), [
    (0.0, 0.2, "random", None),  # the random start clearly beats PCA's solution
    (0.2, 0.2, "pca", 0.0),  # both trained starts win, tied: the PCA start, unguarded
    (0.2, 0.5, "random", None),  # the random start clearly beats the trained PCA start
    (0.001, 0.001, "pca", None),  # gains within noise keep PCA's start, guarded
    (-0.2, -0.3, "pca", None),
])  # fmt: skip
def test_each_step_away_from_pca_needs_two_standard_errors(
    monkeypatch, pca_gain, random_gain, init, improvement_z
) -> None:
    import aekit.estimator.select as select

    monkeypatch.setattr(select, "_fold_errors", _fold_errors_where(
        {"pca": pca_gain, "random": random_gain}
    ))  # fmt: skip
    X = _linear_table(120)
    params, record = select_start(_params(code_dim=2), torch.from_numpy(X).float(), _stats(120, 8))
    assert params["init"] == init == record.init
    assert params["improvement_z"] == (2.0 if improvement_z is None else improvement_z)
    assert record.improvement_z == improvement_z
    assert record.rule == "cross-fit" and record.folds == 5
    # a random start that trails clearly after 2 folds is fitted on no more
    assert record.random_folds == (2 if random_gain < pca_gain - 0.05 else 5)
    if record.random_folds == 5:
        assert record.errors["random"] == pytest.approx(
            record.errors["pca_solution"] - random_gain, abs=0.01
        )
    assert record.errors["pca"] == pytest.approx(record.errors["pca_solution"] - pca_gain, abs=0.01)
    if init == "random" or improvement_z == 0.0:
        assert record.z >= 2
    elif pca_gain < 0:
        assert record.z < -2


def test_the_fold_fits_trained_together_are_the_fold_fits_one_by_one(monkeypatch) -> None:
    """A start's fold fits of as many rows train as one stacked network, each on its own
    rows: the errors they give are those of fitting each alone, up to float rounding."""
    import aekit.estimator.select as select
    import aekit.training.ensemble as ensemble

    ae = Autoencoder(code_dim=2, hidden=(16,), epochs=6, random_state=0)
    with ae._training_rows(_linear_table(123), reset=True) as (X, stats):  # 123 rows: folds
        pass  # of 25 and 24 rows, so two stacks
    folds = select.cross_fit_folds(123, 0)
    params = {
        **_params(code_dim=2, hidden=(16,), epochs=6, init="random", improvement_z=0.0),
        "verbose": 0,
    }
    fits = [({**params, "random_state": i}, held) for i, held in enumerate(folds)]
    stacked = []
    spy = ensemble.fit_together

    def counted(trainers, data):
        stacked.append(len(trainers))
        return spy(trainers, data)

    monkeypatch.setattr(select, "fit_together", counted)
    together = select._fold_errors(fits, X, stats, None)
    assert sorted(stacked) == [2, 3]  # the fits of 98 and 99 training rows: two stacks
    monkeypatch.setattr(select, "stack_refusal", lambda trainers, data: "one by one")
    alone = select._fold_errors(fits, X, stats, None)
    for (start, trained), (start_alone, trained_alone) in zip(together, alone, strict=True):
        assert torch.equal(start, start_alone) and not torch.equal(trained, start)
        torch.testing.assert_close(trained, trained_alone, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("gains", "same_as"), [
    ({"pca": 0.0, "random": 0.2}, {"init": "random"}),
    ({"pca": 0.2, "random": 0.0}, {"init": "pca", "improvement_z": 0.0}),
])  # fmt: skip
def test_the_final_fit_is_exactly_the_chosen_candidates(monkeypatch, gains, same_as) -> None:
    import aekit.estimator.select as select

    monkeypatch.setattr(select, "_fold_errors", _fold_errors_where(gains))
    X = _linear_table(120)
    ae = Autoencoder(code_dim=2, hidden=(16,), random_state=0).fit(X)  # the default
    assert ae.history_.initial["selection"]["init"] == same_as["init"]
    assert ae.model_config_.linear_path == (same_as["init"] == "pca")
    plain = Autoencoder(code_dim=2, hidden=(16,), random_state=0, **same_as).fit(X)
    assert np.array_equal(ae.transform(X), plain.transform(X))  # exactly that fit


def test_saved_models_keep_the_start_they_were_fitted_with(tmp_path) -> None:
    """Folders store ``init``: one written under the old default (``"pca"``) loads and refits
    as ``"pca"``, without the search; aekit 0.1's folders (no ``init``) as ``"random"``."""
    X = _linear_table(60)
    before = Autoencoder(code_dim=2, hidden=(8,), random_state=0, init="pca").fit(X)
    loaded = aekit.load(before.save(tmp_path / "model"))
    assert loaded.init == "pca" and Autoencoder().init == "auto"
    refit = clone(loaded).fit(X)
    assert "selection" not in (refit.history_.initial or {})
    assert np.array_equal(refit.transform(X), before.transform(X))
    old = aekit.load(Path(__file__).parent / "fixtures" / "model-0.1.0-wine")
    assert old.init == "random"


def test_the_search_needs_the_guards_own_threshold(monkeypatch) -> None:
    """Each step needs ``improvement_z`` standard errors: a gain of some 2.5 passes the default
    2 and not 3 (a user who asks the guard for more evidence asks the search too)."""
    import aekit.estimator.select as select

    monkeypatch.setattr(select, "_fold_errors", _fold_errors_where({"pca": 0.008, "random": -1}))
    rows, stats = torch.from_numpy(_linear_table(120)).float(), _stats(120, 8)
    params, record = select_start(_params(code_dim=2), rows, stats)
    assert 2 <= record.z < 3 and record.improvement_z == 0.0 and params["improvement_z"] == 0
    params, record = select_start(_params(code_dim=2, improvement_z=3.0), rows, stats)
    assert 2 <= record.z < 3 and record.improvement_z is None and params["improvement_z"] == 3
