"""The package's layout rules: one table of defaults, and short source files."""

import dataclasses
import inspect
from pathlib import Path

import aekit
from aekit import Autoencoder, ModelConfig, TrainConfig
from aekit.estimator_options import RESOLVED_FIELDS, EstimatorOptions, estimator_defaults

SOURCE = Path(aekit.__file__).parent
MAX_LINES = 500


def estimator_signature() -> dict[str, inspect.Parameter]:
    parameters = inspect.signature(Autoencoder.__init__).parameters
    return {name: p for name, p in parameters.items() if name != "self"}


def same(a, b) -> bool:
    """Equal and of the same type (so 0 is not False, nor 1 the same as 1.0)."""
    return type(a) is type(b) and a == b


def test_estimator_parameters_are_the_table_with_its_defaults():
    table, signature = estimator_defaults(), estimator_signature()
    assert sorted(signature) == sorted(table), (
        f"missing from Autoencoder: {sorted(set(table) - set(signature))}; "
        f"not in the table: {sorted(set(signature) - set(table))}"
    )
    wrong = {
        name: (p.default, table[name][0])
        for name, p in signature.items()
        if not same(p.default, table[name][0])
    }
    assert not wrong, f"(Autoencoder's default, the table's) differ: {wrong}"


def test_estimator_parameters_are_keyword_only_after_the_first():
    kinds = [p.kind for p in estimator_signature().values()]
    assert kinds[0] is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert all(kind is inspect.Parameter.KEYWORD_ONLY for kind in kinds[1:])


def test_config_fields_the_estimator_does_not_override_keep_their_defaults():
    overridden = {f.name for f in dataclasses.fields(EstimatorOptions)}
    signature = estimator_signature()
    fields = [*dataclasses.fields(ModelConfig), *dataclasses.fields(TrainConfig)]
    checked = [f for f in fields if f.name not in {*overridden, *RESOLVED_FIELDS}]
    assert len(checked) > 20  # the configs' fields, not an empty list
    wrong = {
        f.name: (f.default, signature[f.name].default if f.name in signature else "absent")
        for f in checked
        if f.name not in signature or not same(f.default, signature[f.name].default)
    }
    assert not wrong, f"(config's default, Autoencoder's) differ: {wrong}"


def test_no_source_file_is_longer_than_500_lines():
    files = sorted(SOURCE.rglob("*.py"))
    assert len(files) > 20 and SOURCE / "estimator.py" in files
    lengths = {str(p.relative_to(SOURCE)): len(p.read_text().splitlines()) for p in files}
    too_long = {name: n for name, n in lengths.items() if n > MAX_LINES}
    assert not too_long, f"over {MAX_LINES} lines: {too_long}"


def test_estimator_docstring_documents_every_parameter_from_the_table():
    doc = Autoencoder.__doc__
    assert "{parameters}" not in doc
    missing = [name for name in estimator_defaults() if f"\n    {name} : " not in doc]
    assert not missing, f"not in Autoencoder's Parameters section: {missing}"
