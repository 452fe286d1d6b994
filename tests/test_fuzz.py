"""Input validation: what must work works, what must be refused is, and nothing else leaks.

Fixed lists first: inputs that must fit and transform (every dtype, layout and container
of a valid table) and inputs that must be refused with a named error and message. Then
property-based fuzzing: any input works or raises an :class:`aekit.AekitError` with a
one-line message, never a raw numpy/torch/sklearn error, and a plainly valid one works.
"Works" means finite outputs of the right shape and a float dtype. Each fuzzer counts how
its cases ended (``-s`` shows them) and checks that it met both outcomes.
"""

import collections
import copy
import hashlib
import json
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import aekit
from aekit import AekitError, Autoencoder, ModelFileError

TINY = {"code_dim": 2, "hidden": (4,), "epochs": 1, "batch_size": 8, "random_state": 0}
TINY = {**TINY, "device": "cpu"}
N_FEATURES = 5


def _has_empty_column(data) -> bool:
    frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(np.asarray(data, object))
    return bool(frame.isna().all(axis=0).any())


def fit_tiny(data, **params):
    """``Autoencoder(**TINY)`` fitted on ``data``, its code narrower than the input.

    One column leaves no narrower code: the estimator must then warn that a code as wide as
    the input can copy it (and still fit). A column with no observed value must be warned of
    (and still fit); no other warning may come.
    """
    width = np.shape(np.asarray(data))[1] if np.ndim(np.asarray(data, dtype=object)) == 2 else 2
    est = Autoencoder(**{**TINY, "code_dim": max(1, min(2, width - 1)), **params})
    if width > 1:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est.fit(data)
        for w in caught:  # (a column of missing-value markers, "NA" text, is empty too)
            assert issubclass(w.category, aekit.AekitWarning), w
            assert "no observed value in the training rows" in str(w.message), w
        assert caught or not _has_empty_column(data)
        return est
    with warnings.catch_warnings(record=True) as caught:  # a refusal raises before any warning
        warnings.simplefilter("always")
        est.fit(data)
    assert [str(w.message) for w in caught if issubclass(w.category, aekit.AekitWarning)]
    assert all(issubclass(w.category, aekit.AekitWarning) for w in caught), caught
    return est


SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-300, -1e-300, 1e-40, 1e20, -1e20, 1e38, -3.3e38]
SPECIAL += [3.5e38, 1e300, -1e300, 65504.0, 70000.0, np.nan, np.inf, -np.inf]
VALUES = st.one_of(st.floats(-5, 5), st.sampled_from(SPECIAL))
KINDS = ["float64", "float32", "float16", "int64", "int8", "uint8", "bool"]
KINDS += ["object", "object+str", "complex", "str", "datetime"]


def _convert(base, kind):
    with np.errstate(all="ignore"):
        if kind in ("float64", "float32", "float16"):
            return base.astype(kind)
        if kind in ("int64", "int8", "uint8"):
            info = np.iinfo(kind)
            return np.nan_to_num(base).clip(info.min, info.max).astype(kind)
        if kind == "bool":
            return base > 0
        if kind == "complex":
            return base + 1j
        if kind == "str":
            return base.astype(str)
        if kind == "datetime":
            return np.nan_to_num(base).clip(-1e9, 1e9).astype("datetime64[s]")
        out = base.astype(object)
        if kind == "object+str" and out.size:
            out.flat[0] = "x"
        return out


@st.composite
def arrays(draw, width=N_FEATURES):
    """Arrays of 0-3 dimensions, mostly 2-D with ``width`` columns, of many dtypes."""
    shape = draw(
        st.one_of(
            st.tuples(st.integers(0, 12), st.just(width)),
            hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=6),
            st.just(()),
        )
    )
    base = draw(hnp.arrays(np.float64, shape, elements=VALUES))
    return _convert(base, draw(st.sampled_from(KINDS)))


@st.composite
def frames(draw):
    """pandas frames of numeric columns plus, often, one column that is not numeric."""
    n = draw(st.integers(1, 12))
    data = {
        f"c{i}": draw(hnp.arrays(np.float64, n, elements=VALUES)) for i in range(N_FEATURES - 1)
    }
    extra = draw(st.sampled_from(["float", "int", "bool", "str", "category", "date", "Int64"]))
    last = draw(hnp.arrays(np.float64, n, elements=st.floats(-5, 5)))
    data["extra"] = {
        "float": last,
        "int": last.astype(int),
        "bool": last > 0,
        "str": last.astype(str),
        "category": pd.Categorical(np.where(last > 0, "a", "b")),
        "date": pd.to_datetime(last * 1e9),
        "Int64": pd.array(np.where(last > 0, 1, None), dtype="Int64"),
    }[extra]
    return pd.DataFrame(data)


def _rows() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(40, N_FEATURES))


def _frame(X, last=None):
    """``X`` as a frame, its last column replaced by ``last`` when given."""
    columns = {f"c{i}": X[:, i] for i in range(X.shape[1] - 1)}
    return pd.DataFrame({**columns, "last": X[:, -1] if last is None else last})


# (input made from 40×5 normal rows, whether it holds exactly those float64 numbers)
MUST_WORK = {
    "float64": (lambda X: X, True),
    "float32": (lambda X: X.astype(np.float32), False),
    "float16": (lambda X: X.astype(np.float16), False),
    "int64": (lambda X: np.round(X * 10).astype(np.int64), False),
    "int8": (lambda X: np.round(X * 10).astype(np.int8), False),
    "uint8 image": (lambda X: np.round(np.abs(X) * 50).astype(np.uint8), False),
    "bool": (lambda X: X > 0, False),
    "list of lists": (lambda X: X.tolist(), True),
    "tuple of tuples": (lambda X: tuple(map(tuple, X)), True),
    "object of floats": (lambda X: X.astype(object), True),
    "Fortran order": (np.asfortranarray, True),
    "every other row of a view": (lambda X: np.repeat(X, 2, axis=0)[::2], True),
    "columns reversed view": (lambda X: X[:, ::-1], True),
    "transposed view": (lambda X: np.ascontiguousarray(X.T).T, True),
    "read-only": (lambda X: np.frombuffer(X.tobytes()).reshape(X.shape), True),
    "big-endian": (lambda X: X.astype(">f8"), True),
    "pandas float frame": (_frame, True),
    "pandas int and bool columns": (lambda X: _frame(X, X[:, -1] > 0), False),
    "pandas Int64 column": (
        lambda X: _frame(X, pd.array(np.round(X[:, -1] * 10).astype(int), dtype="Int64")),
        False,
    ),
    # one row is refused (one DataError): tests/test_impute_conventions.py
    "two rows": (lambda X: X[:2], True),
    "one column": (lambda X: X[:, :1], True),
    "a constant column": (lambda X: np.column_stack([X[:, :-1], np.full(len(X), 7.0)]), True),
    "unit-range rows": (lambda X: (X - X.min()) / (X.max() - X.min()), True),
}


@pytest.mark.parametrize("name", MUST_WORK)
def test_valid_input_fits_and_transforms(name):
    make, same_numbers = MUST_WORK[name]
    data = make(_rows())
    est = fit_tiny(data)
    rows = len(data)
    codes = est.transform(data)
    check_output(codes, rows, est.model_config_.code_dim)
    check_rows(est, est.reconstruct(data), data)
    check_output(est.score_samples(data), rows, None)
    check_rows(est, est.inverse_transform(codes), data)
    if same_numbers:  # the container and memory layout change nothing: same model, codes
        dense = np.ascontiguousarray(np.asarray(data, dtype=np.float64))
        reference = fit_tiny(dense)
        np.testing.assert_array_equal(codes, reference.transform(dense))


def test_memory_mapped_rows_fit_like_rows_in_memory(tmp_path):
    X = _rows()
    np.save(tmp_path / "rows.npy", X)
    mapped = np.load(tmp_path / "rows.npy", mmap_mode="r")
    codes = Autoencoder(**TINY).fit(mapped).transform(mapped)
    np.testing.assert_array_equal(codes, Autoencoder(**TINY).fit(X).transform(X))


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda X: np.where(X > 1, np.inf, X), aekit.DataError, "infinity"),
        (lambda X: np.full((4, 5), 7e4).astype(np.float16), aekit.DataError, "infinity"),
        (lambda X: X * 1e300, aekit.DataError, "beyond float32's range"),
        (lambda X: X[:0], aekit.DataError, "0 sample"),
        (lambda X: X[:, :0], aekit.DataError, "0 feature"),
        (lambda X: X[0], aekit.DataError, "Expected 2D array, got 1D array"),
        (lambda X: np.float64(1.0), aekit.DataError, "Expected 2D array, got scalar"),
        (lambda X: X[:, :, None], aekit.DataError, "dim 3"),
        (lambda X: X + 1j, aekit.DataError, "Complex data not supported"),
        (lambda X: np.where(X > 0, "x", "y"), aekit.DataError, "non-numeric"),
        (lambda X: np.array([[{"a": 1}] * 5] * 3), aekit.DataTypeError, "non-numeric"),
        (lambda X: _frame(X, pd.to_datetime(X[:, -1] * 1e9)), aekit.DataTypeError,
         "column 'last' holds datetime"),
    ],
)  # fmt: skip
def test_invalid_input_is_refused_by_name(make, error, match):
    with np.errstate(over="ignore"):
        data = make(_rows())
    with pytest.raises(aekit.AekitError, match=match) as caught:
        Autoencoder(**TINY).fit(data)
    assert caught.type is error


def test_what_a_fitted_model_must_refuse(fitted):
    with pytest.raises(aekit.DataError, match="X has 4 features, but Autoencoder is expecting 5"):
        fitted.transform(np.zeros((3, 4)))
    with pytest.raises(aekit.DataError, match="overflows float32 in the network"):
        fitted.transform(np.full((2, N_FEATURES), 3e38))
    with pytest.raises(aekit.DataError, match=r"codes must have shape \(n_samples, 2\)"):
        fitted.inverse_transform(np.zeros((3, 5)))
    with pytest.raises(aekit.DataError, match="column 1 overflows float32 in input scaling"):
        Autoencoder(**TINY, scaling="minmax").fit(np.array([[0, -3.3e38], [1, 3.3e38]]))
    assert fitted.inverse_transform(np.zeros((0, 2))).shape == (0, N_FEATURES)


def plainly_valid(X, *, width=None, min_rows=1):
    """True for input that must work: a 2-D numeric table of small finite numbers.

    A sufficient condition, not aekit's rule: other input may work too (numeric strings,
    large values), and the fuzzers accept either outcome there.
    """
    X = np.asarray(X)
    numeric = X.dtype.kind in "fiub" or (
        X.dtype.kind == "O" and all(isinstance(v, (float, int, np.number)) for v in X.flat)
    )
    if not numeric or X.ndim != 2 or len(X) < min_rows or X.shape[1] < 1:
        return False
    if width is not None and X.shape[1] != width:
        return False
    with np.errstate(all="ignore"):
        values = X.astype(np.float64)
    return bool(np.isfinite(values).all() and (np.abs(values) <= 1e6).all())


def fuzz(strategy, check, must_work, max_examples):
    """Run ``check`` on drawn inputs; return how often it worked and each refusal's type.

    An input that ``must_work`` may not be refused; any other may raise an AekitError, whose
    message must be one line. Any other exception fails the test.
    """
    counts = collections.Counter()

    @settings(max_examples=max_examples)
    @given(strategy)
    def run(value):
        valid = must_work(value)
        try:
            check(value)
        except AekitError as exc:
            if valid:
                raise AssertionError(f"valid input refused: {exc}") from exc
            message = str(exc)
            assert message and "\n" not in message, repr(message)
            counts[type(exc).__name__] += 1
        else:
            counts["works"] += 1
            counts["valid"] += valid

    run()
    print(f"\n{check.__name__}: {dict(counts)}")  # shown with -s
    return counts


def assert_met_both_outcomes(counts):
    """The fuzzer is not vacuous: it drew valid inputs, and inputs that were refused."""
    refused = sum(n for name, n in counts.items() if name not in ("works", "valid"))
    assert counts["valid"] > 0 and refused > 0, dict(counts)


def check_output(out, rows, width):
    assert isinstance(out, np.ndarray) and out.dtype in (np.float32, np.float64)
    assert out.shape == ((rows, width) if width else (rows,))
    assert np.isfinite(out).all()


def check_rows(est, out, data):
    """Rows back: an array, or for a table with categorical columns a frame like ``data``."""
    if est.table_layout_ is None:
        check_output(out, len(data), est.n_features_in_)
        return
    assert isinstance(out, pd.DataFrame) and list(out.columns) == list(data.columns)
    assert list(out.dtypes[-1:]) == list(data.dtypes[-1:]) and len(out) == len(data)


@pytest.fixture(scope="module")
def fitted():
    X = np.random.default_rng(0).normal(size=(40, N_FEATURES))
    return Autoencoder(**TINY).fit(X)


def _fit_then_use(X):
    est = fit_tiny(X)
    rows = len(X)
    check_output(est.transform(X), rows, est.model_config_.code_dim)
    check_rows(est, est.reconstruct(X), X)
    check_output(est.score_samples(X), rows, None)
    return est


def test_fit_on_any_array_works_or_raises_an_aekit_error():
    # Two rows at least: with unit-range data batch_norm="auto" turns batch norm on, which
    # refuses a single training row (with a message saying so).
    counts = fuzz(arrays(), _fit_then_use, lambda X: plainly_valid(X, min_rows=2), 150)
    assert_met_both_outcomes(counts)


def _frame_is_plainly_valid(frame):
    numeric = all(pd.api.types.is_numeric_dtype(dtype) for dtype in frame.dtypes)
    return (
        numeric and len(frame) >= 2 and plainly_valid(frame.to_numpy(np.float64, na_value=np.nan))
    )


def test_fit_on_any_frame_works_or_raises_an_aekit_error():
    def fit_frame(frame):
        est = _fit_then_use(frame)
        with pytest.raises(aekit.DataError, match="feature names should match"):
            est.transform(frame.rename(columns={"extra": "other"}))

    assert_met_both_outcomes(fuzz(frames(), fit_frame, _frame_is_plainly_valid, 60))


def test_transform_and_scores_on_any_array(fitted):
    def use(X):
        rows = X.shape[0] if X.ndim else 0
        check_output(fitted.transform(X), rows, 2)
        check_output(fitted.reconstruct(X), rows, N_FEATURES)
        check_output(fitted.score_samples(X), rows, None)

    counts = fuzz(arrays(), use, lambda X: plainly_valid(X, width=N_FEATURES), 150)
    assert_met_both_outcomes(counts)


def test_inverse_transform_on_any_array(fitted):
    def decode(codes):
        rows = codes.shape[0] if codes.ndim else 0
        check_output(fitted.inverse_transform(codes), rows, N_FEATURES)

    counts = fuzz(arrays(width=2), decode, lambda X: plainly_valid(X, width=2), 100)
    assert_met_both_outcomes(counts)


# -- model files ----------------------------------------------------------------------------
JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(), st.text()),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)


def _paths(obj, prefix=()):
    """Every (path, value) in a nested JSON object."""
    yield prefix, obj
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from _paths(value, (*prefix, i))


@pytest.fixture(scope="module")
def saved(fitted, tmp_path_factory):
    return fitted.save(tmp_path_factory.mktemp("model") / "m")


def test_load_of_a_tampered_model_works_or_raises_model_file_error(saved):
    original = json.loads((saved / "config.json").read_text())
    original_weights = (saved / "weights.safetensors").read_bytes()

    def load_tampered(data):
        config, weights = copy.deepcopy(original), original_weights
        path = data.draw(st.sampled_from([p for p, _ in _paths(config) if p]))
        action = data.draw(st.sampled_from(["replace", "delete", "add", "bytes"]))
        *parent_path, key = path
        parent = config
        for part in parent_path:
            parent = parent[part]
        if action == "replace":
            parent[key] = data.draw(JSON)
        elif action == "delete":
            del parent[key]
        elif action == "add" and isinstance(parent, dict):
            parent[data.draw(st.text(max_size=5))] = data.draw(JSON)
        elif action == "bytes":  # flip bytes of the weights, keeping the checksum honest
            at = data.draw(st.lists(st.integers(0, len(weights) - 1), min_size=1, max_size=4))
            raw = bytearray(weights)
            for i in at:
                raw[i] ^= data.draw(st.integers(1, 255))
            weights = bytes(raw[: data.draw(st.integers(1, len(raw)))])
            config["weights_sha256"] = hashlib.sha256(weights).hexdigest()
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "m"
            shutil.copytree(saved, folder)
            (folder / "config.json").write_text(json.dumps(config))
            (folder / "weights.safetensors").write_bytes(weights)
            try:
                est = aekit.load(folder)
            except AekitError as exc:
                assert isinstance(exc, ModelFileError), repr(exc)  # a bad file, nothing else
                raise
        X = np.random.default_rng(1).normal(size=(3, N_FEATURES))
        check_output(est.transform(X), 3, 2)

    counts = fuzz(st.data(), load_tampered, lambda data: False, 150)
    assert counts["works"] > 0 and counts["ModelFileError"] > 0, dict(counts)
