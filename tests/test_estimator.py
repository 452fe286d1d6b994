import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from aekit import (
    AekitError,
    Autoencoder,
    ConfigError,
    DataError,
    DataTypeError,
    NotFittedError,
    load,
)
from aekit.analysis import decoder_basis, principal_angles, row_errors, sparsity_stats
from aekit.estimator.resolve import AUTO_CHANNELS, auto_epochs, auto_hidden
from aekit.training.trainer import batches_per_epoch
from tests.helpers import FAST


def test_check_estimator():
    est = Autoencoder(
        code_dim=1, hidden=(8,), epochs=3, batch_size=16, random_state=0, device="cpu"
    )
    results = check_estimator(est, on_fail=None)
    failed = [(r["check_name"], r["exception"]) for r in results if r["status"] == "failed"]
    assert not failed
    assert len(results) > 40


def test_fit_returns_self_and_sets_attributes(digits):
    est = Autoencoder(code_dim=3, **FAST)
    assert est.fit(digits[:200]) is est
    assert est.n_features_in_ == 64 and est.n_iter_ == 5
    assert est.model_config_.hidden == auto_hidden(64, 3) and est.model_config_.output == "sigmoid"
    assert est.scaling_ == "none"
    assert list(est.get_feature_names_out()) == ["autoencoder0", "autoencoder1", "autoencoder2"]


def test_float32_in_float32_out_float64_in_float64_out(digits):
    est = Autoencoder(code_dim=2, **FAST).fit(digits[:100])
    assert est.transform(digits[:5].astype(np.float32)).dtype == np.float32
    assert est.transform(digits[:5]).dtype == np.float64
    assert est.inverse_transform(np.zeros((2, 2))).shape == (2, 64)
    assert est.transform(digits[:5].astype(int)).dtype == np.float64


def test_errors_are_summed_in_the_scaled_space_and_original_units_on_request(rng):
    X = rng.normal(size=(300, 5)) * [1, 10, 100, 0.1, 5] + 50
    est = Autoencoder(code_dim=2, **FAST).fit(X)
    assert est.scaling_ == "standardize" and est.model_config_.output == "identity"
    scaled = est.scale_rows(X)
    assert np.allclose(scaled, (X - X.mean(axis=0)) / X.std(axis=0), rtol=1e-4, atol=1e-3)
    errors = row_errors(scaled, est.scale_rows(est.reconstruct(X)))
    assert np.allclose(est.reconstruction_error(X), errors, rtol=1e-4)
    assert np.allclose(est.score_samples(X), -est.reconstruction_error(X))
    assert est.score(X) == pytest.approx(-est.reconstruction_error(X).mean())
    raw = row_errors(X, est.reconstruct(X))
    assert np.allclose(est.reconstruction_error(X, units="original"), raw, rtol=1e-4)
    # in raw units the 100-wide column dominates; in the scaled space no column does
    assert raw.mean() > 100 * errors.mean()
    with pytest.raises(ConfigError, match="units="):
        est.reconstruction_error(X, units="pixels")
    assert np.allclose(est.inverse_transform(est.transform(X)), est.reconstruct(X), atol=1e-4)


@pytest.mark.parametrize("scaling", ["standardize", "minmax", "none"])
def test_scalings_are_inverted(scaling, rng):
    X = rng.normal(size=(200, 4)) * [1, 100, 0.01, 3] + [0, 1000, 0, -5]
    # Without batch norm: with scaling="none" the output must reach raw magnitudes (~1000),
    # which a batch-normalised hidden layer feeding an identity output learns only slowly.
    params = {**FAST, "epochs": 30, "lr": 1e-2, "batch_norm": False}
    est = Autoencoder(code_dim=3, hidden=(16,), scaling=scaling, init="random", **params)
    est.fit(X)
    baseline = row_errors(X, np.broadcast_to(X.mean(0), X.shape)).mean()
    assert est.reconstruction_error(X, units="original").mean() < baseline


def test_pickle_and_clone(digits):
    est = Autoencoder(code_dim=2, **FAST).fit(digits[:100])
    back = pickle.loads(pickle.dumps(est))
    assert np.array_equal(back.transform(digits[:10]), est.transform(digits[:10]))
    fresh = clone(est)
    assert not hasattr(fresh, "module_") and fresh.get_params() == est.get_params()


def test_pipeline_and_grid_search(digits):
    pipe = make_pipeline(StandardScaler(), Autoencoder(**FAST))
    grid = GridSearchCV(pipe, {"autoencoder__code_dim": [2, 6]}, cv=2).fit(digits[:300])
    assert grid.best_params_["autoencoder__code_dim"] == 6  # more code, less error
    assert grid.transform(digits[:4]).shape == (4, 6)


def test_set_output_pandas(digits):
    frame = pd.DataFrame(digits[:100], columns=[f"px{i}" for i in range(64)])
    est = Autoencoder(code_dim=2, **FAST).set_output(transform="pandas").fit(frame)
    out = est.transform(frame)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == ["autoencoder0", "autoencoder1"]
    assert list(est.feature_names_in_) == list(frame.columns)


@pytest.mark.parametrize(
    ("X", "error", "match"),
    [
        (np.array([[1.0, np.nan], [0.0, -np.inf]]), DataError, "infinity"),
        (np.array([[1.0, np.inf], [0.0, 1.0]]), DataError, "infinity"),
        (np.zeros((0, 3)), DataError, "0 sample"),
        (np.zeros(5), DataError, "2D array"),
        (np.zeros((2, 2, 2)), DataError, "dim"),
        (np.array([["a", "b"], ["c", "d"]]), DataError, "non-numeric"),
        (np.array([[{"a": 1}, 1.0]], dtype=object), DataTypeError, "non-numeric"),
    ],
)
def test_bad_input_raises_aekit_errors(X, error, match):
    with pytest.raises(error, match=match):
        Autoencoder(**FAST).fit(X)


def test_wrong_feature_count_and_not_fitted(digits):
    with pytest.raises(NotFittedError, match="not fitted"):
        Autoencoder().transform(digits[:2])
    est = Autoencoder(code_dim=2, **FAST).fit(digits[:50])
    with pytest.raises(DataError, match="X has 10 features, but Autoencoder is expecting 64"):
        est.transform(digits[:5, :10])
    with pytest.raises(DataError, match=r"shape \(n_samples, 2\)"):
        est.inverse_transform(np.zeros((3, 5)))
    with pytest.raises(AekitError, match="scaling"):
        Autoencoder(scaling="robust", **FAST).fit(digits[:50])


def test_linear_autoencoder_finds_pca_subspace(spectrum):
    X, k = spectrum
    ae = Autoencoder(
        code_dim=k,
        hidden=(),
        activation="identity",
        scaling="none",
        lr=3e-2,
        epochs=60,
        lr_schedule="cosine",
        patience=None,
        val_fraction=0.0,
        random_state=0,
        device="cpu",
    ).fit(X)
    pca = PCA(n_components=k).fit(X)
    angles = principal_angles(decoder_basis(ae), pca.components_.T)
    assert angles.max() < 2.0
    pca_error = row_errors(X, pca.inverse_transform(pca.transform(X))).mean()
    assert ae.reconstruction_error(X).mean() <= 1.01 * pca_error
    assert ae.model_config_.output == "identity"


def test_l1_sparsity_lowers_l0(digits):
    l0 = []
    for weight in (0.0, 3e-2):
        est = Autoencoder(
            code_dim=32,
            hidden=(64,),
            sparsity="l1",
            sparsity_weight=weight,
            **{**FAST, "epochs": 15},
        ).fit(digits[:600])
        codes = est.transform(digits[600:900])
        assert (codes >= 0).all()
        l0.append(sparsity_stats(codes)["l0"])
    assert l0[1] < 0.6 * l0[0]


def test_topk_codes_have_exactly_k_nonzeros(digits):
    est = Autoencoder(code_dim=32, hidden=(64,), sparsity="topk", sparsity_k=5, **FAST).fit(
        digits[:400]
    )
    codes = est.transform(digits[400:600])
    assert ((codes != 0).sum(axis=1) == 5).all()


def test_topk_dictionary_keeps_its_units_alive(digits):
    """Centred at the data's mean, no weight decay on the code: few units stay silent."""
    est = Autoencoder(
        code_dim=64, hidden=(), sparsity="topk", sparsity_k=4, sparsity_weight=0.0, **FAST
    ).fit(digits[:1400])
    assert est.module_.centred
    assert sparsity_stats(est.transform(digits[1400:]))["dead_fraction"] < 0.1  # seeded: 0.0


def test_kl_sparsity_moves_mean_activation_to_target(digits):
    means = []
    for weight in (0.0, 1.0):
        est = Autoencoder(
            code_dim=16,
            hidden=(64,),
            sparsity="kl",
            sparsity_weight=weight,
            sparsity_target=0.05,
            **{**FAST, "epochs": 20},
        ).fit(digits[:600])
        means.append(est.transform(digits[600:900]).mean())
    assert abs(means[1] - 0.05) < abs(means[0] - 0.05)


@pytest.mark.parametrize("noise", ["gaussian", "masking", "salt_and_pepper"])
def test_denoising_reconstructs_corrupted_input_better(digits, noise):
    rng = np.random.default_rng(0)
    train, test = digits[:1400], digits[1400:]
    level = 0.4
    if noise == "gaussian":
        corrupted = np.clip(test + rng.normal(0, level, test.shape), 0, 1)
    elif noise == "masking":
        corrupted = np.where(rng.random(test.shape) < level, 0.0, test)
    else:
        hit, salt = rng.random(test.shape) < level, rng.random(test.shape) < 0.5
        corrupted = np.where(hit, salt.astype(float), test)
    kwargs = {"code_dim": 16, "hidden": (64,), **FAST, "epochs": 40, "patience": None}
    plain = Autoencoder(**kwargs).fit(train)
    denoise = Autoencoder(noise=noise, noise_level=level, **kwargs).fit(train)
    plain_err = row_errors(test, plain.reconstruct(corrupted)).mean()
    denoise_err = row_errors(test, denoise.reconstruct(corrupted)).mean()
    assert denoise_err < 0.9 * plain_err


def test_image_shape_auto_builds_a_conv_model_that_round_trips(digits, tmp_path):
    est = Autoencoder(code_dim=4, image_shape="auto", **FAST).fit(digits[:200])
    assert est.model_config_.image_shape == (1, 8, 8)
    assert est.model_config_.hidden == AUTO_CHANNELS
    assert est.transform(digits[:7]).shape == (7, 4)
    est.save(tmp_path / "conv")
    again = load(tmp_path / "conv")
    assert np.allclose(again.reconstruct(digits[:5]), est.reconstruct(digits[:5]))
    two_d = Autoencoder(code_dim=2, image_shape=(8, 8), hidden=(4,), **FAST).fit(digits[:50])
    assert two_d.model_config_.image_shape == (1, 8, 8)


@pytest.mark.parametrize("shape", ["auto", "square", (1, 5, 5), 7])
def test_bad_image_shape_is_a_config_error(shape):
    X = np.random.default_rng(0).random((20, 10))
    with pytest.raises(ConfigError, match="image_shape"):
        Autoencoder(image_shape=shape, **FAST).fit(X)


def test_uint8_images_scale_by_their_common_range(digits):
    pixels = np.round(digits * 255).astype(np.uint8)
    est = Autoencoder(code_dim=4, hidden=(32,), **FAST).fit(pixels[:300])
    assert est.scaling_ == "global_minmax" and est.model_config_.output == "sigmoid"
    assert np.allclose(est.module_.offset.numpy(), 0) and np.allclose(est.module_.scale, 255)
    # the same images as floats in [0, 1] train the same network (up to float rounding)
    floats = Autoencoder(code_dim=4, hidden=(32,), **FAST).fit(pixels[:300] / 255.0)
    assert floats.scaling_ == "none"
    np.testing.assert_allclose(
        est.transform(pixels[300:310]), floats.transform(pixels[300:310] / 255.0), atol=1e-4
    )


def test_batch_norm_auto_is_on_for_unit_range_data_and_off_for_tables(digits):
    params = {"code_dim": 2, "hidden": (8,), **FAST}
    images = Autoencoder(**params).fit(digits[:100])  # pixels in [0, 1]
    table = Autoencoder(**params).fit(digits[:100] * 16 - 3)  # standardized
    assert images.model_config_.batch_norm and not table.model_config_.batch_norm
    forced = Autoencoder(batch_norm=True, **params).fit(digits[:100] * 16 - 3)
    assert forced.model_config_.batch_norm
    with pytest.raises(ConfigError, match="batch_norm='yes'"):
        Autoencoder(batch_norm="yes", **params).fit(digits[:100])


@settings(max_examples=300)
@given(n_features=st.integers(1, 5000), code_dim=st.integers(1, 256))
def test_hidden_auto_narrows_towards_the_code_within_its_bounds(n_features, code_dim):
    first, second = auto_hidden(n_features, code_dim)
    assert 64 <= first <= 512 and 32 <= second <= 256  # the stated bounds
    assert first >= second >= code_dim  # an hourglass: never narrower than the code
    wider_input, wider_code = (
        auto_hidden(n_features + 1, code_dim),
        auto_hidden(n_features, code_dim + 1),
    )
    assert all(a >= b for a, b in zip(wider_input, (first, second), strict=True))
    assert all(a >= b for a, b in zip(wider_code, (first, second), strict=True))


def test_hidden_auto_grows_with_the_input_until_its_cap():
    widths = [auto_hidden(d, 2) for d in (13, 64, 300, 784, 5000)]
    assert widths == sorted(widths) and len(set(widths)) > 2
    assert auto_hidden(10**6, 2) == (512, 256)


@settings(max_examples=300)
@given(
    n_rows=st.integers(2, 200_000),
    batch_size=st.sampled_from([1, 16, 64, 256, 4096]),
    val_fraction=st.sampled_from([0.0, 0.1, 0.2]),
)
def test_epochs_auto_gives_at_least_2000_steps_and_no_more_epochs_than_that_needs(
    n_rows, batch_size, val_fraction
):
    epochs = auto_epochs(n_rows, batch_size, val_fraction)
    steps = batches_per_epoch(n_rows, batch_size, val_fraction)
    assert epochs >= 100 and epochs * steps >= 2000
    assert epochs == 100 or (epochs - 1) * steps < 2000  # the fewest epochs that reach 2000
    if steps >= 20:  # big data: 100 epochs are already 2000 steps
        assert epochs == 100
    assert auto_epochs(2 * n_rows, batch_size, val_fraction) <= epochs  # more data, fewer


def test_epochs_auto_is_what_fit_uses_and_early_stopping_still_ends_it():
    X = np.random.default_rng(0).standard_normal((30, 3))
    est = Autoencoder(code_dim=1, hidden=(4,), patience=1, random_state=0, device="cpu").fit(X)
    assert est.train_config_.epochs == auto_epochs(30, 64, 0.1) > 100  # 1 batch an epoch
    assert est.n_iter_ < est.train_config_.epochs
