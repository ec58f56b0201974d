"""No import cycles inside the packages and the benchmarks.

The imports are read statically (``ast``) from every module of ``sleepnet``, ``streamer``,
``scorer``, ``replay``, ``sleepstream``, ``weights`` and ``benchmarks``, those inside
functions included: an import in a function body runs when the function does, so two
modules importing each other that way are a cycle at run time all the same. Imports under
``if TYPE_CHECKING:`` never run and are left out. An import edge goes to the most specific
module named (``from a.b import c`` is ``a.b.c`` where that is a module, else ``a.b``); the
parent packages a module's import runs are not edges (``a/__init__.py`` re-exporting
``a.x`` is not a cycle with ``a.x``).
"""
from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("sleepnet", "streamer", "scorer", "replay", "sleepstream", "weights", "benchmarks")


def module_files(root: Path = REPO, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of ``packages`` under ``root``."""
    out = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    """Every Import/ImportFrom, at any depth, except under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def import_graph(files: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the modules of ``files`` it imports (see the module text)."""
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        for node in _import_nodes(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[:len(base) - (node.level - 1)]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                targets = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in files else prefix for a in node.names]
            for t in targets:
                while t and t not in files:          # import a.b.c of a module a.b: its nearest module
                    t = t.rpartition(".")[0]
                if t and t != mod:
                    graph[mod].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def in_sleepnet(module: str) -> bool:
    return module == "sleepnet" or module.startswith("sleepnet.")


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(module_files())


def test_the_walk_finds_a_cycle_through_an_import_inside_a_function(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .a import f\n")
    (pkg / "a.py").write_text("import pkg.sub.b\n\ndef f():\n    pass\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("def g():\n    from ..c import h\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n"
                              "def h():\n    from pkg import a\n")
    (pkg / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n")
    g = import_graph(module_files(tmp_path, ("pkg",)))
    assert g["pkg"] == {"pkg.a"} and g["pkg.sub.b"] == {"pkg.c"} and g["pkg.d"] == set()
    assert cycles(g) == [["pkg.a", "pkg.c", "pkg.sub.b"]]


def test_no_import_cycle_inside_sleepnet(graph):
    assert [c for c in cycles(graph) if all(in_sleepnet(m) for m in c)] == []


def test_no_import_cycle_in_the_other_packages_and_the_benchmarks(graph):
    assert [c for c in cycles(graph) if not all(in_sleepnet(m) for m in c)] == []


def test_the_tests_import_nothing_from_the_benchmarks():
    """What a test and a benchmark both need lives in the package (e.g. scorer.gate.evaluation)."""
    tests = REPO / "tests"
    found = []
    for path in sorted(tests.rglob("*.py")):
        for node in _import_nodes(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"{path.relative_to(REPO)}:{node.lineno}: {n}" for n in names
                      if n == "benchmarks" or n.startswith("benchmarks.")]
    assert not found, found


@pytest.mark.lsl
def test_every_benchmark_module_and_its_function_level_imports_resolve():
    """Each ``benchmarks`` module imports, and so does every module that its functions import
    from the packages (names included): a module moved in the package must not leave a
    benchmark that fails only when ``make bench`` reaches it. Run in a process of its own, so
    the tests themselves still import nothing from the benchmarks."""
    code = textwrap.dedent("""
        import ast, importlib, pkgutil, pathlib, benchmarks
        bad = []
        for info in pkgutil.walk_packages(benchmarks.__path__, "benchmarks."):
            mod = importlib.import_module(info.name)
            for node in ast.walk(ast.parse(pathlib.Path(mod.__file__).read_text())):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \\
                        node.module.split(".")[0] in ("sleepnet", "streamer", "scorer", "replay", "sleepstream"):
                    target = importlib.import_module(node.module)
                    bad += [f"{info.name}: {node.module}.{a.name}" for a in node.names
                            if not hasattr(target, a.name) and a.name != "*"]
        print("\\n".join(bad))
        """)
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "", r.stdout + r.stderr[-2000:]
