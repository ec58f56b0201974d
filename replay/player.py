"""Replay a recording into LSL as if it were live: float32 µV at the recording's own
rate (never resampled: that is the scorer's job, and a replay must exercise it).

* Pacing is drift-free: after ``elapsed`` seconds, ``rate x speed x elapsed`` samples
  are due; the player pushes what is due minus what was sent, in chunks of ``chunk``
  samples, and sleeps otherwise. ``speed=None`` ("max") pushes as fast as it can.
* Timestamps are explicit and monotonic, ``t0 + i / rate`` for global sample ``i``
  (continuing across loops), so they stay exact at any speed; at speed N they run N
  times faster than the wall clock.
* The outlet buffers enough (the whole recording at "max", 360 s of wall time
  otherwise) that a fast replay never drops a sample on the sending side. The
  description carries ``replay/speed`` and ``replay/duration_s`` so that a consumer
  (:class:`streamer.stream.EEGStream`) sizes its inlet buffer to match.
* By default the player waits for a consumer before sending, since samples pushed
  before an inlet subscribes are never delivered. At the end it keeps the outlet open
  for ``linger_s`` (or until its consumers leave) because closing an outlet discards
  samples its consumers have not pulled yet.
* With labels (npz ``labels``/``y`` or a hypnogram), a second stream ``<name>-truth``
  (type ``Markers``, source_id ``<source_id>-truth``) carries one marker per 30-s
  epoch, the stage name, stamped at the epoch's last sample.

Defaults: stream name ``sleepstream-replay``; source_id ``sleepstream-replay:<name>``
(stable, so a live scorer reconnects when a replay with the same name restarts).
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pylsl

from sleepnet.errors import SleepstreamError, parameter
from sleepnet.io.hypnograms import read_hypnogram
from sleepnet.io.recordings import DEFAULT_CHANNEL, Recording, list_edf_channels, read_recording
from sleepnet.normalised import STREAM_KIND, STREAM_UNIT, input_normalisation
from sleepnet.stages import EPOCH_S, STAGES, TRUTH_SUFFIX, stage_name

log = logging.getLogger(__name__)

DEFAULT_NAME = "sleepstream-replay"
STREAM_TYPE = "EEG"
TRUTH_TYPE = "Markers"
INDEX_CHANNEL = "sample_index"
INDEX_MODULUS = 1 << 24            # float32 holds integers exactly below 2**24
UNIT_UV = "microvolts"
DEFAULT_LINGER_S = 5.0
PROGRESS_EVERY_S = 0.1
MAX_OUTLET_BUFFER_SAMPLES = 8_000_000   # liblsl queues ~32 bytes per sample slot


class ReplayError(SleepstreamError):
    """Bad replay options (speed, chunk) or an empty recording."""


def default_source_id(name: str) -> str:
    """The source_id a replay named ``name`` uses unless told otherwise.

    Parameters
    ----------
    name : str
        The replay's stream name.

    Returns
    -------
    str
        ``sleepstream-replay:<name>``: stable, so a live scorer reconnects when a replay
        of the same name restarts.
    """
    return f"sleepstream-replay:{name}"


@dataclass(frozen=True)
class ReplaySource:
    """What a replay streams.

    Parameters
    ----------
    data_uv : numpy.ndarray
        (n_samples, n_channels) float32, µV (the index channel holds sample numbers).
    sfreq : float
        Rate, Hz.
    channels, units, kinds : tuple of str
        Per-channel label, unit and LSL channel type.
    labels : numpy.ndarray or None
        (n_epochs,) stage codes per 30-s epoch (-1 unscored), or None.
    source : str
        Where it came from.
    normalised : bool
        True when the signal is per-epoch normalised (each 30-s epoch z-scored, not µV):
        the stream's description then says so (``normalisation/kind``) and its channels'
        unit is ``normalized``.
    """

    data_uv: np.ndarray
    sfreq: float
    channels: tuple[str, ...]
    units: tuple[str, ...]
    kinds: tuple[str, ...]
    labels: np.ndarray | None
    source: str
    normalised: bool = False

    @property
    def n_samples(self) -> int:
        """Samples per channel."""
        return int(self.data_uv.shape[0])

    @property
    def n_channels(self) -> int:
        """Channels streamed (the index channel included when added)."""
        return int(self.data_uv.shape[1])

    @property
    def duration_s(self) -> float:
        """Length of the recording, s."""
        return self.n_samples / self.sfreq

    @property
    def n_epochs(self) -> int:
        """Complete 30-s epochs: those whose last sample (:meth:`epoch_last_sample`) is in
        the recording, also where 30 s is not a whole number of samples."""
        n = int(self.n_samples // (self.sfreq * EPOCH_S))
        while n > 0 and self.epoch_last_sample(n - 1) >= self.n_samples:
            n -= 1
        while self.epoch_last_sample(n) < self.n_samples:
            n += 1
        return n

    def epoch_last_sample(self, k: int) -> int:
        """Index of the last sample of epoch ``k`` (epochs are cut by counting samples).

        Parameters
        ----------
        k : int
            Epoch number (0-based, 30-s epochs).

        Returns
        -------
        int
            ``round((k + 1) * 30 * sfreq) - 1``; the truth marker of epoch ``k`` is stamped
            at this sample's time.
        """
        return int(round((k + 1) * EPOCH_S * self.sfreq)) - 1

    @classmethod
    def from_recording(cls, rec: Recording) -> ReplaySource:
        """One channel from :func:`sleepnet.io.recordings.read_recording`.

        Parameters
        ----------
        rec : sleepnet.io.recordings.Recording
            The recording read (its channel in µV, rate, labels and source).

        Returns
        -------
        ReplaySource
            One ``EEG`` channel in ``microvolts``, with the recording's labels.
        """
        return cls(data_uv=np.ascontiguousarray(rec.eeg_uv, dtype=np.float32).reshape(-1, 1),
                   sfreq=float(rec.sfreq), channels=(rec.channel,), units=(UNIT_UV,), kinds=("EEG",),
                   labels=rec.labels, source=rec.source)

    @classmethod
    def from_arrays(cls, data_uv: np.ndarray, sfreq: float, channels: list[str] | tuple[str, ...],
                    labels: np.ndarray | None = None, source: str = "arrays") -> ReplaySource:
        """Several channels given as (n_samples, n_channels) µV.

        Parameters
        ----------
        data_uv : numpy.ndarray
            (n_samples, n_channels) µV; another shape is reshaped to (n_samples, -1).
        sfreq : float
            Rate, Hz.
        channels : list or tuple of str
            One label per column.
        labels : numpy.ndarray, optional
            Stage codes per 30-s epoch (-1 unscored).
        source : str
            Where it came from (names it in messages).

        Returns
        -------
        ReplaySource
            ``EEG`` channels in ``microvolts``.

        Raises
        ------
        ReplayError
            The number of columns differs from the number of labels.
        """
        data = np.asarray(data_uv, dtype=np.float32)
        data = np.ascontiguousarray(data.reshape(len(data), -1) if data.ndim != 2 else data)
        if data.shape[1] != len(channels):
            raise ReplayError(f"{source}: {data.shape[1]} channels but {len(channels)} labels")
        return cls(data_uv=data, sfreq=float(sfreq), channels=tuple(channels),
                   units=(UNIT_UV,) * len(channels), kinds=("EEG",) * len(channels),
                   labels=labels, source=source)

    def with_index_channel(self) -> ReplaySource:
        """A copy with one more channel, ``sample_index``.

        Returns
        -------
        ReplaySource
            This source plus a ``MISC`` channel (unit ``none``) holding each sample's
            number (modulo 2**24, exact in float32) so a consumer can prove nothing was
            dropped or reordered.
        """
        idx = (np.arange(self.n_samples) % INDEX_MODULUS).astype(np.float32)[:, None]
        return replace(self, data_uv=np.ascontiguousarray(np.hstack([self.data_uv, idx])),
                       channels=self.channels + (INDEX_CHANNEL,), units=self.units + ("none",),
                       kinds=self.kinds + ("MISC",))


def load_source(path: str | Path, channel: str = DEFAULT_CHANNEL, all_channels: bool = False,
                hypnogram: str | Path | None = None, normalized: bool | None = None) -> ReplaySource:
    """Read a recording for replay.

    Parameters
    ----------
    path : str or Path
        npz (either format) or EDF/BDF.
    channel : str
        EDF/BDF channel to stream (tolerant match, as the file readers do), or a
        derivation of its referential channels (``F4-M1``), streamed as one channel.
    all_channels : bool
        EDF/BDF: stream every channel of the file (at the file's common rate).
    hypnogram : str or Path, optional
        True stages for the ``-truth`` stream (otherwise labels inside the npz, if any).
    normalized : bool, optional
        The signal is per-epoch normalised (the stream's description will say so); None:
        recognised when every epoch's SD is 1 +/- 0.001
        (:func:`sleepnet.normalised.looks_normalised`).

    Returns
    -------
    ReplaySource
        The channel (or, with ``all_channels``, every channel, cut to the shortest), with
        the true stages of ``hypnogram`` or the npz's labels (None when neither has any).

    Raises
    ------
    sleepnet.errors.InputFileError
        The file cannot be read, has no such channel, or the hypnogram does not fit
        (the readers' errors).
    """
    rec = read_recording(path, channel)
    normalised = input_normalisation(rec.eeg_uv, rec.sfreq, normalized) is not None
    src = replace(ReplaySource.from_recording(rec), normalised=normalised)
    if all_channels and Path(path).suffix.lower() in (".edf", ".bdf", ".rec"):
        names = list_edf_channels(path)
        recs = [rec if n == rec.channel else read_recording(path, n) for n in names]
        n = min(len(r.eeg_uv) for r in recs)
        data = np.stack([r.eeg_uv[:n] for r in recs], axis=1)
        src = replace(ReplaySource.from_arrays(data, rec.sfreq, [r.channel for r in recs], source=str(path)),
                      normalised=normalised)
    labels = rec.labels
    if hypnogram is not None:
        labels = read_hypnogram(hypnogram, n_epochs=src.n_epochs)
    return replace(src, labels=labels)


@dataclass(frozen=True)
class ReplayResult:
    """How a replay ended.

    Parameters
    ----------
    samples_sent : int
        Samples pushed (all loops).
    markers_sent : int
        Truth markers pushed.
    loops : int
        Complete passes.
    elapsed_s : float
        Wall time streaming, s.
    stopped : bool
        True when stopped before the end (stop event or Ctrl-C).
    """

    samples_sent: int
    markers_sent: int
    loops: int
    elapsed_s: float
    stopped: bool


class Player:
    """Streams a :class:`ReplaySource` into LSL.

    Parameters
    ----------
    source : ReplaySource
        What to stream.
    name : str
        Stream name (``<name>-truth`` for the true stages).
    source_id : str, optional
        Stream source_id; default :func:`default_source_id`.
    speed : float or None
        1 = real time, N = N times faster, None = as fast as possible ("max").
    chunk : int, optional
        Samples per push; default about 40 ms of signal at the replay speed
        (4096 at "max").
    loop : bool
        Start again at the end, forever (each pass streams whole epochs only, so
        epochs and truth markers stay aligned across passes).
    wait_for_consumer : bool
        Send nothing until a consumer subscribes.
    linger_s : float, optional
        At the end, keep the stream open this long while consumers are connected
        (default: 5 s; at "max", 5 s plus 0.1 s per epoch, since the consumer may still
        be working through its buffer).
    t0 : float, optional
        LSL time of the first sample (default: ``local_clock()`` when sending starts),
        e.g. to continue the clock of a source that restarts.
    consumer_position : callable, optional
        Samples the consumer has taken so far, when it lives in the same process (the
        demo): the player then never runs more than ``max_lead_s`` of signal ahead of
        it, which makes "max" truly "as fast as the consumer takes" with bounded
        buffers.
    max_lead_s : float
        How far (s of signal) the player may run ahead of ``consumer_position``.

    Raises
    ------
    ReplayError
        An empty source, a speed that is not a positive number, a chunk under 1 sample,
        ``loop`` at "max", or ``loop`` without one complete 30-s epoch.
    """

    def __init__(self, source: ReplaySource, name: str = DEFAULT_NAME, source_id: str | None = None,
                 speed: float | None = 1.0, chunk: int | None = None, loop: bool = False,
                 wait_for_consumer: bool = True, linger_s: float | None = None,
                 t0: float | None = None, consumer_position: Callable[[], int] | None = None,
                 max_lead_s: float = 60.0) -> None:
        if source.n_samples == 0:
            raise ReplayError(f"{source.source}: nothing to replay (no samples)")
        if speed is not None and (not math.isfinite(speed) or speed <= 0):
            raise ReplayError(f"{parameter('speed')} must be a positive number or 'max', got {speed}")
        if chunk is not None and chunk < 1:
            raise ReplayError(f"{parameter('chunk')} must be at least 1 sample, got {chunk}")
        if loop and speed is None:
            raise ReplayError(f"{parameter('loop')} needs a finite {parameter('speed')}: at 'max' an endless replay "
                              "outruns any consumer and LSL drops what does not fit its buffers")
        if loop and source.n_epochs == 0:
            raise ReplayError(f"{source.source}: {parameter('loop')} needs at least one complete 30-s epoch")
        self.source = source
        self.name = name
        self.source_id = source_id or default_source_id(name)
        self.speed = speed
        self.chunk = int(chunk) if chunk else self._default_chunk(source.sfreq, speed)
        self.loop = loop
        self.wait_for_consumer = wait_for_consumer
        self.linger_s = float(linger_s) if linger_s is not None else (
            DEFAULT_LINGER_S + (0.1 * source.n_epochs if speed is None else 0.0))
        self.consumer_position = consumer_position
        self.max_lead = max(1, int(round(max_lead_s * source.sfreq)))
        self.per_pass = (int(round(source.n_epochs * EPOCH_S * source.sfreq)) if loop else source.n_samples)
        self._outlet: pylsl.StreamOutlet | None = None
        self._truth: pylsl.StreamOutlet | None = None
        self._t0_given = t0
        self.t0: float | None = None          # LSL time of sample 0
        self.samples_sent = 0
        self.markers_sent = 0
        self.started = threading.Event()     # streaming has begun (a consumer is there)
        self.finished = threading.Event()    # run() has returned
        self.result: ReplayResult | None = None
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        speed = "max" if self.speed is None else f"x{self.speed:g}"
        total = "endless" if self.loop else f"{self.per_pass} samples"
        if self.finished.is_set():
            state = "failed" if self.error is not None else "finished"
        elif self.started.is_set():
            state = "streaming"
        elif self._outlet is not None:
            state = "waiting for a consumer" if self.wait_for_consumer else "open"
        else:
            state = "not started"
        truth = ", with truth" if self.has_truth else ""
        return (f"<Player '{self.name}' @ {self.source.sfreq:g} Hz {speed}, {self.source.n_channels} ch{truth}: "
                f"{state}, {self.samples_sent} of {total} sent>")

    @staticmethod
    def _default_chunk(sfreq: float, speed: float | None) -> int:
        if speed is None:
            return 4096
        return int(min(4096, max(1, round(sfreq * speed * 0.04))))

    @property
    def has_truth(self) -> bool:
        """Whether the source has true stages, so a ``<name>-truth`` stream is sent."""
        return self.source.labels is not None and len(self.source.labels) > 0

    @property
    def buffer_s(self) -> int:
        """Outlet buffer (s of signal): the whole pass at "max", else 360 s of wall time;
        at most ``MAX_OUTLET_BUFFER_SAMPLES`` samples."""
        d = self.per_pass / self.source.sfreq
        ahead = d if self.speed is None else min(d, 360.0 * max(1.0, self.speed))
        cap = MAX_OUTLET_BUFFER_SAMPLES / self.source.sfreq
        return int(math.ceil(min(max(ahead, 360.0 if self.speed is not None else 0.0), cap))) + 10

    # -- lifecycle ----------------------------------------------------------------------
    def open(self) -> None:
        """Create the outlets (the streams become visible)."""
        if self._outlet is not None:
            return
        src = self.source
        info = pylsl.StreamInfo(self.name, STREAM_TYPE, src.n_channels, src.sfreq, "float32", self.source_id)
        chans = info.desc().append_child("channels")
        for label, unit, kind in zip(src.channels, src.units, src.kinds):
            ch = chans.append_child("channel")
            ch.append_child_value("label", label)
            ch.append_child_value("unit", STREAM_UNIT if src.normalised and unit == UNIT_UV else unit)
            ch.append_child_value("type", kind)
        if src.normalised:  # not µV: each 30-s epoch z-scored (sleepstream live reads this)
            norm = info.desc().append_child("normalisation")
            norm.append_child_value("kind", STREAM_KIND)
            norm.append_child_value("epoch_s", f"{EPOCH_S:g}")
        info.desc().append_child_value("manufacturer", "sleepstream replay")
        info.desc().append_child_value("source_file", Path(src.source).name)
        # How fast and how long: a consumer sizes its inlet buffer from this, so a
        # replay faster than real time does not overflow it (see streamer.stream).
        rp = info.desc().append_child("replay")
        rp.append_child_value("speed", "max" if self.speed is None else f"{self.speed:g}")
        rp.append_child_value("duration_s", f"{self.per_pass / src.sfreq:.3f}")
        rp.append_child_value("loop", "1" if self.loop else "0")
        self._outlet = pylsl.StreamOutlet(info, 0, self.buffer_s)
        if self.has_truth:
            tinfo = pylsl.StreamInfo(self.name + TRUTH_SUFFIX, TRUTH_TYPE, 1, pylsl.IRREGULAR_RATE, "string",
                                     self.source_id + TRUTH_SUFFIX)
            tinfo.desc().append_child_value("epoch_s", f"{EPOCH_S:g}")
            tinfo.desc().append_child_value("marker_time", "last sample of the epoch")
            lm = tinfo.desc().append_child("label_map")
            for i, s in enumerate(STAGES):
                lm.append_child_value(f"stage{i}", s)
            tinfo.desc().append_child_value("eeg_stream", self.name)
            self._truth = pylsl.StreamOutlet(tinfo, 0, 360)
        log.info("replay '%s' (source_id %r): %d ch at %g Hz, %.0f s%s", self.name, self.source_id,
                 src.n_channels, src.sfreq, src.duration_s, ", with truth" if self.has_truth else "")

    def stream_info(self) -> pylsl.StreamInfo:
        """The EEG stream's full description, as consumers see it (after :meth:`open`).

        Returns
        -------
        pylsl.StreamInfo
            The outlet's description (channels, ``replay/speed``, ``replay/duration_s``, ...).

        Raises
        ------
        RuntimeError
            Called before :meth:`open`.
        """
        if self._outlet is None:
            raise RuntimeError("Player.open() first")
        return self._outlet.get_info()

    def close(self) -> None:
        """Remove the outlets (safe to call twice)."""
        self._outlet = None
        self._truth = None

    def start(self, stop: threading.Event | None = None,
              progress: Callable[[int, int | None], None] | None = None) -> threading.Thread:
        """Run in a background thread (opening the outlets first).

        Parameters
        ----------
        stop : threading.Event, optional
            Set it to stop the replay.
        progress : callable, optional
            ``progress(samples_sent, total_or_None)``, as for :meth:`run`.

        Returns
        -------
        threading.Thread
            The daemon thread running :meth:`run`; afterwards see :attr:`result`, or
            :attr:`error` for what it raised.
        """
        self.open()
        self._thread = threading.Thread(target=self._run_thread, args=(stop, progress),
                                        name=f"replay-{self.name}", daemon=True)
        self._thread.start()
        return self._thread

    def join(self, timeout: float | None = None) -> ReplayResult | None:
        """Wait for the thread of :meth:`start` to end.

        Parameters
        ----------
        timeout : float, optional
            Longest wait, s; None waits until it ends.

        Returns
        -------
        ReplayResult or None
            How the replay ended; None while it still runs or when it failed (see
            :attr:`error`).
        """
        if self._thread is not None:
            self._thread.join(timeout)
        return self.result

    def _run_thread(self, stop: threading.Event | None, progress) -> None:
        try:
            self.run(stop, progress)
        except BaseException as exc:  # reported through .error; the thread must not die silently
            self.error = exc
            log.exception("replay '%s' failed", self.name)

    def run(self, stop: threading.Event | None = None,
            progress: Callable[[int, int | None], None] | None = None) -> ReplayResult:
        """Stream until the end (or forever with ``loop``), or until ``stop`` is set.

        Opens the outlets, waits for a consumer (with ``wait_for_consumer``), streams, then
        lingers for consumers still pulling; the outlets are closed on the way out.

        Parameters
        ----------
        stop : threading.Event, optional
            Set it to stop the replay.
        progress : callable, optional
            ``progress(samples_sent, total_or_None)``, called about 10 times a second and
            once at the end (``total_or_None`` is None with ``loop``).

        Returns
        -------
        ReplayResult
            How the replay ended.
        """
        stop = stop or threading.Event()
        try:
            self.open()
            if self.wait_for_consumer and not self._await_consumer(stop):
                return self._finish(0.0, stopped=True)
            t_start = time.perf_counter()
            stopped = self._stream(stop, progress, t_start)
            elapsed = time.perf_counter() - t_start
            if progress is not None:
                progress(self.samples_sent, None if self.loop else self.per_pass)
            if not stopped:
                self._linger(stop)
            return self._finish(elapsed, stopped)
        finally:
            self.close()
            self.finished.set()

    # -- internals ----------------------------------------------------------------------
    def _finish(self, elapsed: float, stopped: bool) -> ReplayResult:
        self.result = ReplayResult(self.samples_sent, self.markers_sent, self.samples_sent // self.per_pass,
                                   elapsed, stopped)
        return self.result

    def _await_consumer(self, stop: threading.Event) -> bool:
        assert self._outlet is not None
        log.info("replay '%s': waiting for a consumer", self.name)
        while not stop.is_set():
            if self._outlet.wait_for_consumers(0.2):
                if self._truth is not None:
                    self._truth.wait_for_consumers(0.5)  # a scorer subscribes to truth first
                return True
        return False

    def _stream(self, stop: threading.Event, progress, t_start: float) -> bool:
        assert self._outlet is not None
        src, fs = self.source, self.source.sfreq
        total = None if self.loop else self.per_pass
        rate = None if self.speed is None else fs * self.speed
        self.t0 = pylsl.local_clock() if self._t0_given is None else float(self._t0_given)
        self.started.set()
        next_epoch = 0           # next epoch (global, across passes) whose truth marker is due
        epochs_per_pass = src.n_epochs
        last_progress = 0.0
        while not stop.is_set():
            sent = self.samples_sent
            if total is not None and sent >= total:
                return False
            pos = sent % self.per_pass
            n = min(self.chunk, self.per_pass - pos, (total - sent) if total is not None else self.chunk)
            now = time.perf_counter()
            if self.consumer_position is not None and sent + n - self.consumer_position() > self.max_lead:
                time.sleep(0.002)   # the consumer is behind: let it catch up
                continue
            if rate is not None:
                due = int(rate * (now - t_start)) - sent
                if due < n:
                    time.sleep(min(max((sent + n) / rate - (now - t_start), 0.0), 0.05))
                    continue
            stamps = self.t0 + (sent + np.arange(n)) / fs
            self._outlet.push_chunk(src.data_uv[pos:pos + n], stamps.tolist())
            self.samples_sent = sent + n
            if self._truth is not None:
                next_epoch = self._push_markers(next_epoch, epochs_per_pass)
            if progress is not None and now - last_progress >= PROGRESS_EVERY_S:
                progress(self.samples_sent, total)
                last_progress = now
        return True

    def _push_markers(self, k: int, per_pass: int) -> int:
        """Truth markers for every epoch whose last sample has now been sent."""
        assert self._truth is not None and self.source.labels is not None and self.t0 is not None
        labels = self.source.labels
        while True:
            p, j = divmod(k, per_pass) if per_pass else (0, k)
            last = p * self.per_pass + self.source.epoch_last_sample(j)
            if per_pass == 0 or last >= self.samples_sent:
                return k
            if j < len(labels):
                self._truth.push_sample([stage_name(int(labels[j]))], self.t0 + last / self.source.sfreq)
                self.markers_sent += 1
            k += 1
            if not self.loop and k >= per_pass:
                return k

    def _linger(self, stop: threading.Event) -> None:
        """Keep the outlet while consumers may still be pulling what was sent."""
        assert self._outlet is not None
        deadline = time.perf_counter() + self.linger_s
        while not stop.is_set() and time.perf_counter() < deadline and self._outlet.have_consumers():
            time.sleep(0.05)
