"""The live screen as one more sink of the live scorer: :class:`DisplaySink`.

The sink feeds each scored epoch, truth label and status tick into a
:class:`~scorer.display_state.DisplayState`, and asks for a redraw of the screen that
:func:`scorer.screen.render` makes from that state on each scored epoch and on each status
tick (about 1 Hz), never on a timer of its own, at most ``max_fps`` times a second.

The terminal never holds up the loop (a Ctrl-S, a paused SSH session, a pty nobody reads:
measured before, 0 of 960 epochs reached the TSV behind a Ctrl-S'd terminal). A thread of
its own, :class:`ScreenWriter`, owns the terminal (a ``rich.live.Live``) and is the only
one that writes to it. The loop renders the state into lines of segments itself (so the
renderer never reads a state the loop is changing: no lock, no copy) and hands the frame
over only when the writer is free; otherwise the frame is not drawn and counted
(:attr:`DisplaySink.frames_dropped`). The state is always current, so when the terminal
takes output again the next epoch or status tick (within a second) draws the latest
screen: only stale frames are lost. While the screen is up, log records are routed to the
writer too (printed above the screen), through a bounded queue that drops and counts what
does not fit (:attr:`ScreenWriter.log_dropped`). Closing waits a bounded time for the
final frame (a dead terminal costs that wait, never a hang).

:class:`ScreenFeed` is that loop's side, for any screen: the ward's screen
(:class:`scorer.ward.display.WardDisplay`) draws through it the same way.
"""
from __future__ import annotations

import io
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.live import Live
from rich.segment import Segment
from rich.text import Text

from sleepnet.doc_sections import sections_of

from .display_state import DisplayState
from .log_capture import LogAboveScreen
from .records import ScoredEpoch
from .screen import render
from .sinks import Sink, StreamStatus

if TYPE_CHECKING:
    from .hypnogram_file import RecordingState

CLOSE_WAIT_S = 2.0            # how long closing waits for the terminal to take the last frame
MAX_LOG_LINES = 200           # log lines waiting for the terminal before new ones are dropped
_LEVEL_STYLE = {"WARNING": "yellow", "ERROR": "bold red", "CRITICAL": "bold white on red"}


class Frame:
    """A screen already rendered into lines of segments (pure data: safe to hand to
    another thread).

    Parameters
    ----------
    lines : list of list of rich.segment.Segment
        The screen's lines, top to bottom, each its segments.
    """

    def __init__(self, lines: list[list[Segment]]) -> None:
        self.lines = lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        new_line = Segment.line()
        for i, line in enumerate(self.lines):
            yield from line
            if i < len(self.lines) - 1:
                yield new_line


class ScreenWriter:
    """The thread that owns the terminal: draws the newest :class:`Frame` handed over and
    prints log lines above it; the caller never waits.

    Parameters
    ----------
    console : rich.console.Console
        The terminal (only this thread writes to it once started).
    screen : bool
        Use the terminal's alternate screen.
    max_log_lines : int
        Log lines waiting before new ones are dropped (counted in :attr:`log_dropped`).
    """

    def __init__(self, console: Console, screen: bool = False, max_log_lines: int = MAX_LOG_LINES) -> None:
        self.console = console
        self._live = Live(console=console, auto_refresh=False, redirect_stdout=False, redirect_stderr=False,
                          screen=screen, transient=False)
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._logs: deque[Text] = deque()
        self._max_logs = max(1, int(max_log_lines))
        self._busy = True                      # until the Live has started
        self._stopping = False
        self.frames = 0
        self.log_dropped = 0
        self._thread = threading.Thread(target=self._run, name="sleepstream-screen", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return (f"<ScreenWriter {'busy' if self._busy else 'idle'}: {self.frames} frames drawn, "
                f"{self.log_dropped} log lines dropped>")

    @property
    def ready(self) -> bool:
        """Whether a new frame would be drawn now (nothing waiting, nothing being written)."""
        return self._frame is None and not self._busy

    def show(self, frame: Frame) -> None:
        """Draw ``frame`` next (replacing one not drawn yet); never waits.

        Parameters
        ----------
        frame : Frame
            The screen to draw.
        """
        with self._cond:
            self._frame = frame
            self._cond.notify()

    def log(self, line: Text) -> None:
        """Print ``line`` above the screen (dropped and counted when too many wait).

        Parameters
        ----------
        line : rich.text.Text
            The log line, styled.
        """
        with self._cond:
            if len(self._logs) >= self._max_logs:
                self.log_dropped += 1
                return
            self._logs.append(line)
            self._cond.notify()

    def close(self, final: Frame | None, timeout_s: float = CLOSE_WAIT_S) -> bool:
        """Draw ``final`` and what waits, then stop the Live, waiting at most ``timeout_s``.

        Parameters
        ----------
        final : Frame or None
            The last screen to draw (None: keep the one waiting, if any).
        timeout_s : float
            The longest wait for the thread, s.

        Returns
        -------
        bool
            True when the terminal took it all; False when the thread is left stuck on it.
        """
        with self._cond:
            if final is not None:
                self._frame = final
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._live.start()
            with self._cond:
                self._busy = False
            while True:
                with self._cond:
                    while self._frame is None and not self._logs and not self._stopping:
                        self._cond.wait()
                    frame, self._frame = self._frame, None
                    logs = list(self._logs)
                    self._logs.clear()
                    stopping = self._stopping and self._frame is None
                    self._busy = True
                for line in logs:
                    self.console.print(line)
                if frame is not None:
                    self._live.update(frame, refresh=True)
                    self.frames += 1
                with self._cond:
                    self._busy = False
                    if stopping and self._frame is None and not self._logs:
                        break
        finally:
            self._live.stop()                 # the final frame on a non-terminal; the cursor back


class _ScreenLogHandler(logging.Handler):
    """Log records to a :class:`ScreenWriter` (formatted in the caller's thread)."""

    def __init__(self, writer: ScreenWriter, level: int) -> None:
        super().__init__(level)
        self.writer = writer
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)-8s %(message)s", datefmt="%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.writer.log(Text(line, style=_LEVEL_STYLE.get(record.levelname, "")))


def _stdout_file():
    """stdout for the screen: through its descriptor when it has one (see FdFile)."""
    import sys

    from .bounded_output import FdFile

    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return sys.stdout
    sys.stdout.flush()
    return FdFile(fd, getattr(sys.stdout, "encoding", None) or "utf-8")


class ScreenFeed:
    """A screen fed by a loop that must never wait for the terminal.

    The loop asks for a frame with :meth:`draw`; the feed renders it in the loop's own
    thread (so the renderer never reads a state another thread is changing) and hands it
    to a :class:`ScreenWriter`, the one thread that writes to the terminal, only when the
    writer is free; otherwise the frame is not rendered and is counted in
    :attr:`frames_dropped`. While the screen is up, the root logger's console output is
    routed to the writer (printed above the screen, dropped and counted when too many
    lines wait). Used by the live screen (:class:`DisplaySink`) and the ward's screen.

    Parameters
    ----------
    console : rich.console.Console, optional
        Where to draw (default: a new Console on stdout, written through its file
        descriptor: :class:`scorer.bounded_output.FdFile`).
    screen : bool
        Use the terminal's alternate screen (the frame vanishes at the end).
    capture_logging : bool
        Route the root logger's console output above the screen until :meth:`close`.

    Attributes
    ----------
    frames_dropped : int
        Frames asked for and not drawn: the terminal was still taking an earlier one.
    """

    def __init__(self, console: Console | None = None, *, screen: bool = False,
                 capture_logging: bool = True) -> None:
        # the terminal is written by os.write (FdFile): no Python lock is held while it stalls
        self.console = console or Console(file=_stdout_file())
        # the loop renders with a console of its own: the writer thread owns self.console
        self._render_console = Console(file=io.StringIO(), color_system=self.console.color_system,
                                       force_terminal=self.console.is_terminal, legacy_windows=False)
        self._writer = ScreenWriter(self.console, screen=screen)
        self._log = LogAboveScreen(self.console, handler=_ScreenLogHandler(self._writer, logging.WARNING))
        if capture_logging:
            self._log.start()
        self.frames_dropped = 0
        self._closed = False

    def __repr__(self) -> str:
        return (f"<ScreenFeed {self.frames} frames drawn, {self.frames_dropped} dropped, "
                f"{self.log_dropped} log lines dropped>")

    @property
    def frames(self) -> int:
        """Frames the terminal took so far: the writer thread counts a frame once written,
        so one :meth:`draw` just handed over is not among them yet."""
        return self._writer.frames

    @property
    def log_dropped(self) -> int:
        """Log lines dropped so far because too many waited for the terminal."""
        return self._writer.log_dropped

    def draw(self, make: Callable[[int, int], RenderableType]) -> bool:
        """Render ``make(width, height)`` here and hand it to the terminal's thread, when
        that thread is free; never waits.

        Parameters
        ----------
        make : callable
            ``make(width, height)`` returns the screen for a terminal of that size
            (characters, lines); it runs in the caller's thread.

        Returns
        -------
        bool
            True when the frame was handed over; False (counted in :attr:`frames_dropped`,
            ``make`` not called) while the terminal is still taking an earlier frame.
        """
        if self._closed or not self._writer.ready:
            self.frames_dropped += 1
            return False
        self._writer.show(self._frame(make))
        return True

    def close(self, make: Callable[[int, int], RenderableType] | None = None,
              timeout_s: float = CLOSE_WAIT_S) -> bool:
        """Draw the last frame and stop the screen, waiting at most ``timeout_s`` for the
        terminal, then give the log handlers back; a second call does nothing.

        Parameters
        ----------
        make : callable, optional
            Makes the last screen, as for :meth:`draw` (None: the frame waiting, if any).
        timeout_s : float
            The longest wait for the terminal, s.

        Returns
        -------
        bool
            True when the terminal took it all (or the feed was closed already); False
            when the writer thread is left stuck on a terminal that takes nothing.
        """
        if self._closed:
            return True
        self._closed = True
        try:
            return self._writer.close(self._frame(make) if make is not None else None, timeout_s)
        finally:
            self._log.stop()

    def _frame(self, make: Callable[[int, int], RenderableType]) -> Frame:
        """``make``'s screen at the console's size, rendered in this thread."""
        w, h = self.console.size
        rc = self._render_console
        options = rc.options.update(width=w, min_width=w, max_width=w, height=h)
        return Frame(rc.render_lines(make(w, h), options, pad=False))


class FedScreen:
    """A screen drawn through a :class:`ScreenFeed` of its own (the live screen's
    :class:`DisplaySink`, the ward's screen): the feed is made here, and its counts are the
    screen's.

    Parameters
    ----------
    console : rich.console.Console, optional
        Where to draw (:class:`ScreenFeed`'s default: a new Console on stdout).
    screen : bool
        Use the terminal's alternate screen (:class:`ScreenFeed`).
    capture_logging : bool
        Route the root logger's console output above the screen until the feed closes.

    Attributes
    ----------
    console : rich.console.Console
        The console drawn on (the feed's).
    """

    def __init__(self, console: Console | None = None, *, screen: bool = False,
                 capture_logging: bool = True) -> None:
        self._feed = ScreenFeed(console, screen=screen, capture_logging=capture_logging)
        self.console = self._feed.console

    @property
    def frames(self) -> int:
        """Frames the terminal took so far (:attr:`ScreenFeed.frames`)."""
        return self._feed.frames

    @property
    def frames_dropped(self) -> int:
        """Redraws not drawn because the terminal was still taking an earlier frame."""
        return self._feed.frames_dropped

    @property
    def log_dropped(self) -> int:
        """Log lines not printed above the screen because too many waited for the terminal."""
        return self._feed.log_dropped


# --------------------------------------------------------------------------- the sink

class DisplaySink(FedScreen, Sink):
    """The live screen as a sink: ``publish``, ``truth``, ``status``, ``close``.

    Its counts (``frames``, ``frames_dropped``, ``log_dropped``) are :class:`FedScreen`'s.

    Parameters
    ----------
    console : rich.console.Console, optional
        Where to draw (:class:`ScreenFeed`'s default: a new Console on stdout).
    title : str
        First words of the header.
    screen : bool
        Use the terminal's alternate screen (the frame vanishes at the end).
    capture_logging : bool
        While the display is up, route the root logger's records to the screen's writer
        (printed above the screen) instead of letting stream handlers write to the
        terminal underneath it; restored on :meth:`close`.
    max_fps : float
        At most this many redraws per second (a fast replay scores hundreds of epochs
        a second); the state is always current, and the next epoch, status tick or
        :meth:`close` draws it.
    wall_clock : callable
        POSIX time in seconds (time.time); tests pass a fixed clock.
    recording : callable, optional
        Returns the hypnogram file's :class:`scorer.hypnogram_file.RecordingState`: the
        screen shows NOT RECORDING while the file cannot be written.
    """

    def __init__(self, console: Console | None = None, *, title: str = "sleepstream live",
                 screen: bool = False, capture_logging: bool = True, max_fps: float = 20.0,
                 wall_clock: Callable[[], float] = time.time,
                 recording: Callable[[], RecordingState] | None = None) -> None:
        super().__init__(console, screen=screen, capture_logging=capture_logging)
        self.state = DisplayState(title)
        self._wall_clock = wall_clock
        self._recording = recording
        self._min_interval_s = 1.0 / max_fps if max_fps > 0 else 0.0
        self._last_draw = -math.inf
        self._closed = False

    def __repr__(self) -> str:
        return (f"<DisplaySink {self.state.title!r}: {len(self.state.codes)} epochs, {self.frames} frames drawn, "
                f"{self.frames_dropped} dropped>")

    # -- Sink methods --
    @sections_of(Sink.publish, "Add the epoch to the state and redraw (at most ``max_fps`` times a second).")
    def publish(self, record: ScoredEpoch) -> None:
        self.state.add_record(record, self._wall_clock())
        self._update_recording()
        self._draw()

    @sections_of(Sink.truth, "Add a true stage to the state (drawn with the next frame).")
    def truth(self, epoch: int, stage: str) -> None:
        self.state.add_truth(epoch, stage)

    @sections_of(Sink.status, "Take the stream's health into the state and redraw (whatever ``max_fps`` says).")
    def status(self, status: StreamStatus) -> None:
        self.state.set_status(status)
        self._update_recording()
        self._draw(force=True)

    def close(self) -> None:
        """Draw the last frame (a bounded wait: a warning when the terminal does not take
        it) and give the console log handlers back; a second call does nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            self._update_recording()
        finally:
            if not self._feed.close(self._screen, CLOSE_WAIT_S):
                logging.getLogger(__name__).warning("the terminal did not take the last screen within %.0f s",
                                                    CLOSE_WAIT_S)

    def __enter__(self) -> DisplaySink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- drawing --
    def renderable(self) -> RenderableType:
        """The screen now, as a Rich renderable of the console's size.

        Returns
        -------
        rich.console.RenderableType
            What :func:`scorer.screen.render` makes of the state (one line short of the
            console's height).
        """
        w, h = self.console.size
        return render(self.state, w, h - 1)

    def _screen(self, width: int, height: int) -> RenderableType:
        """The screen now for a terminal of that size (rendered by the feed in this thread,
        the one that changes the state)."""
        return render(self.state, width, height - 1)

    def _update_recording(self) -> None:
        if self._recording is not None:
            try:
                self.state.set_recording(self._recording())
            except Exception:
                logging.getLogger(__name__).exception("display: the recording state could not be read")
                self._recording = None

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_draw < self._min_interval_s:
            return
        if self._feed.draw(self._screen):     # else the terminal is still taking an earlier frame
            self._last_draw = now
