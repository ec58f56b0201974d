"""An LSL EEG stream with an explicit lifecycle: ``connect``, ``acquire``, ``disconnect``.

:class:`EEGStream` opens an inlet on a resolved stream, picks one channel by its label
in the stream description (or by index), converts it to µV from the channel units,
detects missing samples from the timestamps, keeps a bounded ring buffer of recent
samples, and watches for stalls and loss.

Gap rule
--------
Timestamps are used only to find gaps; samples are counted, never placed by time.
Between two consecutive samples ``dt`` seconds apart, with nominal rate ``fs``, a gap
is declared when ``dt - 1/fs`` exceeds ``gap_tolerance_s`` (default 0.05 s, so the
timestamp jitter of real amplifiers is not mistaken for loss); then
``round(dt * fs) - 1`` samples are missing and are delivered as
:attr:`SampleChunk.missing_before`, which :class:`streamer.epochs.EpochAssembler` turns
into NaN samples so the preprocessor marks them missing. A gap longer than
``max_gap_fill_s`` (default 12 h, e.g. a clock jump) is filled only up to that length.
Timestamps that go backwards (a source restarted with another clock origin) cannot
measure a gap: a warning is logged and samples are counted on.
How much missing signal an epoch tolerates, and what the model's context does after a
long gap, is decided downstream: see :mod:`streamer.epochs`.

Loss and recovery
-----------------
Measured with pylsl 1.18.6: with ``recover=True``, a pull on an inlet whose outlet died
while samples were still queued blocks until an outlet with the same ``source_id``
returns (forever if it never does; ``close_stream`` does not release it), so no stall
timer could run. The inlet is therefore opened with ``recover=False``: a dead outlet
raises ``LostError`` within milliseconds, and the stream then looks for the same
``source_id`` (or name, when the stream has none) with a continuous resolver and
reopens it when it returns. The samples queued at the moment of loss are lost either
way; the jump in timestamps turns them into a gap. Independently, no sample for
``stall_timeout_s`` (default 2 s) sets :attr:`EEGStream.stalled` ("signal lost"), which
also covers a frozen outlet that never raises.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import pylsl
from pylsl.util import LostError
from pylsl.util import TimeoutError as LslTimeoutError

from sleepnet.errors import SleepstreamError
from sleepnet.io.recordings import pick_channel

from .buffer import RingBuffer
from .errors import StreamChangedError, StreamError
from .resolve import describe_stream, reopen_first

log = logging.getLogger(__name__)

DEFAULT_CHANNEL = "Fpz-Cz"
STALL_TIMEOUT_S = 2.0
GAP_TOLERANCE_S = 0.05
MAX_GAP_FILL_S = 12 * 3600.0
DEFAULT_BUFLEN_S = 360
RECENT_S = 30.0
TIME_CORRECTION_EVERY_S = 5.0
MAX_AUTO_BUFFER_SAMPLES = 8_000_000   # ~256 MB of liblsl queue; 22 h at 100 Hz

_UNIT_SCALES_TO_UV: dict[str, float] = {
    "uv": 1.0, "µv": 1.0, "microvolt": 1.0, "microvolts": 1.0,
    "mv": 1e3, "millivolt": 1e3, "millivolts": 1e3,
    "v": 1e6, "volt": 1e6, "volts": 1e6,
    "nv": 1e-3, "nanovolt": 1e-3, "nanovolts": 1e-3,
}


def unit_scale_to_uv(unit: str | None) -> float | None:
    """Factor from ``unit`` to µV, or None when the unit is not a voltage we know.

    Accepts names (``uV``, ``µV``, ``microvolts``, ``mV``, ``V``, ``volts``, ``nV``) and
    the power-of-ten codes of pylsl/MNE (``-6`` for µV, ``-3`` for mV, ``0`` for V).
    """
    if unit is None:
        return None
    u = unit.strip().lower().replace("\u03bc", "\u00b5")  # Greek mu -> micro sign
    if u in _UNIT_SCALES_TO_UV:
        return _UNIT_SCALES_TO_UV[u]
    try:
        exponent = int(u)
    except ValueError:
        return None
    return float(10.0 ** (exponent + 6))


def replay_buffer_s(info: pylsl.StreamInfo, max_samples: int = MAX_AUTO_BUFFER_SAMPLES) -> int | None:
    """Inlet buffer (s) that a replay faster than real time needs, from the
    ``replay/speed`` and ``replay/duration_s`` of its description; None for other streams.

    At "max" the producer may run through the whole recording before the scorer has
    read much of it, so the buffer covers it all; at N times real time it covers ten
    seconds of wall time (N x 10 s of signal, at least 360 s). Capped at
    ``max_samples`` queued samples (liblsl allocates the queue up front, ~32 bytes each).
    """
    rp = info.desc().child("replay")
    if rp.empty():
        return None
    try:
        duration = float(rp.child_value("duration_s"))
        speed_text = rp.child_value("speed").strip().lower()
        speed = math.inf if speed_text == "max" else float(speed_text)
    except ValueError:
        return None
    if not speed > 1.0 or not duration > 0:
        return None
    ahead = duration if math.isinf(speed) else min(duration, max(360.0, 10.0 * speed))
    cap = max_samples / max(info.nominal_srate(), 1e-9)
    if ahead + 60 > cap:
        log.warning("stream '%s' replays %.0f s at %s: more than the %.0f s an inlet buffer may hold; "
                    "samples may be dropped (they show as gaps); use a finite --speed", info.name(), duration,
                    speed_text, cap)
    return int(math.ceil(min(ahead + 60.0, cap)))


@dataclass(frozen=True)
class StreamDescription:
    """What was found when connecting.

    sfreq_hz: nominal rate. channel_index/channel_label: the channel scored.
    unit: its declared unit (None when absent). scale_to_uv: factor applied to reach µV.
    """

    name: str
    stream_type: str
    source_id: str
    hostname: str
    sfreq_hz: float
    channel_count: int
    channel_labels: tuple[str, ...]
    channel_index: int
    channel_label: str
    unit: str | None
    scale_to_uv: float


@dataclass(frozen=True)
class SampleChunk:
    """Consecutive samples of the picked channel, as pulled.

    samples_uv: (n,) float64 µV (NaN/Inf kept as sent: they mark missing samples).
    timestamps: (n,) float64 s in this machine's LSL clock (source stamps plus
    time_correction()). missing_before: samples missing between the previous chunk's
    last sample and this chunk's first (0 when none). arrival_time: local LSL clock (s)
    when the pull returned.
    """

    samples_uv: np.ndarray
    timestamps: np.ndarray
    missing_before: int
    arrival_time: float


class EEGStream:
    """One channel of an LSL stream, in µV, with gap, stall and loss handling.

    Parameters
    ----------
    info : pylsl.StreamInfo
        A resolved stream (see :func:`streamer.resolve.resolve_stream`).
    channel : str
        Channel label to score (tolerant match: case, spaces, an ``EEG`` prefix ignored).
    channel_index : int, optional
        Pick by 0-based index instead of label.
    units : str, optional
        Override the declared unit (``uV``, ``mV``, ``V``).
    max_buflen_s : int
        Inlet buffer in seconds of signal; a replay faster than real time needs it to
        cover how far the producer may run ahead of the scorer.
    stall_timeout_s : float
        No sample for this long means "signal lost".
    gap_tolerance_s : float
        Timestamp steps longer than one sample period by more than this are gaps.
    max_gap_fill_s : float
        Longest gap filled with missing samples (a longer one is cut to this).
    recent_s : float
        Length of the ring buffer of recent samples.
    auto_buffer : bool
        Enlarge the buffer for a fast replay that says so in its description
        (:func:`replay_buffer_s`).

    Attributes
    ----------
    samples_received, samples_missing : int
        Samples pulled, and samples missing (gap fills plus NaN/Inf sent).
    gaps, stalls, losses : int
        Gaps found, times the signal was lost (stall timer), times the outlet died.
    """

    def __init__(self, info: pylsl.StreamInfo, channel: str = DEFAULT_CHANNEL,
                 channel_index: int | None = None, units: str | None = None,
                 max_buflen_s: int = DEFAULT_BUFLEN_S, stall_timeout_s: float = STALL_TIMEOUT_S,
                 gap_tolerance_s: float = GAP_TOLERANCE_S, max_gap_fill_s: float = MAX_GAP_FILL_S,
                 recent_s: float = RECENT_S, auto_buffer: bool = True) -> None:
        self._resolved = info
        self.auto_buffer = auto_buffer
        self.channel = channel
        self.channel_index = channel_index
        self.units = units
        if units is not None and unit_scale_to_uv(units) is None:
            raise StreamError(f"unknown unit '{units}'; use uV, mV or V")
        self.max_buflen_s = int(max(1, round(max_buflen_s)))
        self.stall_timeout_s = float(stall_timeout_s)
        self.gap_tolerance_s = float(gap_tolerance_s)
        self.max_gap_fill_s = float(max_gap_fill_s)
        self.recent_s = float(recent_s)
        self._inlet: pylsl.StreamInlet | None = None
        self._subscribed = False
        self._desc: StreamDescription | None = None
        self._uid = ""
        self._dead_uid = ""
        self._resolver: pylsl.ContinuousResolver | None = None
        self._tc = 0.0
        self._tc_at = -np.inf
        self._last_ts: float | None = None
        self._last_arrival = 0.0
        self._stalled = False
        self._ring: RingBuffer | None = None
        self._max_pull = 4096
        self.samples_received = 0
        self.samples_missing = 0
        self.gaps = 0
        self.stalls = 0
        self.losses = 0

    # -- lifecycle --------------------------------------------------------------------
    def connect(self, timeout_s: float = 5.0, subscribe: bool = True) -> StreamDescription:
        """Open the inlet, read the full description, pick the channel, subscribe.

        With ``subscribe=False`` samples start flowing only at :meth:`subscribe` (or
        the first :meth:`acquire`): a caller with more to set up first (sinks, the
        model) then does not find the stream's first seconds, or a fast replay's whole
        night, queued in liblsl (about 80 bytes a sample) when it starts pulling.

        Raises
        ------
        StreamError
            Irregular rate, text samples, no such channel, unknown units, or no answer.
        """
        if self._inlet is not None:
            if subscribe:
                self.subscribe(timeout_s)
            return self.description
        self._open(self._resolved, timeout_s, subscribe=subscribe)
        desc = self.description
        self._ring = RingBuffer(max(1, int(round(self.recent_s * desc.sfreq_hz))))
        # Large pulls drain a backlog with little overhead per sample; a pull returns what has
        # arrived, so its size costs nothing in latency. At most ~1 MB of float32 per pull.
        self._max_pull = max(int(desc.sfreq_hz * 10), min(65536, 2**18 // max(1, desc.channel_count)))
        self._last_arrival = pylsl.local_clock()
        return desc

    def subscribe(self, timeout_s: float = 5.0) -> None:
        """Start the flow of samples (after ``connect(subscribe=False)``; else a no-op).

        Raises
        ------
        StreamError
            The stream did not answer within ``timeout_s``.
        """
        if self._inlet is None or self._subscribed:
            return
        try:
            self._inlet.open_stream(timeout=timeout_s)
        except (LslTimeoutError, LostError) as exc:
            raise StreamError(f"stream '{self.description.name}' did not answer within {timeout_s:g} s "
                              f"({exc.__class__.__name__})") from None
        self._subscribed = True
        self._last_arrival = pylsl.local_clock()

    def disconnect(self) -> None:
        """Close the inlet (safe to call twice)."""
        if self._inlet is not None:
            try:
                self._inlet.close_stream()
            except Exception:  # pragma: no cover - closing a dead inlet
                pass
        self._inlet = None
        self._subscribed = False
        self._resolver = None

    def __enter__(self) -> "EEGStream":
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    # -- state --------------------------------------------------------------------------
    @property
    def description(self) -> StreamDescription:
        if self._desc is None:
            raise RuntimeError("EEGStream.connect() first")
        return self._desc

    @property
    def connected(self) -> bool:
        """True while an inlet is open (False after loss until the outlet returns)."""
        return self._inlet is not None

    @property
    def stalled(self) -> bool:
        """No sample for ``stall_timeout_s``: the signal is lost (for now)."""
        return self._stalled

    @property
    def max_pull(self) -> int:
        """Most samples one :meth:`acquire` takes from the inlet: a pull that returns
        this many may have left more queued."""
        return self._max_pull

    def silent_s(self, now: float | None = None) -> float:
        """Seconds since the last sample arrived (or since connecting)."""
        now = pylsl.local_clock() if now is None else now
        return now - self._last_arrival

    def recent_uv(self, seconds: float | None = None) -> np.ndarray:
        """The last ``seconds`` of the channel in µV (NaN where missing), oldest first."""
        if self._ring is None:
            return np.zeros(0, dtype=np.float32)
        n = None if seconds is None else int(round(seconds * self.description.sfreq_hz))
        return self._ring.latest(n)

    # -- data ---------------------------------------------------------------------------
    def acquire(self, timeout_s: float = 0.1) -> list[SampleChunk]:
        """Pull what has arrived (waiting up to ``timeout_s`` for the first sample).

        Returns the samples split at gaps: each :class:`SampleChunk` says how many
        samples were missing before it. Returns [] while nothing arrives, while the
        stream is lost, and between the loss and the return of its outlet.
        """
        if self._desc is None:
            raise RuntimeError("EEGStream.connect() first")
        if self._inlet is None:
            self._try_reconnect()
            if self._inlet is None:
                time.sleep(timeout_s)
                self._update_stall(pylsl.local_clock())
                return []
        self.subscribe(max(2.0, timeout_s))
        try:
            data, ts = self._inlet.pull_chunk(timeout=timeout_s, max_samples=self._max_pull,
                                              min_samples=1, as_numpy=True)
        except LostError:
            self._on_lost()
            self._update_stall(pylsl.local_clock())
            return []
        arrival = pylsl.local_clock()
        if len(ts) == 0:
            self._update_stall(arrival)
            return []
        self._refresh_time_correction(arrival)
        x = np.asarray(data[:, self._desc.channel_index], dtype=np.float64)
        if self._desc.scale_to_uv != 1.0:
            x = x * self._desc.scale_to_uv
        t = np.asarray(ts, dtype=np.float64) + self._tc
        chunks = self._split_at_gaps(x, t, arrival)
        self._last_ts = float(t[-1])
        self._last_arrival = arrival
        self._update_stall(arrival)
        return chunks

    # -- internals ----------------------------------------------------------------------
    def _open(self, info: pylsl.StreamInfo, timeout_s: float, subscribe: bool = True) -> None:
        name = info.name()
        rate = info.nominal_srate()
        if rate <= 0:
            raise StreamError(f"stream '{name}' has an irregular rate; sleepstream needs a regularly "
                              "sampled EEG stream (nominal rate > 0)")
        if info.channel_format() == pylsl.cf_string:
            raise StreamError(f"stream '{name}' carries text, not signal samples")
        inlet = pylsl.StreamInlet(info, max_buflen=self.max_buflen_s, recover=False)
        try:
            full = inlet.info(timeout=timeout_s)
            desc = self._describe(full)
            if self._desc is not None:
                self._check_same_layout(desc)
            wanted = replay_buffer_s(full) if self.auto_buffer else None
            if wanted is not None and wanted > self.max_buflen_s:
                log.info("stream '%s' is a fast replay: inlet buffer %d s instead of %d s", name, wanted,
                         self.max_buflen_s)
                del inlet
                inlet = pylsl.StreamInlet(info, max_buflen=wanted, recover=False)
            self._tc = inlet.time_correction(timeout=timeout_s)   # ~0.6 s the first time: before the flow
            if subscribe:
                inlet.open_stream(timeout=timeout_s)
        except (LslTimeoutError, LostError) as exc:
            raise StreamError(f"stream '{name}' did not answer within {timeout_s:g} s "
                              f"({exc.__class__.__name__})") from None
        self._tc_at = pylsl.local_clock()
        self._inlet = inlet
        self._subscribed = subscribe
        self._uid = full.uid()
        self._desc = desc
        log.info("connected to %s; scoring channel %d '%s' (%s -> x%g to µV)", describe_stream(full),
                 desc.channel_index, desc.channel_label, desc.unit or "no unit", desc.scale_to_uv)

    def _describe(self, full: pylsl.StreamInfo) -> StreamDescription:
        name, count = full.name(), full.channel_count()
        labels = full.get_channel_labels() if count else None
        have_labels = labels is not None and any(lbl for lbl in labels)
        label_list = [lbl or "" for lbl in labels] if have_labels else [f"ch{i}" for i in range(count)]
        label_list = (label_list + [f"ch{i}" for i in range(len(label_list), count)])[:count]
        if self.channel_index is not None:
            idx = int(self.channel_index)
            if not 0 <= idx < count:
                raise StreamError(f"stream '{name}' has {count} channels; --channel-index {idx} is out of range")
        elif not have_labels:
            if count != 1:
                raise StreamError(f"stream '{name}': its {count} channels carry no labels; "
                                  "choose one with --channel-index")
            log.warning("stream '%s' has no channel label; scoring its only channel", name)
            idx = 0
        else:
            try:
                idx = pick_channel(label_list, self.channel, f"stream '{name}'")
            except SleepstreamError as exc:
                raise StreamError(str(exc)) from None
        units = full.get_channel_units()
        unit = units[idx] if units is not None and idx < len(units) else None
        if self.units is not None:
            scale = unit_scale_to_uv(self.units)
            unit = self.units
        else:
            scale = unit_scale_to_uv(unit)
            if unit is None:
                log.warning("stream '%s' declares no unit for '%s'; assuming µV (override with --units)",
                            name, label_list[idx])
                scale = 1.0
            elif scale is None:
                raise StreamError(f"stream '{name}': channel '{label_list[idx]}' has unit '{unit}', "
                                  "not a voltage; override with --units uV|mV|V")
        return StreamDescription(
            name=name, stream_type=full.type(), source_id=full.source_id(), hostname=full.hostname(),
            sfreq_hz=float(full.nominal_srate()), channel_count=count, channel_labels=tuple(label_list),
            channel_index=idx, channel_label=label_list[idx], unit=unit, scale_to_uv=float(scale))

    def _check_same_layout(self, new: StreamDescription) -> None:
        old = self._desc
        assert old is not None
        if new.sfreq_hz != old.sfreq_hz or new.scale_to_uv != old.scale_to_uv:
            raise StreamChangedError(
                f"stream '{old.name}' came back at {new.sfreq_hz:g} Hz x{new.scale_to_uv:g} µV "
                f"(was {old.sfreq_hz:g} Hz x{old.scale_to_uv:g}); restart the scorer for a new recording")

    def _refresh_time_correction(self, now: float) -> None:
        if now - self._tc_at < TIME_CORRECTION_EVERY_S or self._inlet is None:
            return
        try:
            self._tc = self._inlet.time_correction(timeout=0.1)
        except LslTimeoutError:
            pass
        except LostError:
            pass  # the next pull reports the loss
        self._tc_at = now

    def _split_at_gaps(self, x: np.ndarray, t: np.ndarray, arrival: float) -> list[SampleChunk]:
        desc = self._desc
        assert desc is not None and self._ring is not None
        fs = desc.sfreq_hz
        period = 1.0 / fs
        if self._last_ts is None:
            steps = np.concatenate([[period], np.diff(t)])
        else:
            steps = np.diff(t, prepend=self._last_ts)
        gap_at = np.flatnonzero(steps - period > self.gap_tolerance_s)
        back = np.flatnonzero(steps < -self.gap_tolerance_s)
        if len(back):
            log.warning("stream '%s': timestamps went back by %.3f s (a restarted source with another "
                        "clock?); no gap can be measured there, samples are counted on",
                        desc.name, -float(steps[back[0]]))
        bad = int(np.count_nonzero(~np.isfinite(x)))
        self.samples_received += len(x)
        self.samples_missing += bad
        gap_set = set(gap_at.tolist())
        bounds = [0, *sorted(gap_set - {0}), len(x)]
        chunks: list[SampleChunk] = []
        cap = int(round(self.max_gap_fill_s * fs))
        for a, b in zip(bounds[:-1], bounds[1:]):
            if b <= a:
                continue
            missing = 0
            if a in gap_set:
                step = float(steps[a])
                missing = max(1, int(round(step * fs)) - 1)
                if missing > cap:
                    log.warning("stream '%s': gap of %.0f s exceeds %.0f s; filling only %.0f s",
                                desc.name, step, self.max_gap_fill_s, self.max_gap_fill_s)
                    missing = cap
                self.gaps += 1
                self.samples_missing += missing
                self._ring.append_missing(missing)
                log.warning("stream '%s': %d samples (%.2f s) missing before t=%.3f; marked as a gap",
                            desc.name, missing, missing / fs, t[a])
            self._ring.append(x[a:b])
            chunks.append(SampleChunk(samples_uv=x[a:b], timestamps=t[a:b], missing_before=missing,
                                      arrival_time=arrival))
        return chunks

    def _update_stall(self, now: float) -> None:
        silent = now - self._last_arrival
        stalled = silent > self.stall_timeout_s
        name = self._desc.name if self._desc else "?"
        if stalled and not self._stalled:
            self.stalls += 1
            log.warning("stream '%s': no sample for %.1f s: signal lost; still waiting", name, silent)
        elif self._stalled and not stalled:
            log.warning("stream '%s': signal back", name)
        self._stalled = stalled

    def _on_lost(self) -> None:
        desc = self.description
        self.losses += 1
        self._dead_uid = self._uid
        self._inlet = None
        if desc.source_id:
            self._resolver = pylsl.ContinuousResolver(prop="source_id", value=desc.source_id, forget_after=2.0)
            how = f"source_id {desc.source_id!r}"
        else:
            self._resolver = pylsl.ContinuousResolver(prop="name", value=desc.name, forget_after=2.0)
            how = f"name {desc.name!r} (it has no source_id)"
        log.warning("stream '%s' lost (its outlet closed); waiting for %s to come back", desc.name, how)

    def _try_reconnect(self) -> None:
        if self._resolver is None:
            return
        info = reopen_first(self._resolver, self._dead_uid, lambda i: self._open(i, timeout_s=2.0),
                            retry_on=(StreamError,), fatal=(StreamChangedError,))
        if info is not None:
            self._resolver = None
            log.warning("stream '%s' is back (%s)", self.description.name, describe_stream(info))
