"""Read a scored night: the live scorer's hypnogram TSV or the batch ``score`` CSV.

Formats
-------
* Live hypnogram file (``sleepstream live --out night.tsv``): tab-separated, a header
  ``epoch start_time end_time stage p_W p_N1 p_N2 p_N3 p_REM confidence flags
  latency_ms``, one row per epoch. Lines starting with ``# session`` are session
  markers: a restarted scorer appends ``# session N started ...`` and carries on
  numbering; other ``#`` lines are comments. The file is written and fsync'ed epoch by
  epoch, so a crash can leave a truncated row (the last line, or a line a restarted
  scorer closed with a newline); it is dropped and counted, as is any malformed line.
* Batch stage CSV (``sleepstream score --out preds.csv``): columns ``epoch, onset_s,
  stage, p_W, p_N1, p_N2, p_N3, p_REM, confidence, flags``.

Both become a :class:`Night`: one slot per 30-s epoch from the night's start. In the
live file, epochs follow each other by their numbers within a session; between
sessions, the time the scorer was not running (from ``start_time``, when the two
sessions share a clock) becomes slots with no row, unscored (``received`` False). A
time going backwards (another machine, a reboot) just appends. Session markers that
carry a wall-clock date (ISO 8601, e.g. ``2024-05-06T23:01:02``) give the night's clock
time: with ``lsl_clock=<s>`` (the scorer's LSL clock at that moment) exactly, without it
taken as the first epoch's start.
"""
from __future__ import annotations

import csv
import logging
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from ..errors import InputFileError
from ..stages import EPOCH_S, N_STAGES, STAGES, UNSCORED, stage_code

log = logging.getLogger(__name__)

LIVE_COLUMNS = ("epoch", "start_time", "end_time", "stage", *(f"p_{s}" for s in STAGES),
                "confidence", "flags", "latency_ms")
BATCH_COLUMNS = ("epoch", "onset_s", "stage", *(f"p_{s}" for s in STAGES), "confidence", "flags")
MAX_SESSION_GAP_S = 48 * 3600.0      # a longer pause between sessions is not the same night
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?")
_LSL_CLOCK = re.compile(r"(?:lsl_clock|lsl_time|local_clock)\s*[=:]\s*(-?\d+(?:\.\d*)?)")
_FLAG_SPLIT = re.compile(r"[|,; ]+")
_SESSION = re.compile(r"session\b", re.IGNORECASE)


@dataclass(frozen=True)
class Session:
    """A ``# session ...`` marker: the slot where it starts, its text, its wall time.

    Parameters
    ----------
    slot : int
        The slot of the session's first row (the night's length when no row follows).
    text : str
        The marker's text, without the leading ``#``.
    wall : datetime, optional
        The ISO 8601 wall-clock time the marker carries, if any.
    lsl_clock_s : float, optional
        The scorer's LSL clock at that time, s (``lsl_clock=<s>`` in the marker), if any.
    """

    slot: int
    text: str
    wall: datetime | None = None
    lsl_clock_s: float | None = None


@dataclass(frozen=True)
class Night:
    """A scored night, one slot per 30-s epoch from its start.

    :func:`read_night` makes it from either format; a slot the file has no row for is
    unscored (``stages`` -1, ``received`` False).

    Parameters
    ----------
    source : str
        The path of the file read, as given to :func:`read_night`.
    kind : str
        ``"live"`` (hypnogram TSV) or ``"batch"`` (stage CSV).
    stages : numpy.ndarray
        (n,) int8 codes (-1 unscored or no row).
    probabilities : numpy.ndarray
        (n, 5) float, NaN where unscored.
    confidence : numpy.ndarray
        (n,) float, NaN where absent.
    latency_ms : numpy.ndarray
        (n,) float, ms, NaN where absent (batch files have none).
    flags : tuple of tuple of str
        Quality flags per slot.
    received : numpy.ndarray
        (n,) bool, a row exists for the slot.
    epoch_numbers : numpy.ndarray
        (n,) the file's epoch number per slot (-1 for none).
    sessions : tuple of Session, default ()
        The session markers, in file order.
    start_wall : datetime, optional
        Clock time of slot 0's start when the file says it.
    skipped_lines : int, default 0
        Malformed or truncated lines dropped.
    epoch_s : float, default EPOCH_S
        Slot length, s.
    notes : tuple of str, default ()
        What the reader noticed (repeated epochs, slots with no row, dropped lines).
    first_time_s : float, default nan
        The time column of slot 0's row (the scorer's LSL clock for a live night,
        seconds from the recording start for a batch one).
    """

    source: str
    kind: str                             # "live" or "batch"
    stages: np.ndarray
    probabilities: np.ndarray
    confidence: np.ndarray
    latency_ms: np.ndarray
    flags: tuple[tuple[str, ...], ...]
    received: np.ndarray
    epoch_numbers: np.ndarray
    sessions: tuple[Session, ...] = ()
    start_wall: datetime | None = None
    skipped_lines: int = 0
    epoch_s: float = EPOCH_S
    notes: tuple[str, ...] = field(default_factory=tuple)
    first_time_s: float = math.nan        # start_time (live) or onset_s (batch) of slot 0

    @property
    def n_epochs(self) -> int:
        """Number of slots (30-s epochs) in the night."""
        return len(self.stages)

    @property
    def onset_s(self) -> np.ndarray:
        """(n,) start of each slot in seconds from the night's start."""
        return np.arange(self.n_epochs) * self.epoch_s

    def flag_counts(self) -> dict[str, int]:
        """How many slots carry each quality flag.

        Returns
        -------
        dict of str to int
            Slots per flag, in the order the flags first appear.
        """
        counts: dict[str, int] = {}
        for fl in self.flags:
            for f in fl:
                counts[f] = counts.get(f, 0) + 1
        return counts


def _float(text: str) -> float:
    text = text.strip()
    if text in ("", "nan", "NaN", "n/a", "NA", "-"):
        return math.nan
    return float(text)


def _flags(text: str) -> tuple[str, ...]:
    return tuple(f for f in _FLAG_SPLIT.split(text.strip()) if f and f not in ("-", "n/a", "none"))


def _marker(text: str) -> tuple[datetime | None, float | None]:
    m = _ISO.search(text)
    wall = None
    if m:
        try:
            wall = datetime.fromisoformat(m.group(0).replace("Z", "+00:00"))
        except ValueError:
            wall = None
    c = _LSL_CLOCK.search(text)
    return wall, (float(c.group(1)) if c else None)


@dataclass
class _Row:
    line_no: int
    epoch: int
    time_s: float                 # start_time (live) or onset_s (batch)
    stage: int
    probs: tuple[float, ...]
    confidence: float
    flags: tuple[str, ...]
    latency_ms: float
    session: int


def read_night(path: str | Path) -> Night:
    """Read a live hypnogram TSV or a batch stage CSV (see the module docstring).

    Parameters
    ----------
    path : str or Path
        A live hypnogram TSV or a batch stage CSV; which one is told by its header line
        (``start_time`` or ``onset_s``), not by its name.

    Returns
    -------
    Night
        The night, one slot per 30-s epoch.

    Raises
    ------
    InputFileError
        One line: no such file, a folder, not text, no header, an unknown format, no
        epochs, more malformed lines than max(3, a tenth of the good ones), or negative
        epoch numbers in a batch file.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: no such file")
    if path.is_dir():
        raise InputFileError(f"{path}: is a folder, expected a night file (.tsv from live, .csv from score)")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (UnicodeDecodeError, OSError) as exc:
        raise InputFileError(f"{path}: not a text night file ({exc.__class__.__name__})") from None
    ends_clean = text.endswith("\n")
    lines = text.replace("\r\n", "\n").split("\n")
    if ends_clean:
        lines = lines[:-1]
    header_idx = next((i for i, ln in enumerate(lines) if ln.strip() and not ln.lstrip().startswith("#")), None)
    if header_idx is None:
        raise InputFileError(f"{path}: empty night file (no header line)")
    head_line = lines[header_idx]
    delim = "\t" if "\t" in head_line else ","
    header = [h.strip().lower() for h in next(csv.reader([head_line], delimiter=delim))]
    if all(c in header for c in ("epoch", "start_time", "stage")):
        kind, time_col = "live", "start_time"
    elif all(c in header for c in ("epoch", "onset_s", "stage")):
        kind, time_col = "batch", "onset_s"
    else:
        raise InputFileError(
            f"{path}: unknown night file format (header '{head_line.strip()[:80]}'); expected the live "
            f"hypnogram TSV ({' '.join(LIVE_COLUMNS[:4])} ...) or the score CSV ({', '.join(BATCH_COLUMNS[:3])}, ...)"
        )
    col = {name: i for i, name in enumerate(header)}
    rows: list[_Row] = []
    markers: list[tuple[int, str]] = []        # (index into rows where the session starts, text)
    skipped = 0
    session = 0
    last_line = len(lines) - 1
    for i, ln in enumerate(lines):
        if i == header_idx or not ln.strip():
            continue
        if ln.lstrip().startswith("#"):
            text = ln.lstrip("# ").strip()
            if _SESSION.match(text):               # other comments are notes, not sessions
                markers.append((len(rows), text))
                if len(rows):
                    session += 1
            continue
        fields = next(csv.reader([ln], delimiter=delim))
        if [f.strip().lower() for f in fields] == header:      # a repeated header
            continue
        try:
            if len(fields) != len(header):
                raise ValueError(f"{len(fields)} fields, header has {len(header)}")
            stage = stage_code(fields[col["stage"]])
            if stage is None:
                raise ValueError(f"unknown stage '{fields[col['stage']]}'")
            probs = tuple(_float(fields[col[f"p_{s}".lower()]]) if f"p_{s}".lower() in col else math.nan
                          for s in STAGES)
            row = _Row(
                line_no=i + 1, epoch=int(fields[col["epoch"]]), time_s=_float(fields[col[time_col]]),
                stage=stage, probs=probs,
                confidence=_float(fields[col["confidence"]]) if "confidence" in col else math.nan,
                flags=_flags(fields[col["flags"]]) if "flags" in col else (),
                latency_ms=_float(fields[col["latency_ms"]]) if "latency_ms" in col else math.nan,
                session=session,
            )
        except (ValueError, IndexError) as exc:
            skipped += 1
            where = "truncated last line" if i == last_line and not ends_clean else f"malformed line {i + 1}"
            log.warning("%s: %s dropped (%s)", path, where, exc)
            continue
        rows.append(row)
    if not rows:
        raise InputFileError(f"{path}: no epochs in the night file" + (f" ({skipped} malformed lines)" if skipped else ""))
    if skipped > max(3, len(rows) // 10):
        raise InputFileError(f"{path}: {skipped} malformed lines for {len(rows)} good ones; is it a {kind} night file?")
    slots = _slots(rows, kind)
    return _assemble(path, kind, rows, slots, markers, skipped)


def _slots(rows: list[_Row], kind: str) -> np.ndarray:
    """Slot index of each row (see the module docstring)."""
    out = np.zeros(len(rows), dtype=np.int64)
    if kind == "batch":
        for k, r in enumerate(rows):
            out[k] = r.epoch
        return out
    for k in range(1, len(rows)):
        prev, cur = rows[k - 1], rows[k]
        step = 1
        if cur.session == prev.session:
            if cur.epoch > prev.epoch:
                step = cur.epoch - prev.epoch
        else:
            dt = cur.time_s - prev.time_s
            if math.isfinite(dt) and 0 < dt <= MAX_SESSION_GAP_S:
                step = max(1, int(round(dt / EPOCH_S)))
        out[k] = out[k - 1] + step
    return out


def _assemble(path: Path, kind: str, rows: list[_Row], slots: np.ndarray,
              markers: list[tuple[int, str]], skipped: int) -> Night:
    notes: list[str] = []
    if kind == "batch" and slots.min() < 0:
        raise InputFileError(f"{path}: negative epoch numbers")
    order = np.argsort(slots, kind="stable")
    if np.any(np.diff(slots[order]) == 0):
        dup = int(np.sum(np.diff(slots[order]) == 0))
        notes.append(f"{dup} repeated epochs: the last row of each is used")
    n = int(slots.max()) + 1
    stages = np.full(n, UNSCORED, dtype=np.int8)
    probs = np.full((n, N_STAGES), np.nan)
    conf = np.full(n, np.nan)
    lat = np.full(n, np.nan)
    received = np.zeros(n, dtype=bool)
    numbers = np.full(n, -1, dtype=np.int64)
    flags: list[tuple[str, ...]] = [() for _ in range(n)]
    for k in order:
        r, s = rows[k], int(slots[k])
        stages[s] = r.stage
        probs[s] = r.probs
        conf[s] = r.confidence
        lat[s] = r.latency_ms
        received[s] = True
        numbers[s] = r.epoch
        flags[s] = r.flags
    missing = int(n - received.sum())
    if missing:
        notes.append(f"{missing} epochs with no row (scorer not running or rows lost): unscored")
    sessions = []
    for row_index, text in markers:
        wall, clock = _marker(text)
        slot = int(slots[row_index]) if row_index < len(rows) else n
        sessions.append(Session(slot=slot, text=text, wall=wall, lsl_clock_s=clock))
    start_wall = None
    first = next((s for s in sessions if s.wall is not None and s.slot == 0), None)
    if first is not None:
        start_wall = first.wall
        if first.lsl_clock_s is not None and kind == "live" and math.isfinite(rows[0].time_s):
            start_wall = first.wall + timedelta(seconds=rows[0].time_s - first.lsl_clock_s)
    if skipped:
        notes.append(f"{skipped} malformed or truncated lines dropped")
    return Night(source=str(path), kind=kind, stages=stages, probabilities=probs, confidence=conf,
                 latency_ms=lat, flags=tuple(flags), received=received, epoch_numbers=numbers,
                 sessions=tuple(sessions), start_wall=start_wall, skipped_lines=skipped, notes=tuple(notes),
                 first_time_s=rows[int(order[0])].time_s)
