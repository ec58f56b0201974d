"""The stimulation window as a pure state machine.

Fed scored epochs (:class:`scorer.records.ScoredEpoch`), guard alarms
(:class:`scorer.gate.guard.GuardVerdict`), gaps and signal loss; gives
:class:`GateEvent` (open / close with a reason). No LSL and no clock: every time is
the data's (s, the scorer's LSL clock).

* It starts closed; :meth:`GateWindow.start` gives the ``close`` (reason ``restart``)
  that tells listeners a (re)started scorer holds no window open.
* It opens when ``rule.epochs`` consecutive epochs are scored in ``rule.stages`` with
  probability >= ``rule.min_probability`` and carry no flag at all (warmup, gap, flat,
  clipped, artefact); an unscored epoch (UNS) breaks the run.
* It closes on an epoch of another stage, a confidence drop, any flag or UNS, a guard
  alarm, a gap, signal lost, or ``rule.max_open_s`` after opening. Every close restarts
  the count: after a close the rule must be met again, from the next epoch on, by
  epochs that began after the close.

``max_open_s`` counts on the scorer's monotonic clock (:meth:`GateWindow.on_clock`, fed
``pylsl.local_clock()`` by the live loop on every turn, so it fires while no data
arrives), and on the data clock too (:meth:`GateWindow.on_time`: a replay faster than real
time, and offline runs without a clock).
"""
from __future__ import annotations

from dataclasses import dataclass

from scorer.records import ScoredEpoch

from .guard import GuardVerdict
from .rules import DEFAULT_RULE, GateRule

OPEN = "open"
CLOSE = "close"


@dataclass(frozen=True)
class GateEvent:
    """A window opening or closing.

    Made by :class:`GateWindow`; the gate sink pushes its ``kind`` and ``reason`` as a
    marker and keeps ``arrival_time`` to time the decision (:class:`scorer.gate.sink.GateSink`).

    Parameters
    ----------
    kind : str
        ``open`` or ``close``.
    reason : str
        Why: the rule met, ``stage REM``, ``confidence 0.62``, ``flag gap``, ``arousal:
        hf``, ``signal lost``, ``max open time``, ``restart``, ...
    time : float
        The data time the decision rests on (s, the scorer's LSL clock: an epoch's last
        sample, the newest sample the guard judged).
    epoch : int, optional
        The epoch that decided it, when one did.
    arrival_time : float
        When the deciding data arrived (s, local LSL clock; NaN when not known).
    """

    kind: str
    reason: str
    time: float
    epoch: int | None = None
    arrival_time: float = float("nan")


class GateWindow:
    """Open/closed state of one stimulation window (pure; see the module text).

    Parameters
    ----------
    rule : GateRule
        When the window opens and how long it may stay open.
    """

    def __init__(self, rule: GateRule = DEFAULT_RULE) -> None:
        self.rule = rule
        self._open = False
        self._opened_at = float("nan")
        self._opened_clock = float("nan")
        self._streak = 0
        self._not_before = -float("inf")   # epochs must start after this to count

    def __repr__(self) -> str:
        state = "open" if self._open else f"closed, {self._streak}/{self.rule.epochs} epochs"
        return f"<GateWindow {self.rule.describe()}: {state}>"

    @property
    def is_open(self) -> bool:
        """Whether the window is open."""
        return self._open

    @property
    def streak(self) -> int:
        """Consecutive epochs meeting the rule so far."""
        return self._streak

    def start(self, time: float) -> GateEvent:
        """The close a (re)started scorer publishes first: it holds no window open.

        The streak starts again: epochs that met the rule before do not count.

        Parameters
        ----------
        time : float
            The event's time, s (the scorer's LSL clock when it starts).

        Returns
        -------
        GateEvent
            ``close`` with reason ``restart``.
        """
        self._open = False
        self._streak = 0
        return GateEvent(CLOSE, "restart", time)

    def why_not(self, record: ScoredEpoch) -> str | None:
        """Why a scored epoch does not meet the rule.

        Parameters
        ----------
        record : ScoredEpoch
            The epoch.

        Returns
        -------
        str or None
            ``unscored``, ``flag <flags>``, ``stage <stage>``, ``confidence <p>`` or
            ``after a close`` (the epoch began before the latest close); None when it
            meets the rule.
        """
        if not record.scored:
            return "unscored"
        if record.flags:
            return "flag " + "+".join(record.flags)
        if record.stage not in self.rule.stages:
            return f"stage {record.stage}"
        if not record.confidence >= self.rule.min_probability:
            return f"confidence {record.confidence:.2f}"
        if record.start_time <= self._not_before:
            return "after a close"
        return None

    def on_epoch(self, record: ScoredEpoch, arrival_time: float = float("nan"),
                 now: float | None = None) -> list[GateEvent]:
        """A newly scored epoch: may open or close the window.

        Parameters
        ----------
        record : ScoredEpoch
            The epoch.
        arrival_time : float
            When its last sample arrived, s (local LSL clock; NaN when not known).
        now : float, optional
            The scorer's monotonic clock (s) at this decision, from which
            :meth:`on_clock` counts ``max_open_s`` (None: the record's end time).

        Returns
        -------
        list of GateEvent
            The ``open`` or ``close`` it caused (empty for none).
        """
        why = self.why_not(record)
        if self._open:
            if why is not None:
                return [self._close(why, record.end_time, record.epoch, arrival_time)]
            expired = self._expired(record.end_time, arrival_time, record.epoch)
            return [expired] if expired else []
        if why is not None:
            self._streak = 0
            return []
        self._streak += 1
        if self._streak >= self.rule.epochs:
            self._open = True
            self._opened_at = record.end_time
            self._opened_clock = record.end_time if now is None else float(now)
            return [GateEvent(OPEN, self.rule.describe(), record.end_time, record.epoch, arrival_time)]
        return []

    def on_alarm(self, verdict: GuardVerdict) -> list[GateEvent]:
        """A guard alarm: closes an open window at once.

        Parameters
        ----------
        verdict : GuardVerdict
            The alarm; its reason becomes the close's.

        Returns
        -------
        list of GateEvent
            The ``close`` (empty when the window was closed).
        """
        if not self._open:
            return []
        return [self._close(verdict.reason, verdict.time, None, verdict.arrival_time)]

    def on_break(self, reason: str, time: float, arrival_time: float = float("nan"),
                 epoch: int | None = None) -> list[GateEvent]:
        """A gap, a lost signal, a night not recorded: closes an open window.

        The rule must be met again by epochs that begin after ``time``.

        Parameters
        ----------
        reason : str
            What broke: ``gap``, ``signal lost``, ``not recording``, ...
        time : float
            The data time of the break, s.
        arrival_time : float
            When the deciding data arrived, s (NaN when not known).
        epoch : int, optional
            The epoch that decided it, when one did.

        Returns
        -------
        list of GateEvent
            The ``close`` (empty when the window was closed).
        """
        self._streak = 0
        self._not_before = max(self._not_before, time)
        if not self._open:
            return []
        return [self._close(reason, time, epoch, arrival_time)]

    def on_time(self, time: float, arrival_time: float = float("nan")) -> list[GateEvent]:
        """The data clock moved on: closes a window open for ``max_open_s`` of data time.

        Parameters
        ----------
        time : float
            The newest data time, s.
        arrival_time : float
            When that data arrived, s (NaN when not known).

        Returns
        -------
        list of GateEvent
            The ``close`` (``max open time``) once ``time`` is ``max_open_s`` past the
            open's data time; empty before, or when the window is closed.
        """
        if not self._open:
            return []
        expired = self._expired(time, arrival_time, None)
        return [expired] if expired else []

    def on_clock(self, now: float, time: float = float("nan"), arrival_time: float = float("nan")) -> list[GateEvent]:
        """The scorer's monotonic clock moved on: closes a window open for ``max_open_s``
        on it, whether or not data arrives.

        Parameters
        ----------
        now : float
            The scorer's monotonic clock, s.
        time : float
            The newest data time (the close's decision time), s.
        arrival_time : float
            When that data arrived, s (NaN when not known).

        Returns
        -------
        list of GateEvent
            The ``close`` (``max open time``, at ``time``) once ``now`` is ``max_open_s``
            past the open on this clock; empty before, or when the window is closed.
        """
        if not self._open or not now - self._opened_clock >= self.rule.max_open_s:
            return []
        return [self._close("max open time", time, None, arrival_time)]

    def _expired(self, time: float, arrival_time: float, epoch: int | None) -> GateEvent | None:
        if time - self._opened_at >= self.rule.max_open_s:
            return self._close("max open time", time, epoch, arrival_time)
        return None

    def _close(self, reason: str, time: float, epoch: int | None, arrival_time: float) -> GateEvent:
        self._open = False
        self._streak = 0
        self._not_before = max(self._not_before, time)
        return GateEvent(CLOSE, reason, time, epoch, arrival_time)
