"""The hypnogram file: the durable record of a night, one tab-separated row per epoch.

Columns (header line first)::

    epoch  start_time  end_time  stage  p_W  p_N1  p_N2  p_N3  p_REM  confidence  flags  latency_ms

start_time/end_time: LSL time (s) of the epoch's first and last sample in the scorer's
clock. stage: W, N1, N2, N3, REM or UNS. p_*: probabilities in label-map order and
confidence (``nan`` when unscored). flags: comma-separated (warmup, gap, flat, clipped,
artefact), empty when none. latency_ms: last sample arriving to the record being made.

Durability: each row is one ``write`` followed by ``os.fsync``, so a scorer killed with
SIGKILL (or a power cut after the fsync) leaves every epoch scored before it on disk.
The file is opened for appending only and never truncated: every session starts with a
comment line ``# session N started <ISO time> stream=<name> model=<id> first_epoch=<n>
lsl_clock=<s>`` (the scorer's LSL clock at that wall time, so epoch times can be put on
the wall clock), and epoch numbers continue after the last epoch already in the file.

One writer: the sink holds an exclusive ``fcntl.flock`` on the file while it writes it
(non-blocking: a second scorer on the same file is refused with one line,
:class:`HypnogramFileError`, before it touches the file or the night state beside it).

Never losing the record silently: a write that fails (a full disk, ``EFBIG``, ``EIO``,
a read-only remount) or a file that was removed or replaced under the scorer turns the
session into NOT RECORDING (:attr:`HypnogramFile.recording` false, logged, shown on the
screen and in ``--status-json``; the stimulation gate closes and stays closed). The rows
that could not be written are kept in memory, in order (at most ``max_pending`` rows, 24 h
of epochs by default; past that the oldest are given up, counted in ``rows_lost``, logged,
and said in the file by a comment line when it is written again), and every epoch (and at
most once a second between epochs) the sink tries again: the rest of a row cut short by a
failed write first, so no row is torn. When the disk takes them, the kept rows are written
in order and the session says RECORDING again. A removed file is made again (header, and a
``# session N continued ...`` line); a replaced one is written to only when it is a
hypnogram whose last epoch comes before the rows kept.
"""
from __future__ import annotations

import errno
import fcntl
import logging
import math
import os
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from pylsl import local_clock as lsl_clock

from sleepnet.doc_sections import sections_of
from sleepnet.errors import SleepstreamError

from .records import ScoredEpoch
from .sinks import Sink, StreamStatus

log = logging.getLogger(__name__)

COLUMNS: tuple[str, ...] = ("epoch", "start_time", "end_time", "stage", "p_W", "p_N1", "p_N2", "p_N3",
                            "p_REM", "confidence", "flags", "latency_ms")
HEADER = "\t".join(COLUMNS)
SESSION_PREFIX = "# session "
MAX_PENDING_ROWS = 2880          # rows kept in memory while the disk fails: 24 h of epochs (~0.5 MB)
RETRY_EVERY_S = 1.0              # between epochs, retry a failing file at most this often


class HypnogramFileError(SleepstreamError):
    """An ``--out`` file that cannot be written or is not a hypnogram we may append to."""


@dataclass(frozen=True)
class HypnogramFileState:
    """What an existing file holds.

    Read by :func:`inspect_file` before a scorer appends: the new session is numbered
    ``sessions + 1`` and its first epoch ``last_epoch + 1``.

    Parameters
    ----------
    rows : int
        Complete epoch rows.
    last_epoch : int
        The highest epoch number (-1 when none).
    sessions : int
        Session marker lines.
    torn : bool
        The last line lacks its newline (cut short by a crash during a write).
    """

    rows: int
    last_epoch: int
    sessions: int
    torn: bool


@dataclass(frozen=True)
class RecordingState:
    """Whether the night is being recorded (the hypnogram file's health).

    :meth:`HypnogramFile.recording_state` makes one on each call; the screen says NOT
    RECORDING while ``recording`` is False, and a status line carries :meth:`as_dict`.

    Parameters
    ----------
    recording : bool
        The last row (and everything before it) is on disk.
    rows_written : int
        Rows written this session.
    rows_pending : int
        Rows kept in memory, waiting for the disk.
    rows_lost : int
        Rows given up (more than the sink keeps).
    error : str, optional
        Why the file cannot be written (None while recording).
    since : float, optional
        When recording stopped (s, the scorer's LSL clock; None while recording).
    """

    recording: bool = True
    rows_written: int = 0
    rows_pending: int = 0
    rows_lost: int = 0
    error: str | None = None
    since: float | None = None

    def as_dict(self) -> dict[str, object]:
        """The keys of a ``--status-json`` status line.

        Returns
        -------
        dict of str to object
            ``recording``, ``rows_written``, ``rows_pending``, ``rows_lost`` and
            ``recording_error`` (``since`` is not among them).
        """
        return {"recording": self.recording, "rows_written": self.rows_written, "rows_pending": self.rows_pending,
                "rows_lost": self.rows_lost, "recording_error": self.error}


def _locked_by_another(path: Path) -> bool:
    """Whether another process holds the writer's lock on ``path`` (False when it cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)          # closing releases a lock taken here
    return False


def _busy_message(p: Path) -> str:
    return (f"{p}: another scorer is writing this hypnogram (the file is locked); stop it or choose "
            "another file")


def check_writable(path: str | Path) -> None:
    """Check that ``path`` can be appended to as a hypnogram by this process.

    Creates nothing; call it before anything starts. A file that does not exist yet must
    have a writable folder; one that exists must be a regular, writable hypnogram of ours
    that no other scorer holds.

    Parameters
    ----------
    path : str or Path
        The ``--out`` file.

    Raises
    ------
    HypnogramFileError
        One line naming the file and what is wrong.
    """
    p = Path(path)
    if p.exists():
        if not p.is_file():
            raise HypnogramFileError(f"{p}: not a regular file; cannot write the hypnogram there")
        if not os.access(p, os.W_OK):
            raise HypnogramFileError(f"{p}: not writable (permission denied)")
        inspect_file(p)  # refuses a file that is not one of ours
        if _locked_by_another(p):
            raise HypnogramFileError(_busy_message(p))
        return
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise HypnogramFileError(f"{p}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise HypnogramFileError(f"{p}: folder {parent} is not writable")


def inspect_file(path: str | Path) -> HypnogramFileState:
    """Read an existing hypnogram file; refuse one whose first line is not our header.

    Parameters
    ----------
    path : str or Path
        The file (an empty file holds nothing and is accepted).

    Returns
    -------
    HypnogramFileState
        Its complete rows, last epoch, session lines and whether its last line is torn.

    Raises
    ------
    HypnogramFileError
        The file cannot be read, or is not a sleepstream hypnogram.
    """
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
            "refusing to append to it; choose another file")
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
    """One TSV row of the hypnogram file.

    Parameters
    ----------
    epoch : int
        The epoch number written (the file's numbering, continued across sessions).
    record : ScoredEpoch
        The scored epoch.

    Returns
    -------
    str
        The row in :data:`COLUMNS` order, with its newline: times and probabilities to 6
        decimals, latency to 1, ``nan`` where not finite.
    """
    probs = [_num(p, 6) for p in record.probabilities]
    fields = [str(epoch), _num(record.start_time, 6), _num(record.end_time, 6), record.stage, *probs,
              _num(record.confidence, 6), ",".join(record.flags), _num(record.latency_ms, 1)]
    return "\t".join(fields) + "\n"


def read_rows(path: str | Path) -> list[dict[str, object]]:
    """Epoch rows of a hypnogram file.

    Comment lines and rows cut short by a crash are skipped.

    Parameters
    ----------
    path : str or Path
        The hypnogram file.

    Returns
    -------
    list of dict
        One dict per row, keyed by the header's columns: ``epoch`` an int, ``stage`` a
        str, ``flags`` a tuple of str, the rest floats (s, probabilities, ms).
    """
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


class HypnogramFile(Sink):
    """Sink writing the hypnogram file (see the module text).

    The file holds what was scored: true stages (``truth``) are not part of it, and the
    :class:`Sink` method that does nothing is kept.

    Parameters
    ----------
    path : str or Path
        The ``--out`` file; created with a header, or appended to.
    stream_name, model_id : str
        Written on the session marker line.
    max_pending : int
        Rows kept in memory while the file cannot be written.

    Raises
    ------
    HypnogramFileError
        The file cannot be opened, is not one of ours, or another scorer holds it.
    """

    def __init__(self, path: str | Path, stream_name: str = "", model_id: str = "",
                 max_pending: int = MAX_PENDING_ROWS) -> None:
        self.path = Path(path)
        check_writable(self.path)
        state = inspect_file(self.path) if self.path.exists() else HypnogramFileState(0, -1, 0, False)
        created = not self.path.exists()
        try:
            self._fd = self._open_locked(self.path)
        except OSError as exc:
            raise HypnogramFileError(f"{self.path}: cannot open for writing ({exc.strerror or exc})") from None
        self.session = state.sessions + 1
        self.first_epoch = state.last_epoch + 1
        self.max_pending = max(1, int(max_pending))
        self.rows_written = 0
        self.rows_lost = 0
        self._stream_name = stream_name or "-"
        self._model_id = model_id or "-"
        # lines not on disk yet, oldest first: [text, kind] with kind "row" (an epoch row), or
        # [None, "lost", first, last] (rows given up: a comment line made when it is written)
        self._pending: deque[list] = deque()
        self._head_done = 0                         # bytes of the first pending line already written
        self._n_pending = 0                         # epoch rows among them
        self._error: str | None = None
        self._since: float | None = None
        self._last_try = -math.inf
        self._closed = False
        self._ident = os.fstat(self._fd)
        lines = []
        if os.fstat(self._fd).st_size == 0:
            lines.append(HEADER + "\n")
        elif state.torn:
            log.warning("%s: last line was cut short (a crash during a write); it is kept as it is", self.path)
            lines.append("\n# the line above was cut short by a crash\n")
        lines.append(self._session_line("started"))
        try:
            data = "".join(lines).encode("utf-8")
            while data:
                data = data[os.write(self._fd, data):]
            os.fsync(self._fd)
        except OSError as exc:
            os.close(self._fd)
            raise HypnogramFileError(f"{self.path}: cannot write ({exc.strerror or exc})") from None
        if created:
            self._fsync_dir()
        log.info("hypnogram %s: session %d, epochs from %d", self.path, self.session, self.first_epoch)

    def __repr__(self) -> str:
        state = "recording" if self.recording else f"NOT RECORDING ({self._error}), {self._n_pending} rows kept"
        return f"<HypnogramFile {self.path} session {self.session}: {state}, {self.rows_written} rows written>"

    # -- state --
    @property
    def recording(self) -> bool:
        """Every row so far is on disk (no failure since the last successful write)."""
        return self._error is None

    def recording_state(self) -> RecordingState:
        """The file's health now (for the screen, ``--status-json`` and the gate).

        Returns
        -------
        RecordingState
            Recording or not, with the row counts, the error and since when.
        """
        return RecordingState(self._error is None, self.rows_written, self.rows_pending, self.rows_lost,
                              self._error, self._since)

    @property
    def rows_pending(self) -> int:
        """Epoch rows kept in memory, waiting for the disk."""
        return self._n_pending

    # -- Sink methods --
    @sections_of(Sink.publish, """Append the epoch's row (numbered after the rows already in the
        file) and fsync; on failure keep it in memory and say NOT RECORDING.""")
    def publish(self, record: ScoredEpoch) -> None:
        self._keep(format_row(self.first_epoch + record.epoch, record).encode("utf-8"))
        self._try_write()

    @sections_of(Sink.status, """Stream health is not written (gaps show in the rows' flags);
        while not recording, try the disk again (at most once a second).""")
    def status(self, status: StreamStatus) -> None:
        if self._error is not None and time.monotonic() - self._last_try >= RETRY_EVERY_S:
            self._try_write()

    def close(self) -> None:
        """Try once more to write the rows kept (those that cannot be are logged and
        counted lost), then close the file and release its lock; a second call does
        nothing (it neither writes, counts nor logs again)."""
        if self._closed:
            return
        if self._pending:
            self._try_write()
        self._closed = True                 # from here on nothing is written: the lock is let go
        if self._pending:
            log.error("%s: %d rows could not be written before the scorer stopped (%s): they are lost",
                      self.path, self.rows_pending, self._error)
            self.rows_lost += self._n_pending
            self._pending.clear()
            self._n_pending = 0
            self._head_done = 0
        if self._fd >= 0:
            os.close(self._fd)              # releases the lock
            self._fd = -1

    # -- internals --
    def _session_line(self, what: str, first_epoch: int | None = None) -> str:
        started = datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")
        first = self.first_epoch if first_epoch is None else first_epoch
        return (f"{SESSION_PREFIX}{self.session} {what} {started} stream={self._stream_name} "
                f"model={self._model_id} first_epoch={first} lsl_clock={lsl_clock():.6f}\n")

    @staticmethod
    def _open_locked(path: Path, create_new: bool = False) -> int:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | (os.O_EXCL if create_new else 0)
        fd = os.open(path, flags, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise HypnogramFileError(_busy_message(path)) from None
        except OSError:
            pass                            # a file system without locks: write anyway
        return fd

    def _keep(self, row: bytes) -> None:
        """Queue an epoch row (written by :meth:`_try_write`)."""
        self._pending.append([row, "row"])
        self._n_pending += 1

    def _trim(self) -> None:
        """Past ``max_pending`` rows waiting, give up the oldest not begun on disk (a row cut
        short must be finished); one comment line in the file says where they were."""
        while self._n_pending > self.max_pending:
            k = 1 if self._head_done else 0
            while k < len(self._pending) and self._pending[k][1] != "row":
                k += 1
            if k >= len(self._pending):
                break
            epoch = int(self._pending[k][0].split(b"\t", 1)[0])
            del self._pending[k]
            self._n_pending -= 1
            self.rows_lost += 1
            prev = self._pending[k - 1] if k > 0 else None
            if prev is not None and prev[1] == "lost" and not (k == 1 and self._head_done):
                prev[3] = epoch                   # the same stretch of lost rows, one note (not begun)
            else:
                self._pending.insert(k, [None, "lost", epoch, epoch])
                log.error("%s: more than %d rows wait for the disk: the oldest are given up from epoch %d on",
                          self.path, self.max_pending, epoch)

    def _try_write(self) -> None:
        """Write what is kept, in order, then fsync; on failure keep the rest and say so
        (nothing once closed)."""
        if self._closed:
            return
        self._last_try = time.monotonic()
        written = 0
        try:
            self._check_same_file()
            while self._pending:
                entry = self._pending[0]
                line = entry[0] if entry[1] == "row" else (   # a stretch of lost rows: said in the file
                    f"# rows of epochs {entry[2]}-{entry[3]} were lost: the file could not be written for longer "
                    f"than {self.max_pending} rows are kept\n").encode()
                data = memoryview(line)[self._head_done:]
                while data:
                    n = os.write(self._fd, data)
                    self._head_done += n
                    data = data[n:]
                self._pending.popleft()
                self._head_done = 0
                if entry[1] == "row":
                    self._n_pending -= 1
                    written += 1
            if written or self._error is not None:
                os.fsync(self._fd)
        except (OSError, HypnogramFileError) as exc:
            self.rows_written += written
            self._failed(exc)
            self._trim()
            return
        self.rows_written += written
        if self._error is not None:
            log.warning("%s: RECORDING again; %d rows kept in memory written (%s before)", self.path,
                        written, self._error)
            self._error = None
            self._since = None

    def _failed(self, exc: Exception) -> None:
        why = (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)) or type(exc).__name__
        if self._error is None:
            self._since = lsl_clock()
            log.error("%s: NOT RECORDING: cannot write the hypnogram (%s); %d rows kept in memory, retrying "
                      "each epoch", self.path, why, self.rows_pending)
        elif why != self._error:
            log.error("%s: still NOT RECORDING (%s)", self.path, why)
        self._error = why

    def _check_same_file(self) -> None:
        """The path must still name the file we hold: a removed file is made again, a
        replaced one taken over only when it is this night's hypnogram."""
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            now = None
        if now is not None and (now.st_dev, now.st_ino) == (self._ident.st_dev, self._ident.st_ino):
            return
        if now is None:
            if self._error is None or "removed" not in self._error:
                log.error("%s: the hypnogram file was removed while scoring; making it again", self.path)
            fd = self._open_locked(self.path, create_new=True)   # FileNotFoundError: the folder is gone
            head = HEADER + "\n"
            what = "continued after the file was removed"
        else:
            try:
                st = inspect_file(self.path)
            except HypnogramFileError as exc:
                raise OSError(errno.EEXIST, f"replaced by a file that is not a hypnogram ({exc})") from None
            first = self._first_pending_epoch()
            if first is not None and st.last_epoch >= first:
                raise OSError(errno.EEXIST, f"replaced by a hypnogram that already holds epoch {st.last_epoch}")
            fd = self._open_locked(self.path)
            head = "" if os.fstat(fd).st_size else HEADER + "\n"
            what = "continued after the file was replaced"
        try:
            data = (head + self._session_line(what, self._first_pending_epoch())).encode("utf-8")
            while data:
                data = data[os.write(fd, data):]
        except OSError:
            os.close(fd)
            raise
        os.close(self._fd)
        # a row cut short in the old file is written whole to the new one
        self._fd, self._ident, self._head_done = fd, os.fstat(fd), 0

    def _first_pending_epoch(self) -> int | None:
        for entry in self._pending:
            if entry[1] == "row":
                return int(entry[0].split(b"\t", 1)[0])
        return None

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
