"""Log lines above a Rich screen: while a screen owns the terminal, the root logger's
console handlers are swapped for one ``RichHandler`` on the screen's console, and put back
when it closes (used by the live screen and the ward's screen)."""
from __future__ import annotations

import logging

from rich.console import Console


class LogAboveScreen:
    """Route the root logger's console output through ``console`` between :meth:`start`
    and :meth:`stop`.

    File handlers are left alone; the level is the lowest of the handlers taken, WARNING
    when there were none.

    Parameters
    ----------
    console : rich.console.Console
        The screen's console the log lines print on.
    handler : logging.Handler, optional
        Use this one instead of a ``RichHandler`` printing on ``console`` (the live
        screen's hands records to the thread that owns the terminal, so logging never
        blocks on it).
    """

    def __init__(self, console: Console, handler: logging.Handler | None = None) -> None:
        self.console = console
        self._handler = handler
        self._saved: list[logging.Handler] = []
        self._rich: logging.Handler | None = None

    def start(self) -> None:
        """Take the root logger's console handlers off and put ours on in their place."""
        from rich.logging import RichHandler

        root = logging.getLogger()
        for h in list(root.handlers):
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
                self._saved.append(h)
                root.removeHandler(h)
        level = min((h.level for h in self._saved), default=logging.WARNING)
        if self._handler is not None:
            self._handler.setLevel(level)
            self._rich = self._handler
        else:
            self._rich = RichHandler(console=self.console, show_path=False, level=level)
        root.addHandler(self._rich)

    def stop(self) -> None:
        """Take ours off and put the handlers taken by :meth:`start` back."""
        root = logging.getLogger()
        if self._rich is not None:
            root.removeHandler(self._rich)
            self._rich = None
        for h in self._saved:
            root.addHandler(h)
        self._saved = []
