"""Which kind of saved folder a path is: the marker file of each folder layout.

A model folder holds ``config.json``; a detector folder is a model folder with
``detector.json`` beside it (:mod:`aekit.anomaly.detectorfile`), an imputer folder one with
``imputer.json`` beside it (:mod:`aekit.impute.imputerfile`). A sparse autoencoder folder
holds ``sae.json`` (:mod:`aekit.sae.files`), or SAELens's ``cfg.json`` and
``sae_weights.safetensors``. :func:`aekit.load` and the
commands ask :func:`folder_kind` which estimator to build, and every save asks
:func:`check_can_save` before it replaces one. Loads no torch.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import OutputError
from .atomic import refuse_non_folder
from .core import check_inside

__all__ = [
    "DETECTOR_NAME",
    "IMPUTER_NAME",
    "MODEL_CONFIG_NAME",
    "SAELENS_CONFIG_NAME",
    "SAE_NAME",
    "SAVED_NAMES",
    "check_can_save",
    "folder_kind",
    "is_detector",
    "member_folder",
    "read_member_folder",
]

MODEL_CONFIG_NAME = "config.json"
DETECTOR_NAME = "detector.json"
IMPUTER_NAME = "imputer.json"
SAE_NAME = "sae.json"
SAELENS_CONFIG_NAME = "cfg.json"

SAVED_NAMES = frozenset(
    {MODEL_CONFIG_NAME, "weights.safetensors", DETECTOR_NAME, "detector.safetensors",
     IMPUTER_NAME, "trees.safetensors", "members", "fit.json", "history.json", "holdout.npy",
     "loss.png", SAE_NAME, "sae.safetensors", SAELENS_CONFIG_NAME, "sae_weights.safetensors"}
)  # fmt: skip
"""Every name a save writes in a saved folder (a model's, detector's, imputer's, and
``aekit fit``'s record of the fit). A new save drops these from the folder it replaces
(an old fit record beside new weights would describe another model) and keeps the rest."""


def is_detector(folder: str | os.PathLike[str]) -> bool:
    """True when ``folder`` holds a saved detector (not just an autoencoder).

    Any entry named ``detector.json`` counts, a link, FIFO or folder too: such a folder is
    read as a detector, which refuses what is not a regular file, rather than silently as
    the plain autoencoder beside it.
    """
    return os.path.lexists(Path(folder) / DETECTOR_NAME)


def folder_kind(folder: str | os.PathLike[str]) -> str:
    """``"sae"``, ``"imputer"``, ``"detector"`` or ``"model"``: the kind saved in ``folder``.

    Told by the marker file beside the model (:data:`IMPUTER_NAME`, :data:`DETECTOR_NAME`),
    an entry of that name of any kind (a link or FIFO too: reading it gives the one clear
    error, rather than a plain autoencoder loaded silently). A folder that is none of them
    is a ``"model"`` here; reading it gives the one clear error. A folder with ``sae.json``,
    or with SAELens's ``cfg.json`` and no ``config.json``, is an ``"sae"``.
    """
    folder = Path(folder)
    if os.path.lexists(folder / SAE_NAME) or (
        os.path.lexists(folder / SAELENS_CONFIG_NAME)
        and not os.path.lexists(folder / MODEL_CONFIG_NAME)
    ):
        return "sae"
    if os.path.lexists(Path(folder) / IMPUTER_NAME):
        return "imputer"
    return "detector" if is_detector(folder) else "model"


def check_can_save(
    folder: str | os.PathLike[str], overwrite: bool, how: str = "overwrite=True"
) -> None:
    """Refuse to save into a folder that already holds a saved model, unless ``overwrite``.

    Parameters
    ----------
    folder : path
        Where a model (or detector) is about to be saved.
    overwrite : bool
        Replace what is there.
    how : str
        How the caller asks for ``overwrite`` (``--overwrite`` on the command line).

    Raises
    ------
    OutputError
        ``folder`` holds a saved model, detector or imputer and ``overwrite`` is False, or
        is a file (a save would replace it, ``overwrite`` or not).
    """
    path = Path(folder)
    refuse_non_folder(path)  # before any work: the save would refuse it at the end
    markers = (MODEL_CONFIG_NAME, DETECTOR_NAME, IMPUTER_NAME, SAE_NAME, SAELENS_CONFIG_NAME)
    if overwrite or not any((path / name).is_file() for name in markers):
        return
    kind = folder_kind(path)
    raise OutputError(f"{path} already holds a saved {kind}: pass {how} to replace it")


def member_folder(folder: Path, i: int) -> Path:
    """Where an ensemble's member ``i`` is saved (detector and imputer layouts alike).

    The folder itself for the first member, ``members/<i>/`` for the others.
    """
    return folder if i == 0 else folder / "members" / str(i)


def read_member_folder(folder: Path, i: int) -> Path:
    """:func:`member_folder` to read from.

    Raises
    ------
    ModelFileError
        A member folder reached through a link out of ``folder``
        (:func:`~aekit.files.core.check_inside`).
    """
    return folder if i == 0 else check_inside(folder, member_folder(folder, i))
