"""What the live screen knows: :class:`DisplayState`, updated by the display sink.

The sink (:class:`scorer.display.DisplaySink`) feeds it each scored epoch, truth label
and status tick; the pure renderer (:func:`scorer.screen.render`) only reads it. It keeps
the stage codes of the night since the first record, the truth labels, the last record,
the stream status, the latencies of the last 2 h and the running sleep statistics
(:mod:`sleepnet.report.sleep_stats`), and gives the running agreement with a truth stream.
"""
from __future__ import annotations

import logging
import math
from collections import deque
from typing import TYPE_CHECKING

import numpy as np

from sleepnet.metrics import Agreement, agreement
from sleepnet.report.sleep_stats import RunningSleepStats, SleepStats
from sleepnet.stages import EPOCH_S, UNSCORED, stage_code

from .records import ScoredEpoch
from .sinks import StreamStatus

if TYPE_CHECKING:   # no import at run time: the state loads neither rich nor the file sink
    from .hypnogram_file import RecordingState

log = logging.getLogger(__name__)

LATENCY_HISTORY = 240     # epochs kept for the latency median/max (2 h)


# --------------------------------------------------------------------------- state

class DisplayState:
    """Everything the screen shows, updated by the sink; :func:`scorer.screen.render` reads it.

    codes: stage code per epoch since the first record (-1 unscored or never received).
    truth: true stage codes by epoch index. anchor_wall_s: wall-clock time (POSIX s) of
    the start of epoch ``first_epoch``. stalled_since_s: ``elapsed_s`` of the status
    that first reported the stall (None while samples flow). recording: the hypnogram
    file's state (:class:`scorer.hypnogram_file.RecordingState`; None without a file).
    """

    def __init__(self, title: str = "sleepstream live") -> None:
        self.title = title
        self.codes: list[int] = []
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
            self.codes.append(UNSCORED)
            self.running.push(UNSCORED)
            self.n_unscored += 1
        if i == len(self.codes):
            self.codes.append(code)
            self.running.push(code)
            self.n_unscored += code == UNSCORED
        else:                                # a repeat of an epoch already shown
            self.codes[i] = code
            self.running = RunningSleepStats()
            self.running.extend(self.codes)
            self.n_unscored = sum(c == UNSCORED for c in self.codes)
        if self.last is None or record.epoch >= self.last.epoch:
            self.last = record
        if math.isfinite(record.latency_ms):
            self.latencies_ms.append(record.latency_ms)

    def add_truth(self, epoch: int, stage: str) -> None:
        code = stage_code(stage)
        self.truth[int(epoch)] = UNSCORED if code is None else code

    def set_recording(self, recording: "RecordingState | None") -> None:
        """The hypnogram file's state (the screen says NOT RECORDING while it fails)."""
        self.recording = recording

    def set_status(self, status: StreamStatus) -> None:
        if status.stalled and self.stalled_since_s is None:
            self.stalled_since_s = status.elapsed_s
        elif not status.stalled:
            self.stalled_since_s = None
        self.status = status

    # -- reads --
    @property
    def stats(self) -> SleepStats:
        return self.running.stats()

    def paired_truth(self) -> tuple[np.ndarray, np.ndarray]:
        """(y_true, y_pred) over the epochs that have both."""
        if self.first_epoch is None or not self.truth:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        f, n = self.first_epoch, len(self.codes)
        pairs = [(t, self.codes[e - f]) for e, t in self.truth.items() if 0 <= e - f < n]
        if not pairs:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        arr = np.asarray(pairs, dtype=np.int64)
        return arr[:, 0], arr[:, 1]

    def agreement(self) -> Agreement | None:
        """Running agreement with the truth stream, None without pairs."""
        y_true, y_pred = self.paired_truth()
        return agreement(y_true, y_pred) if len(y_true) else None
