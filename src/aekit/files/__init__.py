"""The file core: every file aekit writes, and every folder layout it reads back.

:mod:`~aekit.files.core` holds headers, checksums, JSON and safetensors;
:mod:`~aekit.files.atomic` writes a file (or a folder's set of files) all or nothing;
:mod:`~aekit.files.checked_folder` writes and reads a weights file beside the header naming its
checksum; :mod:`~aekit.files.folderlock` keeps two processes from writing one folder at once;
:mod:`~aekit.files.layouts` tells which kind of estimator a folder holds. Nothing
here builds a model or an estimator: the model, detector, imputer and checkpoint layouts
live with what they build and read and write through these functions.
"""

from .atomic import atomic_file, atomic_files, atomic_write, check_writable_folder, output_error
from .checked_folder import read_checked_folder, write_checked_folder
from .core import (
    check_fields,
    check_header,
    check_inside,
    check_tensors,
    json_bytes,
    parse_safetensors,
    read_checked,
    read_json,
    read_prefix,
    read_regular,
    read_safetensors,
    safetensors_header,
    sha256,
    tensor_bytes,
)
from .folderlock import LOCK_NAME, folder_lock, lock_path, saved_folder
from .layouts import (
    DETECTOR_NAME,
    IMPUTER_NAME,
    MODEL_CONFIG_NAME,
    SAE_NAME,
    SAELENS_CONFIG_NAME,
    folder_kind,
    is_detector,
)

__all__ = [
    "DETECTOR_NAME",
    "IMPUTER_NAME",
    "LOCK_NAME",
    "MODEL_CONFIG_NAME",
    "SAELENS_CONFIG_NAME",
    "SAE_NAME",
    "atomic_file",
    "atomic_files",
    "atomic_write",
    "check_fields",
    "check_header",
    "check_inside",
    "check_tensors",
    "check_writable_folder",
    "folder_kind",
    "folder_lock",
    "is_detector",
    "json_bytes",
    "lock_path",
    "output_error",
    "parse_safetensors",
    "read_checked",
    "read_checked_folder",
    "read_json",
    "read_prefix",
    "read_regular",
    "read_safetensors",
    "safetensors_header",
    "saved_folder",
    "sha256",
    "tensor_bytes",
    "write_checked_folder",
]
