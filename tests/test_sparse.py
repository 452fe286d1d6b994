"""scipy.sparse input: every format, sparse == dense, the exact loss, lazy updates, resume."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import aekit.estimator.inference
import aekit.model.pca_start
from aekit import (
    Autoencoder,
    AutoencoderImputer,
    AutoencoderOutlierDetector,
    ConfigError,
    DataError,
    DataTypeError,
    Hourglass,
    ModelConfig,
    NotFittedError,
)
from aekit.data.sparse import CsrRows, SparseBatch
from aekit.data.stats import array_stats, csr_stats
from aekit.estimator.resolve import initial_model
from aekit.model.pca_start import principal_directions, sparse_principal_directions
from aekit.model.sparse_net import (
    SparseLinear,
    exact_squared_error,
    lazy_grads,
    scaled_batch,
    sparse_blocker,
    sparse_encode_pre,
)
from aekit.training.objective import loss_sum
from aekit.training.optim import LazyAdam
from aekit.training.sparse_step import SPARSE_MAX_DENSITY
from tests.helpers import FAST, interrupted_and_resumed


@pytest.fixture(scope="module")
def counts() -> sp.csr_array:
    """300 × 40 low-rank counts, 2.6 % non-zero (sparse_path="auto" keeps them sparse)."""
    rng = np.random.default_rng(0)
    rate = rng.gamma(1.0, 1.0, (300, 3)) @ rng.gamma(0.3, 1.0, (3, 40)) * 0.04
    X = sp.csr_array(rng.poisson(rate).astype(np.float64))
    assert 0.02 < X.nnz / np.prod(X.shape) < SPARSE_MAX_DENSITY
    return X


@pytest.fixture(scope="module")
def fitted(counts) -> Autoencoder:
    return Autoencoder(code_dim=3, hidden=(16,), **FAST).fit(counts)


FORMATS = ["coo", "csc", "dok", "lil", "dia", "bsr", "csr"]


@pytest.mark.parametrize("kind", ["matrix", "array"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_sparse_format_is_accepted_and_means_the_same_rows(fitted, counts, fmt, kind):
    make = sp.csr_matrix if kind == "matrix" else sp.csr_array
    with warnings.catch_warnings():  # DIA of 300 diagonals: scipy calls it inefficient
        warnings.simplefilter("ignore", sp.SparseEfficiencyWarning)
        X = make(counts).asformat(fmt)
    expected = fitted.transform(counts.toarray())
    assert np.allclose(fitted.transform(X), expected, atol=1e-5)
    assert np.allclose(fitted.score_samples(X), fitted.score_samples(counts.toarray()))


def test_int64_indices_and_fit_on_each_format(counts):
    X = sp.csr_array(counts)
    X.indices, X.indptr = X.indices.astype(np.int64), X.indptr.astype(np.int64)
    ae = Autoencoder(code_dim=2, hidden=(8,), **{**FAST, "epochs": 1}).fit(X.tocoo())
    assert ae.input_path_ == "sparse" and ae.scaling_ == "unit_variance"
    assert ae.module_.offset.abs().max() == 0  # no centring: the rows stay sparse


def test_sparse_and_dense_rows_give_the_same_results_on_one_model(fitted, counts):
    dense = counts.toarray()
    for method in ("transform", "reconstruct", "reconstruction_error", "scale_rows"):
        ours, theirs = getattr(fitted, method)(counts), getattr(fitted, method)(dense)
        assert np.allclose(ours, theirs, rtol=1e-5, atol=1e-5), method
    original = fitted.reconstruction_error(counts, units="original")
    assert np.allclose(original, fitted.reconstruction_error(dense, units="original"))
    assert fitted.transform(counts.astype(np.float32)).dtype == np.float32


def test_the_path_taken_is_recorded(counts, caplog):
    with caplog.at_level("INFO", logger="aekit"):
        ae = Autoencoder(code_dim=2, hidden=(8,), noise="gaussian", **FAST).fit(counts)
    assert ae.input_path_ == "densify" and "densify path" in caplog.text
    assert Autoencoder(code_dim=2, **FAST).fit(counts.toarray()).input_path_ == "dense"
    denser = sp.csr_array(np.where(counts.toarray() > 0, counts.toarray(), 0.5))
    assert Autoencoder(code_dim=2, **FAST).fit(denser).input_path_ == "densify"
    with pytest.raises(ConfigError, match="not possible"):
        Autoencoder(code_dim=2, noise="gaussian", sparse_path="sparse", **FAST).fit(counts)


def _model(counts, **params):
    base = {"code_dim": 3, "hidden": (12,), "output": "identity", "loss": "mse"}
    params = {**Autoencoder().get_params(), **FAST, **base, **params}
    rows = CsrRows(counts)
    stats = {**csr_stats(rows), "uint8": np.asarray(False), "sparse": True}
    module, _, _ = initial_model(params, rows, stats)
    with torch.no_grad():  # move off PCA's start, where the nonlinear branch is zero
        for p in module.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    return module.train(), rows


@pytest.mark.parametrize("scaling", ["unit_variance", "standardize"])
@pytest.mark.parametrize("gram", [True, False])
def test_the_sparse_loss_and_its_gradients_equal_the_dense_ones(counts, scaling, gram):
    module, rows = _model(counts, scaling=scaling, batch_norm=False)
    batch = rows.take(torch.arange(64))
    dense = module.scale_input(batch.dense())
    want = loss_sum(module(dense), dense, "mse")
    want.backward()
    want = want.detach()
    expected = {n: p.grad.clone() for n, p in module.named_parameters()}
    module.zero_grad()
    scaled = scaled_batch(module, batch)
    code = module.code_activation(sparse_encode_pre(module, scaled))
    got = exact_squared_error(module, code, scaled, gram=gram)
    got.backward()
    got, want = got.detach().item(), want.item()
    assert abs(got - want) <= 1e-5 * want
    for name, param in module.named_parameters():
        assert torch.allclose(param.grad, expected[name], rtol=1e-4, atol=1e-5), name


def test_the_lazy_gradient_and_step_touch_only_the_batch_columns(counts):
    weight = torch.nn.Parameter(torch.randn(5, counts.shape[1]))
    batch = CsrRows(counts).take(torch.arange(10))
    sink = lazy_grads(weight)
    out = SparseLinear.apply(weight, batch.rows(), batch.cols, batch.values, len(batch), sink)
    out.square().sum().backward()
    assert weight.grad is None  # nothing dense: the column gradient waits in the sink
    touched = set(batch.cols.tolist())
    ((cols, grad),) = sink
    assert set(cols.tolist()) == touched and grad.shape == (5, len(touched))
    twin = torch.nn.Parameter(weight.detach().clone())
    out = SparseLinear.apply(twin, batch.rows(), batch.cols, batch.values, len(batch), None)
    out.square().sum().backward()  # the dense gradient: zero outside the batch's columns
    assert torch.equal(twin.grad[:, cols], grad)
    assert not twin.grad[:, [c for c in range(counts.shape[1]) if c not in touched]].any()
    before = weight.detach().clone()
    LazyAdam([weight], lr=0.1, weight_decay=0.01).step()
    moved = {int(c) for c in torch.nonzero((weight.detach() != before).any(dim=0)).flatten()}
    assert moved == touched and len(touched) < counts.shape[1]


def test_dense_adam_on_the_sparse_path_trains_as_dense_rows_do(counts):
    params = {"code_dim": 3, "hidden": (16,), "output": "identity", "loss": "mse", **FAST}
    sparse = Autoencoder(sparse_optimizer="dense", scaling="none", **params).fit(counts)
    dense = Autoencoder(scaling="none", **params).fit(counts.toarray())
    assert sparse.input_path_ == "sparse"
    a, b = np.array(sparse.history_.train_loss), np.array(dense.history_.train_loss)
    assert np.allclose(a, b, rtol=1e-4)


@pytest.mark.parametrize("exact_max", [2048, 10])  # 10: by subspace iteration
def test_the_sparse_pca_start_equals_the_dense_one(counts, exact_max, monkeypatch):
    monkeypatch.setattr(aekit.model.pca_start, "SPARSE_EXACT_MAX_FEATURES", exact_max)
    monkeypatch.setattr(aekit.model.pca_start, "EXACT_MAX_FEATURES", exact_max)  # dense: the same
    rows = CsrRows(counts)
    offset, scale = torch.full((40,), 0.5), torch.from_numpy(csr_stats(rows)["std"]).float() + 1
    mean, comp = sparse_principal_directions(rows, offset, scale, 4)
    dense = torch.from_numpy(counts.toarray()).float()
    want_mean, want = principal_directions(dense, lambda x: (x - offset) / scale, 4)
    assert torch.allclose(mean, want_mean, atol=1e-5)
    assert torch.allclose(comp, want, atol=1e-4)
    stats, expected = csr_stats(rows), array_stats(counts.toarray())
    for key in ("min", "max", "mean", "std"):
        assert np.allclose(stats[key], expected[key]), key


def test_huge_dense_outputs_are_refused_with_the_limit(fitted, counts, monkeypatch):
    monkeypatch.setattr(aekit.estimator.inference, "DENSE_OUTPUT_LIMIT_BYTES", 1000)
    with pytest.raises(DataError, match=r"300 × 40 array .* in-memory limit of 1e-06 GB"):
        fitted.reconstruct(counts)
    with pytest.raises(DataError, match="aekit reconstruct"):
        fitted.inverse_transform(np.zeros((300, 3)))
    assert fitted.transform(counts).shape == (300, 3)  # codes are small: no limit


def test_nan_in_sparse_input_is_refused_naming_its_place(fitted, counts):
    X = sp.csr_array(counts, copy=True)
    X.data[5] = np.nan
    row = int(np.searchsorted(X.indptr, 5, side="right")) - 1
    with pytest.raises(DataError, match=f"row {row}, column {X.indices[5]}"):
        fitted.transform(X)


def test_composes_with_sparsity_masking_and_the_detector(counts):
    for extra in ({"sparsity": "topk", "sparsity_k": 2, "hidden": ()}, {"noise": "masking"}):
        ae = Autoencoder(code_dim=4, **{"hidden": (8,), **extra}, **FAST).fit(counts)
        assert ae.input_path_ == "sparse" and np.isfinite(ae.history_.train_loss).all()
    det = AutoencoderOutlierDetector(Autoencoder(code_dim=2, hidden=(8,), **FAST))
    labels = det.fit(counts).predict(counts.tocsc())
    assert np.array_equal(labels, det.predict(counts.toarray()))


def test_a_resumed_sparse_fit_is_bitwise_the_uninterrupted_one(counts, tmp_path):
    params = {"code_dim": 3, "hidden": (16,), "epochs": 3, "batch_size": 64, "device": "cpu"}
    params |= {"random_state": 0, "checkpoint_every_steps": 2, "noise": "masking"}
    reference, resumed = interrupted_and_resumed(params, counts, tmp_path / "ckpt", 5)
    assert resumed.history_.train_loss == reference.history_.train_loss
    assert np.array_equal(resumed.transform(counts), reference.transform(counts))


def test_partial_fit_on_sparse_batches(counts):
    ae = Autoencoder(code_dim=2, hidden=(8,), sparse_path="sparse", **FAST)
    for start in range(0, 300, 100):
        ae.partial_fit(counts[start : start + 100])
    assert ae.input_path_ == "sparse" and len(ae.history_) == 3


def test_a_partial_fit_stopped_inside_its_block_steps_is_refused_not_kept(counts, tmp_path):
    """Review #13: an exception in the backward pass after some output-weight blocks stepped
    leaves a model no run passes through: transform, save and partial_fit refuse it (they
    went on from it silently); fit starts afresh."""
    ae = Autoencoder(code_dim=2, hidden=(8,), sparse_path="sparse", **FAST)
    ae.partial_fit(counts[:100])
    optimizer, calls = ae._trainer_.optimizer, []

    def out_of_memory(param, rows, grad):  # the first block steps, then the backward fails
        LazyAdam.block_step(optimizer, param, rows, grad)
        calls.append(rows)
        raise MemoryError("simulated")

    optimizer.block_step = out_of_memory
    with pytest.raises(MemoryError):
        ae.partial_fit(counts[100:200])
    assert len(calls) == 1
    torn = r"partial_fit stopped inside an optimiser step \(MemoryError\)"
    for use in (ae.transform, ae.partial_fit):
        with pytest.raises(NotFittedError, match=torn):
            use(counts[:10])
    with pytest.raises(NotFittedError, match=torn):
        ae.save(tmp_path / "model")
    assert not (tmp_path / "model").exists()
    ae.fit(counts)
    assert ae.transform(counts[:10]).shape == (10, 2)


def test_a_sparse_batch_densifies_to_its_rows(counts):
    batch = SparseBatch.from_scipy(counts[:7])
    assert np.array_equal(batch.dense().numpy(), counts[:7].toarray().astype(np.float32))
    assert batch.padded(16).dense().shape == (16, 40)


# -- sparse rows with the other features: missing values, categorical columns -----------------
def test_a_model_with_missing_values_densifies_each_sparse_batch(counts, caplog):
    """missing=True reads a mask beside the rows: sparse rows train and infer a batch at a time
    made dense (the sparse first layer cannot take the mask), and give the dense rows' results."""
    params = {"code_dim": 3, "hidden": (16,), "missing": True, "scaling": "standardize",
              "init": "random", **FAST}  # fmt: skip
    with caplog.at_level("INFO", logger="aekit"):
        ae = Autoencoder(**params).fit(counts)
    assert ae.input_path_ == "densify" and "missing=True" in caplog.text
    dense = Autoencoder(**params).fit(counts.toarray())
    np.testing.assert_allclose(ae.history_.train_loss, dense.history_.train_loss, rtol=1e-4)
    for method in ("transform", "reconstruct", "reconstruction_error", "scale_rows"):
        ours, theirs = getattr(ae, method)(counts), getattr(ae, method)(counts.toarray())
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5, err_msg=method)
    with pytest.raises(ConfigError, match="sparse_path='sparse' is not possible here: missing"):
        Autoencoder(**params, sparse_path="sparse").fit(counts)


def test_categorical_blocks_keep_a_model_off_the_sparse_network():
    config = ModelConfig(input_dim=6, code_dim=2, hidden=(4,), categorical_blocks=((0, 3),))
    assert "categorical" in sparse_blocker(Hourglass(config))
    assert sparse_blocker(Hourglass(ModelConfig(input_dim=6, code_dim=2, hidden=(4,)))) is None


def test_sparse_rows_cannot_carry_categorical_columns(counts):
    import pandas as pd

    with pytest.raises(DataTypeError, match="sparse input cannot carry categorical columns"):
        Autoencoder(code_dim=2, categorical_features=[0], **FAST).fit(counts)
    table = pd.DataFrame(counts.toarray()[:, :5], columns=list("abcde"))
    table["kind"] = pd.Categorical(np.where(table["a"] > 0, "x", "y"))
    ae = Autoencoder(code_dim=2, hidden=(8,), **FAST).fit(table)
    numbers = sp.csr_array(np.ones((4, 6)))
    with pytest.raises(DataTypeError, match="cannot carry categorical columns"):
        ae.transform(numbers)
    detector = AutoencoderOutlierDetector(ae, prefit=True).fit(table)
    with pytest.raises(DataTypeError, match="cannot carry categorical columns"):
        detector.score_samples(numbers)


def test_nan_in_sparse_rows_says_to_densify_and_the_imputer_fills_it(counts):
    X = sp.csr_array(counts, copy=True)
    X.data[0] = np.nan
    with pytest.raises(DataError, match=r"sparse input contains NaN \(first at row \d+"):
        AutoencoderOutlierDetector(Autoencoder(code_dim=2, **FAST)).fit(X)
    imputer = AutoencoderImputer(Autoencoder(code_dim=2, hidden=(8,), **FAST), n_estimators=1)
    filled = imputer.fit(X).transform(X)  # like SimpleImputer: a stored NaN is a hole
    assert sp.issparse(filled) and filled.shape == X.shape
    assert np.isfinite(filled.data).all() and filled.nnz == X.nnz
