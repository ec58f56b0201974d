"""The ward's ``--no-display`` view: one log line per bed epoch, per stimulation-window
event and per supervision event, on the ``sleepstream.ward`` logger (the ward command
routes it to stdout)."""
from __future__ import annotations

import logging
import math

from scorer.records import ScoredEpoch

from .state import BedState, GateChange, WardState
from .supervisor import view_method

WARD_LOGGER = "sleepstream.ward"


class WardLog:
    """View writing one log line per event.

    E.g. ``bed-3      epoch   12  N2   conf 0.91  latency 4.2 ms`` and
    ``bed-3      gate  open   N2/N3 p>=0.80 x2  (epoch 12)``.

    Parameters
    ----------
    logger : logging.Logger, optional
        Where the lines go (default: the ``sleepstream.ward`` logger).
    """

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or logging.getLogger(WARD_LOGGER)
        self._stalled: dict[str, bool] = {}
        self.lines = 0

    @view_method
    def epoch(self, bed: BedState, record: ScoredEpoch) -> None:
        """One line for a bed's scored epoch."""
        conf = f"{record.confidence:.2f}" if math.isfinite(record.confidence) else " -  "
        self.log.info("%-16s epoch %5d  %-3s  conf %s  flags %-14s latency %6.1f ms", bed.name, record.epoch,
                      record.stage, conf, ",".join(record.flags) or "-", record.latency_ms)
        self.lines += 1

    @view_method
    def gate(self, bed: BedState, change: GateChange) -> None:
        """One line for a bed's stimulation-window event."""
        at = f"  (epoch {change.epoch})" if change.epoch is not None else ""
        self.log.info("%-16s gate  %-5s  %s%s", bed.name, change.kind, change.reason, at)
        self.lines += 1

    @view_method
    def note(self, bed: BedState, message: str) -> None:
        """A warning line about a bed (its worker, its signal)."""
        self.log.warning("%-16s %s", bed.name, message)
        self.lines += 1

    @view_method
    def message(self, text: str) -> None:
        """A line about the ward as a whole (a stream refused past --max-beds)."""
        self.log.warning("ward: %s", text)
        self.lines += 1

    @view_method
    def tick(self, state: WardState) -> None:
        """A note when a bed's signal is lost or comes back."""
        for bed in state.beds:
            st = bed.display.status
            stalled = bool(st is not None and st.stalled)
            if stalled != self._stalled.get(bed.name, False):
                self.note(bed, "SIGNAL LOST: no sample for a while" if stalled else "signal back")
            self._stalled[bed.name] = stalled

    def close(self) -> None:
        """Nothing to release."""
