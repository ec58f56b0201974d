"""Batch scoring: a whole recording through the same preprocessor and stager as live."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .predictions import StagePrediction, StagingModel
from .preprocess import Preprocessor

if TYPE_CHECKING:  # the core reads no files: any object with eeg_uv (µV) and sfreq (Hz) will do
    from .io.recordings import Recording


def score_recording(rec: Recording, model: StagingModel, session_start: str | None = None
                    ) -> list[StagePrediction]:
    """Stages for every complete 30-s epoch of ``rec`` (the file fed as one chunk), by a
    fresh stager of ``model`` (any kind); ``session_start`` (``lights-off`` or
    ``unknown``; None: the model's default) is passed to the stager."""
    epochs = Preprocessor(rec.sfreq, model.preprocess).push(rec.eeg_uv)
    stager = model.new_stager() if session_start is None else model.new_stager(session_start=session_start)
    return stager.score(epochs)
