"""Find one LSL stream by name, type and/or source_id within a timeout.

One continuous resolver both finds the stream and, when nothing matches, tells which
streams are visible, so the error comes within the timeout (``resolve_streams`` would
wait a second timeout just to list them).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import pylsl

from sleepnet.doc_sections import filled

from .errors import StreamNotFoundError

log = logging.getLogger(__name__)

DEFAULT_STREAM_TYPE = "EEG"
POLL_S = 0.02

#: The parameters of :func:`resolve` and :func:`resolve_stream`, described once
#: (:func:`sleepnet.doc_sections.filled`).
_fill_doc = filled(query_timeout="""
    query : StreamQuery
        What to look for.
    timeout_s : float
        Give up after this many seconds.""")


@dataclass(frozen=True)
class StreamQuery:
    """What to look for; ``None`` fields match anything.

    Parameters
    ----------
    name : str, optional
        The stream's name.
    stream_type : str, optional
        Its content type (``EEG``).
    source_id : str, optional
        Its source identifier (the most specific; survives outlet restarts).
    """

    name: str | None = None
    stream_type: str | None = None
    source_id: str | None = None

    @classmethod
    def from_options(cls, name: str | None = None, stream_type: str | None = None,
                     source_id: str | None = None) -> StreamQuery:
        """The query for command-line options; nothing given means any ``EEG`` stream.

        Parameters
        ----------
        name, stream_type, source_id : str, optional
            The options (``--stream-name``, ``--stream-type``, ``--source-id``); an empty string counts as
            not given.

        Returns
        -------
        StreamQuery
            The query; ``stream_type="EEG"`` alone when no option is given.
        """
        if not (name or stream_type or source_id):
            return cls(stream_type=DEFAULT_STREAM_TYPE)
        return cls(name or None, stream_type or None, source_id or None)

    def matches(self, info: pylsl.StreamInfo) -> bool:
        """Whether a stream fits every field that is given.

        Parameters
        ----------
        info : pylsl.StreamInfo
            A stream's description (as a resolver returns it).

        Returns
        -------
        bool
            True when its name, type and source_id equal those of the query that are not None.
        """
        return ((self.name is None or info.name() == self.name)
                and (self.stream_type is None or info.type() == self.stream_type)
                and (self.source_id is None or info.source_id() == self.source_id))

    def describe(self) -> str:
        """The query in words, for messages.

        Returns
        -------
        str
            E.g. ``name='EEG', source_id='amp-1'``, or ``any stream`` when no field is given.
        """
        parts = [f"{k}={v!r}" for k, v in (("name", self.name), ("type", self.stream_type),
                                              ("source_id", self.source_id)) if v is not None]
        return ", ".join(parts) or "any stream"


def describe_stream(info: pylsl.StreamInfo) -> str:
    """One-line summary: name, type, channels, rate, source_id, host.

    Parameters
    ----------
    info : pylsl.StreamInfo
        The stream's description.

    Returns
    -------
    str
        E.g. ``'EEG' (type EEG, 1 ch, 100 Hz, source_id 'amp-1', host lab)``; a stream liblsl
        could not parse (name ``(invalid ...``) is said to be one.
    """
    if info.name().startswith("(invalid"):     # liblsl could not parse what the outlet sent
        return (f"{info.name()} (a stream whose description liblsl could not read: a nominal rate that is "
                f"not a number, or a channel format it does not know?)")
    rate = info.nominal_srate()
    rate_text = f"{rate:g} Hz" if rate > 0 else "irregular"
    return (f"'{info.name()}' (type {info.type() or '-'}, {info.channel_count()} ch, {rate_text}, "
            f"source_id {info.source_id() or '-'!r}, host {info.hostname()})")


@dataclass(frozen=True)
class Resolved:
    """A found stream and every stream visible when it was found.

    Parameters
    ----------
    info : pylsl.StreamInfo
        The stream found (a resolver's partial description; open an inlet for the full one).
    visible : tuple of pylsl.StreamInfo
        Every stream the resolver saw then: its companions, e.g. a replay's ``-truth``
        stream, can be taken from here without a second search.
    """

    info: pylsl.StreamInfo
    visible: tuple[pylsl.StreamInfo, ...]


@_fill_doc
def resolve_stream(query: StreamQuery, timeout_s: float = 10.0) -> pylsl.StreamInfo:
    """The first visible stream matching ``query`` (see :func:`resolve`).

    Parameters
    ----------
    {query_timeout}

    Returns
    -------
    pylsl.StreamInfo
        The stream's resolved (partial) description.

    Raises
    ------
    StreamNotFoundError
        Nothing matched within ``timeout_s``; the message lists the visible streams.
    """
    return resolve(query, timeout_s).info


@_fill_doc
def resolve(query: StreamQuery, timeout_s: float = 10.0) -> Resolved:
    """The first visible stream matching ``query``, with the others visible then.

    Parameters
    ----------
    {query_timeout}

    Returns
    -------
    Resolved
        A resolved (partial) description (open an inlet to get the full one) and every
        stream the resolver saw at that moment.

    Raises
    ------
    StreamNotFoundError
        Nothing matched within ``timeout_s``; the message lists the visible streams.
    """
    resolver = pylsl.ContinuousResolver(forget_after=max(2.0, timeout_s))
    deadline = time.monotonic() + timeout_s
    seen: list[pylsl.StreamInfo] = []
    while True:
        seen = resolver.results()
        hits = [s for s in seen if query.matches(s)]
        if hits:
            if len(hits) > 1:
                log.warning("%d streams match %s; using %s (others: %s). Choose one with --source-id.",
                            len(hits), query.describe(), describe_stream(hits[0]),
                            "; ".join(describe_stream(s) for s in hits[1:]))
            log.info("found stream %s", describe_stream(hits[0]))
            return Resolved(hits[0], tuple(seen))
        if time.monotonic() >= deadline:
            break
        time.sleep(POLL_S)
    visible = "; ".join(describe_stream(s) for s in seen) if seen else "none"
    raise StreamNotFoundError(
        f"no LSL stream matching {query.describe()} found within {timeout_s:g} s; visible streams: {visible}"
    )


def reopen_first(resolver: pylsl.ContinuousResolver, dead_uid: str | None,
                 open_stream: Callable[[pylsl.StreamInfo], None],
                 retry_on: tuple[type[BaseException], ...],
                 fatal: tuple[type[BaseException], ...] = ()) -> pylsl.StreamInfo | None:
    """Reconnect: the first stream ``resolver`` sees that ``open_stream`` opens.

    Never waits: it tries the streams the resolver has seen so far, in its order.

    Parameters
    ----------
    resolver : pylsl.ContinuousResolver
        Watches for the stream to come back (e.g. by ``source_id``).
    dead_uid : str or None
        The uid of the lost instance, skipped (it may still be listed for a while).
    open_stream : callable
        Opens an inlet on a candidate's description; raises when it cannot.
    retry_on : tuple of exception types
        A failure of one of these moves on to the next candidate.
    fatal : tuple of exception types
        A failure of one of these propagates (checked before ``retry_on``).

    Returns
    -------
    pylsl.StreamInfo or None
        The stream now open, or None when no candidate opened yet.
    """
    for info in resolver.results():
        if info.uid() == dead_uid:
            continue
        try:
            open_stream(info)
        except fatal:
            raise
        except retry_on as exc:
            log.debug("reconnect attempt on '%s' failed: %s", info.name(), exc)
            continue
        return info
    return None
