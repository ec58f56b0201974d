"""The record every sink receives: one scored epoch of a live night."""
from __future__ import annotations

from dataclasses import dataclass

from sleepnet.stages import UNSCORED_NAME


@dataclass(frozen=True)
class ScoredEpoch:
    """One epoch as published by the live scorer.

    Parameters
    ----------
    epoch : int
        0-based index since the scorer started.
    start_time, end_time : float
        The epoch's first and last sample time in the scorer's own LSL clock (s; source
        timestamps plus ``time_correction()``).
    stage : str
        W, N1, N2, N3, REM or UNS.
    probabilities : tuple of float
        Five floats in label-map order (NaN when unscored).
    confidence : float
        The largest probability (NaN when unscored).
    flags : tuple of str
        Any of warmup, gap, flat, clipped, artefact.
    latency_ms : float
        From the epoch's last sample arriving to this record being made, ms.
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
        """Whether the epoch has a stage (not UNS)."""
        return self.stage != UNSCORED_NAME
