"""What the ward knows of each bed: :class:`BedState` (fed from its worker's JSON lines),
its stimulation window's :class:`GateState`, and :class:`WardState` (every bed, in the
order they appeared). The screen only reads them.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from scorer.display_state import DisplayState
from scorer.json_lines import END, EPOCH, GATE, STATUS, TRUTH, gate_from_event, record_from_event, status_from_event
from scorer.records import ScoredEpoch

log = logging.getLogger(__name__)

#: refused streams remembered (so each is announced once); older ones are forgotten
MAX_REFUSED_KEPT = 1024

#: worker states shown on screen (``hung``: killed for its silence, restart pending)
STARTING, RUNNING, RESTARTING, HUNG, STOPPED = "starting", "running", "restarting", "hung", "stopped"


#: the reason the ward gives a bed's gate when its worker ends (its outlet went with it)
WORKER_ENDED = "worker ended"


@dataclass(frozen=True)
class GateChange:
    """A bed's stimulation window changed: the :class:`scorer.gate.window.GateEvent` its
    worker reported in a ``gate`` line, with the marker's stamp and when the ward read it.

    Parameters
    ----------
    kind : str
        ``open`` or ``close`` (:data:`scorer.gate.window.OPEN`, :data:`~scorer.gate.window.CLOSE`).
    reason : str
        Why, as the worker's window said: e.g. ``N2/N3 p>=0.80 x2``, ``arousal: hf``,
        ``restart``.
    time : float
        Data time of the decision, s (the worker's LSL clock).
    stamp : float
        The marker's stamp on ``<bed>-gate``, s.
    epoch : int or None
        The deciding epoch; None for a close no epoch decided (``restart``, a guard's
        verdict, ``max open time`` on the clock).
    wall_s : float
        When the ward learnt it, POSIX s.
    """

    kind: str
    reason: str
    time: float
    stamp: float
    epoch: int | None
    wall_s: float


@dataclass
class GateState:
    """A gated bed's stimulation window as its worker last said.

    Parameters
    ----------
    rule : str
        The rule, in a line.
    open : bool or None
        None until the worker says (then True or False).
    since_wall_s : float
        When the window last opened or closed (POSIX s, the ward's clock; NaN before).
    reason : str
        The latest event's reason.
    last_close_reason : str
        Why it last closed.
    opens, closes : int
        Events so far, over all workers.
    """

    rule: str
    open: bool | None = None
    since_wall_s: float = math.nan
    reason: str = ""
    last_close_reason: str = ""
    opens: int = 0
    closes: int = 0

    def apply(self, change: GateChange) -> None:
        """Take one gate event.

        ``open``, ``reason`` and the counts follow every event; ``since_wall_s`` moves only
        when the window's state changes (a second ``open`` in a row counts again but keeps
        it); a close's reason is also kept in ``last_close_reason``.

        Parameters
        ----------
        change : GateChange
            An ``open`` or ``close`` from the bed's worker, in the order they came.
        """
        is_open = change.kind == "open"
        if is_open != self.open:
            self.since_wall_s = change.wall_s
        self.open = is_open
        self.reason = change.reason
        if is_open:
            self.opens += 1
        else:
            self.closes += 1
            self.last_close_reason = change.reason

    def worker_ended(self, wall_now_s: float) -> None:
        """The worker ended: its outlet is gone, no window is open (the ward's own note,
        not a marker; the restarted worker says ``close`` / ``restart``).

        Parameters
        ----------
        wall_now_s : float
            Wall-clock time now, POSIX s.
        """
        if self.open is not False:
            self.since_wall_s = wall_now_s
        self.open = False
        self.reason = self.last_close_reason = WORKER_ENDED


@dataclass
class BedState:
    """One bed.

    Parameters
    ----------
    name : str
        The bed's name (outlets ``<name>-stage``/``-probabilities``, file ``<name>.tsv``).
    source_id : str
        Its EEG stream's source_id.
    stream_name : str
        Its EEG stream's name.
    sfreq_hz : float
        Its EEG stream's rate, Hz.
    out_path : Path
        Its hypnogram file.
    display : DisplayState
        The live screen's state of this bed (stages, statistics, status, truth).
    worker : str
        starting, running, restarting, hung (killed for its silence) or stopped.
    restarts : int
        Worker restarts so far.
    pid : int or None
        The current worker's process id.
    last_exit : str or None
        How the last worker ended.
    retry_in_s : float or None
        Seconds until the worker is started again, while it waits to be (shown on screen).
    epochs : int
        Epochs received over all workers (from their lines, or from the file when lines
        were lost).
    duplicates : int
        Epoch numbers received twice (never expected: ``live`` numbers on from its file).
    hangs : int
        Workers killed as hung.
    lines_lost : int
        Lines the workers dropped (their ``seq`` jumped).
    rows_from_file : int
        Epochs read from ``out_path`` because their lines were lost.
    stale_lines : int
        Lines of a worker that had already ended or been replaced, dropped.
    last_record : ScoredEpoch or None
        The newest epoch received.
    gate : GateState or None
        Its stimulation window (None: the bed runs no gate).
    file_epoch : int
        The newest epoch taken from the file (-1: none); its line, late, is skipped.
    """

    name: str
    source_id: str
    stream_name: str
    sfreq_hz: float
    out_path: Path
    display: DisplayState = field(default_factory=DisplayState)
    worker: str = STARTING
    restarts: int = 0
    pid: int | None = None
    last_exit: str | None = None
    retry_in_s: float | None = None
    epochs: int = 0
    duplicates: int = 0
    hangs: int = 0
    lines_lost: int = 0
    rows_from_file: int = 0
    stale_lines: int = 0
    last_record: ScoredEpoch | None = None
    gate: GateState | None = None
    file_epoch: int = -1         # the newest epoch taken from the file (its line, late, is skipped)

    def apply(self, event: dict[str, object], wall_now_s: float) -> ScoredEpoch | GateChange | None:
        """Take one line of the worker.

        An unreadable line is logged and ignored.

        Parameters
        ----------
        event : dict of str to object
            The parsed JSON line (:mod:`scorer.json_lines`).
        wall_now_s : float
            Wall-clock time now, POSIX s.

        Returns
        -------
        ScoredEpoch or GateChange or None
            The record of an ``epoch`` line, the change of a ``gate`` line; None for other
            lines, and for an epoch already read from the file.
        """
        kind = event.get("event")
        try:
            if kind == GATE:
                ev, stamp = gate_from_event(event)
                change = GateChange(ev.kind, ev.reason, ev.time, stamp, ev.epoch, wall_now_s)
                if self.gate is None:       # a worker gated by hand (--gate in extra options)
                    self.gate = GateState(rule="")
                self.gate.apply(change)
                self._started()
                return change
            if kind == EPOCH:
                rec = record_from_event(event)
                self._started()
                if self.last_record is not None and rec.epoch <= self.last_record.epoch:
                    if rec.epoch <= self.file_epoch:
                        return None         # read from the file already, when lines were lost
                    self.duplicates += 1
                    log.warning("bed %s: epoch %d received again", self.name, rec.epoch)
                self._add(rec, wall_now_s)
                return rec
            if kind == STATUS:
                self.display.set_status(status_from_event(event))
                self._started()
            elif kind == TRUTH:
                self.display.add_truth(int(event["epoch"]), str(event["stage"]))
            elif kind == END:
                pass
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("bed %s: unreadable worker line %r (%s)", self.name, event, exc)
        return None

    def add_from_file(self, record: ScoredEpoch, wall_now_s: float) -> None:
        """An epoch read from the bed's file, its line lost on the way (see
        :mod:`scorer.ward.catchup`); its line, should it come late, is skipped.

        Parameters
        ----------
        record : ScoredEpoch
            The row's record, numbered as in the file.
        wall_now_s : float
            Wall-clock time now, POSIX s.
        """
        self._add(record, wall_now_s)
        self.rows_from_file += 1
        self.file_epoch = max(self.file_epoch, record.epoch)

    def _add(self, record: ScoredEpoch, wall_now_s: float) -> None:
        self.display.add_record(record, wall_now_s)
        self.last_record = record
        self.epochs += 1

    def _started(self) -> None:
        """A line from a starting worker shows it runs (late lines of an ended one change nothing)."""
        if self.worker == STARTING:
            self.worker = RUNNING

    @property
    def latency_ms(self) -> float:
        """Latency of the newest epoch received, ms (NaN before any)."""
        return self.last_record.latency_ms if self.last_record is not None else math.nan


@dataclass
class WardState:
    """Every bed, in the order they appeared, plus what the ward follows and where it writes.

    Parameters
    ----------
    out_dir : Path
        The folder of the beds' files.
    following : str
        Which streams are beds, in words (:meth:`scorer.ward.beds.BedSelector.describe`).
    beds : list of BedState
        Every bed, in the order they appeared.
    started_wall_s : float
        When the ward started, POSIX s.
    max_beds : int or None
        The most beds it follows (None: no limit).
    refused : dict of str to str
        Streams refused past ``max_beds``: source_id -> stream name (the newest
        ``MAX_REFUSED_KEPT``).
    refused_total : int
        How many streams were refused.
    """

    out_dir: Path
    following: str
    beds: list[BedState] = field(default_factory=list)
    started_wall_s: float = 0.0
    max_beds: int | None = None
    refused: dict[str, str] = field(default_factory=dict)
    refused_total: int = 0

    def bed(self, name: str) -> BedState | None:
        """The bed of that name.

        Parameters
        ----------
        name : str
            The bed's name, as shown in the overview's ``bed`` column.

        Returns
        -------
        BedState or None
            The bed; None when there is none of that name.
        """
        return next((b for b in self.beds if b.name == name), None)
