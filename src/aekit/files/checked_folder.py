"""A folder of two files: safetensors weights and the JSON header that names their checksum.

The model folder (``config.json`` + ``weights.safetensors``) and aekit's SAE folder
(``sae.json`` + ``sae_weights.safetensors``) share this layout: :func:`write_checked_folder`
writes the whole folder all or nothing (weights first, header last, the header naming the
weights' SHA-256 so a copy torn some other way is caught when read), and
:func:`read_checked_folder` reads the header, checks its format and version, and returns the
weights' bytes only when they match that checksum.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ModelFileError
from .atomic import atomic_files
from .core import check_header, json_bytes, read_checked, read_json, sha256, tensor_bytes
from .folderlock import saved_folder

if TYPE_CHECKING:  # torch is imported where tensors are made, never by the file core itself
    import torch

__all__ = ["read_checked_folder", "write_checked_folder"]


def write_checked_folder(
    folder: str | os.PathLike[str],
    names: tuple[str, str],
    state: dict[str, torch.Tensor],
    head: dict[str, Any],
    meta: dict[str, Any],
) -> Path:
    """Write ``state`` and its header into ``folder``, the whole folder or (failed) nothing.

    Parameters
    ----------
    folder : path
        The folder (replaced through :func:`~aekit.files.folderlock.saved_folder`).
    names : (str, str)
        The header's file name and the weights' file name.
    state : dict of str to Tensor
        The tensors written to the safetensors file.
    head, meta : dict
        The header's fields: ``head``, then ``weights_sha256``, then ``meta``.
    """
    header_name, weights_name = names
    weights = tensor_bytes(state)
    header = {**head, "weights_sha256": sha256(weights), **meta}
    with saved_folder(folder) as staged, atomic_files(staged) as put:  # all or nothing
        put(weights_name, weights)  # weights first, the header naming them last
        put(header_name, json_bytes(header))
    return Path(folder)


def read_checked_folder(
    folder: str | os.PathLike[str], names: tuple[str, str], kind: str, version: int, what: str
) -> tuple[dict[str, Any], bytes]:
    """The header (format ``kind`` up to ``version``) and the weights' bytes it vouches for.

    Raises
    ------
    ModelFileError
        If the folder (``what`` names it in the message) or a file is missing, the header is
        not this format or version, or the weights do not match its checksum.
    """
    header_name, weights_name = names
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFileError(f"no {what} folder at {folder}")
    header = read_json(folder / header_name)
    check_header(header, folder / header_name, kind, version)
    raw = read_checked(folder / weights_name, header.get("weights_sha256"), header_name)
    return header, raw
