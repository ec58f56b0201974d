"""The counters of a screen drawn through a :class:`scorer.display.ScreenFeed`, in one place
for every screen that owns a feed (the ward's screen; the live screen can take them too).

The commands read them when a screen closes to say what the terminal did not take
(``sleepstream ward``: frames not drawn, log lines dropped).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .display import ScreenFeed


class FeedCounters:
    """Mixin for a screen that draws through the :class:`~scorer.display.ScreenFeed` in its
    ``_feed`` attribute: the feed's counters, read-only, as the screen's own.

    A mixin adds properties only; the screen's own ``__init__`` sets ``_feed``.
    """

    _feed: ScreenFeed

    @property
    def frames(self) -> int:
        """Frames the terminal took so far."""
        return self._feed.frames

    @property
    def frames_dropped(self) -> int:
        """Redraws not drawn because the terminal was still taking an earlier frame."""
        return self._feed.frames_dropped

    @property
    def log_dropped(self) -> int:
        """Log lines not printed above the screen because too many waited for the terminal."""
        return self._feed.log_dropped


__all__ = ["FeedCounters"]
