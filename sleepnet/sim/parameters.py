"""The simulator's parameters: components, per-stage event rates and loadings, the
subject and stage-signal dataclasses, and the committed ``simulation_params.json``
(beside this module, written by ``python -m sleepnet.sim.calibrate``).
"""
from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..stages import N_STAGES, STAGES
from .envelope import SpectralEnvelopeModel
from .hypnogram_model import HypnogramModel

__all__ = [
    "SubjectParams", "SimulationParams", "StageSignalParams", "SubjectDistribution", "random_subject", "load_params",
    "default_stage_params",
]

PARAMS_PATH = Path(__file__).with_name("simulation_params.json")

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

    Parameters
    ----------
    amplitude : float, default 1.0
        Overall scale of the recorded signal, brain and eyes and muscle alike (x0.5-2,
        1 = calibrated median); without effect when the parameters carry a spectral
        envelope, which sets each epoch's band powers itself.
    alpha_hz : float, default 10.0
        Alpha peak frequency, Hz (8.5-11.5).
    spindle_hz : float, default 12.5
        Spindle frequency at Fpz, Hz (11-14; frontal spindles are slow).
    slow_wave_scale : float, default 1.0
        Slow-wave amplitude relative to the median (falls with age).
    noise_uv_per_sqrt_hz : float, default 0.04
        Amplifier/electrode white-noise density, µV/sqrt(Hz).
    electrode_quality : float, default 0.8
        0-1 (1 = perfect): worse electrodes drift more and pop.
    eye_scale : float, default 1.0
        How strongly eye movements reach Fpz (electrode position, anatomy).
    emg_scale : float, default 1.0
        Muscle tone pickup.
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
class StageSignalParams:
    """Calibrated per-stage signal parameters (arrays indexed by stage 0..4).

    Parameters
    ----------
    gains_uv : numpy.ndarray
        (5, n_components) µV: rms of continuous components, peak amplitude of events.
    sigma_common : numpy.ndarray
        (5,) sd of a log-gain wander shared by all components.
    sigma_indep : numpy.ndarray
        (5,) sd of each component's own log-gain wander.
    sigma_depth : numpy.ndarray
        (5,) sd of the within-stage state wander (relaxation in W, drowsiness in N1, depth
        in N2/N3, phasic activity in REM; loadings :data:`STATE_LOADINGS`).
    sigma_eye : numpy.ndarray
        (5,) extra sd of the eye/muscle/movement log gains (wake behaviour).
    slow_wave_decay_per_h : float, default 0.06
        Fall of slow-wave log amplitude per hour since sleep onset.
    """

    gains_uv: np.ndarray
    sigma_common: np.ndarray
    sigma_indep: np.ndarray
    sigma_depth: np.ndarray
    sigma_eye: np.ndarray
    slow_wave_decay_per_h: float = 0.06

    def to_dict(self) -> dict:
        """The parameters as JSON-ready dicts keyed by stage name (:meth:`from_dict` reads them back).

        Returns
        -------
        dict
            ``gains_uv`` (stage -> component -> µV), the four sds (stage -> value), rounded
            to 4 decimals, and ``slow_wave_decay_per_h``.
        """
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
    def from_dict(cls, d: dict) -> StageSignalParams:
        """The parameters from :meth:`to_dict`'s form.

        Parameters
        ----------
        d : dict
            Keyed as :meth:`to_dict` writes; a component absent from a stage's gains is 0 µV,
            an absent ``slow_wave_decay_per_h`` is 0.06.

        Returns
        -------
        StageSignalParams
            The parameters.
        """
        g = np.array([[float(d["gains_uv"][s].get(c, 0.0)) for c in COMPONENTS] for s in STAGES])

        def per_stage(key: str) -> np.ndarray:
            return np.array([float(d[key][s]) for s in STAGES])

        return cls(gains_uv=g, sigma_common=per_stage("sigma_common"), sigma_indep=per_stage("sigma_indep"),
                   sigma_depth=per_stage("sigma_depth"), sigma_eye=per_stage("sigma_eye"),
                   slow_wave_decay_per_h=float(d.get("slow_wave_decay_per_h", 0.06)))


@dataclass(frozen=True)
class SubjectDistribution:
    """How subjects vary: log-normal scales (sd of ln) and uniform ranges (low, high).

    :func:`random_subject` draws from it.

    Parameters
    ----------
    amplitude_log_sd : float, default 0.2
        sd of ln(amplitude); the amplitude is clipped to x0.5-2.
    alpha_hz : tuple of float, default (8.5, 11.5)
        Range of the alpha peak frequency, Hz.
    spindle_hz : tuple of float, default (11.5, 13.5)
        Range of the spindle frequency, Hz.
    slow_wave_log_sd : float, default 0.15
        sd of ln(slow-wave scale); the scale is clipped to x0.5-2.
    noise_uv_per_sqrt_hz : tuple of float, default (0.01, 0.08)
        Range of the white-noise density, µV/sqrt(Hz).
    electrode_quality : tuple of float, default (0.4, 1.0)
        Range of the electrode quality (1 = perfect).
    eye_log_sd : float, default 0.25
        sd of ln(eye scale); the scale is clipped to x0.4-2.5.
    emg_log_sd : float, default 0.25
        sd of ln(EMG scale); the scale is clipped to x0.4-2.5.
    """

    amplitude_log_sd: float = 0.2
    alpha_hz: tuple[float, float] = (8.5, 11.5)
    spindle_hz: tuple[float, float] = (11.5, 13.5)
    slow_wave_log_sd: float = 0.15
    noise_uv_per_sqrt_hz: tuple[float, float] = (0.01, 0.08)
    electrode_quality: tuple[float, float] = (0.4, 1.0)
    eye_log_sd: float = 0.25
    emg_log_sd: float = 0.25

    @classmethod
    def from_dict(cls, d: dict) -> SubjectDistribution:
        """The distribution from a JSON dict (lists become the range tuples).

        Parameters
        ----------
        d : dict
            Fields by name; absent ones keep their defaults.

        Returns
        -------
        SubjectDistribution
            The distribution.
        """
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()}
        return cls(**kw)


@dataclass(frozen=True)
class SimulationParams:
    """Everything :func:`~sleepnet.sim.night.simulate_night` needs: the hypnogram model,
    the per-stage signal parameters and the subject distribution (loaded from
    ``simulation_params.json`` by :func:`load_params`).

    Parameters
    ----------
    hypnogram : HypnogramModel
        The stage-sequence model.
    stages : StageSignalParams
        The per-stage signal gains and wander.
    subjects : SubjectDistribution
        How simulated people vary.
    source : str, default ""
        Where the parameters come from.
    envelope : SpectralEnvelopeModel, optional
        The spectral envelope imposed on each night (None: no envelope).
    """

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
    """The physiological starting values: used before calibration and as its prior.

    Returns
    -------
    StageSignalParams
        Gains from ``DEFAULT_GAINS_UV`` (µV; continuous components as rms, events as peak
        amplitude) and default wander sds.
    """
    g = np.array([[DEFAULT_GAINS_UV[s].get(c, 0.0) for c in COMPONENTS] for s in STAGES])
    return StageSignalParams(
        gains_uv=g,
        sigma_common=np.full(N_STAGES, 0.25), sigma_indep=np.full(N_STAGES, 0.2),
        sigma_depth=np.array([0.5, 0.3, 0.5, 0.3, 0.3]), sigma_eye=np.array([0.6, 0.3, 0.2, 0.2, 0.3]),
    )


@functools.lru_cache(maxsize=4)
def load_params(path: str | None = None) -> SimulationParams:
    """The committed simulation parameters (``simulation_params.json``).

    Cached: the same ``path`` gives the same object.

    Parameters
    ----------
    path : str, optional
        Another parameter file (default: :data:`PARAMS_PATH`).

    Returns
    -------
    SimulationParams
        The parameters, with the spectral envelope where the file has one.
    """
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
    """Draw a simulated person (see :class:`SubjectParams`).

    Parameters
    ----------
    rng : numpy.random.Generator or int, optional
        The source of randomness, or a seed (None: fresh entropy).
    distribution : SubjectDistribution, optional
        How people vary (default: that of :func:`load_params`).

    Returns
    -------
    SubjectParams
        The person.
    """
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


def subject_as_dict(subject: SubjectParams) -> dict[str, float]:
    """A person's parameters as a JSON-ready dict.

    Parameters
    ----------
    subject : SubjectParams
        The person.

    Returns
    -------
    dict of str to float
        The fields by name, rounded to 4 decimals.
    """
    return {k: round(float(v), 4) for k, v in asdict(subject).items()}
