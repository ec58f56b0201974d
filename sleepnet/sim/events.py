"""The simulator's events, each with its own waveform and per-stage rate: spindles,
K-complexes, vertex sharp waves, blinks, rapid eye movements, sawtooth trains and
movement artefacts, scattered into the signal.
"""
from __future__ import annotations

import numpy as np
from scipy import signal

from .control import CTRL_DT_S, ControlTraces
from .parameters import COMPONENTS, EVENT_RATES_PER_MIN, SubjectParams

# --------------------------------------------------------------------------- events

def _event_times(ctrl: ControlTraces, rate_per_min: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Event onsets (s) of a Poisson process whose rate follows the stage weights."""
    lam = ctrl.weights @ rate_per_min / 60.0 * CTRL_DT_S
    counts = rng.poisson(lam)
    bins = np.repeat(np.arange(len(lam)), counts)
    return ctrl.t_s[bins] + rng.uniform(0.0, CTRL_DT_S, len(bins))


def scatter_waves(out: np.ndarray, onsets_s: np.ndarray, waves: np.ndarray, sfreq: float) -> None:
    """Add event waveforms into a signal at their onsets, in place.

    Parameters
    ----------
    out : numpy.ndarray
        (n_samples,) the signal, µV; samples a waveform would reach past either end are
        left out.
    onsets_s : numpy.ndarray
        (n_events,) each waveform's onset, s from the signal's first sample.
    waves : numpy.ndarray
        (n_events, L) the waveforms, µV, sampled at ``sfreq``.
    sfreq : float
        The signal's sampling rate, Hz.
    """
    if len(onsets_s) == 0:
        return
    n = len(out)
    start = np.round(onsets_s * sfreq).astype(np.int64)
    idx = start[:, None] + np.arange(waves.shape[1])[None, :]
    ok = (idx >= 0) & (idx < n) & (waves != 0)
    out += np.bincount(idx[ok], weights=waves[ok], minlength=n)[:n].astype(out.dtype)


def _gain_at(ctrl: ControlTraces, gains: np.ndarray, comp: str, times_s: np.ndarray) -> np.ndarray:
    j = np.clip(np.round(times_s / CTRL_DT_S).astype(np.int64), 0, len(ctrl.t_s) - 1)
    return gains[j, COMPONENTS.index(comp)]


def _wave_time_s(length_s: float, sfreq: float, extra: int = 0) -> np.ndarray:
    """Sample times (s, from 0) of an event waveform: ``length_s`` at ``sfreq`` Hz, rounded
    up to whole samples, plus ``extra`` samples."""
    return np.arange(int(np.ceil(length_s * sfreq)) + extra) / sfreq


def _taper(tt: np.ndarray, dur: np.ndarray, power: float) -> np.ndarray:
    """(n_events, len(tt)) envelope ``sin(pi t / dur) ** power`` over each event's ``dur``
    (s, an (n_events, 1) column), zero after it."""
    x = np.clip(tt[None, :] / dur, 0.0, 1.0)
    return np.where(tt[None, :] < dur, np.sin(np.pi * x) ** power, 0.0)


def _spindles(times: np.ndarray, amp: np.ndarray, sfreq: float, subject: SubjectParams,
              rng: np.random.Generator) -> np.ndarray:
    n_ev = len(times)
    dur = rng.uniform(0.5, 2.0, n_ev)
    tt = _wave_time_s(2.0, sfreq, extra=1)
    f0 = np.clip(subject.spindle_hz + rng.normal(0.0, 0.4, n_ev), 11.0, 16.0)
    chirp = -0.3  # Hz/s: spindles slow slightly as they go
    phase = 2 * np.pi * (f0[:, None] * tt + 0.5 * chirp * tt ** 2) + rng.uniform(0, 2 * np.pi, n_ev)[:, None]
    return amp[:, None] * _taper(tt, dur[:, None], 2) * np.sin(phase)


def _kcomplexes(times: np.ndarray, amp: np.ndarray, sfreq: float, rng: np.random.Generator) -> np.ndarray:
    """Peak-to-peak ``amp``: a sharp negative wave (~0.3 s) then a slower positive one."""
    n_ev = len(times)
    tt = _wave_time_s(1.6, sfreq)
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
    tt = _wave_time_s(width_s[1], sfreq, extra=1)
    return sign * amp[:, None] * _taper(tt, dur[:, None], 2)


def _saccades(times: np.ndarray, amp: np.ndarray, sfreq: float, rng: np.random.Generator) -> np.ndarray:
    """Rapid eye movements: conjugate, sharply peaked (rise ~40 ms, AC-coupled decay)."""
    n_ev = len(times)
    tt = _wave_time_s(2.0, sfreq)
    rise = rng.uniform(0.03, 0.06, n_ev)[:, None]
    decay = rng.uniform(0.3, 0.7, n_ev)[:, None]
    sign = rng.choice([-1.0, 1.0], n_ev)[:, None]
    wave = (1.0 - np.exp(-tt / rise)) * np.exp(-tt / decay)
    return sign * amp[:, None] * wave / wave.max(axis=1, keepdims=True)


def _sawtooth_trains(times: np.ndarray, amp: np.ndarray, sfreq: float, rng: np.random.Generator) -> np.ndarray:
    """Trains of 2-5 Hz triangular waves (slow rise, sharp fall), 1-3 s, tapered."""
    n_ev = len(times)
    tt = _wave_time_s(3.0, sfreq)
    f0 = rng.uniform(2.0, 5.0, n_ev)[:, None]
    dur = rng.uniform(1.0, 3.0, n_ev)[:, None]
    saw = signal.sawtooth(2 * np.pi * f0 * tt[None, :] + rng.uniform(0, 2 * np.pi, (n_ev, 1)), width=0.8)
    return amp[:, None] * _taper(tt, dur, 0.5) * saw


def _movements(times: np.ndarray, amp: np.ndarray, sfreq: float, rng: np.random.Generator) -> np.ndarray:
    """Movement artefacts: 2-8 s of large, irregular low-frequency swings."""
    n_ev = len(times)
    tt = _wave_time_s(8.0, sfreq)
    dur = rng.uniform(2.0, 8.0, n_ev)[:, None]
    k = 4
    fr = rng.uniform(0.3, 2.5, (n_ev, k))
    ph = rng.uniform(0, 2 * np.pi, (n_ev, k))
    wave = np.sin(2 * np.pi * fr[:, :, None] * tt[None, None, :] + ph[:, :, None]).sum(axis=1) / 2.0
    return amp[:, None] * _taper(tt, dur, 1) * wave


def add_events(out: np.ndarray, ctrl: ControlTraces, gains: np.ndarray, sfreq: float,
               subject: SubjectParams, rng: np.random.Generator,
               only: str | None = None) -> None:
    """Add the night's events into a signal, in place.

    Spindles (some right after K-complexes), K-complexes, vertex sharp waves, blinks, rapid
    eye movements in bursts, sawtooth trains (some before a burst) and movement artefacts,
    each at a rate that follows the stage weights and with an amplitude that follows its
    gain trace.

    Parameters
    ----------
    out : numpy.ndarray
        (n_samples,) the signal, µV.
    ctrl : ControlTraces
        The night's control traces (:func:`sleepnet.sim.control.control_traces`).
    gains : numpy.ndarray
        (m, n_components) the component gains on the control grid, µV
        (:func:`sleepnet.sim.control.gain_traces`).
    sfreq : float
        The signal's sampling rate, Hz.
    subject : SubjectParams
        The sleeper (spindle frequency and the like).
    rng : numpy.random.Generator
        Draws the events: every event is drawn whatever ``only`` is, so one component alone
        is the same as in the whole night.
    only : str, optional
        Add just this component (a name of ``EVENTS``); default: all of them.
    """
    rates = {k: np.asarray(v, dtype=np.float64) for k, v in EVENT_RATES_PER_MIN.items()}

    def amps(comp: str, times: np.ndarray, sd: float = 0.25) -> np.ndarray:
        return _gain_at(ctrl, gains, comp, times) * np.exp(rng.normal(0.0, sd, len(times)))

    def want(c: str) -> bool:
        return only is None or only == c

    # Spindles (some right after K-complexes).
    kc_t = _event_times(ctrl, rates["kcomplex"], rng)
    sp_t = _event_times(ctrl, rates["spindle"], rng)
    follow = kc_t[rng.random(len(kc_t)) < 0.4]
    follow = follow + rng.uniform(0.5, 1.0, len(follow))
    sp_all = np.concatenate([sp_t, follow])
    sp_amp = amps("spindle", sp_all)
    sp_wave = _spindles(sp_all, sp_amp, sfreq, subject, rng)
    if want("spindle"):
        scatter_waves(out, sp_all, sp_wave, sfreq)
    kc_wave = _kcomplexes(kc_t, amps("kcomplex", kc_t), sfreq, rng)
    if want("kcomplex"):
        scatter_waves(out, kc_t, kc_wave, sfreq)
    vx_t = _event_times(ctrl, rates["vertex"], rng)
    vx_wave = _transients(vx_t, amps("vertex", vx_t), sfreq, rng, (0.15, 0.4), +1.0)
    if want("vertex"):
        scatter_waves(out, vx_t, vx_wave, sfreq)
    bl_t = _event_times(ctrl, rates["blink"], rng)
    bl_wave = _transients(bl_t, amps("blink", bl_t, 0.35), sfreq, rng, (0.2, 0.4), +1.0)
    if want("blink"):
        scatter_waves(out, bl_t, bl_wave, sfreq)
    # REM bursts: 1-5 saccades 0.3-1 s apart; part of them preceded by a sawtooth train.
    burst_t = _event_times(ctrl, rates["rem"], rng)
    n_in = 1 + rng.poisson(1.5, len(burst_t))
    first = np.repeat(burst_t, n_in)
    within = np.concatenate([np.cumsum(rng.uniform(0.3, 1.0, k)) - 0.3 for k in n_in]) if len(n_in) else np.zeros(0)
    rem_t = first + within
    rem_wave = _saccades(rem_t, amps("rem", rem_t, 0.35), sfreq, rng)
    if want("rem"):
        scatter_waves(out, rem_t, rem_wave, sfreq)
    saw_rate = rates["sawtooth"]
    st_t = _event_times(ctrl, saw_rate * 0.5, rng)
    pre = burst_t[rng.random(len(burst_t)) < 0.5]
    pre = pre[_gain_at(ctrl, gains, "sawtooth", pre) > 0]
    pre = pre - rng.uniform(1.0, 3.0, len(pre))
    st_all = np.concatenate([st_t, pre])
    st_wave = _sawtooth_trains(st_all, amps("sawtooth", st_all), sfreq, rng)
    if want("sawtooth"):
        scatter_waves(out, st_all, st_wave, sfreq)
    mv_t = _event_times(ctrl, rates["movement"], rng)
    mv_wave = _movements(mv_t, amps("movement", mv_t, 0.4), sfreq, rng)
    if want("movement"):
        scatter_waves(out, mv_t, mv_wave, sfreq)
