"""``python -m aekit`` runs the command line (``torchrun -m aekit`` too, once per rank)."""

import sys

from .cli import main

if __name__ == "__main__":  # importing the module (pydoc, a spawned process) runs nothing
    sys.exit(main())
