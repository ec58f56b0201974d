"""The subcommands of ``sleepstream``, one module each (the protocol: :mod:`sleepstream.cli`),
and what several of them share.

The parameters of the protocol's two functions are described here once: a command's
``add_arguments(p)`` takes the subcommand's parser (:data:`PARSER_DOC`), its ``run(args)``
and each helper it hands the parsed options to take them as ``args`` (:data:`ARGS_DOC`).
The decorator :func:`command_doc` puts the entry into each of their docstrings when the
command's module is imported, so ``help()``, numpydoc's validator and the docs site read the
whole text.

The commands that read a recording file (``score``, ``replay``) take ``--normalized`` from
:func:`add_normalized_argument`.
"""
from __future__ import annotations

import argparse
import inspect
import re
import textwrap
from collections.abc import Callable
from types import MappingProxyType
from typing import TypeVar

__all__ = ["ARGS_DOC", "PARSER_DOC", "PROTOCOL_DOCS", "add_normalized_argument", "command_doc"]

_Documented = TypeVar("_Documented", bound=Callable[..., object])

#: The ``args`` entry of the docstrings of a command's ``run`` and of its helpers.
ARGS_DOC = """args : argparse.Namespace
    The options of :func:`add_arguments`."""

#: The ``p`` entry of the docstring of a command's ``add_arguments`` (its summary says which
#: options it adds).
PARSER_DOC = """p : argparse.ArgumentParser
    The subcommand's parser (made by :func:`sleepstream.cli.build_parser`); gets the options
    named above."""

#: The protocol's parameters and their entries.
PROTOCOL_DOCS = MappingProxyType({"p": PARSER_DOC, "args": ARGS_DOC})

_PARAMETERS = re.compile(r"^([ \t]*)Parameters\n[ \t]*-+\n", re.MULTILINE)
_SECTION = re.compile(r"^([ \t]*)\w[\w ]*\n[ \t]*-+\n", re.MULTILINE)     # a heading, underlined with dashes


def _with_entry(doc: str, entry: str) -> str:
    """``doc`` with ``entry`` first in its Parameters section, which is made (before the first
    other section, else at the end) where ``doc`` has none."""
    parameters, section = _PARAMETERS.search(doc), _SECTION.search(doc)
    if parameters is not None:
        return doc[:parameters.end()] + textwrap.indent(entry + "\n", parameters.group(1)) + doc[parameters.end():]
    if section is not None:
        made = textwrap.indent(f"Parameters\n----------\n{entry}\n\n", section.group(1))
        return doc[:section.start()] + made + doc[section.start():]
    body = [line for line in doc.split("\n")[1:] if line.strip()]
    indent = min((line[:len(line) - len(line.lstrip())] for line in body), key=len, default="    ")
    return doc.rstrip() + "\n\n" + textwrap.indent(f"Parameters\n----------\n{entry}\n", indent) + indent


def command_doc(function: _Documented) -> _Documented:
    """A decorator: the entry of ``function``'s first parameter, ``p`` (:data:`PARSER_DOC`) or
    ``args`` (:data:`ARGS_DOC`), becomes the first of its docstring's Parameters section (the
    section is made, before the first other section or at the end, where there is none).

    Parameters
    ----------
    function : callable
        A command's ``add_arguments(p)`` (its summary names the options it adds), its
        ``run(args)``, or a helper that takes the command's options as ``args``; its
        docstring documents the parameters after the first, if any.

    Returns
    -------
    callable
        ``function`` itself, its ``__doc__`` completed.

    Raises
    ------
    ValueError
        A first parameter other than ``p`` and ``args``.
    """
    first = next(iter(inspect.signature(function).parameters), None)
    if first not in PROTOCOL_DOCS:
        raise ValueError(f"function={function.__qualname__}: its first parameter is {first!r}, not one of "
                         f"the commands' protocol ({', '.join(PROTOCOL_DOCS)})")
    function.__doc__ = _with_entry(function.__doc__ or "", PROTOCOL_DOCS[first])
    return function


def add_normalized_argument(p: argparse.ArgumentParser, effect: str) -> None:
    """``--normalized`` for a command that reads a recording file: the flag, what it means
    for the command, and when the file is recognised as normalised without it.

    Parameters
    ----------
    p : argparse.ArgumentParser
        The command's parser.
    effect : str
        What the command does with such a signal, as the help says it after "the signal is
        per-epoch normalised (...)", with its leading separator (``": score it with ..."``).
    """
    from sleepnet.normalised import SD_TOLERANCE

    p.add_argument("--normalized", action="store_true",
                   help="the signal is per-epoch normalised (each 30-s epoch z-scored, as the design's "
                        f"sample.npz){effect}. Recognised without this flag when every epoch's SD is "
                        f"1 +/- {SD_TOLERANCE:g}")
