"""Output that never blocks the live loop: a writer thread per output behind a bounded queue.

The live loop is the heartbeat of a night (DESIGN.md): a terminal stalled with Ctrl-S, a
paused SSH session, a pty nobody reads or a ``--status-json`` pipe whose reader stopped
must not stop scoring. Measured before this module: ``live --status-json`` into an unread
pipe scored 169 of 960 epochs; a Ctrl-S'd terminal, 0 of 960 (NOTES.md, "Failing closed").

* :class:`BoundedWriter`: text handed over with :meth:`BoundedWriter.offer` (never
  blocks: a full queue drops the text and counts it) and written, in order, by a thread of
  its own. While the reader keeps up (nothing queued, and ``poll`` says the descriptor
  takes a write of up to ``PIPE_BUF`` bytes without blocking) a line is written at once in
  the caller's thread, so it is out before anything that follows it (a SIGKILLed worker
  loses no line its ward could have read); only a reader that lags gets the queue. A real file descriptor (stdout, stderr) is written with ``os.write``, so no
  Python-level lock is held while the thread waits on a stalled reader (a daemon thread
  blocked holding ``sys.stdout``'s lock would abort the interpreter at exit). A stream
  without a file descriptor (in memory: ``io.StringIO``) cannot stall, so it is written at
  once in the caller's thread, with no thread at all.
* :class:`BoundedLogHandler`: a logging handler that formats in the caller's thread and
  offers the line to a :class:`BoundedWriter`; a line that does not fit is dropped and
  counted (:attr:`BoundedLogHandler.dropped`).
* :func:`route_logger_to_stdout`: one logger's lines to stdout with a time stamp, and
  nowhere else (the per-epoch log lines of ``live --no-display``, through a bounded
  handler; the ward's lines).
* :func:`logging_without_blocking`: while it is active, the root logger's console
  handlers (stream handlers that are not files) are replaced by bounded ones on the same
  streams; restored afterwards, after a bounded wait for what is queued.

Waiting for the queue to empty (:meth:`BoundedWriter.flush`, :meth:`BoundedWriter.close`)
is always bounded: at exit a dead reader costs at most that wait, never a hang.
"""
from __future__ import annotations

import io
import logging
import os
import queue
import select
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

MAX_QUEUED = 1000           # items waiting for the writer thread before new ones are dropped
CLOSE_WAIT_S = 2.0          # how long closing waits for a stalled reader
PIPE_BUF = 4096             # a pipe takes a write up to this size at once when poll says POLLOUT

_STOP = object()


def _fileno(stream: TextIO | int) -> int | None:
    """The file descriptor behind ``stream`` (None for in-memory streams)."""
    if isinstance(stream, int):
        return stream
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


class BoundedWriter:
    """Write text to ``target`` from a thread of its own; the caller never waits.

    Parameters
    ----------
    target : TextIO or int
        A stream (stdout) or a file descriptor. A stream with a real file descriptor is
        written through its descriptor, past the stream's own buffer (flush it before, if
        it may hold text: flushing here could block on the very reader we must not wait for).
    max_queued : int
        Items (lines, frames) waiting to be written; an item offered when the queue is
        full is dropped and counted.
    name : str
        Names the thread (``sleepstream-<name>``) and the object's repr.

    Attributes
    ----------
    written, dropped : int
        Items written, items dropped (the queue was full, or the reader is gone); counted
        under a lock of their own (callers in several threads and the writer thread).
    broken : str or None
        Why writing stopped for good (e.g. ``Broken pipe``); later items are dropped.
    """

    def __init__(self, target: TextIO | int, *, max_queued: int = MAX_QUEUED, name: str = "output") -> None:
        self.name = name
        self.target = target
        self._fd = _fileno(target)
        self._encoding = getattr(target, "encoding", None) or "utf-8"
        self._q: queue.Queue[object] = queue.Queue(maxsize=max(1, int(max_queued)))
        self.written = 0
        self.dropped = 0
        self.broken: str | None = None
        self._closed = False
        self._lock = threading.Lock()          # held while writing: one writer at a time
        self._counts_lock = threading.Lock()   # held while counting (callers and the writer thread)
        self._thread: threading.Thread | None = None
        if self._fd is not None:
            self._thread = threading.Thread(target=self._run, name=f"sleepstream-{name}", daemon=True)
            self._thread.start()

    def __repr__(self) -> str:
        where = f"fd {self._fd}" if self._fd is not None else type(self.target).__name__
        state = f"broken ({self.broken})" if self.broken else ("closed" if self._closed else "open")
        return (f"<BoundedWriter {self.name} -> {where}: {state}, {self.written} written, {self.dropped} dropped, "
                f"{self._q.qsize()} queued>")

    @property
    def pending(self) -> int:
        """Items offered and not yet written (queued, or being written now)."""
        return self._q.unfinished_tasks

    def offer(self, text: str) -> bool:
        """Hand ``text`` over for writing; never blocks.

        While the reader keeps up (nothing queued and the descriptor takes the bytes now)
        it is written at once, in the caller's thread; else it is queued for the writer
        thread.

        Parameters
        ----------
        text : str
            The text (a line, a frame), written as it is.

        Returns
        -------
        bool
            True when it was written or queued; False (and counted in :attr:`dropped`)
            when it could not be: the queue is full, the writer is closed or broken.
        """
        if self._closed or self.broken is not None:
            self._count(dropped=1)
            return False
        if self._thread is None:               # in memory: cannot stall
            try:
                self._write(text)
            except (OSError, ValueError) as exc:
                self.broken = str(exc) or type(exc).__name__
                self._count(dropped=1)
                return False
            self._count(written=1)
            return True
        if not self._q.unfinished_tasks and self._lock.acquire(blocking=False):
            try:                                # the reader keeps up: write now, in order
                data = text.encode(self._encoding, errors="replace")
                if not self._q.unfinished_tasks and self._takes_now(len(data)):
                    try:
                        self._write_bytes(data)
                    except (OSError, ValueError) as exc:
                        self.broken = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
                        self._count(dropped=1)
                        return False
                    self._count(written=1)
                    return True
            finally:
                self._lock.release()
        try:
            self._q.put_nowait(text)
        except queue.Full:
            self._count(dropped=1)
            return False
        return True

    def flush(self, timeout_s: float = CLOSE_WAIT_S) -> bool:
        """Wait, bounded, for everything queued to be written.

        Parameters
        ----------
        timeout_s : float
            The longest wait, s.

        Returns
        -------
        bool
            True when the queue was written out; False when the wait ran out or the writer
            thread is gone.
        """
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._q.all_tasks_done:
            while self._q.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None or not self._thread.is_alive():
                    return False
                self._q.all_tasks_done.wait(left)
        return True

    def close(self, timeout_s: float = CLOSE_WAIT_S) -> bool:
        """Write what is queued, waiting at most ``timeout_s``, then end the thread.

        A writer stuck on a dead reader is left behind (a daemon thread): the caller goes
        on. Items offered afterwards are dropped.

        Parameters
        ----------
        timeout_s : float
            The longest wait for the queue, s (0 or less: none).

        Returns
        -------
        bool
            Whether everything was written.
        """
        if self._closed:
            return not self._q.unfinished_tasks
        done = self.flush(timeout_s)
        self._closed = True
        try:
            self._q.put_nowait(_STOP)
        except queue.Full:
            pass
        if done and self._thread is not None:
            self._thread.join(0.5)
        return done

    def _count(self, written: int = 0, dropped: int = 0) -> None:
        """Add to :attr:`written` / :attr:`dropped`, under a lock of their own: callers in
        several threads and the writer thread count at once (never held while writing)."""
        with self._counts_lock:
            self.written += written
            self.dropped += dropped

    # -- the thread --
    def _run(self) -> None:
        while True:
            item = self._q.get()
            try:
                if item is _STOP:
                    return
                if self.broken is not None:
                    self._count(dropped=1)
                    continue
                try:
                    with self._lock:
                        self._write(str(item))
                    self._count(written=1)
                except (OSError, ValueError) as exc:   # the reader is gone (EPIPE), the stream closed
                    self.broken = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
                    self._count(dropped=1)
            finally:
                self._q.task_done()

    def _write(self, text: str) -> None:
        if self._fd is None:
            self.target.write(text)          # type: ignore[union-attr]
            self.target.flush()              # type: ignore[union-attr]
            return
        self._write_bytes(text.encode(self._encoding, errors="replace"))

    def _write_bytes(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)      # type: ignore[arg-type]
            view = view[n:]

    def _takes_now(self, n_bytes: int) -> bool:
        """Whether a write of ``n_bytes`` goes through without waiting for the reader."""
        if n_bytes > PIPE_BUF:
            return False
        try:
            p = select.poll()
            p.register(self._fd, select.POLLOUT)
            return any(ev & select.POLLOUT for _, ev in p.poll(0))
        except (OSError, ValueError):
            return False


class FdFile(io.TextIOBase):
    """A text file over a file descriptor, written with ``os.write`` (no Python buffer, so
    no lock held while a write waits for the reader: the thread that owns a terminal may
    be left blocked at exit without stalling the interpreter's final flush of stdout).

    Parameters
    ----------
    fd : int
        The descriptor (1 for stdout); not closed by this object.
    encoding : str
        How text becomes bytes.
    """

    def __init__(self, fd: int, encoding: str = "utf-8") -> None:
        super().__init__()
        self._fd = fd
        self._encoding = encoding

    def __repr__(self) -> str:
        return f"<FdFile fd {self._fd}>"

    @property
    def encoding(self) -> str:           # type: ignore[override]
        """How text becomes bytes (the codec's name)."""
        return self._encoding

    def fileno(self) -> int:
        """The descriptor written to.

        Returns
        -------
        int
            The descriptor given.
        """
        return self._fd

    def isatty(self) -> bool:
        """Whether the descriptor is a terminal.

        Returns
        -------
        bool
            As :func:`os.isatty` says.
        """
        return os.isatty(self._fd)

    def writable(self) -> bool:
        """Always writable.

        Returns
        -------
        bool
            True.
        """
        return True

    def write(self, text: str) -> int:
        """Write ``text`` with ``os.write`` until all of it is out (blocks while the reader
        does not read).

        Parameters
        ----------
        text : str
            The text; characters the encoding cannot take are replaced.

        Returns
        -------
        int
            ``len(text)``: characters written.
        """
        view = memoryview(text.encode(self._encoding, errors="replace"))
        while view:
            view = view[os.write(self._fd, view):]
        return len(text)

    def flush(self) -> None:
        """Nothing is buffered here."""


class BoundedLogHandler(logging.StreamHandler):
    """A console log handler that never blocks: each record is formatted in the caller's
    thread and offered to a :class:`BoundedWriter` on the same stream.

    Parameters
    ----------
    stream : TextIO
        Where the lines go (stdout or stderr).
    level : int
        The handler's level.
    max_queued : int
        Lines waiting before new ones are dropped (counted in :attr:`dropped`).
    """

    def __init__(self, stream: TextIO, level: int = logging.NOTSET, max_queued: int = MAX_QUEUED) -> None:
        super().__init__(stream)
        self.setLevel(level)
        self.writer = BoundedWriter(stream, max_queued=max_queued, name="log")

    def __repr__(self) -> str:
        return f"<BoundedLogHandler {logging.getLevelName(self.level)}: {self.writer!r}>"

    @property
    def dropped(self) -> int:
        """Log lines dropped so far."""
        return self.writer.dropped

    def emit(self, record: logging.LogRecord) -> None:
        """Format ``record`` here and offer the line to the writer (dropped when full).

        Parameters
        ----------
        record : logging.LogRecord
            The record to write.
        """
        try:
            line = self.format(record) + self.terminator
        except Exception:          # as logging.StreamHandler does
            self.handleError(record)
            return
        self.writer.offer(line)

    def flush(self) -> None:
        """Nothing to do here: the writer thread flushes (:meth:`close` waits, bounded)."""

    def close(self) -> None:
        """Close the writer (a bounded wait for queued lines), then the handler."""
        self.writer.close()
        super().close()


def _console_handlers(logger: logging.Logger) -> list[logging.StreamHandler]:
    return [h for h in logger.handlers if isinstance(h, logging.StreamHandler)
            and not isinstance(h, (logging.FileHandler, BoundedLogHandler))]


@contextmanager
def logging_without_blocking(logger_names: tuple[str, ...] = ("",), wait_s: float = CLOSE_WAIT_S
                             ) -> Iterator[list[BoundedLogHandler]]:
    """Replace console log handlers with bounded ones while the context is active.

    The console handlers of the loggers named (stream handlers that are not files) become
    :class:`BoundedLogHandler` on the same streams, with the same level, formatter and
    filters; the old ones are put back on exit, after waiting, bounded, for queued lines.

    Parameters
    ----------
    logger_names : tuple of str
        The loggers whose handlers are replaced (``""``: the root logger, the default).
    wait_s : float
        The longest wait on exit for queued lines, s, over all handlers together.

    Yields
    ------
    list of BoundedLogHandler
        The bounded handlers (their :attr:`~BoundedLogHandler.dropped` counts).
    """
    swapped: list[tuple[logging.Logger, logging.StreamHandler, BoundedLogHandler]] = []
    for name in logger_names:
        lg = logging.getLogger(name)
        for h in _console_handlers(lg):
            b = BoundedLogHandler(h.stream, h.level)
            if h.formatter is not None:
                b.setFormatter(h.formatter)
            for f in h.filters:
                b.addFilter(f)
            lg.removeHandler(h)
            lg.addHandler(b)
            swapped.append((lg, h, b))
    try:
        yield [b for _, _, b in swapped]
    finally:
        deadline = time.monotonic() + wait_s
        for lg, h, b in swapped:
            lg.removeHandler(b)
            b.writer.close(max(0.0, deadline - time.monotonic()))
            lg.addHandler(h)


def route_logger_to_stdout(name: str, bounded: bool = False) -> None:
    """Lines of logger ``name`` go to stdout with a time stamp, and nowhere else.

    Done once per logger: a second call adds no second handler.

    Parameters
    ----------
    name : str
        The logger (e.g. :data:`scorer.log_sink.EPOCH_LOGGER`).
    bounded : bool
        Through a :class:`BoundedLogHandler` (never blocks; a reader that does not keep up
        loses lines), else a plain :class:`logging.StreamHandler`.
    """
    lg = logging.getLogger(name)
    if not any(getattr(h, "_sleepstream", False) for h in lg.handlers):
        h: logging.Handler = BoundedLogHandler(sys.stdout) if bounded else logging.StreamHandler(sys.stdout)
        h.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
        h._sleepstream = True  # type: ignore[attr-defined]
        lg.addHandler(h)
    lg.setLevel(logging.INFO)
    lg.propagate = False
