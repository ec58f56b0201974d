"""The record every sink receives: one scored epoch of a live night."""
from __future__ import annotations

from dataclasses import dataclass

from sleepnet.stages import UNSCORED_NAME


@dataclass(frozen=True)
class ScoredEpoch:
    """One epoch as published by the live scorer.

    epoch: 0-based index since the scorer started. start_time/end_time: the epoch's first
    and last sample time in the scorer's own LSL clock (s; source timestamps plus
    time_correction()). stage: W/N1/N2/N3/REM or UNS. probabilities: five floats in
    label-map order (NaN when unscored). confidence: largest probability (NaN when
    unscored). flags: warmup, gap, flat, clipped, artefact. latency_ms: from the epoch's
    last sample arriving to this record being made.
    """

    epoch: int
    start_time: float
    end_time: float
    stage: str
    probabilities: tuple[float, ...]
    confidence: float
    flags: tuple[str, ...]
    latency_ms: float

    @property
    def scored(self) -> bool:
        return self.stage != UNSCORED_NAME
