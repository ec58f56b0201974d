"""Batch scoring: a whole recording through the same preprocessor and scorer as live."""
from __future__ import annotations

from .inference import SequenceScorer, StagePrediction
from .preprocess import Preprocessor
from .readers import Recording
from .weights import LoadedModel


def score_recording(rec: Recording, model: LoadedModel) -> list[StagePrediction]:
    """Stages for every complete 30-s epoch of ``rec`` (the file fed as one chunk)."""
    epochs = Preprocessor(rec.sfreq, model.preprocess).push(rec.eeg_uv)
    return SequenceScorer(model).score(epochs)
