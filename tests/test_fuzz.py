"""Property-based fuzzing of input validation: every input works or raises an AekitError.

"Works" means finite outputs of the right shape and a float dtype; "raises" means an
:class:`aekit.AekitError` with a one-line message, never a raw numpy/torch/sklearn error.
Run with ``-s`` to see how many cases each test tried and how they ended.
"""

import collections
import json
import shutil
import tempfile
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
SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-300, -1e-300, 1e-40, 1e20, -1e20, 1e38, -3.3e38]
SPECIAL += [3.5e38, 1e300, -1e300, 65504.0, 70000.0, np.nan, np.inf, -np.inf]
VALUES = st.one_of(st.floats(-5, 5), st.sampled_from(SPECIAL))
KINDS = ["float64", "float32", "float16", "int64", "int8", "uint8", "bool"]
KINDS += ["object", "object+str", "complex", "str", "datetime"]
OUTCOMES: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)


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


def outcome(test, action):
    """Run ``action``; an AekitError must be one clear line. Count how it ended."""
    try:
        result = action()
    except AekitError as exc:
        message = str(exc)
        assert message and "\n" not in message, repr(message)
        OUTCOMES[test][type(exc).__name__] += 1
        return None
    OUTCOMES[test]["works"] += 1
    return result


def check_output(out, rows, width):
    assert isinstance(out, np.ndarray) and out.dtype in (np.float32, np.float64)
    assert out.shape == ((rows, width) if width else (rows,))
    assert np.isfinite(out).all()


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    for test, counts in sorted(OUTCOMES.items()):
        print(f"\n{test}: {sum(counts.values())} cases, {dict(counts)}")


@pytest.fixture(scope="module")
def fitted():
    X = np.random.default_rng(0).normal(size=(40, N_FEATURES))
    return Autoencoder(**TINY).fit(X)


def _fit_then_use(X):
    est = Autoencoder(**TINY).fit(X)
    rows = len(X)
    check_output(est.transform(X), rows, 2)
    check_output(est.reconstruct(X), rows, est.n_features_in_)
    check_output(est.score_samples(X), rows, None)
    return est


@settings(max_examples=150)
@given(X=arrays())
def test_fit_on_any_array_works_or_raises_an_aekit_error(X):
    outcome("fit(array)", lambda: _fit_then_use(X))


@settings(max_examples=60)
@given(frame=frames())
def test_fit_on_any_frame_works_or_raises_an_aekit_error(frame):
    est = outcome("fit(frame)", lambda: _fit_then_use(frame))
    if est is not None:
        wrong = frame.rename(columns={"extra": "other"})
        outcome("transform(renamed frame)", lambda: est.transform(wrong))
        assert OUTCOMES["transform(renamed frame)"]["works"] == 0


@settings(max_examples=150)
@given(X=arrays())
def test_transform_and_scores_on_any_array(fitted, X):
    rows = X.shape[0] if X.ndim else 0
    outcome("transform", lambda: check_output(fitted.transform(X), rows, 2))
    outcome("reconstruct", lambda: check_output(fitted.reconstruct(X), rows, N_FEATURES))
    outcome("score_samples", lambda: check_output(fitted.score_samples(X), rows, None))


@settings(max_examples=100)
@given(codes=arrays(width=2))
def test_inverse_transform_on_any_array(fitted, codes):
    rows = codes.shape[0] if codes.ndim else 0
    outcome(
        "inverse_transform",
        lambda: check_output(fitted.inverse_transform(codes), rows, N_FEATURES),
    )


def test_the_cases_that_must_be_refused(fitted):
    """Spot checks the fuzzing above must have met: each is refused, not mangled."""
    with pytest.raises(aekit.DataError, match="beyond float32's range"):
        Autoencoder(**TINY).fit(np.full((4, 2), 1e300))
    with pytest.raises(aekit.DataError, match="column 1 overflows float32 in input scaling"):
        Autoencoder(**TINY, scaling="minmax").fit(np.array([[0, -3.3e38], [1, 3.3e38]]))
    with pytest.raises(aekit.DataError, match="X has 4 features"):
        fitted.transform(np.zeros((3, 4)))
    with pytest.raises(aekit.DataError, match="overflows float32 in the network"):
        fitted.transform(np.full((2, N_FEATURES), 3e38))
    assert fitted.inverse_transform(np.zeros((0, 2))).shape == (0, N_FEATURES)


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


@settings(max_examples=150)
@given(data=st.data())
def test_load_of_a_tampered_model_works_or_raises_model_file_error(saved, data):
    config = json.loads((saved / "config.json").read_text())
    weights = (saved / "weights.safetensors").read_bytes()
    paths = [p for p, _ in _paths(config) if p]
    path = data.draw(st.sampled_from(paths))
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
        import hashlib

        config["weights_sha256"] = hashlib.sha256(weights).hexdigest()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "m"
        shutil.copytree(saved, folder)
        (folder / "config.json").write_text(json.dumps(config))
        (folder / "weights.safetensors").write_bytes(weights)
        try:
            est = aekit.load(folder)
        except ModelFileError as exc:
            assert "\n" not in str(exc)
            OUTCOMES["load"]["ModelFileError"] += 1
            return
        OUTCOMES["load"]["works"] += 1
        X = np.random.default_rng(1).normal(size=(3, N_FEATURES))
        outcome("transform after load", lambda: check_output(est.transform(X), 3, 2))


def test_fuzzing_met_both_outcomes():
    """The fuzzers above are not vacuous: each saw inputs that work and inputs refused."""
    for test in ("fit(array)", "fit(frame)", "transform", "inverse_transform", "load"):
        if test in OUTCOMES:  # absent when only some tests were selected
            counts = OUTCOMES[test]
            assert counts["works"] > 0 and sum(counts.values()) > counts["works"], test
