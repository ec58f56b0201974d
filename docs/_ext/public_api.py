"""The public modules of the installed packages: one list for the docs site and the tests.

The API pages (:mod:`sleepstream_docs`) and the numpydoc validation of every public name
(``tests/test_docstrings.py``) walk the same modules, so a module the site documents is a
module the tests check. Imports nothing of Sphinx, so the tests can import it.
"""
from __future__ import annotations

import functools
import importlib
import pkgutil

#: the installed packages whose every public module gets an API page and a docstring check.
PACKAGES = ("sleepstream", "sleepnet", "streamer", "scorer", "replay", "weights")


@functools.lru_cache(maxsize=1)
def public_modules() -> tuple[str, ...]:
    """Every importable public module of :data:`PACKAGES` (no part starting with ``_``), sorted."""
    names = []
    for package in PACKAGES:
        module = importlib.import_module(package)
        names.append(package)
        for info in pkgutil.walk_packages(module.__path__, package + "."):
            if not any(part.startswith("_") for part in info.name.split(".")):
                names.append(info.name)
    return tuple(sorted(names))
