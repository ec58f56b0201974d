"""The subcommands of ``sleepstream``, one module each (the protocol: :mod:`sleepstream.cli`),
and what several of them share.

A command's ``run(args)``, and each helper it hands the parsed options to, takes them as its
first parameter, ``args``. Its description (:data:`ARGS_DOC`) is written here once and put
into each of their docstrings by :func:`add_args_doc` when the command's module is imported,
so ``help()``, numpydoc's validator and the docs site read the whole text.

The commands that read a recording file (``score``, ``replay``) take ``--normalized`` from
:func:`add_normalized_argument`.
"""
from __future__ import annotations

import argparse
import re
import textwrap
from collections.abc import Callable
from typing import TypeVar

__all__ = ["ARGS_DOC", "add_args_doc", "add_normalized_argument"]

_Documented = TypeVar("_Documented", bound=Callable[..., object])

#: The ``args`` entry of the docstrings of a command's ``run`` and of its helpers.
ARGS_DOC = """args : argparse.Namespace
    The options of :func:`add_arguments`."""

_HEADING = r"^([ \t]*){}\n[ \t]*-+\n"
_PARAMETERS = re.compile(_HEADING.format("Parameters"), re.MULTILINE)
_RETURNS = re.compile(_HEADING.format("Returns"), re.MULTILINE)


def add_args_doc(function: _Documented) -> _Documented:
    """A decorator: :data:`ARGS_DOC` becomes the first entry of the Parameters section of
    ``function``'s docstring (a Parameters section holding only it is made, just before
    the Returns section, where the docstring has none).

    Parameters
    ----------
    function : callable
        A command's ``run``, or a helper of a command whose first parameter is ``args``
        (the options of the command's ``add_arguments``); its docstring documents the
        parameters after ``args``, if any.

    Returns
    -------
    callable
        ``function`` itself, its ``__doc__`` completed.

    Raises
    ------
    ValueError
        A docstring with neither a Parameters nor a Returns section (no place for ``args``).
    """
    doc = function.__doc__ or ""
    parameters, returns = _PARAMETERS.search(doc), _RETURNS.search(doc)
    if parameters is not None:
        at, entry = parameters.end(), textwrap.indent(ARGS_DOC + "\n", parameters.group(1))
    elif returns is not None:
        at, entry = returns.start(), textwrap.indent(f"Parameters\n----------\n{ARGS_DOC}\n\n", returns.group(1))
    else:
        raise ValueError(f"function={function.__qualname__}: a docstring without a Parameters or Returns "
                         "section, no place for the args entry")
    function.__doc__ = doc[:at] + entry + doc[at:]
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
