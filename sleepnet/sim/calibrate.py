"""Fit the simulator's parameters to real Sleep-EDF data: ``python -m sleepnet.sim.calibrate``.

Reads ``../shared/data`` (relative to the repository root; ``--data`` to point
elsewhere) and writes ``sleepnet/sim/simulation_params.json``:

* the hypnogram model (:mod:`sleepnet.sim.hypnogram_model`) fitted to the 39 cassette and
  12 telemetry hypnograms in ``hypnograms/``;
* the per-stage signal gains of :mod:`sleepnet.sim`, fitted so that the nine Fpz-Cz
  base features (:func:`sleepnet.features.base_features`) of simulated epochs match, stage
  by stage and quantile by quantile, those of the *calibration* subjects' real nights in
  ``sleep-edf-features/`` (SC400x-SC404x, nights trimmed to 30 min of wake around sleep).
  Subjects SC405x-SC409x are held out for the realism report.

How the gains are fitted: for each stage, single-stage segments of many random subjects
are synthesised one component at a time at unit gain; each epoch's Welch band powers,
variance and variance of the first difference are then (very nearly) sums over
components of gain^2 x jitter^2 x the unit contribution. That makes the features of any
gain vector cheap to compute, and a derivative-free search (Powell) minimises the
distance between simulated and real feature quantiles, within physiological bounds
that keep each stage's signature (alpha in W, spindles and K-complexes in N2, > 75 µV
slow waves in N3...) present.

The gains alone match each feature's spread but not how features move together; the
spectral envelope (:mod:`sleepnet.sim.envelope`) does: a per-stage Gaussian mixture
of the five band PSDs and the variance with a trend across the night, between-night
offsets and epoch-to-epoch persistence, fitted to the same calibration nights.
``--envelope-only`` refits just that part.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import optimize, signal

from ..errors import SleepstreamError, parameter
from ..features import welch_band_means
from ..io.feature_nights import FeatureNight, read_feature_night
from ..stages import EPOCH_S, N_STAGES, STAGES
from .control import JITTER_TAU_S
from .envelope import fit_envelope_model
from .hypnogram_model import (
    HYPNOGRAM_STAT_NAMES,
    Bouts,
    HypnogramModel,
    fit_hypnogram_model,
    hypnogram_statistics,
    load_real_nights,
    trim_to_sleep,
)
from .parameters import (
    COMPONENTS,
    DEFAULT_GAINS_UV,
    EVENT_RATES_PER_MIN,
    PARAMS_PATH,
    SLOW_WANDER_BOUNDS,
    STATE_LOADINGS,
    StageSignalParams,
    SubjectDistribution,
    default_stage_params,
    random_subject,
)
from .synthesis import synthesise

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data"
CALIBRATION_SUBJECTS = (0, 1, 2, 3, 4)      # SC400x..SC404x
HELD_OUT_SUBJECTS = (5, 6, 7, 8, 9)         # SC405x..SC409x
QUANTILES = np.array([0.01, 0.03, 0.07, 0.15, 0.25, 0.35, 0.5, 0.65, 0.75, 0.85, 0.93, 0.97, 0.99])
#: Least sd of each stage's state wander (W: relaxed, alpha-rich wake must occur).
MIN_STATE_SD = (0.0, 0.0, 0.0, 0.0, 0.0)
#: The simulated spread around each stage's median is fitted to this multiple of the
#: real spread: simulated people vary a little more than the five calibration subjects,
#: so that what is learnt on simulated nights carries over to new people.
SPREAD = 1.0
#: Weight of the feature-correlation mismatch beside the quantile mismatch in the loss.
CORR_WEIGHT = 0.2
EYE_COMPONENTS = ("sem", "blink", "rem", "emg", "movement")
#: Gaussian-mixture components per stage in the spectral envelope model.
ENVELOPE_COMPONENTS = 5
#: Within-stage spread of the simulated envelope relative to the real nights'. Below 1,
#: simulated epochs keep nearer the core of each stage (fewer epochs a human scorer
#: would hesitate over); the realism report shows what this buys and costs.
ENVELOPE_SPREAD = 0.6

#: Lower bounds (µV) that keep each stage's signature present whatever the fit prefers.
SIGNATURE_FLOORS_UV: dict[str, dict[str, float]] = {
    "W": {"alpha": 2.5, "blink": 60.0, "emg": 1.0},
    "N1": {"theta": 2.0, "vertex": 40.0, "sem": 4.0},
    "N2": {"spindle": 18.0, "kcomplex": 70.0},
    "N3": {"slow": 10.0},
    "REM": {"rem": 40.0, "sawtooth": 20.0, "theta": 2.0},
}


def data_dir_or_error(data: Path | None) -> Path:
    """The real-data folder, checked.

    Parameters
    ----------
    data : Path, optional
        The folder (default: :data:`DEFAULT_DATA`, ``../shared/data`` beside the repository).

    Returns
    -------
    Path
        The folder, which holds ``sleep-edf-features/`` and ``hypnograms/``.

    Raises
    ------
    SleepstreamError
        One line when the folder is absent or lacks either.
    """
    d = Path(data) if data else DEFAULT_DATA
    if not (d / "sleep-edf-features").is_dir() or not (d / "hypnograms").is_dir():
        raise SleepstreamError(f"real data folder {d} is absent (needs sleep-edf-features/ and hypnograms/); "
                               f"pass {parameter('data')}=DIR pointing at the shared data")
    return d


def load_feature_nights(data: Path) -> list[FeatureNight]:
    """The 20 real nights of ``sleep-edf-features``, trimmed to sleep.

    Read as training reads them (:func:`sleepnet.io.feature_nights.read_feature_night`).

    Parameters
    ----------
    data : Path
        The real-data folder (:func:`data_dir_or_error`); its ``sleep-edf-features``
        sub-folder is read.

    Returns
    -------
    list of FeatureNight
        One per ``SC4*E0.npz``, by name: the nine Fpz-Cz base features and the stage codes
        of the epochs from 30 min of wake before the first sleep epoch to 30 min after the
        last (:func:`sleepnet.sim.hypnogram_model.trim_to_sleep`); ``subject`` is the
        Sleep-EDF subject number as two digits (SC4<ss><n>E0 -> ``ss``: :func:`subject_number`).
    """
    nights = []
    for path in sorted((Path(data) / "sleep-edf-features").glob("SC4*E0.npz")):
        night = read_feature_night(path)
        sl = trim_to_sleep(night.labels)
        nights.append(FeatureNight(night.name, night.subject, night.features[sl], night.labels[sl]))
    return nights


def subject_number(night: FeatureNight) -> int:
    """The Sleep-EDF subject number of a feature night (``SC4011E0`` -> 1).

    Parameters
    ----------
    night : FeatureNight
        A night of :func:`load_feature_nights`.

    Returns
    -------
    int
        The number, as :data:`CALIBRATION_SUBJECTS` and :data:`HELD_OUT_SUBJECTS` hold it.
    """
    return int(night.subject)


# --------------------------------------------------------------------------- unit contributions

@dataclass(frozen=True)
class _Units:
    """Per-epoch unit-gain contributions of every component for one stage.

    band: (C, E, 5) mean Welch PSD per base band, µV²/Hz; var: (C, E) µV²;
    dvar: (C, E) variance of the first difference, µV²; the electrode floor separately.
    """

    band: np.ndarray
    var: np.ndarray
    dvar: np.ndarray
    floor_band: np.ndarray
    floor_var: np.ndarray
    floor_dvar: np.ndarray


def _epoch_stats(x_uv: np.ndarray, sfreq: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_ep = len(x_uv) // int(EPOCH_S * sfreq)
    ep = x_uv[: n_ep * int(EPOCH_S * sfreq)].reshape(n_ep, -1).astype(np.float64)
    band = welch_band_means(ep, sfreq)
    return band, ep.var(axis=1), np.diff(ep, axis=1).var(axis=1)


def stage_clock_times(stage: int, n: int, seed: int, model=None) -> np.ndarray:
    """``n`` times since sleep onset (h) at which ``stage`` occurs in nights of the
    hypnogram model, so calibration segments see the stage at its usual times of night
    (N3 early, REM late) and the slow-wave fall across the night is not counted twice.

    Parameters
    ----------
    stage : int
        The stage code (0..4).
    n : int
        How many times to draw.
    seed : int
        Seed of the draw (with ``stage``).
    model : HypnogramModel, optional
        The hypnogram model (default: the one in :data:`~sleepnet.sim.parameters.PARAMS_PATH`).

    Returns
    -------
    numpy.ndarray
        (n,) hours since sleep onset, drawn from 40 generated 8.5-h nights (zeros when
        none of them holds the stage).
    """
    from .hypnogram_model import generate_epochs

    rng = np.random.default_rng([seed, 55, stage])
    if model is None:
        model = HypnogramModel.from_dict(json.loads(PARAMS_PATH.read_text(encoding="utf-8"))["hypnogram_model"])
    times = []
    for _ in range(40):
        y = generate_epochs(model, 8.5, rng)
        sleep = np.flatnonzero(y > 0)
        if len(sleep) == 0:
            continue
        idx = np.flatnonzero(y == stage)
        times.append(np.clip((idx - sleep[0]) * EPOCH_S / 3600.0, 0.0, None))
    pool = np.concatenate(times) if times else np.zeros(1)
    return rng.choice(pool, n) if len(pool) else np.zeros(n)


def unit_contributions(stage: int, n_subjects: int, minutes: float, seed: int,
                       sfreq: float = 100.0, model=None) -> _Units:
    """Synthesise ``n_subjects`` single-stage segments one component at a time (unit gain).

    Each segment is one random subject, placed at a time of night drawn by
    :func:`stage_clock_times`, synthesised without gain jitter; the electrode floor is
    synthesised apart.

    Parameters
    ----------
    stage : int
        The stage code (0..4).
    n_subjects : int
        How many segments (random subjects).
    minutes : float
        Length of each segment, min.
    seed : int
        Seed of the subjects and the synthesis.
    sfreq : float, default 100.0
        Sampling rate, Hz.
    model : HypnogramModel, optional
        The hypnogram model for :func:`stage_clock_times`.

    Returns
    -------
    _Units
        Per component and epoch, the band PSDs (µV²/Hz), variance and difference
        variance (µV²), and the electrode floor's.
    """
    unit = default_stage_params()
    unit = StageSignalParams(gains_uv=np.ones_like(unit.gains_uv), sigma_common=unit.sigma_common * 0,
                             sigma_indep=unit.sigma_indep * 0, sigma_depth=unit.sigma_depth * 0,
                             sigma_eye=unit.sigma_eye * 0, slow_wave_decay_per_h=unit.slow_wave_decay_per_h)
    dur = minutes * 60.0
    n_ep = int(dur // EPOCH_S)
    labels = np.full(n_ep, stage, dtype=np.int8)
    bouts = Bouts(stages=np.array([stage], dtype=np.int8), start_s=np.array([0.0]), end_s=np.array([n_ep * EPOCH_S]),
                  labels=labels)
    band = np.zeros((len(COMPONENTS), n_subjects * n_ep, 5))
    var = np.zeros((len(COMPONENTS), n_subjects * n_ep))
    dvar = np.zeros_like(var)
    fb, fv, fd = [], [], []
    offsets = stage_clock_times(stage, n_subjects, seed, model)
    for k in range(n_subjects):
        subject = random_subject(np.random.default_rng([seed, stage, k]), SubjectDistribution())
        sl = slice(k * n_ep, (k + 1) * n_ep)
        for c, name in enumerate(COMPONENTS):
            x = synthesise(bouts, sfreq, subject, unit, np.random.default_rng([seed, stage, k, 1]),
                           component=name, jitter=False, hours_offset=offsets[k])
            band[c, sl], var[c, sl], dvar[c, sl] = _epoch_stats(x, sfreq)
        x = synthesise(bouts, sfreq, subject, unit, np.random.default_rng([seed, stage, k, 1]),
                       component="electrode", jitter=False, hours_offset=offsets[k])
        b, v, d = _epoch_stats(x, sfreq)
        fb.append(b)
        fv.append(v)
        fd.append(d)
    return _Units(band, var, dvar, np.concatenate(fb), np.concatenate(fv), np.concatenate(fd))


def features_from_powers(band_uv2: np.ndarray, var_uv2: np.ndarray, dvar_uv2: np.ndarray) -> np.ndarray:
    """The nine base features from band PSDs (µV²/Hz), variance and difference variance
    (µV²), exactly as :func:`sleepnet.features.base_features` computes them from volts.

    Parameters
    ----------
    band_uv2 : numpy.ndarray
        (n, 5) mean Welch PSD per base band, µV²/Hz.
    var_uv2 : numpy.ndarray
        (n,) variance of each epoch, µV².
    dvar_uv2 : numpy.ndarray
        (n,) variance of each epoch's first difference, µV².

    Returns
    -------
    numpy.ndarray
        (n, 9) base features.
    """
    logs = np.log(band_uv2 * 1e-12 + 1e-10)
    d, t, a, b, g = logs.T
    mob = np.sqrt(dvar_uv2 * 1e-12 / (var_uv2 * 1e-12 + 1e-10))
    return np.column_stack([d, t, a, b, g, t / a, a / d, np.log(var_uv2 * 1e-12 + 1e-10), mob])


# --------------------------------------------------------------------------- fitting

@dataclass(frozen=True)
class _Layout:
    stage: int
    active: tuple[int, ...]          # component indices with free gains
    lower: np.ndarray                # log-gain bounds
    upper: np.ndarray
    prior: np.ndarray                # log of the default gains


def _layout(stage: int) -> _Layout:
    name = STAGES[stage]
    defaults = DEFAULT_GAINS_UV[name]
    active = tuple(i for i, c in enumerate(COMPONENTS) if defaults.get(c, 0.0) > 0.0)
    floors = SIGNATURE_FLOORS_UV.get(name, {})
    lo, hi, prior = [], [], []
    for i in active:
        c = COMPONENTS[i]
        d = defaults[c]
        lo.append(np.log(max(d / 6.0, floors.get(c, 0.0))))
        hi.append(np.log(d * 6.0))
        prior.append(np.log(d))
    return _Layout(stage, active, np.array(lo), np.array(hi), np.array(prior))


def _jitter_paths(n_series: int, n_epochs: int, seed: int) -> np.ndarray:
    """(n_series, n_epochs, k) unit Ornstein-Uhlenbeck paths sampled every 2 s, with the
    simulator's time constant, so a gain's wander inside an epoch is averaged as in
    the simulated signal."""
    k = int(EPOCH_S // 2)
    a = np.exp(-2.0 / JITTER_TAU_S)
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((n_series, n_epochs * k)) * np.sqrt(1.0 - a * a)
    e[:, 0] = rng.standard_normal(n_series)
    return signal.lfilter([1.0], [1.0, -a], e, axis=1).reshape(n_series, n_epochs, k)


def _sim_features(theta: np.ndarray, units: _Units, layout: _Layout, z: np.ndarray) -> np.ndarray:
    n_act = len(layout.active)
    g = np.exp(theta[:n_act])
    s_common, s_indep, s_depth, s_eye = np.abs(theta[n_act:n_act + 4])
    act = np.asarray(layout.active)
    logj = s_common * z[0][None] + s_indep * z[1 + act]          # (A, E, k)
    eye = [COMPONENTS.index(c) for c in EYE_COMPONENTS]
    for k, ci in enumerate(act):
        loading = STATE_LOADINGS[STAGES[layout.stage]].get(COMPONENTS[ci], 0.0)
        if loading:
            logj[k] += loading * s_depth * z[1 + len(COMPONENTS)]
        if ci in eye:
            logj[k] += s_eye * z[2 + len(COMPONENTS) + ci]
    jit = np.exp(logj)
    if COMPONENTS.index("slow") in layout.active:
        k = list(act).index(COMPONENTS.index("slow"))
        jit[k] = np.clip(jit[k], *SLOW_WANDER_BOUNDS[layout.stage])
    w = g[:, None] ** 2 * (jit ** 2).mean(axis=2)      # (A, E) mean power gain per epoch
    band = np.einsum("ae,aeb->eb", w, units.band[act]) + units.floor_band
    var = (w * units.var[act]).sum(axis=0) + units.floor_var
    dvar = (w * units.dvar[act]).sum(axis=0) + units.floor_dvar
    return features_from_powers(band, var, dvar)


_TRIU = np.triu_indices(9, 1)


def _loss(theta, units, layout, z, real_q, real_sd, real_corr, prior_weight):
    feats = _sim_features(theta, units, layout, z)
    q = np.quantile(feats, QUANTILES, axis=0)
    err = ((q - real_q) / real_sd) ** 2
    corr = np.corrcoef(feats.T)[_TRIU]
    corr_err = np.nan_to_num(corr - real_corr, nan=1.0) ** 2
    reg = prior_weight * np.sum((theta[: len(layout.active)] - layout.prior) ** 2)
    return float(err.mean() + CORR_WEIGHT * corr_err.mean() + reg)


def fit_stage(stage: int, real_X: np.ndarray, units: _Units, seed: int, prior_weight: float = 0.002,
              max_evals: int = 4000, de_generations: int = 60, spread: float = 1.0) -> tuple[np.ndarray, np.ndarray, float]:
    """Fit one stage's gains and variabilities.

    Differential evolution started around the physiological defaults, then a Powell
    polish, minimising the distance between simulated and real feature quantiles (and
    correlations) within the bounds of the stage's signature.

    Parameters
    ----------
    stage : int
        The stage code (0..4).
    real_X : numpy.ndarray
        (n, 9) base features of the stage's real epochs.
    units : _Units
        The stage's unit contributions (:func:`unit_contributions`).
    seed : int
        Seed of the jitter paths and of the search.
    prior_weight : float, default 0.002
        Weight of the pull of the log gains towards the defaults.
    max_evals : int, default 4000
        Most loss evaluations of the Powell polish.
    de_generations : int, default 60
        Generations of the differential evolution.
    spread : float, default 1.0
        The real quantiles' spread around the median is scaled by this.

    Returns
    -------
    gains_uv : numpy.ndarray
        (n_components,) the stage's row of gains, µV (0 for inactive components).
    sigmas : numpy.ndarray
        (4,) the common, independent, depth and eye wander sds.
    loss : float
        The loss reached.
    """
    layout = _layout(stage)
    n_e = units.var.shape[1]
    z = _jitter_paths(2 + 2 * len(COMPONENTS), n_e, seed * 100 + stage)
    real_q = np.quantile(real_X, QUANTILES, axis=0)
    med = np.median(real_X, axis=0)
    real_q = med + spread * (real_q - med)
    real_sd = real_X.std(axis=0) + 1e-9
    real_corr = np.corrcoef(real_X.T)[_TRIU]
    sig0 = default_stage_params()
    theta0 = np.concatenate([np.clip(layout.prior, layout.lower, layout.upper),
                             [sig0.sigma_common[stage], sig0.sigma_indep[stage],
                              max(sig0.sigma_depth[stage], MIN_STATE_SD[stage], 0.05), max(sig0.sigma_eye[stage], 0.05)]])
    bounds = list(zip(layout.lower, layout.upper)) + [(0.0, 0.8), (0.0, 0.8), (MIN_STATE_SD[stage], 0.9), (0.0, 0.8)]
    args = (units, layout, z, real_q, real_sd, real_corr, prior_weight)
    # A global search (differential evolution, started around the physiological
    # defaults) then a local polish (Powell): the quantile loss is rugged.
    de = optimize.differential_evolution(_loss, bounds, args=args, x0=theta0, maxiter=de_generations,
                                         popsize=10, tol=1e-5, seed=seed * 10 + stage, polish=False,
                                         init="sobol")
    res = optimize.minimize(_loss, de.x, args=args, method="Powell", bounds=bounds,
                            options={"maxfev": max_evals, "xtol": 1e-3, "ftol": 1e-5})
    row = np.zeros(len(COMPONENTS))
    row[list(layout.active)] = np.exp(res.x[: len(layout.active)])
    return row, np.abs(res.x[len(layout.active):]), float(res.fun)


# --------------------------------------------------------------------------- main

def fit_hypnograms(data: Path) -> dict:
    """The fitted hypnogram model and the real nights' statistic ranges (JSON-ready).

    Parameters
    ----------
    data : Path
        The real-data folder (:func:`data_dir_or_error`); its ``hypnograms`` sub-folder is
        read (Sleep-EDF cassette and telemetry nights).

    Returns
    -------
    dict
        ``hypnogram_model`` (:meth:`~sleepnet.sim.hypnogram_model.HypnogramModel.to_dict`)
        and ``real_hypnogram_statistics`` (:func:`real_hypnogram_ranges`).
    """
    nights = load_real_nights(data / "hypnograms")
    model = fit_hypnogram_model(
        nights,
        source=(f"{len(nights)} real hypnograms in shared/data/hypnograms: Sleep-EDF Expanded cassette "
                "(SC4xxxE0.txt) and telemetry (ST7xxxJx-Hypnogram.edf) nights, PhysioNet, ODC-By 1.0"),
    )
    return {"hypnogram_model": model.to_dict(), "real_hypnogram_statistics": real_hypnogram_ranges(nights)}


def real_hypnogram_ranges(nights) -> dict[str, dict[str, float]]:
    """Mean, min and max of each hypnogram statistic over the real nights (NaNs skipped).

    Parameters
    ----------
    nights : list of RealNight
        The real nights (:func:`~sleepnet.sim.hypnogram_model.load_real_nights`).

    Returns
    -------
    dict of str to dict of str to float
        Per statistic name, ``mean``, ``min``, ``max`` (rounded to 4 decimals) and ``n``,
        the nights where it is defined.
    """
    stats = [hypnogram_statistics(n.labels, n.lights_off_known) for n in nights]
    out = {}
    for k in HYPNOGRAM_STAT_NAMES:
        v = np.array([d[k] for d in stats], dtype=float)
        v = v[np.isfinite(v)]
        out[k] = {"mean": round(float(v.mean()), 4), "min": round(float(v.min()), 4),
                  "max": round(float(v.max()), 4), "n": int(len(v))}
    return out


def fit_envelope(data: Path, seed: int = 7, nights: list[FeatureNight] | None = None) -> dict:
    """The spectral envelope model fitted to the calibration subjects' feature nights, JSON-ready.

    Parameters
    ----------
    data : Path
        The real-data folder (:func:`data_dir_or_error`).
    seed : int, default 7
        Seed of the mixture fit.
    nights : list of FeatureNight, optional
        The feature nights (default: read from ``data`` by :func:`load_feature_nights`);
        only those of :data:`CALIBRATION_SUBJECTS` are used.

    Returns
    -------
    dict
        :meth:`~sleepnet.sim.envelope.SpectralEnvelopeModel.to_dict` of the fitted model.
    """
    feats = [n for n in (nights if nights is not None else load_feature_nights(data))
             if subject_number(n) in CALIBRATION_SUBJECTS]
    model = fit_envelope_model(
        [(n.features, n.labels) for n in feats], n_components=ENVELOPE_COMPONENTS, seed=seed,
        spread=ENVELOPE_SPREAD,
        source=("Fitted by `python -m sleepnet.sim.calibrate` to the Fpz-Cz base features of "
                + ", ".join(f"{n.name}.npz" for n in feats)
                + " (sleep-edf-features: Sleep-EDF Expanded, PhysioNet ODC-By 1.0, via matteo-omizzolo/sleep-EDF, "
                  "MIT), nights trimmed to 30 min of wake around sleep; SC405x-SC409x held out."),
    )
    return model.to_dict()


def calibrate(data: Path, seed: int = 7, n_subjects: int = 40, minutes: float = 15.0) -> dict:
    """Fit everything; return the JSON-ready parameter dict.

    Parameters
    ----------
    data : Path
        The real-data folder (:func:`data_dir_or_error`).
    seed : int, default 7
        Seed of the simulated segments and the fits.
    n_subjects : int, default 40
        Simulated segments (subjects) per stage.
    minutes : float, default 15.0
        Length of each simulated segment, min.

    Returns
    -------
    dict
        What ``simulation_params.json`` holds: ``source``, ``calibration`` (what was fitted
        to what, and each stage's loss), the hypnogram model and real statistic ranges,
        ``stage_signal``, ``spectral_envelope`` and ``subject_distribution``.
    """
    t0 = time.perf_counter()
    hyp = fit_hypnograms(data)
    hmodel = HypnogramModel.from_dict(hyp["hypnogram_model"])
    log.info("hypnogram model: %d nights (%.1f s)", hyp["hypnogram_model"]["n_nights"], time.perf_counter() - t0)
    feats = [n for n in load_feature_nights(data) if subject_number(n) in CALIBRATION_SUBJECTS]
    X = np.concatenate([n.features for n in feats])
    y = np.concatenate([n.labels for n in feats])
    gains = np.zeros((N_STAGES, len(COMPONENTS)))
    sig = np.zeros((4, N_STAGES))
    fit_report = {}
    for s in range(N_STAGES):
        units = unit_contributions(s, n_subjects, minutes, seed, model=hmodel)
        row, sigmas, loss = fit_stage(s, X[y == s], units, seed, spread=SPREAD)
        gains[s], sig[:, s] = row, sigmas
        fit_report[STAGES[s]] = {"loss": round(loss, 4), "real_epochs": int((y == s).sum())}
        log.info("stage %-3s fitted: loss %.3f (%.1f s)", STAGES[s], loss, time.perf_counter() - t0)
    sp = StageSignalParams(gains_uv=gains, sigma_common=sig[0], sigma_indep=sig[1], sigma_depth=sig[2],
                           sigma_eye=sig[3])
    return {
        "source": ("Fitted by `python -m sleepnet.sim.calibrate` to real Sleep-EDF Expanded data in "
                   "../shared/data (PhysioNet, ODC-By 1.0): hypnograms/ for the stage model; "
                   "sleep-edf-features/ (Fpz-Cz base features, matteo-omizzolo/sleep-EDF, MIT) of "
                   "subjects SC400x-SC404x for the signal; SC405x-SC409x held out."),
        "calibration": {
            "feature_subjects": [f"SC40{s}" for s in CALIBRATION_SUBJECTS],
            "held_out_subjects": [f"SC40{s}" for s in HELD_OUT_SUBJECTS],
            "feature_nights": [f"{n.name}.npz" for n in feats],
            "trim": "30 min of wake kept before the first and after the last sleep epoch",
            "seed": seed, "segments_per_stage": n_subjects, "segment_minutes": minutes,
            "quantiles": [round(float(q), 3) for q in QUANTILES],
            "spread": SPREAD, "correlation_weight": CORR_WEIGHT,
            "fit": fit_report,
            "event_rates_per_min": {k: dict(zip(STAGES, v)) for k, v in EVENT_RATES_PER_MIN.items()},
        },
        **hyp,
        "stage_signal": sp.to_dict(),
        "spectral_envelope": fit_envelope(data, seed, feats),
        "subject_distribution": {k: (list(v) if isinstance(v, tuple) else v)
                                 for k, v in SubjectDistribution().__dict__.items()},
    }


def main(argv: list[str] | None = None) -> int:
    """The ``python -m sleepnet.sim.calibrate`` command.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0, or 2 with one logged line when the data folder or the
        parameters to update cannot be read.
    """
    parser = argparse.ArgumentParser(prog="python -m sleepnet.sim.calibrate", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help=f"real data folder (default {DEFAULT_DATA})")
    parser.add_argument("--out", type=Path, default=PARAMS_PATH, help="where to write the parameters")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--subjects", type=int, default=40, help="simulated subjects per stage")
    parser.add_argument("--hypnogram-only", action="store_true",
                        help="refit only the hypnogram model, keeping the signal parameters in --out")
    parser.add_argument("--envelope-only", action="store_true",
                        help="refit only the spectral envelope model (seconds), keeping the rest of --out")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        data = data_dir_or_error(args.data)
    except SleepstreamError as exc:
        log.error("calibrate: %s", exc.naming({"data": "--data"}))
        return 2
    if args.hypnogram_only or args.envelope_only:
        try:
            params = json.loads(args.out.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.error("calibrate: %s: cannot read the parameters to update (%s)", args.out,
                      getattr(exc, "strerror", None) or exc)
            return 2
        if args.hypnogram_only:
            params.update(fit_hypnograms(data))
        if args.envelope_only:
            params["spectral_envelope"] = fit_envelope(data, args.seed)
    else:
        params = calibrate(data, seed=args.seed, n_subjects=args.subjects)
    args.out.write_text(json.dumps(params, indent=1) + "\n", encoding="utf-8")
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
