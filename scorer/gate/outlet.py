"""The ``<name>-gate`` LSL outlet: stimulation-window events for stimulus programs.

Type ``Markers``, irregular rate, two string channels: ``event`` (``open`` or
``close``) and ``reason``. Each sample is stamped with this machine's LSL clock
(``pylsl.local_clock()``) at the moment it is pushed: a stimulus program compares it
with its own ``local_clock()`` (plus ``inlet.time_correction()`` on another machine).
The source_id is stable (``sleepstream-scorer:<name>-gate``), so a listener finds a
restarted scorer again by it; a (re)started scorer first says ``close`` / ``restart``.

**The lease.** An ``open`` holds for ``lease_s`` seconds (default :data:`LEASE_S`, 2 s;
the stream's description says ``lease_s`` and what it means) after its stamp. While a
window is open the live loop itself (not a side thread: a hung loop stops renewing)
re-sends ``open`` at least every :data:`RENEW_S` seconds with the reason
:data:`LEASE_REASON` (``lease``): a renewal of the window already open, never a new
window (a new window's ``open`` carries the rule, e.g. ``N2/N3 p>=0.80 x2``). A listener
takes the window as closed when its newest marker is a ``close``, or an ``open`` older than
``lease_s`` on its own clock: a scorer that hangs (a stalled disk, SIGSTOP) or a network
that drops lets the window lapse, it never stays open. So a program that counts windows
counts the ``open`` markers whose reason is not ``lease``; one that only asks "may I
stimulate now?" reads any ``open`` the same way. The renewals are not events: they are
not in the gate's history, its callbacks, the ``--status-json`` ``gate`` lines or the ward.
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
OPEN_EVENT = "open"
CLOSE_EVENT = "close"
#: An ``open`` holds this long (s) after its stamp, unless renewed.
LEASE_S = 2.0
#: While a window is open the loop re-sends ``open`` this often (s), at most (< 0.5 s).
RENEW_S = 0.25
#: The reason of a renewal (an ``open`` of the window already open).
LEASE_REASON = "lease"
LEASE_TEXT = ("an open window holds for lease_s seconds after the stamp of the newest open marker; while it is "
              "open the scorer re-sends open (reason 'lease': the same window, not a new one) at least every "
              "renew_s seconds; a listener whose newest marker is an open older than lease_s on its own LSL "
              "clock (plus time_correction() on another machine) must take the window as closed")


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
    lease_s : float
        How long an ``open`` holds without renewal (s), said in the description.
    """

    def __init__(self, name: str, rule: str = "", source_stream: str = "", lease_s: float = LEASE_S) -> None:
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
        d.append_child_value("timestamp", "when the marker was pushed (a change of the window, or a lease "
                                          "renewal), scorer's LSL clock")
        d.append_child_value("lease_s", f"{lease_s:g}")
        d.append_child_value("renew_s", f"{RENEW_S:g}")
        d.append_child_value("lease", LEASE_TEXT)
        self.lease_s = float(lease_s)
        self.renewals = 0
        self._outlet: pylsl.StreamOutlet | None = pylsl.StreamOutlet(info)
        log.info("publishing stimulation windows on LSL stream '%s'", self.name)

    def push(self, event: str, reason: str) -> float:
        """Push one event, stamped with this machine's LSL clock now.

        After :meth:`close` nothing is pushed (the stamp is still returned).

        Parameters
        ----------
        event : str
            ``open`` or ``close``.
        reason : str
            Why: the rule for a new window, ``lease`` for a renewal, the close's cause.

        Returns
        -------
        float
            The event's stamp, s (local LSL clock).
        """
        stamp = pylsl.local_clock()
        if self._outlet is not None:
            self._outlet.push_sample([event, reason], stamp)
        return stamp

    def renew(self) -> float:
        """Re-send ``open`` / ``lease`` for the window already open.

        Returns
        -------
        float
            The renewal's stamp, s (local LSL clock).
        """
        self.renewals += 1
        return self.push(OPEN_EVENT, LEASE_REASON)

    def __repr__(self) -> str:
        return f"<GateOutlet {self.name}: lease {self.lease_s:g} s, {self.renewals} renewals>"

    def have_consumers(self) -> bool:
        """Whether a listener is connected to the outlet.

        Returns
        -------
        bool
            False after :meth:`close`.
        """
        return self._outlet is not None and self._outlet.have_consumers()

    def close(self, linger_s: float = 0.5) -> None:
        """Give connected listeners ``linger_s`` to pull the last events, then close.

        Parameters
        ----------
        linger_s : float
            How long to wait (s) when a listener is connected; 0: close at once.
        """
        if self._outlet is not None and linger_s > 0 and self._outlet.have_consumers():
            time.sleep(linger_s)
        self._outlet = None
