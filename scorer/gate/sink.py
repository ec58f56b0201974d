"""The gate as a sink of the live loop: stimulation windows from scored epochs, closed at
once by the arousal guard, published on LSL and to Python callbacks.

:class:`GateSink` gets every scored epoch (``publish``), stream health (``status``:
signal lost) and, through the loop's raw-sample tap (``samples``), every pulled chunk
of the scored channel, which feeds the arousal guard while a window is open and shows
gaps the moment they arrive. Events go, in order, to the ``<name>-gate`` outlet and to
each listener (``listener(event, stamp)``; a listener that raises is logged and
skipped).

The lease (:mod:`scorer.gate.outlet`): the live loop calls :meth:`GateSink.tick` on every
turn (between pulls and between records too). While a window is open, ``tick`` re-sends
``open`` / ``lease`` on the outlet every ``renew_s`` (0.25 s), and closes the window:

* ``max open time``: ``max_open_s`` after it opened on the scorer's monotonic clock, even
  while no data arrives;
* ``lease lapsed``: the loop came back after more than ``lease_s`` without a turn (it hung:
  a stalled disk, SIGSTOP). Its listeners have taken the window as closed by then; the
  scorer agrees, and the rule must be met again by epochs after the hang.

NOT RECORDING: given ``recording`` (the hypnogram file's
:attr:`scorer.hypnogram_file.HypnogramFile.recording`), a window never opens while the
night is not being recorded, and an open one closes with reason ``not recording``. A live
session (:class:`scorer.session.LiveSession`) puts the file before the gate in the sinks,
so the file has tried to write an epoch's row before the gate decides on that epoch: an
epoch whose row could not be written never opens a window. (This costs the markers decided
on an epoch one fsync'ed append; the guard's and the gaps' closes come from the raw-sample
tap, before any sink, and are not delayed.)
"""
from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

import numpy as np
import pylsl

from scorer.records import ScoredEpoch
from scorer.sinks import Sink, StreamStatus
from sleepnet.doc_sections import sections_of
from streamer.stream import SampleChunk

from .guard import ArousalGuard
from .outlet import LEASE_S, RENEW_S, GateOutlet
from .rules import DEFAULT_RULE, GateRule
from .window import CLOSE, OPEN, GateEvent, GateWindow

log = logging.getLogger(__name__)

Listener = Callable[[GateEvent, float], None]


class GateSink(Sink):
    """Stimulation windows for a live session (see the module text).

    Truth does not move windows: :meth:`~scorer.sinks.Sink.truth` is the base's, which does
    nothing.

    Parameters
    ----------
    sfreq_hz : float
        Rate of the scored stream (the guard's samples), Hz.
    rule : GateRule
        When windows open and close.
    outlet_name : str, optional
        Publish on LSL as ``<outlet_name>-gate``; None: callbacks only.
    listeners : sequence of callables, optional
        Called as ``listener(event, stamp)`` for each event, after it is published.
    source_stream : str
        The EEG stream's name (for the outlet description).
    linger_s : float
        On :meth:`close`, how long connected listeners get to pull the last markers (s).
    lease_s : float
        How long an ``open`` holds without renewal (s); said in the outlet's description.
    renew_s : float
        How often an open window is renewed (s); below ``lease_s``.
    recording : callable, optional
        Returns whether the night is being recorded (the hypnogram file's
        ``recording``); while it returns False no window opens.

    Raises
    ------
    ValueError
        ``renew_s`` is not positive or not below ``lease_s``.
    """

    def __init__(self, sfreq_hz: float, rule: GateRule = DEFAULT_RULE, outlet_name: str | None = None,
                 listeners: tuple[Listener, ...] | list[Listener] = (), source_stream: str = "",
                 linger_s: float = 0.5, lease_s: float = LEASE_S, renew_s: float = RENEW_S,
                 recording: Callable[[], bool] | None = None) -> None:
        if not 0 < renew_s < lease_s:
            raise ValueError(f"renew_s must be positive and below lease_s, got renew_s={renew_s}, lease_s={lease_s}")
        self.rule = rule
        self.window = GateWindow(rule)
        self.guard = ArousalGuard(sfreq_hz, rule.thresholds) if rule.guard else None
        self.outlet = GateOutlet(outlet_name, rule.describe(), source_stream, lease_s) if outlet_name else None
        self.linger_s = linger_s
        self.lease_s = float(lease_s)
        self.renew_s = float(renew_s)
        self.recording = recording
        self.renewals = 0
        self._last_push = float("nan")      # local clock of the newest open or renewal (NaN: closed)
        self._listeners: list[Listener] = list(listeners)
        self._failed: set[int] = set()
        self._last: tuple[str, str] = (CLOSE, "restart")
        self._had_consumers = False
        self._last_data_time = float("nan")
        self._lost = False
        #: (event, stamp, latency_ms) of the latest events: latency from the deciding
        #: data's arrival to the push.
        self.history: deque[tuple[GateEvent, float, float]] = deque(maxlen=100_000)
        self._emit([self.window.start(pylsl.local_clock())])

    def __repr__(self) -> str:
        where = self.outlet.name if self.outlet is not None else "no outlet"
        return f"<GateSink {where}: {self.window!r}, lease {self.lease_s:g} s>"

    # -- API for programs in the same process ------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(event, stamp)`` on every later event.

        Parameters
        ----------
        listener : callable
            ``fn(event, stamp)`` with the :class:`~scorer.gate.window.GateEvent` and its
            stamp (s, local LSL clock); one that raises is logged once and skipped.
        """
        self._listeners.append(listener)

    @property
    def is_open(self) -> bool:
        """Whether a stimulation window is open now."""
        return self.window.is_open

    # -- the Sink methods --------------------------------------------------------------
    @sections_of(Sink.publish, """Decide on a scored epoch (its latency dates the data's
        arrival): a window may open (or close, when it no longer meets the rule); while the
        night is not recorded it closes with ``not recording``.""")
    def publish(self, record: ScoredEpoch) -> None:
        now = pylsl.local_clock()
        arrival = now - record.latency_ms / 1000.0
        self._last_data_time = np.nanmax([self._last_data_time, record.end_time])
        if not self._recording():
            self._emit(self.window.on_break("not recording", record.end_time, arrival, record.epoch))
            return
        self._emit(self.window.on_epoch(record, arrival, now))

    def tick(self, now: float | None = None) -> None:
        """A turn of the live loop: renew an open window's lease, or close it.

        A window closes with ``max open time``, ``lease lapsed`` or ``not recording``.
        Cheap; the loop calls it often.

        Parameters
        ----------
        now : float, optional
            The scorer's LSL clock, s (default: read it now).
        """
        if not self.window.is_open:
            return
        now = pylsl.local_clock() if now is None else now
        t = self._last_data_time
        if not self._recording():
            self._emit(self.window.on_break("not recording", t, now))
        elif now - self._last_push > self.lease_s:
            self._emit(self.window.on_break("lease lapsed", t, now))
        else:
            expired = self.window.on_clock(now, t, now)
            if expired:
                self._emit(expired)
            elif now - self._last_push >= self.renew_s:
                self._last_push = self.outlet.renew() if self.outlet is not None else now
                self.renewals += 1

    @sections_of(Sink.samples, """Raw samples as pulled: gaps close a window at once, the guard
        judges them while one is open.""")
    def samples(self, chunk: SampleChunk) -> None:
        if not len(chunk.samples_uv) and not chunk.missing_before:
            return
        events: list[GateEvent] = []
        if chunk.missing_before:
            if self.guard is not None:
                self.guard.reset()
            t0 = float(chunk.timestamps[0]) if len(chunk.timestamps) else self._last_data_time
            events += self.window.on_break("gap", t0, chunk.arrival_time)
        if len(chunk.timestamps):
            self._lost = False
            t_end = float(chunk.timestamps[-1])
            self._last_data_time = t_end
            if self.guard is not None:
                for v in self.guard.push(chunk.samples_uv, t_end, chunk.arrival_time):
                    events += self.window.on_alarm(v)
            events += self.window.on_time(t_end, chunk.arrival_time)
        self._emit(events)

    @sections_of(Sink.status, """Close a window when the signal is lost (``signal lost``), and
        say the current state again when the first listener connects to the outlet.""")
    def status(self, status: StreamStatus) -> None:
        if status.stalled and not self._lost:
            self._lost = True
            if self.guard is not None:
                self.guard.reset()
            self._emit(self.window.on_break("signal lost", self._last_data_time, pylsl.local_clock()))
        self._announce()

    def close(self) -> None:
        """A scorer that stops closes its window (reason ``scorer stopped``)."""
        if self.window.is_open:
            t = self._last_data_time
            self._emit(self.window.on_break("scorer stopped", t))
        if self.outlet is not None:
            self.outlet.close(self.linger_s)

    # -- internals ---------------------------------------------------------------------
    def _recording(self) -> bool:
        if self.recording is None:
            return True
        try:
            return bool(self.recording())
        except Exception:
            log.exception("gate: the recording check failed; no window opens")
            return False

    def _announce(self) -> None:
        """Listeners that connect later (e.g. back to a restarted scorer) missed what was
        pushed before: when the first one appears, say the current state again."""
        if self.outlet is None:
            return
        has = self.outlet.have_consumers()
        if has and not self._had_consumers:
            self.outlet.push(*self._last)
        self._had_consumers = has

    def _emit(self, events: list[GateEvent]) -> None:
        for ev in events:
            if self.guard is not None:
                if ev.kind == OPEN:
                    self.guard.arm()
                else:
                    self.guard.disarm()
            stamp = self.outlet.push(ev.kind, ev.reason) if self.outlet is not None else pylsl.local_clock()
            self._last_push = stamp if ev.kind == OPEN else float("nan")
            self._last = (ev.kind, ev.reason)
            self.history.append((ev, stamp, (stamp - ev.arrival_time) * 1000.0))
            log.info("gate %s (%s)", ev.kind, ev.reason)
            for fn in self._listeners:
                try:
                    fn(ev, stamp)
                except Exception:
                    if id(fn) not in self._failed:
                        self._failed.add(id(fn))
                        log.exception("gate listener %r failed; the gate goes on", fn)
