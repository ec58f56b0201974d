"""Simulated single-channel Fpz-Cz sleep EEG with its hypnogram.

A night is built in four steps:

1. **Stages.** A stage sequence from :mod:`sleepnet.hypnogram_model` (a cycle-aware
   semi-Markov model fitted to real Sleep-EDF hypnograms), with stage changes moved off
   the 30-s grid (the label of an epoch is the stage covering most of it).
2. **Control traces** on a 0.25-s grid: stage weights cross-faded over a few seconds, a
   slowly wandering (Ornstein-Uhlenbeck, tau ~40 s) log-gain per component, arousals
   (3-15 s of alpha, beta and muscle inside sleep, not long enough to change the label),
   and the fall of slow-wave amplitude across the night.
3. **Signal** = sum of components, each a unit process times its gain trace:

   * aperiodic background: 1/f^chi processes (chi = 1.5 and 2.5 above a 1-Hz knee, chi = 3
     above a 4-Hz knee) whose mix sets the stage's spectral level and slope, and a
     sub-0.5 Hz drift;
   * narrow-band rhythms (Gaussian spectral peaks): slow waves (0.5-2 Hz, centre ~0.9 Hz;
     a Gaussian narrow-band process has Rayleigh-distributed amplitude, so N3 gets
     > 75 µV peak-to-peak waves over a calibrated share of its time), theta (4-8 Hz),
     alpha at the subject's alpha frequency, beta (15-30 Hz), muscle (EMG, > 20 Hz),
     slow rolling eye movements (0.2-0.6 Hz);
   * events with their own waveforms and per-stage rates: spindles (11-16 Hz, 0.5-2 s,
     Hann-shaped), K-complexes (sharp negative then slower positive wave, ~1 s, often
     followed by a spindle), vertex sharp waves (< 0.5 s), blinks (monophasic, 0.2-0.4 s,
     large at Fpz), rapid eye movements (sharp rise, ~0.5 s decay, in bursts) preceded by
     sawtooth-wave trains (2-5 Hz triangular waves), movement artefacts, electrode pops;
   * the amplifier's white noise floor and, above 100 Hz sampling, 50 Hz mains.

4. **Spectral envelope** (:mod:`sleepnet.spectral_envelope`): per epoch, target band
   PSDs (delta, theta, alpha, beta, gamma) and variance are drawn from a per-stage model
   of real nights (Gaussian mixture, trend across the night, between-night offsets,
   epoch-to-epoch persistence) and imposed by rescaling six frequency bands with gains
   cross-faded at epoch boundaries. The phenomena keep their waveforms; the envelope
   makes their mix vary from epoch to epoch as real nights do.

Per-stage gains (µV) and variabilities are calibrated so that the nine Fpz-Cz base
features (:func:`sleepnet.features.base_features`) of simulated epochs match real
Sleep-EDF nights, and the envelope model is fitted to the same nights; both live in
``simulation_params.json`` beside this module, written by ``python -m sleepnet.calibrate``.
Subjects differ in alpha and spindle frequency, the mix of slow waves, eye movements and
muscle, noise floor and electrode quality (:func:`random_subject`); with the envelope on,
each night's overall level and spectral balance come from the envelope's between-night
offset (sd of log variance 0.31, i.e. amplitude within about x0.7-1.4 for 95 % of nights,
as between the real calibration nights), which normalises ``SubjectParams.amplitude`` away.

Everything is vectorised: an 8-h night at 100 Hz takes a few seconds on one core.
The same seed gives the same night, bit for bit.
"""
from __future__ import annotations

import functools
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import fft as sfft
from scipy import signal

from .hypnogram_model import Bouts, HypnogramModel, epochs_to_bouts, generate_bouts
from .spectral_envelope import SpectralEnvelopeModel, draw_targets, impose_envelope
from .stages import EDF_STAGE_TEXTS, EPOCH_S, N_STAGES, STAGES, edf_stage_annotations

log = logging.getLogger(__name__)

PARAMS_PATH = Path(__file__).with_name("simulation_params.json")
CHANNEL = "Fpz-Cz"
DEMO_HOURS = 8.0
DEMO_SEED = 20240611
DEMO_SFREQ = 100.0

CTRL_DT_S = 0.25          # control grid step, s
CROSSFADE_S = 6.0         # width of the stage cross-fade, s
JITTER_TAU_S = 40.0       # time constant of the per-component gain wander, s
REF_BAND_HZ = 50.0        # unit processes have 1 µV rms in 0-50 Hz at any sampling rate

#: Continuous components: a unit-rms process each, scaled by a per-stage gain (µV rms).
CONTINUOUS = ("pink", "steep", "mid", "drift", "slow", "theta", "alpha", "beta", "emg", "sem")
#: Event components: per-stage rate (per minute, fixed by physiology) and amplitude (µV).
EVENTS = ("spindle", "kcomplex", "vertex", "blink", "rem", "sawtooth", "movement")
COMPONENTS = CONTINUOUS + EVENTS

#: Event rates per minute of each stage (W, N1, N2, N3, REM): physiology, not fitted.
#: Spindles 2-7/min in N2, fewer in N3; K-complexes 1-3/min in N2; vertex waves in N1;
#: blinks in wake (15-20/min with eyes open); bursts of saccades in REM and, more often,
#: in wake, where looking around moves the eyes every second or two (the Fpz-Cz of real
#: Sleep-EDF wake is full of them); sawtooth trains precede part of the REM bursts;
#: movement artefacts mostly in wake.
EVENT_RATES_PER_MIN: dict[str, tuple[float, float, float, float, float]] = {
    "spindle": (0.0, 0.3, 4.5, 1.5, 0.0),
    "kcomplex": (0.0, 0.1, 1.5, 0.6, 0.0),
    "vertex": (0.0, 2.0, 0.3, 0.0, 0.1),
    "blink": (15.0, 0.5, 0.0, 0.0, 0.0),
    "rem": (10.0, 0.2, 0.0, 0.0, 2.5),
    "sawtooth": (0.0, 0.0, 0.0, 0.0, 1.2),
    "movement": (0.25, 0.05, 0.02, 0.0, 0.02),
}
#: How a unit of each stage's within-stage "state" wander moves each component's log gain:
#: W relaxed (eyes closed: alpha up, eye and muscle activity down) vs active; N1 deeper
#: drowsiness (alpha dropping out, theta, slow eye movements and vertex waves up); N2/N3
#: depth (more slow waves and K-complexes, less fast activity, alpha and muscle tone);
#: REM phasic (bursts of eye movements and sawtooth waves) vs tonic.
STATE_LOADINGS: dict[str, dict[str, float]] = {
    "W": {"alpha": 1.2, "theta": 0.2, "blink": -1.0, "rem": -1.0, "emg": -0.8, "sem": -0.5, "movement": -1.0,
          "beta": -0.3},
    "N1": {"alpha": -1.0, "theta": 0.5, "sem": 0.6, "vertex": 0.6, "emg": -0.4},
    "N2": {"slow": 1.0, "steep": 0.4, "kcomplex": 0.5, "spindle": 0.2,
           "pink": -0.3, "theta": -0.2, "alpha": -0.7, "beta": -1.0, "emg": -1.0},
    "N3": {"slow": 1.0, "steep": 0.4, "kcomplex": 0.5, "spindle": 0.2,
           "pink": -0.3, "theta": -0.2, "alpha": -0.7, "beta": -1.0, "emg": -1.0},
    "REM": {"rem": 1.0, "sawtooth": 1.0, "theta": 0.3, "alpha": -0.3, "emg": 0.3},
}
#: Bounds on the slow-wave gain's wander (multiples of the stage's calibrated gain), so
#: that labels obey the scoring rule: an N2 epoch never gathers the slow waves that would
#: make it N3, and an N3 epoch never loses them.
SLOW_WANDER_BOUNDS: tuple[tuple[float, float], ...] = ((0.0, 1e3), (0.0, 1e3), (0.0, 1.5), (0.7, 1e3), (0.0, 1e3))
#: Slow waves come in trains: their amplitude wanders fast (tau SLOW_TRAIN_TAU_S) with this
#: log-sd, at constant mean power.
SLOW_TRAIN_SD = 0.5
SLOW_TRAIN_TAU_S = 4.0
#: Arousals per hour of each stage (brief; the label does not change).
AROUSALS_PER_H = (0.0, 6.0, 6.0, 2.0, 6.0)
#: Gain multipliers during an arousal, per continuous component.
AROUSAL_GAIN = {"alpha": 3.0, "beta": 2.0, "emg": 4.0, "slow": 0.4, "theta": 1.3}


@dataclass(frozen=True)
class SubjectParams:
    """What makes one simulated person differ from another.

    amplitude: overall scale of the recorded signal, brain and eyes and muscle alike
        (x0.5-2, 1 = calibrated median); without effect when the parameters carry a
        spectral envelope, which sets each epoch's band powers itself.
    alpha_hz: alpha peak frequency, Hz (8.5-11.5).
    spindle_hz: spindle frequency at Fpz, Hz (11-14; frontal spindles are slow).
    slow_wave_scale: slow-wave amplitude relative to the median (falls with age).
    noise_uv_per_sqrt_hz: amplifier/electrode white-noise density, µV/sqrt(Hz).
    electrode_quality: 0-1 (1 = perfect): worse electrodes drift more and pop.
    eye_scale: how strongly eye movements reach Fpz (electrode position, anatomy).
    emg_scale: muscle tone pickup.
    """

    amplitude: float = 1.0
    alpha_hz: float = 10.0
    spindle_hz: float = 12.5
    slow_wave_scale: float = 1.0
    noise_uv_per_sqrt_hz: float = 0.04
    electrode_quality: float = 0.8
    eye_scale: float = 1.0
    emg_scale: float = 1.0


@dataclass(frozen=True)
class SimulatedNight:
    """A simulated recording: one Fpz-Cz channel and its hypnogram.

    eeg_uv: (n_samples,) float32 signal in µV.
    sfreq: sampling rate, Hz.
    labels: (n_epochs,) int8 stage code per 30-s epoch from the start (the stage covering
        most of the epoch).
    subject: the simulated person.
    seed: the seed that reproduces this night.
    stage_changes_s: (n_bouts,) start time of each stage bout, s (off the epoch grid).
    channel: channel label.
    """

    eeg_uv: np.ndarray
    sfreq: float
    labels: np.ndarray
    subject: SubjectParams
    seed: int
    stage_changes_s: np.ndarray
    channel: str = CHANNEL

    @property
    def n_epochs(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class StageSignalParams:
    """Calibrated per-stage signal parameters (arrays indexed by stage 0..4).

    gains_uv: (5, n_components) µV: rms of continuous components, peak amplitude of events.
    sigma_common: (5,) sd of a log-gain wander shared by all components.
    sigma_indep: (5,) sd of each component's own log-gain wander.
    sigma_depth: (5,) sd of the within-stage state wander (relaxation in W, drowsiness in
        N1, depth in N2/N3, phasic activity in REM; loadings STATE_LOADINGS).
    sigma_eye: (5,) extra sd of the eye/muscle/movement log gains (wake behaviour).
    slow_wave_decay_per_h: fall of slow-wave log amplitude per hour since sleep onset.
    """

    gains_uv: np.ndarray
    sigma_common: np.ndarray
    sigma_indep: np.ndarray
    sigma_depth: np.ndarray
    sigma_eye: np.ndarray
    slow_wave_decay_per_h: float = 0.06

    def to_dict(self) -> dict:
        return {
            "gains_uv": {STAGES[s]: {c: round(float(self.gains_uv[s, i]), 4) for i, c in enumerate(COMPONENTS)}
                         for s in range(N_STAGES)},
            "sigma_common": dict(zip(STAGES, np.round(self.sigma_common, 4).tolist())),
            "sigma_indep": dict(zip(STAGES, np.round(self.sigma_indep, 4).tolist())),
            "sigma_depth": dict(zip(STAGES, np.round(self.sigma_depth, 4).tolist())),
            "sigma_eye": dict(zip(STAGES, np.round(self.sigma_eye, 4).tolist())),
            "slow_wave_decay_per_h": self.slow_wave_decay_per_h,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "StageSignalParams":
        g = np.array([[float(d["gains_uv"][s].get(c, 0.0)) for c in COMPONENTS] for s in STAGES])

        def per_stage(key: str) -> np.ndarray:
            return np.array([float(d[key][s]) for s in STAGES])

        return cls(gains_uv=g, sigma_common=per_stage("sigma_common"), sigma_indep=per_stage("sigma_indep"),
                   sigma_depth=per_stage("sigma_depth"), sigma_eye=per_stage("sigma_eye"),
                   slow_wave_decay_per_h=float(d.get("slow_wave_decay_per_h", 0.06)))


@dataclass(frozen=True)
class SubjectDistribution:
    """How subjects vary: log-normal amplitude (sd of ln, clipped to x0.5-2) and ranges."""

    amplitude_log_sd: float = 0.2
    alpha_hz: tuple[float, float] = (8.5, 11.5)
    spindle_hz: tuple[float, float] = (11.5, 13.5)
    slow_wave_log_sd: float = 0.15
    noise_uv_per_sqrt_hz: tuple[float, float] = (0.01, 0.08)
    electrode_quality: tuple[float, float] = (0.4, 1.0)
    eye_log_sd: float = 0.25
    emg_log_sd: float = 0.25

    @classmethod
    def from_dict(cls, d: dict) -> "SubjectDistribution":
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()}
        return cls(**kw)


@dataclass(frozen=True)
class SimulationParams:
    """Everything :func:`simulate_night` needs: the hypnogram model, the per-stage signal
    parameters and the subject distribution (loaded from ``simulation_params.json``)."""

    hypnogram: HypnogramModel
    stages: StageSignalParams
    subjects: SubjectDistribution
    source: str = ""
    envelope: SpectralEnvelopeModel | None = None


# Physiological starting values (µV), used before calibration and as the calibration's
# prior: continuous components as rms, events as peak amplitude.
DEFAULT_GAINS_UV: dict[str, dict[str, float]] = {
    "W": {"mid": 2.0, "pink": 4.0, "steep": 6.0, "drift": 8.0, "slow": 0.0, "theta": 3.0, "alpha": 6.0, "beta": 2.0,
          "emg": 3.0, "sem": 10.0, "blink": 120.0, "rem": 60.0, "movement": 150.0},
    "N1": {"mid": 2.0, "pink": 3.0, "steep": 5.0, "drift": 6.0, "slow": 2.0, "theta": 4.0, "alpha": 2.0, "beta": 1.0,
           "emg": 1.0, "sem": 8.0, "vertex": 60.0, "spindle": 15.0, "kcomplex": 80.0, "blink": 60.0,
           "rem": 40.0, "movement": 100.0},
    "N2": {"mid": 3.0, "pink": 3.0, "steep": 7.0, "drift": 6.0, "slow": 8.0, "theta": 4.0, "alpha": 1.0, "beta": 1.0,
           "emg": 0.6, "sem": 2.0, "spindle": 20.0, "kcomplex": 100.0, "vertex": 50.0, "movement": 100.0},
    "N3": {"mid": 4.0, "pink": 3.0, "steep": 8.0, "drift": 6.0, "slow": 25.0, "theta": 5.0, "alpha": 1.0, "beta": 0.8,
           "emg": 0.5, "sem": 1.0, "spindle": 15.0, "kcomplex": 120.0},
    "REM": {"mid": 2.0, "pink": 3.0, "steep": 5.0, "drift": 6.0, "slow": 1.0, "theta": 4.0, "alpha": 1.5, "beta": 1.0,
            "emg": 0.4, "sem": 2.0, "rem": 60.0, "sawtooth": 25.0, "vertex": 40.0, "movement": 100.0},
}


def default_stage_params() -> StageSignalParams:
    g = np.array([[DEFAULT_GAINS_UV[s].get(c, 0.0) for c in COMPONENTS] for s in STAGES])
    return StageSignalParams(
        gains_uv=g,
        sigma_common=np.full(N_STAGES, 0.25), sigma_indep=np.full(N_STAGES, 0.2),
        sigma_depth=np.array([0.5, 0.3, 0.5, 0.3, 0.3]), sigma_eye=np.array([0.6, 0.3, 0.2, 0.2, 0.3]),
    )


@functools.lru_cache(maxsize=4)
def load_params(path: str | None = None) -> SimulationParams:
    """The committed simulation parameters (``simulation_params.json``)."""
    p = Path(path) if path else PARAMS_PATH
    with open(p, encoding="utf-8") as fh:
        d = json.load(fh)
    return SimulationParams(
        hypnogram=HypnogramModel.from_dict(d["hypnogram_model"]),
        stages=StageSignalParams.from_dict(d["stage_signal"]),
        subjects=SubjectDistribution.from_dict(d.get("subject_distribution", {})),
        source=str(d.get("source", "")),
        envelope=(SpectralEnvelopeModel.from_dict(d["spectral_envelope"]) if d.get("spectral_envelope") else None),
    )


# --------------------------------------------------------------------------- subjects

def random_subject(rng: np.random.Generator | int | None = None,
                   distribution: SubjectDistribution | None = None) -> SubjectParams:
    """Draw a simulated person (see :class:`SubjectParams`); ``rng`` may be a seed."""
    rng = np.random.default_rng(rng)
    dist = distribution or load_params().subjects
    u = rng.uniform
    return SubjectParams(
        amplitude=float(np.clip(np.exp(rng.normal(0.0, dist.amplitude_log_sd)), 0.5, 2.0)),
        alpha_hz=float(u(*dist.alpha_hz)),
        spindle_hz=float(u(*dist.spindle_hz)),
        slow_wave_scale=float(np.clip(np.exp(rng.normal(0.0, dist.slow_wave_log_sd)), 0.5, 2.0)),
        noise_uv_per_sqrt_hz=float(u(*dist.noise_uv_per_sqrt_hz)),
        electrode_quality=float(u(*dist.electrode_quality)),
        eye_scale=float(np.clip(np.exp(rng.normal(0.0, dist.eye_log_sd)), 0.4, 2.5)),
        emg_scale=float(np.clip(np.exp(rng.normal(0.0, dist.emg_log_sd)), 0.4, 2.5)),
    )


# --------------------------------------------------------------------------- unit processes

def _shape(name: str, f: np.ndarray, subject: SubjectParams) -> np.ndarray:
    """Amplitude spectrum |K(f)| (unnormalised) of a continuous component."""
    f = np.asarray(f, dtype=np.float64)
    hp = lambda fc, order=2: (f / fc) ** order / np.sqrt(1.0 + (f / fc) ** (2 * order))  # noqa: E731
    gauss = lambda f0, sd: np.exp(-0.5 * ((f - f0) / sd) ** 2)  # noqa: E731
    if name == "pink":
        return hp(0.3) / (f ** 2 + 1.0) ** 0.375
    if name == "steep":
        return hp(0.3) / (f ** 2 + 1.0) ** 0.625
    if name == "mid":
        return hp(0.5) / (1.0 + (f / 4.0) ** 2) ** 1.5
    if name == "drift":
        return hp(0.12) * gauss(0.0, 0.35)
    if name == "slow":
        return gauss(1.0, 0.55) * hp(0.45, 3)
    if name == "theta":
        return gauss(5.8, 1.1)
    if name == "alpha":
        return gauss(subject.alpha_hz, 0.55)
    if name == "beta":
        return hp(13.0, 4) / (1.0 + (f / 15.0) ** 2)
    if name == "emg":
        return hp(18.0, 3) / np.sqrt(1.0 + (f / 45.0) ** 6)
    if name == "sem":
        return gauss(0.35, 0.12) * hp(0.12, 2)
    raise ValueError(name)


def _unit_process(name: str, n: int, sfreq: float, subject: SubjectParams,
                  rng: np.random.Generator) -> np.ndarray:
    """A Gaussian process with spectrum shape ``_shape(name)`` and 1 µV rms in 0-50 Hz."""
    n_f = n // 2 + 1
    f = np.arange(n_f) * (sfreq / n)
    k = _shape(name, f, subject)
    fine = np.linspace(0.0, REF_BAND_HZ, 20001)
    ref_var = np.trapezoid(_shape(name, fine, subject) ** 2, fine)
    # White N(0,1) at sfreq has a one-sided PSD of 2/sfreq: scale so that the PSD is
    # K(f)^2 / ref_var in µV²/Hz, independent of sfreq.
    h = k * np.sqrt(sfreq / 2.0 / ref_var)
    z = rng.standard_normal(2 * n_f, dtype=np.float32)
    spec = (z[0::2] + 1j * z[1::2]) * (h * np.sqrt(n / 2.0)).astype(np.float32)
    spec[0] = 0.0
    return sfft.irfft(spec, n).astype(np.float32)


# --------------------------------------------------------------------------- control traces

@dataclass(frozen=True)
class _Control:
    t_s: np.ndarray            # (m,) control times, s
    weights: np.ndarray        # (m, 5) cross-faded stage weights
    arousal: np.ndarray        # (m,) 0..1 arousal envelope
    hours_asleep: np.ndarray   # (m,) hours since sleep onset (0 before)


def _control(bouts: Bouts, rng: np.random.Generator, hours_offset: float = 0.0) -> _Control:
    dur = bouts.duration_s
    m = int(np.ceil(dur / CTRL_DT_S)) + 1
    t = np.arange(m) * CTRL_DT_S
    idx = np.clip(np.searchsorted(bouts.start_s, t, side="right") - 1, 0, len(bouts.stages) - 1)
    stage = bouts.stages[idx]
    onehot = np.zeros((m, N_STAGES))
    onehot[np.arange(m), stage] = 1.0
    width = max(int(round(CROSSFADE_S / CTRL_DT_S)), 1)
    weights = _moving_average(onehot, width)
    # Arousals: Poisson in sleep, 3-15 s each, smooth on/off.
    rate = weights @ np.asarray(AROUSALS_PER_H) / 3600.0 * CTRL_DT_S
    starts = np.flatnonzero(rng.random(m) < rate)
    arousal = np.zeros(m)
    lengths = np.round(rng.uniform(3.0, 15.0, len(starts)) / CTRL_DT_S).astype(int)
    for s0, ln in zip(starts, lengths):  # tens per night
        arousal[s0: s0 + ln] = 1.0
    arousal = _moving_average(arousal[:, None], 4)[:, 0]
    sleep_start = bouts.start_s[np.argmax(bouts.stages > 0)] if np.any(bouts.stages > 0) else dur
    hours = np.clip((t - sleep_start) / 3600.0 + hours_offset, 0.0, None)
    return _Control(t_s=t, weights=weights, arousal=arousal, hours_asleep=hours)


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average along axis 0 (edges use the available samples)."""
    if width <= 1:
        return x.astype(np.float64)
    c = np.cumsum(np.vstack([np.zeros((1, x.shape[1])), x]), axis=0)
    n = len(x)
    lo = np.clip(np.arange(n) - width // 2, 0, n)
    hi = np.clip(np.arange(n) + (width - width // 2), 0, n)
    return (c[hi] - c[lo]) / (hi - lo)[:, None]


def _ou(m: int, rng: np.random.Generator, n_series: int, tau_s: float = JITTER_TAU_S) -> np.ndarray:
    """(m, n_series) unit-variance Ornstein-Uhlenbeck paths on the control grid."""
    a = np.exp(-CTRL_DT_S / tau_s)
    e = rng.standard_normal((m, n_series)) * np.sqrt(1.0 - a * a)
    e[0] = rng.standard_normal(n_series)
    return signal.lfilter([1.0], [1.0, -a], e, axis=0)


def _gain_traces(ctrl: _Control, sp: StageSignalParams, subject: SubjectParams,
                 rng: np.random.Generator, jitter: bool = True) -> np.ndarray:
    """(m, n_components) gains on the control grid (µV), including subject scaling,
    wander, arousals and the slow-wave decline across the night."""
    w = ctrl.weights
    g = w @ sp.gains_uv
    ci = COMPONENTS.index
    train = _ou(len(ctrl.t_s), rng, 1, SLOW_TRAIN_TAU_S)[:, 0]
    g[:, ci("slow")] *= np.exp(SLOW_TRAIN_SD * train - SLOW_TRAIN_SD ** 2)
    if jitter:
        m = len(ctrl.t_s)
        z = _ou(m, rng, len(COMPONENTS) + 1)
        logj = (w @ sp.sigma_common)[:, None] * z[:, :1] + (w @ sp.sigma_indep)[:, None] * z[:, 1:]
        loadings = np.array([[STATE_LOADINGS[s].get(c, 0.0) for c in COMPONENTS] for s in STAGES])
        logj += (w @ (sp.sigma_depth[:, None] * loadings)) * z[:, 1 + ci("slow"), None]
        for name in ("sem", "blink", "rem", "emg", "movement"):
            logj[:, ci(name)] += (w @ sp.sigma_eye) * z[:, 1 + ci(name)]
        jit = np.exp(logj)
        bounds = np.asarray(SLOW_WANDER_BOUNDS)
        jit[:, ci("slow")] = np.clip(jit[:, ci("slow")], w @ bounds[:, 0], w @ bounds[:, 1])
        g = g * jit
    for name, factor in AROUSAL_GAIN.items():
        g[:, ci(name)] *= 1.0 + (factor - 1.0) * ctrl.arousal
    g[:, ci("slow")] *= subject.slow_wave_scale * np.exp(-sp.slow_wave_decay_per_h * (ctrl.hours_asleep - 2.0))
    g[:, ci("kcomplex")] *= subject.slow_wave_scale
    for name in ("sem", "blink", "rem"):
        g[:, ci(name)] *= subject.eye_scale
    g[:, ci("emg")] *= subject.emg_scale
    drift = 1.0 + 2.0 * (1.0 - subject.electrode_quality)
    g[:, ci("drift")] *= drift
    g *= subject.amplitude  # the whole recording: skull, electrodes, amplifier gain
    return g


# --------------------------------------------------------------------------- events

def _event_times(ctrl: _Control, rate_per_min: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Event onsets (s) of a Poisson process whose rate follows the stage weights."""
    lam = ctrl.weights @ rate_per_min / 60.0 * CTRL_DT_S
    counts = rng.poisson(lam)
    bins = np.repeat(np.arange(len(lam)), counts)
    return ctrl.t_s[bins] + rng.uniform(0.0, CTRL_DT_S, len(bins))


def _scatter(out: np.ndarray, onsets_s: np.ndarray, waves: np.ndarray, sfreq: float) -> None:
    """Add (n_events, L) waveforms at their onsets into ``out`` (in place)."""
    if len(onsets_s) == 0:
        return
    n = len(out)
    start = np.round(onsets_s * sfreq).astype(np.int64)
    idx = start[:, None] + np.arange(waves.shape[1])[None, :]
    ok = (idx >= 0) & (idx < n) & (waves != 0)
    out += np.bincount(idx[ok], weights=waves[ok], minlength=n)[:n].astype(out.dtype)


def _gain_at(ctrl: _Control, gains: np.ndarray, comp: str, times_s: np.ndarray) -> np.ndarray:
    j = np.clip(np.round(times_s / CTRL_DT_S).astype(np.int64), 0, len(ctrl.t_s) - 1)
    return gains[j, COMPONENTS.index(comp)]


def _spindles(times: np.ndarray, amp: np.ndarray, sfreq: float, subject: SubjectParams,
              rng: np.random.Generator) -> np.ndarray:
    n_ev = len(times)
    dur = rng.uniform(0.5, 2.0, n_ev)
    L = int(np.ceil(2.0 * sfreq)) + 1
    tt = np.arange(L) / sfreq
    f0 = np.clip(subject.spindle_hz + rng.normal(0.0, 0.4, n_ev), 11.0, 16.0)
    chirp = -0.3  # Hz/s: spindles slow slightly as they go
    phase = 2 * np.pi * (f0[:, None] * tt + 0.5 * chirp * tt ** 2) + rng.uniform(0, 2 * np.pi, n_ev)[:, None]
    x = np.clip(tt[None, :] / dur[:, None], 0.0, 1.0)
    env = np.where(tt[None, :] < dur[:, None], np.sin(np.pi * x) ** 2, 0.0)
    return amp[:, None] * env * np.sin(phase)


def _kcomplexes(times: np.ndarray, amp: np.ndarray, sfreq: float, rng: np.random.Generator) -> np.ndarray:
    """Peak-to-peak ``amp``: a sharp negative wave (~0.3 s) then a slower positive one."""
    n_ev = len(times)
    L = int(np.ceil(1.6 * sfreq))
    tt = np.arange(L) / sfreq
    t1 = rng.uniform(0.18, 0.28, n_ev)[:, None]   # negative peak time
    w1 = rng.uniform(0.07, 0.10, n_ev)[:, None]
    t2 = t1 + rng.uniform(0.35, 0.55, n_ev)[:, None]
    w2 = rng.uniform(0.15, 0.22, n_ev)[:, None]
    wave = -np.exp(-0.5 * ((tt - t1) / w1) ** 2) + 0.55 * np.exp(-0.5 * ((tt - t2) / w2) ** 2)
    return amp[:, None] * wave / 1.55


def _transients(times: np.ndarray, amp: np.ndarray, sfreq: float, rng: np.random.Generator,
                width_s: tuple[float, float], sign: float) -> np.ndarray:
    """Monophasic Hann-shaped deflections (vertex waves: sign +1 at Fpz-Cz since Cz is
    the negative input; blinks: +1)."""
    n_ev = len(times)
    dur = rng.uniform(*width_s, n_ev)
    L = int(np.ceil(width_s[1] * sfreq)) + 1
    tt = np.arange(L) / sfreq
    x = np.clip(tt[None, :] / dur[:, None], 0.0, 1.0)
    env = np.where(tt[None, :] < dur[:, None], np.sin(np.pi * x) ** 2, 0.0)
    return sign * amp[:, None] * env


def _saccades(times: np.ndarray, amp: np.ndarray, sfreq: float, rng: np.random.Generator) -> np.ndarray:
    """Rapid eye movements: conjugate, sharply peaked (rise ~40 ms, AC-coupled decay)."""
    n_ev = len(times)
    L = int(np.ceil(2.0 * sfreq))
    tt = np.arange(L) / sfreq
    rise = rng.uniform(0.03, 0.06, n_ev)[:, None]
    decay = rng.uniform(0.3, 0.7, n_ev)[:, None]
    sign = rng.choice([-1.0, 1.0], n_ev)[:, None]
    wave = (1.0 - np.exp(-tt / rise)) * np.exp(-tt / decay)
    return sign * amp[:, None] * wave / wave.max(axis=1, keepdims=True)


def _sawtooth_trains(times: np.ndarray, amp: np.ndarray, sfreq: float, rng: np.random.Generator) -> np.ndarray:
    """Trains of 2-5 Hz triangular waves (slow rise, sharp fall), 1-3 s, tapered."""
    n_ev = len(times)
    L = int(np.ceil(3.0 * sfreq))
    tt = np.arange(L) / sfreq
    f0 = rng.uniform(2.0, 5.0, n_ev)[:, None]
    dur = rng.uniform(1.0, 3.0, n_ev)[:, None]
    saw = signal.sawtooth(2 * np.pi * f0 * tt[None, :] + rng.uniform(0, 2 * np.pi, (n_ev, 1)), width=0.8)
    x = np.clip(tt[None, :] / dur, 0.0, 1.0)
    env = np.where(tt[None, :] < dur, np.sin(np.pi * x) ** 0.5, 0.0)
    return amp[:, None] * env * saw


def _movements(times: np.ndarray, amp: np.ndarray, sfreq: float, rng: np.random.Generator) -> np.ndarray:
    """Movement artefacts: 2-8 s of large, irregular low-frequency swings."""
    n_ev = len(times)
    L = int(np.ceil(8.0 * sfreq))
    tt = np.arange(L) / sfreq
    dur = rng.uniform(2.0, 8.0, n_ev)[:, None]
    k = 4
    fr = rng.uniform(0.3, 2.5, (n_ev, k))
    ph = rng.uniform(0, 2 * np.pi, (n_ev, k))
    wave = np.sin(2 * np.pi * fr[:, :, None] * tt[None, None, :] + ph[:, :, None]).sum(axis=1) / 2.0
    x = np.clip(tt[None, :] / dur, 0.0, 1.0)
    env = np.where(tt[None, :] < dur, np.sin(np.pi * x), 0.0)
    return amp[:, None] * env * wave


def _add_events(out: np.ndarray, ctrl: _Control, gains: np.ndarray, sfreq: float,
                subject: SubjectParams, rng: np.random.Generator,
                only: str | None = None) -> None:
    """All event components into ``out`` (or just ``only``)."""
    rates = {k: np.asarray(v, dtype=np.float64) for k, v in EVENT_RATES_PER_MIN.items()}

    def amps(comp: str, times: np.ndarray, sd: float = 0.25) -> np.ndarray:
        return _gain_at(ctrl, gains, comp, times) * np.exp(rng.normal(0.0, sd, len(times)))

    want = (lambda c: only is None or only == c)
    # Spindles (some right after K-complexes).
    kc_t = _event_times(ctrl, rates["kcomplex"], rng)
    sp_t = _event_times(ctrl, rates["spindle"], rng)
    follow = kc_t[rng.random(len(kc_t)) < 0.4]
    follow = follow + rng.uniform(0.5, 1.0, len(follow))
    sp_all = np.concatenate([sp_t, follow])
    sp_amp = amps("spindle", sp_all)
    sp_wave = _spindles(sp_all, sp_amp, sfreq, subject, rng)
    if want("spindle"):
        _scatter(out, sp_all, sp_wave, sfreq)
    kc_wave = _kcomplexes(kc_t, amps("kcomplex", kc_t), sfreq, rng)
    if want("kcomplex"):
        _scatter(out, kc_t, kc_wave, sfreq)
    vx_t = _event_times(ctrl, rates["vertex"], rng)
    vx_wave = _transients(vx_t, amps("vertex", vx_t), sfreq, rng, (0.15, 0.4), +1.0)
    if want("vertex"):
        _scatter(out, vx_t, vx_wave, sfreq)
    bl_t = _event_times(ctrl, rates["blink"], rng)
    bl_wave = _transients(bl_t, amps("blink", bl_t, 0.35), sfreq, rng, (0.2, 0.4), +1.0)
    if want("blink"):
        _scatter(out, bl_t, bl_wave, sfreq)
    # REM bursts: 1-5 saccades 0.3-1 s apart; part of them preceded by a sawtooth train.
    burst_t = _event_times(ctrl, rates["rem"], rng)
    n_in = 1 + rng.poisson(1.5, len(burst_t))
    first = np.repeat(burst_t, n_in)
    within = np.concatenate([np.cumsum(rng.uniform(0.3, 1.0, k)) - 0.3 for k in n_in]) if len(n_in) else np.zeros(0)
    rem_t = first + within
    rem_wave = _saccades(rem_t, amps("rem", rem_t, 0.35), sfreq, rng)
    if want("rem"):
        _scatter(out, rem_t, rem_wave, sfreq)
    saw_rate = rates["sawtooth"]
    st_t = _event_times(ctrl, saw_rate * 0.5, rng)
    pre = burst_t[rng.random(len(burst_t)) < 0.5]
    pre = pre[_gain_at(ctrl, gains, "sawtooth", pre) > 0]
    pre = pre - rng.uniform(1.0, 3.0, len(pre))
    st_all = np.concatenate([st_t, pre])
    st_wave = _sawtooth_trains(st_all, amps("sawtooth", st_all), sfreq, rng)
    if want("sawtooth"):
        _scatter(out, st_all, st_wave, sfreq)
    mv_t = _event_times(ctrl, rates["movement"], rng)
    mv_wave = _movements(mv_t, amps("movement", mv_t, 0.4), sfreq, rng)
    if want("movement"):
        _scatter(out, mv_t, mv_wave, sfreq)


def _electrode(out: np.ndarray, duration_s: float, sfreq: float, subject: SubjectParams,
               rng: np.random.Generator) -> None:
    """Amplifier noise floor, electrode pops and (above 100 Hz sampling) 50 Hz mains."""
    n = len(out)
    out += rng.standard_normal(n, dtype=np.float32) * np.float32(subject.noise_uv_per_sqrt_hz * np.sqrt(sfreq / 2.0))
    pops_per_h = 6.0 * (1.0 - subject.electrode_quality) ** 2
    n_pops = rng.poisson(pops_per_h * duration_s / 3600.0)
    if n_pops:
        t = rng.uniform(0, duration_s, n_pops)
        L = int(3.0 * sfreq)
        tt = np.arange(L) / sfreq
        wave = rng.choice([-1.0, 1.0], n_pops)[:, None] * rng.uniform(50, 200, n_pops)[:, None] * np.exp(-tt / 0.6)
        _scatter(out, t, wave, sfreq)
    if sfreq > 110.0:
        mains = 0.5 + 3.0 * (1.0 - subject.electrode_quality)
        out += (mains * np.sin(2 * np.pi * 50.0 * np.arange(n) / sfreq + rng.uniform(0, 2 * np.pi))).astype(np.float32)


# --------------------------------------------------------------------------- synthesis

def synthesise(bouts: Bouts, sfreq: float, subject: SubjectParams, stage_params: StageSignalParams,
               rng: np.random.Generator, component: str | None = None, jitter: bool = True,
               hours_offset: float = 0.0) -> np.ndarray:
    """The Fpz-Cz signal (µV, float32) for the given bouts.

    ``component`` keeps only one component (a name of COMPONENTS, or "electrode" for
    the noise floor, pops and mains), ``hours_offset`` says how long the sleeper has
    already slept when the bouts begin (slow waves fade across the night), and ``jitter=False``
    removes the gain wander: the calibration uses these to measure each component's
    contribution at unit gain.
    """
    duration = bouts.duration_s
    n = int(round(duration * sfreq))
    ctrl = _control(bouts, rng, hours_offset)
    gains = _gain_traces(ctrl, stage_params, subject, rng, jitter=jitter)
    t = np.arange(n) / sfreq
    out = np.zeros(n, dtype=np.float32)
    for name in CONTINUOUS:
        col = gains[:, COMPONENTS.index(name)]
        proc_rng = np.random.default_rng(rng.integers(2 ** 63))
        if component is not None and component != name:
            continue
        if not np.any(col > 0):
            continue
        g = np.interp(t, ctrl.t_s, col)
        out += (_unit_process(name, n, sfreq, subject, proc_rng) * g).astype(np.float32)
    ev_rng = np.random.default_rng(rng.integers(2 ** 63))
    if component is None or component in EVENTS:
        _add_events(out, ctrl, gains, sfreq, subject, ev_rng, only=component)
    el_rng = np.random.default_rng(rng.integers(2 ** 63))
    if component is None or component == "electrode":
        _electrode(out, duration, sfreq, subject, el_rng)
    return out


def _with_envelope(eeg_uv: np.ndarray, sfreq: float, labels: np.ndarray, params: SimulationParams,
                   rng: np.random.Generator) -> np.ndarray:
    """Impose the night's spectral envelope (:mod:`sleepnet.spectral_envelope`) when the
    parameters have one; its random draws come from a fourth child of the night's seed."""
    if params.envelope is None or len(labels) == 0:
        return eeg_uv
    env_rng = np.random.default_rng(rng.spawn(1)[0])
    return impose_envelope(eeg_uv, sfreq, draw_targets(params.envelope, labels, env_rng))


def simulate_night(hours: float, seed: int, sfreq: float = 100.0, subject: SubjectParams | None = None,
                   params: SimulationParams | None = None) -> SimulatedNight:
    """Simulate one night of ``hours`` in bed (from lights off) at ``sfreq`` Hz.

    The hypnogram, the subject (unless given) and the signal all follow from ``seed``.
    The signal is synthesised at ``sfreq`` itself (components are defined in Hz), not
    resampled. Returns a :class:`SimulatedNight` with one label per complete 30-s epoch.
    """
    if not np.isfinite(hours) or hours <= 0:
        raise ValueError(f"hours must be positive, got {hours}")
    if not np.isfinite(sfreq) or sfreq < 50.0:
        raise ValueError(f"sfreq must be at least 50 Hz, got {sfreq}")
    params = params or load_params()
    rng = np.random.default_rng([int(seed), 0x51EE9])
    subj_rng, hyp_rng, sig_rng = (np.random.default_rng(s) for s in rng.spawn(3))
    if subject is None:
        subject = random_subject(subj_rng, params.subjects)
    bouts = generate_bouts(params.hypnogram, hours, hyp_rng)
    eeg = synthesise(bouts, sfreq, subject, params.stages, sig_rng)
    n_epochs = int(len(eeg) // round(sfreq * EPOCH_S))
    eeg = _with_envelope(eeg, sfreq, bouts.labels[:n_epochs], params, rng)
    return SimulatedNight(eeg_uv=eeg, sfreq=float(sfreq), labels=bouts.labels[:n_epochs].astype(np.int8),
                          subject=subject, seed=int(seed), stage_changes_s=bouts.start_s.copy())


def simulate_hypnogram(labels: np.ndarray, seed: int, sfreq: float = 100.0, subject: SubjectParams | None = None,
                       params: SimulationParams | None = None) -> SimulatedNight:
    """Synthesise the signal for a given hypnogram (stage codes 0..4 per 30-s epoch, e.g.
    a real night's), with stage changes moved off the epoch grid as in
    :func:`simulate_night`. Deterministic for ``seed``."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) == 0 or labels.min() < 0 or labels.max() >= N_STAGES:
        raise ValueError("labels must be a non-empty 1-D array of stage codes 0..4")
    params = params or load_params()
    rng = np.random.default_rng([int(seed), 0x51EE9, 1])
    subj_rng, bout_rng, sig_rng = (np.random.default_rng(s) for s in rng.spawn(3))
    if subject is None:
        subject = random_subject(subj_rng, params.subjects)
    bouts = epochs_to_bouts(labels.astype(np.int8), bout_rng)
    eeg = synthesise(bouts, sfreq, subject, params.stages, sig_rng)
    eeg = _with_envelope(eeg, sfreq, bouts.labels, params, rng)
    return SimulatedNight(eeg_uv=eeg, sfreq=float(sfreq), labels=bouts.labels.astype(np.int8),
                          subject=subject, seed=int(seed), stage_changes_s=bouts.start_s.copy())


def simulate_subjects(n: int, hours: float, seed: int, sfreq: float = 100.0,
                      params: SimulationParams | None = None) -> list[SimulatedNight]:
    """``n`` nights of ``n`` different simulated people; night ``i`` uses seed
    ``seed * 1000 + i`` so each is reproducible on its own."""
    return [simulate_night(hours, seed * 1000 + i, sfreq, None, params) for i in range(n)]


def subject_as_dict(subject: SubjectParams) -> dict[str, float]:
    return {k: round(float(v), 4) for k, v in asdict(subject).items()}


def ensure_demo_recording(path: Path | None = None) -> Path:
    """The `make demo` recording: an 8-h simulated night with labels at 100 Hz, fixed
    seed, in our continuous npz format. Generated on first use if the file is missing.

    ``path`` defaults to ``demo-night.npz`` in :func:`sleepnet.user_dirs.data_dir`
    (``$SLEEPSTREAM_DATA_DIR``, else the user cache folder), never next to the code.
    """
    from .readers import write_continuous_npz
    from .user_dirs import demo_recording_path

    path = Path(path) if path is not None else demo_recording_path()
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    night = simulate_night(DEMO_HOURS, DEMO_SEED, DEMO_SFREQ)
    tmp = path.with_name(path.stem + ".tmp.npz")
    write_continuous_npz(tmp, night.eeg_uv, night.sfreq, night.labels, night.channel)
    tmp.replace(path)
    log.info("wrote the demo recording %s (%d epochs)", path, night.n_epochs)
    return path


__all__ = [
    "SubjectParams", "SimulatedNight", "SimulationParams", "StageSignalParams", "SubjectDistribution",
    "simulate_night", "simulate_subjects", "simulate_hypnogram", "random_subject", "ensure_demo_recording", "load_params",
    "synthesise", "default_stage_params", "write_night_edf", "EDF_STAGE_TEXT",
]


# --------------------------------------------------------------------------- EDF+ output

#: EDF+ annotation text per stage code 0..4 (the one table: sleepnet.stages.EDF_STAGE_TEXTS).
EDF_STAGE_TEXT = tuple(EDF_STAGE_TEXTS[k] for k in range(N_STAGES))


def write_night_edf(path: str | Path, night: SimulatedNight) -> None:
    """Write a simulated night as EDF+: one ``EEG Fpz-Cz`` signal in µV and the hypnogram
    as annotations (one per run of equal 30-s labels, :data:`sleepnet.stages.EDF_STAGE_TEXTS`), readable by MNE
    and :func:`sleepnet.hypnogram.read_hypnogram`."""
    from edfio import Edf, EdfAnnotation, EdfSignal

    x = np.asarray(night.eeg_uv, dtype=np.float64)
    n_rec = int(np.ceil(len(x) / night.sfreq))
    n_full = int(round(n_rec * night.sfreq))
    if n_full > len(x):  # whole 1-s data records
        x = np.concatenate([x, np.zeros(n_full - len(x))])
    lim = float(np.ceil(np.max(np.abs(x)) * 1.05 + 1.0))
    sig = EdfSignal(x, night.sfreq, label=f"EEG {night.channel}", physical_dimension="uV",
                    physical_range=(-lim, lim), transducer_type="simulated",
                    prefiltering="none")
    anns = [EdfAnnotation(onset, duration, text)
            for onset, duration, text in edf_stage_annotations(night.labels, EPOCH_S)]
    Edf([sig], data_record_duration=1.0, annotations=anns).write(Path(path))


def simulated_arousals(hours: float, seed: int, params: SimulationParams | None = None,
                       level: float = 0.5) -> np.ndarray:
    """The arousals of :func:`simulate_night` ``(hours, seed)``: known truth for arousal
    detectors.

    Rebuilds the night's control traces from the same seed (the arousal envelope is the
    first draw from the signal's random stream, so the times are exact, whatever the
    sampling rate) and returns ``(n, 2)`` onset and offset times (s from the start of the
    recording), where the smooth 0..1 arousal envelope (3-15 s of alpha x3, beta x2, muscle
    x4, slow waves x0.4) crosses ``level``.
    """
    params = params or load_params()
    rng = np.random.default_rng([int(seed), 0x51EE9])
    _subj_rng, hyp_rng, sig_rng = (np.random.default_rng(s) for s in rng.spawn(3))
    bouts = generate_bouts(params.hypnogram, hours, hyp_rng)
    ctrl = _control(bouts, sig_rng)
    on = np.concatenate([[False], ctrl.arousal >= level, [False]])
    edges = np.flatnonzero(np.diff(on.astype(np.int8)))
    starts, ends = edges[0::2], edges[1::2]
    return np.stack([ctrl.t_s[starts], ctrl.t_s[np.minimum(ends, len(ctrl.t_s) - 1)]], axis=1) if len(starts) \
        else np.zeros((0, 2))
