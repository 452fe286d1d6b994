"""Every Python block of README.md and docs/getting_started.rst runs as written.

Each block runs on its own, in a fresh namespace and an empty working folder: a block that
uses a name it does not define or import (``aekit.load`` without ``import aekit``) fails here.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PAGES = ("README.md", "docs/getting_started.rst")

# A block that truly cannot run on a CPU-only test machine: a text it contains → the reason.
# Nothing else belongs here; a key that matches no block fails test_pages_have_python_blocks.
CANNOT_RUN_HERE: dict[str, str] = {}


def python_blocks(page: str) -> list[tuple[int, str]]:
    """The ``(line, code)`` of each Python block of ``page`` (Markdown or reStructuredText)."""
    text = (ROOT / page).read_text(encoding="utf-8")
    if page.endswith(".md"):
        pattern = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
        found = [(m.start(), m.group(1)) for m in pattern.finditer(text)]
    else:  # ".. code-block:: python", a blank line, then the indented body
        pattern = re.compile(r"^\.\. code-block:: python\n\n((?:[ \t]+\S.*\n|\n)+)", re.M)
        found = [(m.start(), textwrap.dedent(m.group(1))) for m in pattern.finditer(text)]
    return [(text.count("\n", 0, start) + 1, code) for start, code in found]


BLOCKS = [(f"{page}:{line}", code) for page in PAGES for line, code in python_blocks(page)]


def test_pages_have_python_blocks():
    found = {where.split(":")[0] for where, _ in BLOCKS}
    assert found == set(PAGES)
    assert sum(where.startswith("README.md") for where, _ in BLOCKS) >= 2
    unused = [key for key in CANNOT_RUN_HERE if not any(key in code for _, code in BLOCKS)]
    assert not unused, f"CANNOT_RUN_HERE keys that match no block: {unused}"


@pytest.mark.parametrize("where, code", BLOCKS, ids=[where for where, _ in BLOCKS])
def test_block_runs_as_written(where, code, tmp_path, monkeypatch):
    for key, reason in CANNOT_RUN_HERE.items():
        if key in code:
            pytest.skip(f"{where}: {reason}")
    monkeypatch.chdir(tmp_path)  # blocks save to relative folders ("model/", "detector/")
    namespace: dict[str, object] = {"__name__": "__main__"}
    exec(compile(code, where, "exec"), namespace)  # our own docs, run as a reader would
    made = [type(value).__module__ for value in namespace.values()]
    assert any(module.startswith("aekit.") for module in made), f"{where} built no aekit object"
