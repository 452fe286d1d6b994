"""What several test modules share: a fast training setup, file writers, callbacks, probes.

Test modules import it as ``from tests.helpers import FAST`` (``tests`` is a package and
pytest runs from the repository root); no test module imports another one or ``conftest``.
The adversarial case tables (tampered fields, files replaced by links, FIFOs and devices)
live here too: ``tests/test_trust.py`` and ``scripts/adversarial.py`` both generate from them.
"""

from __future__ import annotations

import io
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from aekit.training.callbacks import Callback

__all__ = [
    "DETECTOR_TAMPERED",
    "DOCS_TIMES",
    "FAST",
    "IMPUTER_TAMPERED",
    "IMPUTER_TAMPERED_TEXT",
    "ONNX_METADATA",
    "REPLACEMENTS",
    "TAMPERED",
    "TAMPERED_TEXT",
    "InterruptAt",
    "chromium",
    "cuda_available",
    "interrupted_and_resumed",
    "make_fifo",
    "npy_header_bytes",
    "score_in_worker",
    "set_field",
    "set_onnx_metadata",
    "write_parquet",
]

# Few epochs, a fixed seed, the CPU: enough to exercise a code path in well under a second.
FAST = {"epochs": 5, "batch_size": 64, "random_state": 0, "device": "cpu"}


# tests/test_docs.py stores the docs build's and each gallery example's time here;
# conftest prints it at the end of the run.
DOCS_TIMES = pytest.StashKey[str]()


def write_parquet(path: Path, X: np.ndarray, group_rows: int, **extra: np.ndarray) -> Path:
    """Write ``X`` as columns ``x0, x1, ...`` (plus ``extra``) in row groups of ``group_rows``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {f"x{i}": X[:, i] for i in range(X.shape[1])} | extra
    pq.write_table(pa.table(columns), path, row_group_size=group_rows)
    return path


class InterruptAt(Callback):
    """Raise KeyboardInterrupt as Ctrl-C would, at a chosen global step or epoch start."""

    def __init__(self, step: int | None = None, epoch: int | None = None) -> None:
        self.step, self.epoch = step, epoch

    def on_batch_end(self, trainer, batch, n_batches, **kwargs):
        if trainer.step == self.step:
            raise KeyboardInterrupt

    def on_epoch_begin(self, trainer, epoch, **kwargs):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def chromium() -> str | None:
    """The path of a Chromium browser on ``PATH``, or None (tests marked ``browser`` skip)."""
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)


def cuda_available() -> bool:
    """True where PyTorch sees a CUDA GPU (tests marked ``gpu`` skip otherwise)."""
    import torch

    return torch.cuda.is_available()


def interrupted_and_resumed(params: dict, X: object, folder: Path, step: int) -> tuple:
    """``(uninterrupted fit, fit interrupted by Ctrl-C at ``step`` and resumed)`` of ``X``."""
    import pytest

    from aekit import Autoencoder
    from aekit.training.checkpoint import latest_checkpoint

    reference = Autoencoder(**params).fit(X)
    with pytest.raises(KeyboardInterrupt):
        Autoencoder(**params, checkpoint_dir=str(folder)).fit(X, callbacks=(InterruptAt(step),))
    assert latest_checkpoint(folder) is not None
    return reference, Autoencoder(**params, checkpoint_dir=str(folder)).fit(X, resume=True)


def score_in_worker(folder: str, rows: object) -> object:
    """``aekit.load(folder).score_samples(rows)``: run in a ``spawn`` process pool's worker
    (a module-level function, importable there), as docs/user_guide/model_files.rst says."""
    import aekit

    return aekit.load(folder).score_samples(rows)


# -- adversarial cases: shared by tests/test_trust.py and scripts/adversarial.py ---------------
def make_fifo(path):
    path.unlink()
    os.mkfifo(path)


def _link_to(target):
    def replace(path):
        path.unlink()
        path.symlink_to(target)

    return replace


def _folder(path):
    path.unlink()
    path.mkdir()


def _link_to_copy(path):  # even a link to the very same bytes: only regular files are read
    copy = path.with_name("elsewhere")
    path.rename(copy)
    path.symlink_to(copy)


REPLACEMENTS = {
    "fifo": (make_fifo, "not a regular file"),
    "dev-zero": (_link_to("/dev/zero"), "symbolic link"),
    "dev-urandom": (_link_to("/dev/urandom"), "symbolic link"),
    "folder": (_folder, "not a regular file|cannot read"),
    "link-to-copy": (_link_to_copy, "symbolic link"),
}


def set_field(section, **values):
    def edit(config):
        (config if section is None else config[section]).update(values)

    return edit


# Fields a tampered config.json may change, each refused with one ModelFileError naming it.
TAMPERED = {
    "code_dim-99": (set_field("model", code_dim=99), "shape"),
    "code_dim-10**30": (set_field("model", code_dim=10**30), "code_dim"),
    "code_dim-negative": (set_field("model", code_dim=-2), "code_dim"),
    "code_dim-float": (set_field("model", code_dim=2.0), "code_dim"),
    "code_dim-text": (set_field("model", code_dim="2"), "code_dim"),
    "input_dim-mismatch": (set_field("model", input_dim=7), "shape"),
    "input_dim-zero": (set_field("model", input_dim=0), "input_dim"),
    "format_version--1": (set_field(None, format_version=-1), "format_version"),
    "format_version-0": (set_field(None, format_version=0), "format_version"),
    "format_version-float": (set_field(None, format_version=2.0), "format_version"),
    "format_version-text": (set_field(None, format_version="2"), "format_version"),
    "hidden-negative": (set_field("model", hidden=[-1]), "hidden"),
    "hidden-10**30": (set_field("model", hidden=[10**30]), "hidden"),
    "hidden-nested": (set_field("model", hidden=[[8]]), "hidden"),
    "hidden-text": (set_field("model", hidden="8"), "hidden"),
    "hidden-mapping": (set_field("model", hidden={"a": 8}), "hidden"),
    "hidden-extra-layer": (set_field("model", hidden=[8, 8]), "missing"),
    "image_shape-huge": (set_field("model", image_shape=[10**10] * 3), "image_shape"),
    "image_shape-two": (set_field("model", image_shape=[2, 3]), "image_shape"),
    "categorical_blocks-beyond": (set_field("model", categorical_blocks=[[0, 100]]), "categorical"),
    "dropout-infinity": (set_field("model", dropout=math.inf), "dropout"),
    "activation-unknown": (set_field("model", activation="evil"), "activation"),
    "sparsity_k-10**30": (set_field("model", sparsity="topk", sparsity_k=10**30), "sparsity_k"),
    "lr-nan": (set_field("train", lr=math.nan), "lr"),
    "epochs-10**30": (set_field("train", epochs=10**30), "epochs"),
    "batch_size-zero": (set_field("train", batch_size=0), "batch_size"),
    "threads-10**30": (set_field("train", threads=10**30), "threads"),
    "verbose-10**400": (set_field("train", verbose=10**400), "verbose"),
    "random_state-negative": (set_field("train", random_state=-1), "random_state"),
    "estimator-code_dim-mismatch": (set_field("estimator", code_dim=7), "code_dim=7"),
    "estimator-code_dim-text": (set_field("estimator", code_dim="x"), "code_dim"),
    "estimator-hidden-mismatch": (set_field("estimator", hidden=[64, 64]), "hidden"),
    "estimator-hidden-negative": (set_field("estimator", hidden=[-5]), "hidden"),
    "estimator-activation-mismatch": (set_field("estimator", activation="tanh"), "activation"),
    "estimator-batch_norm-as-int": (set_field("estimator", batch_norm=0), "batch_norm"),
    "n_features_in-negative": (set_field(None, n_features_in=-1), "n_features_in"),
    "n_features_in-10**30": (set_field(None, n_features_in=10**30), "n_features_in"),
}
# Edits of the JSON text itself: numbers Python's json reads but no config can hold.
TAMPERED_TEXT = {
    "code_dim-5000-digits": ("9" * 5000, "not valid JSON"),
    "code_dim-NaN": ("NaN", "code_dim"),
    "code_dim-Infinity": ("Infinity", "code_dim"),
    "code_dim-nested-100000-deep": ("[" * 100_000 + "]" * 100_000, "not valid JSON|code_dim"),
}


DETECTOR_TAMPERED = {
    "image_shape-10**30": (set_field(None, image_shape=[10**30, 1, 6]), "image_shape"),
    "image_shape-negative": (set_field(None, image_shape=[-1, 1, 6]), "image_shape"),
    "image_shape-other-width": (set_field(None, image_shape=[1, 2, 4]), "image_shape"),
    "n_members-10**30": (set_field(None, n_members=10**30), "n_members"),
    "n_members-not-n_estimators": (set_field(None, n_members=1), "n_members"),
    "n_estimators-negative": (set_field("params", n_estimators=-1), "n_members"),
    "contamination-nan": (set_field("params", contamination=math.nan), "contamination"),
    "contamination-2": (set_field("params", contamination=2.0), "contamination"),
    "contamination-text": (set_field("params", contamination="evil"), "contamination"),
    "code_term-text": (set_field("params", code_term="evil"), "code_term"),
    "random_state-negative": (set_field("params", random_state=-5), "random_state"),
    "image_shape-param-text": (set_field("params", image_shape="evil"), "image_shape"),
}


ONNX_METADATA = [
    *[("threshold", text, "threshold") for text in ("nan", "inf", "-inf", "high")],
    *[("n_features", text, "n_features") for text in ("5", "7", "-6", "6.0", "1" * 5000, "x")],
    ("feature_names", "[1, 2, 3, 4, 5, 6]", "feature_names"),
    ("feature_names", '["a", "b"]', "feature_names"),
    ("feature_names", '["a", "a", "b", "c", "d", "e"]', "feature_names"),
    ("feature_names", '{"a": 1}', "feature_names"),
    ("feature_names", "[[[[", "feature_names"),
    ("column_labels", '["a", "b", "c", "d", "e", "f"]', "column_labels"),
    ("column_labels", "[0, 1, 2]", "column_labels"),
    ("column_labels", "[0, 0, 1, 2, 3, 4]", "column_labels"),
    ("column_labels", "[true, false, 2, 3, 4, 5]", "column_labels"),
    ("kind", "rocket", "kind"),
]


def set_onnx_metadata(source, path, key: str, text: str):
    """Copy the ONNX file ``source`` to ``path`` with metadata ``key`` set to ``text``."""
    import onnx

    model = onnx.load(source)
    props = {prop.key: prop for prop in model.metadata_props}
    if key in props:
        props[key].value = text
    else:
        model.metadata_props.add(key=key, value=text)
    onnx.save(model, path)
    return path


def npy_header_bytes(shape, dtype="<f8"):
    buffer = io.BytesIO()
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def imputer_chain(**changed):
    """A blend at 1/2 with a linear chain of 2 steps on 6 columns, ``changed`` fields replaced."""
    chain = {
        "start": [0.0] * 6,
        "feature": [0, 5],
        "weights": [[0.0, 0.5, 0, 0, 0, 0], [0.25, 0, 0, 0, 0, 0.0]],
        "intercept": [0.0, 1.0],
    }
    return set_field(None, blend=0.5, linear={**chain, **changed})


# Fields a tampered imputer.json may change, each refused with one ModelFileError naming it.
IMPUTER_TAMPERED = {
    "n_members-10**30": (set_field(None, n_members=10**30), "n_members|members"),
    "n_members-zero": (set_field(None, n_members=0), "n_members"),
    "n_features_in-7": (set_field(None, n_features_in=7), "n_features_in|empty|columns"),
    "n_features_in-negative": (set_field(None, n_features_in=-1), "n_features_in"),
    "empty-short": (set_field(None, empty=[False]), "empty"),
    "low-text": (set_field(None, low=["x"] * 6), "low"),
    "high-bool": (set_field(None, high=[True] * 6), "high"),
    "feature_names-short": (set_field(None, feature_names=["a"]), "feature_names"),
    "feature_names-ints": (set_field(None, feature_names=list(range(6))), "feature_names"),
    "indicator-beyond": (set_field(None, indicator_features=[99]), "indicator_features"),
    "table-true": (set_field(None, table=True), "table"),
    "format_version--1": (set_field(None, format_version=-1), "format_version"),
    "n_estimators-negative": (set_field("params", n_estimators=-1), "n_estimators|n_members"),
    "dtypes-short": (set_field(None, dtypes=["float64"]), "dtypes"),
    "blend-text": (set_field(None, blend="0.5"), "blend"),
    "linear-list": (set_field(None, blend=0.5, linear=[1, 2]), "linear"),
    "linear-no-start": (set_field(None, blend=0.5, linear={"feature": []}), "start"),
    "linear-feature-float": (imputer_chain(feature=[1.7, 5]), "feature"),
    "linear-feature-bool": (imputer_chain(feature=[True, 5]), "feature"),
    "linear-feature-beyond": (imputer_chain(feature=[0, 6]), "feature"),
    "linear-feature-negative": (imputer_chain(feature=[-1, 5]), "feature"),
    "linear-weights-text": (imputer_chain(weights=[["2"] * 6, [0.0] * 6]), "weights"),
    "linear-weights-short": (imputer_chain(weights=[[0.0] * 5, [0.0] * 6]), "weights"),
    "linear-weights-steps": (imputer_chain(weights=[[0.0] * 6]), "weights"),
    "linear-weights-flat": (imputer_chain(weights=[0.0] * 12), "weights"),
    "linear-start-bool": (imputer_chain(start=[True] * 6), "start"),
    "linear-start-short": (imputer_chain(start=[0.0] * 5), "start"),
    "linear-intercept-10**400": (imputer_chain(intercept=[0.0, 10**400]), "intercept"),
    "linear-intercept-steps": (imputer_chain(intercept=[0.0]), "intercept"),
}
# Edits of imputer.json's text: a number no imputer can hold (a bound must be finite).
IMPUTER_TAMPERED_TEXT = {
    "low-NaN": ("low", "NaN", "low"),
    "high-Infinity": ("high", "Infinity", "high"),
    "low--Infinity": ("low", "-Infinity", "low"),
}
