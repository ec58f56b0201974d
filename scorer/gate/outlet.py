"""The ``<name>-gate`` LSL outlet: stimulation-window events for stimulus programs.

Type ``Markers``, irregular rate, two string channels: ``event`` (``open`` or
``close``) and ``reason``. Each sample is stamped with this machine's LSL clock
(``pylsl.local_clock()``) at the moment it is pushed, i.e. when the window changed
state: a stimulus program compares it with its own ``local_clock()``. The source_id is
stable (``sleepstream-scorer:<name>-gate``), so a listener with ``recover=True`` comes
back to a restarted scorer, which first says ``close`` / ``restart``.
"""
from __future__ import annotations

import logging
import time

import pylsl

from scorer.lsl_outlets import outlet_source_id

log = logging.getLogger(__name__)

GATE_SUFFIX = "-gate"
GATE_TYPE = "Markers"
GATE_CHANNELS = ("event", "reason")


class GateOutlet:
    """The Markers outlet ``<name>-gate``.

    Parameters
    ----------
    name : str
        Outlet name prefix (``--outlet-name``).
    rule : str
        The rule, described in the stream's ``rule`` field.
    source_stream : str
        The EEG stream scored (for the description).
    """

    def __init__(self, name: str, rule: str = "", source_stream: str = "") -> None:
        self.name = name + GATE_SUFFIX
        info = pylsl.StreamInfo(self.name, GATE_TYPE, len(GATE_CHANNELS), pylsl.IRREGULAR_RATE, "string",
                                outlet_source_id(name, GATE_SUFFIX))
        d = info.desc()
        chans = d.append_child("channels")
        for label in GATE_CHANNELS:
            ch = chans.append_child("channel")
            ch.append_child_value("label", label)
            ch.append_child_value("unit", "none")
            ch.append_child_value("type", GATE_TYPE)
        d.append_child_value("manufacturer", "sleepstream")
        d.append_child_value("rule", rule)
        d.append_child_value("source_stream", source_stream)
        d.append_child_value("timestamp", "when the window changed state, scorer's LSL clock")
        self._outlet: pylsl.StreamOutlet | None = pylsl.StreamOutlet(info)
        log.info("publishing stimulation windows on LSL stream '%s'", self.name)

    def push(self, event: str, reason: str) -> float:
        """Push one event; returns its stamp (s, local LSL clock)."""
        stamp = pylsl.local_clock()
        if self._outlet is not None:
            self._outlet.push_sample([event, reason], stamp)
        return stamp

    def have_consumers(self) -> bool:
        return self._outlet is not None and self._outlet.have_consumers()

    def close(self, linger_s: float = 0.5) -> None:
        """Give connected listeners ``linger_s`` to pull the last events, then close."""
        if self._outlet is not None and linger_s > 0 and self._outlet.have_consumers():
            time.sleep(linger_s)
        self._outlet = None
