"""House rules read from the source (issue 22, item 5): library errors name parameters, not
command-line flags; one home for each shared constant; names shared between modules are public.

Each check walks the packages statically (``ast``). The ones the tree does not meet yet are
``xfail(strict=True)``: the day the code meets the rule the test turns red, and its xfail
goes. Each also runs on a small made-up tree, so a check that can never fail shows.
"""
from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest
from test_imports import _import_nodes, module_files

#: The library's rooms: their errors name parameters (``channel=...``); only ``sleepstream/``
#: (the commands) turns them into flags (``--channel``).
LIBRARY = ("sleepnet", "streamer", "scorer", "replay")
PACKAGES = (*LIBRARY, "sleepstream", "weights")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]*")
#: Constants that mean one thing wherever they are used (issue 22 lists them): one module defines each.
SHARED_CONSTANTS = ("DEFAULT_CHANNEL", "TRUTH_SUFFIX", "WARD_PID_ENV")


def _strings(node: ast.AST) -> str:
    """The literal text of a string or f-string expression (its constant parts)."""
    return " ".join(n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str))


def flag_errors(files: dict[str, Path]) -> list[str]:
    """``module:line: --flag`` for each ``raise`` whose message names a command-line flag."""
    found = []
    for mod, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args:
                flags = FLAG.findall(_strings(node.exc.args[0]))
                if flags:
                    found.append(f"{mod}:{node.lineno}: {', '.join(flags)}")
    return found


def constant_homes(files: dict[str, Path], names: tuple[str, ...]) -> dict[str, list[str]]:
    """The modules that assign each of ``names`` at module level."""
    homes: dict[str, list[str]] = defaultdict(list)
    for mod, path in files.items():
        for node in ast.parse(path.read_text(), str(path)).body:
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, ast.AnnAssign) and node.value is not None else []
            for t in targets:
                if isinstance(t, ast.Name) and t.id in names:
                    homes[t.id].append(mod)
    return dict(homes)


def private_imports(files: dict[str, Path]) -> list[str]:
    """``module <- source: _name`` for each underscore name imported from another module."""
    found = []
    for mod, path in files.items():
        for node in _import_nodes(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                names = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                if names:
                    found.append(f"{mod} <- {'.' * node.level}{node.module or ''}: {', '.join(names)}")
    return found


def test_the_checks_find_what_they_look_for(tmp_path):
    pkg = tmp_path / "lib"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text('TRUTH_SUFFIX = "-truth"\ndef f(x):\n    if x:\n'
                              '        raise ValueError(f"--channel {x}: no such channel")\n'
                              '    raise ValueError(f"channel={x!r}: no such channel")\n')
    (pkg / "b.py").write_text('from .a import f as _f\nfrom .a import _g, __version__\nTRUTH_SUFFIX = "-truth"\n')
    files = module_files(tmp_path, ("lib",))
    assert flag_errors(files) == ["lib.a:4: --channel"]
    assert constant_homes(files, ("TRUTH_SUFFIX",)) == {"TRUTH_SUFFIX": ["lib.a", "lib.b"]}
    assert private_imports(files) == ["lib.b <- .a: _g"]


def test_library_errors_name_parameters_not_command_line_flags():
    assert flag_errors(module_files(packages=LIBRARY)) == []


def test_each_shared_constant_has_one_home():
    homes = constant_homes(module_files(packages=PACKAGES), SHARED_CONSTANTS)
    assert {name: mods for name, mods in homes.items() if len(mods) > 1} == {}


def test_names_shared_between_modules_are_public():
    assert private_imports(module_files(packages=PACKAGES)) == []
