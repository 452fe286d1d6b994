"""``aekit export``: a model or detector folder as one ONNX file.

``aekit export MODEL -o model.onnx`` writes a model folder (an autoencoder's, a saved
:class:`~aekit.AutoencoderOutlierDetector`'s or :class:`~aekit.AutoencoderImputer`'s) as one
ONNX file (:func:`aekit.export.to_onnx`), which ``aekit score``
(:func:`aekit.cli.apply.cmd_score`) runs without PyTorch (an imputer's file fills holes:
:class:`aekit.export.OnnxModel` runs it).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["cmd_export", "register"]


def register(command: Any, sub: Any) -> None:
    """Add ``export`` to the parser, and say in ``score``'s help that it reads its files.

    ``command`` is the parser's helper that adds a subcommand; ``sub`` its subparsers. The
    ``score`` command itself, for every kind of MODEL, is :func:`aekit.cli.apply.cmd_score`.
    """
    p = command(
        "export", cmd_export, "write a model folder as one self-contained ONNX file",
        "aekit export model/ -o model.onnx", [],
    )  # fmt: skip
    p.add_argument("model", metavar="MODEL", help="model, detector or imputer folder")
    p.add_argument("-o", "--output", required=True, metavar="FILE.onnx", help="ONNX file")
    score = sub.choices["score"]
    score.description += (
        " MODEL may also be a detector folder (AutoencoderOutlierDetector.save) or an .onnx "
        "file from 'aekit export', run with onnxruntime and without PyTorch; both write "
        "error, anomaly_score and outlier columns."
    )


def cmd_export(args: argparse.Namespace) -> int:
    """Write MODEL (an autoencoder, detector or imputer folder) as one ONNX file."""
    from .. import load
    from ..export import to_onnx
    from ..files.layouts import folder_kind
    from .inputs import fit_info, model_columns

    output = Path(args.output)
    if output.suffix.lower() != ".onnx":  # (".onnx" alone is a hidden file's name)
        raise ConfigError(f"the output must be a NAME.onnx file, got {output.name!r}")
    model = load(args.model)
    columns = model_columns(fit_info(args.model), model)  # recorded: score picks by name
    to_onnx(model, output, feature_names=columns)
    kind = folder_kind(args.model)
    print(f"wrote {output}: the {kind} in {args.model} ({output.stat().st_size:,} bytes)")
    return 0
