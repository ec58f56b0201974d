"""Run a command on a terminal nobody reads: the stalled-screen check of the tests and benchmarks.

A scorer's screen must never hold up the night (``scorer.bounded_output``): a terminal
stalled with Ctrl-S, a paused SSH session or a pty nobody reads may lose frames, not
epochs. :class:`UnreadTerminal` is that terminal, real: a pseudo-terminal (pty) of 30 rows
by 100 columns that is the command's stdin, stdout and stderr, with ``TERM`` set so Rich
draws its live screen, read from here only when asked (:meth:`UnreadTerminal.read`). Left
unread, the kernel's pty buffer (about 17 kB) fills within a few frames of the screen and
the command's writes would block; :meth:`UnreadTerminal.takes_output` says whether that has
happened. The suite's stalled-reader tests (``tests/test_stalled_readers.py``,
``tests/test_ward_faults.py``) and the fault matrix (``benchmarks/faults.py``) use it.
POSIX only (``pty``, ``termios``).
"""
from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["UnreadTerminal"]


class UnreadTerminal:
    """A command started on a pty of its own that nobody reads until :meth:`read` is called.

    Parameters
    ----------
    cmd : sequence of str or Path
        The command and its arguments, e.g. ``["sleepstream", "live", "--source-id", "x"]``.
    cwd : str or Path
        The command's working folder.
    env : mapping of str to str, optional
        The command's environment before the terminal's own variables are added (``TERM``
        xterm-256color, ``COLUMNS`` and ``LINES``; ``NO_COLOR`` removed so the screen is drawn
        as on a user's terminal). None: this process's environment.
    rows : int
        The terminal's height in lines (default 30).
    columns : int
        The terminal's width in characters (default 100).

    Attributes
    ----------
    proc : subprocess.Popen
        The command, started in a session of its own (the pty is its controlling terminal).
    screen : bytearray
        Every byte read from the terminal so far (escape sequences included).
    tty_path : str
        The pty's device (``/dev/pts/N``), to open it again from here (e.g. to fill it).

    Notes
    -----
    Use it as a context manager, or call :meth:`close`: the command is killed if it still
    runs and the terminal's descriptors are closed.
    """

    def __init__(self, cmd: Sequence[str | Path], cwd: str | Path, env: Mapping[str, str] | None = None,
                 rows: int = 30, columns: int = 100) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        env = dict(os.environ if env is None else env, TERM="xterm-256color", COLUMNS=str(columns), LINES=str(rows))
        env.pop("NO_COLOR", None)
        try:
            self.proc = subprocess.Popen([str(c) for c in cmd], cwd=cwd, env=env, stdin=slave, stdout=slave,
                                         stderr=slave, start_new_session=True)
        except BaseException:
            os.close(master)
            os.close(slave)
            raise
        self.tty_path = os.ttyname(slave)
        self._probe = os.dup(slave)            # to see from here whether the terminal takes output
        os.close(slave)
        os.set_blocking(master, False)
        self._master = master
        self.screen = bytearray()

    def __repr__(self) -> str:
        state = "running" if self.proc.poll() is None else f"exited {self.proc.returncode}"
        return f"<UnreadTerminal {self.tty_path}: pid {self.proc.pid} {state}, {len(self.screen)} bytes read>"

    def __enter__(self) -> UnreadTerminal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def takes_output(self) -> bool:
        """Whether the terminal would take a write now (``poll``: POLLOUT on the pty's command side).

        Returns
        -------
        bool
            False once the pty's buffer is full: the command's next write to it would block.
        """
        p = select.poll()
        p.register(self._probe, select.POLLOUT)
        return bool(p.poll(0))

    def read(self) -> int:
        """Read what the terminal holds now, without waiting, onto :attr:`screen`.

        Returns
        -------
        int
            The bytes read (0 when nothing was waiting, or the command has closed the terminal).
        """
        n = 0
        while True:
            try:
                chunk = os.read(self._master, 1 << 16)
            except OSError:                    # nothing waiting (EAGAIN), or no writer left (EIO)
                return n
            if not chunk:
                return n
            self.screen.extend(chunk)
            n += len(chunk)

    def close(self) -> None:
        """Kill the command if it still runs (and reap it), then close the terminal's descriptors.

        Calling it again does nothing.
        """
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._master, self._probe):
            if fd >= 0:
                os.close(fd)
        self._master = self._probe = -1
