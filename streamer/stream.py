"""An LSL EEG stream with an explicit lifecycle: ``connect``, ``acquire``, ``disconnect``.

:class:`EEGStream` opens an inlet on a resolved stream, picks one channel by its label
in the stream description (or by index), converts it to µV from the channel units,
detects missing samples from the timestamps, keeps a bounded ring buffer of recent
samples, and watches for stalls and loss.

Bounded input
-------------
What a stream may be is checked before any inlet is made (:func:`check_stream_info`):
a nominal rate from 50 Hz to 20 kHz (finite; irregular streams are refused), 1 to 1024
channels, samples of float32, double64 or int8/16/32/64. Anything else is a
:class:`~streamer.errors.StreamError` of one line naming the stream. Memory is then
bounded in bytes, whatever the stream: each pull takes at most ``MAX_PULL_BYTES`` (4 MiB)
of samples and timestamps, and liblsl's queue for the inlet holds at most
``MAX_INLET_BUFFER_BYTES`` (256 MiB, counted at ``LSL_SAMPLE_OVERHEAD_BYTES`` plus the
values per queued sample, as measured with pylsl 1.18.6; see :func:`inlet_buffer_s`).
When the scorer falls further behind than that queue holds, liblsl keeps the newest
samples and drops the oldest (measured); the hole shows in the timestamps and becomes a
gap by the rule below.

Gap rule
--------
Timestamps are used only to find gaps; samples are counted, never placed by time.
Between two consecutive samples ``dt`` seconds apart, with nominal rate ``fs``, a gap
is declared when ``dt - 1/fs`` exceeds ``gap_tolerance_s`` (default 0.05 s, so the
timestamp jitter of real amplifiers is not mistaken for loss); then
``round(dt * fs) - 1`` samples are missing and are delivered as
:attr:`SampleChunk.missing_before`, which :class:`streamer.epochs.EpochAssembler` turns
into NaN samples so the preprocessor marks them missing.

Timestamps that go back by more than ``gap_tolerance_s`` (a source restarted on another
clock, a clock that was set back) are a break: nothing measures how much is missing
there, so the break counts as ONE missing sample. The epoch holding it is flagged
``gap`` and, like any gap, closes a stimulation window; live equals batch scoring of
the same samples with one NaN inserted at the break, exactly as for a forward gap.
The clock is re-anchored there: later gaps are measured from the samples after it.

Missing time is filled within a budget, so a clock that lies (jumping back and forth)
cannot make the scorer produce hours of unscored epochs in a burst:

* one gap fills at most ``max_gap_fill_s`` (default 12 h);
* one pull fills at most ``fill_rate`` (default 2) x the wall time since the previous
  pull x the stream's pace (seconds of signal received per second of wall time since
  its first sample, at least 1): a real gap is silence on the wall clock too, so a gap
  of any length in a stream sent at real time or faster is filled whole;
* plus what is left of a reserve of ``fill_reserve_s`` (default 600 s), which refills
  by one second per second of signal received, for gaps that come with no silence
  before them (samples dropped from a queue, a clock stepping forward).

So the time filled is at most ``fill_rate`` x pace x wall time, plus the signal
received, plus the reserve. What the budget leaves unfilled is a shorter gap: the
epochs after it follow on (their times still come from the timestamps), and the
hypnogram's epoch count falls behind the clock by the time not filled; a warning says
how much.
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

from sleepnet.errors import SleepstreamError, parameter
from sleepnet.io.derivations import DEFAULT_CHANNEL, Derivation, resolve_derivation

from .buffer import RingBuffer
from .errors import StreamChangedError, StreamError
from .resolve import describe_stream, reopen_first

log = logging.getLogger(__name__)

STALL_TIMEOUT_S = 2.0
GAP_TOLERANCE_S = 0.05
MAX_GAP_FILL_S = 12 * 3600.0
FILL_RATE = 2.0              # s of missing signal filled per s of wall time, at the stream's pace
FILL_RESERVE_S = 600.0       # s of missing signal that may be filled with no silence before
DEFAULT_BUFLEN_S = 360
RECENT_S = 30.0
TIME_CORRECTION_EVERY_S = 5.0
MIN_RATE_HZ = 50.0
MAX_RATE_HZ = 20_000.0
MAX_CHANNELS = 1024
MAX_PULL_SAMPLES = 65536
MAX_PULL_BYTES = 4 * 2**20           # values plus timestamps taken by one pull
MAX_INLET_BUFFER_BYTES = 256 * 2**20  # liblsl's queue for the inlet, when full
LSL_SAMPLE_OVERHEAD_BYTES = 96       # per queued sample beyond its values (pylsl 1.18.6, measured)
WARN_EVERY_S = 10.0                  # at most one warning a kind in this time (a clock that lies)

#: Bytes per value of each numeric LSL channel format.
VALUE_BYTES: dict[int, int] = {pylsl.cf_float32: 4, pylsl.cf_double64: 8, pylsl.cf_int8: 1,
                               pylsl.cf_int16: 2, pylsl.cf_int32: 4, pylsl.cf_int64: 8}
_FORMAT_NAMES = {pylsl.cf_float32: "float32", pylsl.cf_double64: "double64", pylsl.cf_string: "string",
                 pylsl.cf_int8: "int8", pylsl.cf_int16: "int16", pylsl.cf_int32: "int32",
                 pylsl.cf_int64: "int64", pylsl.cf_undefined: "undefined"}

_UNIT_SCALES_TO_UV: dict[str, float] = {
    "uv": 1.0, "µv": 1.0, "microvolt": 1.0, "microvolts": 1.0,
    "mv": 1e3, "millivolt": 1e3, "millivolts": 1e3,
    "v": 1e6, "volt": 1e6, "volts": 1e6,
    "nv": 1e-3, "nanovolt": 1e-3, "nanovolts": 1e-3,
}


def unit_scale_to_uv(unit: str | None) -> float | None:
    """Factor from ``unit`` to µV, or None when the unit is not a voltage we know.

    Parameters
    ----------
    unit : str or None
        A unit name (``uV``, ``µV``, ``microvolts``, ``mV``, ``V``, ``volts``, ``nV``; case,
        surrounding spaces and a Greek mu ignored) or a power-of-ten code of pylsl/MNE
        (``-6`` for µV, ``-3`` for mV, ``0`` for V).

    Returns
    -------
    float or None
        What a value in ``unit`` is multiplied by to give µV (1e3 for mV); None for None or
        a unit that is not a voltage we know.
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


def check_stream_info(info: pylsl.StreamInfo) -> None:
    """Refuse, before any inlet is made, a stream that cannot be scored or whose
    samples could not be held in bounded memory.

    Parameters
    ----------
    info : pylsl.StreamInfo
        A resolved (or full) stream description.

    Raises
    ------
    StreamError
        One line naming the stream: a description liblsl could not read (what liblsl
        makes of a rate that is not a number, or of a channel format it does not know),
        an irregular rate, a nominal rate that is not finite or lies outside
        ``MIN_RATE_HZ``..``MAX_RATE_HZ`` (50 Hz to 20 kHz), no channel or more than
        ``MAX_CHANNELS`` (1024), or samples that are not float32, double64 or int8/16/32/64.
    """
    name = info.name()
    if name.startswith("(invalid"):
        raise StreamError(f"stream {name}: liblsl could not read its description (a nominal rate that is not "
                          "a number, or a channel format it does not know?); fix the stream's outlet")
    rate = info.nominal_srate()
    if rate == pylsl.IRREGULAR_RATE:
        raise StreamError(f"stream '{name}' has an irregular rate; sleepstream needs a regularly "
                          "sampled EEG stream (nominal rate > 0)")
    if not (math.isfinite(rate) and MIN_RATE_HZ <= rate <= MAX_RATE_HZ):
        raise StreamError(f"stream '{name}' has a nominal rate of {rate:g} Hz; sleepstream scores EEG sampled "
                          f"at {MIN_RATE_HZ:g} Hz to {MAX_RATE_HZ / 1000:g} kHz")
    count = info.channel_count()
    if not 1 <= count <= MAX_CHANNELS:
        raise StreamError(f"stream '{name}' has {count} channels; sleepstream reads streams of 1 to "
                          f"{MAX_CHANNELS} channels")
    fmt = info.channel_format()
    if fmt == pylsl.cf_string:
        raise StreamError(f"stream '{name}' carries text, not signal samples")
    if fmt not in VALUE_BYTES:
        raise StreamError(f"stream '{name}' has channel format {_FORMAT_NAMES.get(fmt, str(fmt))}; sleepstream "
                          "reads float32, double64 and int8/16/32/64 samples")


def queued_sample_bytes(info: pylsl.StreamInfo) -> int:
    """Bytes one sample of ``info`` costs in liblsl's inlet queue.

    Parameters
    ----------
    info : pylsl.StreamInfo
        The stream's description (channel count and format).

    Returns
    -------
    int
        Its values (``VALUE_BYTES`` of the format, 8 when unknown, x channels) plus
        ``LSL_SAMPLE_OVERHEAD_BYTES`` (slot, header and allocation; measured with pylsl
        1.18.6 at 100 B a sample for one float32 channel, 350-410 B for 64).
    """
    return LSL_SAMPLE_OVERHEAD_BYTES + max(1, info.channel_count()) * VALUE_BYTES.get(info.channel_format(), 8)


def inlet_buffer_s(info: pylsl.StreamInfo, wanted_s: float, max_bytes: int = MAX_INLET_BUFFER_BYTES) -> int:
    """The inlet buffer (whole seconds, liblsl's unit, at least 1) to ask for.

    liblsl sizes the queue as seconds x nominal rate samples and allocates its slots up
    front (~16-32 bytes each); each queued sample then costs :func:`queued_sample_bytes`.
    When the queue is full liblsl drops the OLDEST sample for each new one (measured
    with pylsl 1.18.6): a scorer that falls behind by more than the buffer loses the
    oldest part of what waits, keeps the newest, and the hole becomes a gap. One second
    at the largest stream accepted (20 kHz x 1024 double64 channels) is ~170 MB, so the
    bound always leaves at least one second.

    Parameters
    ----------
    info : pylsl.StreamInfo
        The stream's description (nominal rate, channel count and format).
    wanted_s : float
        The buffer wanted, s of signal.
    max_bytes : int
        Most bytes liblsl's queue may hold when full (default ``MAX_INLET_BUFFER_BYTES``,
        256 MiB).

    Returns
    -------
    int
        ``wanted_s``, or fewer seconds so that the full queue holds at most ``max_bytes``;
        at least 1. ``wanted_s`` as it is (whole, at least 1) for a rate that is not finite
        and positive.
    """
    rate = info.nominal_srate()
    if not (math.isfinite(rate) and rate > 0):
        return max(1, int(wanted_s))
    cap = max_bytes / (rate * queued_sample_bytes(info))
    return max(1, int(min(float(wanted_s), cap)))


def replay_speed(info: pylsl.StreamInfo) -> tuple[float, float] | None:
    """The speed and length of a sleepstream replay, from its description.

    Parameters
    ----------
    info : pylsl.StreamInfo
        A full stream description (an inlet's ``info()``).

    Returns
    -------
    tuple of (float, float) or None
        ``(speed, duration_s)`` from its ``replay/speed`` and ``replay/duration_s`` (speed
        ``max`` is infinite); None for other streams or values that are not numbers.
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
    return speed, duration


def replay_buffer_s(info: pylsl.StreamInfo, max_bytes: int = MAX_INLET_BUFFER_BYTES) -> int | None:
    """Inlet buffer (s) that a replay faster than real time needs, from the
    ``replay/speed`` and ``replay/duration_s`` of its description; None for other streams.

    At "max" the producer may run through the whole recording before the scorer has
    read much of it, so the buffer covers it all; at N times real time it covers ten
    seconds of wall time (N x 10 s of signal, at least 360 s). Capped so that liblsl's
    queue, full, holds at most ``max_bytes`` (see :func:`inlet_buffer_s`).

    Parameters
    ----------
    info : pylsl.StreamInfo
        A full stream description (an inlet's ``info()``).
    max_bytes : int
        Most bytes liblsl's queue may hold when full.

    Returns
    -------
    int or None
        The buffer to ask for, s (what is covered plus 60 s, capped; a warning is logged
        when the cap cuts it); None for a stream that is not a replay, or one at real
        time or slower.
    """
    found = replay_speed(info)
    if found is None:
        return None
    speed, duration = found
    if not speed > 1.0 or not duration > 0:
        return None
    ahead = duration if math.isinf(speed) else min(duration, max(360.0, 10.0 * speed))
    wanted = int(math.ceil(ahead + 60.0))
    got = inlet_buffer_s(info, wanted, max_bytes)
    if got < wanted:
        log.warning("stream '%s' replays %.0f s at %s: more than the %d s an inlet buffer of %d MiB may hold; "
                    "if the scorer falls that far behind, the oldest samples are dropped (they show as gaps); "
                    "use a finite --speed", info.name(), duration, "max" if math.isinf(speed) else f"{speed:g}",
                    got, max_bytes // 2**20)
    return got


@dataclass(frozen=True)
class StreamDescription:
    """What was found when connecting.

    Parameters
    ----------
    name, stream_type, source_id, hostname : str
        The stream's name, content type, source identifier (empty when none) and host.
    sfreq_hz : float
        Nominal rate, Hz.
    channel_count : int
        Channels in the stream.
    channel_labels : tuple of str
        Their labels (``ch<i>`` where the stream gives none).
    channel_index : int
        The channel scored (0-based; the first of a derivation's).
    channel_label : str
        Its label, or the derivation's name.
    unit : str or None
        Its declared unit (or the ``units`` override); None when absent.
    scale_to_uv : float
        Factor applied to reach µV.
    derivation : sleepnet.io.derivations.Derivation, optional
        The channels and weights the scored signal is computed from, sample by sample
        (:class:`sleepnet.io.derivations.Derivation`; one channel as it is, or ``F4-M1``).
    normalisation : str, optional
        ``normalisation/kind`` of the description (``per-epoch-zscore``: not µV but each
        30-s epoch z-scored), None when absent.
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
    derivation: Derivation | None = None
    normalisation: str | None = None


@dataclass(frozen=True)
class SampleChunk:
    """Consecutive samples of the picked channel, as pulled: :meth:`EEGStream.acquire` splits
    what arrived at gaps into these, :meth:`streamer.epochs.EpochAssembler.push` takes them.

    Parameters
    ----------
    samples_uv : numpy.ndarray
        (n,) float64 µV (NaN/Inf kept as sent: they mark missing samples).
    timestamps : numpy.ndarray
        (n,) float64 s in this machine's LSL clock (source stamps plus time_correction()).
    missing_before : int
        Samples missing between the previous chunk's last sample and this chunk's first
        (0 when none; 1 for a break, where the timestamps went back: see the module's gap
        rule).
    arrival_time : float
        Local LSL clock (s) when the pull returned.
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
        cover how far the producer may run ahead of the scorer. Fewer seconds are asked
        for where liblsl's queue would hold more than ``MAX_INLET_BUFFER_BYTES``
        (:func:`inlet_buffer_s`).
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
    fill_rate : float
        Missing time filled per second of wall time between pulls, at the stream's pace.
    fill_reserve_s : float
        Missing time that may be filled with no silence before it; refills by one second
        per second of signal received (the module's gap rule).

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
                 recent_s: float = RECENT_S, auto_buffer: bool = True, fill_rate: float = FILL_RATE,
                 fill_reserve_s: float = FILL_RESERVE_S) -> None:
        self._resolved = info
        self.auto_buffer = auto_buffer
        self.channel = channel
        self.channel_index = channel_index
        self.units = units
        if units is not None and unit_scale_to_uv(units) is None:
            raise StreamError(f"{parameter('units')}={units!r}: use uV, mV or V")
        self.max_buflen_s = int(max(1, round(max_buflen_s)))
        self.stall_timeout_s = float(stall_timeout_s)
        self.gap_tolerance_s = float(gap_tolerance_s)
        self.max_gap_fill_s = float(max_gap_fill_s)
        self.fill_rate = float(fill_rate)
        self.fill_reserve_s = float(fill_reserve_s)
        self._reserve_s = self.fill_reserve_s
        self._first_arrival: float | None = None
        self._warned_at: dict[str, tuple[float, int]] = {}
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
        self._disconnected = False

    def __repr__(self) -> str:
        d = self._desc
        if d is None:
            try:
                name, rate = self._resolved.name(), f"{self._resolved.nominal_srate():g} Hz"
            except Exception:  # pragma: no cover - a description liblsl cannot read
                name, rate = "?", "? Hz"
            channel = f"#{self.channel_index}" if self.channel_index is not None else self.channel
            return f"<EEGStream '{name}' @ {rate}, channel {channel}, not connected>"
        unit = d.unit or "no unit"
        if d.scale_to_uv != 1.0:
            unit += f", x{d.scale_to_uv:g} to µV"
        if self._disconnected:
            state = "disconnected"
        elif self._inlet is None:
            state = "lost, waiting for it to return"
        else:
            state = "stalled" if self._stalled else "connected"
        return (f"<EEGStream '{d.name}' @ {d.sfreq_hz:g} Hz, channel {d.channel_label} ({unit}), {state}, "
                f"{self.samples_received} samples>")

    # -- lifecycle --------------------------------------------------------------------
    def connect(self, timeout_s: float = 5.0, subscribe: bool = True) -> StreamDescription:
        """Open the inlet, read the full description, pick the channel, subscribe.

        With ``subscribe=False`` samples start flowing only at :meth:`subscribe` (or
        the first :meth:`acquire`): a caller with more to set up first (sinks, the
        model) then does not find the stream's first seconds, or a fast replay's whole
        night, queued in liblsl (:func:`queued_sample_bytes` a sample) when it starts pulling.

        Parameters
        ----------
        timeout_s : float
            How long to wait for the outlet's description and answer, s.
        subscribe : bool
            Start the flow of samples now (default); False to start it later.

        Returns
        -------
        StreamDescription
            What was found: rate, channel picked, unit and scale to µV. Connecting again
            while connected returns it unchanged (and subscribes when asked).

        Raises
        ------
        StreamError
            A stream refused by :func:`check_stream_info` (rate, channels, sample
            format), no such channel, unknown units, or no answer.
        """
        if self._inlet is not None:
            if subscribe:
                self.subscribe(timeout_s)
            return self.description
        self._open(self._resolved, timeout_s, subscribe=subscribe)
        self._disconnected = False
        desc = self.description
        self._ring = RingBuffer(max(1, int(round(self.recent_s * desc.sfreq_hz))))
        # Large pulls drain a backlog with little overhead per sample; a pull returns what has
        # arrived, so its size costs nothing in latency. Bounded in bytes: pylsl allocates
        # max_pull x (channels x value + 8-byte timestamp) for each pull.
        per_sample = desc.channel_count * VALUE_BYTES.get(self._resolved.channel_format(), 8) + 8
        self._max_pull = max(1, min(MAX_PULL_SAMPLES, MAX_PULL_BYTES // per_sample))
        self._last_arrival = pylsl.local_clock()
        return desc

    def subscribe(self, timeout_s: float = 5.0) -> None:
        """Start the flow of samples (after ``connect(subscribe=False)``; else a no-op).

        An outlet that does not answer within ``timeout_s`` is not an error: liblsl goes on
        subscribing in the background, and the outlet may count this inlet as its consumer
        the moment it answers (a replay then starts sending). Giving the inlet up would lose
        what is sent to it; so it is kept, a warning says so, and the samples arrive when the
        outlet answers (until then the stream is silent, and :attr:`stalled` says so as for
        any silent stream).

        Parameters
        ----------
        timeout_s : float
            How long to wait for the outlet to answer before going on without its answer, s.

        Raises
        ------
        StreamError
            The outlet is gone (liblsl's ``LostError``).
        """
        if self._inlet is None or self._subscribed:
            return
        try:
            self._inlet.open_stream(timeout=timeout_s)
        except LslTimeoutError:
            log.warning("stream '%s' did not answer within %g s of subscribing; still waiting for it (its "
                        "samples come when it answers)", self.description.name, timeout_s)
        except LostError:
            raise StreamError(f"stream '{self.description.name}' is gone (LostError while subscribing)") from None
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
        self._disconnected = True

    def __enter__(self) -> EEGStream:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    # -- state --------------------------------------------------------------------------
    @property
    def description(self) -> StreamDescription:
        """What :meth:`connect` found (a :class:`StreamDescription`); RuntimeError before it."""
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
        """Seconds since the last sample arrived (or since connecting).

        Parameters
        ----------
        now : float, optional
            Local LSL clock (s) to measure at; default ``pylsl.local_clock()``.

        Returns
        -------
        float
            Seconds of silence.
        """
        now = pylsl.local_clock() if now is None else now
        return now - self._last_arrival

    def recent_uv(self, seconds: float | None = None) -> np.ndarray:
        """The last ``seconds`` of the channel in µV (NaN where missing), oldest first.

        Parameters
        ----------
        seconds : float, optional
            How much, s (at most ``recent_s`` is held); None for all held.

        Returns
        -------
        numpy.ndarray
            float32 µV, oldest first; empty before :meth:`connect`.
        """
        if self._ring is None:
            return np.zeros(0, dtype=np.float32)
        n = None if seconds is None else int(round(seconds * self.description.sfreq_hz))
        return self._ring.latest(n)

    # -- data ---------------------------------------------------------------------------
    def acquire(self, timeout_s: float = 0.1) -> list[SampleChunk]:
        """Pull what has arrived (waiting up to ``timeout_s`` for the first sample).

        While the stream is lost, each call looks once for its outlet to return (and
        otherwise waits ``timeout_s``). Updates the stall state and the counters.

        Parameters
        ----------
        timeout_s : float
            Longest wait for a first sample, s; while the stream is lost and its outlet has
            not returned, the time slept instead.

        Returns
        -------
        list of SampleChunk
            The samples split at gaps: each :class:`SampleChunk` says how many samples
            were missing before it. [] while nothing arrives, while the stream is lost,
            and between the loss and the return of its outlet.

        Raises
        ------
        StreamChangedError
            The stream came back at another rate or scale to µV.
        StreamError
            The stream was gone when subscribing.
        RuntimeError
            Called before :meth:`connect`.
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
        x = self._desc.derivation.apply(data)       # one channel, or a derivation: float64
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
        check_stream_info(info)                # before liblsl allocates anything for it
        buflen = inlet_buffer_s(info, self.max_buflen_s)
        if buflen < self.max_buflen_s:
            log.warning("stream '%s' (%g Hz x %d channels): inlet buffer %d s instead of %d s, the most that "
                        "fits %d MiB; if the scorer falls further behind, the oldest samples are dropped and "
                        "show as a gap", name, info.nominal_srate(), info.channel_count(), buflen,
                        self.max_buflen_s, MAX_INLET_BUFFER_BYTES // 2**20)
        inlet = pylsl.StreamInlet(info, max_buflen=buflen, recover=False)
        try:
            full = inlet.info(timeout=timeout_s)
            check_stream_info(full)
            desc = self._describe(full)
            if self._desc is not None:
                self._check_same_layout(desc)
            wanted = replay_buffer_s(full) if self.auto_buffer else None
            if wanted is not None and wanted > buflen:
                log.info("stream '%s' is a fast replay: inlet buffer %d s instead of %d s", name, wanted, buflen)
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
        deriv: Derivation | None = None
        if self.channel_index is not None:
            idx = int(self.channel_index)
            if not 0 <= idx < count:
                raise StreamError(f"{parameter('channel_index')}={idx} is out of range: stream '{name}' has "
                                  f"{count} channels")
        elif not have_labels:
            if count != 1:
                raise StreamError(f"stream '{name}': its {count} channels carry no labels; "
                                  f"choose one with {parameter('channel_index')}")
            log.warning("stream '%s' has no channel label; scoring its only channel", name)
            idx = 0
        else:
            try:
                deriv = resolve_derivation(label_list, self.channel, f"stream '{name}'")
            except SleepstreamError as exc:
                raise StreamError(str(exc)) from None
            idx = deriv.indices[0]
        deriv = deriv if deriv is not None else Derivation((idx,), (1.0,), label_list[idx], (label_list[idx],))
        units = full.get_channel_units()
        found = [units[i] if units is not None and i < len(units) else None for i in deriv.indices]
        if len(set(found)) > 1:
            raise StreamError(f"stream '{name}': the channels of '{deriv.name}' differ in unit "
                              f"({', '.join(f'{lb}: {u}' for lb, u in zip(deriv.labels, found))})")
        unit = found[0]
        normalisation = full.desc().child("normalisation").child_value("kind") or None
        if self.units is not None:
            scale = unit_scale_to_uv(self.units)
            unit = self.units
        else:
            scale = unit_scale_to_uv(unit)
            if unit is None:
                log.warning("stream '%s' declares no unit for '%s'; assuming µV (override with --units)",
                            name, label_list[idx])
                scale = 1.0
            elif scale is None and normalisation:
                scale = 1.0            # per-epoch normalised values: no voltage to convert
            elif scale is None:
                raise StreamError(f"stream '{name}': channel '{label_list[idx]}' has unit '{unit}', "
                                  f"not a voltage; override with {parameter('units')}=uV|mV|V")
        return StreamDescription(
            name=name, stream_type=full.type(), source_id=full.source_id(), hostname=full.hostname(),
            sfreq_hz=float(full.nominal_srate()), channel_count=count, channel_labels=tuple(label_list),
            channel_index=idx, channel_label=deriv.name, unit=unit, scale_to_uv=float(scale),
            derivation=deriv, normalisation=normalisation)

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
        back_at = np.flatnonzero(steps < -self.gap_tolerance_s)
        bad = int(np.count_nonzero(~np.isfinite(x)))
        self.samples_received += len(x)
        self.samples_missing += bad
        breaks = set(gap_at.tolist()) | set(back_at.tolist())
        bounds = [0, *sorted(breaks - {0}), len(x)]
        chunks: list[SampleChunk] = []
        credit_s = self._fill_credit_s(arrival)
        for a, b in zip(bounds[:-1], bounds[1:]):
            if b <= a:
                continue
            missing = 0
            if a in breaks:
                step = float(steps[a])
                if step < 0:
                    missing = 1        # a break: nothing measures what is missing there
                    self._warn("back", "stream '%s': timestamps went back by %.3f s at t=%.3f (a restarted "
                               "source, a clock set back): a break, counted as one missing sample; later "
                               "gaps are measured from here", desc.name, -step, float(t[a]))
                else:
                    missing = max(1, int(round(step * fs)) - 1)
                    allowed = int(min(self.max_gap_fill_s, credit_s + self._reserve_s) * fs)
                    if missing > allowed:
                        self._warn("cut", "stream '%s': gap of %.0f s at t=%.3f filled with only %.0f s (%s); "
                                   "the epochs after it follow on", desc.name, missing / fs, float(t[a]),
                                   max(1, allowed) / fs,
                                   f"at most {self.max_gap_fill_s:.0f} s a gap" if allowed >= self.max_gap_fill_s * fs
                                   else "the fill budget of the gap rule: timestamps jumping?")
                        missing = max(1, allowed)
                    used_s = missing / fs
                    take = min(credit_s, used_s)
                    credit_s -= take
                    self._reserve_s = max(0.0, self._reserve_s - (used_s - take))
                    self._warn("gap", "stream '%s': %d samples (%.2f s) missing before t=%.3f; marked as a gap",
                               desc.name, missing, missing / fs, float(t[a]))
                self.gaps += 1
                self.samples_missing += missing
                self._ring.append_missing(missing)
            self._ring.append(x[a:b])
            chunks.append(SampleChunk(samples_uv=x[a:b], timestamps=t[a:b], missing_before=missing,
                                      arrival_time=arrival))
        self._reserve_s = min(self.fill_reserve_s, self._reserve_s + len(x) / fs)
        return chunks

    def _fill_credit_s(self, arrival: float) -> float:
        """Missing time this pull may fill beyond the reserve: ``fill_rate`` x the wall
        time since the previous pull x the stream's pace (signal seconds received per
        wall second since the first sample, at least 1)."""
        if self._first_arrival is None:
            self._first_arrival = arrival
        fs = self.description.sfreq_hz
        elapsed = max(1.0, arrival - self._first_arrival)
        pace = max(1.0, self.samples_received / fs / elapsed)
        return self.fill_rate * pace * max(0.0, arrival - self._last_arrival)

    def _warn(self, kind: str, msg: str, *args: object) -> None:
        """Log a warning of ``kind`` at most once per ``WARN_EVERY_S`` of wall time (a
        clock that lies would otherwise log at every pull); says how many were held back."""
        now = time.monotonic()
        last, held = self._warned_at.get(kind, (-math.inf, 0))
        if now - last < WARN_EVERY_S:
            self._warned_at[kind] = (last, held + 1)
            return
        if held:
            msg += f" ({held} more like it in the last {now - last:.0f} s)"
        log.warning(msg, *args)
        self._warned_at[kind] = (now, 0)

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
