"""The gate as a sink of the live loop: stimulation windows from scored epochs, closed at
once by the arousal guard, published on LSL and to Python callbacks.

:class:`GateSink` gets every scored epoch (``publish``), stream health (``status``:
signal lost) and, through the loop's raw-sample tap (``samples``), every pulled chunk
of the scored channel, which feeds the arousal guard while a window is open and shows
gaps the moment they arrive. Events go, in order, to the ``<name>-gate`` outlet and to
each listener (``listener(event, stamp)``; a listener that raises is logged and
skipped).
"""
from __future__ import annotations

import logging
from collections import deque
from typing import Callable

import numpy as np
import pylsl

from scorer.records import ScoredEpoch
from scorer.sinks import StreamStatus
from streamer.stream import SampleChunk

from .guard import ArousalGuard
from .outlet import GateOutlet
from .rules import DEFAULT_RULE, GateRule
from .window import CLOSE, OPEN, GateEvent, GateWindow

log = logging.getLogger(__name__)

Listener = Callable[[GateEvent, float], None]


class GateSink:
    """Stimulation windows for a live session (see the module text).

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
    """

    def __init__(self, sfreq_hz: float, rule: GateRule = DEFAULT_RULE, outlet_name: str | None = None,
                 listeners: tuple[Listener, ...] | list[Listener] = (), source_stream: str = "",
                 linger_s: float = 0.5) -> None:
        self.rule = rule
        self.window = GateWindow(rule)
        self.guard = ArousalGuard(sfreq_hz, rule.thresholds) if rule.guard else None
        self.outlet = GateOutlet(outlet_name, rule.describe(), source_stream) if outlet_name else None
        self.linger_s = linger_s
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
        return f"<GateSink {where}: {self.window!r}>"

    # -- API for programs in the same process ------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(event, stamp)`` on every later event."""
        self._listeners.append(listener)

    @property
    def is_open(self) -> bool:
        """Whether a stimulation window is open now."""
        return self.window.is_open

    # -- the Sink protocol -------------------------------------------------------------
    def publish(self, record: ScoredEpoch) -> None:
        arrival = pylsl.local_clock() - record.latency_ms / 1000.0
        self._last_data_time = np.nanmax([self._last_data_time, record.end_time])
        self._emit(self.window.on_epoch(record, arrival))

    def samples(self, chunk: SampleChunk) -> None:
        """Raw samples (µV) as pulled: gaps at once, the guard while a window is open."""
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

    def truth(self, epoch: int, stage: str) -> None:
        """Truth does not move windows."""

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
