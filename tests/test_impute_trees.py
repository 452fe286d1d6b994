"""The imputer's extra-trees candidate: node arrays, the weighing, the file and ONNX."""

import copy
import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.ensemble import ExtraTreesRegressor

from aekit import Autoencoder, AutoencoderImputer, ModelFileError
from aekit.files import sha256, tensor_bytes
from aekit.impute.blend import TREE_PRIOR, TREE_WEIGHTS, _choose, weigh_candidates
from aekit.impute.neighbours import NeighbourFill, _nearest, _nearest_sum
from aekit.impute.trees import NODE_BUDGET, TREES, TreeFill, leaf_rows, tree_predict
from tests.helpers import FAST


def holed(X, share, seed=0):
    X = X.astype(np.float64, copy=True)
    X[np.random.default_rng(seed).random(X.shape) < share] = np.nan
    return X


def steps(n=240, seed=0):
    """A table whose first column is a step function of two others (trees draw it)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    X[:, 0] = 2.0 * np.sign(X[:, 1]) + (X[:, 2] > 0.5)
    return X


def test_the_node_arrays_predict_as_scikit_learns_forest():
    X = steps()
    rows = holed(X, 0.2)
    start = np.where(np.isnan(rows), 0.0, rows).astype(np.float32).astype(np.float64)
    trees = TreeFill.fit(start, rows, 0)
    assert len(trees.roots) == TREES * 5 and trees.depth > 0
    got = trees.fill(start)
    for j in range(5):
        seen, other = ~np.isnan(rows[:, j]), np.r_[0:j, j + 1 : 5]
        forest = ExtraTreesRegressor(
            n_estimators=TREES, min_samples_leaf=leaf_rows(240, 5), random_state=0, n_jobs=1
        ).fit(start[seen][:, other], rows[seen, j])
        np.testing.assert_allclose(got[:, j], forest.predict(start[:, other]), rtol=1e-12)
    holes = np.isnan(rows)
    only = trees.fill(start, holes)  # the walk of the rows with a hole, column by column
    np.testing.assert_array_equal(only[holes], got[holes])
    assert np.isnan(only[~holes]).all()
    with torch.no_grad():  # the graph's walk: every tree, every row, ``depth`` steps
        walked = tree_predict(torch.from_numpy(start), trees.tensors(), trees.depth, 5)
    np.testing.assert_allclose(walked.numpy(), got, rtol=1e-12)
    # a value on a split's float64 threshold's float32 neighbour goes where scikit-learn sends it
    first = int(trees.roots[0])
    column, cut = int(trees.feature[first]), float(trees.threshold[first])
    probe = np.repeat(start[:1], 2, axis=0)
    probe[:, column] = [cut, np.nextafter(np.float32(cut), np.float32(np.inf))]
    forest = ExtraTreesRegressor(
        n_estimators=TREES, min_samples_leaf=leaf_rows(240, 5), random_state=0, n_jobs=1
    ).fit(start[~np.isnan(rows[:, 0])][:, 1:], rows[~np.isnan(rows[:, 0]), 0])
    np.testing.assert_allclose(trees.fill(probe)[:, 0], forest.predict(probe[:, 1:]), rtol=1e-12)


def test_the_forests_grown_in_threads_are_the_forests_grown_in_turn(monkeypatch):
    from aekit.impute import trees as module

    rows = holed(steps(), 0.2)
    start = np.nan_to_num(rows)
    grown = {}
    for workers in (1, 3):
        monkeypatch.setattr(module, "fit_workers", lambda n, workers=workers: workers)
        grown[workers] = TreeFill.fit(start, rows, 0).arrays()
    assert grown[1].keys() == grown[3].keys()
    for name, values in grown[1].items():  # node for node, column by column, in order
        np.testing.assert_array_equal(grown[3][name], values)
    monkeypatch.undo()
    assert module.fit_workers(1) == 1 and 1 <= module.fit_workers(64) <= torch.get_num_threads()


def test_without_a_seed_the_forests_follow_numpys_global_state_in_any_thread_count(
    monkeypatch,
):
    from aekit.impute import trees as module

    rows = holed(steps(), 0.2)
    grown = []
    for workers in (1, 3, 3):
        monkeypatch.setattr(module, "fit_workers", lambda n, workers=workers: workers)
        np.random.seed(123)  # noqa: NPY002 (the global state is what is tested)
        grown.append(TreeFill.fit(np.nan_to_num(rows), rows, None).value)
    np.random.seed(124)  # noqa: NPY002
    other = TreeFill.fit(np.nan_to_num(rows), rows, None).value
    np.testing.assert_array_equal(grown[1], grown[0])
    np.testing.assert_array_equal(grown[2], grown[0])
    assert not np.array_equal(other, grown[0])


def test_the_fit_holds_a_forest_or_two_at_a_time_not_every_columns(monkeypatch):
    import gc
    import weakref

    from aekit.impute import trees as module

    alive: weakref.WeakSet = weakref.WeakSet()
    counts = []
    grow = module._grow

    def watched(*args):
        for forest in grow(*args):
            alive.add(forest)
            gc.collect()
            counts.append(len(alive))
            yield forest

    monkeypatch.setattr(module, "fit_workers", lambda n: 1)
    monkeypatch.setattr(module, "_grow", watched)
    rows = holed(steps(), 0.2)
    assert TreeFill.fit(np.nan_to_num(rows), rows, 0) is not None
    assert len(counts) == 5 and max(counts) <= 2  # the one taken, and the one before it


def test_leaves_grow_with_the_table_so_the_trees_stay_within_the_budget():
    assert leaf_rows(200, 10) == 1
    assert leaf_rows(5000, 20) == 6  # 2 x 5000 x 30 x 20 nodes at most / 1,000,000
    rows = holed(np.random.default_rng(0).normal(size=(3000, 8)), 0.1)
    trees = TreeFill.fit(np.nan_to_num(rows), rows, 0)
    assert trees.n_nodes <= NODE_BUDGET


def test_columns_with_fewer_than_two_values_get_no_trees():
    rows = holed(steps(60), 0.1)
    rows[:, 3] = np.nan
    rows[1:, 4] = np.nan  # one value
    trees = TreeFill.fit(np.nan_to_num(rows), rows, 0)
    assert set(trees.column.tolist()) == {0, 1, 2}
    assert np.isnan(trees.fill(np.nan_to_num(rows))[:, 3:]).all()


def test_saved_arrays_are_checked_before_any_walk():
    rows = holed(steps(60), 0.1)
    trees = TreeFill.fit(np.nan_to_num(rows), rows, 0)
    arrays = trees.arrays()
    TreeFill.from_arrays(arrays, trees.depth, 5, "here")
    n = trees.n_nodes
    first = np.arange(n) == 0
    cases = [
        ("left", np.where(np.arange(n) == 1, 0, arrays["left"])),  # points back: a loop
        ("right", np.where(first, n, arrays["right"])),  # beyond the last node
        ("feature", np.where(first, 5, arrays["feature"])),  # no such column
        ("column", np.full_like(arrays["column"], -1)),
        ("value", np.where(first, np.inf, arrays["value"])),
        ("threshold", np.where(first, np.nan, arrays["threshold"]).astype(np.float32)),
        ("roots", arrays["roots"][:-1]),  # lengths differ
        ("feature", arrays["feature"].astype(np.float64)),  # another dtype
        ("left", arrays["left"][:, None]),  # another shape
    ]
    for key, bad in cases:
        with pytest.raises(ModelFileError, match=r"^here: trees"):
            TreeFill.from_arrays({**arrays, key: bad}, trees.depth, 5, "here")
    with pytest.raises(ModelFileError, match="'value' must be a 1-D float64 array"):
        TreeFill.from_arrays({k: v for k, v in arrays.items() if k != "value"}, 3, 5, "here")
    for depth in (True, -1, 2.0):
        with pytest.raises(ModelFileError, match="depth must be an int"):
            TreeFill.from_arrays(arrays, depth, 5, "here")
    for depth in (0, trees.depth - 1, trees.depth + 1):  # a walk would end early, or walk on
        with pytest.raises(ModelFileError, match=f"depth {depth} is not the trees' depth"):
            TreeFill.from_arrays(arrays, depth, 5, "here")
    one_sided = arrays["right"].copy()
    leaf = int(np.flatnonzero(arrays["left"] == np.arange(n))[0])
    one_sided[leaf] = n - 1 if leaf < n - 1 else leaf  # a leaf that points on from one side
    if one_sided[leaf] != leaf:
        with pytest.raises(ModelFileError, match="out of range"):
            TreeFill.from_arrays({**arrays, "right": one_sided}, trees.depth, 5, "here")


def test_the_trees_share_follows_the_held_out_cells():
    truth = np.random.default_rng(1).normal(size=(300, 4))
    hidden = np.random.default_rng(2).random(truth.shape) < 0.2
    noise = truth + np.random.default_rng(3).normal(size=truth.shape)

    def errors(first, grown):
        return np.stack([(f - truth)[hidden] for f in (first, grown)])

    assert TREE_PRIOR in TREE_WEIGHTS and TREE_WEIGHTS[0] == (1.0, 0.0)
    assert _choose(errors(noise, truth), TREE_WEIGHTS, TREE_PRIOR) == (0.0, 1.0)
    assert _choose(errors(truth, noise), TREE_WEIGHTS, TREE_PRIOR) == (1.0, 0.0)
    assert _choose(errors(noise, noise), TREE_WEIGHTS, TREE_PRIOR) == TREE_PRIOR


def test_a_step_table_gets_trees_that_fill_it_better_and_they_save_and_load(tmp_path):
    X = steps(300)
    rows = holed(X, 0.2)
    imputer = AutoencoderImputer(n_estimators=1).fit(rows)
    assert imputer.trees_ is not None and imputer.tree_weight_ > 0
    holes = np.isnan(rows)
    filled = imputer.transform(rows)
    plain = copy.deepcopy(imputer)
    plain.trees_, plain.tree_weight_ = None, 0.0
    assert np.abs(filled - X)[holes].mean() < np.abs(plain.transform(rows) - X)[holes].mean()
    imputer.save(tmp_path / "trees")
    loaded = AutoencoderImputer.load(tmp_path / "trees")
    np.testing.assert_array_equal(loaded.transform(rows), filled)
    assert loaded.tree_weight_ == imputer.tree_weight_
    meta_path = tmp_path / "trees" / "imputer.json"
    meta = json.loads(meta_path.read_text())
    assert meta["format_version"] == 6 and set(meta["trees"]) == {"weight", "depth", "sha256"}
    for weight in (0.0, 1.5, True):
        meta_path.write_text(json.dumps({**meta, "trees": {**meta["trees"], "weight": weight}}))
        with pytest.raises(ModelFileError, match="'trees' must hold 'weight'"):
            AutoencoderImputer.load(tmp_path / "trees")
    meta_path.write_text(json.dumps(meta))
    arrays = tmp_path / "trees" / "trees.safetensors"
    raw = arrays.read_bytes()
    arrays.write_bytes(raw[:-8] + bytes(8))  # the same size, other node values
    with pytest.raises(ModelFileError, match="does not match the checksum"):
        AutoencoderImputer.load(tmp_path / "trees")
    arrays.write_bytes(raw)
    meta_path.write_text(json.dumps({**meta, "trees": {**meta["trees"], "depth": 1}}))
    with pytest.raises(ModelFileError, match="depth 1 is not the trees' depth"):
        AutoencoderImputer.load(tmp_path / "trees")
    tensors = imputer.trees_.tensors()  # another dtype, under a checksum that matches it
    retyped = tensor_bytes({**tensors, "value": tensors["value"].to(torch.bfloat16)})
    arrays.write_bytes(retyped)
    meta_path.write_text(
        json.dumps({**meta, "trees": {**meta["trees"], "sha256": sha256(retyped)}})
    )
    with pytest.raises(ModelFileError, match="'value' must be a float64 array"):
        AutoencoderImputer.load(tmp_path / "trees")
    arrays.write_bytes(raw)
    old = {k: v for k, v in meta.items() if k != "trees"}
    meta_path.write_text(json.dumps({**old, "format_version": 4}))  # what 4 wrote: no trees
    loaded = AutoencoderImputer.load(tmp_path / "trees")
    assert loaded.trees_ is None and loaded.tree_weight_ == 0.0


def test_weighing_grows_the_trees_only_where_given_the_members_fill_of_every_row():
    X = steps(200)
    rows = holed(X, 0.2)
    hidden = np.zeros_like(rows, dtype=bool)
    hidden[::7, 0] = ~np.isnan(rows[::7, 0])
    means = np.broadcast_to(np.nanmean(rows, axis=0), rows.shape)
    blend, _ = weigh_candidates(rows, hidden, means, lambda v: v, 0)
    assert blend.trees is None and blend.tree_weight == 0.0
    blend, _ = weigh_candidates(rows, hidden, means, lambda v: v, 0, means)
    assert blend.tree_weight > 0 and blend.trees is not None  # column 0 is steps of the others


def test_donors_at_equal_distances_are_taken_lowest_index_first():
    distance = torch.tensor([[3.0, 1.0, 1.0, 1.0, 0.5, float("inf")]])
    assert _nearest(distance, 3).tolist() == [[False, True, True, False, True, False]]
    assert _nearest(torch.full((1, 4), float("inf")), 2).tolist() == [[False] * 4]
    assert _nearest(distance.flip(1), 5).sum() == 5


def test_the_onnx_graph_replays_the_trees_on_integer_columns(tmp_path):
    pytest.importorskip("onnxruntime")
    from aekit.export import OnnxModel, to_onnx

    X = np.round(steps(200) * 2)  # integer values: many donors at equal distances
    rows = holed(X, 0.2)
    imputer = AutoencoderImputer(Autoencoder(code_dim=3, **FAST), n_estimators=2).fit(rows)
    imputer.neighbours_, imputer.neighbour_weight_ = NeighbourFill.from_rows(rows), 0.5
    imputer.blend_ = 0.5  # the members and the neighbours, then the trees on their fill
    imputer.trees_ = TreeFill.fit(imputer.transform(rows), rows, 0)
    imputer.tree_weight_ = 0.5
    to_onnx(imputer, tmp_path / "trees.onnx")
    got = OnnxModel(tmp_path / "trees.onnx").run(rows.astype(np.float32))["filled"]
    unit = np.nanstd(rows, axis=0)
    worst = float(np.max(np.abs(got - imputer.transform(rows)) / unit))
    assert worst <= 1e-5, worst


def test_the_quick_pick_of_donors_is_the_masks_pick():
    rng = np.random.default_rng(0)
    distance = torch.tensor(rng.integers(0, 4, size=(50, 30)).astype(np.float64))
    distance[rng.random(distance.shape) < 0.3] = float("inf")
    values = torch.tensor(rng.normal(size=30))
    total, found = _nearest_sum(distance, values, 5)
    chosen = _nearest(distance, 5).to(values.dtype)
    np.testing.assert_allclose(total.numpy(), (chosen @ values).numpy(), rtol=1e-12)
    np.testing.assert_array_equal(found.numpy(), chosen.sum(dim=1).numpy())


def test_the_neighbours_means_are_the_loaded_folders_to_the_last_bit():
    # the means were summed in the fit rows' memory order (a frame's or a Fortran array's):
    # a loaded folder's C-ordered rows summed them 1 ulp apart, and an all-NaN row's fill
    # (the column means) changed on load
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3)) * [1, 3, 0.1] + [0.3, -2, 7]
    X[rng.random(X.shape) < 0.2] = np.nan
    built = pd.DataFrame({j: X[:, j].copy() for j in range(3)}).to_numpy()  # as read_csv's
    assert not built.flags.c_contiguous
    for rows in (np.asfortranarray(X), built):
        fitted = NeighbourFill.from_rows(rows)
        loaded = NeighbourFill.from_json(fitted.to_json(), 3, "test")
        np.testing.assert_array_equal(loaded.column_mean, fitted.column_mean)
        empty = np.full((1, 3), np.nan)
        np.testing.assert_array_equal(loaded.fill(empty), fitted.fill(empty))
