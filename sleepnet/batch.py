"""Batch scoring: a whole recording through the same preprocessor and stager as live."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .models.base import StagingModel
from .predictions import StagePrediction
from .preprocess import Preprocessor, QualityThresholds

if TYPE_CHECKING:  # the core reads no files: any object with eeg_uv (µV) and sfreq (Hz) will do
    from .io.recordings import Recording


def score_recording(rec: Recording, model: StagingModel,
                    thresholds: QualityThresholds | None = None,
                    session_start: str | None = None) -> list[StagePrediction]:
    """Stages for every complete 30-s epoch of ``rec`` (the file fed as one chunk), by a
    fresh stager of ``model`` (any kind).

    Parameters
    ----------
    rec : Recording
        ``eeg_uv`` (µV, or per-epoch normalised units) and ``sfreq`` (Hz).
    model : StagingModel
        Any loaded model.
    thresholds : QualityThresholds, optional
        Quality rules; default the µV ones
        (:func:`sleepnet.normalised.quality_thresholds` gives those for normalised input).
    session_start : str, optional
        ``lights-off`` or ``unknown``, passed to the stager; None: the model's default.

    Returns
    -------
    list of StagePrediction
        One per complete epoch of the recording, in order (``UNS`` where unscorable).
    """
    epochs = Preprocessor(rec.sfreq, model.preprocess, thresholds).push(rec.eeg_uv)
    stager = model.new_stager() if session_start is None else model.new_stager(session_start=session_start)
    return stager.score(epochs)
