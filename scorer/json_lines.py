"""The machine-readable sink: one JSON object per line, for a supervisor such as
``sleepstream ward`` that runs ``sleepstream live --status-json`` as a worker.

Lines (each a JSON object with an ``event`` key; NaN written as ``NaN``, which Python's
:mod:`json` reads back)::

    {"event": "epoch", "epoch": 12, "start_time": ..., "end_time": ..., "stage": "N2",
     "probabilities": [p_W, p_N1, p_N2, p_N3, p_REM], "confidence": 0.91,
     "flags": ["warmup"], "latency_ms": 4.2}
    {"event": "truth", "epoch": 12, "stage": "N2"}
    {"event": "status", "source_name": ..., "sfreq_hz": ..., "channel": ..., "samples_received": ...,
     "samples_missing": ..., "gaps": ..., "stalled": false, "elapsed_s": ..., "last_latency_ms": ...}
    {"event": "gate", "kind": "open", "reason": "N2/N3 p>=0.80 x2", "time": ..., "stamp": ...,
     "epoch": 12}
    {"event": "end"}

``gate`` lines come only from ``live --gate``: one per stimulation-window event, the
first the ``close`` (reason ``restart``) every (re)started scorer says; ``time`` is the
data time the decision rests on, ``stamp`` the marker's stamp on the ``<name>-gate``
outlet (both s, the worker's LSL clock), ``epoch`` the deciding epoch (null when the
guard, a gap or the clock decided).

``epoch`` is the number the hypnogram file gives the epoch (the live scorer's own index
plus ``epoch_offset``, the file's first new epoch), so a restarted worker continues the
numbering of the night. Each line is flushed as it is written.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, TextIO

from .records import ScoredEpoch
from .sinks import StreamStatus

if TYPE_CHECKING:  # the gate is optional: only its record's type is needed here
    from .gate.sink import GateSink
    from .gate.window import GateEvent

EPOCH = "epoch"
TRUTH = "truth"
STATUS = "status"
END = "end"
GATE = "gate"


def epoch_event(record: ScoredEpoch, epoch_offset: int = 0) -> dict[str, object]:
    """The ``epoch`` line of ``record`` as a dict."""
    d = asdict(record)
    d["epoch"] = epoch_offset + record.epoch
    d["probabilities"] = list(record.probabilities)
    d["flags"] = list(record.flags)
    return {"event": EPOCH, **d}


def record_from_event(event: dict[str, object]) -> ScoredEpoch:
    """The :class:`ScoredEpoch` an ``epoch`` line describes (its epoch: the file's number)."""
    return ScoredEpoch(epoch=int(event["epoch"]), start_time=float(event["start_time"]),
                       end_time=float(event["end_time"]), stage=str(event["stage"]),
                       probabilities=tuple(float(p) for p in event["probabilities"]),
                       confidence=float(event["confidence"]), flags=tuple(str(f) for f in event["flags"]),
                       latency_ms=float(event["latency_ms"]))


def status_event(status: StreamStatus) -> dict[str, object]:
    """The ``status`` line of ``status`` as a dict (without the recent signal)."""
    return {"event": STATUS, "source_name": status.source_name, "sfreq_hz": status.sfreq_hz,
            "channel": status.channel, "samples_received": status.samples_received,
            "samples_missing": status.samples_missing, "gaps": status.gaps, "stalled": status.stalled,
            "elapsed_s": status.elapsed_s, "last_latency_ms": status.last_latency_ms}


def status_from_event(event: dict[str, object]) -> StreamStatus:
    """The :class:`StreamStatus` a ``status`` line describes (no recent signal)."""
    return StreamStatus(source_name=str(event["source_name"]), sfreq_hz=float(event["sfreq_hz"]),
                        channel=str(event["channel"]), samples_received=int(event["samples_received"]),
                        samples_missing=int(event["samples_missing"]), gaps=int(event["gaps"]),
                        stalled=bool(event["stalled"]), elapsed_s=float(event["elapsed_s"]),
                        last_latency_ms=float(event["last_latency_ms"]))


def gate_event(event: "GateEvent", stamp: float, epoch_offset: int = 0) -> dict[str, object]:
    """The ``gate`` line of a stimulation-window event published at ``stamp`` (s, LSL clock)."""
    return {"event": GATE, "kind": event.kind, "reason": event.reason, "time": float(event.time),
            "stamp": float(stamp), "epoch": None if event.epoch is None else epoch_offset + int(event.epoch)}


def gate_from_event(event: dict[str, object]) -> tuple["GateEvent", float]:
    """The :class:`scorer.gate.window.GateEvent` and stamp a ``gate`` line describes."""
    from .gate.window import CLOSE, OPEN, GateEvent

    kind = str(event["kind"])
    if kind not in (OPEN, CLOSE):
        raise ValueError(f"gate kind {kind!r}")
    epoch = event.get("epoch")
    return (GateEvent(kind, str(event["reason"]), float(event["time"]), None if epoch is None else int(epoch)),
            float(event["stamp"]))


class JsonLinesSink:
    """Sink writing the lines above to ``stream`` (the live command: stdout).

    Parameters
    ----------
    stream : TextIO
        Where the lines go; flushed after each line.
    epoch_offset : int
        Added to each record's epoch (the hypnogram file's first new epoch number).
    """

    def __init__(self, stream: TextIO, epoch_offset: int = 0) -> None:
        self.stream = stream
        self.epoch_offset = int(epoch_offset)

    def _line(self, obj: dict[str, object]) -> None:
        self.stream.write(json.dumps(obj) + "\n")
        self.stream.flush()

    def publish(self, record: ScoredEpoch) -> None:
        self._line(epoch_event(record, self.epoch_offset))

    def gate(self, event: "GateEvent", stamp: float) -> None:
        """A gate listener (``GateSink.add_listener``): one ``gate`` line per event."""
        try:
            self._line(gate_event(event, stamp, self.epoch_offset))
        except (OSError, ValueError):   # the reader is gone: the gate goes on without this line
            pass

    def follow_gate(self, gate: "GateSink") -> None:
        """Write a line for each event ``gate`` has published so far (its start's ``close`` /
        ``restart``), then one for each later event."""
        for event, stamp, _ in list(gate.history):
            self.gate(event, stamp)
        gate.add_listener(self.gate)

    def truth(self, epoch: int, stage: str) -> None:
        self._line({"event": TRUTH, "epoch": self.epoch_offset + int(epoch), "stage": stage})

    def status(self, status: StreamStatus) -> None:
        self._line(status_event(status))

    def close(self) -> None:
        try:
            self._line({"event": END})
        except (OSError, ValueError):   # the reader is gone (a closed pipe)
            pass
