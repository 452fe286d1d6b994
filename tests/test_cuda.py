"""The same code paths on a CUDA GPU: marked ``gpu``, skipped where PyTorch sees none.

Run them on a GPU machine with ``python -m pytest -m gpu``.
"""

import warnings

import numpy as np
import pytest
import torch

import aekit
from aekit.cli import main

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def rows(digits):
    return digits.astype(np.float32)


def fit(rows, device, **params):
    options = {"hidden": (32,), "epochs": 3, "batch_size": 64, "random_state": 0}
    return aekit.Autoencoder(4, device=device, **{**options, **params}).fit(rows)


def test_a_gpu_fit_matches_the_cpu_fit(rows):
    """Same seed, same rows, same steps: the two devices differ only by float rounding."""
    cpu, gpu = fit(rows, "cpu"), fit(rows, "cuda")
    assert gpu.module_.offset.device.type == "cuda"
    errors = [float(m.reconstruction_error(rows).mean()) for m in (cpu, gpu)]
    assert errors[1] == pytest.approx(errors[0], rel=0.02), errors
    codes = [m.transform(rows) for m in (cpu, gpu)]
    assert np.abs(codes[0] - codes[1]).max() <= 0.02 * np.abs(codes[0]).max()


def test_training_steps_never_wait_for_the_gpu(rows):
    """No host-device sync per step (batch indices live on the device; no ``.item()``).

    The syncs left are per fit or per epoch (the upload, the epoch's loss totals), so four
    times the steps must not add a single one.
    """

    def syncs(batch_size):
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                fit(rows, "cuda", epochs=2, batch_size=batch_size, val_fraction=0.0, patience=None)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        return sorted(f"{w.filename}:{w.lineno}" for w in caught if "synchroniz" in str(w.message))

    few, many = syncs(64), syncs(16)  # 58 and 226 steps
    assert len(many) == len(few), f"{len(few)} syncs at {few}, then {len(many)} at {many}"


def test_a_bf16_gpu_model_loads_and_encodes_on_the_cpu(rows, tmp_path):
    gpu = fit(rows, "cuda", precision="bf16", epochs=10)
    losses = gpu.history_.train_loss
    assert np.isfinite(losses).all() and losses[-1] < 0.8 * losses[0]
    back = aekit.load(gpu.save(tmp_path / "model"))
    assert back.module_.offset.device.type == "cpu"
    np.testing.assert_allclose(back.transform(rows), gpu.transform(rows), rtol=1e-4, atol=1e-4)


def test_streamed_file_trains_on_the_gpu(rows, tmp_path):
    """``fit(path)`` streams blocks from disk through pinned memory to the GPU."""
    path = tmp_path / "rows.npy"
    np.save(path, rows)
    streamed = fit(str(path), "cuda", epochs=5)
    in_memory = fit(rows, "cuda", epochs=5)
    ratio = float(streamed.reconstruction_error(rows).mean()) / float(
        in_memory.reconstruction_error(rows).mean()
    )
    assert 0.8 < ratio < 1.25, ratio  # other batch order, same quality


def test_cli_fits_on_the_gpu_and_the_file_encodes_anywhere(rows, tmp_path, capsys):
    data = tmp_path / "rows.npy"
    np.save(data, rows)
    model, codes = tmp_path / "model", tmp_path / "codes.npy"
    options = ["--hidden", "32", "--epochs", "3", "--device", "cuda", "--precision", "bf16"]
    assert main(["fit", str(data), "--code-dim", "4", *options, "-q", "-o", str(model)]) == 0
    assert main(["encode", str(model), str(data), "-o", str(codes)]) == 0
    out = np.load(codes, allow_pickle=False)
    assert out.shape == (len(rows), 4) and np.isfinite(out).all()
