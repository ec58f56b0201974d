"""The machine-readable sink: one JSON object per line, for a supervisor such as
``sleepstream ward`` that runs ``sleepstream live --status-json`` as a worker.

Lines (each a JSON object with an ``event`` key and a ``seq`` number; NaN written as
``NaN``, which Python's :mod:`json` reads back)::

    {"event": "epoch", "seq": 40, "epoch": 12, "start_time": ..., "end_time": ..., "stage": "N2",
     "probabilities": [p_W, p_N1, p_N2, p_N3, p_REM], "confidence": 0.91,
     "flags": ["warmup"], "latency_ms": 4.2, "recording": true}
    {"event": "truth", "seq": 41, "epoch": 12, "stage": "N2"}
    {"event": "status", "seq": 42, "source_name": ..., "sfreq_hz": ..., "channel": ...,
     "samples_received": ..., "samples_missing": ..., "gaps": ..., "stalled": false, "elapsed_s": ...,
     "last_latency_ms": ..., "dropped_lines": 0, "recording": true, "rows_written": 12,
     "rows_pending": 0, "rows_lost": 0, "recording_error": null}
    {"event": "gate", "seq": 43, "kind": "open", "reason": "N2/N3 p>=0.80 x2", "time": ...,
     "stamp": ..., "epoch": 12}
    {"event": "end", "seq": 44}

``seq`` counts the lines of this process from 0, one per line written **or dropped**: the
loop never waits for the reader (a bounded queue and a writer thread,
:class:`scorer.bounded_output.BoundedWriter`), so a reader that stops reading loses lines
rather than stopping the night; a jump in ``seq`` shows how many (the rows themselves are
always in the hypnogram file). ``dropped_lines`` on status lines: lines dropped so far.

``recording`` and the ``rows_*`` keys come only with ``--out``: ``recording`` false while
the hypnogram file cannot be written (NOT RECORDING; ``recording_error`` says why); on an
epoch line it says whether that epoch's row was on disk when the line was made.
``rows_pending``: rows kept in memory for the file until the disk comes back;
``rows_lost``: rows given up (more than the file sink keeps); ``rows_written``: rows on disk
this session (:class:`scorer.hypnogram_file.RecordingState`).

``gate`` lines come only from ``live --gate``: one per stimulation-window event, the
first the ``close`` (reason ``restart``) every (re)started scorer says; ``time`` is the
data time the decision rests on, ``stamp`` the marker's stamp on the ``<name>-gate``
outlet (both s, the worker's LSL clock), ``epoch`` the deciding epoch (null when the
guard, a gap or the clock decided). The lease renewals of an open window are not events
and have no line.

``epoch`` is the number the hypnogram file gives the epoch (the live scorer's own index
plus ``epoch_offset``, the file's first new epoch), so a restarted worker continues the
numbering of the night.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, TextIO

from sleepnet.doc_sections import filled, sections_of

from .bounded_output import CLOSE_WAIT_S, MAX_QUEUED, BoundedWriter
from .records import ScoredEpoch
from .sinks import Sink, StreamStatus

if TYPE_CHECKING:  # the gate is optional: only its record's type is needed here
    from .gate.sink import GateSink
    from .gate.window import GateEvent
    from .hypnogram_file import RecordingState

EPOCH = "epoch"
TRUTH = "truth"
STATUS = "status"
END = "end"
GATE = "gate"


def epoch_event(record: ScoredEpoch, epoch_offset: int = 0) -> dict[str, object]:
    """The ``epoch`` line of a record, as a dict.

    Parameters
    ----------
    record : ScoredEpoch
        The scored epoch.
    epoch_offset : int
        Added to the record's epoch (the hypnogram file's first new epoch number).

    Returns
    -------
    dict of str to object
        ``event`` (``epoch``) and the record's fields, probabilities and flags as lists
        (no ``seq``: the sink adds it).
    """
    d = asdict(record)
    d["epoch"] = epoch_offset + record.epoch
    d["probabilities"] = list(record.probabilities)
    d["flags"] = list(record.flags)
    return {"event": EPOCH, **d}


#: What :func:`record_from_event` and :func:`status_from_event` raise on a line that is not theirs.
_FROM_EVENT_RAISES = """
KeyError
    A field missing from the line.
ValueError
    A field that is not of its type (e.g. ``"gaps": "two"``).
TypeError
    A number that is null, or a list (an epoch's ``probabilities``, ``flags``) that is not.
"""


@filled(raises=_FROM_EVENT_RAISES)
def record_from_event(event: dict[str, object]) -> ScoredEpoch:
    """The record an ``epoch`` line describes.

    Parameters
    ----------
    event : dict of str to object
        The parsed ``epoch`` line (as :func:`epoch_event` makes it; ``seq`` and
        ``recording`` are not read).

    Returns
    -------
    ScoredEpoch
        The record; its epoch is the file's number, as on the line.

    Raises
    ------
    {raises}
    """
    return ScoredEpoch(epoch=int(event["epoch"]), start_time=float(event["start_time"]),
                       end_time=float(event["end_time"]), stage=str(event["stage"]),
                       probabilities=tuple(float(p) for p in event["probabilities"]),
                       confidence=float(event["confidence"]), flags=tuple(str(f) for f in event["flags"]),
                       latency_ms=float(event["latency_ms"]))


def status_event(status: StreamStatus) -> dict[str, object]:
    """The ``status`` line of a stream status, as a dict (without the recent signal).

    Parameters
    ----------
    status : StreamStatus
        The stream's health.

    Returns
    -------
    dict of str to object
        ``event`` (``status``) and the status's fields but ``recent_uv`` and
        ``recent_sfreq_hz``.
    """
    return {"event": STATUS, "source_name": status.source_name, "sfreq_hz": status.sfreq_hz,
            "channel": status.channel, "samples_received": status.samples_received,
            "samples_missing": status.samples_missing, "gaps": status.gaps, "stalled": status.stalled,
            "elapsed_s": status.elapsed_s, "last_latency_ms": status.last_latency_ms}


@filled(raises=_FROM_EVENT_RAISES)
def status_from_event(event: dict[str, object]) -> StreamStatus:
    """The stream status a ``status`` line describes.

    Parameters
    ----------
    event : dict of str to object
        The parsed ``status`` line (as :func:`status_event` makes it; ``seq``,
        ``dropped_lines`` and the ``recording`` keys are not read).

    Returns
    -------
    StreamStatus
        The status, with no recent signal.

    Raises
    ------
    {raises}
    """
    return StreamStatus(source_name=str(event["source_name"]), sfreq_hz=float(event["sfreq_hz"]),
                        channel=str(event["channel"]), samples_received=int(event["samples_received"]),
                        samples_missing=int(event["samples_missing"]), gaps=int(event["gaps"]),
                        stalled=bool(event["stalled"]), elapsed_s=float(event["elapsed_s"]),
                        last_latency_ms=float(event["last_latency_ms"]))


def gate_event(event: GateEvent, stamp: float, epoch_offset: int = 0) -> dict[str, object]:
    """The ``gate`` line of a stimulation-window event, as a dict.

    Parameters
    ----------
    event : GateEvent
        The open or close.
    stamp : float
        When it was published, s (the worker's LSL clock: the marker's stamp).
    epoch_offset : int
        Added to the deciding epoch (the hypnogram file's first new epoch number).

    Returns
    -------
    dict of str to object
        ``event`` (``gate``), ``kind``, ``reason``, ``time``, ``stamp`` and ``epoch``
        (None when no epoch decided it).
    """
    return {"event": GATE, "kind": event.kind, "reason": event.reason, "time": float(event.time),
            "stamp": float(stamp), "epoch": None if event.epoch is None else epoch_offset + int(event.epoch)}


def gate_from_event(event: dict[str, object]) -> tuple[GateEvent, float]:
    """The stimulation-window event and stamp a ``gate`` line describes.

    Parameters
    ----------
    event : dict of str to object
        The parsed ``gate`` line.

    Returns
    -------
    tuple of (GateEvent, float)
        The :class:`scorer.gate.window.GateEvent` (its arrival time unknown: NaN) and
        the marker's stamp, s.

    Raises
    ------
    ValueError
        ``kind`` is neither ``open`` nor ``close``.
    """
    from .gate.window import CLOSE, OPEN, GateEvent

    kind = str(event["kind"])
    if kind not in (OPEN, CLOSE):
        raise ValueError(f"gate kind {kind!r}")
    epoch = event.get("epoch")
    return (GateEvent(kind, str(event["reason"]), float(event["time"]), None if epoch is None else int(epoch)),
            float(event["stamp"]))


class JsonLinesSink(Sink):
    """Sink writing the lines above to ``stream`` (the live command: stdout), never blocking
    the loop: lines go through a bounded queue to a writer thread, and a line that does not
    fit is dropped and counted (its ``seq`` is used up).

    Parameters
    ----------
    stream : TextIO
        Where the lines go.
    epoch_offset : int
        Added to each record's epoch (the hypnogram file's first new epoch number).
    recording : callable, optional
        Returns the hypnogram file's :class:`scorer.hypnogram_file.RecordingState`
        (``HypnogramFile.recording_state``); adds the ``recording`` keys.
    max_queued : int
        Lines waiting for a slow reader before new ones are dropped.
    """

    def __init__(self, stream: TextIO, epoch_offset: int = 0, *,
                 recording: Callable[[], RecordingState] | None = None, max_queued: int = MAX_QUEUED) -> None:
        self.stream = stream
        self.epoch_offset = int(epoch_offset)
        self.recording = recording
        self.seq = 0
        self._writer = BoundedWriter(stream, max_queued=max_queued, name="status-json")
        self._closed = False

    def __repr__(self) -> str:
        return f"<JsonLinesSink seq {self.seq}, {self.dropped_lines} dropped: {self._writer!r}>"

    @property
    def dropped_lines(self) -> int:
        """Lines dropped so far (the reader did not keep up, or is gone)."""
        return self._writer.dropped

    def _line(self, obj: dict[str, object]) -> None:
        obj = {"event": obj["event"], "seq": self.seq, **obj}
        self.seq += 1
        self._writer.offer(json.dumps(obj) + "\n")

    def _recording(self) -> dict[str, object]:
        if self.recording is None:
            return {}
        try:
            return self.recording().as_dict()
        except Exception:              # the file sink's trouble is its own; the line goes out
            return {}

    @sections_of(BoundedWriter.flush, "Wait, bounded, for the lines queued to be written.")
    def flush(self, timeout_s: float = CLOSE_WAIT_S) -> bool:
        return self._writer.flush(timeout_s)

    @sections_of(Sink.publish, "Write the epoch's ``epoch`` line (with ``recording`` when there is a file).")
    def publish(self, record: ScoredEpoch) -> None:
        line = epoch_event(record, self.epoch_offset)
        rec = self._recording()
        if rec:
            line["recording"] = rec["recording"]
        self._line(line)

    def gate(self, event: GateEvent, stamp: float) -> None:
        """A gate listener (``GateSink.add_listener``): one ``gate`` line per event.

        Parameters
        ----------
        event : GateEvent
            The open or close.
        stamp : float
            Its marker's stamp, s (LSL clock).
        """
        self._line(gate_event(event, stamp, self.epoch_offset))

    def follow_gate(self, gate: GateSink) -> None:
        """Write a line for each event ``gate`` has published so far (its start's ``close`` /
        ``restart``), then one for each later event.

        Parameters
        ----------
        gate : GateSink
            The session's gate.
        """
        for event, stamp, _ in list(gate.history):
            self.gate(event, stamp)
        gate.add_listener(self.gate)

    @sections_of(Sink.truth, "Write a ``truth`` line (its ``epoch``, the file's number: ``epoch_offset`` plus ``epoch``).")
    def truth(self, epoch: int, stage: str) -> None:
        self._line({"event": TRUTH, "epoch": self.epoch_offset + int(epoch), "stage": stage})

    @sections_of(Sink.status, "Write a ``status`` line, with ``dropped_lines`` and the ``recording`` keys.")
    def status(self, status: StreamStatus) -> None:
        self._line({**status_event(status), "dropped_lines": self.dropped_lines, **self._recording()})

    def close(self, timeout_s: float = CLOSE_WAIT_S) -> None:
        """The ``end`` line, then wait at most ``timeout_s`` for the reader (a dead one
        costs that wait, never a hang); a second call does nothing.

        Parameters
        ----------
        timeout_s : float
            The longest wait, s.
        """
        if self._closed:
            return
        self._closed = True
        self._line({"event": END})
        self._writer.close(timeout_s)
