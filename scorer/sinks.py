"""What every sink implements. The scoring loop hands each sink the same record and never
knows which sinks there are: adding a sink never touches the loop.

:class:`Sink` is the whole interface, as a base class whose methods do nothing: a sink
subclasses it and overrides what it does. Every sink therefore has every method, and the
loop calls each one directly, typed (no method names as strings, no probing):

* ``publish(record)``: a newly scored epoch (:class:`scorer.records.ScoredEpoch`);
* ``truth(epoch, stage)``: the true stage of an epoch already published (a replay's
  truth stream);
* ``status(status)``: stream health (:class:`StreamStatus`), on each epoch and on a
  ~1 Hz tick;
* ``samples(chunk)``: every chunk of the scored channel as pulled
  (:class:`streamer.stream.SampleChunk`), before it is scored: the stimulation gate's
  arousal guard judges the newest second this way, whatever the pace;
* ``tick(now)``: every turn of the loop (``now``: the scorer's LSL clock, s), for a
  promise kept over time from the loop itself (the gate's lease);
* ``close()``: the end of the session: flush and release.

An object that does not derive from :class:`Sink` but has ``publish``, ``truth``,
``status`` and ``close`` (a sink written against the earlier protocol, a test's
collector) is adapted once by :func:`as_sink`; its ``samples`` and ``tick`` are used when
it has them.

A sink that raises is logged once (per sink and method) and skipped for that call, and
scoring goes on: :class:`SafeCaller` is the one place that calls a sink's method.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .records import ScoredEpoch

if TYPE_CHECKING:  # pragma: no cover - typing only (streamer.stream imports pylsl)
    from streamer.stream import SampleChunk

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamStatus:
    """Stream health, sent to sinks on each scored epoch and on a ~1 Hz tick.

    The loop makes it from its stream's counters (:meth:`scorer.live.LiveScorer.make_status`);
    a ``--status-json`` reader gets it back from a ``status`` line without the signal
    (:func:`scorer.json_lines.status_from_event`).

    Parameters
    ----------
    source_name : str
        The EEG stream's name.
    sfreq_hz : float
        Its nominal rate, Hz.
    channel : str
        The channel scored.
    samples_received, samples_missing : int
        Counts since the start.
    gaps : int
        Number of detected gaps.
    stalled : bool
        No sample for the stall timeout ("signal lost").
    elapsed_s : float
        Time since the scorer started, s.
    last_latency_ms : float
        Latency of the latest published epoch, ms (NaN before the first).
    recent_uv : numpy.ndarray
        The last <= 30 s of the scored channel, µV, at ``recent_sfreq_hz`` (for a compact
        trace).
    recent_sfreq_hz : float
        The rate of ``recent_uv``, Hz.
    """

    source_name: str
    sfreq_hz: float
    channel: str
    samples_received: int = 0
    samples_missing: int = 0
    gaps: int = 0
    stalled: bool = False
    elapsed_s: float = 0.0
    last_latency_ms: float = float("nan")
    recent_uv: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32), repr=False)
    recent_sfreq_hz: float = 100.0


class Sink:
    """A destination for scored epochs (LSL outlets, hypnogram file, display, log, gate).

    Every method does nothing here; a sink overrides those it needs (see the module text).
    """

    def publish(self, record: ScoredEpoch) -> None:
        """A newly scored epoch.

        Parameters
        ----------
        record : ScoredEpoch
            The newly scored epoch: the same record every sink gets.
        """

    def truth(self, epoch: int, stage: str) -> None:
        """The true stage of an already published epoch, when a truth stream exists.

        Parameters
        ----------
        epoch : int
            The epoch's index, as in its record.
        stage : str
            W, N1, N2, N3, REM or UNS.
        """

    def status(self, status: StreamStatus) -> None:
        """Stream health, on each epoch and on a ~1 Hz tick.

        Parameters
        ----------
        status : StreamStatus
            The stream's health now.
        """

    def samples(self, chunk: SampleChunk) -> None:
        """Samples of the scored channel as pulled, before they are scored.

        Parameters
        ----------
        chunk : streamer.stream.SampleChunk
            µV samples with their timestamps and the samples missing before them.
        """

    def tick(self, now: float) -> None:
        """A turn of the loop: after each pull while it drains, after each record, and
        once a turn otherwise; never while the loop hangs.

        Parameters
        ----------
        now : float
            The scorer's LSL clock, s.
        """

    def close(self) -> None:
        """End of the session: flush and release."""


class _Adapted(Sink):
    """An object with ``publish``/``truth``/``status``/``close`` (and perhaps ``samples``
    and ``tick``) that does not derive from :class:`Sink`, seen as a Sink."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        missing = [m for m in ("publish", "truth", "status", "close") if not callable(getattr(inner, m, None))]
        if missing:
            raise TypeError(f"{type(inner).__name__} is not a sink: it has no {', '.join(missing)}")
        self._publish = inner.publish
        self._truth = inner.truth
        self._status = inner.status
        self._close = inner.close
        self._samples = getattr(inner, "samples", None)
        self._tick = getattr(inner, "tick", None)

    def __repr__(self) -> str:
        return repr(self.inner)

    def publish(self, record: ScoredEpoch) -> None:
        self._publish(record)

    def truth(self, epoch: int, stage: str) -> None:
        self._truth(epoch, stage)

    def status(self, status: StreamStatus) -> None:
        self._status(status)

    def samples(self, chunk: SampleChunk) -> None:
        if callable(self._samples):
            self._samples(chunk)

    def tick(self, now: float) -> None:
        if callable(self._tick):
            self._tick(now)

    def close(self) -> None:
        self._close()


def as_sink(obj: object) -> Sink:
    """``obj`` itself when it is a :class:`Sink`, else ``obj`` adapted to one (see the module text).

    Parameters
    ----------
    obj : object
        A :class:`Sink`, or any object with ``publish``, ``truth``, ``status`` and ``close``.

    Returns
    -------
    Sink
        What the loop calls.

    Raises
    ------
    TypeError
        ``obj`` lacks one of the four methods.
    """
    return obj if isinstance(obj, Sink) else _Adapted(obj)


def sink_name(sink: object) -> str:
    """The class name of a sink (of the object adapted, for an adapted one), for log lines.

    Parameters
    ----------
    sink : object
        A sink, adapted or not (:func:`as_sink`).

    Returns
    -------
    str
        Its class name, e.g. ``HypnogramFile``.
    """
    return type(sink.inner).__name__ if isinstance(sink, _Adapted) else type(sink).__name__


class SafeCaller:
    """Calls a sink's bound method so that one that raises is logged once (per sink and
    method) and skipped: a broken display never stops the hypnogram file.

    Parameters
    ----------
    logger : logging.Logger, optional
        Where the failure goes (default: this module's logger).
    """

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or log
        self._failed: set[tuple[int, str]] = set()

    def __repr__(self) -> str:
        return f"<SafeCaller {len(self._failed)} failed sink methods>"

    def __call__(self, method: Callable[..., None], *args: object) -> bool:
        """Call ``method(*args)``; True when it returned, False when it raised (logged
        the first time this sink's method raised).

        Parameters
        ----------
        method : callable
            A bound method of a sink, e.g. ``sink.publish``.
        *args : object
            Its arguments.

        Returns
        -------
        bool
            Whether the call returned normally.
        """
        try:
            method(*args)
            return True
        except Exception:
            owner = getattr(method, "__self__", method)
            name = getattr(method, "__name__", "call")
            key = (id(owner), name)
            if key not in self._failed:
                self._failed.add(key)
                self.log.exception("sink %s.%s failed; scoring goes on", sink_name(owner), name)
            return False

    def close_all(self, sinks: Sequence[Sink]) -> None:
        """Close every sink, in order, each once; a failure is logged and the rest are closed.

        Parameters
        ----------
        sinks : sequence of Sink
            The sinks to close.
        """
        for sink in sinks:
            self(sink.close)
