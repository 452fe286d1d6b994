"""``python -m aekit`` runs the command line (``torchrun -m aekit`` too, once per rank)."""

from .cli import run

if __name__ == "__main__":  # importing the module (pydoc, a spawned process) runs nothing
    run()
