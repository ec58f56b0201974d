"""What every sink implements. The scoring loop hands each sink the same record and never
knows which sinks there are: adding a sink never touches the loop.

A sink may also have ``samples(chunk)`` (a :class:`streamer.stream.SampleChunk`): the
loop then hands it every chunk of the scored channel as pulled, before scoring (the
stimulation gate's arousal guard judges the newest second this way, whatever the pace).
And ``tick(now)``: called on every turn of the loop (``now``: the scorer's LSL clock, s),
for a promise kept over time from the loop itself (the gate's lease).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .records import ScoredEpoch


@dataclass(frozen=True)
class StreamStatus:
    """Stream health, sent to sinks on each scored epoch and on a ~1 Hz tick.

    source_name: the EEG stream's name. sfreq_hz: its nominal rate. channel: the channel
    scored. samples_received / samples_missing: counts since start. gaps: number of
    detected gaps. stalled: no sample for the stall timeout ("signal lost").
    elapsed_s: time since the scorer started. last_latency_ms: latency of the latest
    published epoch. recent_uv: the last <= 30 s of the scored channel, µV, at
    recent_sfreq_hz (for a compact trace).
    """

    source_name: str
    sfreq_hz: float
    channel: str
    samples_received: int = 0
    samples_missing: int = 0
    gaps: int = 0
    stalled: bool = False
    elapsed_s: float = 0.0
    last_latency_ms: float = float("nan")
    recent_uv: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32), repr=False)
    recent_sfreq_hz: float = 100.0


class Sink(Protocol):
    """A destination for scored epochs (LSL outlets, hypnogram file, display, log)."""

    def publish(self, record: ScoredEpoch) -> None:
        """A newly scored epoch."""

    def truth(self, epoch: int, stage: str) -> None:
        """The true stage of an already published epoch, when a truth stream exists."""

    def status(self, status: StreamStatus) -> None:
        """Stream health, on each epoch and on a ~1 Hz tick."""

    def close(self) -> None:
        """End of the session: flush and release."""
