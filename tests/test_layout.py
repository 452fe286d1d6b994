"""The package's layout rules: one table of defaults, and short source files."""

import ast
import dataclasses
import inspect

from aekit import Autoencoder, ModelConfig, TrainConfig
from aekit.config.options import RESOLVED_FIELDS, EstimatorOptions, estimator_defaults
from tests.import_graph import SOURCE, cycles, import_graph, imported_modules

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
    assert len(files) > 20 and SOURCE / "estimator" / "autoencoder.py" in files
    lengths = {str(p.relative_to(SOURCE)): len(p.read_text().splitlines()) for p in files}
    too_long = {name: n for name, n in lengths.items() if n > MAX_LINES}
    assert not too_long, f"over {MAX_LINES} lines: {too_long}"


def test_estimator_docstring_documents_every_parameter_from_the_table():
    doc = Autoencoder.__doc__
    assert "{parameters}" not in doc
    missing = [name for name in estimator_defaults() if f"\n    {name} : " not in doc]
    assert not missing, f"not in Autoencoder's Parameters section: {missing}"


# -- the import graph, read from the source (imports inside functions and TYPE_CHECKING too) --

# The families, bottom to top: each may import only the ones before it (and itself).
FAMILIES = (
    "errors",
    "_version",
    "config",
    "files",
    "data",
    "model",
    "training",
    "sae",  # sparse autoencoders for interpretability: uses training's checkpoints, no estimator
    "estimator",
    "anomaly",
    "impute",
    "analysis",
    "export",
    "",  # the package's own __init__: the lazy public names and aekit.load (every kind)
    "cli",
    "__main__",
)
ROOT_MODULES = {"__init__.py", "__main__.py", "_version.py", "errors.py", "py.typed"}
MAX_SINGLE_FILE_FAMILIES = 3


def family(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    assert len(graph) > 40 and graph["aekit.estimator.autoencoder"]  # the real graph
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle_through_a_function_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    # measurement.py imports data.missing only inside functions: the graph still has the edge
    source = SOURCE / "analysis" / "measurement.py"
    top_level = [n for n in ast.parse(source.read_text()).body if isinstance(n, ast.ImportFrom)]
    assert all("missing" not in (n.module or "") for n in top_level)
    assert "aekit.data.missing" in imported_modules(source, set(import_graph()))


def test_each_family_imports_only_the_families_below_it():
    rank = {name: i for i, name in enumerate(FAMILIES)}
    upward = sorted(
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        for target in targets
        if rank[family(target)] > rank[family(module)]
    )
    assert not upward, f"imports of a higher family: {upward}"


def test_the_root_holds_only_the_families():
    names = {p.name for p in SOURCE.iterdir() if not p.name.startswith("__pycache__")}
    folders = {n for n in names if (SOURCE / n).is_dir()}
    single = sorted(names - folders - ROOT_MODULES)
    assert len(single) <= MAX_SINGLE_FILE_FAMILIES, f"single-file modules in the root: {single}"
    assert all(n.removesuffix(".py") in FAMILIES for n in single + sorted(folders))
    assert all((SOURCE / f / "__init__.py").is_file() for f in folders)


def test_shard_kinds_agree_with_the_format_table():
    from aekit.data.folders import SHARD_KINDS
    from aekit.data.formats import find_format

    for kind in SHARD_KINDS:
        entry = find_format(f"shard{kind.suffix}")
        assert entry is not None and entry.name == kind.name
        assert entry.read is kind.read and entry.named_columns == kind.named_columns
        assert entry.stream is not None
