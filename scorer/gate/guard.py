"""The arousal guard: a causal detector over the newest second of µV signal.

Every ``hop_s`` (0.5 s) of new samples the guard looks at the last ``window_s`` (1 s,
Hann-windowed FFT) and measures:

* ``hf``: power 20-40 Hz (muscle and beta: the arousal's EMG and fast activity), µV²;
* ``alpha``: power 8-10.5 Hz (the arousal's alpha, below the spindle band), µV²;
* ``sigma``: power 11-16 Hz (spindles), µV², only to tell a spindle from alpha;
* ``ptp``: peak-to-peak amplitude, µV (movement artefacts, electrode pops);
* flat (standard deviation under ``flat_std_uv``) and railing (``|x|`` at or above
  ``rail_abs_uv``, or any missing sample).

Each is judged against a running baseline, the median of the last ``baseline_s`` of
calm hops: before the window opened, the last seconds of the epochs that met the rule;
while it is open, the hops since that were over no threshold. The arousal score of a hop
is the log ratio of its 20-40 Hz power over the baseline, plus ``alpha_weight`` times
that of its alpha power when alpha rose more than the spindle band (a spindle's power
leaks into 8-10.5 Hz through a 1-s window; an arousal's alpha peaks below it). Alarms:
score over ``hf_ratio`` on ``confirm_hops`` hops, or over ``sustained_ratio`` on
``sustained_hops`` consecutive hops (``arousal: hf``); peak-to-peak over ``ptp_ratio``
(``movement``); one flat, railing or missing hop. The guard is pure (no LSL, no clock):
samples in, :class:`GuardVerdict` out; a hop costs ~0.1 ms.

Why these choices (measured on simulated nights with known arousal times, issue 15):
the 20-40 Hz power of a 1-s window in simulated N2/N3 varies about 0.25 log10 units from
hop to hop, about half of it slow (the simulator's per-epoch spectral envelope steps
band powers at epoch boundaries, and its component gains wander), while a simulated
arousal raises it by a median of ~0.6 and the weakest tenth by ~0.3 or less. False closes
come mostly from that fluctuation (not from spindles, K-complexes or epoch boundaries
as such); a long baseline (60 s) lags the slow part, a short one (5 s) follows it.

The defaults (:data:`DEFAULT_THRESHOLDS`: score over ``hf_ratio`` 3.2 on one hop or over
``sustained_ratio`` 2.5 on 2 hops, against a ``baseline_s`` 5-s median; ``alpha_weight``
0; ``ptp_ratio`` 6) were chosen by ``python -m benchmarks.gate --sweep
--calibration-nights 12`` on the CALIBRATION nights (seeds 600-611, never the test
nights), in two steps: ``ptp_ratio`` first, the highest of 4, 5, 6 that closes on no
smaller a share of true movement artefacts than 4 (none of the 9 in open windows was
closed at any ratio; 4 closed 2.5 times an hour without one, about 40 % of them on a
K-complex, 6 0.1 times); then, of the arousal settings tried, the one that closes on the largest share
of arousals within 3 s while making no more false closes per hour than the previous
guard (20-40 Hz over 3x a 60-s median, ptp 4) on the same nights, ties to fewer false
closes: 88 % within 3 s at 22.9 false closes/h and 39 % coverage of stable N2/N3 there,
against 72 % at 27.4/h and 30 %. An alpha weight of 0.25 caught the same share at more
false closes; 0.5 (with ``hf_ratio`` 4) met p95 < 3 s there at 30.7/h and 21 % coverage
(``benchmarks.gate.STRICT_GUARD``). docs/benchmarks.md, "Stimulation windows", has the
test-night figures.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

HF_BAND_HZ = (20.0, 40.0)
#: Alpha below the spindle band: at Fpz-Cz slow frontal spindles (11-13 Hz) would read as alpha.
ALPHA_BAND_HZ = (8.0, 10.5)
SIGMA_BAND_HZ = (11.0, 16.0)


@dataclass(frozen=True)
class GuardThresholds:
    """When the guard raises an alarm.

    The defaults were chosen on calibration nights (see the module text).

    Parameters
    ----------
    hf_ratio : float
        The hop's arousal score (its 20-40 Hz power over the baseline median, times
        (alpha power over its baseline) ** ``alpha_weight``; a ratio of µV²) over this on
        ``confirm_hops`` consecutive hops raises ``arousal: hf``.
    alpha_ratio : float or None
        Alpha power alone over the baseline median raises ``arousal: alpha`` (None: not
        judged; off by default: alpha alone is a weak and spindle-prone sign).
    ptp_ratio : float
        Hop peak-to-peak over the baseline median raises ``movement``.
    flat_std_uv : float
        A standard deviation below this (µV) is a flat line.
    rail_abs_uv : float
        ``|x|`` at or above this (µV) is a railing amplifier.
    confirm_hops : int
        Consecutive hops over ``hf_ratio`` (or ``alpha_ratio``) that raise the alarm.
    window_s : float
        The analysis window, s.
    hop_s : float
        How often the window is judged, s.
    baseline_s : float
        Seconds of calm hops in the running baseline.
    min_baseline_hops : int
        Fewer hops than this in the baseline (or than ``baseline_s`` holds) and the guard
        judges only flat and railing signal.
    sustained_ratio : float or None
        The score over this lower ratio on ``sustained_hops`` consecutive hops raises
        ``arousal: hf`` too (None: off).
    sustained_hops : int
        Consecutive hops over ``sustained_ratio`` that raise the alarm.
    alpha_weight : float
        How much the alpha (8-10.5 Hz) rise adds to the score, 0-1 (0: 20-40 Hz only).

    Raises
    ------
    ValueError
        A ratio, level or duration that is not a positive number, an ``alpha_weight``
        outside 0-1, or a hop count under 1.
    """

    hf_ratio: float = 3.2
    alpha_ratio: float | None = None
    ptp_ratio: float = 6.0
    flat_std_uv: float = 1.0
    rail_abs_uv: float = 800.0
    confirm_hops: int = 1
    window_s: float = 1.0
    hop_s: float = 0.5
    baseline_s: float = 5.0
    min_baseline_hops: int = 10
    sustained_ratio: float | None = 2.5
    sustained_hops: int = 2
    alpha_weight: float = 0.0

    def __post_init__(self) -> None:
        for name in ("hf_ratio", "alpha_ratio", "ptp_ratio", "flat_std_uv", "rail_abs_uv", "window_s",
                     "hop_s", "baseline_s", "sustained_ratio"):
            v = getattr(self, name)
            if v is None and name in ("alpha_ratio", "sustained_ratio"):
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v <= 0:
                raise ValueError(f"{name} must be a positive number, got {v!r}")
        if not isinstance(self.alpha_weight, (int, float)) or not 0.0 <= self.alpha_weight <= 1.0:
            raise ValueError(f"alpha_weight must be within 0-1, got {self.alpha_weight!r}")
        if self.confirm_hops < 1 or self.min_baseline_hops < 1 or self.sustained_hops < 1:
            raise ValueError("confirm_hops, sustained_hops and min_baseline_hops must be at least 1")


DEFAULT_THRESHOLDS = GuardThresholds()


@dataclass(frozen=True)
class HopFeatures:
    """One judged hop.

    Parameters
    ----------
    time : float
        Data time of the hop's newest sample, s.
    log_hf : float
        log10 power 20-40 Hz, µV² (NaN with missing samples).
    log_alpha : float
        log10 power 8-10.5 Hz, µV².
    ptp_uv : float
        Peak-to-peak amplitude, µV (NaN with missing samples).
    flat : bool
        The standard deviation is under ``flat_std_uv``.
    rail : bool
        ``|x|`` reached ``rail_abs_uv``, or a sample is missing.
    log_sigma : float
        log10 power 11-16 Hz, µV².
    """

    time: float
    log_hf: float
    log_alpha: float
    ptp_uv: float
    flat: bool
    rail: bool
    log_sigma: float = float("nan")


@dataclass(frozen=True)
class GuardVerdict:
    """An alarm.

    Parameters
    ----------
    reason : str
        What was seen: ``arousal: hf``, ``arousal: alpha``, ``movement``, ``flat``,
        ``railing`` or ``missing samples``.
    time : float
        The newest judged sample's time, s (the caller's clock).
    arrival_time : float
        When that sample arrived, s (NaN when not given).
    """

    reason: str
    time: float
    arrival_time: float


def hop_features(x_uv: np.ndarray, sfreq_hz: float, t: float, th: GuardThresholds) -> HopFeatures:
    """The features of one analysis window.

    Parameters
    ----------
    x_uv : numpy.ndarray
        The window's samples, µV, oldest first (NaN where missing).
    sfreq_hz : float
        Their sampling rate, Hz (the 20-40 Hz band stops at 0.45 of it).
    t : float
        Data time of the newest sample, s.
    th : GuardThresholds
        Gives the flat and railing levels.

    Returns
    -------
    HopFeatures
        Band powers, peak-to-peak, flat and railing; a window with a missing sample is
        railing with NaN powers and peak-to-peak.
    """
    bad = ~np.isfinite(x_uv)
    if bad.any():
        return HopFeatures(t, np.nan, np.nan, np.nan, False, True, np.nan)
    x = x_uv - x_uv.mean()
    n = len(x)
    spec = np.abs(np.fft.rfft(x * np.hanning(n))) ** 2 / max(n, 1)
    f = np.fft.rfftfreq(n, 1.0 / sfreq_hz)
    hi_top = min(HF_BAND_HZ[1], 0.45 * sfreq_hz)
    hf = spec[(f >= HF_BAND_HZ[0]) & (f <= hi_top)].sum()
    al = spec[(f >= ALPHA_BAND_HZ[0]) & (f <= ALPHA_BAND_HZ[1])].sum()
    sg = spec[(f >= SIGMA_BAND_HZ[0]) & (f <= SIGMA_BAND_HZ[1])].sum()
    return HopFeatures(t, float(np.log10(hf + 1e-6)), float(np.log10(al + 1e-6)), float(np.ptp(x_uv)),
                       bool(np.std(x_uv) < th.flat_std_uv), bool(np.max(np.abs(x_uv)) >= th.rail_abs_uv),
                       float(np.log10(sg + 1e-6)))


class ArousalGuard:
    """Causal arousal and artefact detector over a stream of samples (pure).

    Parameters
    ----------
    sfreq_hz : float
        Sampling rate of the samples pushed, Hz.
    thresholds : GuardThresholds
        When to raise an alarm.
    """

    def __init__(self, sfreq_hz: float, thresholds: GuardThresholds = DEFAULT_THRESHOLDS) -> None:
        self.sfreq_hz = float(sfreq_hz)
        self.th = thresholds
        self._win = max(8, int(round(thresholds.window_s * sfreq_hz)))
        self._hop = max(1, int(round(thresholds.hop_s * sfreq_hz)))
        keep = max(1, int(round(thresholds.baseline_s / thresholds.hop_s)))
        self._x = np.zeros(0)
        self._since_hop = 0
        self._history: deque[HopFeatures] = deque(maxlen=keep)   # recent clean hops
        self._baseline: deque[HopFeatures] = deque(maxlen=keep)
        self._armed = False
        self._over = 0                 # consecutive hops over hf_ratio (or alpha_ratio)
        self._sustained = 0            # consecutive hops over sustained_ratio
        self._suspect = False          # the last hop was not calm
        self.hops: list[HopFeatures] | None = None               # set to [] to record every hop

    def __repr__(self) -> str:
        th = self.th
        sus = f" or x{th.sustained_ratio:g} on {th.sustained_hops} hops" if th.sustained_ratio is not None else ""
        return (f"<ArousalGuard {'armed' if self._armed else 'disarmed'} @ {self.sfreq_hz:g} Hz: score x{th.hf_ratio:g}"
                f"{sus}, ptp x{th.ptp_ratio:g}, {th.window_s:g}-s window every {th.hop_s:g} s>")

    @property
    def armed(self) -> bool:
        """Whether alarms are raised (a window is open)."""
        return self._armed

    def arm(self) -> None:
        """A window opens: the baseline starts from the recent clean hops."""
        self._armed = True
        self._over = self._sustained = 0
        self._baseline = deque(self._history, maxlen=self._history.maxlen)

    def disarm(self) -> None:
        """The window closed: no alarms until the next :meth:`arm`."""
        self._armed = False
        self._over = self._sustained = 0

    def reset(self) -> None:
        """Forget the signal (after a gap or a lost signal)."""
        self._x = np.zeros(0)
        self._since_hop = 0
        self._history.clear()
        self._baseline.clear()
        self._over = self._sustained = 0

    def push(self, samples_uv: np.ndarray, end_time: float, arrival_time: float = float("nan")) -> list[GuardVerdict]:
        """Feed consecutive samples and judge every hop they complete.

        Parameters
        ----------
        samples_uv : numpy.ndarray
            Consecutive samples, µV, NaN where missing.
        end_time : float
            Time of the last of them, s.
        arrival_time : float
            When they arrived, s; carried into the verdicts.

        Returns
        -------
        list of GuardVerdict
            The alarms raised, in time order (only while armed).
        """
        x = np.asarray(samples_uv, dtype=np.float64)
        out: list[GuardVerdict] = []
        n = len(x)
        pos = 0
        while pos < n:
            take = min(self._hop - self._since_hop, n - pos)
            self._x = np.concatenate([self._x, x[pos:pos + take]])[-self._win:]
            self._since_hop += take
            pos += take
            if self._since_hop >= self._hop and len(self._x) >= self._win:
                self._since_hop = 0
                t = end_time - (n - pos) / self.sfreq_hz
                v = self._judge(hop_features(self._x, self.sfreq_hz, t, self.th), arrival_time)
                if v is not None:
                    out.append(v)
            elif self._since_hop >= self._hop:
                self._since_hop = 0
        return out

    def _judge(self, h: HopFeatures, arrival_time: float) -> GuardVerdict | None:
        if self.hops is not None:
            self.hops.append(h)
        if h.rail or h.flat:
            self._over = self._sustained = 0
            reason = "flat" if h.flat else ("missing samples" if np.isnan(h.ptp_uv) else "railing")
            return GuardVerdict(reason, h.time, arrival_time) if self._armed else None
        if not self._armed:
            self._history.append(h)
            return None
        if len(self._baseline) < min(self.th.min_baseline_hops, self._baseline.maxlen or 1):
            self._baseline.append(h)
            return None
        reason = self._over_baseline(h)
        if reason is not None:
            return GuardVerdict(reason, h.time, arrival_time)
        if not self._suspect:
            self._baseline.append(h)      # only calm hops move the baseline
        return None

    def _over_baseline(self, h: HopFeatures) -> str | None:
        """The alarm this hop raises against the baseline, if any; counts consecutive
        hops over the thresholds and sets ``_suspect`` when the hop is not calm."""
        th = self.th
        b_hf = float(np.median([b.log_hf for b in self._baseline]))
        b_al = float(np.median([b.log_alpha for b in self._baseline]))
        b_pp = float(np.median([b.ptp_uv for b in self._baseline]))
        b_sg = float(np.median([b.log_sigma for b in self._baseline]))
        alpha_rise, sigma_rise = h.log_alpha - b_al, h.log_sigma - b_sg
        # alpha counts only when it rises more than the spindle band: a spindle's power
        # leaks into 8-10.5 Hz through the 1-s window, an arousal's alpha peaks below it
        score = h.log_hf - b_hf + (th.alpha_weight * alpha_rise if alpha_rise > sigma_rise else 0.0)
        over = score > np.log10(th.hf_ratio)
        sustained = th.sustained_ratio is not None and score > np.log10(th.sustained_ratio)
        alpha = th.alpha_ratio is not None and h.log_alpha - b_al > np.log10(th.alpha_ratio)
        self._over = self._over + 1 if (over or alpha) else 0
        self._sustained = self._sustained + 1 if sustained else 0
        self._suspect = over or sustained or alpha
        if h.ptp_uv > th.ptp_ratio * b_pp:
            self._suspect = True
            return "movement"
        if (over and self._over >= th.confirm_hops) or (sustained and self._sustained >= th.sustained_hops):
            return "arousal: hf"
        if alpha and self._over >= th.confirm_hops:
            return "arousal: alpha"
        return None
