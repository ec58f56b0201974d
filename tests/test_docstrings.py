"""Every public name has a numpydoc docstring (issue 22, item 4): numpydoc's own validator,
one test per module.

Public names: the classes and functions a module defines and exports (its ``__all__``, or
every name without a leading underscore), and the public methods (class and static methods too) and properties
those classes define. Each is run through :func:`numpydoc.validate.validate` and must pass the
checks in :data:`CHECKS`: a docstring with a summary; every parameter documented, with a
type and a description, in the signature's order, and no parameter that is not there; a
``Returns`` section (typed and described) wherever the function returns a value; known
sections in numpydoc's order. Style checks (summary wording, full stops) are left out.
The docs site (``make docs``) renders these docstrings and runs a subset of the same checks.
"""
from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path

import pytest

# the modules walked are the docs site's API pages (docs/_ext/public_api.py): one list for both
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "docs" / "_ext"))
from public_api import public_modules  # noqa: E402

numpydoc_validate = pytest.importorskip("numpydoc.validate")

CHECKS = frozenset({
    "GL06", "GL07", "GL08", "GL10",                    # sections known, in order; a docstring at all
    "SS01",                                            # a summary
    "PR01", "PR02", "PR03", "PR04", "PR07", "PR10",    # parameters: all, only, in order, typed, described
    "RT01", "RT02", "RT03",                            # returns: present where a value is, typed, described
})


def public_objects(module_name: str) -> list[str]:
    """Dotted names of the public classes and functions ``module_name`` defines, and of the
    public methods (class and static ones too) and properties of those classes."""
    module = importlib.import_module(module_name)
    exported = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
    out = []
    for name in exported:
        obj = getattr(module, name, None)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)) or obj.__module__ != module_name:
            continue
        out.append(f"{module_name}.{name}")
        if inspect.isclass(obj):
            out += [f"{module_name}.{name}.{attr}" for attr, value in vars(obj).items()
                    if not attr.startswith("_")
                    and (inspect.isfunction(value) or isinstance(value, (property, classmethod, staticmethod)))]
    return out


def failures(module_name: str) -> list[str]:
    """``name: CODE message`` for each check of :data:`CHECKS` a public name fails."""
    out = []
    for name in public_objects(module_name):
        result = numpydoc_validate.validate(name)
        out += [f"{name}: {code} {msg}" for code, msg in result["errors"] if code in CHECKS]
    return out


@pytest.mark.parametrize("module_name", public_modules())
def test_public_names_have_numpydoc_docstrings(module_name):
    assert failures(module_name) == []


def test_the_check_finds_a_missing_section(tmp_path, monkeypatch):
    """On a made-up module: an undocumented parameter and a missing Returns are found,
    a documented function passes, private names are not looked at."""
    (tmp_path / "madeup_docs.py").write_text(
        'def good(x):\n'
        '    """Double.\n\n    Parameters\n    ----------\n    x : float\n        A number.\n\n'
        '    Returns\n    -------\n    float\n        Twice ``x``.\n    """\n    return 2 * x\n\n\n'
        'def bad(x, y):\n    """Add.\n\n    Parameters\n    ----------\n    x : float\n        A number.\n    """\n'
        '    return x + y\n\n\n'
        'def _private(x):\n    return x\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    found = failures("madeup_docs")
    assert not [f for f in found if f.startswith("madeup_docs.good")]
    assert any(f.startswith("madeup_docs.bad: PR01") for f in found)
    assert any(f.startswith("madeup_docs.bad: RT01") for f in found)
    assert not [f for f in found if "_private" in f]
