"""Errors a user can cause. The CLI prints their message as one line and exits non-zero.

A library error names what the caller gave by the name the library knows it under, a
parameter (``channel_index=5 is out of range: stream 'eeg' has 4 channels``), never by a
command-line flag: the caller may be a Python program. The message marks each parameter
it names with :func:`parameter`, so a command that knows the parameters as its flags says
those instead (:meth:`SleepstreamError.naming`; ``sleepstream`` does it in one place,
:func:`sleepstream.cli.main`): ``--channel-index 5 is out of range: ...``. Marked words
only are renamed, whatever else the message says (``a Dask scheduler`` stays as it is
when the parameter ``scheduler`` becomes ``--scheduler``).
"""
from __future__ import annotations

import re
from collections.abc import Mapping

#: Delimits a parameter's name in a message (ASCII unit separator: never in a message's text).
_MARK = "\x1f"
_MARKED = re.compile(f"{_MARK}([^{_MARK}]+){_MARK}(=?)")


def parameter(name: str) -> str:
    """A parameter's name, marked as one in an error message.

    Write the value given after it as ``=value`` (``f"{parameter('channel_index')}={i}"``,
    shown ``channel_index=5``, or ``--channel-index 5`` by a command), or the name alone
    (``f"{parameter('loop')} needs a finite {parameter('speed')}"``); never ``=True``.

    Parameters
    ----------
    name : str
        The parameter, as the function or class that takes it spells it.

    Returns
    -------
    str
        ``name`` between markers that :class:`SleepstreamError` shows as ``name`` and
        :meth:`SleepstreamError.naming` renames.
    """
    return f"{_MARK}{name}{_MARK}"


class SleepstreamError(Exception):
    """Base class: a problem with the user's input, named in the message.

    The message (the first argument) is one line that names the input and what is wrong;
    the parameters it names are marked with :func:`parameter`.
    """

    def __str__(self) -> str:
        return self.naming({})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    @property
    def parameters(self) -> tuple[str, ...]:
        """The parameters the message names, in order (marked with :func:`parameter`)."""
        return tuple(m.group(1) for m in _MARKED.finditer(super().__str__()))

    def naming(self, names: Mapping[str, str]) -> str:
        """The message, with each parameter it names called what ``names`` calls it.

        A parameter written with its value (``channel_index=5``) becomes the new name, a
        space and the value, as a flag is typed (``--channel-index 5``); one written alone
        becomes the new name. A parameter ``names`` does not have keeps its own name.

        Parameters
        ----------
        names : mapping of str to str
            Parameter -> the caller's name for it (``{"channel_index": "--channel-index"}``).

        Returns
        -------
        str
            The message in the caller's words.
        """
        def named(m: re.Match[str]) -> str:
            new = names.get(m.group(1))
            if new is None:
                return m.group(1) + m.group(2)
            return f"{new} " if m.group(2) else new

        return _MARKED.sub(named, super().__str__())


class InputFileError(SleepstreamError):
    """A recording or hypnogram file that cannot be read or does not fit."""


class WeightsError(SleepstreamError):
    """Missing, corrupt or mismatched model weights."""


class OutputWriteError(SleepstreamError):
    """An output file that could not be written whole (full disk, unwritable folder, a file
    too large for the process's limit); the file it would have replaced is unchanged."""
