"""Sphinx configuration of aekit's documentation site.

Build it from the repository root with ``python -m sphinx -W -b html docs docs/_build/html``
(or ``make -C docs html``). ``AEKIT_DOCS_QUICK=1`` runs the gallery's examples in their small
CI mode (fewer epochs and rows); ``AEKIT_DOCS_NO_GALLERY=1`` skips running them (a fast build
of the prose and reference pages).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(ROOT / "src"))  # the checkout's aekit, installed or not

import aekit  # noqa: E402

project = "aekit"
author = "aekit developers"
copyright = "aekit developers, BSD-3-Clause"
version = release = aekit.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "aekit_cli",  # docs/_ext/aekit_cli.py: the CLI reference, walked from the argparse parser
    "aekit_bench",  # docs/_ext/aekit_bench.py: benchmark tables from benchmarks/results/*.json
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "examples", "**/sg_execution_times.rst"]
root_doc = "index"

# -- API reference ---------------------------------------------------------------------------
autosummary_generate = True
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
autodoc_member_order = "groupwise"
autodoc_default_options = {"inherited-members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

intersphinx_mapping: dict[str, tuple[str, str | None]] = {}  # no network: no cross-site links

# -- gallery ---------------------------------------------------------------------------------
QUICK = os.environ.get("AEKIT_DOCS_QUICK", "") not in ("", "0")
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",  # every plot_*.py runs
    "plot_gallery": "False" if os.environ.get("AEKIT_DOCS_NO_GALLERY") else "True",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "show_memory": False,
    "reset_modules": ("matplotlib",),
    "first_notebook_cell": None,
    # rerun every example on every build: outputs of the quick mode must never stand in for
    # the full one (AEKIT_DOCS_NO_GALLERY=1 skips running them while writing prose)
    "run_stale_examples": True,
}

# -- HTML ------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"aekit {release}"
html_static_path = ["_static"]
html_css_files = ["aekit.css"]
html_show_sourcelink = False
html_theme_options = {
    "navbar_end": ["theme-switcher", "navbar-icon-links"],
    "show_toc_level": 2,
    "navbar_align": "left",
    # gallery pages: no right-hand sidebar, so code and figures get the width
    "secondary_sidebar_items": {"auto_examples/*": []},
    "navigation_with_keys": False,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_context = {"default_mode": "light"}
# pages without sub-pages: no empty "Section Navigation" column
html_sidebars = {"index": [], "getting_started": [], "cli": [], "benchmarks": []}
