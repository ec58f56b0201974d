"""The spectral envelope of a simulated night: per-epoch band powers drawn from a model
fitted to real Sleep-EDF nights, then imposed on the synthesised signal.

Summing per-stage phenomena with independently wandering gains (:mod:`sleepnet.sim`)
reproduces each spectral feature's spread within a stage, but not how the features move
*together* from epoch to epoch (real N3 with modest delta, quiet wake with little alpha
and few blinks, N1 that sits between wake and N2). A classifier reads that joint
distribution, so the simulator finishes each night by imposing a target envelope: per
30-s epoch, the mean PSD in the five feature bands (delta 0.5-4, theta 4-8, alpha 8-13,
beta 13-30, gamma 30-50 Hz, µV²/Hz) and the variance (µV²), drawn from

    target[e] = a[s] + b[s] * hours_since_sleep_onset[e] + offset + mu[s, k] + spread * L[s, k] @ xi[e]

* ``s`` the epoch's stage; ``a``, ``b`` the stage's level and its trend across the night
  (slow waves fade, REM changes);
* ``offset`` ~ N(0, between-night covariance), one per night: people differ;
* ``k`` a component of the stage's Gaussian mixture (e.g. quiet vs active wake), kept
  from one epoch to the next with the probability seen in real nights;
* ``xi`` an AR(1) standard-normal process (lag-1 coefficient per stage, from
  consecutive real epochs), so neighbouring epochs resemble each other;
* ``spread`` scales the within-stage spread (1 = as wide as the real nights).

The phenomena keep their waveforms: the envelope only rescales six frequency bands
(< 0.5 Hz, which carries the rest of the variance, and the five above, the last one
running to Nyquist) with one gain per band and epoch, cross-faded over a few seconds
at epoch boundaries. Fitted by ``python -m sleepnet.sim.calibrate`` (see
:func:`fit_envelope_model`); everything here is plain numpy and deterministic.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import fft as sfft

from ..features import BASE_BANDS_HZ, BASE_NPERSEG, welch_band_means
from ..stages import EPOCH_S, N_STAGES, STAGES, epoch_samples

#: The feature bands whose mean Welch PSD is a target (sleepnet.features.BASE_BANDS_HZ).
FEATURE_BANDS_HZ: tuple[tuple[float, float], ...] = BASE_BANDS_HZ
#: Edges (Hz) of the envelope's bands: [0, 0.5) then the five feature bands; the last
#: band runs to Nyquist.
BAND_EDGES_HZ: tuple[float, ...] = (0.0, *(lo for lo, _ in FEATURE_BANDS_HZ))
TARGET_NAMES: tuple[str, ...] = ("log_delta_uv2_hz", "log_theta_uv2_hz", "log_alpha_uv2_hz", "log_beta_uv2_hz",
                                 "log_gamma_uv2_hz", "log_var_uv2")
N_TARGETS = len(TARGET_NAMES)
#: Width (s) of the gain cross-fade at each epoch boundary.
CROSSFADE_S = 4.0
#: Bounds of a band's log amplitude gain (x0.007 .. x150).
MAX_LOG_GAIN = 5.0


@dataclass(frozen=True)
class SpectralEnvelopeModel:
    """Per-stage model of the six envelope targets (see the module docstring).

    :func:`fit_envelope_model` fits it to real nights; :func:`draw_targets` draws one
    night's targets from it.

    Parameters
    ----------
    level : numpy.ndarray
        (5, 6) stage level at sleep onset, log units (µV²/Hz for bands, µV² for var).
    trend_per_h : numpy.ndarray
        (5, 6) change per hour since sleep onset.
    night_chol : numpy.ndarray
        (6, 6) Cholesky factor of the between-night offset covariance.
    weights : numpy.ndarray
        (5, K) mixture weights per stage.
    means : numpy.ndarray
        (5, K, 6) component means (around the stage level).
    chols : numpy.ndarray
        (5, K, 6, 6) Cholesky factors of the component covariances.
    ar1 : numpy.ndarray
        (5,) lag-1 coefficient of the within-component residual.
    stay : numpy.ndarray
        (5,) probability that consecutive epochs of a stage keep their component.
    spread : float, default 1.0
        Scale of the within-component spread (1 = as in the real nights).
    max_hours : float, default 9.0
        The trend is applied up to this many hours after sleep onset.
    source : str, default ""
        Where the parameters come from.
    """

    level: np.ndarray
    trend_per_h: np.ndarray
    night_chol: np.ndarray
    weights: np.ndarray
    means: np.ndarray
    chols: np.ndarray
    ar1: np.ndarray
    stay: np.ndarray
    spread: float = 1.0
    max_hours: float = 9.0
    source: str = ""

    def to_dict(self) -> dict:
        """The model as JSON-ready lists, rounded to 5 decimals (:meth:`from_dict` reads it back).

        Returns
        -------
        dict
            The fields by name, plus ``targets`` (:data:`TARGET_NAMES`) and ``stages``.
        """
        r = lambda a: np.round(np.asarray(a, dtype=float), 5).tolist()  # noqa: E731
        return {
            "targets": list(TARGET_NAMES), "stages": list(STAGES),
            "level": r(self.level), "trend_per_h": r(self.trend_per_h), "night_chol": r(self.night_chol),
            "weights": r(self.weights), "means": r(self.means), "chols": r(self.chols),
            "ar1": r(self.ar1), "stay": r(self.stay), "spread": float(self.spread),
            "max_hours": float(self.max_hours), "source": self.source,
        }

    @classmethod
    def from_dict(cls, d: dict) -> SpectralEnvelopeModel:
        """The model from :meth:`to_dict`'s form.

        Parameters
        ----------
        d : dict
            The fields by name; ``spread``, ``max_hours`` and ``source`` may be absent
            (defaults 1.0, 9.0 h, "").

        Returns
        -------
        SpectralEnvelopeModel
            The model, arrays as float64.
        """
        a = lambda k: np.asarray(d[k], dtype=np.float64)  # noqa: E731
        return cls(level=a("level"), trend_per_h=a("trend_per_h"), night_chol=a("night_chol"), weights=a("weights"),
                   means=a("means"), chols=a("chols"), ar1=a("ar1"), stay=a("stay"),
                   spread=float(d.get("spread", 1.0)), max_hours=float(d.get("max_hours", 9.0)),
                   source=str(d.get("source", "")))

    def with_spread(self, spread: float) -> SpectralEnvelopeModel:
        """A copy with another within-component spread.

        Parameters
        ----------
        spread : float
            Scale of the within-component spread (1 = as in the real nights).

        Returns
        -------
        SpectralEnvelopeModel
            The same model but for ``spread``.
        """
        return replace(self, spread=float(spread))


# --------------------------------------------------------------------------- targets from features

def targets_from_base_features(X: np.ndarray) -> np.ndarray:
    """Envelope targets from base features.

    Parameters
    ----------
    X : numpy.ndarray
        (n, 9) base features (volts, as in sleep-edf-features).

    Returns
    -------
    numpy.ndarray
        (n, 6) envelope targets: log mean PSD of the five bands in µV²/Hz and log
        variance in µV² (the ``+ 1e-10`` inside the features' logs undone exactly).
    """
    X = np.asarray(X, dtype=np.float64)
    psd = np.clip(np.exp(X[:, :5]) - 1e-10, 1e-20, None) * 1e12
    var = np.clip(np.exp(X[:, 7]) - 1e-10, 1e-20, None) * 1e12
    return np.column_stack([np.log(psd), np.log(var)])


def hours_since_sleep_onset(labels: np.ndarray) -> np.ndarray:
    """Hours from the first sleep epoch, per epoch.

    Parameters
    ----------
    labels : numpy.ndarray
        (n_epochs,) stage codes of consecutive 30-s epochs (0 = W; codes 1..4 are sleep).

    Returns
    -------
    numpy.ndarray
        (n_epochs,) hours from the first sleep epoch (0 before it, and everywhere when
        the night has no sleep).
    """
    labels = np.asarray(labels)
    sleep = np.flatnonzero((labels > 0) & (labels < N_STAGES))
    first = sleep[0] if len(sleep) else len(labels)
    return np.clip((np.arange(len(labels)) - first) * EPOCH_S / 3600.0, 0.0, None)


# --------------------------------------------------------------------------- fitting

def _gmm(Z: np.ndarray, k: int, rng: np.random.Generator, iters: int = 200,
         reg: float = 1e-3) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Full-covariance Gaussian mixture by EM. Returns weights (k,), means (k, d),
    covariances (k, d, d) and the hard assignment of each row."""
    n, d = Z.shape
    k = max(1, min(k, n // (5 * d)))
    # k-means++ style start
    centres = [Z[rng.integers(n)]]
    for _ in range(1, k):
        d2 = np.min([((Z - c) ** 2).sum(axis=1) for c in centres], axis=0)
        centres.append(Z[rng.choice(n, p=d2 / d2.sum())])
    mu = np.array(centres)
    cov = np.repeat(np.cov(Z.T)[None] + reg * np.eye(d), k, axis=0)
    w = np.full(k, 1.0 / k)
    prev = -np.inf
    for _ in range(iters):
        logp = np.empty((n, k))
        for j in range(k):
            L = np.linalg.cholesky(cov[j])
            sol = np.linalg.solve(L, (Z - mu[j]).T)
            logp[:, j] = (np.log(w[j]) - 0.5 * (sol ** 2).sum(axis=0) - np.log(np.diag(L)).sum()
                          - 0.5 * d * np.log(2 * np.pi))
        m = logp.max(axis=1, keepdims=True)
        ll = float((m[:, 0] + np.log(np.exp(logp - m).sum(axis=1))).mean())
        r = np.exp(logp - m)
        r /= r.sum(axis=1, keepdims=True)
        nk = r.sum(axis=0) + 1e-9
        w = nk / n
        mu = (r.T @ Z) / nk[:, None]
        for j in range(k):
            dz = Z - mu[j]
            cov[j] = (r[:, j, None] * dz).T @ dz / nk[j] + reg * np.eye(d)
        if ll - prev < 1e-6:
            break
        prev = ll
    return w, mu, cov, r.argmax(axis=1)


def fit_envelope_model(nights: list[tuple[np.ndarray, np.ndarray]], n_components: int = 3, seed: int = 7,
                       spread: float = 1.0, source: str = "") -> SpectralEnvelopeModel:
    """Fit the model to real nights.

    Levels and trends are least-squares fits per stage (wake gets its mean and no
    trend); each night's mean residual is its offset; the rest is a Gaussian mixture
    per stage fitted by EM, whose component persistence and AR(1) coefficient are read
    from consecutive epochs of the same stage.

    Parameters
    ----------
    nights : list of tuple of (numpy.ndarray, numpy.ndarray)
        Each ``(X, y)``: (n_epochs, 9) base features of consecutive 30-s epochs (volts,
        as in sleep-edf-features) and their stage codes.
    n_components : int, default 3
        Mixture components per stage (fewer where a stage has few epochs).
    seed : int, default 7
        Seed of the mixture fit's start.
    spread : float, default 1.0
        The model's within-component spread (1 = as in the real nights).
    source : str, default ""
        Where the nights come from, kept in the model.

    Returns
    -------
    SpectralEnvelopeModel
        The fitted model.
    """
    rng = np.random.default_rng(seed)
    Zs = [targets_from_base_features(X) for X, _ in nights]
    ys = [np.asarray(y, dtype=int) for _, y in nights]
    hs = [np.minimum(hours_since_sleep_onset(y), 9.0) for y in ys]
    Z, y, h = np.concatenate(Zs), np.concatenate(ys), np.concatenate(hs)
    D = N_TARGETS
    level = np.zeros((N_STAGES, D))
    trend = np.zeros((N_STAGES, D))
    for s in range(N_STAGES):
        m = y == s
        A = np.column_stack([np.ones(m.sum()), h[m]])
        coef, *_ = np.linalg.lstsq(A, Z[m], rcond=None)
        level[s], trend[s] = coef
        if s == 0:            # wake: before sleep and after waking are different worlds; no trend
            level[s], trend[s] = Z[m].mean(axis=0), 0.0
    offsets = []
    resid_nights = []
    for Zn, yn, hn in zip(Zs, ys, hs):
        r = Zn - level[yn] - trend[yn] * hn[:, None]
        o = r.mean(axis=0)
        offsets.append(o)
        resid_nights.append(r - o)
    offsets = np.array(offsets)
    night_cov = np.cov(offsets.T) + 1e-4 * np.eye(D) if len(offsets) > 1 else 1e-4 * np.eye(D)
    R = np.concatenate(resid_nights)
    K = n_components
    weights = np.zeros((N_STAGES, K))
    means = np.zeros((N_STAGES, K, D))
    chols = np.repeat(np.eye(D)[None, None] * 1e-2, N_STAGES, axis=0).repeat(K, axis=1)
    assign = np.zeros(len(R), dtype=int)
    for s in range(N_STAGES):
        m = y == s
        w, mu, cov, a = _gmm(R[m], K, rng)
        weights[s, : len(w)], means[s, : len(w)] = w, mu
        for j in range(len(w)):
            chols[s, j] = np.linalg.cholesky(cov[j])
        assign[m] = a
    # persistence of components and AR(1) of the whitened residual, from consecutive epochs
    ar1 = np.zeros(N_STAGES)
    stay = np.zeros(N_STAGES)
    start = 0
    pairs: list[list[tuple[int, int]]] = [[] for _ in range(N_STAGES)]
    for yn in ys:
        idx = np.arange(start, start + len(yn))
        same = yn[1:] == yn[:-1]
        for i in idx[:-1][same]:
            pairs[y[i]].append((i, i + 1))
        start += len(yn)
    for s in range(N_STAGES):
        if not pairs[s]:
            continue
        p = np.array(pairs[s])
        a0, a1 = assign[p[:, 0]], assign[p[:, 1]]
        stay[s] = float((a0 == a1).mean())
        keep = a0 == a1
        if keep.sum() < 10:
            continue
        white = []
        for col in (0, 1):
            rows = p[keep, col]
            comp = assign[rows]
            xi = np.empty((len(rows), D))
            for j in np.unique(comp):
                sel = comp == j
                xi[sel] = np.linalg.solve(chols[s, j], (R[rows[sel]] - means[s, j]).T).T
            white.append(xi)
        ar1[s] = float(np.clip(np.mean([np.corrcoef(white[0][:, d], white[1][:, d])[0, 1] for d in range(D)]),
                               0.0, 0.98))
    return SpectralEnvelopeModel(level=level, trend_per_h=trend, night_chol=np.linalg.cholesky(night_cov),
                                 weights=weights, means=means, chols=chols, ar1=ar1, stay=stay,
                                 spread=float(spread), source=source)


# --------------------------------------------------------------------------- drawing and imposing

def draw_targets(model: SpectralEnvelopeModel, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw the envelope targets of one simulated night.

    Parameters
    ----------
    model : SpectralEnvelopeModel
        The envelope model.
    labels : numpy.ndarray
        (n_epochs,) stage codes of the night's 30-s epochs.
    rng : numpy.random.Generator
        The source of randomness (one night offset, mixture picks, AR(1) noise).

    Returns
    -------
    numpy.ndarray
        (n_epochs, 6) envelope targets (log band PSDs in µV²/Hz, log variance in µV²).
    """
    labels = np.asarray(labels, dtype=int)
    n = len(labels)
    D = N_TARGETS
    h = np.minimum(hours_since_sleep_onset(labels), model.max_hours)
    offset = model.night_chol @ rng.standard_normal(D)
    noise = rng.standard_normal((n, D))
    u = rng.random(n)
    picks = rng.random(n)
    out = np.empty((n, D))
    xi = rng.standard_normal(D)
    k = -1
    for e in range(n):
        s = labels[e]
        rho = model.ar1[s]
        xi = rho * xi + np.sqrt(1.0 - rho * rho) * noise[e]
        if e == 0 or s != labels[e - 1] or u[e] >= model.stay[s]:
            k = int(np.searchsorted(np.cumsum(model.weights[s]), picks[e] * model.weights[s].sum()))
            k = min(k, model.weights.shape[1] - 1)
        out[e] = (model.level[s] + model.trend_per_h[s] * h[e] + offset + model.means[s, k]
                  + model.spread * (model.chols[s, k] @ xi))
    return out


def measure_envelope(x_uv: np.ndarray, sfreq: float) -> np.ndarray:
    """Measure the envelope of epochs as the base features measure it.

    Parameters
    ----------
    x_uv : numpy.ndarray
        (n_epochs, n_times) signal, µV.
    sfreq : float
        Sampling rate, Hz.

    Returns
    -------
    numpy.ndarray
        (n_epochs, 6) log band PSDs (µV²/Hz) and log variance (µV²), measured as the
        base features measure them (Welch, 0.39-Hz bins).
    """
    x = np.asarray(x_uv, dtype=np.float64)
    nper = int(round(BASE_NPERSEG * sfreq / 100.0))
    return np.log(np.column_stack([welch_band_means(x, sfreq, nper), x.var(axis=1)]) + 1e-12)


def _gain_trace(log_gain: np.ndarray, n: int, spe: int, fade: int) -> np.ndarray:
    """Per-sample gain from one log gain per epoch: flat inside an epoch, linear
    cross-fade of ``fade`` samples centred on each boundary."""
    n_ep = len(log_gain)
    starts = np.arange(n_ep) * spe
    half = fade // 2
    xp = np.column_stack([starts + half, starts + spe - half]).ravel().astype(np.float64)
    fp = np.repeat(log_gain, 2)
    return np.exp(np.interp(np.arange(n, dtype=np.float64), xp, fp)).astype(np.float32)


def impose_envelope(x_uv: np.ndarray, sfreq: float, targets: np.ndarray, iterations: int = 4,
                    crossfade_s: float = CROSSFADE_S) -> np.ndarray:
    """Rescale six frequency bands of ``x_uv`` epoch by epoch so that each epoch's band
    PSDs and variance approach ``targets``.

    Samples after the last complete epoch follow its gains.

    Parameters
    ----------
    x_uv : numpy.ndarray
        (n_times,) the synthesised signal, µV.
    sfreq : float
        Sampling rate, Hz.
    targets : numpy.ndarray
        (n_epochs, 6) envelope targets, as :func:`measure_envelope` measures them.
    iterations : int, default 4
        Rounds of measuring and correcting the band gains.
    crossfade_s : float, default CROSSFADE_S
        Width (s) of the gain cross-fade at each epoch boundary.

    Returns
    -------
    numpy.ndarray
        (n_times,) the rescaled signal, float32 µV (``x_uv`` unchanged when it holds
        no complete epoch).
    """
    x = np.asarray(x_uv, dtype=np.float64)
    spe = epoch_samples(sfreq)
    n_ep = min(len(targets), len(x) // spe)
    if n_ep == 0:
        return np.asarray(x_uv, dtype=np.float32)
    n = len(x)
    spec = sfft.rfft(x)
    f = sfft.rfftfreq(n, 1.0 / sfreq)
    edges = list(BAND_EDGES_HZ) + [np.inf]
    subs = [sfft.irfft(np.where((f >= lo) & (f < hi), spec, 0), n).astype(np.float32)
            for lo, hi in zip(edges[:-1], edges[1:])]
    del spec
    targets = np.asarray(targets[:n_ep], dtype=np.float64)
    G = np.zeros((len(subs), n_ep))
    fade = max(2, int(round(crossfade_s * sfreq)))
    for it in range(iterations + 1):
        traces = [_gain_trace(G[b], n, spe, fade) for b in range(len(subs))]
        y = np.zeros(n, dtype=np.float32)
        for tr, sb in zip(traces, subs):
            y += tr * sb
        if it == iterations:
            break
        ep = y[: n_ep * spe].reshape(n_ep, spe)
        meas = measure_envelope(ep, sfreq)
        G[1:] += 0.5 * (targets[:, :5] - meas[:, :5]).T
        # the slowest band carries what the variance target leaves over
        low = (traces[0][: n_ep * spe] * subs[0][: n_ep * spe]).reshape(n_ep, spe).astype(np.float64)
        low_pow = low.var(axis=1) + 1e-9
        var_t, var_m = np.exp(targets[:, 5]), np.exp(meas[:, 5])
        want_low = np.maximum(var_t - (var_m - low_pow), 0.02 * var_t)
        G[0] += 0.5 * np.log(want_low / low_pow)
        np.clip(G, -MAX_LOG_GAIN, MAX_LOG_GAIN, out=G)
    return y


__all__ = [
    "SpectralEnvelopeModel", "fit_envelope_model", "draw_targets", "impose_envelope", "measure_envelope",
    "targets_from_base_features", "hours_since_sleep_onset", "TARGET_NAMES",
]
