"""The ward's supervisor: finds beds, runs one worker per bed, keeps each bed's state.

:class:`Ward` turns a loop: it reads what the workers' reader threads have queued
(never blocking on any one worker; at most ``MAX_LINES_PER_TURN`` lines a turn, so a
flooding worker cannot stop the loop), restarts workers that ended, kills and restarts
workers that hung (silent for ``hang_timeout_s``), looks for new streams with a
continuous resolver every ``rescan_s`` (at most ``max_beds`` beds; a stream past that
is refused with one line), and tells its views (the screen or the log) what happened.

Each queued line carries its worker's generation (the how-many-th start of the bed's
worker): lines of a generation the ward has already seen end (its last lines taken), or
of one replaced since, are dropped, so a dead worker's late ``open`` never re-opens its
bed. Lines a worker dropped (its ``seq`` jumped), and those lost with a worker that
ended, are made up from the bed's hypnogram file (:mod:`scorer.ward.catchup`).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

from scorer.display_state import DisplayState
from scorer.json_lines import EPOCH
from scorer.records import ScoredEpoch
from sleepnet.doc_sections import sections_of

from .beds import BedSelector, StreamSeen, bed_name
from .catchup import LineCount, TsvTail
from .gates import RULE_FILE_SUFFIX, write_rule_file
from .state import (
    HUNG,
    MAX_REFUSED_KEPT,
    RESTARTING,
    RUNNING,
    STARTING,
    STOPPED,
    BedState,
    GateChange,
    GateState,
    WardState,
)
from .worker import HANG_TIMEOUT_S, STARTUP_GRACE_S, Worker, WorkerOptions, worker_command

log = logging.getLogger(__name__)

RESCAN_S = 0.5
POLL_S = 0.1
#: ``sleepstream ward --max-beds``
MAX_BEDS = 32
#: worker lines applied in one turn of the loop at most (the rest wait for the next turn)
MAX_LINES_PER_TURN = 2000
#: a turn of the ward's own loop this late (s) means the ward was paused: silences restart
PAUSE_S = 2.0
#: at most one note a minute per bed about lines lost in its worker's pipe
LOST_NOTE_EVERY_S = 60.0

#: what makes a worker's command line (see :func:`scorer.ward.worker.worker_command`)
CommandFactory = Callable[[str, Path, str, WorkerOptions, "Path | None"], list]


class WardView(Protocol):
    """The screen or the log: told about each epoch and supervision event, and ticked.

    A view need not derive from it (a structural type); a method a view lacks is skipped,
    and one that raises is logged once and the ward goes on.

    Parameters
    ----------
    *args, **kwargs
        None: a protocol is a type to check views against, not a class to make
        (:class:`typing.Protocol` gives it this signature).
    """

    def epoch(self, bed: BedState, record: ScoredEpoch) -> None:
        """A bed's new epoch.

        Parameters
        ----------
        bed : BedState
            The bed, its display state already holding ``record``.
        record : ScoredEpoch
            The epoch, numbered as in the bed's file (from its worker's line, or read from
            the file when the line was lost).
        """

    def note(self, bed: BedState, message: str) -> None:
        """Something happened to a bed (found, worker ended, restarted).

        Parameters
        ----------
        bed : BedState
            The bed the event is about; its ``worker`` field already says the worker's new
            state (e.g. ``restarting`` after an end).
        message : str
            What happened, in words: e.g. ``worker restarted (pid 4242, restart 1)``.
        """

    def gate(self, bed: BedState, change: GateChange) -> None:
        """A bed's stimulation window opened or closed.

        Parameters
        ----------
        bed : BedState
            The bed, its ``gate`` (a :class:`~scorer.ward.state.GateState`) already
            counting ``change``.
        change : GateChange
            The ``open`` or ``close`` marker its worker sent, with the worker's reason and
            the deciding epoch (None when no epoch decided: e.g. the ``restart`` close a new
            worker sends first, or a ``max open time`` close on the clock).
        """

    def message(self, text: str) -> None:
        """Something happened to the ward as a whole (a stream refused past --max-beds).

        Parameters
        ----------
        text : str
            What happened, in one line naming the stream and the flag:
            e.g. ``stream 'eeg-9' (source_id a1) not followed: ... (--max-beds 8)``.
        """

    def tick(self, state: WardState) -> None:
        """Once per turn of the loop (about 10 Hz): redraw when due.

        Parameters
        ----------
        state : WardState
            The ward now.
        """

    def close(self) -> None:
        """The ward is ending."""


_ViewMethod = TypeVar("_ViewMethod", bound=Callable[..., None])


def view_method(method: _ViewMethod) -> _ViewMethod:
    """Document a view's method (the screen's, the log's) with the ``Parameters`` section of
    the :class:`WardView` method of the same name, after the view's own summary: what the
    ward passes is described once, on the protocol.

    Parameters
    ----------
    method : callable
        A method named as one of :class:`WardView`'s, with a docstring that says what this
        view does (a summary, and more text if need be; no ``Parameters`` section).

    Returns
    -------
    callable
        ``method`` itself, its ``__doc__`` now its own text followed by the protocol
        method's ``Parameters`` section.

    Raises
    ------
    AttributeError
        When :class:`WardView` has no method of that name.
    ValueError
        When the protocol's method has no docstring sections (nothing to share).
    """
    return sections_of(getattr(WardView, method.__name__), method.__doc__ or "")(method)


class StreamWatch:
    """The streams LSL shows, through one ``pylsl.ContinuousResolver`` (all types; the
    selector filters).

    Parameters
    ----------
    forget_after_s : float
        A stream unseen this long (s) drops out of the list (a bed, once found, stays).
    """

    def __init__(self, forget_after_s: float = 5.0) -> None:
        import pylsl

        self._resolver = pylsl.ContinuousResolver(forget_after=forget_after_s)

    def streams(self) -> list[StreamSeen]:
        """The streams in sight now.

        Returns
        -------
        list of StreamSeen
            Every stream the resolver holds, of any type.
        """
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
    rescan_s : float
        How often the streams in sight are looked at (s).
    hang_timeout_s : float
        A worker silent this long (s, monotonic clock) is killed and restarted; before its
        first line it is given ``options.find_timeout_s`` + ``STARTUP_GRACE_S`` more; 0: never.
    max_beds : int
        The most beds followed; a new stream past them is refused (one line) and gets no worker.
    command : callable, optional
        Makes a bed's worker command line from (source_id, hypnogram path, bed name,
        options, rule file or None); default :func:`scorer.ward.worker.worker_command`.
    """

    def __init__(self, out_dir: Path, selector: BedSelector, options: WorkerOptions,
                 views: Sequence[WardView] = (), watch: StreamWatch | None = None,
                 backoff_s: float = 1.0, max_backoff_s: float = 30.0, stable_s: float = 60.0,
                 rescan_s: float = RESCAN_S, hang_timeout_s: float = HANG_TIMEOUT_S, max_beds: int = MAX_BEDS,
                 command: CommandFactory = worker_command) -> None:
        self.out_dir = Path(out_dir)
        self.selector = selector
        self.options = options
        self.views = list(views)
        self.watch = watch or StreamWatch()
        self.max_beds = int(max_beds)
        self.hang_timeout_s = float(hang_timeout_s)
        self.state = WardState(self.out_dir, selector.describe(), started_wall_s=time.time(),
                               max_beds=self.max_beds)
        self.workers: dict[str, Worker] = {}            # by bed name
        self._beds: dict[str, BedState] = {}             # by bed name
        self._by_source: dict[str, BedState] = {}
        self._events: queue.Queue[tuple[str, int, dict]] = queue.Queue()   # bounded per worker: Worker.slots
        self._policy = (backoff_s, max_backoff_s, stable_s)
        self._command = command
        self._ended: dict[str, int] = {}                 # bed -> generation whose end was taken
        self._lines: dict[str, LineCount] = {}
        self._tails: dict[str, TsvTail] = {}
        self._lost_note_s: dict[str, float] = {}
        self.rescan_s = rescan_s
        self._last_scan = -1e9
        self._last_turn_s: float | None = None
        self._failed_views: set[tuple[int, str]] = set()
        self._closed = False

    def __repr__(self) -> str:
        return f"<Ward {len(self.state.beds)} beds in {self.out_dir}>"

    # -- the loop --
    def run(self, stop: threading.Event, poll_s: float = POLL_S) -> None:
        """Turn until ``stop`` is set, then stop every worker (:meth:`close`).

        Parameters
        ----------
        stop : threading.Event
            Set to end the ward (the command sets it on Ctrl-C or SIGTERM).
        poll_s : float
            How long a turn waits for a worker line, s.
        """
        try:
            while not stop.is_set():
                self.step(poll_s)
        finally:
            self.close()

    def step(self, wait_s: float = POLL_S) -> None:
        """One turn: worker lines, hangs, restarts, new beds, views.

        A turn that comes more than ``PAUSE_S`` after the previous one (the ward was
        paused) restarts the count of every worker's silence.

        Parameters
        ----------
        wait_s : float
            How long to wait for the first worker line, s.
        """
        now = time.monotonic()
        if self._last_turn_s is not None and now - self._last_turn_s > PAUSE_S:
            log.warning("ward: its loop did not turn for %.1f s (paused?); worker silences count from now",
                        now - self._last_turn_s)
            for w in self.workers.values():
                w.excuse(now)
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
                self._pump(0.0)          # the ended worker's last lines, then none of its generation
                self._ended[bed.name] = w.generation
                self._catch_up(bed, time.time(), None, 0)   # rows whose lines it never wrote or we lost
                bed.worker = HUNG if w.last_end_hung else RESTARTING
                bed.last_exit, bed.hangs = w.last_exit, w.hangs
                if bed.gate is not None:
                    if bed.gate.open:
                        msg += "; its stimulation window was open: no close could be sent"
                    bed.gate.worker_ended(time.time())
                self._view("note", bed, msg)
            if w.generation != before:
                bed.worker, bed.pid, bed.restarts = STARTING, w.pid, w.restarts
                self._view("note", bed, f"worker restarted (pid {w.pid}, restart {w.restarts})")
            bed.retry_in_s = None if w.retry_at_s is None else max(0.0, w.retry_at_s - now)
        self._view("tick", self.state)
        self._last_turn_s = time.monotonic()

    def scan(self) -> list[BedState]:
        """Add a bed (and start its worker) for each new matching stream, up to
        ``max_beds``; a matching stream past them is refused (:meth:`refuse`).

        Returns
        -------
        list of BedState
            The new beds.
        """
        new = []
        for s in self.watch.streams():
            if s.source_id in self._by_source or s.source_id in self.state.refused or not self.selector.matches(s):
                continue
            if len(self.state.beds) >= self.max_beds:
                self.refuse(s)
                continue
            new.append(self.add_bed(s))
        return new

    def refuse(self, s: StreamSeen) -> None:
        """Say once that a stream gets no bed: the ward follows ``max_beds`` already.

        Parameters
        ----------
        s : StreamSeen
            The stream refused (remembered, so it is said once; the newest
            ``MAX_REFUSED_KEPT`` are).
        """
        refused = self.state.refused
        if len(refused) >= MAX_REFUSED_KEPT:
            del refused[next(iter(refused))]
        refused[s.source_id] = s.name
        self.state.refused_total += 1
        text = (f"stream '{s.name}' (source_id {s.source_id}) not followed: the ward follows "
                f"{self.max_beds} bed{'s' if self.max_beds != 1 else ''} already (--max-beds {self.max_beds})")
        log.warning("ward: %s", text)
        self._view("message", text)

    def add_bed(self, s: StreamSeen) -> BedState:
        """A bed for a stream, its worker started.

        A gated bed's rule is written to ``<bed>.gate.toml`` first, for its worker.

        Parameters
        ----------
        s : StreamSeen
            The bed's EEG stream: one the selector accepts, with a source_id no bed has
            yet (the caller checks both).

        Returns
        -------
        BedState
            The new bed (named by :func:`scorer.ward.beds.bed_name`).
        """
        name = bed_name(s.name, s.source_id, set(self._beds))
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
        w = Worker(name, self._command(s.source_id, out, name, self.options, gate_file),
                   self.out_dir / f"{name}.log", self._events, *self._policy, hang_timeout_s=self.hang_timeout_s,
                   startup_s=self.options.find_timeout_s + STARTUP_GRACE_S)
        self.state.beds.append(bed)
        self._beds[name] = bed
        self._by_source[s.source_id] = bed
        self._lines[name] = LineCount()
        self._tails[name] = TsvTail(out)          # rows of this ward's workers only
        self.workers[name] = w
        w.start(time.monotonic())
        bed.pid = w.pid
        log.info("bed %s: stream '%s' (source_id %s, %g Hz)", name, s.name, s.source_id, s.sfreq_hz)
        self._view("note", bed, f"new bed: stream '{s.name}' ({s.sfreq_hz:g} Hz, source_id {s.source_id})")
        return bed

    def _pump(self, wait_s: float, max_lines: int = MAX_LINES_PER_TURN) -> int:
        """Apply queued worker lines, at most ``max_lines``; wait up to ``wait_s`` only for
        the first. Returns how many were taken."""
        try:
            item = self._events.get(timeout=wait_s) if wait_s > 0 else self._events.get_nowait()
        except queue.Empty:
            return 0
        wall = time.time()
        n = 0
        while True:
            name, generation, event = item
            w = self.workers.get(name)
            if w is not None:
                w.taken()
                self._take(name, w, generation, event, wall)
            n += 1
            if n >= max_lines:
                return n
            try:
                item = self._events.get_nowait()
            except queue.Empty:
                return n

    def _take(self, name: str, w: Worker, generation: int, event: dict, wall: float) -> None:
        """One line of bed ``name``'s worker of start ``generation``."""
        bed = self._beds[name]
        kind = event.get("event")
        if kind == "eof":
            return
        if generation != w.generation or self._ended.get(name) == generation:
            bed.stale_lines += 1           # a worker that ended or was replaced: its word no longer holds
            log.info("bed %s: line of an ended worker (start %d) dropped: %.80r", name, generation, event)
            return
        _, missing = self._lines[name].see(generation, event.get("seq"))
        if missing:
            bed.lines_lost += missing
        epoch = event.get("epoch") if kind == EPOCH else None
        epoch = epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None
        last = bed.last_record.epoch if bed.last_record is not None else None
        # an epoch that is not the next one (or the bed's first): the rows before it may be in the file
        jumped = epoch is not None and (last is None or epoch > last + 1)
        if missing or jumped:
            self._catch_up(bed, wall, epoch, missing)
        if kind == "text":
            self._view("note", bed, f"worker says: {event.get('text')}")
            return
        rec = bed.apply(event, wall)
        if isinstance(rec, GateChange):
            self._view("gate", bed, rec)
        elif rec is not None:
            self._view("epoch", bed, rec)

    def _catch_up(self, bed: BedState, wall: float, before: int | None, missing: int) -> None:
        """Epochs in the bed's file that its screen lacks (below ``before`` when given):
        lines its worker dropped (``missing``), or lost with a worker that ended."""
        last = bed.last_record.epoch if bed.last_record is not None else None
        rows = self._tails[bed.name].rows_after(last, before)
        for rec in rows:
            bed.add_from_file(rec, wall)
            self._view("epoch", bed, rec)
        if not (missing or rows):
            return
        now = time.monotonic()
        if now - self._lost_note_s.get(bed.name, -1e9) >= LOST_NOTE_EVERY_S:
            self._lost_note_s[bed.name] = now
            self._view("note", bed, f"worker lines lost in its pipe: {bed.lines_lost} so far; "
                                    f"{bed.rows_from_file} epochs read from {bed.out_path.name}")

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
        lines, close the views. Once only.

        Parameters
        ----------
        timeout_s : float
            How long the workers get, all together, before SIGKILL, s.
        """
        if self._closed:
            return
        self._closed = True
        for w in self.workers.values():
            w.terminate()
        deadline = time.monotonic() + timeout_s     # one deadline for all: hung workers do not add up
        while any(w.running for w in self.workers.values()) and time.monotonic() < deadline:
            self._pump(0.05)                        # their last lines (a full queue would hold a reader)
        for bed in self.state.beds:
            self.workers[bed.name].wait(max(0.1, deadline - time.monotonic()))
            bed.worker = STOPPED
        drained = time.monotonic() + 2.0
        while any(w.reader_alive for w in self.workers.values()) and time.monotonic() < drained:
            self._pump(0.05)
        self._pump(0.0, max_lines=10 ** 9)
        self._view("tick", self.state)
        self._view("close")


__all__ = ["Ward", "WardView", "view_method", "StreamWatch", "BedSelector", "WorkerOptions", "RUNNING"]
