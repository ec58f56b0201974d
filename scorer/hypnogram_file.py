"""The hypnogram file: the durable record of a night, one tab-separated row per epoch.

Columns (header line first)::

    epoch  start_time  end_time  stage  p_W  p_N1  p_N2  p_N3  p_REM  confidence  flags  latency_ms

start_time/end_time: LSL time (s) of the epoch's first and last sample in the scorer's
clock. stage: W, N1, N2, N3, REM or UNS. p_*: probabilities in label-map order and
confidence (``nan`` when unscored). flags: comma-separated (warmup, gap, flat, clipped,
artefact), empty when none. latency_ms: last sample arriving to the record being made.

Durability: each row is one ``write`` followed by ``flush`` and ``os.fsync``, so a
scorer killed with SIGKILL (or a power cut after the fsync) leaves every epoch scored
before it on disk. The file is opened for appending only and never truncated: every
session starts with a comment line ``# session N started <ISO time> stream=<name>
model=<id> first_epoch=<n> lsl_clock=<s>`` (the scorer's LSL clock at that wall time,
so epoch times can be put on the wall clock), and epoch numbers continue after the
last epoch already in the file.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from pylsl import local_clock as lsl_clock

from sleepnet.errors import SleepstreamError

from .records import ScoredEpoch
from .sinks import StreamStatus

log = logging.getLogger(__name__)

COLUMNS: tuple[str, ...] = ("epoch", "start_time", "end_time", "stage", "p_W", "p_N1", "p_N2", "p_N3",
                            "p_REM", "confidence", "flags", "latency_ms")
HEADER = "\t".join(COLUMNS)
SESSION_PREFIX = "# session "


class HypnogramFileError(SleepstreamError):
    """An ``--out`` file that cannot be written or is not a hypnogram we may append to."""


@dataclass(frozen=True)
class HypnogramFileState:
    """What an existing file holds. rows: complete epoch rows. last_epoch: the highest
    epoch number (-1 when none). sessions: session marker lines. torn: the last line
    lacks its newline (cut short by a crash during a write)."""

    rows: int
    last_epoch: int
    sessions: int
    torn: bool


def check_writable(path: str | Path) -> None:
    """Raise :class:`HypnogramFileError` (one line) unless ``path`` can be appended to
    as a hypnogram; creates nothing. Call it before anything starts."""
    p = Path(path)
    if p.exists():
        if not p.is_file():
            raise HypnogramFileError(f"{p}: not a regular file; cannot write the hypnogram there")
        if not os.access(p, os.W_OK):
            raise HypnogramFileError(f"{p}: not writable (permission denied)")
        inspect_file(p)  # refuses a file that is not one of ours
        return
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise HypnogramFileError(f"{p}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise HypnogramFileError(f"{p}: folder {parent} is not writable")


def inspect_file(path: str | Path) -> HypnogramFileState:
    """Read an existing hypnogram file; refuse one whose first line is not our header."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise HypnogramFileError(f"{p}: cannot read it ({exc.strerror or exc})") from None
    if not data:
        return HypnogramFileState(0, -1, 0, False)
    text = data.decode("utf-8", errors="replace")
    lines = text.split("\n")
    torn = not text.endswith("\n")
    complete = lines[:-1]  # the part after the last newline is '' or a torn line
    first = (complete[0] if complete else lines[0]).rstrip("\r")
    if first != HEADER:
        raise HypnogramFileError(
            f"{p}: exists but is not a sleepstream hypnogram (first line {first[:40]!r}); "
            "refusing to append to it; choose another --out")
    rows, last, sessions = 0, -1, 0
    for line in complete[1:]:
        if line.startswith(SESSION_PREFIX):
            sessions += 1
        if not line or line.startswith("#"):
            continue
        fields = line.rstrip("\r").split("\t")
        if len(fields) != len(COLUMNS):
            continue  # a row cut short by a crash
        try:
            last = max(last, int(fields[0]))
            rows += 1
        except ValueError:
            continue
    return HypnogramFileState(rows, last, sessions, torn)


def _num(x: float, digits: int) -> str:
    return "nan" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def format_row(epoch: int, record: ScoredEpoch) -> str:
    """One TSV line (with its newline) for ``record`` numbered ``epoch``."""
    probs = [_num(p, 6) for p in record.probabilities]
    fields = [str(epoch), _num(record.start_time, 6), _num(record.end_time, 6), record.stage, *probs,
              _num(record.confidence, 6), ",".join(record.flags), _num(record.latency_ms, 1)]
    return "\t".join(fields) + "\n"


def read_rows(path: str | Path) -> list[dict[str, object]]:
    """Epoch rows of a hypnogram file as dicts (numbers parsed, flags as a tuple);
    comment lines and rows cut short by a crash are skipped."""
    out: list[dict[str, object]] = []
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        for line in fh:
            if not line.endswith("\n") or line.startswith("#") or not line.strip():
                continue
            vals = line.rstrip("\n").split("\t")
            if len(vals) != len(header):
                continue  # a row cut short by a crash
            row = dict(zip(header, vals))
            parsed: dict[str, object] = {}
            for k, v in row.items():
                if k == "epoch":
                    parsed[k] = int(v)
                elif k in ("stage",):
                    parsed[k] = v
                elif k == "flags":
                    parsed[k] = tuple(f for f in v.split(",") if f)
                else:
                    parsed[k] = float(v)
            out.append(parsed)
    return out


class HypnogramFile:
    """Sink writing the hypnogram file (see module docstring).

    Parameters
    ----------
    path : str or Path
        The ``--out`` file; created with a header, or appended to.
    stream_name, model_id : str
        Written on the session marker line.
    """

    def __init__(self, path: str | Path, stream_name: str = "", model_id: str = "") -> None:
        self.path = Path(path)
        check_writable(self.path)
        state = inspect_file(self.path) if self.path.exists() else HypnogramFileState(0, -1, 0, False)
        created = not self.path.exists()
        try:
            self._fh = open(self.path, "a", encoding="utf-8", newline="\n")
        except OSError as exc:
            raise HypnogramFileError(f"{self.path}: cannot open for writing ({exc.strerror or exc})") from None
        self.session = state.sessions + 1
        self.first_epoch = state.last_epoch + 1
        self.rows_written = 0
        lines = []
        if self.path.stat().st_size == 0:
            lines.append(HEADER + "\n")
        elif state.torn:
            log.warning("%s: last line was cut short (a crash during a write); it is kept as it is", self.path)
            lines.append("\n# the line above was cut short by a crash\n")
        started = datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")
        lines.append(f"{SESSION_PREFIX}{self.session} started {started} stream={stream_name or '-'} "
                     f"model={model_id or '-'} first_epoch={self.first_epoch} "
                     f"lsl_clock={lsl_clock():.6f}\n")
        self._write("".join(lines))
        if created:
            self._fsync_dir()
        log.info("hypnogram %s: session %d, epochs from %d", self.path, self.session, self.first_epoch)

    def _write(self, text: str) -> None:
        self._fh.write(text)
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def _fsync_dir(self) -> None:
        try:
            fd = os.open(self.path.parent if str(self.path.parent) else ".", os.O_RDONLY)
        except OSError:  # pragma: no cover - platforms without directory fds
            return
        try:
            os.fsync(fd)
        except OSError:  # pragma: no cover
            pass
        finally:
            os.close(fd)

    # -- Sink protocol --
    def publish(self, record: ScoredEpoch) -> None:
        self._write(format_row(self.first_epoch + record.epoch, record))
        self.rows_written += 1

    def truth(self, epoch: int, stage: str) -> None:
        """The file holds what was scored; true stages are not part of it."""

    def status(self, status: StreamStatus) -> None:
        """Stream health is not written; gaps show in the rows' flags."""

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()
