"""init="pca": training starts at PCA's solution and keeps it unless an epoch clearly beats it."""

import logging
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.datasets import load_diabetes, load_digits, load_wine
from sklearn.decomposition import PCA

from aekit import Autoencoder, EarlyStopping
from aekit.analysis import measure, split_indices
from aekit.estimator.resolve import initial_model
from aekit.model.pca_start import principal_directions


def start(X, **params):
    """The network a fit would start from, and X in its scaled space."""
    est = Autoencoder(random_state=0, **params)
    rows, stats = est._rows_and_stats(X, reset=True)
    module, _, _ = initial_model(est.get_params(), rows, stats)
    with torch.no_grad():
        scaled = module.scale_input(torch.from_numpy(np.asarray(X, dtype=np.float32)))
        recon = module.eval()(scaled).recon
    return module, scaled.double().numpy(), recon.double().numpy()


def pca_error(Z, k):
    pca = PCA(k).fit(Z)
    return ((pca.inverse_transform(pca.transform(Z)) - Z) ** 2).sum(axis=1).mean()


@pytest.mark.parametrize(
    "params",
    [
        {"code_dim": 3},  # deep: a linear path beside the nonlinear branches
        {"code_dim": 3, "hidden": ()},  # linear
        {"code_dim": 3, "batch_norm": True, "noise": "masking", "dropout": 0.1},
        {"code_dim": 5, "hidden": (32, 16, 8), "activation": "tanh"},
    ],
)
def test_the_start_reconstructs_as_pca_does_and_a_random_start_does_not(params):
    X = load_wine().data
    module, Z, recon = start(X, **params)
    assert module.pca_start == "exact"
    error, reference = ((recon - Z) ** 2).sum(axis=1).mean(), pca_error(Z, params["code_dim"])
    assert error == pytest.approx(reference, rel=1e-4)
    _, Z, recon = start(X, init="random", **params)
    assert ((recon - Z) ** 2).sum(axis=1).mean() > 1.5 * reference


def test_images_start_at_pca_through_the_sigmoid_to_first_order():
    X = load_digits().data / 16.0  # [0, 1]: sigmoid output, BCE loss
    for params in ({"code_dim": 8}, {"code_dim": 8, "image_shape": "auto"}):
        module, Z, recon = start(X, **params)
        assert module.config.output == "sigmoid" and module.pca_start == "logit"
        error = ((recon - Z) ** 2).sum(axis=1).mean()
        assert error == pytest.approx(pca_error(Z, 8), rel=0.1)  # first order: within 10 %


def test_an_l1_dictionary_starts_at_signed_pairs_of_principal_directions():
    X = load_wine().data
    module, Z, recon = start(X, code_dim=6, hidden=(), sparsity="l1", sparsity_weight=0.0)
    assert module.pca_start == "signed_pairs"
    codes = module.encode(torch.from_numpy(Z).float()).detach().numpy()
    assert (codes >= 0).all() and ((codes[:, 0::2] > 0) & (codes[:, 1::2] > 0)).sum() == 0
    error = ((recon - Z) ** 2).sum(axis=1).mean()  # 6 units: PCA with 3 components
    assert error == pytest.approx(pca_error(Z, 3), rel=1e-4)


def test_topk_and_kl_codes_keep_the_random_start():
    X = load_wine().data
    for params in ({"sparsity": "topk", "sparsity_k": 2}, {"sparsity": "kl"}):
        module, _, _ = start(X, code_dim=4, **params)
        assert module.pca_start is None and not module.config.linear_path


def test_wide_data_uses_the_subspace_iteration_and_finds_the_same_subspace(monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 60)) + 0.01 * rng.normal(size=(400, 60))
    rows = torch.from_numpy(X.astype(np.float32))
    mean, exact = principal_directions(rows, lambda x: x, 4)
    monkeypatch.setattr("aekit.model.pca_start.EXACT_MAX_FEATURES", 10)
    mean_wide, wide = principal_directions(rows, lambda x: x, 4, seed=1)
    assert torch.allclose(mean, mean_wide)
    overlap = torch.linalg.svdvals(exact @ wide.T)  # cosines of the principal angles
    assert overlap.min() > 0.9999
    assert torch.allclose(wide @ wide.T, torch.eye(4, dtype=torch.float64), atol=1e-10)


def test_the_start_is_kept_when_training_only_overfits(caplog):
    # Gaussian rows: PCA is the best a code can do; a big network can only overfit them.
    X = np.random.default_rng(0).normal(size=(300, 10)) * np.linspace(3, 0.5, 10)
    params = {"code_dim": 3, "hidden": (256, 256), "epochs": 60, "patience": None}
    with caplog.at_level(logging.INFO, logger="aekit"):
        ae = Autoencoder(random_state=0, device="cpu", **params).fit(X)
    assert ae.history_.best_epoch == 0
    assert "the start is kept" in caplog.text or "no epoch beat the starting model" in caplog.text
    assert ae.history_.initial is not None and ae.history_.initial["val_error"] > 0
    _, Z, recon = start(X, **params)  # the kept weights are the start's
    kept = ae.reconstruction_error(X)
    assert np.allclose(kept, ((recon - Z) ** 2).sum(axis=1), rtol=1e-4)


def test_a_clear_improvement_replaces_the_start():
    X = load_digits().data / 16.0
    ae = Autoencoder(code_dim=2, random_state=0, device="cpu", epochs=30).fit(X)
    assert ae.history_.best_epoch > 0
    assert ae.history_.initial["best_epoch_z"] > 2
    assert min(r["val_error"] for r in ae.history_.records) < ae.history_.initial["val_error"]


def _stopping_run(values, patience=3, initial=1.0):
    """Feed EarlyStopping a start's validation error and epochs' values; (stops, stopping)."""
    module = torch.nn.Linear(2, 2)
    stops = []
    trainer = SimpleNamespace(
        history=SimpleNamespace(initial={"val_error": initial}),
        module=module,
        request_stop=lambda reason: stops.append(reason),
    )
    stopping = EarlyStopping(patience)
    stopping.on_train_begin(trainer)
    for epoch, value in enumerate(values, start=1):
        stopping.on_epoch_end(trainer, record={"epoch": epoch, "val_error": value})
        if stops:
            return epoch, stopping
    return None, stopping


def test_patience_counts_from_the_best_trained_epoch_not_from_the_start():
    # The first epochs of a run from PCA's solution are worse than the start on the
    # validation rows (the start saw them) but improving: training goes on past them.
    stopped, stopping = _stopping_run([1.05, 1.04, 1.03, 1.02, 0.95, 0.97])
    assert stopped is None and stopping.best_epoch == 5
    # Trained epochs that stop improving among themselves still stop the run...
    stopped, stopping = _stopping_run([1.05, 1.06, 1.07, 1.08, 0.5])
    assert stopped == 4 and stopping.best_epoch == 0  # ... and the start is kept
    # ... as do epochs that no longer beat the best trained one.
    stopped, stopping = _stopping_run([0.9, 0.95, 0.96, 0.97])
    assert stopped == 4 and stopping.best_epoch == 1


def test_a_run_from_pca_trains_on_past_first_epochs_worse_than_the_start():
    # diabetes, 80 % of its rows, code 6: the first epochs score worse than PCA's solution on
    # the validation rows (which that solution was fitted on); the run used to stop there.
    X = load_diabetes().data
    train, test = split_indices(len(X), 0.2, 1)
    ae = Autoencoder(code_dim=6, init="pca", random_state=1, device="cpu").fit(X[train])
    history = ae.history_
    start = history.initial["val_error"]
    assert min(r["val_error"] for r in history.records[:2]) > start
    assert history.best_epoch > 10 and history.initial["best_epoch_z"] > 2
    assert measure(ae, X[train], X[test]).ratio < 0.9  # held-out rows: below PCA's error
