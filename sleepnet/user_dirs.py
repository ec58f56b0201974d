"""Where files sleepstream generates for the user go (the demo night): never next to the
code, which may be a read-only site-packages.

``$SLEEPSTREAM_DATA_DIR`` when set; otherwise the user's cache folder as platformdirs
gives it (``$XDG_CACHE_HOME/sleepstream`` or ``~/.cache/sleepstream`` on Linux,
``~/Library/Caches/sleepstream`` on macOS, ``%LOCALAPPDATA%\\sleepstream\\Cache`` on
Windows). Everything written there can be regenerated, hence a cache.
"""
from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "SLEEPSTREAM_DATA_DIR"
DEMO_FILENAME = "demo-night.npz"


def data_dir() -> Path:
    """The folder for generated files (not created here).

    Returns
    -------
    Path
        ``$SLEEPSTREAM_DATA_DIR`` if set and not empty, else the user cache folder.
    """
    env = os.environ.get(DATA_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("sleepstream", appauthor=False))


def demo_recording_path() -> Path:
    """Where the demo night (``sleepstream demo``, ``make demo``) is simulated on first use.

    Returns
    -------
    Path
        ``demo-night.npz`` in :func:`data_dir`.
    """
    return data_dir() / DEMO_FILENAME
