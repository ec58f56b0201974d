"""Signals for the commands that run until stopped (``live``, ``demo``, ``replay``, ``ward``)."""
from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by Ctrl-C (SIGINT) or SIGTERM, so loops end cleanly; handlers restored after.

    A second Ctrl-C gives up at once (:class:`KeyboardInterrupt`). Outside the main thread
    no handler can be set: the event is only set by its owner.

    Yields
    ------
    threading.Event
        Set when the process is asked to stop.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        if stop.is_set():  # a second Ctrl-C: give up at once
            raise KeyboardInterrupt
        stop.set()

    for s in old:
        signal.signal(s, handler)
    try:
        yield stop
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def ignore_file_size_signal() -> None:
    """A file-size limit (``ulimit -f``) makes a write fail with EFBIG instead of killing the
    process with SIGXFSZ: the hypnogram sink turns it into NOT RECORDING and scoring goes on."""
    if hasattr(signal, "SIGXFSZ") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
