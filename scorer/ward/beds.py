"""Which streams are beds, and what each bed is called (pure: no LSL calls).

A bed is identified by its stream's ``source_id`` (it survives amplifier restarts);
its name, used for the ``<bed>-stage`` outlets and the ``<bed>.tsv`` file, is the stream
name made safe for file and stream names, with a suffix from the source_id when two
streams share a name.
"""
from __future__ import annotations

import fnmatch
import hashlib
import re
from dataclasses import dataclass

from streamer.resolve import DEFAULT_STREAM_TYPE

MAX_NAME = 40


@dataclass(frozen=True)
class StreamSeen:
    """What the supervisor knows of a stream before any worker opens it.

    :class:`scorer.ward.supervisor.StreamWatch` makes one of each stream its resolver
    shows; :meth:`BedSelector.matches` decides whether it is a bed.

    Parameters
    ----------
    name : str
        The stream's name as its outlet declared it (the bed's name is made from it:
        :func:`bed_name`).
    stream_type : str
        Its LSL content type, e.g. ``EEG`` (the type :class:`BedSelector` follows by default).
    source_id : str
        Its source_id, which names the bed across restarts (empty when it has none: not
        a bed).
    sfreq_hz : float
        Its nominal rate, Hz (0 for an irregular stream: not a bed).
    hostname : str
        The machine it is served from.
    """

    name: str
    stream_type: str
    source_id: str
    sfreq_hz: float
    hostname: str = ""


@dataclass(frozen=True)
class BedSelector:
    """Which streams to follow.

    Parameters
    ----------
    stream_type : str or None
        LSL content type to follow (default ``EEG``); None: any type.
    name_patterns : tuple of str
        Shell-style patterns (``bed-*``) the stream name must match (any of them); empty: any.
    source_ids : tuple of str
        Follow only these source_ids; empty: any.
    """

    stream_type: str | None = DEFAULT_STREAM_TYPE
    name_patterns: tuple[str, ...] = ()
    source_ids: tuple[str, ...] = ()

    def matches(self, s: StreamSeen) -> bool:
        """Whether a stream is a bed to follow.

        Parameters
        ----------
        s : StreamSeen
            A stream the resolver shows, of any type (a bed or not).

        Returns
        -------
        bool
            It has a source_id and a regular rate, and meets every criterion given.
        """
        if not s.source_id or s.sfreq_hz <= 0:
            return False                  # a bed needs a source_id and a regular rate
        if self.source_ids and s.source_id not in self.source_ids:
            return False
        if self.stream_type is not None and s.stream_type != self.stream_type:
            return False
        if self.name_patterns and not any(fnmatch.fnmatchcase(s.name, p) for p in self.name_patterns):
            return False
        return True

    def describe(self) -> str:
        """The criteria in words, for the ward's messages.

        Returns
        -------
        str
            E.g. ``type EEG, name 'bed-*'``; ``any stream`` without criteria.
        """
        parts = []
        if self.stream_type:
            parts.append(f"type {self.stream_type}")
        if self.name_patterns:
            parts.append("name " + " or ".join(repr(p) for p in self.name_patterns))
        if self.source_ids:
            parts.append("source_id " + " or ".join(repr(s) for s in self.source_ids))
        return ", ".join(parts) or "any stream"


def sanitise(name: str) -> str:
    """A stream name made safe for file and stream names.

    Parameters
    ----------
    name : str
        An LSL stream's name as its outlet gave it, any characters (e.g. ``EEG bed 3/Fpz``).

    Returns
    -------
    str
        ``name`` reduced to letters, digits, ``-``, ``_`` and ``.`` (others become
        ``-``), without leading or trailing dots or dashes, at most 40 characters;
        ``bed`` when nothing is left.
    """
    s = re.sub(r"[^A-Za-z0-9_.-]+", "-", name.strip()).strip("-.")
    return s[:MAX_NAME].rstrip("-.") or "bed"


def short_hash(text: str) -> str:
    """Six hex digits identifying ``text`` (for a collision suffix).

    Parameters
    ----------
    text : str
        What to identify (a source_id).

    Returns
    -------
    str
        The first six hex digits of its SHA-1.
    """
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:6]


def bed_name(stream_name: str, source_id: str, taken: set[str] | frozenset[str]) -> str:
    """A unique bed name.

    Parameters
    ----------
    stream_name : str
        The stream's name.
    source_id : str
        The stream's source_id.
    taken : set of str
        The names other beds have.

    Returns
    -------
    str
        The sanitised stream name, or, when another bed has it, the name plus the
        sanitised source_id (or a hash of it, numbered when that is taken too).
    """
    base = sanitise(stream_name)
    if base not in taken:
        return base
    cand = sanitise(f"{base}-{source_id}")
    if cand not in taken:
        return cand
    cand = f"{base}-{short_hash(source_id)}"
    k = 2
    while cand in taken:
        cand = f"{base}-{short_hash(source_id)}-{k}"
        k += 1
    return cand
