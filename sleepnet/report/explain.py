"""The report's explainability view: classical EEG features (relative band powers,
slow-wave and spindle indices) per epoch and per predicted stage, with Cohen's d.
"""
from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputFileError
from ..features import EXPLAIN_FEATURE_NAMES, relative_band_powers
from ..io.atomic import atomic_write
from ..io.night_file import Night
from ..io.recordings import Recording, require_epochs
from ..stages import STAGES, epoch_samples, stage_name

log = logging.getLogger(__name__)

_LOG_FEATURES = ("slow_wave_index", "spindle_index")   # ratios: compared on a log10 scale
N_DISTINCTIVE = 3


@dataclass(frozen=True)
class FeatureSummary:
    """The explainability view: classical features per epoch and per predicted stage.

    Made by :func:`explain_features`; :func:`write_feature_tables` writes its tables.

    Parameters
    ----------
    recording : str
        The recording the features come from.
    channel : str
        Its channel.
    sfreq : float
        Its sampling rate, Hz.
    names : tuple of str
        The features, in column order (:data:`sleepnet.features.EXPLAIN_FEATURE_NAMES`).
    per_epoch : numpy.ndarray
        (n_slots, 7) features (NaN where no recording epoch or a gap).
    means : dict of str to dict of str to float
        Stage -> feature -> mean (relative powers as shares 0-1; the indices as
        geometric means).
    effect : dict of str to dict of str to float
        Stage -> feature -> Cohen's d against all other scored epochs (indices on log10).
    distinctive : dict of str to list of tuple of (str, float)
        Stage -> the features with the largest ``|d|`` (at most 3), with their d.
    counts : dict of str to int
        Stage -> epochs with features.
    n_matched : int
        Night slots matched with recording epochs.
    note : str, default ""
        Why recording and night differ in length, when they do.
    """

    recording: str
    channel: str
    sfreq: float
    names: tuple[str, ...]
    per_epoch: np.ndarray
    means: dict[str, dict[str, float]]
    effect: dict[str, dict[str, float]]
    distinctive: dict[str, list[tuple[str, float]]]
    counts: dict[str, int]
    n_matched: int
    note: str = ""

    def as_dict(self) -> dict:
        """The summary for the report's JSON (without the per-epoch table).

        Returns
        -------
        dict
            recording, channel, sfreq_hz, epochs_matched, note, counts, means,
            cohens_d_vs_other_stages and distinctive (a list of ``{feature, d}`` per stage).
        """
        return {"recording": self.recording, "channel": self.channel, "sfreq_hz": self.sfreq,
                "epochs_matched": self.n_matched, "note": self.note, "counts": self.counts,
                "means": self.means, "cohens_d_vs_other_stages": self.effect,
                "distinctive": {s: [{"feature": f, "d": d} for f, d in v] for s, v in self.distinctive.items()}}


# --------------------------------------------------------------------------- features

def _cohens_d(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or len(b) < 2:
        return math.nan
    va, vb = a.var(ddof=1), b.var(ddof=1)
    pooled = math.sqrt(((len(a) - 1) * va + (len(b) - 1) * vb) / (len(a) + len(b) - 2))
    return float((a.mean() - b.mean()) / pooled) if pooled > 0 else math.nan


def explain_features(night: Night, rec: Recording, offset_s: float = 0.0) -> FeatureSummary:
    """Classical features of the recording's epochs, summarised per predicted stage.

    The night's slot i is the recording's 30 s from ``offset_s + 30 i`` (``offset_s``:
    where the night started in the recording; 0 when it was scored from the start).

    Parameters
    ----------
    night : Night
        The scored night (:func:`~sleepnet.io.night_file.read_night`).
    rec : Recording
        The recording that was scored.
    offset_s : float, default 0.0
        Where the night's first slot starts in the recording, s.

    Returns
    -------
    FeatureSummary
        The features per slot and per predicted stage; epochs are matched by position
        (a note, and a warning, when the lengths differ by more than one epoch).

    Raises
    ------
    InputFileError
        The recording is shorter than one epoch, ``offset_s`` is past its end, or its
        rate is under 60 Hz.
    """
    spe = epoch_samples(rec.sfreq)
    first = int(round(offset_s * rec.sfreq))
    n_rec = max(0, (len(rec.eeg_uv) - first) // spe)
    require_epochs(rec)
    if n_rec == 0:
        raise InputFileError(f"{rec.source}: the offset {offset_s:g} s is past the recording's "
                             f"{rec.duration_s:.0f} s")
    if rec.sfreq < 60:
        raise InputFileError(f"{rec.source}: {rec.sfreq:g} Hz is too slow for band powers up to 30 Hz")
    n = min(n_rec, night.n_epochs)
    note = ""
    if abs(n_rec - night.n_epochs) > 1:
        note = (f"recording has {n_rec} epochs{f' after {offset_s:g} s' if first else ''} and the night "
                f"{night.n_epochs}; features for the first {n}, matched by position")
        log.warning("%s: %s", rec.source, note)
    epochs = rec.eeg_uv[first: first + n * spe].astype(np.float64).reshape(n, spe)
    ok = np.all(np.isfinite(epochs), axis=1)
    feats = np.full((night.n_epochs, len(EXPLAIN_FEATURE_NAMES)), np.nan)
    if ok.any():
        feats[:n][ok] = relative_band_powers(epochs[ok], sfreq=rec.sfreq)
    names = tuple(EXPLAIN_FEATURE_NAMES)
    comp = feats.copy()                     # the scale the comparison is made on
    for j, name in enumerate(names):
        if name in _LOG_FEATURES:
            comp[:, j] = np.log10(np.maximum(comp[:, j], 1e-6))
    usable = np.all(np.isfinite(comp), axis=1) & (night.stages >= 0)
    means: dict[str, dict[str, float]] = {}
    effect: dict[str, dict[str, float]] = {}
    distinctive: dict[str, list[tuple[str, float]]] = {}
    counts: dict[str, int] = {}
    for k, s in enumerate(STAGES):
        mine = usable & (night.stages == k)
        rest = usable & (night.stages != k)
        counts[s] = int(mine.sum())
        if not mine.any():
            continue
        means[s] = {}
        effect[s] = {}
        for j, name in enumerate(names):
            m = comp[mine, j].mean()
            means[s][name] = float(10 ** m) if name in _LOG_FEATURES else float(m)
            effect[s][name] = _cohens_d(comp[mine, j], comp[rest, j])
        ranked = sorted(((f, d) for f, d in effect[s].items() if math.isfinite(d)), key=lambda fd: -abs(fd[1]))
        distinctive[s] = ranked[:N_DISTINCTIVE]
    return FeatureSummary(recording=rec.source, channel=rec.channel, sfreq=rec.sfreq, names=names,
                          per_epoch=feats, means=means, effect=effect, distinctive=distinctive,
                          counts=counts, n_matched=int(n), note=note)


def write_feature_tables(stem: Path, night: Night, fs: FeatureSummary) -> tuple[Path, Path]:
    """Write the explainability view as two CSV tables beside a report's other files.

    Parameters
    ----------
    stem : Path
        The report's files without their endings (``out/night``).
    night : Night
        The scored night: each epoch's onset and predicted stage.
    fs : FeatureSummary
        The features (:func:`explain_features`).

    Returns
    -------
    tuple of Path
        ``<stem>_features.csv`` (one row per epoch: epoch, onset_s, stage, the features;
        empty where none) and ``<stem>_features_by_stage.csv`` (one row per stage: epochs,
        each feature's mean, each feature's Cohen's d against the other stages).
    """
    per = stem.with_name(stem.name + "_features.csv")
    with atomic_write(per, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["epoch", "onset_s", "stage", *fs.names])
        for i in range(night.n_epochs):
            row = fs.per_epoch[i]
            w.writerow([i, f"{i * night.epoch_s:.1f}", stage_name(int(night.stages[i])),
                        *("" if not math.isfinite(v) else f"{v:.6g}" for v in row)])
    by = stem.with_name(stem.name + "_features_by_stage.csv")
    with atomic_write(by, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["stage", "epochs", *(f"mean_{f}" for f in fs.names), *(f"d_{f}" for f in fs.names)])
        for s in STAGES:
            if s not in fs.means:
                w.writerow([s, 0, *[""] * (2 * len(fs.names))])
                continue
            w.writerow([s, fs.counts[s], *(f"{fs.means[s][f]:.6g}" for f in fs.names),
                        *("" if not math.isfinite(fs.effect[s][f]) else f"{fs.effect[s][f]:.3f}" for f in fs.names)])
    return per, by
