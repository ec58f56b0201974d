"""One preprocessing path for batch and live: samples at any rate in, model-ready epochs out.

:class:`Preprocessor` is stateful and causal. Feed it samples in chunks of any size
(a whole file is one chunk); it resamples to 100 Hz, band-passes 0.3-35 Hz with a
4th-order Butterworth (SOS, state carried across chunks, never zero-phase), scales µV
to model units, cuts 30-s epochs by counting samples and flags each epoch's quality.
Each epoch also carries its nine base spectral features
(:func:`sleepnet.features.base_features`), computed from the resampled signal BEFORE
the band-pass, as the shared Sleep-EDF feature files were.
Cutting the same samples into different chunks gives bit-identical epochs.

Missing samples (NaN/Inf, or gaps the live streamer fills with NaN) are held at the
last valid value before filtering, so the filter state is never poisoned, and counted
per epoch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
from scipy import signal

from .features import base_features
from .stages import EPOCH_S, epoch_samples

FLAG_GAP = "gap"
FLAG_FLAT = "flat"
FLAG_CLIPPED = "clipped"
FLAG_ARTEFACT = "artefact"
FLAG_WARMUP = "warmup"


@dataclass(frozen=True)
class PreprocessConfig:
    """Everything that defines the model's input; stored in ``weights/config.json``.

    A model reads its own under ``preprocess`` (:meth:`from_dict`); :class:`Preprocessor`
    and :func:`preprocess_signal` turn a signal into the epochs it describes.

    Parameters
    ----------
    sfreq_hz : float, default 100.0
        Model rate, Hz.
    epoch_s : float, default EPOCH_S
        Epoch length, s.
    l_freq_hz : float, default 0.3
        Low edge of the causal Butterworth band-pass, Hz.
    h_freq_hz : float, default 35.0
        Its high edge, Hz.
    filter_order : int, default 4
        Its order.
    scale_uv : float, default 50.0
        Fixed normalisation: model units = µV / scale_uv (amplitude differences between
        stages are kept).
    clip_units : float, default 20.0
        Model-unit values are clipped to +-clip_units (artefacts of thousands of µV do
        not dominate).
    """

    sfreq_hz: float = 100.0
    epoch_s: float = EPOCH_S
    l_freq_hz: float = 0.3
    h_freq_hz: float = 35.0
    filter_order: int = 4
    scale_uv: float = 50.0
    clip_units: float = 20.0

    @property
    def epoch_samples(self) -> int:
        """Samples per epoch at the model rate."""
        return epoch_samples(self.sfreq_hz, self.epoch_s)

    def as_dict(self) -> dict:
        """The config as ``config.json`` holds it (:meth:`from_dict` reads it back).

        Returns
        -------
        dict
            ``sfreq_hz``, ``epoch_s``, ``filter`` (kind, edges, order) and
            ``normalisation`` (kind, scale_uv, clip_units).
        """
        return {
            "sfreq_hz": self.sfreq_hz, "epoch_s": self.epoch_s,
            "filter": {"kind": "butterworth_bandpass_causal_sos", "l_freq_hz": self.l_freq_hz,
                       "h_freq_hz": self.h_freq_hz, "order": self.filter_order},
            "normalisation": {"kind": "fixed_uv_scale", "scale_uv": self.scale_uv,
                              "clip_units": self.clip_units},
        }

    @classmethod
    def from_dict(cls, d: dict) -> PreprocessConfig:
        """The config from :meth:`as_dict`'s form.

        Parameters
        ----------
        d : dict
            As :meth:`as_dict` writes it.

        Returns
        -------
        PreprocessConfig
            The config.

        Raises
        ------
        ValueError
            A filter other than the causal Butterworth SOS band-pass, or a normalisation
            other than the fixed µV scale.
        """
        f, n = d["filter"], d["normalisation"]
        if f.get("kind") != "butterworth_bandpass_causal_sos":
            raise ValueError(f"unsupported filter kind {f.get('kind')!r}")
        if n.get("kind") != "fixed_uv_scale":
            raise ValueError(f"unsupported normalisation kind {n.get('kind')!r}")
        return cls(sfreq_hz=float(d["sfreq_hz"]), epoch_s=float(d["epoch_s"]),
                   l_freq_hz=float(f["l_freq_hz"]), h_freq_hz=float(f["h_freq_hz"]),
                   filter_order=int(f["order"]), scale_uv=float(n["scale_uv"]),
                   clip_units=float(n["clip_units"]))


@dataclass(frozen=True)
class QualityThresholds:
    """Per-epoch quality rules (on the µV signal before scaling).

    Parameters
    ----------
    flat_std_uv : float, default 1.0
        Raw SD below this, µV: flat line / no electrode (``flat``; not scored).
    clip_fraction : float, default 0.05
        This share of raw samples pinned at the epoch's max or min: ``clipped``.
    artefact_abs_uv : float, default 500.0
        Filtered ``|x|`` above this, µV...
    artefact_fraction : float, default 0.01
        ...in more than this share of samples: ``artefact``.
    unscored_missing_fraction : float, default 0.25
        More missing than this share: not scored.
    unscored_clip_fraction : float, default 0.5
        This share clipped or more: not scored.
    """

    flat_std_uv: float = 1.0          # raw std below this: flat line / no electrode
    clip_fraction: float = 0.05       # this share of raw samples pinned at the epoch's max or min
    artefact_abs_uv: float = 500.0    # filtered |x| above this...
    artefact_fraction: float = 0.01   # ...in this share of samples: artefact
    unscored_missing_fraction: float = 0.25  # more missing than this: not scored
    unscored_clip_fraction: float = 0.5      # more clipped than this: not scored


@dataclass(frozen=True)
class Epoch:
    """A model-ready 30-s epoch.

    Parameters
    ----------
    index : int
        0-based epoch number since the preprocessor started.
    data : numpy.ndarray
        (epoch_samples,) float32, filtered and scaled (model units = µV / scale_uv).
    missing_fraction : float, default 0.0
        Share of its samples that were missing (NaN/Inf/gap).
    flags : tuple of str, default ()
        Quality flags among gap, flat, clipped, artefact.
    scorable : bool, default True
        False when the epoch must be recorded as unscored (too much missing, flat, or
        mostly clipped) rather than given a made-up stage.
    features : numpy.ndarray or None, default None
        (9,) float64, :func:`sleepnet.features.base_features` of the epoch's signal
        resampled to 100 Hz but NOT band-passed, in volts (the definitions of the shared
        Sleep-EDF feature files); None for an epoch made by hand without them.
    """

    index: int
    data: np.ndarray = field(repr=False)
    missing_fraction: float = 0.0
    flags: tuple[str, ...] = ()
    scorable: bool = True
    features: np.ndarray | None = field(default=None, repr=False, compare=False)


def rational_ratio(sfreq_in: float, sfreq_out: float) -> tuple[int, int]:
    """(up, down) with sfreq_out / sfreq_in == up / down.

    Parameters
    ----------
    sfreq_in : float
        Input rate, Hz.
    sfreq_out : float
        Output rate, Hz.

    Returns
    -------
    up : int
        Upsampling factor.
    down : int
        Downsampling factor (at most 10000).

    Raises
    ------
    ValueError
        No such ratio with a denominator up to 10000 (within 1e-6).
    """
    frac = Fraction(sfreq_out / sfreq_in).limit_denominator(10000)
    if abs(float(frac) * sfreq_in - sfreq_out) > 1e-6 * sfreq_out:
        raise ValueError(f"cannot resample {sfreq_in} Hz to {sfreq_out} Hz with a rational ratio")
    return frac.numerator, frac.denominator


class StreamingResampler:
    """Causal polyphase FIR resampler with state; chunking never changes the output.

    Output sample k is the anti-aliased input at time k / sfreq_out, computed from inputs
    up to index floor(k * down / up); each output is summed in the same order whatever
    the chunk, so the result is bit-identical to one call on the whole signal. The FIR
    (scipy's resample_poly design) delays the signal by about its half length
    (~0.1 s at 256 Hz).

    Parameters
    ----------
    sfreq_in : float
        Input rate, Hz.
    sfreq_out : float
        Output rate, Hz (a rational ratio to ``sfreq_in``: :func:`rational_ratio`).
    """

    def __init__(self, sfreq_in: float, sfreq_out: float) -> None:
        self.up, self.down = rational_ratio(sfreq_in, sfreq_out)
        max_rate = max(self.up, self.down)
        half_len = 10 * max_rate
        h = signal.firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", 5.0)) * self.up
        self.n_taps_per_phase = -(-len(h) // self.up)
        h = np.concatenate([h, np.zeros(self.n_taps_per_phase * self.up - len(h))])
        # coefs[p, i] multiplies x[n_max - i] for an output of phase p.
        self._coefs = h.reshape(self.n_taps_per_phase, self.up).T.copy()
        self._history = np.zeros(0)  # last n_taps_per_phase inputs (float64)
        self._n_in = 0                # inputs consumed so far
        self._n_out = 0               # outputs produced so far
        self._started = False

    def process(self, x: np.ndarray, missing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Resample a chunk.

        Parameters
        ----------
        x : numpy.ndarray
            (n,) the next input samples, µV (no NaN: hold missing ones first).
        missing : numpy.ndarray
            (n,) bool, which of them were missing.

        Returns
        -------
        y : numpy.ndarray
            The outputs this chunk completes, float64.
        missing : numpy.ndarray
            Bool, whether the nearest input (at or before each output's time) was missing.
        """
        y, out_missing, _ = self.process_with_nearest(x, missing)
        return y, out_missing

    def process_with_nearest(self, x: np.ndarray, missing: np.ndarray
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Like :meth:`process`, plus the nearest input value (µV, the latest input at or
        before each output's time), for quality checks that need input values as they
        were (a rail or a flat line stays exactly constant there; the FIR output rings
        by ~8 % of a step and ripples by ~0.5 µV).

        Parameters
        ----------
        x : numpy.ndarray
            As for :meth:`process`.
        missing : numpy.ndarray
            As for :meth:`process`.

        Returns
        -------
        y : numpy.ndarray
            As :meth:`process` returns it.
        missing : numpy.ndarray
            As :meth:`process` returns it.
        nearest : numpy.ndarray
            The nearest input value of each output, µV.
        """
        x = np.asarray(x, dtype=np.float64)
        if not self._started and len(x):
            self._history = np.full(self.n_taps_per_phase, x[0])
            self._missing_hist = np.zeros(self.n_taps_per_phase, dtype=bool)
            self._started = True
        if not len(x):
            return np.zeros(0), np.zeros(0, dtype=bool), np.zeros(0)
        buf = np.concatenate([self._history, x])
        mbuf = np.concatenate([self._missing_hist, missing])
        offset = self._n_in - len(self._history)  # global index of buf[0]
        n_in_total = self._n_in + len(x)
        # every output k with floor(k*down/up) <= n_in_total - 1
        k_end = (n_in_total * self.up - 1) // self.down + 1
        ks = np.arange(self._n_out, k_end, dtype=np.int64)
        n_max = (ks * self.down) // self.up
        phase = (ks * self.down) % self.up
        local = n_max - offset
        coefs = self._coefs[phase]
        y = np.zeros(len(ks))
        for i in range(self.n_taps_per_phase):
            y += coefs[:, i] * buf[local - i]
        out_missing = mbuf[local]
        keep = self.n_taps_per_phase
        self._history = buf[len(buf) - keep:]
        self._missing_hist = mbuf[len(mbuf) - keep:]
        self._n_in = n_in_total
        self._n_out = int(k_end)
        return y, out_missing, buf[local]


class Preprocessor:
    """Stateful causal preprocessing from raw µV at ``sfreq_in`` to model-ready epochs.

    Lifecycle: create once per recording (or per stream), call :meth:`push` with each
    chunk of µV samples (NaN marks a missing sample), collect the epochs it returns.
    Samples of an unfinished last epoch stay inside until more arrive.

    Parameters
    ----------
    sfreq_in : float
        Rate of the samples pushed, Hz (resampled to ``config.sfreq_hz`` when different).
    config : PreprocessConfig, optional
        The model's input definition (default: :class:`PreprocessConfig`'s defaults).
    thresholds : QualityThresholds, optional
        The quality rules (default: :class:`QualityThresholds`'s defaults).

    Raises
    ------
    ValueError
        ``sfreq_in`` is not a positive finite rate, or has no rational ratio to the
        model rate.
    """

    def __init__(self, sfreq_in: float, config: PreprocessConfig | None = None,
                 thresholds: QualityThresholds | None = None) -> None:
        if not np.isfinite(sfreq_in) or sfreq_in <= 0:
            raise ValueError(f"sampling rate must be positive, got {sfreq_in}")
        self.config = config or PreprocessConfig()
        self.thresholds = thresholds or QualityThresholds()
        self.sfreq_in = float(sfreq_in)
        c = self.config
        self._resampler = (None if abs(self.sfreq_in - c.sfreq_hz) < 1e-9
                           else StreamingResampler(self.sfreq_in, c.sfreq_hz))
        self._sos = signal.butter(c.filter_order, [c.l_freq_hz, c.h_freq_hz], btype="bandpass",
                                  fs=c.sfreq_hz, output="sos")
        self._zi: np.ndarray | None = None
        self._last_valid: float | None = None
        n = c.epoch_samples
        self._filtered = np.empty(n, dtype=np.float64)
        self._raw = np.empty(n, dtype=np.float64)
        self._unfiltered = np.empty(n, dtype=np.float64)
        self._missing = np.empty(n, dtype=bool)
        self._fill = 0
        self._next_index = 0
        self.samples_in = 0

    def __repr__(self) -> str:
        c = self.config
        rate = (f"{self.sfreq_in:g} Hz" if self._resampler is None
                else f"{self.sfreq_in:g} -> {c.sfreq_hz:g} Hz")
        return (f"<Preprocessor {rate}, causal band-pass {c.l_freq_hz:g}-{c.h_freq_hz:g} Hz (order "
                f"{c.filter_order}), {c.epoch_s:g}-s epochs: {self.samples_in} samples in, "
                f"{self._next_index} epochs out>")

    @property
    def epochs_emitted(self) -> int:
        """Epochs returned so far."""
        return self._next_index

    def push(self, samples_uv: np.ndarray) -> list[Epoch]:
        """Feed µV samples; return the epochs they complete.

        Parameters
        ----------
        samples_uv : numpy.ndarray
            The next samples, µV (flattened; any length; NaN/Inf = missing).

        Returns
        -------
        list of Epoch
            The epochs completed by these samples, in order (often none).
        """
        x = np.asarray(samples_uv, dtype=np.float64).reshape(-1)
        if not len(x):
            return []
        self.samples_in += len(x)
        missing = ~np.isfinite(x)
        if missing.any():
            x = self._hold_missing(x, missing)
        if self._last_valid is None and not missing.all():
            self._last_valid = float(x[~missing][0])
        if not missing.all():
            self._last_valid = float(x[~missing][-1])
        raw = x  # quality flags (flat, clipped) are judged on input values, not the FIR's output
        if self._resampler is not None:
            x, missing, raw = self._resampler.process_with_nearest(x, missing)
        if not len(x):
            return []
        if self._zi is None:
            self._zi = signal.sosfilt_zi(self._sos) * x[0]
        y, self._zi = signal.sosfilt(self._sos, x, zi=self._zi)
        return self._cut(y, raw, missing, x)

    def _hold_missing(self, x: np.ndarray, missing: np.ndarray) -> np.ndarray:
        """Replace missing samples by the last valid value (0 before any)."""
        x = x.copy()
        idx = np.where(~missing, np.arange(len(x)), -1)
        np.maximum.accumulate(idx, out=idx)
        start = self._last_valid if self._last_valid is not None else (
            float(x[~missing][0]) if (~missing).any() else 0.0)
        x[missing] = np.where(idx[missing] >= 0, x[np.maximum(idx[missing], 0)], start)
        return x

    def _cut(self, y: np.ndarray, raw: np.ndarray, missing: np.ndarray, unfiltered: np.ndarray) -> list[Epoch]:
        n = self.config.epoch_samples
        out: list[Epoch] = []
        pos = 0
        while pos < len(y):
            take = min(n - self._fill, len(y) - pos)
            sl = slice(self._fill, self._fill + take)
            self._filtered[sl] = y[pos:pos + take]
            self._raw[sl] = raw[pos:pos + take]
            self._unfiltered[sl] = unfiltered[pos:pos + take]
            self._missing[sl] = missing[pos:pos + take]
            self._fill += take
            pos += take
            if self._fill == n:
                out.append(self._make_epoch())
                self._fill = 0
        return out

    def _make_epoch(self) -> Epoch:
        c, t = self.config, self.thresholds
        filt, raw, miss = self._filtered, self._raw, self._missing
        missing_fraction = float(miss.mean())
        flags: list[str] = []
        scorable = True
        if missing_fraction > 0:
            flags.append(FLAG_GAP)
            if missing_fraction > t.unscored_missing_fraction:
                scorable = False
        valid = ~miss
        if valid.any():
            if float(np.std(raw[valid])) < t.flat_std_uv:
                flags.append(FLAG_FLAT)
                scorable = False
            rv = raw[valid]
            hi, lo = rv.max(), rv.min()
            pinned = (np.count_nonzero(rv == hi) + np.count_nonzero(rv == lo)) / len(rv)
            if hi > lo and pinned >= t.clip_fraction:
                flags.append(FLAG_CLIPPED)
                if pinned >= t.unscored_clip_fraction:
                    scorable = False
            if np.mean(np.abs(filt[valid]) > t.artefact_abs_uv) > t.artefact_fraction:
                flags.append(FLAG_ARTEFACT)
        else:
            scorable = False
        data = np.clip(filt / c.scale_uv, -c.clip_units, c.clip_units).astype(np.float32)
        feats = base_features(self._unfiltered[None, :] * 1e-6, c.sfreq_hz)[0]
        epoch = Epoch(index=self._next_index, data=data, missing_fraction=missing_fraction,
                      flags=tuple(flags), scorable=scorable, features=feats)
        self._next_index += 1
        return epoch


def preprocess_signal(eeg_uv: np.ndarray, sfreq: float, config: PreprocessConfig | None = None) -> list[Epoch]:
    """Batch use: the whole signal as one chunk through a fresh :class:`Preprocessor`.

    Parameters
    ----------
    eeg_uv : numpy.ndarray
        (n_samples,) the signal, µV (NaN = missing).
    sfreq : float
        Its rate, Hz.
    config : PreprocessConfig, optional
        The model's input definition (default: :class:`PreprocessConfig`'s defaults);
        the quality rules are :class:`QualityThresholds`'s defaults.

    Returns
    -------
    list of Epoch
        Every complete epoch; a last incomplete one is dropped.
    """
    return Preprocessor(sfreq, config).push(eeg_uv)
