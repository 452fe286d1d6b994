"""The estimator's options on the command line, generated from the one table of defaults.

Every :class:`~aekit.Autoencoder` parameter is a row of
:func:`aekit.config.options.estimator_defaults`: its default, its one documentation text,
its choices and its type. :func:`add_estimator_options` turns each row into
``--name-with-dashes``: ``--flag``/``--no-flag`` for a bool, otherwise a value read as the
row's type says (``none`` where the parameter takes None, ``auto`` where it takes that word
beside other types, comma-separated integers for a tuple, one of the choices where there are
some). Its help is the text's first sentence and the table's
default. :func:`estimator_kwargs` reads the same rows back. An option the user does not pass is
absent from the parsed namespace (``argparse.SUPPRESS``) and is not forwarded: the library's
default applies, and the CLI states no default of its own.

Shorthands users already type are kept, each a word or a suffix, not a default:
``--sparsity l1:0.01`` (also ``kl:RATE``, ``topk:K``) and ``--noise gaussian:0.3`` also set the
kind's own parameter (:data:`SHORTHANDS`); ``--hidden none`` is no hidden layer and ``--patience
0`` never stops early (:data:`WORDS`); ``--seed`` is ``--random-state`` (:data:`ALIASES`).

Seeds
-----
``Autoencoder(random_state=None)`` draws a fresh seed at every fit, and the CLI's default is the
same: no ``--seed``, no fixed seed. But a command-line run should be repeatable from what it
leaves behind, so a command that trains without ``--seed`` draws the seed itself
(:func:`run_seed`), uses it for every random choice it makes (the held-out split and the model)
and reports it: ``aekit fit`` prints it in its summary and records it in ``fit.json`` (``--seed
N`` repeats the run exactly), ``aekit compare`` prints it. ``aekit demo`` alone keeps a fixed
seed, 0, as part of the demo's content, like its data.
"""

from __future__ import annotations

import argparse
import re
import secrets
from collections.abc import Callable, Collection
from typing import Any

from ..config.configs import NOISES, Option
from ..config.options import estimator_defaults

__all__ = [
    "ALIASES",
    "EXCLUDED",
    "NOT_FOR_COMPARISONS",
    "SHORTHANDS",
    "WORDS",
    "InterruptedRunError",
    "add_estimator_options",
    "add_quiet_option",
    "estimator_kwargs",
    "image_shape_type",
    "int_list",
    "option_value",
    "positive_int",
    "progress_callbacks",
    "run_seed",
]

# Parameters no command offers: the CLI reports training itself (a progress bar, or one line
# an epoch when stderr is not a terminal; -q for none), and verbose's log lines would repeat it.
EXCLUDED = frozenset({"verbose"})

# compare and demo fit one model per size in --code-dims: one --code-dim, or one checkpoint
# folder (and its settings) shared by all those fits, cannot make sense there.
NOT_FOR_COMPARISONS = frozenset(
    {"code_dim", "checkpoint_dir", "checkpoint_every", "checkpoint_every_steps", "keep_checkpoints"}
)

ALIASES = {"random_state": ("--seed",)}  # the CLI's older, shorter spelling

# Words with a meaning of their own for one parameter, beside "none" and "auto".
WORDS: dict[str, dict[str, Any]] = {
    "hidden": {"none": ()},
    "patience": {"0": None},
    "threads": {"torch": "torch"},
}

# --KIND_OPTION KIND:NUMBER sets the kind and the parameter its number belongs to.
SHORTHANDS: dict[str, dict[str, str]] = {
    "sparsity": {"l1": "sparsity_weight", "kl": "sparsity_target", "topk": "sparsity_k"},
    "noise": dict.fromkeys(NOISES, "noise_level"),
}


class InterruptedRunError(Exception):
    """Ctrl-C ended a command; the message says how to go on."""


def int_list(text: str) -> list[int]:
    """``"512,256"`` → ``[512, 256]``: comma-separated positive integers (argparse type)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def positive_int(text: str) -> int:
    """``"5"`` → ``5``: one positive integer (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _int_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))  # the estimator checks the widths


# How each type in the table's ``kind`` reads a value; "str" beside other types is the word
# "auto" (a default the estimator resolves from the data), and "None" is the word "none".
_READERS: dict[str, tuple[Callable[[str], Any], str]] = {
    "tuple of int": (_int_tuple, "INT,INT,..."),
    "int": (int, "INT"),
    "float": (float, "FLOAT"),
}


def _kinds(row: Option) -> list[str]:
    return row.kind.split(" or ")


def _words(name: str, row: Option) -> dict[str, Any]:
    kinds = _kinds(row)
    words: dict[str, Any] = {}
    if "str" in kinds and len(set(kinds) - {"None"}) > 1:
        words["auto"] = "auto"
    if "None" in kinds:
        words["none"] = None
    return {**words, **WORDS.get(name, {})}


def _value_parser(name: str, row: Option) -> Callable[[str], Any]:
    """The argparse ``type`` of a non-bool parameter: text → the value ``Autoencoder`` takes."""
    words = _words(name, row)
    choices = [c for c in row.choices or () if c is not None]
    readers = [_READERS[kind][0] for kind in _kinds(row) if kind in _READERS]
    free_text = not choices and not readers  # a str parameter: a path, a device, a name

    def parse(text: str) -> Any:
        if text.strip().lower() in words:
            return words[text.strip().lower()]
        if text in choices or free_text:
            return text
        for read in readers:
            try:
                return read(text)
            except ValueError:
                pass
        raise argparse.ArgumentTypeError(f"expected {_metavar(name, row)}, got {text!r}")

    parse.__name__ = name  # argparse names the type in some messages
    return parse


def _metavar(name: str, row: Option) -> str:
    choices = [str(c) for c in row.choices or () if c is not None]
    if choices:
        return "{" + ",".join([*choices, *_words(name, row)]) + "}"
    readers = [_READERS[kind][1] for kind in _kinds(row) if kind in _READERS]
    if "INT,INT,..." in readers and "INT" in readers:
        readers.remove("INT")  # one integer is a tuple of one
    if not readers:
        return name.upper()
    return "|".join([*readers, *(w for w in _words(name, row) if w.isalpha())])


def _shown(value: Any) -> str:
    """A default as it would be typed on the command line."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "none"
    return str(value)


_ABBREVIATIONS = re.compile(r"\b(al|e\.g|i\.e|cf|vs|etc)\.$")


def _first_sentence(doc: str) -> str:
    """The help text of a parameter: its doc up to the first full stop.

    Full stops inside parentheses or after an abbreviation ("Gao et al. use") do not count;
    ``%`` is escaped for argparse.
    """
    for match in re.finditer(r"[.!?](?=\s|$)", doc):
        sentence = doc[: match.end()]
        if sentence.count("(") == sentence.count(")") and not _ABBREVIATIONS.search(sentence):
            return sentence.replace("%", "%%")
    return doc.replace("%", "%%")


class _KindAndNumber(argparse.Action):
    """``--sparsity KIND[:NUMBER]``: store KIND, and NUMBER under the kind's own parameter."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        kind, number = values
        setattr(namespace, self.dest, kind)
        if number is not None:
            setattr(namespace, SHORTHANDS[self.dest][kind], number)


def _kind_and_number(name: str, row: Option, table: dict[str, Option]) -> Callable[[str], Any]:
    kind_of = _value_parser(name, row)
    pairs = SHORTHANDS[name]

    def parse(text: str) -> tuple[Any, Any]:
        kind, colon, number = text.partition(":")
        if kind.strip().lower() != "none" and kind not in pairs:
            raise argparse.ArgumentTypeError(
                f"unknown {name} {kind!r}: expected one of {', '.join(pairs)}"
            )
        value = kind_of(kind)
        if not colon:
            return value, None
        target = pairs.get(kind)
        if target is None:
            raise argparse.ArgumentTypeError(f"{name} none takes no ':NUMBER'")
        try:
            return value, _value_parser(target, table[target])(number)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"{name} {kind}: expected {_metavar(target, table[target])} ({target}) after "
                f"':', got {number!r}"
            ) from None

    parse.__name__ = name
    return parse


def add_estimator_options(
    parser: argparse.ArgumentParser,
    *,
    exclude: Collection[str] = (),
    required: Collection[str] = (),
    defaults: dict[str, Any] | None = None,
    table: dict[str, Option] | None = None,
    owner: str = "aekit.Autoencoder",
) -> list[str]:
    """Add one option per ``Autoencoder`` parameter (less :data:`EXCLUDED` and ``exclude``).

    ``required`` options must be given; ``defaults`` are a command's own defaults (the demo's
    seed), shown in its help and always forwarded. Every other option is forwarded only when
    given. Returns the parameter names added, in the table's order. ``table`` is another
    estimator's table of parameters (``aekit sae``: :class:`~aekit.config.sae.SAEConfig`'s),
    ``owner`` its name in the help.
    """
    table = estimator_defaults() if table is None else table
    defaults = defaults or {}
    group = parser.add_argument_group(
        "model and training",
        f"{owner}'s parameters; an option not given keeps the library's default.",
    )
    names = [name for name in table if name not in EXCLUDED and name not in exclude]
    for name in names:
        row = table[name]
        flags = ["--" + name.replace("_", "-"), *ALIASES.get(name, ())]
        help = _first_sentence(row.doc)
        if name in SHORTHANDS:
            pairs = ", ".join(f"{kind}:{target}" for kind, target in SHORTHANDS[name].items())
            help += f" KIND:NUMBER also sets the kind's parameter ({pairs})."
        if name in required:
            help += " (required)"
        elif name in defaults:
            help += f" (this command's default: {_shown(defaults[name])})"
        else:
            help += f" (default: {_shown(row.default)})"
        kwargs: dict[str, Any] = {
            "dest": name,
            "help": help,
            "default": defaults.get(name, argparse.SUPPRESS),
        }
        if name in required:
            kwargs["required"] = True
        if "bool" in _kinds(row):  # "auto" for bool-or-"auto" is the option left out
            group.add_argument(*flags, action=argparse.BooleanOptionalAction, **kwargs)
        elif name in SHORTHANDS:
            kwargs["metavar"] = _metavar(name, row).replace("}", "}[:NUMBER]")
            group.add_argument(
                *flags, type=_kind_and_number(name, row, table), action=_KindAndNumber, **kwargs
            )
        elif name == "image_shape":  # the reader aekit report shares
            read, kwargs["metavar"] = image_shape_type()
            group.add_argument(*flags, type=read, **kwargs)
        else:
            kwargs["metavar"] = _metavar(name, row)
            group.add_argument(*flags, type=_value_parser(name, row), **kwargs)
    return names


def image_shape_type() -> tuple[Callable[[str], Any], str]:
    """The one ``--image-shape`` reader, and its metavar, of every command that has it.

    ``1,28,28`` (channels, height, width), ``28,28`` (one channel), ``auto`` or ``none``,
    as ``Autoencoder(image_shape=...)`` takes it (``28x28`` is read as ``28,28``).
    """
    row = estimator_defaults()["image_shape"]
    parse = _value_parser("image_shape", row)

    def read(text: str) -> Any:
        return parse(text.strip().lower().replace("x", ","))

    read.__name__ = "image_shape"
    return read, _metavar("image_shape", row)


def estimator_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``Autoencoder`` keyword arguments: the estimator options present in ``args``.

    Iterates the one table, so every parameter the parser offers is forwarded and nothing
    else; options not given are absent from ``args`` and keep the library's defaults.
    """
    given = vars(args)
    return {name: given[name] for name in estimator_defaults() if name in given}


def option_value(args: argparse.Namespace, name: str) -> Any:
    """An estimator option's value: as given, else the library's default from the table."""
    return getattr(args, name, estimator_defaults()[name].default)


def run_seed(args: argparse.Namespace) -> int:
    """The seed of a training command: ``--seed`` as given, else a freshly drawn one.

    The caller uses it for every random choice and reports it (module docstring, "Seeds").
    """
    seed = option_value(args, "random_state")
    return secrets.randbits(32) if seed is None else int(seed)


def add_quiet_option(parser: argparse.ArgumentParser) -> None:
    """``-q``/``--quiet`` (no progress output, warnings only) and ``-v``/``--verbose``."""
    said = parser.add_mutually_exclusive_group()
    said.add_argument(
        "-q", "--quiet", action="store_true", help="no progress output; only warnings and errors"
    )
    said.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        dest="details",  # not "verbose": that is an Autoencoder parameter (EXCLUDED)
        help="also say how training was set up (the number of CPU threads and why)",
    )


def progress_callbacks(args: argparse.Namespace) -> tuple[Any, ...]:
    """The training callbacks of ``-q``/``--quiet``: a progress bar, or none."""
    from ..training.progress import ProgressBar

    return () if args.quiet else (ProgressBar(),)
