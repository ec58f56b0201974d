"""Files written whole or not at all.

:func:`atomic_write` writes into a temporary file in the target's own folder, flushes and
fsyncs it, renames it over the target (``os.replace``: atomic on POSIX and Windows) and
fsyncs the folder, so a reader sees either the previous complete file or the new complete
one, never half of one, and a crash or a full disk leaves the previous file in place. Any
``OSError`` on the way (``ENOSPC``, ``EFBIG``, ``EACCES``, ``EIO``) becomes one
:class:`~sleepnet.errors.OutputWriteError` that names the file; the temporary file is
removed.
"""
from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from ..errors import OutputWriteError

#: Folder fsync errors that only mean "this filesystem does not sync folders".
_NO_DIR_SYNC = {errno.EINVAL, errno.ENOTSUP, errno.EBADF, errno.EACCES}


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or exc.__class__.__name__


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened, e.g. Windows).

    Parameters
    ----------
    folder : Path
        The folder the renamed file is in.

    Raises
    ------
    OSError
        The folder's fsync failed for another reason than "not supported here".
    """
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _NO_DIR_SYNC:
            raise
    finally:
        os.close(fd)


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", *, newline: str | None = None,
                 encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file to write ``path`` whole, replacing it only when the block ends
    without error (module docstring).

    Parameters
    ----------
    path : str or Path
        The file to write (its folder must exist).
    mode : str
        ``"w"`` (text) or ``"wb"`` (bytes).
    newline, encoding : str or None
        As for :func:`open` in text mode.

    Yields
    ------
    file object
        The temporary file; write the whole content to it.

    Raises
    ------
    OutputWriteError
        Creating, writing, syncing or renaming failed (``path`` is unchanged), or the
        folder's sync failed after the rename.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    tmp = folder / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as exc:
        raise OutputWriteError(f"{path}: cannot write ({_reason(exc)})") from None
    try:
        if mode == "wb":
            fh = os.fdopen(fd, "wb")
        else:
            fh = os.fdopen(fd, "w", newline=newline, encoding=encoding)
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        raise OutputWriteError(f"{path}: cannot write ({_reason(exc)}); the previous file, if any, is "
                               "unchanged") from None
    except BaseException:
        _remove(tmp)
        raise
    try:
        fsync_folder(folder)
    except OSError as exc:
        raise OutputWriteError(f"{path}: written, but its folder could not be synced ({_reason(exc)})") from None


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` whole or not at all (:func:`atomic_write`).

    Parameters
    ----------
    path : str or Path
        The file to write (its folder must exist).
    text : str
        The whole content.

    Raises
    ------
    OutputWriteError
        It could not be written (``path`` is unchanged).
    """
    with atomic_write(path) as fh:
        fh.write(text)


def _remove(tmp: Path) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass
