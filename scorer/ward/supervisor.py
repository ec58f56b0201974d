"""The ward's supervisor: finds beds, runs one worker per bed, keeps each bed's state.

:class:`Ward` turns a loop: it reads what the workers' reader threads have queued
(never blocking on any one worker), restarts workers that ended, looks for new streams
with a continuous resolver every ``rescan_s``, and tells its views (the screen or the
log) what happened.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path
from typing import Protocol, Sequence

from scorer.display_state import DisplayState
from scorer.records import ScoredEpoch

from .beds import BedSelector, StreamSeen, bed_name
from .gates import RULE_FILE_SUFFIX, write_rule_file
from .state import RESTARTING, RUNNING, STARTING, STOPPED, BedState, GateChange, GateState, WardState
from .worker import Worker, WorkerOptions, worker_command

log = logging.getLogger(__name__)

RESCAN_S = 0.5
POLL_S = 0.1


class WardView(Protocol):
    """The screen or the log: told about each epoch and supervision event, and ticked."""

    def epoch(self, bed: BedState, record: ScoredEpoch) -> None:
        """A bed's new epoch."""

    def note(self, bed: BedState, message: str) -> None:
        """Something happened to a bed (found, worker ended, restarted)."""

    def gate(self, bed: BedState, change: GateChange) -> None:
        """A bed's stimulation window opened or closed."""

    def tick(self, state: WardState) -> None:
        """Once per turn of the loop (about 10 Hz): redraw when due."""

    def close(self) -> None:
        """The ward is ending."""


class StreamWatch:
    """The streams LSL shows, through one ``pylsl.ContinuousResolver`` (all types; the
    selector filters). ``forget_after_s``: a stream unseen this long drops out of the list
    (a bed, once found, stays)."""

    def __init__(self, forget_after_s: float = 5.0) -> None:
        import pylsl

        self._resolver = pylsl.ContinuousResolver(forget_after=forget_after_s)

    def streams(self) -> list[StreamSeen]:
        return [StreamSeen(i.name(), i.type(), i.source_id(), i.nominal_srate(), i.hostname())
                for i in self._resolver.results()]


class Ward:
    """One supervised worker per bed.

    Parameters
    ----------
    out_dir : Path
        Where each bed's ``<bed>.tsv`` (hypnogram) and ``<bed>.log`` (worker stderr) go.
    selector : BedSelector
        Which streams are beds.
    options : WorkerOptions
        The ``live`` options of every worker.
    views : sequence of WardView
        The screen or the log.
    watch : StreamWatch, optional
        Where streams are seen (default: a new one; needs LSL configured first).
    backoff_s, max_backoff_s, stable_s : float
        Worker restart policy (see :mod:`scorer.ward.worker`).
    """

    def __init__(self, out_dir: Path, selector: BedSelector, options: WorkerOptions,
                 views: Sequence[WardView] = (), watch: StreamWatch | None = None,
                 backoff_s: float = 1.0, max_backoff_s: float = 30.0, stable_s: float = 60.0,
                 rescan_s: float = RESCAN_S) -> None:
        self.out_dir = Path(out_dir)
        self.selector = selector
        self.options = options
        self.views = list(views)
        self.watch = watch or StreamWatch()
        self.state = WardState(self.out_dir, selector.describe(), started_wall_s=time.time())
        self.workers: dict[str, Worker] = {}            # by bed name
        self._by_source: dict[str, BedState] = {}
        self._events: queue.Queue[tuple[str, int, dict]] = queue.Queue()
        self._policy = (backoff_s, max_backoff_s, stable_s)
        self.rescan_s = rescan_s
        self._last_scan = -1e9
        self._failed_views: set[tuple[int, str]] = set()
        self._closed = False

    def __repr__(self) -> str:
        return f"<Ward {len(self.state.beds)} beds in {self.out_dir}>"

    # -- the loop --
    def run(self, stop: threading.Event, poll_s: float = POLL_S) -> None:
        """Turn until ``stop`` is set, then stop every worker."""
        try:
            while not stop.is_set():
                self.step(poll_s)
        finally:
            self.close()

    def step(self, wait_s: float = POLL_S) -> None:
        """One turn: worker lines (waiting up to ``wait_s`` for the first), restarts, new beds, views."""
        now = time.monotonic()
        if now - self._last_scan >= self.rescan_s:
            self._last_scan = now
            self.scan()
        self._pump(wait_s)
        now = time.monotonic()
        for bed in self.state.beds:
            w = self.workers[bed.name]
            before = w.generation
            msg = w.check(now)
            if msg:
                bed.worker = RESTARTING
                bed.last_exit = w.last_exit
                if bed.gate is not None:
                    self._pump(0.0)      # the ended worker's last lines (its reader has been joined)
                    if bed.gate.open:
                        msg += "; its stimulation window was open: no close could be sent"
                    bed.gate.worker_ended(time.time())
                self._view("note", bed, msg)
            if w.generation != before:
                bed.worker, bed.pid, bed.restarts = STARTING, w.pid, w.restarts
                self._view("note", bed, f"worker restarted (pid {w.pid}, restart {w.restarts})")
            bed.retry_in_s = None if w.retry_at_s is None else max(0.0, w.retry_at_s - now)
        self._view("tick", self.state)

    def scan(self) -> list[BedState]:
        """Add a bed (and start its worker) for each new matching stream; returns the new beds."""
        new = []
        for s in self.watch.streams():
            if s.source_id in self._by_source or not self.selector.matches(s):
                continue
            new.append(self.add_bed(s))
        return new

    def add_bed(self, s: StreamSeen) -> BedState:
        """A bed for stream ``s``, its worker started."""
        name = bed_name(s.name, s.source_id, {b.name for b in self.state.beds})
        out = self.out_dir / f"{name}.tsv"
        bed = BedState(name=name, source_id=s.source_id, stream_name=s.name, sfreq_hz=s.sfreq_hz, out_path=out,
                       display=DisplayState(f"{name}: {s.name}"))
        rule = self.options.gate.rule_for(name)
        gate_file = None
        if rule is not None:     # the rule parsed when the ward started, as the worker will read it
            gate_file = write_rule_file(rule, self.out_dir / f"{name}{RULE_FILE_SUFFIX}",
                                        f"stimulation-window rule of bed {name}, written by sleepstream ward "
                                        f"at {time.strftime('%Y-%m-%d %H:%M:%S')}: {rule.describe()}")
            bed.gate = GateState(rule.describe())
        w = Worker(name, worker_command(s.source_id, out, name, self.options, gate_file),
                   self.out_dir / f"{name}.log", self._events, *self._policy)
        self.state.beds.append(bed)
        self._by_source[s.source_id] = bed
        self.workers[name] = w
        w.start(time.monotonic())
        bed.pid = w.pid
        log.info("bed %s: stream '%s' (source_id %s, %g Hz)", name, s.name, s.source_id, s.sfreq_hz)
        self._view("note", bed, f"new bed: stream '{s.name}' ({s.sfreq_hz:g} Hz, source_id {s.source_id})")
        return bed

    def _pump(self, wait_s: float) -> None:
        """Apply every queued worker line; wait up to ``wait_s`` only for the first."""
        try:
            item = self._events.get(timeout=wait_s) if wait_s > 0 else self._events.get_nowait()
        except queue.Empty:
            return
        wall = time.time()
        while True:
            name, generation, event = item
            bed = self.state.bed(name)
            if bed is not None:
                if event.get("event") == "text":
                    self._view("note", bed, f"worker says: {event.get('text')}")
                elif event.get("event") != "eof":
                    rec = bed.apply(event, wall)
                    if isinstance(rec, GateChange):
                        self._view("gate", bed, rec)
                    elif rec is not None:
                        self._view("epoch", bed, rec)
            try:
                item = self._events.get_nowait()
            except queue.Empty:
                return

    def _view(self, method: str, *args: object) -> None:
        for v in self.views:
            fn = getattr(v, method, None)
            if fn is None:      # a view written before a method was added (e.g. gate) misses only that
                continue
            try:
                fn(*args)
            except Exception:
                key = (id(v), method)
                if key not in self._failed_views:
                    self._failed_views.add(key)
                    log.exception("ward view %s.%s failed; the ward goes on", type(v).__name__, method)

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop every worker (SIGTERM, then SIGKILL after ``timeout_s``), take their last
        lines, close the views. Once only."""
        if self._closed:
            return
        self._closed = True
        for w in self.workers.values():
            w.terminate()
        deadline = time.monotonic() + timeout_s     # one deadline for all: hung workers do not add up
        for bed in self.state.beds:
            self.workers[bed.name].wait(max(0.1, deadline - time.monotonic()))
            bed.worker = STOPPED
        self._pump(0.0)
        self._view("tick", self.state)
        self._view("close")


__all__ = ["Ward", "WardView", "StreamWatch", "BedSelector", "WorkerOptions", "RUNNING"]
