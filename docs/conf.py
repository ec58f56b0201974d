"""Sphinx configuration of the sleepstream documentation: ``make docs``.

No extension here reaches the network (no intersphinx): the build runs offline, in the
test suite too (``tests/test_docs.py``). ``_ext/sleepstream_docs.py`` writes the API pages
(one per module) and the model-card pages when the build starts.
"""
from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))
sys.path.insert(0, str(DOCS / "_ext"))

import sleepstream  # noqa: E402

project = "sleepstream"
author = "the sleepstream authors"
copyright = "2026, the sleepstream authors"
version = release = sleepstream.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "myst_parser",
    "sleepstream_docs",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "**/.ipynb_checkpoints"]
templates_path = ["_templates"]

# API pages are written by sleepstream_docs (one per module); autosummary only draws tables.
autosummary_generate = False
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "signature"
# numpydoc renders the sections and validates what the docstrings that have them say: an
# unknown or misplaced section, a documented parameter that does not exist or is out of order,
# one without a type or a description, a return value without one. Checks that ask for
# sections a docstring lacks (PR01, RT01, SA01, EX01, ...) stay off until every public name has
# its sections (issue 22, item 4).
numpydoc_show_class_members = False
numpydoc_validation_checks = {"GL06", "GL07", "GL10", "PR02", "PR03", "PR04", "PR07", "PR10", "RT02", "RT03"}

myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "deflist"]
# Model cards are included as written ("myst.header").
suppress_warnings = ["myst.header"]

html_theme = "pydata_sphinx_theme"
html_title = f"sleepstream {release}"
html_static_path = ["_static"]
html_css_files = ["sleepstream.css"]
html_show_sourcelink = False
html_copy_source = False
html_theme_options = {
    "navigation_depth": 2,
    "collapse_navigation": True,  # the sidebar of 100 API pages costs seconds per page otherwise
    "show_toc_level": 2,
    "navbar_align": "left",
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
