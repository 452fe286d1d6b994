"""THE file core: headers, checksums, JSON and safetensors, for every aekit folder layout.

A saved model, detector, imputer and a training checkpoint are each a *layout* of these
pieces: a JSON header that names its ``format`` and ``format_version`` and the SHA-256 of the
binary file beside it, and tensors in safetensors (no pickle: loading only parses JSON and
safetensors, nothing in a file is executed). This module reads and writes bytes, dicts and
tensors; it builds no model and no estimator (the layouts that do live with what they build).
PyTorch and safetensors are imported by the functions that handle tensors, so the JSON side
(and ``aekit score`` on an ONNX file) loads no torch.

Files are read only when they are what they claim to be: :func:`read_regular` opens a path
without following a final symbolic link and without blocking, and reads it only if the opened
file is a regular file within a size limit, so a link to ``/dev/zero``, a FIFO or a device in
place of a saved file is one :class:`ModelFileError`, never a hang or an exhausted memory;
:func:`check_inside` refuses a sub-folder reached through a link out of its folder.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config.fields import plain
from ..errors import ModelFileError

if TYPE_CHECKING:
    import torch

__all__ = [
    "check_fields",
    "check_header",
    "check_inside",
    "check_tensors",
    "json_bytes",
    "parse_safetensors",
    "read_checked",
    "read_json",
    "read_prefix",
    "read_regular",
    "read_safetensors",
    "safetensors_header",
    "sha256",
    "tensor_bytes",
]

Fields = dict[str, type | tuple[type, ...]]

MAX_JSON_BYTES = 64 << 20
"""The largest JSON file aekit reads (a model's config with its history is a few KiB)."""

MAX_SAFETENSORS_HEADER = 100 << 20
"""The largest safetensors header aekit reads (the safetensors library's own limit)."""


@contextlib.contextmanager
def _opened_regular(path: Path) -> Iterator[tuple[int, int]]:
    """The open descriptor of the regular file ``path`` and its size; see :func:`read_regular`."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError as exc:
        raise ModelFileError(f"missing {path}") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP or os.path.islink(path):
            raise ModelFileError(
                f"{path} is a symbolic link; aekit reads only regular files in a saved folder"
            ) from exc
        raise ModelFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ModelFileError(
                f"{path} is not a regular file (a FIFO, device or folder); aekit reads only "
                "regular files in a saved folder"
            )
        os.set_blocking(fd, True)
        yield fd, info.st_size
    except OSError as exc:
        raise ModelFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)


def read_regular(path: Path, limit: int | None = None) -> bytes:
    """The bytes of ``path``, read only if it is a regular file (of at most ``limit`` bytes).

    The file is opened without following a final symbolic link (``O_NOFOLLOW``) and without
    blocking (``O_NONBLOCK``: a FIFO does not hang the open), and the *opened* file is checked
    (``fstat``), so it cannot be swapped between the check and the read.

    Raises
    ------
    ModelFileError
        A missing file, a symbolic link, a FIFO, a device, a folder or anything but a regular
        file, a file over ``limit`` bytes, or one that cannot be read; naming ``path``.
    """
    with _opened_regular(path) as (fd, size):
        if limit is not None and size > limit:
            raise ModelFileError(
                f"{path} holds {size} bytes, more than the {limit} this file may hold"
            )
        with os.fdopen(os.dup(fd), "rb") as handle:
            raw = handle.read(size + 1)  # one more: a file still growing is caught
    if len(raw) != size:
        raise ModelFileError(f"{path} changed while it was read")
    return raw


def read_prefix(path: Path, n: int) -> bytes:
    """At most the first ``n`` bytes of the regular file ``path`` (see :func:`read_regular`)."""
    with _opened_regular(path) as (fd, _):
        return os.pread(fd, n, 0)


def check_inside(folder: Path, sub: Path) -> Path:
    """Refuse ``sub`` unless it is inside ``folder``, reached through no link.

    Whether ``sub`` exists is the reader's question (a missing model folder is its error).

    Raises
    ------
    ModelFileError
        A part of ``sub`` below ``folder`` is a symbolic link.
    """
    part = folder
    for name in sub.relative_to(folder).parts:
        part = part / name
        if part.is_symlink():
            raise ModelFileError(
                f"{part} is a symbolic link; a saved folder's members must be inside it"
            )
    return sub


def json_bytes(obj: object, *, sort_keys: bool = True, strict: bool = False) -> bytes:
    """``obj`` as indented (by default key-sorted) JSON text with a final newline, in UTF-8.

    A NumPy scalar (an estimator parameter from an ``np.arange`` grid) is written as the
    Python number it holds; any other object JSON has no form for is a TypeError. With
    ``strict``, NaN and infinity are written ``null``: strict parsers (``JSON.parse``,
    ``jq``) refuse Python's ``NaN`` token (files for other tools: reports, comparisons).
    """
    if strict:
        obj = _finite_or_none(obj)
    text = json.dumps(
        obj, indent=2, sort_keys=sort_keys, default=_numpy_scalar, allow_nan=not strict
    )
    return (text + "\n").encode()


def _finite_or_none(obj: object) -> object:
    """``obj`` with every non-finite float (NumPy's too) replaced by None, recursively."""
    if isinstance(obj, dict):
        return {key: _finite_or_none(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(value) for value in obj]
    number = plain(obj)
    if isinstance(number, float) and not math.isfinite(number):
        return None
    return number


def _numpy_scalar(value: object) -> object:
    number = plain(value)
    if number is value:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
    return number


def sha256(raw: bytes) -> str:
    """The hex SHA-256 of ``raw``: what a header stores for the file beside it."""
    return hashlib.sha256(raw).hexdigest()


def tensor_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """Safetensors bytes of ``tensors``, each moved to the CPU and made contiguous."""
    from safetensors.torch import save as save_safetensors_bytes

    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    return save_safetensors_bytes(cpu, metadata=metadata)


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; anything else is one :class:`ModelFileError` naming it."""
    raw = read_regular(path, MAX_JSON_BYTES)  # a regular file of at most 64 MiB
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # ValueError covers json.JSONDecodeError and an int of more than 4,300 digits.
        raise ModelFileError(f"{path} is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ModelFileError(f"{path} must hold a JSON object")
    return data


def check_header(header: dict[str, Any], path: Path, file_format: str, max_version: int) -> int:
    """Refuse a header unless it names ``file_format`` at a version this aekit reads.

    Returns
    -------
    int
        The header's ``format_version``.

    Raises
    ------
    ModelFileError
        Another format, or a ``format_version`` that is not an int in ``1..max_version``.
    """
    if header.get("format") != file_format:
        raise ModelFileError(f"{path} is not an {file_format} file")
    version = header.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(f"{path} has format_version {version!r}; expected a positive int")
    if version > max_version:
        raise ModelFileError(
            f"{path} has format_version {version}; this aekit reads up to {max_version} "
            "(upgrade aekit)"
        )
    return version


def read_checked(path: Path, expected_sha256: object, named_in: str) -> bytes:
    """The bytes of the safetensors file ``path``, refused unless their SHA-256 matches.

    The file must be a regular file (:func:`read_regular`) whose size is the one its own
    safetensors header declares, checked from the header before the tensors are read.

    Raises
    ------
    ModelFileError
        An unreadable file or not a regular one, a size other than its header declares, or
        bytes that do not match the checksum its header (``named_in``) stores: truncated,
        modified, or from another save.
    """
    raw = read_safetensors(path)
    if sha256(raw) != expected_sha256:
        raise ModelFileError(
            f"{path} does not match the checksum in {named_in} "
            "(truncated, modified, or from another save)"
        )
    return raw


def read_safetensors(path: Path) -> bytes:
    """The bytes of the safetensors file ``path``: a regular file of the size its header declares.

    The size is taken from the file's own header (:func:`safetensors_header`) before the
    tensors are read (:func:`read_regular`), so a link, a FIFO, a device or a file longer
    than its header says is refused before any large read.

    Raises
    ------
    ModelFileError
        Not a regular file, a bad header, or a size other than the header declares.
    """
    return read_regular(path, safetensors_header(path)[1])


def safetensors_header(path: Path) -> tuple[dict[str, Any], int]:
    """The safetensors header of the regular file ``path`` and the file size it declares.

    Only the header is read (:func:`read_prefix`: a regular file, not a link, FIFO or device).

    Raises
    ------
    ModelFileError
        Not a regular file, or a header length, JSON or tensor offsets that are not valid.
    """
    head = read_prefix(path, 8)
    length = int.from_bytes(head, "little") if len(head) == 8 else -1
    if not 0 < length <= MAX_SAFETENSORS_HEADER:
        raise ModelFileError(f"{path} is not a valid safetensors file (bad header length)")
    try:
        header = json.loads(read_prefix(path, 8 + length)[8:])
        ends = [
            int(entry["data_offsets"][1]) for key, entry in header.items() if key != "__metadata__"
        ]
    except (ValueError, TypeError, KeyError, IndexError, RecursionError, AttributeError) as exc:
        raise ModelFileError(f"{path} is not a valid safetensors file (bad header)") from exc
    return header, 8 + length + max(ends, default=0)


def parse_safetensors(raw: bytes, source: os.PathLike[str] | str) -> dict[str, torch.Tensor]:
    """Tensors from safetensors bytes (no code runs); bad bytes are a :class:`ModelFileError`."""
    from safetensors import SafetensorError
    from safetensors.torch import load as load_safetensors_bytes

    try:
        return load_safetensors_bytes(raw)
    except (SafetensorError, ValueError, RuntimeError, OSError) as exc:
        raise ModelFileError(f"{source} is not a valid safetensors file ({exc})") from exc


def check_tensors(
    expected: dict[str, torch.Tensor], tensors: object, source: os.PathLike[str] | str
) -> None:
    """Refuse ``tensors`` unless it has exactly the keys, shapes and dtypes of ``expected``.

    Floating-point tensors must also be finite (a NaN weight is a broken model, not a model).

    Raises
    ------
    ModelFileError
        Naming the first key that does not fit.
    """
    if not isinstance(tensors, dict):
        kind = type(tensors).__name__
        raise ModelFileError(f"{source}: expected a mapping of tensors, got {kind}")
    import torch

    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ModelFileError(
            f"{source}: weights do not fit the config (missing {missing or 'none'}, "
            f"unexpected {unexpected or 'none'})"
        )
    for key, ref in expected.items():
        got = tensors[key]
        if not isinstance(got, torch.Tensor) or got.shape != ref.shape or got.dtype != ref.dtype:
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            dtype = f" ({got.dtype})" if isinstance(got, torch.Tensor) else ""
            raise ModelFileError(
                f"{source}: weight {key!r} has shape {shape}{dtype}, "
                f"the config needs {tuple(ref.shape)} ({ref.dtype})"
            )
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise ModelFileError(f"{source}: weight {key!r} holds NaN or infinity")


def check_fields(
    data: object,
    fields: Fields,
    source: os.PathLike[str] | str,
    *,
    optional: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Check that ``data`` is a dict with exactly ``fields`` (name → allowed types).

    ``bool`` is not accepted where ``int`` or ``float`` is asked for; names in ``optional``
    may be absent. Returns ``data``.

    Raises
    ------
    ModelFileError
        Naming the missing, unknown or mistyped key.
    """
    if not isinstance(data, dict):
        raise ModelFileError(f"{source}: expected a JSON object, got {type(data).__name__}")
    missing = sorted(set(fields) - set(data) - set(optional))
    unknown = sorted(set(data) - set(fields))
    if missing or unknown:
        raise ModelFileError(
            f"{source}: missing key(s) {missing or 'none'}, unknown key(s) {unknown or 'none'}"
        )
    for key, value in data.items():
        types = fields[key] if isinstance(fields[key], tuple) else (fields[key],)
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            names = " or ".join("None" if t is type(None) else t.__name__ for t in types)
            raise ModelFileError(
                f"{source}: {key!r} must be {names}, got {type(value).__name__} {value!r:.60}"
            )
    return data
