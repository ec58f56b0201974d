"""The ``--no-display`` sink: one log line per scored epoch, plus a line when the
signal is lost or comes back. Lines go to the ``sleepstream.epochs`` logger; the live
command routes it to stdout."""
from __future__ import annotations

import logging
import math

from sleepnet.doc_sections import sections_of
from sleepnet.stages import UNSCORED_NAME

from .records import ScoredEpoch
from .sinks import Sink, StreamStatus

EPOCH_LOGGER = "sleepstream.epochs"


class LogSink(Sink):
    """Sink writing one line per epoch.

    For example ``epoch   12  N2   conf 0.91  flags -  latency 4.2 ms  agree 83% of 12``;
    a warning when the signal is lost, comes back, or a gap is found.

    Parameters
    ----------
    logger : logging.Logger, optional
        Where the lines go (default: the ``sleepstream.epochs`` logger).
    level : int
        The level of the epoch lines (default INFO).
    """

    def __init__(self, logger: logging.Logger | None = None, level: int = logging.INFO) -> None:
        self.log = logger or logging.getLogger(EPOCH_LOGGER)
        self.level = level
        self._stages: dict[int, str] = {}
        self._agree = 0
        self._compared = 0
        self._stalled = False
        self._gaps = 0
        self.lines = 0

    @sections_of(Sink.publish, "Log the epoch's line (with the agreement so far when truth came).")
    def publish(self, record: ScoredEpoch) -> None:
        conf = f"{record.confidence:.2f}" if math.isfinite(record.confidence) else " -  "
        agree = (f"  agree {100.0 * self._agree / self._compared:.0f}% of {self._compared}"
                 if self._compared else "")
        self.log.log(self.level, "epoch %5d  %-3s  conf %s  flags %-14s latency %6.1f ms%s",
                     record.epoch, record.stage, conf, ",".join(record.flags) or "-",
                     record.latency_ms, agree)
        self._stages[record.epoch] = record.stage
        if len(self._stages) > 4096:
            self._stages.pop(next(iter(self._stages)))
        self.lines += 1

    @sections_of(Sink.truth, """Count agreement of a true stage with the stage logged for its epoch.

        Epochs scored UNS, true stages UNS and epochs no longer remembered (the last 4096 are)
        are not counted.""")
    def truth(self, epoch: int, stage: str) -> None:
        scored = self._stages.get(epoch)
        if scored is None or scored == UNSCORED_NAME or stage == UNSCORED_NAME:
            return
        self._compared += 1
        self._agree += int(scored == stage)

    @sections_of(Sink.status, "Warn when the signal is lost, when it comes back and when a new gap is found.")
    def status(self, status: StreamStatus) -> None:
        if status.stalled and not self._stalled:
            self.log.warning("signal lost: no sample from '%s' for a while; waiting", status.source_name)
        elif self._stalled and not status.stalled:
            self.log.warning("signal back from '%s'", status.source_name)
        if status.gaps > self._gaps:
            self.log.warning("gap in '%s': %d missing samples so far (%d gaps)", status.source_name,
                             status.samples_missing, status.gaps)
        self._stalled = status.stalled
        self._gaps = status.gaps

    def close(self) -> None:
        """Log the agreement with truth over the night, when there was any truth."""
        if self._compared:
            self.log.log(self.level, "agreement with truth: %.1f%% over %d epochs",
                         100.0 * self._agree / self._compared, self._compared)
