"""Configuration fields: one default and one documentation text each, checked, JSON round trip.

:func:`option` declares a field with its documentation; :func:`describe` reads a config
class's fields back as :class:`Option` rows, which write the numpydoc ``Parameters`` of the
configs and of the estimator (:func:`fill_parameters`) and generate the command line's options.
:class:`JsonConfig` gives the configs a strict JSON round trip; ``check`` and friends are the
checks their ``__post_init__`` make.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import textwrap
import types
import typing
from dataclasses import field
from typing import Any, NamedTuple, TypeVar

from ..errors import ConfigError

__all__ = [
    "MAX_INT",
    "JsonConfig",
    "Option",
    "check",
    "choice",
    "describe",
    "documented",
    "fill_parameters",
    "finite",
    "option",
    "ordered_pairs",
    "parameters_doc",
    "plain",
    "positive_int",
]

_C = TypeVar("_C", bound="JsonConfig")


def check(ok: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``ok``."""
    if not ok:
        raise ConfigError(message)


def choice(name: str, value: object, allowed: tuple[object, ...]) -> None:
    """Refuse ``value`` unless it is one of ``allowed``."""
    check(value in allowed, f"{name}={value!r} is not one of {', '.join(map(repr, allowed))}")


MAX_INT = 2**31 - 1
"""The largest count, width or size a config holds: beyond it a value is a tampered file."""


def plain(value: Any) -> Any:
    """``value`` with NumPy scalars as Python ones (``np.int64(3)`` → ``3``), in tuples too.

    Estimator parameters come so from ``np.arange`` grids (``GridSearchCV``); configs and
    JSON files hold Python values.
    """
    if isinstance(value, (tuple, list)):
        return type(value)(plain(v) for v in value)
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        return value.item()
    return value


def positive_int(name: str, value: object, *, minimum: int = 1) -> None:
    """Refuse ``value`` unless it is an int (not a bool) in ``[minimum, MAX_INT]``."""
    value = plain(value)
    is_int = isinstance(value, int) and not isinstance(value, bool)
    check(is_int and value >= minimum, f"{name} must be an integer >= {minimum}, got {value!r:.60}")
    check(value <= MAX_INT, f"{name} must be at most {MAX_INT}, got {value!r:.60}")


def ordered_pairs(name: str, pairs: object, limit: int) -> None:
    """``pairs`` is a tuple of ordered, non-overlapping ``(start, stop)`` in ``[0, limit]``."""
    end = 0
    for pair in pairs if isinstance(pairs, tuple) else (None,):
        ok = isinstance(pair, tuple) and len(pair) == 2
        ok = ok and all(isinstance(i, int) and not isinstance(i, bool) for i in pair)  # type: ignore[union-attr]
        ok = ok and end <= pair[0] < pair[1] <= limit  # type: ignore[index]
        check(ok, f"{name} must be ordered (start, stop) pairs within {limit}, got {pairs!r}")
        end = pair[1]  # type: ignore[index]


def finite(name: str, value: object, low: float, high: float, *, open_high: bool = False) -> None:
    """Refuse ``value`` unless it is a finite number in ``[low, high]`` (``open_high``: < high)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and low <= value and (value < high if open_high else value <= high)
    bracket = ")" if open_high else "]"
    check(ok, f"{name} must be a number in [{low}, {high}{bracket}, got {value!r:.60}")


class JsonConfig:
    """Shared JSON round-trip with strict key and type checks."""

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as a JSON-ready dict (tuples become lists)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, tuple):  # pairs too: ((0, 3),) → [[0, 3]]
                value = [list(v) if isinstance(v, tuple) else v for v in value]
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls: type[_C], data: object) -> _C:
        """Rebuild a configuration from :meth:`to_dict` output, refusing unknown keys or types.

        Every value is then checked as on creation (ranges, choices, integers at most
        :data:`MAX_INT`), so a tampered file is one :class:`ConfigError` naming the field.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"{cls.__name__} must be a JSON object, got {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} key(s): {', '.join(map(repr, unknown))}")
        required = {
            f.name
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        missing = sorted(required - set(data))
        if missing:
            raise ConfigError(f"missing {cls.__name__} key(s): {', '.join(map(repr, missing))}")
        data = {**getattr(cls, "ABSENT_MEANS", {}), **data}  # older files: the old behaviour
        kwargs = {key: _coerce(cls.__name__, key, value, hints[key]) for key, value in data.items()}
        return cls(**kwargs)


def _coerce(owner: str, key: str, value: object, hint: object) -> object:
    """Check ``value`` against a simple type hint; lists become tuples for tuple fields."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        *others, hint = [h for h in options if h is not type(None)]
        for other in others:  # int | str: the first type the value is
            with contextlib.suppress(ConfigError):
                return _coerce(owner, key, value, other)
        if others:
            try:
                return _coerce(owner, key, value, hint)
            except ConfigError:
                names = " or ".join(getattr(h, "__name__", str(h)) for h in [*others, hint])
                raise ConfigError(f"{owner}.{key} must be of type {names}, got {value!r}") from None
        origin = typing.get_origin(hint)
    if origin is tuple and typing.get_origin(typing.get_args(hint)[0]) is tuple:  # pairs
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{owner}.{key} must be a list of lists, got {value!r}")
        return tuple(_coerce(owner, key, v, typing.get_args(hint)[0]) for v in value)
    if origin is tuple:
        ok = isinstance(value, (list, tuple)) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        )
        if not ok:
            raise ConfigError(f"{owner}.{key} must be a list of integers, got {value!r}")
        return tuple(value)  # type: ignore[arg-type]
    expected = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}[hint]  # type: ignore[index]
    if not isinstance(value, expected) or (hint is not bool and isinstance(value, bool)):
        raise ConfigError(f"{owner}.{key} must be of type {hint.__name__}, got {value!r}")  # type: ignore[union-attr]
    return float(value) if hint is float else value


def option(default: Any, doc: str, *, choices: tuple[Any, ...] | None = None) -> Any:
    """A configuration field: its default and its one documentation text.

    The text is the field's documentation everywhere: the config's and the estimator's
    docstrings (numpydoc ``Parameters``) and, its first sentence, the CLI's ``--help``.
    """
    return field(default=default, metadata={"doc": doc, "choices": choices})


class Option(NamedTuple):
    """One documented configuration field: what :func:`describe` and the one table return."""

    default: Any  # the default (``dataclasses.MISSING`` for a required field)
    doc: str  # the one documentation text
    choices: tuple[Any, ...] | None  # the allowed values, where they are a fixed set
    kind: str  # the type, as numpydoc writes it (``int``, ``float or None``, ...)


def describe(cls: type) -> dict[str, Option]:
    """``{name: Option}`` of a configuration dataclass's documented fields, in field order."""
    hints = typing.get_type_hints(cls)
    return {
        f.name: Option(
            f.default, f.metadata["doc"], f.metadata.get("choices"), _kind(hints[f.name])
        )
        for f in dataclasses.fields(cls)
        if "doc" in f.metadata
    }


def _kind(hint: object) -> str:
    """A numpydoc type from a type hint: ``int``, ``float or None``, ``tuple of int``."""
    text = str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")
    text = text.replace("tuple[tuple[int, int], ...]", "tuple of (int, int)")
    text = text.replace("tuple[int, ...]", "tuple of int").replace(" | ", " or ")
    return text.replace("NoneType", "None")


def parameters_doc(table: dict[str, Option]) -> str:
    """The numpydoc ``Parameters`` entries of a table of options (unindented)."""
    lines = []
    for name, (default, doc, choices, kind) in table.items():
        if choices:
            kind = "{" + ", ".join(repr(c) for c in choices if c is not None) + "}"
            kind += " or None" if None in choices else ""
        required = default is dataclasses.MISSING
        lines.append(f"{name} : {kind}" + ("" if required else f", default={default!r}"))
        lines += [f"    {line}" for line in textwrap.wrap(doc, 88)]
    return "\n".join(lines)


def fill_parameters(docstring: str | None, table: dict[str, Option]) -> str:
    """``docstring`` with its ``{parameters}`` slot filled from ``table`` (4-space indent)."""
    entries = textwrap.indent(parameters_doc(table), "    ").lstrip()
    return (docstring or "").replace("{parameters}", entries)


def documented(cls: type[_C]) -> type[_C]:
    """Fill the ``{parameters}`` slot of a config's docstring from its fields' texts."""
    cls.__doc__ = fill_parameters(cls.__doc__, describe(cls))
    return cls
