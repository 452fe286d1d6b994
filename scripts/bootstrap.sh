#!/bin/sh
# Set up aekit in ./.venv: create the virtual environment if missing, install a CPU build of
# PyTorch where no torch is present (a bare `torch` requirement would pull a multi-GB CUDA
# build), then aekit itself, editable, with the extras named by $1 ("all" by default; "dev"
# adds the test tools).
set -eu
cd "$(dirname "$0")/.."
extras="${1:-all}"
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    .venv/bin/python -m pip install -q "torch==2.13.0" \
        || echo "bootstrap: torch==2.13.0 unavailable here; pip will pick a torch>=2.4" >&2
fi
.venv/bin/python -m pip install -q -e ".[$extras]"
