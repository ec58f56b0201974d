"""Per-epoch normalised input: recognising it, judging its quality, saying why nothing scored.

The design this project starts from band-passes its signal (0.3-35 Hz) and then z-scores
every 30-s epoch (mean 0, SD 1) before its model sees it; its ``sample.npz`` holds such
epochs. Their level is gone, so a model that reads absolute band powers in V²/Hz (the
default) cannot score them, and a flat-line check in µV calls every epoch flat (SD 1 µV).

* :func:`looks_normalised`: every complete epoch's SD is within 1 +/- 1e-3 (SD with
  ddof 0 or 1 alike; epochs that are wholly missing are skipped).
* :func:`quality_thresholds`: for normalised input the flat check becomes "SD below
  1e-3 of the epoch's unit" (a constant epoch, which z-scoring turns into zeros or NaN)
  and the artefact check in µV is off; clipping is judged as always (it is scale-free).
* Such input is scored with the scale-free model (:data:`SCALE_FREE_MODEL`), chosen by the
  commands and the API, never for µV input unless asked for by name.
* A stream says it carries such epochs with ``desc/normalisation/kind`` =
  :data:`STREAM_KIND` (written by ``sleepstream replay``, read by ``sleepstream live``).
* :func:`nothing_scored_reason`: one line for ``score`` when no epoch could be scored.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .stages import EPOCH_S, epoch_samples

if TYPE_CHECKING:  # scipy (through preprocess) only where thresholds are made: replay needs none
    from .preprocess import QualityThresholds

SD_TOLERANCE = 1e-3
NORMALISED_FLAT_SD = 1e-3
SCALE_FREE_MODEL = "feature-gbm-scalefree-sleepedf-v1"
STREAM_KIND = "per-epoch-zscore"
STREAM_UNIT = "normalized"


def epoch_sds(eeg: np.ndarray, sfreq: float, epoch_s: float = EPOCH_S) -> np.ndarray:
    """SD (ddof 0) of every complete epoch of ``eeg``, NaN for an epoch wholly missing.

    Parameters
    ----------
    eeg : ndarray, shape (n_samples,)
        The signal, in its own unit (NaN where missing).
    sfreq : float
        Sampling rate, Hz.
    epoch_s : float, default EPOCH_S
        Epoch length, s; a partial epoch at the end is left out.

    Returns
    -------
    ndarray, shape (n_epochs,)
        Each complete epoch's standard deviation, in the signal's units.
    """
    n = epoch_samples(sfreq, epoch_s)
    x = np.asarray(eeg, dtype=np.float64)
    k = len(x) // n if n > 0 else 0
    if k == 0:
        return np.zeros(0)
    e = x[:k * n].reshape(k, n)
    ok = np.isfinite(e)
    sds = np.full(k, np.nan)
    for i in np.flatnonzero(ok.any(axis=1)):
        sds[i] = float(np.std(e[i][ok[i]]))
    return sds


def looks_normalised(eeg: np.ndarray, sfreq: float, epoch_s: float = EPOCH_S) -> bool:
    """True when every complete epoch that holds samples has an SD within 1 +/- 1e-3.

    Parameters
    ----------
    eeg : ndarray, shape (n_samples,)
        The signal as given (a µV recording has SDs of tens of µV).
    sfreq : float
        Sampling rate, Hz.
    epoch_s : float, default EPOCH_S
        Epoch length, s, over which each SD is taken (:func:`epoch_sds`).

    Returns
    -------
    bool
        False when there is no complete epoch.
    """
    sds = epoch_sds(eeg, sfreq, epoch_s)
    sds = sds[np.isfinite(sds)]
    # ddof 1 (torch's default) gives 1 + 1/(2n): well inside the tolerance at any rate.
    return bool(len(sds)) and bool(np.all(np.abs(sds - 1.0) <= SD_TOLERANCE))


def input_normalisation(eeg: np.ndarray, sfreq: float, forced: bool | None = None,
                        flag: str = "--normalized") -> str | None:
    """Why a signal is taken as per-epoch normalised, or None for µV input.

    Parameters
    ----------
    eeg : ndarray, shape (n_samples,)
        The signal as given.
    sfreq : float
        Its rate, Hz.
    forced : bool or None
        True: normalised whatever it looks like (returns ``flag``); False: never; None:
        recognised by :func:`looks_normalised` (returns ``"detected"``).
    flag : str
        How the caller's user forces it (``--normalized``, ``normalized=True``).

    Returns
    -------
    str or None
        ``flag`` when forced, ``"detected"`` when recognised, None for µV input.
    """
    if forced:
        return flag
    if forced is False:
        return None
    return "detected" if looks_normalised(eeg, sfreq) else None


def model_for_input(weights: str | Path | None, normalised: bool) -> str | Path | None:
    """The model to load: ``weights`` when the user named one, else the scale-free model
    for normalised input, else None (the default model).

    Parameters
    ----------
    weights : str or Path or None
        The model the user named (a weights folder or a model id), or None.
    normalised : bool
        Whether the input is taken as per-epoch normalised.

    Returns
    -------
    str or Path or None
        ``weights``, :data:`SCALE_FREE_MODEL` or None.
    """
    if weights is not None:
        return weights
    return SCALE_FREE_MODEL if normalised else None


def quality_thresholds(normalised: bool, base: QualityThresholds | None = None) -> QualityThresholds:
    """The quality rules for µV input (``normalised=False``: ``base`` as it is) or for
    per-epoch normalised input (flat below SD 1e-3, no µV artefact threshold).

    Parameters
    ----------
    normalised : bool
        Whether the input is taken as per-epoch normalised.
    base : QualityThresholds, optional
        The rules for µV input (default: :class:`~sleepnet.preprocess.QualityThresholds`'s
        defaults).

    Returns
    -------
    QualityThresholds
        ``base``, or a copy with ``flat_std_uv`` 1e-3 and ``artefact_abs_uv`` infinite.
    """
    from .preprocess import QualityThresholds

    base = base or QualityThresholds()
    if not normalised:
        return base
    return replace(base, flat_std_uv=NORMALISED_FLAT_SD, artefact_abs_uv=math.inf)


def is_level_free(model: object) -> bool:
    """True for a model that reads no absolute level (the scale-free feature stager).

    Parameters
    ----------
    model : object
        A loaded model (:func:`sleepnet.weights.load_model`); an object without
        ``context.feature_set`` counts as not level-free.

    Returns
    -------
    bool
        Whether its ``context.feature_set`` is ``"scale-free"``.
    """
    return getattr(getattr(model, "context", None), "feature_set", None) == "scale-free"


def describe_input(normalised_by: str | None, model_id: str, level_free: bool = True) -> str:
    """One line saying the input is taken as per-epoch normalised and why, and the model.

    Parameters
    ----------
    normalised_by : str or None
        Why (:func:`input_normalisation`): ``"detected"``, the flag that forced it,
        ``"stream"`` (its description says so), or None for µV input (then the empty
        string is returned).
    model_id : str
        The model that scores it.
    level_free : bool
        Whether that model reads no absolute level (:func:`is_level_free`); when it does,
        the line says its stages mean little here.

    Returns
    -------
    str
        The line, or ``""`` for µV input.
    """
    if normalised_by is None:
        return ""
    why = {"detected": "every epoch's SD is 1", "stream": "the stream's description says so"}.get(
        normalised_by, normalised_by)
    warn = "" if level_free else (" — it reads absolute band powers, which such input does not have: its "
                                  f"stages mean little; {SCALE_FREE_MODEL} is made for it")
    return f"per-epoch normalised input ({why}): level-free quality checks, scored by {model_id}{warn}"


def nothing_scored_reason(flags: Sequence[Sequence[str]], eeg: np.ndarray, sfreq: float,
                          normalised: bool, epoch_s: float = EPOCH_S, flag: str = "--normalized") -> str | None:
    """Why no epoch could be scored, in one line; None when there is no epoch.

    Parameters
    ----------
    flags : sequence of sequence of str
        The quality flags of each epoch, for epochs that all came out unscored.
    eeg : ndarray
        The signal scored (for the SDs quoted).
    sfreq : float
        Its rate, Hz.
    normalised : bool
        Whether it was taken as per-epoch normalised.
    epoch_s : float
        Epoch length, s.
    flag : str
        How the caller's user says the input is normalised, for the hint.

    Returns
    -------
    str or None
        One line saying why no epoch could be scored; None when there is no epoch.
    """
    from .preprocess import FLAG_FLAT, FLAG_GAP

    n = len(flags)
    if n == 0:
        return None
    counts = Counter(f for fl in flags for f in set(fl))
    sds = epoch_sds(eeg, sfreq, epoch_s)
    sds = sds[np.isfinite(sds)]
    sd_text = (f"SD {np.median(sds):.1f} µV" if len(sds) and np.ptp(sds) < 0.05 * max(np.median(sds), 1e-12)
               else (f"SD {sds.min():.2g}-{sds.max():.2g} µV" if len(sds) else "no samples"))
    if counts.get(FLAG_FLAT, 0) == n:
        if not normalised and len(sds) and 0.1 <= float(np.median(sds)) <= 10.0:
            return f"all {n} epochs flat: {sd_text} — per-epoch normalised? see {flag}"
        return f"all {n} epochs flat: {sd_text} (no electrode, or a signal in the wrong unit?)"
    if counts.get(FLAG_GAP, 0) == n:
        return f"all {n} epochs miss more than a quarter of their samples (gaps or NaN)"
    parts = ", ".join(f"{k} {v}" for k, v in counts.most_common())
    return f"none of the {n} epochs could be scored (flags: {parts or 'none'})"


def design_normalisation(eeg_uv: np.ndarray, sfreq: float, l_freq_hz: float = 0.3, h_freq_hz: float = 35.0,
                         epoch_s: float = EPOCH_S) -> np.ndarray:
    """The design's input pipeline, to make per-epoch normalised data from a recording:
    MNE's default zero-phase FIR band-pass over the whole signal, then each complete
    epoch z-scored (mean 0, SD 1, ddof 0). Offline only (zero-phase looks ahead): for
    test files and comparisons, never on the live path.

    Parameters
    ----------
    eeg_uv : ndarray, shape (n_samples,)
        The signal, µV.
    sfreq : float
        Its rate, Hz.
    l_freq_hz, h_freq_hz : float
        Band-pass edges, Hz.
    epoch_s : float
        Epoch length, s.

    Returns
    -------
    ndarray, shape (n_epochs, round(sfreq * epoch_s)), float32
        The z-scored epochs (a constant epoch comes out as zeros).
    """
    import mne

    x = mne.filter.filter_data(np.asarray(eeg_uv, dtype=np.float64), sfreq, l_freq_hz, h_freq_hz, verbose="error")
    n = epoch_samples(sfreq, epoch_s)
    e = x[:len(x) // n * n].reshape(-1, n)
    sd = e.std(axis=1, keepdims=True)
    return ((e - e.mean(axis=1, keepdims=True)) / np.where(sd > 0, sd, 1.0)).astype(np.float32)
