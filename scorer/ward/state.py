"""What the ward knows of each bed: :class:`BedState` (fed from its worker's JSON lines)
and :class:`WardState` (every bed, in the order they appeared). The screen only reads them.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from scorer.display_state import DisplayState
from scorer.json_lines import END, EPOCH, STATUS, TRUTH, record_from_event, status_from_event
from scorer.records import ScoredEpoch

log = logging.getLogger(__name__)

#: worker states shown on screen
STARTING, RUNNING, RESTARTING, STOPPED = "starting", "running", "restarting", "stopped"


@dataclass
class BedState:
    """One bed.

    name: the bed's name (outlets ``<name>-stage``/``-probabilities``, file ``<name>.tsv``).
    source_id / stream_name / sfreq_hz: its EEG stream. out_path: its hypnogram file.
    display: the live screen's state of this bed (stages, statistics, status, truth).
    worker: starting, running, restarting or stopped. restarts: worker restarts so far.
    pid: the current worker's process id. last_exit: how the last worker ended.
    epochs: epoch lines received over all workers. duplicates: epoch numbers received
    twice (never expected: ``live`` numbers on from its file).
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
    last_record: ScoredEpoch | None = None

    def apply(self, event: dict[str, object], wall_now_s: float) -> ScoredEpoch | None:
        """Take one line of the worker; returns the record for an ``epoch`` line."""
        kind = event.get("event")
        try:
            if kind == EPOCH:
                rec = record_from_event(event)
                if self.last_record is not None and rec.epoch <= self.last_record.epoch:
                    self.duplicates += 1
                    log.warning("bed %s: epoch %d received again", self.name, rec.epoch)
                self.display.add_record(rec, wall_now_s)
                self.last_record = rec
                self.epochs += 1
                self._started()
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

    def _started(self) -> None:
        """A line from a starting worker shows it runs (late lines of an ended one change nothing)."""
        if self.worker == STARTING:
            self.worker = RUNNING

    @property
    def latency_ms(self) -> float:
        return self.last_record.latency_ms if self.last_record is not None else math.nan


@dataclass
class WardState:
    """Every bed, in the order they appeared, plus what the ward follows and where it writes."""

    out_dir: Path
    following: str
    beds: list[BedState] = field(default_factory=list)
    started_wall_s: float = 0.0

    def bed(self, name: str) -> BedState | None:
        return next((b for b in self.beds if b.name == name), None)
