"""The live loop: stream -> epochs -> model -> one record -> every sink.

For each new 30-s epoch from :mod:`streamer`, the model's stager (``model.new_stager()``:
the current epoch, those before it and night context, the same object batch scoring
uses; the loop never asks which kind of model it is) gives a stage; the loop turns it into a :class:`scorer.records.ScoredEpoch` and
hands the same record to every sink. Latency is measured from the moment the epoch's
last sample was pulled to the moment its record is made. Stream health goes to the
sinks as :class:`scorer.sinks.StreamStatus` about once a second, and at most ten times a
second while epochs flow. When a ``<name>-truth`` stream exists (a replay with labels),
each true stage is matched to the scored epoch whose span contains its timestamp and
sent to the sinks with ``truth(epoch, stage)``.

Every sink is a :class:`scorer.sinks.Sink` (an object that is not one is adapted once,
:func:`scorer.sinks.as_sink`), and the loop calls its methods directly, each through one
:class:`scorer.sinks.SafeCaller`: a sink that raises is logged once and skipped for that
call, so a broken display never stops the hypnogram file from being written.

Each pulled chunk goes to every sink's ``samples`` before it is scored (the gate's
arousal guard). ``tick(now)`` is called on every turn, after each pull while the loop
drains and after each record it publishes (``now``: the scorer's LSL clock, s), so it
runs many times a second while the loop runs and never while it hangs. The stimulation
gate renews an open window's lease there: a promise made from the loop itself, which
lapses when the loop stops (DESIGN.md, "The loop is the heartbeat").

A whole session (resolve, open the stream and its truth, choose the model, build the
sinks in order, run, release) is :class:`scorer.session.LiveSession`, which builds a
:class:`LiveScorer`.

Backlog (a flood: a fast replay, or a source sending what it held through a long
disconnection): each turn of the loop first drains what has arrived from the inlet, in
pulls of at most :attr:`streamer.stream.EEGStream.max_pull` samples, through the
preprocessor into model-ready epochs (4 bytes a sample at the model's rate; a sample
queued in liblsl costs about 80 bytes, measured with pylsl 1.18.6), then scores at most
``SCORE_BATCH`` of them. So a backlog waits as compact epochs rather than in liblsl's
queue, as far as the loop keeps up (what arrives while it is busy still queues there),
and the model never sees a batch of more than ``SCORE_BATCH`` epochs. Draining pauses
while ``MAX_BACKLOG_EPOCHS`` epochs wait. Samples flow only from :meth:`LiveScorer.run`
on when the stream was connected with ``subscribe=False``.

Restarts: given a ``state_path`` (``sleepstream live --out night.tsv`` uses
``night.tsv.state.json``), the stager's night-level state (the feature stager's running
baseline, clock and last epochs; a recurrent stager's hidden vector; whether the session
started at lights-off) is written there atomically after every scored batch,
with the end time of the last epoch. A scorer started again on the same file carries on
from it: the epochs it missed while down advance the night clock (from the stream's
timestamps) and break the 4-epoch context, exactly as an unscored stretch would. The
session start (``lights-off`` or ``unknown``) is the state file's when there is one, else
the one asked for, else the model's own default.

Memory: every history the session keeps is bounded (:mod:`scorer.history`), so a
7-day session holds what a night does. The latencies feed a :class:`LatencyStats`
(percentiles exact over the first 4096 records, then from a fixed histogram), the truth
pairs running counts (the agreement over every pair, exactly), and only the latest
``RECENT_KEEP`` latencies, truth pairs and scored stages are kept as they are.
"""
from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pylsl

from sleepnet.doc_sections import filled
from sleepnet.metrics import Agreement, agreement, agreement_from_counts
from sleepnet.models.base import StagingModel
from sleepnet.preprocess import QualityThresholds
from sleepnet.stages import EPOCH_S, STAGES, UNSCORED_NAME
from streamer.epochs import EpochAssembler, TimedEpoch
from streamer.resolve import Resolved, StreamQuery, resolve
from streamer.stream import DEFAULT_BUFLEN_S, DEFAULT_CHANNEL, EEGStream, SampleChunk
from streamer.truth import TruthMarker, TruthStream

from .history import AgreementCounts, LatencyStats, RecentDict
from .records import ScoredEpoch
from .sinks import SafeCaller, Sink, StreamStatus, as_sink, sink_name

log = logging.getLogger(__name__)

STATE_VERSION = 1
MAX_SKIPPED_EPOCHS = 2 * 24 * 120   # a restart more than two days of epochs away is a new night
STATUS_EVERY_S = 1.0
STATUS_MIN_INTERVAL_S = 0.1
RECENT_S = 30.0
SCORE_BATCH = 8               # epochs scored per turn of the loop
MAX_BACKLOG_EPOCHS = 1440     # 12 h of epochs waiting (~17 MB at 100 Hz) before draining pauses
RECENT_KEEP = 1024            # latest latencies, truth pairs and scored stages kept as they are


_CODE = {s: i for i, s in enumerate(STAGES)}


@dataclass(frozen=True)
class TruthPair:
    """A scored epoch with its true stage.

    Parameters
    ----------
    epoch : int
        The epoch's index in the session.
    true_stage : str
        The true stage (W, N1, N2, N3, REM or UNS).
    scored_stage : str
        The stage the model gave it.
    """

    epoch: int
    true_stage: str
    scored_stage: str


@dataclass(frozen=True)
class LiveSummary:
    """How a live session went.

    :meth:`LiveScorer.run` returns it when the loop ends (:meth:`LiveScorer.summary`);
    ``live`` and ``demo`` print it (:func:`sleepstream.console.print_live_summary`).

    Parameters
    ----------
    epochs, scored, unscored : int
        Records made: all, scored, unscored.
    gaps, stalls, losses : int
        Stream events: gaps found, times the signal was lost, times the outlet died.
    samples_received, samples_missing : int
        Samples pulled, and samples missing (gap fills plus NaN/Inf sent).
    latencies_ms : tuple of float
        The latest (at most ``RECENT_KEEP``) records' latencies in ms, oldest first.
    truth : tuple of TruthPair
        The latest (at most ``RECENT_KEEP``) epochs with a true stage.
    elapsed_s : float
        Wall time of the session in s.
    ended_by : str
        'stop', 'max_epochs' or 'idle'.
    latency_ms : dict of str to float
        median_ms, p95_ms and max_ms over EVERY record (:class:`scorer.history.LatencyStats`).
    truth_counts : tuple of tuple of int
        (6, 6) counts of (true, scored) pairs over every epoch with a true stage, unscored
        first (:func:`sleepnet.metrics.pair_counts`).
    """

    epochs: int
    scored: int
    unscored: int
    gaps: int
    stalls: int
    losses: int
    samples_received: int
    samples_missing: int
    latencies_ms: tuple[float, ...]
    truth: tuple[TruthPair, ...]
    elapsed_s: float
    ended_by: str
    latency_ms: dict[str, float] = field(default_factory=dict)
    truth_counts: tuple[tuple[int, ...], ...] = ()

    def agreement(self) -> Agreement | None:
        """Agreement over epochs that are scored and have a scored true stage.

        Returns
        -------
        Agreement or None
            From :attr:`truth_counts` (every epoch), else from :attr:`truth`; None
            without any such epoch.
        """
        if self.truth_counts:
            counts = np.asarray(self.truth_counts, dtype=np.int64)
            return agreement_from_counts(counts) if counts.sum() else None
        if not self.truth:
            return None
        code = {s: i for i, s in enumerate(STAGES)}
        y_true = np.array([code.get(p.true_stage, -1) for p in self.truth], dtype=np.int64)
        y_pred = np.array([code.get(p.scored_stage, -1) for p in self.truth], dtype=np.int64)
        return agreement(y_true, y_pred)

    def latency_percentiles(self) -> dict[str, float]:
        """median_ms, p95_ms and max_ms over every record ({} without any).

        Returns
        -------
        dict of str to float
            :attr:`latency_ms`, else computed from the latest :attr:`latencies_ms`.
        """
        if self.latency_ms:
            return dict(self.latency_ms)
        if not self.latencies_ms:
            return {}
        lat = np.asarray(self.latencies_ms)
        return {"median_ms": float(np.median(lat)), "p95_ms": float(np.percentile(lat, 95)),
                "max_ms": float(lat.max())}


class TruthMatcher:
    """Pairs true-stage markers with scored epochs by time (pure, no LSL).

    A marker belongs to the epoch whose [start_time, end_time] contains its time, with
    ``tolerance_s`` (half a sample) on either side. Markers may come before or after
    their epoch is scored; each epoch is matched once.

    Parameters
    ----------
    tolerance_s : float
        Slack in s on either side of an epoch's time span.
    keep_epochs : int
        The latest scored epochs kept for matching.
    max_pending : int
        Markers kept waiting for their epoch at most (the oldest are dropped).
    """

    def __init__(self, tolerance_s: float, keep_epochs: int = 256, max_pending: int = 10000) -> None:
        self.tolerance_s = tolerance_s
        self._epochs: deque[tuple[int, float, float]] = deque(maxlen=keep_epochs)
        self._pending: deque[TruthMarker] = deque(maxlen=max_pending)
        self._matched: set[int] = set()

    def add_epoch(self, record: ScoredEpoch) -> None:
        """Keep a scored epoch's time span for matching.

        Parameters
        ----------
        record : ScoredEpoch
            The epoch just scored.
        """
        self._epochs.append((record.epoch, record.start_time, record.end_time))

    def add_markers(self, markers: Iterable[TruthMarker]) -> None:
        """Queue true-stage markers until their epoch is scored.

        Parameters
        ----------
        markers : iterable of TruthMarker
            Markers pulled from the truth stream.
        """
        self._pending.extend(markers)

    def matches(self) -> list[tuple[int, str]]:
        """(epoch, true stage) for every marker that now has its epoch.

        Markers from before the first epoch kept (a scorer that joined late) are dropped.

        Returns
        -------
        list of tuple of (int, str)
            The new matches; each epoch once.
        """
        if not self._epochs or not self._pending:
            return []
        tol = self.tolerance_s
        first_start = self._epochs[0][1]
        out: list[tuple[int, str]] = []
        keep: deque[TruthMarker] = deque(maxlen=self._pending.maxlen)
        for m in self._pending:
            hit = next((e for e, s, t in self._epochs if s - tol <= m.time <= t + tol), None)
            if hit is not None:
                if hit not in self._matched:
                    self._matched.add(hit)
                    out.append((hit, m.stage))
            elif m.time >= first_start - tol:
                keep.append(m)   # its epoch is not scored yet
            # else: before the first epoch we kept (scorer joined late): dropped
        self._pending = keep
        if len(self._matched) > 4 * (self._epochs.maxlen or 256):
            oldest = self._epochs[0][0]
            self._matched = {e for e in self._matched if e >= oldest}
        return out


class LiveScorer:
    """The epoch-by-epoch loop over a connected :class:`streamer.stream.EEGStream`.

    Parameters
    ----------
    stream : EEGStream
        Connected stream (``connect()`` already called; with ``subscribe=False`` the
        flow of samples starts when :meth:`run` does).
    model : StagingModel
        From :func:`sleepnet.weights.load_model` (any kind).
    sinks : sequence of Sink
        Every record goes to each of them, in order (an object that is not a
        :class:`scorer.sinks.Sink` is adapted, :func:`scorer.sinks.as_sink`).
    truth : TruthStream, optional
        True stages of a replay.
    status_every_s : float
        Seconds between status reports to the sinks (sooner after an epoch is scored).
    state_path : Path, optional
        Where the night-level state is kept across restarts (see the module doc); when
        it holds a state of this model, scoring carries on from it.
    thresholds : QualityThresholds, optional
        Epoch quality rules (default: the µV ones; per-epoch normalised input takes
        :func:`sleepnet.normalised.quality_thresholds`).
    session_start : str, optional
        ``lights-off`` or ``unknown``: whether the time since this session started is the
        night's clock (None: the model's default). A state file carried on from wins.
    """

    def __init__(self, stream: EEGStream, model: StagingModel, sinks: Sequence[Sink | object],
                 truth: TruthStream | None = None, status_every_s: float = STATUS_EVERY_S,
                 state_path: str | Path | None = None, thresholds: QualityThresholds | None = None,
                 session_start: str | None = None) -> None:
        self.stream = stream
        self.desc = stream.description
        self.model = model
        self.sinks: tuple[Sink, ...] = tuple(as_sink(s) for s in sinks)
        self.truth_stream = truth
        self.status_every_s = status_every_s
        self._assembler = EpochAssembler(self.desc.sfreq_hz, model.preprocess, thresholds=thresholds)
        self._stager = model.new_stager() if session_start is None else model.new_stager(session_start=session_start)
        self._asked_start = session_start
        self.state_path = Path(state_path) if state_path is not None else None
        self._resume_end: float | None = None
        self.resumed = False
        if self.state_path is not None:
            self._restore_state()
        self._matcher = TruthMatcher(tolerance_s=0.5 / self.desc.sfreq_hz + 1e-3)
        self._failed: set[tuple[int, str]] = set()
        self._call = SafeCaller(log)
        self._stages: RecentDict[int, str] = RecentDict(RECENT_KEEP)   # for truth that comes later
        self._truth: deque[TruthPair] = deque(maxlen=RECENT_KEEP)
        self._truth_counts = AgreementCounts()
        self._latencies: deque[float] = deque(maxlen=RECENT_KEEP)
        self._latency = LatencyStats()
        self.n_epochs = 0
        self.n_scored = 0
        self._last_latency = float("nan")
        self._t_start = pylsl.local_clock()
        self._backlog: deque[TimedEpoch] = deque()
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (f"<LiveScorer {self.model.model_id} on '{self.desc.name}' / {self.desc.channel_label} "
                f"@ {self.desc.sfreq_hz:g} Hz: {self.n_epochs} epochs ({self.n_scored} scored), "
                f"{len(self.sinks)} sinks ({', '.join(sink_name(s) for s in self.sinks) or 'none'}), {state}>")

    # -- the loop -----------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None, max_epochs: int | None = None,
            idle_exit_s: float | None = None, poll_s: float = 0.1) -> LiveSummary:
        """Score until ``stop`` is set, ``max_epochs`` records are made, or no sample
        has come for ``idle_exit_s`` seconds (None: wait forever).

        Parameters
        ----------
        stop : threading.Event, optional
            Set from elsewhere (a signal handler) to end the loop.
        max_epochs : int, optional
            End after this many records.
        idle_exit_s : float, optional
            End when no sample has come for this long (s) and nothing waits to be scored.
        poll_s : float
            Longest wait in s for samples in one turn of the loop.

        Returns
        -------
        LiveSummary
            How the session went, with ``ended_by`` 'stop', 'max_epochs' or 'idle'.
        """
        stop = stop or threading.Event()
        self.stream.subscribe()
        self._t_start = pylsl.local_clock()
        last_status = -np.inf
        ended_by = "stop"
        while not stop.is_set():
            self._backlog.extend(self._drain(poll_s))
            if max_epochs is not None:
                while len(self._backlog) > max(0, max_epochs - self.n_epochs):
                    self._backlog.pop()
            timed = [self._backlog.popleft() for _ in range(min(SCORE_BATCH, len(self._backlog)))]
            if timed:
                self._score(timed)
            self._poll_truth()
            now = pylsl.local_clock()
            self._tick(now)
            since = now - last_status
            if since >= self.status_every_s or (timed and since >= STATUS_MIN_INTERVAL_S):
                self._status(self.make_status(now))
                last_status = now
            if max_epochs is not None and self.n_epochs >= max_epochs:
                ended_by = "max_epochs"
                break
            if idle_exit_s is not None and not self._backlog and self.stream.silent_s(now) > idle_exit_s:
                ended_by = "idle"
                break
        self.finish_truth()
        self._status(self.make_status(pylsl.local_clock()))
        return self.summary(ended_by)

    def _drain(self, poll_s: float) -> list[TimedEpoch]:
        """The epochs completed by what has arrived: pulls of at most ``max_pull``
        samples, one after another while each comes back full (more is queued) and
        fewer than ``MAX_BACKLOG_EPOCHS`` wait. Waits up to ``poll_s`` for a first sample
        only when nothing waits to be scored."""
        timed: list[TimedEpoch] = []
        timeout = 0.0 if self._backlog else poll_s
        while True:
            pulled = 0
            for chunk in self.stream.acquire(timeout):
                pulled += len(chunk.samples_uv)
                timed += self._assembler.push(chunk)
                self._tap(chunk)
            self._tick()
            if pulled < self.stream.max_pull or len(self._backlog) + len(timed) >= MAX_BACKLOG_EPOCHS:
                return timed
            timeout = 0.0

    def finish_truth(self, wait_s: float = 0.5) -> None:
        """Collect true stages still in flight for epochs already scored (they are sent
        with each epoch's last sample, so they trail it by at most milliseconds).

        Parameters
        ----------
        wait_s : float
            Longest wait in s for markers of epochs still without a true stage.
        """
        if self.truth_stream is None:
            return
        deadline = pylsl.local_clock() + wait_s
        while True:
            self._poll_truth()
            if self._truth_counts.total >= self.n_epochs or pylsl.local_clock() >= deadline:
                return
            time.sleep(0.02)

    def _restore_state(self) -> None:
        """Carry on from the state file when it holds this model's night."""
        p = self.state_path
        if p is None or not p.exists():
            return
        try:
            state = json.loads(p.read_text())
            if state.get("version") != STATE_VERSION:
                raise ValueError(f"state version {state.get('version')!r}")
            self._stager.restore(state["stager"])
            end = float(state["last_end_time"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s: night state not used (%s); the night context starts afresh", p, exc)
            self._stager.reset()
            return
        self._resume_end = end
        self.resumed = True
        log.info("%s: carrying on with the night state of the last session", p)
        if self._asked_start is not None and self.session_start not in (None, self._asked_start):
            log.warning("%s: this night's session started %s (its state says so); session_start=%s is not used",
                        p, self.session_start, self._asked_start)

    @property
    def session_start(self) -> str | None:
        """``lights-off`` or ``unknown`` (after a restart: the state file's), None for a
        model that keeps no night clock."""
        return getattr(self._stager, "session_start", None)

    def _save_state(self, last_end_time: float) -> None:
        """Write the night state atomically (temp file, fsync, rename)."""
        p = self.state_path
        if p is None:
            return
        body = json.dumps({"version": STATE_VERSION, "model_id": self.model.model_id,
                           "last_end_time": last_end_time, "stager": self._stager.state()})
        tmp = p.with_name(p.name + ".tmp")
        try:
            with open(tmp, "w") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, p)
        except OSError as exc:
            key = (id(self), "state")
            if key not in self._failed:
                self._failed.add(key)
                log.error("%s: cannot write the night state (%s); scoring goes on", p, exc)

    def _score(self, timed: list[TimedEpoch]) -> None:
        if self._resume_end is not None:
            gap_s = timed[0].start_time - self._resume_end
            missed = int(round(gap_s / EPOCH_S)) if math.isfinite(gap_s) else 0
            self._resume_end = None
            if 0 < missed <= MAX_SKIPPED_EPOCHS:
                self._stager.skip(missed)
            elif missed > MAX_SKIPPED_EPOCHS:
                log.warning("last session ended %.0f h ago: a new night", gap_s / 3600)
                self._stager.reset()
        preds = self._stager.score([t.epoch for t in timed])
        made = pylsl.local_clock()
        for t, p in zip(timed, preds):
            latency = (made - t.arrival_time) * 1000.0
            record = ScoredEpoch(epoch=t.index, start_time=t.start_time, end_time=t.end_time, stage=p.stage,
                                 probabilities=tuple(p.probabilities), confidence=p.confidence,
                                 flags=tuple(p.flags), latency_ms=latency)
            for sink in self.sinks:
                self._call(sink.publish, record)
            self._tick()
            self._matcher.add_epoch(record)
            self._stages[record.epoch] = record.stage
            self._latencies.append(latency)
            self._latency.add(latency)
            self._last_latency = latency
            self.n_epochs += 1
            self.n_scored += int(record.stage != UNSCORED_NAME)
        self._save_state(timed[-1].end_time)

    def _poll_truth(self) -> None:
        if self.truth_stream is None:
            return
        self._matcher.add_markers(self.truth_stream.poll())
        for epoch, stage in self._matcher.matches():
            for sink in self.sinks:
                self._call(sink.truth, epoch, stage)
            pair = TruthPair(epoch, stage, self._stages.get(epoch, UNSCORED_NAME))
            self._truth.append(pair)
            self._truth_counts.add(_CODE.get(pair.true_stage, -1), _CODE.get(pair.scored_stage, -1))

    def _tap(self, chunk: SampleChunk) -> None:
        """Each pulled chunk to every sink, before it is scored."""
        for sink in self.sinks:
            self._call(sink.samples, chunk)

    def _tick(self, now: float | None = None) -> None:
        """A turn of the loop to every sink."""
        now = pylsl.local_clock() if now is None else now
        for sink in self.sinks:
            self._call(sink.tick, now)

    def _status(self, status: StreamStatus) -> None:
        for sink in self.sinks:
            self._call(sink.status, status)

    # -- reporting ----------------------------------------------------------------------
    def make_status(self, now: float | None = None) -> StreamStatus:
        """The stream's status now, as the sinks get it.

        Parameters
        ----------
        now : float, optional
            LSL time in s (None: now).

        Returns
        -------
        StreamStatus
            Counters, stall state, elapsed time, last latency and the latest
            ``RECENT_S`` seconds of signal (µV).
        """
        now = pylsl.local_clock() if now is None else now
        s = self.stream
        return StreamStatus(source_name=self.desc.name, sfreq_hz=self.desc.sfreq_hz,
                            channel=self.desc.channel_label, samples_received=s.samples_received,
                            samples_missing=s.samples_missing, gaps=s.gaps, stalled=s.stalled,
                            elapsed_s=now - self._t_start, last_latency_ms=self._last_latency,
                            recent_uv=s.recent_uv(RECENT_S), recent_sfreq_hz=self.desc.sfreq_hz)

    def summary(self, ended_by: str = "stop") -> LiveSummary:
        """How the session has gone so far.

        Parameters
        ----------
        ended_by : str
            'stop', 'max_epochs' or 'idle'.

        Returns
        -------
        LiveSummary
            Records, stream events, latencies and true stages up to now.
        """
        s = self.stream
        return LiveSummary(epochs=self.n_epochs, scored=self.n_scored, unscored=self.n_epochs - self.n_scored,
                           gaps=s.gaps, stalls=s.stalls, losses=s.losses, samples_received=s.samples_received,
                           samples_missing=s.samples_missing, latencies_ms=tuple(self._latencies),
                           truth=tuple(self._truth), elapsed_s=pylsl.local_clock() - self._t_start,
                           ended_by=ended_by, latency_ms=self._latency.summary(),
                           truth_counts=tuple(map(tuple, self._truth_counts.counts.tolist())))

    def close(self) -> None:
        """Close every sink (in order, failures logged) and disconnect the streams; a
        second call does nothing."""
        if self._closed:
            return
        self._closed = True
        self._call.close_all(self.sinks)
        if self.truth_stream is not None:
            self.truth_stream.disconnect()
        self.stream.disconnect()


#: What :func:`connect_stream` and :func:`open_resolved` take alike: which channel, in which unit.
_CHANNEL_DOC = """
channel : str
    Channel label, or a derivation (:class:`streamer.stream.EEGStream`).
channel_index : int, optional
    Pick the channel by 0-based index instead.
units : str, optional
    Override the channel's declared unit (``uV``, ``mV``, ``V``).
"""
#: ... and how the inlets are opened.
_BUFFER_DOC = """
buffer_s : int
    Inlet buffer, s of signal (the stream's ``max_buflen_s``).
with_truth : bool
    Also open its truth stream, when there is one.
auto_buffer : bool
    Enlarge the buffer for a fast replay that says so in its description.
"""


@filled(channel=_CHANNEL_DOC, buffer=_BUFFER_DOC)
def connect_stream(query: StreamQuery, channel: str = DEFAULT_CHANNEL, channel_index: int | None = None,
                   units: str | None = None, timeout_s: float = 10.0, buffer_s: int = DEFAULT_BUFLEN_S,
                   with_truth: bool = True, auto_buffer: bool = True) -> tuple[EEGStream, TruthStream | None]:
    """Find and open the EEG stream (and its ``-truth`` stream, when there is one).

    :func:`streamer.resolve.resolve` then :func:`open_resolved` (subscribed at once).

    Parameters
    ----------
    query : StreamQuery
        Which stream.
    {channel}
    timeout_s : float
        How long to look for the stream, s.
    {buffer}

    Returns
    -------
    stream : EEGStream
        Connected and subscribed.
    truth : TruthStream or None
        Its truth stream.

    Raises
    ------
    streamer.errors.StreamError
        No matching stream within ``timeout_s`` (the message lists the visible ones),
        an irregular rate, a missing channel, or units that are not a voltage.
    """
    found = resolve(query, timeout_s)
    return open_resolved(found, channel=channel, channel_index=channel_index, units=units, timeout_s=timeout_s,
                       buffer_s=buffer_s, with_truth=with_truth, auto_buffer=auto_buffer)


@filled(channel=_CHANNEL_DOC, buffer=_BUFFER_DOC)
def open_resolved(found: Resolved, channel: str = DEFAULT_CHANNEL, channel_index: int | None = None,
                units: str | None = None, timeout_s: float = 10.0, buffer_s: int = DEFAULT_BUFLEN_S,
                with_truth: bool = True, auto_buffer: bool = True,
                subscribe: bool = True) -> tuple[EEGStream, TruthStream | None]:
    """Open a resolved EEG stream and its ``-truth`` stream, when there is one.

    The truth stream is subscribed before the EEG stream, so a replay waiting for its
    consumer has both subscribers when it starts sending. When opening the EEG stream
    fails, the truth stream is closed again.

    Parameters
    ----------
    found : streamer.resolve.Resolved
        The stream (and the streams visible with it, where its truth stream is looked for).
    {channel}
    timeout_s : float
        How long the stream may take to answer (at least 2 s, at most 10 s are used), s.
    {buffer}
    subscribe : bool
        Start the flow of samples now; False: at the first pull (:meth:`EEGStream.connect`).

    Returns
    -------
    stream : EEGStream
        Connected.
    truth : TruthStream or None
        Its truth stream.

    Raises
    ------
    streamer.errors.StreamError
        A stream refused by :func:`streamer.stream.check_stream_info`, a missing channel,
        units that are not a voltage, or no answer.
    """
    info = found.info
    stream = EEGStream(info, channel=channel, channel_index=channel_index, units=units, max_buflen_s=buffer_s,
                       auto_buffer=auto_buffer)
    truth = TruthStream.find(info.name(), info.source_id(), found.visible) if with_truth else None
    try:
        stream.connect(timeout_s=max(2.0, min(timeout_s, 10.0)), subscribe=subscribe)
    except BaseException:
        if truth is not None:
            truth.disconnect()
        stream.disconnect()
        raise
    return stream, truth
