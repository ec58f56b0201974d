"""Sphinx extension of the sleepstream documentation: pages that follow the code.

* API stubs: one page per module of the installed packages, written to
  ``docs/api/generated/`` when the build starts (``automodule`` with ``:members:``, which
  follows each module's ``__all__``; a package page lists its public names where they live
  and its modules). A new module gets its page without anyone listing it.
* ``public-names``: the table of a package's ``__all__``, each name linked where it is
  documented (its defining module), so a name re-exported by a package is documented once.
* ``command-help`` / ``command-list``: the ``--help`` text of ``sleepstream`` or one of its
  commands, and the list of commands with their one-line help, from the parser itself.
* Model cards: one page per ``weights/<model>/MODEL_CARD.md``, which includes the card
  itself (``docs/models/generated/``), so a card has one source.
* Code-block markers (:mod:`docblocks`): ``<!-- run -->`` and ``<!-- not-run: REASON -->``
  become a visible line above their block.
* A public class or function without a docstring is listed all the same (its signature),
  so the reference shows every public name.
* A Python cross-reference written in a page (not in a generated API page) that finds no
  target is a warning, so prose that names a renamed class fails the ``-W`` build.
"""
from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

import docblocks
from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from public_api import PACKAGES, public_modules
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

log = logging.getLogger(__name__)

API_DIR = "api/generated"
CARDS_DIR = "models/generated"


def _children(name: str, modules: tuple[str, ...]) -> list[str]:
    depth = name.count(".") + 1
    return [m for m in modules if m.startswith(name + ".") and m.count(".") == depth]


def _stub(name: str, modules: tuple[str, ...]) -> str:
    title = f"``{name}``"
    lines = [title, "=" * len(title), "", f".. automodule:: {name}"]
    children = _children(name, modules)
    if not children:
        lines += ["   :members:", ""]
        return "\n".join(lines) + "\n"
    lines += ["", f".. public-names:: {name}", "", ".. rubric:: Modules", "", ".. autosummary::",
              "   :toctree: .", ""]
    lines += [f"   {child[len(name) + 1:]}" for child in children]
    return "\n".join(lines) + "\n"


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def _sync_folder(folder: Path, pages: dict[str, str]) -> None:
    """Make ``folder`` hold exactly ``pages`` (file name -> text), rewriting only changes."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        if old.is_file() and old.name not in pages:
            old.unlink()
    for filename, text in pages.items():
        _write_if_changed(folder / filename, text)


def write_api_stubs(app: Sphinx) -> None:
    """Write one page per public module into ``docs/api/generated/``."""
    modules = public_modules()
    _sync_folder(Path(app.srcdir) / API_DIR, {f"{m}.rst": _stub(m, modules) for m in modules})


def write_model_cards(app: Sphinx) -> None:
    """Write one page per shipped model that includes its ``MODEL_CARD.md``."""
    root = Path(app.srcdir).parent
    pages = {}
    for card in sorted((root / "weights").glob("*/MODEL_CARD.md")):
        rel = os.path.relpath(card, Path(app.srcdir) / CARDS_DIR)
        pages[f"{card.parent.name}.md"] = f"```{{include}} {rel}\n```\n"
    _sync_folder(Path(app.srcdir) / CARDS_DIR, pages)


def _relative(name: str, current: str) -> str:
    """``name`` as autosummary wants it inside the page of module ``current``."""
    return name[len(current) + 1:] if name.startswith(current + ".") else name


def _home(package, name: str) -> str | None:
    """Where ``package.name`` is defined: ``module.name`` (None when not in our packages)."""
    obj = getattr(package, name)
    if (isinstance(obj, type) or callable(obj)) and getattr(obj, "__name__", None) == name:
        home = getattr(obj, "__module__", "") or ""
        return f"{home}.{name}" if home.split(".")[0] in PACKAGES else None
    # a constant: the module of the package whose source assigns it at the top level
    pattern = re.compile(rf"^{re.escape(name)}\s*(?::[^=]*)?=", re.MULTILINE)
    for modname in [m for m in public_modules() if m.startswith(package.__name__ + ".")]:
        path = getattr(importlib.import_module(modname), "__file__", None)
        if path and pattern.search(Path(path).read_text(encoding="utf-8")):
            return f"{modname}.{name}"
    return None


class PublicNames(SphinxDirective):
    """``.. public-names:: package``: its ``__all__``, linked where each name is defined."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        module = importlib.import_module(self.arguments[0])
        names = [n for n in getattr(module, "__all__", ()) if not n.startswith("_")]
        objects, constants = [], []
        for name in names:
            home = _home(module, name)
            if home is None:
                continue
            obj = getattr(module, name)
            (objects if isinstance(obj, type) or callable(obj) else constants).append(home)
        lines = ["", ".. rubric:: Public names", ""]
        if objects:
            lines += [".. autosummary::", ""] + [f"   ~{_relative(h, module.__name__)}" for h in objects] + [""]
        if constants:
            lines += ["Constants: " + ", ".join(f"``{h.rsplit('.', 1)[1]}`` (:mod:`{h.rsplit('.', 1)[0]}`)"
                                                 for h in constants) + ".", ""]
        if not (objects or constants):
            return []
        node = nodes.container()
        self.state.nested_parse(StringList(lines, source=self.get_source_info()[0]), self.content_offset, node)
        return node.children


@contextmanager
def _columns(n: int):
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(n)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


class CommandHelp(SphinxDirective):
    """``.. command-help:: [COMMAND]``: ``sleepstream [COMMAND] --help`` as the parser prints it."""

    optional_arguments = 1
    option_spec: ClassVar[dict] = {"width": directives.positive_int}

    def run(self) -> list[nodes.Node]:
        from sleepstream.cli import build_parser

        with _columns(self.options.get("width", 96)):
            parser = build_parser()
            if self.arguments:
                sub = next(a for a in parser._actions if a.dest == "command")
                parser = sub.choices[self.arguments[0]]
            text = parser.format_help()
        block = nodes.literal_block(text, text, language="text")
        return [block]


class CommandList(SphinxDirective):
    """``.. command-list::``: every subcommand with its one-line help, from the command line."""

    def run(self) -> list[nodes.Node]:
        from sleepstream import cli

        lines = []
        for name in cli.COMMANDS:
            module = cli._load(name)
            if module is not None:
                lines.append(f"* ``sleepstream {name}``: {module.HELP}")
        node = nodes.container()
        self.state.nested_parse(StringList(lines, source=self.get_source_info()[0]), self.content_offset, node)
        return node.children


_NOTES = {"run": "Run by the tests (tests/test_docs.py).", "not-run": "Not run by the tests: {reason}."}


def show_markers(app: Sphinx, doctree: nodes.document) -> None:
    """Turn ``<!-- run -->`` / ``<!-- not-run: REASON -->`` into a visible line."""
    for raw in list(doctree.findall(nodes.raw)):
        m = docblocks.MARKER.match(raw.astext())
        if not m:
            continue
        text = _NOTES[m["kind"]].format(reason=(m["reason"] or "no reason given").rstrip("."))
        note = nodes.paragraph("", "", nodes.emphasis(text, text), classes=["docs-block-note", m["kind"]])
        raw.replace_self(note)


def include_undocumented(app: Sphinx, what: str, name: str, obj, skip: bool, options) -> bool | None:
    """A module's public class or function is on its page even without a docstring yet.

    Its signature shows; what it lacks shows too (the numpydoc checks find it). Members of a
    class, names left out of ``__all__`` and names imported from elsewhere stay out.
    """
    if what != "module" or not skip or name.startswith("_") or getattr(obj, "__doc__", None):
        return None
    if not (inspect.isfunction(obj) or inspect.isclass(obj)) or getattr(obj, "__name__", None) != name:
        return None
    module = sys.modules.get(getattr(obj, "__module__", "") or "")
    if module is None or name not in getattr(module, "__all__", (name,)):
        return None
    return False


def warn_unresolved(app: Sphinx, env, node, contnode) -> None:
    """A py cross-reference in a written page that finds nothing is a warning."""
    source = node.source or ""
    written = source.endswith((".md", ".rst")) and "docstring of" not in source
    if node.get("refdomain") == "py" and written and not node.get("refdoc", "").startswith(API_DIR):
        log.warning("no Python object %r for this cross-reference (renamed or removed?)",
                    node["reftarget"], location=node, type="sleepstream", subtype="xref")


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", write_api_stubs)
    app.connect("builder-inited", write_model_cards)
    app.connect("doctree-read", show_markers)
    app.connect("missing-reference", warn_unresolved)
    app.connect("autodoc-skip-member", include_undocumented)
    app.add_directive("public-names", PublicNames)
    app.add_directive("command-help", CommandHelp)
    app.add_directive("command-list", CommandList)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
