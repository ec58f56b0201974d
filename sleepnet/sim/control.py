"""The simulator's control traces on a 0.25-s grid: stage weights cross-faded over a few
seconds, the wandering (Ornstein-Uhlenbeck) log-gain of each component, arousals and
the fall of slow-wave amplitude across the night.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

from ..stages import N_STAGES, STAGES
from .hypnogram_model import Bouts
from .parameters import (
    AROUSAL_GAIN,
    AROUSALS_PER_H,
    COMPONENTS,
    SLOW_TRAIN_SD,
    SLOW_TRAIN_TAU_S,
    SLOW_WANDER_BOUNDS,
    STATE_LOADINGS,
    StageSignalParams,
    SubjectParams,
)

CTRL_DT_S = 0.25          # control grid step, s
CROSSFADE_S = 6.0         # width of the stage cross-fade, s
JITTER_TAU_S = 40.0       # time constant of the per-component gain wander, s


# --------------------------------------------------------------------------- control traces

@dataclass(frozen=True)
class ControlTraces:
    """The slow traces that drive a simulated night, on a grid of ``CTRL_DT_S`` (0.25 s).

    Parameters
    ----------
    t_s : numpy.ndarray
        (m,) control times, s from the start of the bouts.
    weights : numpy.ndarray
        (m, 5) stage weights (W, N1, N2, N3, REM), cross-faded over ``CROSSFADE_S`` at each
        stage change; each row sums to 1.
    arousal : numpy.ndarray
        (m,) arousal envelope, 0 to 1.
    hours_asleep : numpy.ndarray
        (m,) hours since sleep onset (0 before it), plus the bouts' ``hours_offset``.
    """

    t_s: np.ndarray
    weights: np.ndarray
    arousal: np.ndarray
    hours_asleep: np.ndarray


def control_traces(bouts: Bouts, rng: np.random.Generator, hours_offset: float = 0.0) -> ControlTraces:
    """The control traces of a night's bouts: stage weights, arousals, time asleep.

    Parameters
    ----------
    bouts : Bouts
        The night's stages (:class:`sleepnet.sim.hypnogram_model.Bouts`).
    rng : numpy.random.Generator
        Draws the arousals (Poisson in sleep, ``AROUSALS_PER_H`` per stage, 3-15 s each).
    hours_offset : float
        How long the sleeper has slept when the bouts begin, h.

    Returns
    -------
    ControlTraces
        The traces on the ``CTRL_DT_S`` grid, covering the bouts' duration.
    """
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
    return ControlTraces(t_s=t, weights=weights, arousal=arousal, hours_asleep=hours)


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


def gain_traces(ctrl: ControlTraces, sp: StageSignalParams, subject: SubjectParams,
                rng: np.random.Generator, jitter: bool = True) -> np.ndarray:
    """The gain of every signal component on the control grid.

    Parameters
    ----------
    ctrl : ControlTraces
        The night's control traces (:func:`control_traces`).
    sp : StageSignalParams
        Each stage's component gains and their wander.
    subject : SubjectParams
        The sleeper: amplitude, slow-wave, eye and EMG scales, electrode quality.
    rng : numpy.random.Generator
        Draws the wander (Ornstein-Uhlenbeck paths).
    jitter : bool
        Let the gains wander; False keeps each stage's gains fixed (the calibration).

    Returns
    -------
    numpy.ndarray
        (m, n_components) gains, µV, in the order of ``COMPONENTS``: the stage weights' mix
        of the stage gains, with subject scaling, wander, arousals and the slow-wave decline
        across the night.
    """
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
