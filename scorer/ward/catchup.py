"""No row lost to a slow pipe: the ward's way to notice lines a worker dropped, and to
read the epochs they carried from the bed's hypnogram file.

A worker (``live --status-json``) writes its lines without ever blocking: a line it
cannot write in time is dropped, and counted in its per-process sequence number ``seq``
(+1 per line written or dropped). :class:`LineCount` follows ``seq`` per worker
generation and says how many lines went missing before each line (lines without ``seq``,
from an older worker, are never taken for a gap). The epochs of the missing lines are on
disk already: a worker writes (and fsyncs) an epoch's row in ``<bed>.tsv`` before its
line, so :class:`TsvTail` reads the rows appended to the file since the bed was found
(never the rows of sessions before it) from where it last stopped, and hands back those
the bed's screen lacks.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from scorer.hypnogram_file import COLUMNS, HEADER
from scorer.records import ScoredEpoch

log = logging.getLogger(__name__)

_P_COLUMNS = tuple(c for c in COLUMNS if c.startswith("p_"))
_INDEX = {c: k for k, c in enumerate(COLUMNS)}


@dataclass
class LineCount:
    """The sequence numbers of one bed's worker lines.

    Parameters
    ----------
    generation : int
        The worker start whose lines are followed (0: none yet).
    last_seq : int, optional
        The newest ``seq`` of that generation (None: none seen).
    lost : int
        Lines missing so far, over all generations.
    """

    generation: int = 0
    last_seq: int | None = None
    lost: int = 0

    def see(self, generation: int, seq: object) -> tuple[bool, int]:
        """Take one line's generation and ``seq``.

        Parameters
        ----------
        generation : int
            The worker start the line came from (the ward drops lines of earlier starts
            before they get here).
        seq : object
            The line's ``seq`` field: an int, or None for a worker that does not number
            its lines.

        Returns
        -------
        first : bool
            The first line of a new generation.
        missing : int
            Lines this generation dropped between its previous line and this one.
        """
        first = generation != self.generation
        if first:
            self.generation, self.last_seq = generation, None
        if not isinstance(seq, int) or isinstance(seq, bool):
            return first, 0
        missing = 0
        if self.last_seq is not None:
            missing = max(0, seq - self.last_seq - 1)
        if self.last_seq is None or seq > self.last_seq:
            self.last_seq = seq
        self.lost += missing
        return first, missing


def row_record(fields: list[str]) -> ScoredEpoch:
    """The :class:`ScoredEpoch` of one hypnogram row (its fields, split on tabs).

    Parameters
    ----------
    fields : list of str
        The row's fields in :data:`scorer.hypnogram_file.COLUMNS` order.

    Returns
    -------
    ScoredEpoch
        Numbered as in the file.

    Raises
    ------
    ValueError
        A field that does not parse.
    """
    def num(name: str) -> float:
        return float(fields[_INDEX[name]])

    return ScoredEpoch(epoch=int(fields[_INDEX["epoch"]]), start_time=num("start_time"), end_time=num("end_time"),
                       stage=fields[_INDEX["stage"]], probabilities=tuple(num(c) for c in _P_COLUMNS),
                       confidence=num("confidence"),
                       flags=tuple(f for f in fields[_INDEX["flags"]].split(",") if f),
                       latency_ms=num("latency_ms"))


class TsvTail:
    """The rows appended to a hypnogram file, read from where the last read stopped.

    Parameters
    ----------
    path : Path
        The bed's ``<bed>.tsv``.
    offset : int, optional
        Byte offset to read from (default: the file's size now, 0 when it does not exist:
        rows written before are earlier sessions' and are never taken).

    Notes
    -----
    Only complete lines are read (a row being written, without its newline yet, is left
    for the next read). A file that shrank (replaced) is read again from its start.
    """

    def __init__(self, path: Path, offset: int | None = None) -> None:
        self.path = Path(path)
        if offset is None:
            try:
                offset = self.path.stat().st_size
            except OSError:
                offset = 0
        self.offset = int(offset)
        self.rows_read = 0

    def __repr__(self) -> str:
        return f"<TsvTail {self.path.name} at byte {self.offset}, {self.rows_read} rows read>"

    def rows_after(self, after: int | None, before: int | None = None) -> list[ScoredEpoch]:
        """The rows numbered above ``after`` and below ``before``, in file order.

        Parameters
        ----------
        after : int or None
            The newest epoch the bed already has (None: none).
        before : int or None
            Stop at the first row numbered ``before`` or more (it is left unread, so a
            later call can still take it); None: read to the end.

        Returns
        -------
        list of ScoredEpoch
            Rows numbered as in the file; empty when the file cannot be read (logged).
        """
        out: list[ScoredEpoch] = []
        try:
            size = os.stat(self.path).st_size
            if size < self.offset:
                log.warning("%s: shorter than when last read (%d < %d bytes); reading it from its start",
                            self.path, size, self.offset)
                self.offset = 0
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                pos = self.offset
                for raw in fh:
                    if not raw.endswith(b"\n"):
                        break                     # a row being written: the next read takes it
                    line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                    fields = line.split("\t")
                    if line and not line.startswith("#") and line != HEADER and len(fields) == len(COLUMNS):
                        try:
                            rec = row_record(fields)
                        except (ValueError, IndexError):
                            rec = None
                        if rec is not None:
                            if before is not None and rec.epoch >= before:
                                break
                            if after is None or rec.epoch > after:
                                out.append(rec)
                    pos += len(raw)
                self.offset = pos
        except OSError as exc:
            log.warning("%s: cannot read rows a worker's lines lost (%s)", self.path, exc.strerror or exc)
            return out
        self.rows_read += len(out)
        return out
