"""The stimulus program's side of the gate: :class:`GateListener` (``sleepstream.GateListener``).

It follows one scorer's ``<name>-gate`` Markers stream (:mod:`scorer.gate.outlet`) on a
thread of its own and answers, at any moment, whether a stimulation window is open, with
the lease: the window is open only while the newest marker is an ``open`` whose stamp
(the scorer's LSL clock, plus ``inlet.time_correction()``: right on another machine too)
is younger than ``lease_s`` on this machine's LSL clock. :attr:`GateListener.is_open`
checks the lease on each call, so it is right even when the listener's thread is starved.

What it gets right, so a stimulus program need not:

* **a hung scorer or a dropped network**: a SIGSTOPped scorer raises no error for 40 s or
  more (NOTES.md, "Failing closed"); its renewals stop, and the window closes
  ``lease_s`` after the last one (callback reason ``lease expired``);
* **a killed scorer**: the inlet is opened with ``recover=False``, so the outlet vanishing
  raises ``LostError`` at once: closed (reason ``stream lost``), and the listener looks for
  the stream again;
* **restarts**: a restarted scorer has the same source_id; the listener finds it again and
  hears its ``close`` / ``restart`` before any new ``open``;
* **duplicates**: it follows ONE stream, its source_id on its host (the first found by
  name, preferring the scorer's own source_id ``sleepstream-scorer:<name>``); other
  streams with the same name are ignored, also after a loss.

Callbacks ``on_open(reason, stamp)`` and ``on_close(reason, stamp)`` run on the listener's
thread when the state changes (``stamp``: this machine's LSL clock, s): keep them short.
A renewal (reason ``lease``) is not a change unless the window had lapsed for this
listener (then it opens again with reason ``lease``: the scorer still holds it open).
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

import pylsl

try:                                   # pylsl 1.18.6: not exported as pylsl.LostError
    from pylsl.util import LostError
except ImportError:                    # pragma: no cover - other pylsl versions
    from pylsl import LostError  # type: ignore[attr-defined,no-redef]

from sleepnet.doc_sections import sections_of

from .outlet import CLOSE_EVENT, GATE_SUFFIX, LEASE_REASON, LEASE_S, OPEN_EVENT

log = logging.getLogger(__name__)

Callback = Callable[[str, float], None]

DEFAULT_GATE_NAME = "sleepstream" + GATE_SUFFIX
SCORER_PREFIX = "sleepstream-scorer:"   # the scorer's gate source_id: this + the stream's name
POLL_S = 0.05                 # the thread checks the lease at least this often (s)
CLOCK_REFRESH_S = 10.0        # time_correction() again after this long (s)
#: The longest lease a stream's description may say (s); a longer one (or none, or one not
#: a positive finite number) is taken as :data:`LEASE_S`: a window never holds for ever.
MAX_LEASE_S = 60.0


def _xpath_literal(value: str) -> str:
    """``value`` quoted for an LSL (XPath 1.0) predicate."""
    return f'"{value}"' if "'" in value else f"'{value}'"


class GateListener:
    """Whether one scorer's stimulation window is open now, with the lease (see the module text).

    Parameters
    ----------
    name : str
        The gate stream's name (``<outlet-name>-gate``; default ``sleepstream-gate``).
    source_id : str, optional
        Follow the stream with this source_id (default: the first found by ``name``).
    lease_s : float, optional
        How long an ``open`` holds without renewal (s). Default: the stream's
        description says (``lease_s``); 2.0 for a stream that says none, or a value
        that is not a positive finite number of seconds up to :data:`MAX_LEASE_S` (60).
    on_open, on_close : callable, optional
        ``fn(reason, stamp)`` when the window opens / closes for this listener.
    resolve_timeout_s : float
        Each search for the stream waits this long (s) before trying again.

    Raises
    ------
    ValueError
        ``lease_s`` is not a positive number of seconds.

    Examples
    --------
    >>> with sleepstream.GateListener("sleepstream-gate") as gate:  # doctest: +SKIP
    ...     while True:
    ...         if gate.wait_open(timeout=1.0):
    ...             present_cue()          # check gate.is_open again before each stimulus
    """

    def __init__(self, name: str = DEFAULT_GATE_NAME, *, source_id: str | None = None,
                 lease_s: float | None = None, on_open: Callback | None = None, on_close: Callback | None = None,
                 resolve_timeout_s: float = 1.0) -> None:
        if lease_s is not None and not (math.isfinite(lease_s) and lease_s > 0):
            raise ValueError(f"lease_s must be a positive number of seconds, got {lease_s!r}")
        self.name = name
        self._want_sid = source_id
        self._lease_arg = lease_s
        self.lease_s = float(lease_s) if lease_s is not None else LEASE_S
        self._lease_warned: set[str] = set()     # lease_s texts of the stream already warned about
        self.on_open = on_open
        self.on_close = on_close
        self.resolve_timeout_s = float(resolve_timeout_s)
        self.source_id: str | None = source_id
        self.hostname: str | None = None
        self.markers = 0
        self._cond = threading.Condition()
        self._event: str | None = None        # newest marker: open / close (None: none yet)
        self._stamp = -math.inf               # its stamp on this machine's clock
        self._reason = "not connected"
        self._reported = False                # the state the callbacks were last told (open?)
        self._connected = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        sid = f" ({self.source_id})" if self.source_id else ""
        if not self._connected:
            state = "searching" if self._thread is not None and self._thread.is_alive() else "stopped"
        else:
            state = "open" if self.is_open else "closed"
        return f"<GateListener {self.name!r}{sid}: {state} ({self.reason}), lease {self.lease_s:g} s>"

    # -- lifecycle --
    def start(self) -> GateListener:
        """Start following the stream, on a thread of its own (again after :meth:`stop`).

        The thread looks for the stream until found (:meth:`wait_connected`), then pulls its
        markers; a stream lost closes the window and is looked for again.

        Returns
        -------
        GateListener
            This listener (started already: returned as it is).
        """
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"gate-listener-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop following: the window is closed for this listener (reason ``listener stopped``).

        Parameters
        ----------
        timeout_s : float
            The longest wait for the thread to end, s.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        with self._cond:
            self._set(CLOSE_EVENT, "listener stopped", pylsl.local_clock())
            self._connected = False
        self._report()

    def __enter__(self) -> GateListener:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the answers --
    @property
    def is_open(self) -> bool:
        """Whether the window is open now: the newest marker is an ``open`` younger than
        ``lease_s`` (checked on each call)."""
        with self._cond:
            return self._open_at(pylsl.local_clock())

    @property
    def reason(self) -> str:
        """Why the window is open or closed (the scorer's reason, ``lease expired``,
        ``stream lost``, ``not connected``, ...)."""
        with self._cond:
            if self._event == OPEN_EVENT and not self._open_at(pylsl.local_clock()):
                return "lease expired"
            return self._reason

    @property
    def connected(self) -> bool:
        """Whether an inlet on the stream is open."""
        return self._connected

    def wait_open(self, timeout: float | None = None) -> bool:
        """Wait until the window is open.

        Parameters
        ----------
        timeout : float, optional
            The longest wait, s (None: for ever).

        Returns
        -------
        bool
            True when what it waits for holds on return; False when ``timeout`` ran out
            first.
        """
        return self._wait(lambda: self._open_at(pylsl.local_clock()), timeout)

    @sections_of(wait_open, "Wait until the window is closed (lease expiry included).")
    def wait_closed(self, timeout: float | None = None) -> bool:
        return self._wait(lambda: not self._open_at(pylsl.local_clock()), timeout)

    @sections_of(wait_open, "Wait until the stream is found and its inlet open.")
    def wait_connected(self, timeout: float | None = None) -> bool:
        return self._wait(lambda: self._connected, timeout)

    # -- internals --
    def _open_at(self, now: float) -> bool:
        return self._event == OPEN_EVENT and now - self._stamp < self.lease_s

    def _wait(self, cond: Callable[[], bool], timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not cond():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                # wake at least every POLL_S: a lease expires without a notification
                self._cond.wait(POLL_S if left is None else min(POLL_S, left))
            return True

    def _set(self, event: str, reason: str, stamp: float) -> None:
        self._event, self._reason, self._stamp = event, reason, stamp
        self._cond.notify_all()

    def _report(self) -> None:
        """Tell the callbacks when the window changed for this listener."""
        with self._cond:
            is_open = self._open_at(pylsl.local_clock())
            if is_open == self._reported:
                return
            self._reported = is_open
            reason, stamp = self._reason, self._stamp
            if not is_open and self._event == OPEN_EVENT:     # no renewal in time
                reason, stamp = "lease expired", self._stamp + self.lease_s
            self._cond.notify_all()
        fn = self.on_open if is_open else self.on_close
        if fn is not None:
            try:
                fn(reason, stamp)
            except Exception:
                log.exception("gate listener callback %r failed", fn)

    def _run(self) -> None:
        inlet: pylsl.StreamInlet | None = None
        offset = 0.0
        clock_at = -math.inf
        while not self._stop.is_set():
            if inlet is None:
                inlet, offset = self._connect()
                clock_at = time.monotonic()
                continue
            try:
                sample, stamp = inlet.pull_sample(timeout=POLL_S)
                while sample is not None:
                    self._marker(str(sample[0]), str(sample[1]) if len(sample) > 1 else "", stamp + offset)
                    sample, stamp = inlet.pull_sample(timeout=0.0)
                if time.monotonic() - clock_at > CLOCK_REFRESH_S:
                    clock_at = time.monotonic()
                    try:
                        offset = inlet.time_correction(timeout=0.5)
                    except Exception:           # keep the last estimate
                        pass
            except LostError:
                log.warning("gate stream %s (%s) lost: the window is closed; looking for it again",
                            self.name, self.source_id)
                del inlet
                inlet = None
                with self._cond:
                    self._connected = False
                    if self._event == OPEN_EVENT:
                        self._set(CLOSE_EVENT, "stream lost", pylsl.local_clock())
                    else:
                        self._reason = "stream lost"
            self._report()
        if inlet is not None:
            try:
                inlet.close_stream()
            except Exception:               # the stream may be gone already
                pass
            del inlet

    def _marker(self, event: str, reason: str, stamp: float) -> None:
        if event not in (OPEN_EVENT, CLOSE_EVENT):
            log.warning("gate stream %s: unknown event %r ignored", self.name, event)
            return
        self.markers += 1
        with self._cond:
            if event == OPEN_EVENT and reason == LEASE_REASON and self._open_at(pylsl.local_clock()):
                reason = self._reason         # a renewal keeps the reason the window opened with
            self._set(event, reason, stamp)
        self._report()

    def _find(self) -> pylsl.StreamInfo | None:
        if self.source_id is not None:
            pred = f"source_id={_xpath_literal(self.source_id)}"
            if self.hostname is not None:
                pred += f" and hostname={_xpath_literal(self.hostname)}"
            found = pylsl.resolve_bypred(pred, 1, self.resolve_timeout_s)
            return found[0] if found else None
        # the scorer's own source_id first (found at once when it is up), then any stream of the name
        own = f"name={_xpath_literal(self.name)} and source_id={_xpath_literal(SCORER_PREFIX + self.name)}"
        found = pylsl.resolve_bypred(own, 1, self.resolve_timeout_s) or \
            pylsl.resolve_byprop("name", self.name, 1, self.resolve_timeout_s)
        return found[0] if found else None

    def _said_lease(self, said: str) -> float:
        """The lease the stream's description says, fail-closed: a value that is missing,
        not a number, not finite, not positive or longer than :data:`MAX_LEASE_S` gives
        :data:`LEASE_S` (a window that lapses soon, never one that holds for ever), with
        one warning per value said.

        Parameters
        ----------
        said : str
            The description's ``lease_s`` text ("" when absent).

        Returns
        -------
        float
            The lease to use, s.
        """
        try:
            value = float(said)
        except ValueError:
            value = math.nan
        if math.isfinite(value) and 0 < value <= MAX_LEASE_S:
            return value
        if said not in self._lease_warned:
            self._lease_warned.add(said)
            why = ("says no lease_s (a scorer from before the lease?)" if not said.strip()
                   else f"says lease_s={said!r}, not a number of seconds in (0, {MAX_LEASE_S:g}]")
            log.warning("gate stream %s %s: using %g s; its windows close that long after each open",
                        self.name, why, LEASE_S)
        return LEASE_S

    def _connect(self) -> tuple[pylsl.StreamInlet | None, float]:
        try:
            info = self._find()
            if info is None or self._stop.is_set():
                return None, 0.0
            inlet = pylsl.StreamInlet(info, max_buflen=60, recover=False)
            inlet.open_stream(timeout=5.0)
            full = inlet.info(timeout=5.0)
            offset = inlet.time_correction(timeout=5.0)
        except LostError:
            return None, 0.0
        except Exception as exc:        # a stream that vanished while we connected: look again
            log.debug("gate stream %s: connecting failed (%s); looking again", self.name, exc)
            return None, 0.0
        self.source_id, self.hostname = info.source_id(), info.hostname()
        if self._lease_arg is None:
            self.lease_s = self._said_lease(full.desc().child_value("lease_s"))
        with self._cond:
            self._connected = True
            if self._event is None:
                self._reason = "no marker yet"
            self._cond.notify_all()
        log.info("following gate stream %s (%s on %s), lease %g s", self.name, self.source_id, self.hostname,
                 self.lease_s)
        return inlet, offset
