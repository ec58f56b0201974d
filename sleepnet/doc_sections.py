"""One home for what a method's arguments mean, where several methods take the same ones.

A sink's ``truth(epoch, stage)`` takes exactly what :meth:`scorer.sinks.Sink.truth` takes,
and a writer's wrapper waits as the writer's ``flush`` waits: the override or wrapper says
in its own summary what *it* does, and takes its Parameters / Returns / Raises sections
from the method that owns them (:func:`sections_of`). The text is set on ``__doc__`` when
the module is imported, so ``help()``, numpydoc's validator and the docs site read it whole.

Where several functions of one module take the same parameters, the module keeps their
description once, as a fragment, and :func:`filled` puts it into each docstring.

It lives in ``sleepnet``, the lowest part, so that every part can use it (the sinks, the
ward's views, the simulator).
"""
from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import TypeVar

_F = TypeVar("_F", bound=Callable[..., object])
#: a numpydoc section's heading: a line of words underlined by dashes
_HEADING = re.compile(r"^[A-Z][a-z]*( [A-Za-z]+)*\n-{3,}$", re.MULTILINE)
#: a line of a docstring that is only a field to fill: ``{name}``
_FIELD = re.compile(r"^([ \t]*)\{(\w+)\}[ \t]*$", re.MULTILINE)


def sections_of(owner: Callable[..., object], summary: str) -> Callable[[_F], _F]:
    """A decorator: the decorated function's docstring is ``summary`` followed by the
    sections of ``owner``'s docstring (from its first numpydoc heading on).

    Parameters
    ----------
    owner : callable
        The function or method whose Parameters (Returns, Raises) sections the decorated
        one shares, e.g. ``Sink.truth``; its signature must take the same arguments.
    summary : str
        What the decorated function does: its summary line and, when needed, more
        paragraphs (indentation is removed as in any docstring).

    Returns
    -------
    callable
        The decorator; it returns the function itself, its ``__doc__`` set.

    Raises
    ------
    ValueError
        ``owner``'s docstring has no section (a heading underlined with ``-``).
    """
    doc = inspect.cleandoc(owner.__doc__ or "")
    heading = _HEADING.search(doc)
    if heading is None:
        raise ValueError(f"owner={getattr(owner, '__qualname__', owner)!r} has no docstring sections to share")

    def document(function: _F) -> _F:
        function.__doc__ = f"{inspect.cleandoc(summary)}\n\n{doc[heading.start():]}\n"
        return function

    return document


def filled(**fragments: str) -> Callable[[_F], _F]:
    """A decorator: each line of the decorated function's docstring that is only a field
    ``{name}`` becomes ``fragments[name]``, every line of it indented as the field was.

    For parameters several functions of a module take alike: the module keeps their
    description once, as a fragment (numpydoc lines: ``name : type`` then its text,
    indented by four spaces).

    Parameters
    ----------
    **fragments : str
        The text of each field, by name.

    Returns
    -------
    callable
        The decorator; it returns the function itself, its ``__doc__`` filled.

    Raises
    ------
    KeyError
        The docstring names a field that ``fragments`` lacks.
    """

    def fill(match: re.Match[str]) -> str:
        indent, name = match.group(1), match.group(2)
        return "\n".join(indent + line if line else line for line in inspect.cleandoc(fragments[name]).split("\n"))

    def document(function: _F) -> _F:
        function.__doc__ = _FIELD.sub(fill, function.__doc__ or "")
        return function

    return document
