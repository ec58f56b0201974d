"""Docstring text kept in one place where several functions take the same arguments.

Two decorators, both run when the module that uses them is imported, so ``help()``,
numpydoc's validator and the docs site read each docstring whole:

* :func:`sections_of`: a method that implements a protocol's method (a stager's ``skip``
  implements :meth:`sleepnet.models.base.Stager.skip`) says in its own summary what *it*
  does and takes its Parameters / Returns / Raises sections from the method that owns them;
* :func:`filled`: where several functions take a parameter that means the same in each (a
  weights folder's ``d`` and ``cfg``), its description is kept once, as a fragment, and a
  line ``{name}`` alone in each docstring stands for it.

The same two decorators, with the same names and rules, serve ``scorer`` as
``scorer.doc_sections``.
"""
from __future__ import annotations

import inspect
import re
import textwrap
from collections.abc import Callable
from typing import TypeVar

__all__ = ["filled", "sections_of"]

_Documented = TypeVar("_Documented", bound=Callable[..., object])
_FIRST_SECTION = re.compile(r"^\w[\w ]*\n-+$", re.MULTILINE)     # a heading, underlined with dashes
_FIELD_LINE = re.compile(r"^([ \t]*)\{(\w+)\}[ \t]*$", re.MULTILINE)


def sections_of(owner: Callable[..., object], summary: str) -> Callable[[_Documented], _Documented]:
    """A decorator: the docstring of the function it decorates becomes ``summary`` and then
    every section of ``owner``'s docstring (from its first heading to its end).

    Parameters
    ----------
    owner : callable
        The method whose sections are shared, e.g. ``Stager.skip``; the decorated function
        takes the same arguments.
    summary : str
        The decorated function's own summary line, and more paragraphs where needed
        (indented or not: indentation is removed as :func:`inspect.cleandoc` does).

    Returns
    -------
    callable
        The decorator; it sets ``__doc__`` and returns the function itself.

    Raises
    ------
    ValueError
        ``owner``'s docstring holds no section (no heading underlined with ``-``).
    """
    owned = inspect.cleandoc(owner.__doc__ or "")
    first = _FIRST_SECTION.search(owned)
    if first is None:
        raise ValueError(f"owner={getattr(owner, '__qualname__', owner)!r}: a docstring without sections to share")
    sections = owned[first.start():]

    def decorate(function: _Documented) -> _Documented:
        function.__doc__ = f"{inspect.cleandoc(summary)}\n\n{sections}\n"
        return function

    return decorate


def filled(**fragments: str) -> Callable[[_Documented], _Documented]:
    """A decorator: each line ``{name}`` alone in the docstring of the function or class it
    decorates becomes ``fragments[name]``, each of its lines indented as ``{name}`` was.

    Parameters
    ----------
    **fragments : str
        The text of each field by name, as numpydoc lines: ``name : type``, its
        description indented four spaces more (common indentation is removed, as
        :func:`textwrap.dedent` does).

    Returns
    -------
    callable
        The decorator; it fills ``__doc__`` and returns the function or class itself.

    Raises
    ------
    KeyError
        A field that ``fragments`` does not hold.
    """
    def fill(field: re.Match[str]) -> str:
        indent, text = field.group(1), textwrap.dedent(fragments[field.group(2)]).strip("\n")
        return "\n".join(indent + line if line else "" for line in text.split("\n"))

    def decorate(obj: _Documented) -> _Documented:
        obj.__doc__ = _FIELD_LINE.sub(fill, obj.__doc__ or "")
        return obj

    return decorate
