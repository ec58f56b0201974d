"""What the live screen knows: :class:`DisplayState`, updated by the display sink.

The sink (:class:`scorer.display.DisplaySink`) feeds it each scored epoch, truth label
and status tick; the pure renderer (:func:`scorer.screen.render`) only reads it. It keeps
the stage codes of the last 48 h (``HYPNOGRAM_KEEP_EPOCHS``; the whole session until it
is longer, and the screen says when it shows only the last 48 h), their truth labels,
the last record, the stream status, the latencies of the last 2 h, and, over the whole
session however long, the running sleep statistics
(:mod:`sleepnet.report.sleep_stats`) and the running agreement with a truth stream
(pair counts, :class:`scorer.history.AgreementCounts`). Its memory stays flat.
"""
from __future__ import annotations

import copy
import logging
import math
from collections import deque
from typing import TYPE_CHECKING

import numpy as np

from sleepnet.doc_sections import sections_of
from sleepnet.metrics import Agreement
from sleepnet.report.sleep_stats import RunningSleepStats, SleepStats
from sleepnet.stages import EPOCH_S, UNSCORED, stage_code

from .history import AgreementCounts
from .records import ScoredEpoch
from .sinks import Sink, StreamStatus

if TYPE_CHECKING:   # no import at run time: the state loads neither rich nor the file sink
    from .hypnogram_file import RecordingState

log = logging.getLogger(__name__)

LATENCY_HISTORY = 240     # epochs kept for the latency median/max (2 h)
HYPNOGRAM_KEEP_EPOCHS = 48 * 120   # stage codes kept for the hypnogram strip (48 h)
TRIM_EPOCHS = 120                  # codes beyond the keep are dropped an hour at a time


# --------------------------------------------------------------------------- state

class DisplayState:
    """Everything the screen shows, updated by the sink; :func:`scorer.screen.render` reads it.

    ``n_unscored``, :attr:`n_epochs`, :attr:`stats` and :meth:`agreement` are over the
    whole session, however long.

    Parameters
    ----------
    title : str
        First words of the screen's header.
    keep_epochs : int
        Stage codes held for the hypnogram strip (default 48 h of epochs); beyond it the
        oldest are dropped an hour (``TRIM_EPOCHS``) at a time.

    Attributes
    ----------
    codes : list of int
        Stage code per epoch from ``first_epoch`` on (-1 unscored or never received): the
        whole session, or its last ``keep_epochs`` to ``keep_epochs + TRIM_EPOCHS`` epochs
        once it is longer (``dropped_epochs`` then counts the epochs dropped from its
        start, and ``first_epoch`` and ``anchor_wall_s`` move on with them).
    truth : dict of int to int
        True stage codes by epoch index, for the epochs held (and those not yet received).
    anchor_wall_s : float or None
        Wall-clock time (POSIX s) of the start of epoch ``first_epoch``.
    stalled_since_s : float or None
        ``elapsed_s`` of the status that first reported the stall (None while samples
        flow).
    recording : RecordingState or None
        The hypnogram file's state (:class:`scorer.hypnogram_file.RecordingState`; None
        without a file).
    """

    def __init__(self, title: str = "sleepstream live", keep_epochs: int = HYPNOGRAM_KEEP_EPOCHS) -> None:
        self.title = title
        self.keep_epochs = max(1, int(keep_epochs))
        self.codes: list[int] = []
        self.dropped_epochs = 0
        self._dropped_stats = RunningSleepStats()
        self._dropped_unscored = 0
        self._pairs = AgreementCounts()
        self.first_epoch: int | None = None
        self.last: ScoredEpoch | None = None
        self.truth: dict[int, int] = {}
        self.status: StreamStatus | None = None
        self.stalled_since_s: float | None = None
        self.anchor_wall_s: float | None = None
        self.latencies_ms: deque[float] = deque(maxlen=LATENCY_HISTORY)
        self.running = RunningSleepStats()
        self.n_unscored = 0
        self.recording: RecordingState | None = None

    # -- updates (called by DisplaySink) --
    def add_record(self, record: ScoredEpoch, wall_now_s: float) -> None:
        """Take a scored epoch in.

        The first record anchors the strip's wall clock (its arrival less its latency and
        one epoch). Epochs skipped are held as unscored; a repeat of an epoch already held
        replaces its code (the statistics and agreement are counted again); one before
        the first held is ignored with a warning.

        Parameters
        ----------
        record : ScoredEpoch
            The newly scored epoch.
        wall_now_s : float
            Wall-clock time now, POSIX s.
        """
        if self.first_epoch is None:
            self.first_epoch = record.epoch
            latency_s = record.latency_ms / 1000.0 if math.isfinite(record.latency_ms) else 0.0
            self.anchor_wall_s = wall_now_s - latency_s - EPOCH_S
        i = record.epoch - self.first_epoch
        if i < 0:
            log.warning("display: epoch %d arrived before the first shown epoch %d; ignored",
                        record.epoch, self.first_epoch)
            return
        code = stage_code(record.stage) if record.scored else UNSCORED
        code = UNSCORED if code is None else code
        while len(self.codes) < i:           # epochs never received: unscored
            self._append(UNSCORED)
        if i == len(self.codes):
            self._append(code)
        else:                                # a repeat of an epoch already shown
            old, self.codes[i] = self.codes[i], code
            if (t := self.truth.get(record.epoch)) is not None:
                self._pairs.add(t, old, -1)
                self._pairs.add(t, code)
            self.running = copy.deepcopy(self._dropped_stats)
            self.running.extend(self.codes)
            self.n_unscored = self._dropped_unscored + sum(c == UNSCORED for c in self.codes)
        self._trim()
        if self.last is None or record.epoch >= self.last.epoch:
            self.last = record
        if math.isfinite(record.latency_ms):
            self.latencies_ms.append(record.latency_ms)

    @sections_of(Sink.truth, """Take a true stage in, paired with the epoch's scored stage when it is held.

        A truth for an epoch before those held is ignored; one for an epoch not yet received
        waits for it (a bounded number wait).""")
    def add_truth(self, epoch: int, stage: str) -> None:
        code = stage_code(stage)
        code = UNSCORED if code is None else code
        e = int(epoch)
        if self.first_epoch is not None and e < self.first_epoch:
            return                           # before what is shown (or dropped): not paired
        i = e - self.first_epoch if self.first_epoch is not None else -1
        held = 0 <= i < len(self.codes)
        if held and (old := self.truth.get(e)) is not None:
            self._pairs.add(old, self.codes[i], -1)
        self.truth[e] = code
        if held:
            self._pairs.add(code, self.codes[i])
        if len(self.truth) > 2 * (self.keep_epochs + TRIM_EPOCHS):   # truth far ahead of the records
            for k in sorted(self.truth)[:len(self.truth) - self.keep_epochs - TRIM_EPOCHS]:
                del self.truth[k]

    def _append(self, code: int) -> None:
        """The next epoch's code, after the last held."""
        assert self.first_epoch is not None
        e = self.first_epoch + len(self.codes)
        self.codes.append(code)
        self.running.push(code)
        self.n_unscored += code == UNSCORED
        if (t := self.truth.get(e)) is not None:
            self._pairs.add(t, code)

    def _trim(self) -> None:
        """Drop the oldest codes (an hour at a time) beyond ``keep_epochs``; the running
        statistics and agreement keep counting them."""
        extra = len(self.codes) - self.keep_epochs
        if extra < TRIM_EPOCHS:
            return
        assert self.first_epoch is not None
        for c in self.codes[:extra]:
            self._dropped_stats.push(c)
            self._dropped_unscored += c == UNSCORED
        del self.codes[:extra]
        self.first_epoch += extra
        self.dropped_epochs += extra
        if self.anchor_wall_s is not None:
            self.anchor_wall_s += extra * EPOCH_S
        for k in [k for k in self.truth if k < self.first_epoch]:
            del self.truth[k]

    def set_recording(self, recording: RecordingState | None) -> None:
        """Take the hypnogram file's state in (the screen says NOT RECORDING while it fails).

        Parameters
        ----------
        recording : RecordingState or None
            The file's state; None without a file.
        """
        self.recording = recording

    @sections_of(Sink.status, "Take the stream's health in; a stall is timed from the first status reporting it.")
    def set_status(self, status: StreamStatus) -> None:
        if status.stalled and self.stalled_since_s is None:
            self.stalled_since_s = status.elapsed_s
        elif not status.stalled:
            self.stalled_since_s = None
        self.status = status

    # -- reads --
    @property
    def stats(self) -> SleepStats:
        """Sleep statistics over the whole session, epochs dropped from the strip included."""
        return self.running.stats()

    @property
    def n_epochs(self) -> int:
        """Epochs since the first record, those dropped from the strip included."""
        return self.dropped_epochs + len(self.codes)

    def paired_truth(self) -> tuple[np.ndarray, np.ndarray]:
        """True and scored codes of the epochs held (:attr:`codes`) that have both.

        Returns
        -------
        y_true : numpy.ndarray
            The true int64 stage codes, one per epoch paired (empty without pairs).
        y_pred : numpy.ndarray
            The scored int64 stage codes of the same epochs.
        """
        if self.first_epoch is None or not self.truth:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        f, n = self.first_epoch, len(self.codes)
        pairs = [(t, self.codes[e - f]) for e, t in self.truth.items() if 0 <= e - f < n]
        if not pairs:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        arr = np.asarray(pairs, dtype=np.int64)
        return arr[:, 0], arr[:, 1]

    def agreement(self) -> Agreement | None:
        """Running agreement with the truth stream over the whole session.

        Returns
        -------
        Agreement or None
            From pair counts kept as records and truth come; None without pairs.
        """
        return self._pairs.agreement()
