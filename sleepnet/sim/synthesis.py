"""The simulated signal: unit processes (1/f backgrounds, narrow-band rhythms) times
their gain traces, the events, and the electrode (noise floor, pops, mains), in µV.
"""
from __future__ import annotations

import numpy as np
from scipy import fft as sfft

from .control import control_traces, gain_traces
from .events import add_events, scatter_waves
from .hypnogram_model import Bouts
from .parameters import COMPONENTS, CONTINUOUS, EVENTS, StageSignalParams, SubjectParams

__all__ = ["synthesise"]

REF_BAND_HZ = 50.0        # unit processes have 1 µV rms in 0-50 Hz at any sampling rate


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
        scatter_waves(out, t, wave, sfreq)
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

    Parameters
    ----------
    bouts : Bouts
        The night's stage bouts; the signal lasts ``bouts.duration_s``.
    sfreq : float
        Sampling rate, Hz (components are defined in Hz; nothing is resampled).
    subject : SubjectParams
        The simulated person.
    stage_params : StageSignalParams
        The per-stage gains (µV) and wander sds.
    rng : numpy.random.Generator
        The signal's random stream; the same stream gives the same signal.
    component : str, optional
        Keep only this component: a name of ``COMPONENTS``, or ``"electrode"`` (default:
        all of them).
    jitter : bool, default True
        Whether the gains wander (False: constant gain per stage).
    hours_offset : float, default 0.0
        Hours already slept when the bouts begin.

    Returns
    -------
    numpy.ndarray
        (round(duration_s * sfreq),) float32 signal, µV.
    """
    duration = bouts.duration_s
    n = int(round(duration * sfreq))
    ctrl = control_traces(bouts, rng, hours_offset)
    gains = gain_traces(ctrl, stage_params, subject, rng, jitter=jitter)
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
        add_events(out, ctrl, gains, sfreq, subject, ev_rng, only=component)
    el_rng = np.random.default_rng(rng.integers(2 ** 63))
    if component is None or component == "electrode":
        _electrode(out, duration, sfreq, subject, el_rng)
    return out
