"""The live screen as one more sink of the live scorer: :class:`DisplaySink`.

The sink owns the terminal: it holds a ``rich.live.Live``, feeds each scored epoch,
truth label and status tick into a :class:`~scorer.display_state.DisplayState`, and
redraws the screen that :func:`scorer.screen.render` makes from that state on each
scored epoch and on each status tick (about 1 Hz), never on a timer of its own, at most
``max_fps`` times a second. While the screen is up it routes log records through the
console so they print above it.
"""
from __future__ import annotations

import math
import time
from typing import Callable

from rich.console import Console, RenderableType
from rich.live import Live

from .display_state import DisplayState
from .log_capture import LogAboveScreen
from .records import ScoredEpoch
from .screen import render
from .sinks import StreamStatus


# --------------------------------------------------------------------------- the sink

class DisplaySink:
    """The live screen as a sink: ``publish``, ``truth``, ``status``, ``close``.

    Parameters
    ----------
    console : rich.console.Console, optional
        Where to draw (default: a new Console on stdout).
    title : str
        First words of the header.
    screen : bool
        Use the terminal's alternate screen (the frame vanishes at the end).
    capture_logging : bool
        While the display is up, route the root logger's records through the console
        (printed above the screen) instead of letting stream handlers write to the
        terminal underneath it; restored on :meth:`close`.
    max_fps : float
        At most this many redraws per second (a fast replay scores hundreds of epochs
        a second); the state is always current, and the next epoch, status tick or
        :meth:`close` draws it.
    wall_clock : callable
        POSIX time in seconds (time.time); tests pass a fixed clock.
    """

    def __init__(self, console: Console | None = None, *, title: str = "sleepstream live",
                 screen: bool = False, capture_logging: bool = True, max_fps: float = 20.0,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.console = console or Console()
        self.state = DisplayState(title)
        self._wall_clock = wall_clock
        self._min_interval_s = 1.0 / max_fps if max_fps > 0 else 0.0
        self._last_draw = -math.inf
        self.frames = 0
        self._live = Live(console=self.console, auto_refresh=False, redirect_stdout=False,
                          redirect_stderr=False, screen=screen, transient=False)
        self._log = LogAboveScreen(self.console)
        if capture_logging:
            self._log.start()
        self._live.start()
        self._closed = False

    # -- Sink protocol --
    def publish(self, record: ScoredEpoch) -> None:
        self.state.add_record(record, self._wall_clock())
        self._draw()

    def truth(self, epoch: int, stage: str) -> None:
        self.state.add_truth(epoch, stage)

    def status(self, status: StreamStatus) -> None:
        self.state.set_status(status)
        self._draw(force=True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._live.update(self.renderable(), refresh=False)
            self._live.stop()                 # draws the final frame
            self.frames += 1
        finally:
            self._log.stop()

    def __enter__(self) -> "DisplaySink":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- drawing --
    def renderable(self) -> RenderableType:
        w, h = self.console.size
        return render(self.state, w, h - 1)

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_draw < self._min_interval_s:
            return
        self._last_draw = now
        self._live.update(self.renderable(), refresh=True)
        self.frames += 1
