"""The ward screen as a view of the supervisor: :class:`WardDisplay` owns the terminal.

It redraws :func:`scorer.ward.screen.render` on each turn of the ward loop when something
changed (at most ``max_fps`` a second) and at least once a second. Keys are read, when
stdin is a terminal, by a thread of their own in cbreak mode (the terminal's settings
are restored on close): ``1``-``9`` open that bed's ``live`` screen, ``↑``/``↓`` move the
highlight and ``Enter`` opens the highlighted bed, ``←``/``→`` step through beds in the
detail view, ``Esc``, ``0`` or ``q`` go back to all beds. Without a terminal on stdin no
key is read. While the screen is up, log records print above it.

The terminal never holds up the ward's loop (its hang detection, restarts and new beds): it
draws as the live screen does, through :class:`scorer.display.ScreenFeed`. The loop
renders each frame itself and hands it to a thread that owns the terminal, only when that
thread is free; a frame the terminal cannot take yet (a Ctrl-S, a paused SSH session, a
pty nobody reads) is not drawn and counted (:attr:`WardDisplay.frames_dropped`), and the
next tick (within a second) draws the ward as it is then.
"""
from __future__ import annotations

import logging
import os
import queue
import select
import sys
import threading
import time
from collections.abc import Callable

from rich.console import Console, RenderableType

from scorer.display import CLOSE_WAIT_S, FedScreen
from scorer.records import ScoredEpoch

from .screen import render
from .state import BedState, GateChange, WardState
from .supervisor import view_method

UP, DOWN, LEFT, RIGHT, ENTER, BACK = "up", "down", "left", "right", "enter", "back"
_SEQUENCES = {"\x1b[A": UP, "\x1bOA": UP, "\x1b[B": DOWN, "\x1bOB": DOWN, "\x1b[C": RIGHT, "\x1bOC": RIGHT,
              "\x1b[D": LEFT, "\x1bOD": LEFT, "\r": ENTER, "\n": ENTER, "\x1b": BACK, "0": BACK, "q": BACK,
              "\x7f": BACK}


def parse_keys(data: str) -> list[str]:
    """Key names in what a terminal sent.

    Parameters
    ----------
    data : str
        The characters read (escape sequences whole).

    Returns
    -------
    list of str
        In order: ``up``, ``down``, ``left``, ``right``, ``enter``, ``back`` (Esc, 0, q,
        Backspace) and the digits 1-9 (as themselves); anything else is dropped.
    """
    out: list[str] = []
    i = 0
    while i < len(data):
        for seq in ("\x1b[A", "\x1b[B", "\x1b[C", "\x1b[D", "\x1bOA", "\x1bOB", "\x1bOC", "\x1bOD"):
            if data.startswith(seq, i):
                out.append(_SEQUENCES[seq])
                i += len(seq)
                break
        else:
            ch = data[i]
            if ch in "123456789":
                out.append(ch)
            elif ch in _SEQUENCES:
                out.append(_SEQUENCES[ch])
            i += 1
    return out


class Navigation:
    """Which bed is highlighted (``cursor``) and which one is open (``selected``, None: all beds)."""

    def __init__(self) -> None:
        self.cursor = 0
        self.selected: int | None = None

    def press(self, key: str, n_beds: int) -> None:
        """Move the highlight or open a bed for one key.

        A digit opens that bed (when there is one), ``enter`` the highlighted one, ``back``
        returns to all beds; ``up``/``down`` move the highlight on the overview,
        ``left``/``right`` (and ``up``/``down``) step through beds in the detail view,
        wrapping round.

        Parameters
        ----------
        key : str
            A key name from :func:`parse_keys`.
        n_beds : int
            Beds now (no bed: nothing moves).
        """
        if n_beds == 0:
            return
        if key.isdigit():
            k = int(key) - 1
            if k < n_beds:
                self.cursor = self.selected = k
        elif key == BACK:
            self.selected = None
        elif key == ENTER:
            self.selected = self.cursor
        elif key in (UP, DOWN, LEFT, RIGHT):
            step = -1 if key in (UP, LEFT) else 1
            if self.selected is None and key in (UP, DOWN):
                self.cursor = (self.cursor + step) % n_beds
            elif self.selected is not None:
                self.selected = self.cursor = (self.selected + step) % n_beds
        self.cursor = min(self.cursor, n_beds - 1)


class KeyReader:
    """A thread reading keys from a terminal on ``fd`` in cbreak mode into a queue.

    The terminal's settings are saved first and put back by :meth:`close`.

    Parameters
    ----------
    fd : int
        The terminal's descriptor (stdin's).
    """

    def __init__(self, fd: int) -> None:
        import termios
        import tty

        self.fd = fd
        self.keys: queue.Queue[str] = queue.Queue()
        self._saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ward-keys", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self.fd], [], [], 0.2)
                if ready:
                    data = os.read(self.fd, 32)
                    if not data:
                        return
                    for k in parse_keys(data.decode("utf-8", errors="ignore")):
                        self.keys.put(k)
            except (OSError, ValueError):
                return

    def close(self) -> None:
        """Stop the thread (waiting at most 1 s) and restore the terminal's settings."""
        import termios

        self._stop.set()
        self._thread.join(1.0)
        termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)


class WardDisplay(FedScreen):
    """The ward's screen (see the module text); its counts (``frames``, ``frames_dropped``,
    ``log_dropped``) are :class:`~scorer.display.FedScreen`'s.

    Parameters
    ----------
    console : rich.console.Console, optional
        Where to draw (default: a new Console on stdout, written through its file
        descriptor by the terminal's own thread: :class:`scorer.display.ScreenFeed`).
    keys : bool
        Read keys from stdin when it is a terminal.
    max_fps : float
        At most this many redraws a second.
    wall_clock : callable
        POSIX time in seconds (time.time); tests pass a fixed clock.
    """

    def __init__(self, console: Console | None = None, *, keys: bool = True,
                 max_fps: float = 10.0, wall_clock: Callable[[], float] = time.time) -> None:
        super().__init__(console)
        self.nav = Navigation()
        self.last_note = ""
        self._wall_clock = wall_clock
        self._min_interval_s = 1.0 / max_fps if max_fps > 0 else 0.0
        self._last_draw = -1e9
        self._dirty = True
        self._state: WardState | None = None
        self._keys: KeyReader | None = None
        if keys and sys.stdin is not None and sys.stdin.isatty():
            try:
                self._keys = KeyReader(sys.stdin.fileno())
            except (OSError, ImportError):   # no termios (not a POSIX terminal): no keys
                self._keys = None
        self._closed = False

    def __repr__(self) -> str:
        beds = len(self._state.beds) if self._state is not None else 0
        return f"<WardDisplay {beds} beds: {self.frames} frames drawn, {self.frames_dropped} dropped>"

    # -- WardView --
    @view_method
    def epoch(self, bed: BedState, record: ScoredEpoch) -> None:
        """A bed's new epoch: redraw on the next tick."""
        self._dirty = True

    @view_method
    def gate(self, bed: BedState, change: GateChange) -> None:
        """A bed's stimulation window changed: redraw on the next tick."""
        self._dirty = True

    @view_method
    def note(self, bed: BedState, message: str) -> None:
        """Show a supervision event about a bed above the key line (the latest only)."""
        self.last_note = f"{time.strftime('%H:%M:%S')} {bed.name}: {message}"
        self._dirty = True

    @view_method
    def message(self, text: str) -> None:
        """Show an event about the ward as a whole above the key line (the latest only)."""
        self.last_note = f"{time.strftime('%H:%M:%S')} {text}"
        self._dirty = True

    @view_method
    def tick(self, state: WardState) -> None:
        """Take the keys pressed, then redraw when something changed (at most ``max_fps`` a
        second) or a second has passed."""
        self._state = state
        if self._keys is not None:
            while True:
                try:
                    self.nav.press(self._keys.keys.get_nowait(), len(state.beds))
                except queue.Empty:
                    break
                self._dirty = True
        now = time.monotonic()
        since = now - self._last_draw
        if (self._dirty and since >= self._min_interval_s) or since >= 1.0:
            self._last_draw = now                # a frame dropped is tried again after as long
            if self._feed.draw(self._screen):
                self._dirty = False

    def renderable(self) -> RenderableType:
        """The screen now, of the console's size.

        Returns
        -------
        rich.console.RenderableType
            :func:`scorer.ward.screen.render` of the latest state (a starting line before
            the first tick).
        """
        w, h = self.console.size
        return self._screen(w, h)

    def close(self) -> None:
        """Restore the terminal's keys, draw the last screen (a bounded wait: a warning when
        the terminal does not take it) and give the log handlers back; a second call does
        nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._keys is not None:
                self._keys.close()
        finally:
            if not self._feed.close(self._screen, CLOSE_WAIT_S):
                logging.getLogger(__name__).warning("the terminal did not take the ward's last screen within "
                                                    "%.0f s", CLOSE_WAIT_S)

    def _screen(self, width: int, height: int) -> RenderableType:
        """The ward for a terminal of that size (rendered in the loop's thread)."""
        state = self._state
        if state is None:
            from rich.text import Text

            return Text("sleepstream ward: starting ...")
        return render(state, width, height - 1, self.nav.selected, self.nav.cursor, self._wall_clock(),
                      self.last_note)
