"""One worker process per bed: ``sleepstream live --status-json`` for one source_id,
supervised.

The worker's stdout (one JSON line per epoch, truth label and status tick; see
:mod:`scorer.json_lines`) is read by a thread of its own into the supervisor's queue, so
a worker that floods, stalls or hangs never holds up another bed. The queue holds at
most ``MAX_QUEUED_LINES`` lines of each worker: a worker that writes faster than the
ward takes its lines waits, through its reader, on its own pipe (and a worker that
cannot write a line in time drops it and numbers on, see :mod:`scorer.ward.catchup`), so
the ward's memory stays bounded whatever a worker writes. Its stderr (liblsl and log
messages, the final summary) is appended to ``<bed>.log`` beside the hypnogram.

Each line is the worker's heartbeat (``live`` writes a status line about once a
second): a worker alive but silent for ``hang_timeout_s`` is killed (SIGKILL of its
process group) and started again like one that ended. Its silence counts from its
newest line; before its first line, from its start plus ``startup_s`` (finding its
stream, connecting, loading the model); never while its reader waits for room in the
queue (the worker writes; the ward is behind), and not across a pause of the ward
itself (see :meth:`Worker.excuse`). All of it on the monotonic clock.

A worker that exits, or is killed, is started again after a back-off that doubles with
each quick failure (1 s, 2 s, 4 s ... at most ``max_backoff_s``) and returns to the
first step once a worker has run for ``stable_s``. The restart is the same command on
the same hypnogram file, which ``live`` appends to, numbering epochs on from the last one.
"""
from __future__ import annotations

import json
import logging
import math
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sleepnet.io.derivations import DEFAULT_CHANNEL

from .gates import NO_PLAN, GatePlan

log = logging.getLogger(__name__)

BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
STABLE_S = 60.0
#: a worker silent this long (s, monotonic) is hung (``sleepstream ward --hang-timeout``)
HANG_TIMEOUT_S = 20.0
#: before its first line a worker is given ``--find-timeout`` plus this (connecting to its
#: stream, at most 10 s, and loading the model) on top of the hang timeout
STARTUP_GRACE_S = 20.0
#: lines of one worker the ward's queue holds at most
MAX_QUEUED_LINES = 256
#: after its process ended, a worker's reader is given this long to hand over its last lines
EOF_GRACE_S = 0.5
#: a non-JSON line is kept to this many characters
MAX_TEXT = 500
#: ``python -m`` target of a worker: ``sleepstream live`` that also ends with its ward (see there)
WORKER_MODULE = "sleepstream.ward_worker"
#: environment variable that gives a worker its ward's process id (read by :mod:`sleepstream.ward_worker`)
WARD_PID_ENV = "SLEEPSTREAM_WARD_PID"


@dataclass(frozen=True)
class WorkerOptions:
    """The ``live`` options every worker of a ward gets.

    Made once by ``sleepstream ward`` from its flags; :func:`worker_command` adds what is
    each bed's own (its stream's source_id, its file, its name, its rule file).

    Parameters
    ----------
    channel : str
        Channel label (``--channel``).
    weights : str or None
        Model folder (None: the shipped one).
    outlets : bool
        Publish ``<bed>-stage``/``-probabilities``.
    network : bool
        As ``live --network``.
    session_id : str or None
        As ``live --session-id``.
    find_timeout_s : float
        How long a (re)started worker looks for its stream (s) before it exits and is
        started again.
    gate : GatePlan
        Which bed runs which stimulation-window rule (``live --gate``; see
        :mod:`scorer.ward.gates`).
    extra : tuple of str
        Further arguments passed as they are.
    """

    channel: str = DEFAULT_CHANNEL
    weights: str | None = None
    outlets: bool = True
    network: bool = False
    session_id: str | None = None
    find_timeout_s: float = 30.0
    gate: GatePlan = NO_PLAN
    extra: tuple[str, ...] = ()


def worker_command(source_id: str, out_path: Path, bed: str, opts: WorkerOptions,
                   gate_file: Path | None = None) -> list[str]:
    """The command line of a bed's worker.

    Exactly ``sleepstream live`` for ``source_id`` (through
    :mod:`sleepstream.ward_worker`, which only adds ending with the ward).

    Parameters
    ----------
    source_id : str
        The bed's stream (``--source-id``).
    out_path : Path
        The bed's hypnogram file (``--out``).
    bed : str
        The bed's name (``--outlet-name``).
    opts : WorkerOptions
        The ward's ``live`` options.
    gate_file : Path, optional
        The rule file the ward wrote, when the bed runs a gate (``--gate``).

    Returns
    -------
    list of str
        The arguments, this Python first, ``opts.extra`` last.
    """
    cmd = [sys.executable, "-m", WORKER_MODULE, "live", "--source-id", source_id, "--out", str(out_path),
           "--outlet-name", bed, "--no-display", "--status-json", "--channel", opts.channel,
           "--timeout", f"{opts.find_timeout_s:g}"]
    if opts.weights:
        cmd += ["--weights", str(opts.weights)]
    if not opts.outlets:
        cmd.append("--no-outlets")
    if opts.network:
        cmd.append("--network")
    if opts.session_id:
        cmd += ["--session-id", opts.session_id]
    if gate_file is not None:
        cmd += ["--gate", str(Path(gate_file).resolve())]
    return cmd + list(opts.extra)


@dataclass
class Heartbeat:
    """What one worker generation's reader has seen.

    Parameters
    ----------
    last_line_s : float or None
        Monotonic time (s) of the newest line read; None: none yet.
    lines : int
        Lines read.
    waiting : bool
        The reader waits for room in the ward's queue: the worker writes, the ward is
        behind.
    """

    last_line_s: float | None = None
    lines: int = 0
    waiting: bool = False


Item = tuple[str, int, dict]


def _read_lines(bed: str, generation: int, pipe: IO[str], events: queue.Queue[Item],
                slots: threading.Semaphore, beat: Heartbeat) -> None:
    """Reader thread: each stdout line of a worker into ``events`` as (bed, generation,
    event), each put taking one of the worker's ``slots`` (the ward gives it back when it
    takes the line); the pipe is closed at its end."""

    def put(event: dict) -> None:
        beat.waiting = True
        slots.acquire()
        beat.waiting = False
        events.put((bed, generation, event))

    try:
        for line in pipe:
            beat.last_line_s = time.monotonic()
            beat.lines += 1
            line = line.strip()
            if not line:
                continue
            try:
                event = json.loads(line)
                if not isinstance(event, dict):
                    raise ValueError
            except ValueError:
                event = {"event": "text", "text": line[:MAX_TEXT]}
            put(event)
    except (OSError, ValueError):   # pipe closed under us
        pass
    finally:
        put({"event": "eof"})
        try:
            pipe.close()
        except (OSError, ValueError):
            pass


def last_line(path: Path, max_bytes: int = 4096) -> str:
    """The last non-empty line of a file: a failed worker's error message.

    Parameters
    ----------
    path : Path
        The worker's ``<bed>.log``.
    max_bytes : int
        Only the file's last ``max_bytes`` bytes are read.

    Returns
    -------
    str
        The line, stripped; ``''`` when there is none or the file cannot be read.
    """
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            tail = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in tail.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


class Worker:
    """The process scoring one bed, started again whenever it ends or hangs.

    Parameters
    ----------
    bed : str
        The bed's name (outlets, files, events).
    command : list of str
        What to run (see :func:`worker_command`).
    log_path : Path
        The worker's stderr is appended here.
    events : queue.Queue
        Receives (bed, generation, event dict) from the reader thread; whoever takes an
        item of this worker calls :meth:`taken`.
    backoff_s, max_backoff_s, stable_s : float
        Restart policy (see the module text).
    hang_timeout_s : float
        Silence (s) after which a running worker is killed as hung; 0: never.
    startup_s : float
        Added to ``hang_timeout_s`` before the worker's first line (its start-up).
    """

    def __init__(self, bed: str, command: list[str], log_path: Path,
                 events: queue.Queue[Item], backoff_s: float = BACKOFF_S,
                 max_backoff_s: float = MAX_BACKOFF_S, stable_s: float = STABLE_S,
                 hang_timeout_s: float = HANG_TIMEOUT_S, startup_s: float = 30.0 + STARTUP_GRACE_S) -> None:
        self.bed = bed
        self.command = list(command)
        self.log_path = Path(log_path)
        self.events = events
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.stable_s = stable_s
        self.hang_timeout_s = float(hang_timeout_s)
        self.startup_s = float(startup_s)
        self.proc: subprocess.Popen[str] | None = None
        self.generation = 0            # starts so far; events carry it
        self.restarts = 0
        self.hangs = 0                 # workers killed as hung
        self.started_at_s = 0.0
        self.retry_at_s: float | None = None
        self.last_exit: str | None = None
        self.last_end_hung = False     # the last worker to end was killed as hung
        self.beat = Heartbeat()
        self.slots = threading.Semaphore(MAX_QUEUED_LINES)
        self._failures = 0
        self._reader: threading.Thread | None = None
        self._excused_s = -math.inf
        self._exited_at_s: float | None = None
        self._hung_silent_s: float | None = None

    def __repr__(self) -> str:
        return (f"<Worker {self.bed} pid={self.pid} starts={self.generation} restarts={self.restarts} "
                f"hangs={self.hangs}>")

    @property
    def pid(self) -> int | None:
        """The current process's id (None before the first start)."""
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        """Whether the current process has not ended."""
        return self.proc is not None and self.proc.poll() is None

    @property
    def reader_alive(self) -> bool:
        """Whether the current process's reader thread still runs (lines may follow)."""
        return self._reader is not None and self._reader.is_alive()

    def taken(self) -> None:
        """One of this worker's queued lines was taken: its slot is free again."""
        self.slots.release()

    def start(self, now_s: float) -> None:
        """Start the process (a restart when it ran before) and its reader thread.

        The process runs in a session of its own (a hang kills its whole process group),
        its stderr appended to the bed's log file, and is told the ward's process id
        (``WARD_PID_ENV``) so that it ends with the ward.

        Parameters
        ----------
        now_s : float
            Monotonic clock now, s (its silence counts from here plus ``startup_s``).
        """
        if self.generation:
            self.restarts += 1
        self.generation += 1
        self.retry_at_s = None
        self.started_at_s = now_s
        self._exited_at_s = None
        self._hung_silent_s = None
        self.beat = Heartbeat()
        err = open(self.log_path, "a", encoding="utf-8")
        try:
            self.proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=err, text=True, bufsize=1, start_new_session=True,
                                         env={**os.environ, WARD_PID_ENV: str(os.getpid())})
        finally:
            err.close()
        self._reader = threading.Thread(target=_read_lines, name=f"ward-{self.bed}",
                                        args=(self.bed, self.generation, self.proc.stdout, self.events,
                                              self.slots, self.beat), daemon=True)
        self._reader.start()
        log.info("bed %s: worker started (pid %d, start %d)", self.bed, self.proc.pid, self.generation)

    def excuse(self, now_s: float) -> None:
        """The ward itself was paused (its loop did not turn): count this worker's silence
        from ``now_s`` at the earliest, so a pause of the ward is not taken for a hang.

        Parameters
        ----------
        now_s : float
            Monotonic clock now, s: the end of the ward's pause, from which the silence
            counts again.
        """
        self._excused_s = now_s

    def silent_s(self, now_s: float) -> float:
        """How long the worker has been silent.

        Parameters
        ----------
        now_s : float
            Monotonic clock now, s (``time.monotonic()``, the clock the reader thread
            stamps each line with).

        Returns
        -------
        float
            Seconds since its newest line (before its first line: since its start plus
            ``startup_s``, negative during it), not before a pause of the ward; 0 while
            its reader waits for room in the ward's queue.
        """
        beat = self.beat
        if beat.waiting:
            return 0.0
        since = beat.last_line_s if beat.last_line_s is not None else self.started_at_s + self.startup_s
        return now_s - max(since, self._excused_s)

    def check(self, now_s: float) -> str | None:
        """Notice an ended process, kill a hung one, or start the one whose back-off is over.

        An ended process's restart is scheduled after the back-off (once its reader has
        handed over its last lines, or ``EOF_GRACE_S`` after it ended).

        Parameters
        ----------
        now_s : float
            Monotonic clock now, s: weighed against the hang timeout, ``EOF_GRACE_S`` after
            an end and the back-off's end.

        Returns
        -------
        str or None
            A one-line description when a process is found ended (or killed as hung),
            with the restart's delay; None otherwise.
        """
        if self.proc is not None and self.retry_at_s is None:
            rc = self.proc.poll()
            if rc is None:
                if self._hung_silent_s is None and self.hang_timeout_s > 0:
                    silent = self.silent_s(now_s)
                    if silent > self.hang_timeout_s:
                        self._kill_hung(silent)
                return None
            if self._exited_at_s is None:
                self._exited_at_s = now_s
            if self.reader_alive and now_s - self._exited_at_s < EOF_GRACE_S:
                return None                # its last lines first (the ward takes them meanwhile)
            ran = self._exited_at_s - self.started_at_s
            self._failures = 0 if ran >= self.stable_s else self._failures + 1
            delay = min(self.max_backoff_s, self.backoff_s * 2 ** max(0, self._failures - 1))
            self.retry_at_s = now_s + delay
            self.last_end_hung = self._hung_silent_s is not None
            if self.last_end_hung:
                self.hangs += 1
                self.last_exit = f"hung: no line for {self.hang_timeout_s:g} s; killed"
                log.warning("bed %s: worker hung (no line for %.1f s, ran %.1f s); killed; restarting in %.0f s",
                            self.bed, self._hung_silent_s, ran, delay)
                return f"worker {self.last_exit}; restart in {delay:.0f} s"
            how = f"killed by signal {-rc}" if rc < 0 else f"exit code {rc}"
            why = last_line(self.log_path) if rc > 0 else ""
            self.last_exit = how + (f": {why}" if why else "")
            log.warning("bed %s: worker ended after %.1f s (%s); restarting in %.0f s",
                        self.bed, ran, self.last_exit, delay)
            return f"worker ended ({self.last_exit}); restart in {delay:.0f} s"
        if self.retry_at_s is not None and now_s >= self.retry_at_s:
            self.start(now_s)
        return None

    def _kill_hung(self, silent_s: float) -> None:
        """SIGKILL the worker's process group (it runs in a session of its own), stopped or not."""
        self._hung_silent_s = silent_s
        self._kill()

    def _kill(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            try:
                self.proc.kill()
            except OSError:
                pass

    def terminate(self) -> None:
        """Ask the process to finish (SIGTERM: ``live`` closes its file and outlets)."""
        self.retry_at_s = None
        if self.running:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout_s: float) -> None:
        """Wait for the process after :meth:`terminate`; kill it (its process group) when
        it takes longer.

        Parameters
        ----------
        timeout_s : float
            How long to wait before SIGKILL, s.
        """
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("bed %s: worker did not stop within %.0f s; killing it", self.bed, timeout_s)
            self._kill()
            self.proc.wait()
