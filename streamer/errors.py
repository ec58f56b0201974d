"""Errors a user can cause when pointing the scorer at an LSL stream.

All are :class:`sleepnet.errors.SleepstreamError`, so the CLI prints their one-line
message and exits 2.
"""
from __future__ import annotations

from sleepnet.errors import SleepstreamError


class StreamError(SleepstreamError):
    """A stream that cannot be used as it is (wrong rate, no such channel, odd units)."""


class StreamNotFoundError(StreamError):
    """No visible stream matches the query; the message lists the streams that are visible."""


class StreamChangedError(StreamError):
    """A lost stream came back with another rate or scale: not the same recording."""
