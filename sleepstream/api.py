"""The Python API: stage a numpy array, an ``mne.io.Raw`` or a file, get one object back.

In the manner of yasa's ``SleepStaging`` and MNE: one import, one call, one object that
knows its stages, probabilities, quality flags, onsets, sleep statistics and exports::

    import sleepstream
    result = sleepstream.stage(raw, ch_name="EEG Fpz-Cz")   # an mne.io.Raw (volts)
    result = sleepstream.stage(eeg_uv, sfreq=100.0)         # a numpy array in µV
    result = sleepstream.stage("night.edf")                 # npz, EDF or BDF
    result.stages, result.probabilities, result.sleep_statistics(), result.to_csv("x.csv")

Scoring is exactly ``sleepstream score`` (and the live path): the same preprocessing and
model through :func:`sleepnet.batch.score_recording`, so the stages equal the command's.
Only the public, stable names of sleepnet are used here:
:func:`sleepnet.weights.load_model` (re-exported as ``sleepstream.load_model``: the one loader),
:class:`sleepnet.models.base.StagingModel` (the loaded model of any kind, re-exported as
``sleepstream.StagingModel``), :func:`sleepnet.batch.score_recording` and
:mod:`sleepnet.io.recordings`.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sleepnet.errors import InputFileError, SleepstreamError, parameter
from sleepnet.io.recordings import (
    DEFAULT_CHANNEL,
    Recording,
    derived_signal_uv,
    read_recording,
    require_epochs,
    resolve_channel,
)
from sleepnet.models.base import StagingModel
from sleepnet.report.sleep_stats import SleepStats, sleep_statistics
from sleepnet.stages import EPOCH_S, STAGES, UNSCORED, UNSCORED_NAME
from sleepnet.weights import load_model

if TYPE_CHECKING:  # torch only once something is scored
    from sleepnet.metrics import Agreement
    from sleepnet.predictions import StagePrediction

# StagingModel and load_model are imported above and re-exported by ``sleepstream``; they are
# documented where they live (sleepnet.models.base, sleepnet.weights), not a second time here.
__all__ = ["StagingResult", "stage"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, repr=False)
class StagingResult:
    """The stages of one recording, one per complete 30-s epoch from its start.

    Made by :func:`stage`.

    Parameters
    ----------
    predictions : tuple of sleepnet.predictions.StagePrediction
        The model's verdict per epoch, in order.
    sfreq : float
        Sampling rate of the input, Hz.
    channel : str
        The channel that was scored.
    source : str
        Where the signal came from (a file path, ``"array"`` or ``"mne.io.Raw"``).
    model_id : str
        The model that scored it.
    epoch_s : float
        Epoch length, s (30).
    normalised : bool
        True when the input was taken as per-epoch normalised (scored level-free).
    _cache : dict
        Internal: what was computed once (the sleep statistics); leave it out.
    """

    predictions: tuple[StagePrediction, ...]
    sfreq: float
    channel: str
    source: str
    model_id: str
    epoch_s: float = EPOCH_S
    normalised: bool = False
    _cache: dict = field(default_factory=dict, compare=False)

    # ------------------------------------------------------------------ arrays
    @property
    def n_epochs(self) -> int:
        """Number of 30-s epochs (scored or not)."""
        return len(self.predictions)

    @property
    def stages(self) -> np.ndarray:
        """(n_epochs,) str: ``W``, ``N1``, ``N2``, ``N3``, ``REM`` or ``UNS`` (unscored)."""
        return np.array([p.stage for p in self.predictions], dtype="<U3")

    @property
    def codes(self) -> np.ndarray:
        """(n_epochs,) int8 stage codes: 0=W, 1=N1, 2=N2, 3=N3, 4=REM, -1 unscored."""
        return np.array([p.stage_code for p in self.predictions], dtype=np.int8)

    @property
    def probabilities(self) -> np.ndarray:
        """(n_epochs, 5) float: p(W), p(N1), p(N2), p(N3), p(REM); NaN where unscored."""
        if not self.predictions:
            return np.zeros((0, len(STAGES)))
        return np.array([p.probabilities for p in self.predictions], dtype=np.float64)

    @property
    def confidence(self) -> np.ndarray:
        """(n_epochs,) float: the largest probability, NaN where unscored."""
        return np.array([p.confidence for p in self.predictions], dtype=np.float64)

    @property
    def flags(self) -> tuple[tuple[str, ...], ...]:
        """Quality flags per epoch (``warmup``, ``gap``, ``flat``, ``clipped``, ``artefact``)."""
        return tuple(tuple(p.flags) for p in self.predictions)

    @property
    def onsets_s(self) -> np.ndarray:
        """(n_epochs,) float: start of each epoch, s from the start of the signal."""
        return np.array([p.epoch * self.epoch_s for p in self.predictions], dtype=np.float64)

    def as_dict(self) -> dict[str, Any]:
        """Plain arrays (no pandas needed): onset_s, stage, code, p_W..p_REM, confidence, flags.

        Returns
        -------
        dict
            Column name -> (n_epochs,) array (``flags`` joined by ``|``).
        """
        probs = self.probabilities
        cols: dict[str, Any] = {"onset_s": self.onsets_s, "stage": self.stages, "code": self.codes}
        cols.update({f"p_{s}": probs[:, k] for k, s in enumerate(STAGES)})
        cols["confidence"] = self.confidence
        cols["flags"] = np.array(["|".join(f) for f in self.flags], dtype=object)
        return cols

    def to_dataframe(self):
        """One row per epoch, indexed by epoch number.

        Returns
        -------
        pandas.DataFrame
            Columns onset_s, stage, code, p_W, p_N1, p_N2, p_N3, p_REM, confidence, flags.

        Raises
        ------
        ImportError
            pandas is not installed (``pip install pandas``); :meth:`as_dict` gives the
            same columns as numpy arrays.
        """
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("StagingResult.to_dataframe() needs pandas (pip install pandas); "
                              "StagingResult.as_dict() gives the same columns as numpy arrays") from None
        df = pd.DataFrame(self.as_dict(), index=pd.Index([p.epoch for p in self.predictions], name="epoch"))
        return df

    # ------------------------------------------------------------------ statistics
    def sleep_statistics(self) -> SleepStats:
        """Sleep statistics of the staged night (TST, SE, WASO, SOL, latencies...).

        Returns
        -------
        sleepnet.report.sleep_stats.SleepStats
            Definitions in :mod:`sleepnet.report.sleep_stats`; ``.as_dict()`` gives yasa-style keys.
        """
        if "stats" not in self._cache:
            self._cache["stats"] = sleep_statistics(self.codes, self.epoch_s)
        return self._cache["stats"]

    def agreement(self, truth: np.ndarray | Sequence[int] | str | Path) -> Agreement:
        """Agreement with a true hypnogram (accuracy, macro-F1, Cohen's kappa, confusion).

        Parameters
        ----------
        truth : array_like of int or path-like
            Stage codes per epoch (0..4, -1 unscored), or a hypnogram file in any format
            :func:`sleepnet.io.hypnograms.read_hypnogram` reads (cut or padded to this night).

        Returns
        -------
        sleepnet.metrics.Agreement
            Unscored epochs on either side are left out and counted.
        """
        from sleepnet.io.hypnograms import read_hypnogram
        from sleepnet.metrics import agreement

        if isinstance(truth, (str, Path)):
            truth = read_hypnogram(truth, self.n_epochs)
        return agreement(np.asarray(truth), self.codes)

    # ------------------------------------------------------------------ exports
    def to_csv(self, path: str | Path) -> Path:
        """Write the stage CSV of ``sleepstream score`` (read back by ``sleepstream report``).

        Parameters
        ----------
        path : path-like
            The CSV file to write.

        Returns
        -------
        Path
            ``path``.
        """
        from sleepnet.io.exports import write_stage_csv

        path = _writable(path)
        write_stage_csv(path, self.predictions, self.epoch_s)
        return path

    def to_edf(self, path: str | Path, start: datetime | None = None) -> Path:
        """Write the hypnogram as an EDF+ file of annotations only (``Sleep stage W`` ...).

        Parameters
        ----------
        path : path-like
            The ``.edf`` file to write; EDFbrowser, MNE's ``read_annotations`` and
            :func:`sleepnet.io.hypnograms.read_hypnogram` read it.
        start : datetime, optional
            The recording's start date and time.

        Returns
        -------
        Path
            The file written.
        """
        from sleepnet.io.hypnogram_exports import write_edf_annotations

        return write_edf_annotations(_writable(path), self.codes, start=start, epoch_s=self.epoch_s)

    def to_bids_events(self, path: str | Path) -> tuple[Path, Path]:
        """Write a BIDS-style ``_events.tsv`` (one row per epoch) and its JSON sidecar.

        Parameters
        ----------
        path : path-like
            The ``.tsv`` file; the sidecar is the same name with ``.json``. Any tool that
            reads BIDS events (MNE-BIDS, pandas) or :func:`sleepnet.io.hypnograms.read_hypnogram`
            reads it.

        Returns
        -------
        tuple of Path
            The TSV and the JSON sidecar.
        """
        from sleepnet.io.hypnogram_exports import write_bids_events
        from sleepnet.io.night_file import Night

        path = _writable(path)
        n = self.n_epochs
        night = Night(source=self.source, kind="batch", stages=self.codes, probabilities=self.probabilities,
                      confidence=self.confidence, latency_ms=np.full(n, np.nan), flags=self.flags,
                      received=np.ones(n, dtype=bool),
                      epoch_numbers=np.array([p.epoch for p in self.predictions], dtype=np.int64),
                      epoch_s=self.epoch_s)
        return write_bids_events(path, night)

    # ------------------------------------------------------------------ display
    def __repr__(self) -> str:
        n = self.n_epochs
        scored = int(np.count_nonzero(self.codes != UNSCORED))
        counts = ", ".join(f"{s} {int(np.count_nonzero(self.stages == s))}" for s in (*STAGES, UNSCORED_NAME)
                           if np.count_nonzero(self.stages == s))
        return (f"<StagingResult: {n} epochs of {self.epoch_s:g} s ({n * self.epoch_s / 3600:.2f} h), "
                f"{scored} scored ({counts or 'none'}) | {self.channel}{' (per-epoch normalised)' if self.normalised else ''} "
                f"at {self.sfreq:g} Hz from {self.source} "
                f"| model {self.model_id}>")

    def __len__(self) -> int:
        return self.n_epochs


def _writable(path: str | Path) -> Path:
    """``path`` as a Path, after checking (one clear line otherwise) that it can be written."""
    from sleepnet.io.exports import check_writable

    path = Path(path)
    check_writable(path)
    return path


def _raw_to_recording(raw, ch_name: str | None) -> Recording:
    """One channel, or a derivation of referential channels, of an ``mne.io.Raw`` (volts)
    as a :class:`Recording` in µV, computed as the EDF reader computes it."""
    names = list(raw.ch_names)
    deriv = resolve_channel(names, ch_name or DEFAULT_CHANNEL, "mne.io.Raw")
    sig = raw.get_data(picks=list(deriv.indices))
    return Recording(eeg_uv=derived_signal_uv(sig, deriv), sfreq=float(raw.info["sfreq"]),
                     channel=deriv.name, source="mne.io.Raw")


def _array_to_recording(data, sfreq: float | None) -> Recording:
    x = np.asarray(data)
    if x.ndim == 2 and 1 in x.shape:
        x = x.reshape(-1)
    if x.ndim != 1:
        raise InputFileError(f"array: one channel is staged at a time; got shape {x.shape} "
                             "(pass data[i] for channel i)")
    if not np.issubdtype(x.dtype, np.number):
        raise InputFileError(f"array: the signal must be numeric (µV), got dtype {x.dtype}")
    if sfreq is None:
        raise InputFileError("array: pass its sampling rate, stage(data, sfreq=...) in Hz")
    sfreq = float(sfreq)
    if not np.isfinite(sfreq) or sfreq <= 0:
        raise InputFileError(f"array: sfreq must be a positive rate in Hz, got {sfreq}")
    return Recording(eeg_uv=x.astype(np.float32), sfreq=sfreq, channel="array", source="array")


def stage(data, sfreq: float | None = None, *, ch_name: str | None = None,
          model: StagingModel | str | Path | None = None, normalized: bool | None = None,
          session_start: str | None = None) -> StagingResult:
    """Stage a recording: one stage per complete 30-s epoch from its start.

    Parameters
    ----------
    data : numpy.ndarray, mne.io.Raw, path-like or sleepnet.io.recordings.Recording
        * a 1-D array: one EEG channel in **µV** (give ``sfreq``);
        * an ``mne.io.Raw``: the channel ``ch_name`` is picked (case, spaces and an
          ``EEG`` prefix ignored) and converted from volts to µV;
        * a path to an npz, EDF or BDF file (read as ``sleepstream score`` reads it);
        * a :class:`sleepnet.io.recordings.Recording`.
    sfreq : float, optional
        Sampling rate in Hz; required for an array, ignored otherwise.
    ch_name : str, optional
        The EEG channel of a Raw or an EDF/BDF file (default ``Fpz-Cz``, which finds
        ``EEG Fpz-Cz``), or a derivation of its referential channels: ``"F4-M1"``,
        ``"C4-(M1+M2)/2"`` (a channel with that exact label wins; see
        :mod:`sleepnet.io.derivations`).
    model : sleepnet.models.base.StagingModel, str or path-like, optional
        A loaded model (:func:`sleepnet.weights.load_model`), or the name or folder to load
        one from; default: the shipped default model, or the
        scale-free model for per-epoch normalised input.
    normalized : bool, optional
        Whether the signal is per-epoch normalised (each 30-s epoch z-scored, as the
        design's ``sample.npz``): such input is scored with the scale-free model and
        level-free quality checks. None (default): recognised when every epoch's SD is
        1 +/- 0.001; True or False: taken as said.
    session_start : {"lights-off", "unknown"}, optional
        Did the recording start at lights-off? ``lights-off``: the time since its start
        counts as the night's clock; ``unknown``: no clock (a recording started mid-night,
        a nap). Default: the model's own (``unknown`` for the default model).

    Returns
    -------
    StagingResult
        Stages, probabilities, flags, onsets, statistics and exports.

    Raises
    ------
    sleepnet.errors.SleepstreamError
        Bad input (named in the message): a missing file or channel, an array that is
        not one channel, a missing rate, a signal shorter than one 30-s epoch, an
        unknown ``session_start``, or weights that do not load.

    Examples
    --------
    >>> import sleepstream
    >>> result = sleepstream.stage(eeg_uv, sfreq=100.0)      # doctest: +SKIP
    >>> result.stages[:3], result.sleep_statistics().tst_min  # doctest: +SKIP
    """
    if session_start is not None and session_start not in ("lights-off", "unknown"):
        raise SleepstreamError(f"{parameter('session_start')}={session_start!r}: use 'lights-off' or 'unknown'")
    if isinstance(data, Recording):
        rec = data
    elif isinstance(data, (str, Path)):
        rec = read_recording(data, ch_name or DEFAULT_CHANNEL)
    elif hasattr(data, "get_data") and hasattr(data, "ch_names") and hasattr(data, "info"):
        rec = _raw_to_recording(data, ch_name)
    else:
        rec = _array_to_recording(data, sfreq)
    require_epochs(rec)
    from sleepnet.batch import score_recording  # torch: only once the input is known good
    from sleepnet.normalised import (
        describe_input,
        input_normalisation,
        is_level_free,
        model_for_input,
        quality_thresholds,
    )

    normalised_by = input_normalisation(rec.eeg_uv, rec.sfreq, normalized, flag="normalized=True")
    wanted = model_for_input(model, normalised_by is not None)
    m = wanted if hasattr(wanted, "new_stager") else load_model(wanted)   # a model already loaded, or a name/folder
    if normalised_by:
        log.info("%s: %s", rec.source, describe_input(normalised_by, m.model_id, is_level_free(m)))
    preds = score_recording(rec, m, quality_thresholds(normalised_by is not None), session_start=session_start)
    return StagingResult(predictions=tuple(preds), sfreq=float(rec.sfreq), channel=rec.channel,
                         source=rec.source, model_id=m.model_id, normalised=normalised_by is not None)

