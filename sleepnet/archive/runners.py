"""Run many :class:`~sleepnet.archive.night.NightJob` at once: local worker processes, or
a Dask cluster. Both yield one :class:`~sleepnet.archive.night.NightRow` per night as the
nights finish, load the model once per worker process, and fail a night that runs past its
``timeout_s`` alone, with the error ``timed out after S s``.

:class:`LocalRunner` (``concurrent.futures.ProcessPoolExecutor``, ``spawn`` start)
    keeps at most two nights per worker in flight (one running, one waiting). A worker
    that dies (killed, out of memory) breaks the pool and loses the nights in flight: the
    pool is rebuilt and each lost night is retried once, alone, so the night that kills a
    worker twice is the one that fails ("worker died") and the others are scored. After
    5 broken pools with no night finished in between, the nights left fail unscored.
    Each worker tells the parent when it starts a night; a night still running
    ``timeout_s`` later gets its worker killed (SIGKILL: a hang in C code or in a blocked
    read ends too) and fails, timed out; the other nights the broken pool lost are
    handed to the new pool as they were (no strike against them). Workers ignore
    SIGINT; on Ctrl-C the caller stops iterating and :meth:`LocalRunner.close` ends the
    workers. As with any ``spawn`` pool, a script that uses it needs the
    ``if __name__ == "__main__":`` guard.
:class:`DaskRunner` (``dask.distributed``)
    submits every night to the cluster (``retries=1``); when a worker dies the
    scheduler gives its night to another worker (up to its
    ``distributed.scheduler.allowed-failures`` deaths, then the night fails with
    ``KilledWorker``). Closing the iteration early cancels the nights not yet finished.
    Each night logs a Dask event when it starts on a worker; a night still running
    ``timeout_s`` later fails here, timed out, and its future is cancelled. A Dask task
    cannot be stopped from the client (its thread runs until its function returns), so
    the runner then restarts that worker through its nanny (``Client.restart_workers``):
    the nanny kills the process, other nights it held go to other workers, and a fresh
    worker joins. A worker without a nanny (``dask worker --no-nanny``) cannot be
    restarted: the hung night keeps its thread (a warning says so), and nights the
    scheduler still sends that worker wait behind it unless Dask's work stealing moves
    them: run workers with their nanny (the default).
    While a run lasts, the workers' statistical profiler (Dask's dashboard feature that
    samples every running task's stack every 10 ms) is paused: it took 0.04-0.05 s of
    CPU per 8-h night in the worker's own threads (of ~0.85 s), and forced hundreds of
    lock hand-offs with the night's thread; it resumes when the run ends
    (``DaskRunner(client, pause_profiler=False)`` leaves it on).
"""
from __future__ import annotations

import functools
import logging
import math
import multiprocessing
import os
import queue
import signal
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from ..errors import SleepstreamError, parameter
from .night import NightJob, NightRow, limit_torch_threads, prepare_worker_process, score_night, worker_model

log = logging.getLogger(__name__)

#: Nights handed to the pool per worker: one running and one waiting, so no worker idles
#: between two nights; at most this many per worker are lost (and retried) when one dies.
IN_FLIGHT_PER_WORKER = 2
WARM_UP_SFREQ_HZ = 100.0
WARM_UP_SAMPLES = int(180 * WARM_UP_SFREQ_HZ)   # 3 min of noise
MAX_BREAKS_IN_A_ROW = 5
WORKER_DIED = "worker died twice while scoring it (killed, or out of memory)"
#: Longest wait between two looks at the nights in flight, s (a start heard, a limit passed).
POLL_S = 1.0
#: Longest wait, when a Dask run closes, for the restarts of its hung workers, s.
RESTART_WAIT_S = 60.0
#: The Dask worker's periodic callbacks of its statistical profiler (paused during a run).
_PROFILE_CALLBACKS = ("profile", "profile-cycle")
#: The pool worker's end of the start reports (set by its initializer; a worker process's
#: own state, one per process).
_worker_reports: dict[str, object] = {}


def timed_out_error(limit_s: float) -> str:
    """A night's error when it ran past its time limit.

    Parameters
    ----------
    limit_s : float
        The night's limit, s: its job's ``timeout_s`` (``--night-timeout``, or by default
        :func:`~sleepnet.archive.night.default_night_timeout_s` of its file's size).

    Returns
    -------
    str
        ``timed out after <limit_s> s (--night-timeout)``.
    """
    return f"timed out after {limit_s:g} s (--night-timeout)"


def _failed_row(job: NightJob, error: str) -> NightRow:
    n = job.night
    return NightRow(night=n.name, recording=str(n.recording), hypnogram=str(n.hypnogram) if n.hypnogram else "",
                    model_id=job.model.model_id, weights_sha256=job.model.weights_sha256,
                    error=f"{n.recording}: {error}")


def _init_worker(weights_dir: str | None, torch_threads: int | None, log_level: int, started) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    logging.basicConfig(level=log_level, format="%(levelname)s: %(message)s")  # a spawned process has none
    _worker_reports["started"] = started
    prepare_worker_process()
    worker_model(weights_dir)
    limit_torch_threads(torch_threads)
    warm_model(weights_dir)


def _local_night(job: NightJob) -> NightRow:
    """A pool worker's night: report its start (night, pid, wall time) to the parent, then score it."""
    started = _worker_reports.get("started")
    if started is not None:
        started.put((job.night.name, os.getpid(), time.time()))
    return score_night(job)


@functools.lru_cache(maxsize=2)
def warm_model(weights_dir: str | None = None) -> str:
    """Once per process (and weights folder): load the model, import the recording reader
    (MNE) and score 3 min of noise, so the first night does not pay for the start-up.

    Parameters
    ----------
    weights_dir : str or None, optional
        The weights folder (None: the default model), loaded through
        :func:`~sleepnet.archive.night.worker_model` so the nights after reuse it.

    Returns
    -------
    str
        The model id.
    """
    import mne  # noqa: F401  (the EDF reader's import, a second or two)
    import numpy as np

    from ..batch import score_recording
    from ..io.recordings import Recording

    prepare_worker_process()
    model = worker_model(weights_dir)
    noise = np.random.default_rng(0).normal(0, 30, WARM_UP_SAMPLES).astype(np.float32)
    score_recording(Recording(eeg_uv=noise, sfreq=WARM_UP_SFREQ_HZ, channel="warm-up", source="warm-up"), model)
    return model.model_id


def _worker_pid() -> int:
    return os.getpid()


def _wake_in_s(jobs, started: dict) -> float | None:
    """Seconds until the next look at the nights in flight: the nearest limit of a started
    night, at most :data:`POLL_S` while any night has a limit; None (no need) otherwise."""
    waits = [POLL_S]
    now = time.time()
    limited = False
    for job in jobs:
        if not math.isfinite(job.timeout_s):
            continue
        limited = True
        hit = started.get(job.night.name)
        if hit is not None:
            waits.append(hit[1] + job.timeout_s - now)
    return max(0.01, min(waits)) if limited else None


class LocalRunner:
    """Nights on ``workers`` local processes (see the module docstring).

    Parameters
    ----------
    workers : int
        Worker processes.
    weights_dir : str or None
        The weights folder every worker loads once (None: the default model).
    torch_threads : int or None
        Torch threads per worker (None: torch's default).
    """

    def __init__(self, workers: int, weights_dir: str | None = None, torch_threads: int | None = None) -> None:
        if workers < 1:
            raise SleepstreamError(f"{parameter('workers')} must be at least 1, got {workers}")
        self.workers = workers
        self.weights_dir = weights_dir
        self.torch_threads = torch_threads
        self._pool: ProcessPoolExecutor | None = None
        self._started = None          # the current pool's start reports (a SimpleQueue)
        self._children_before: set = set()

    def __repr__(self) -> str:
        return f"<LocalRunner {self.workers} worker processes>"

    def __enter__(self) -> LocalRunner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _new_pool(self) -> ProcessPoolExecutor:
        self._children_before = set(multiprocessing.active_children())
        ctx = multiprocessing.get_context("spawn")
        # A fresh queue per pool: a worker killed while it wrote one would leave it locked.
        self._started = ctx.SimpleQueue()
        return ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker,
                                   initargs=(self.weights_dir, self.torch_threads,
                                             logging.getLogger().getEffectiveLevel(), self._started))

    @property
    def pool(self) -> ProcessPoolExecutor:
        """The worker pool, started on first use (and again after a broken one)."""
        if self._pool is None:
            self._pool = self._new_pool()
        return self._pool

    def warm(self) -> list[int]:
        """Start every worker and warm its model (:func:`warm_model`).

        Returns
        -------
        list of int
            The pids of the workers that answered, sorted.
        """
        return sorted({f.result() for f in [self.pool.submit(_worker_pid) for _ in range(self.workers)]})

    def run(self, jobs: Sequence[NightJob]) -> Iterator[NightRow]:
        """Score ``jobs``; yields each night's row as it finishes (in finishing order).

        Parameters
        ----------
        jobs : sequence of NightJob
            The nights to score, handed to the pool at most :data:`IN_FLIGHT_PER_WORKER`
            per worker at a time, in order.

        Yields
        ------
        NightRow
            One per job: scored, or failed with its one-line error (timed out, worker
            died twice, workers dying over and over).
        """
        todo: deque[NightJob] = deque(jobs)
        retry: deque[NightJob] = deque()
        lost: dict[str, int] = {}
        inflight: dict[Future, NightJob] = {}
        started: dict[str, tuple[int, float]] = {}   # night -> (worker pid, wall-clock start)
        timed_out: set[str] = set()                  # nights whose worker this pool's run killed
        breaks_in_a_row = 0   # pools broken with no night finished in between
        while todo or retry or inflight:
            if breaks_in_a_row >= MAX_BREAKS_IN_A_ROW:  # workers die whatever they run: stop trying
                for job in [*retry, *todo]:
                    yield _failed_row(job, f"not scored: local workers died {breaks_in_a_row} times in a row "
                                           "(out of memory? a broken installation?)")
                return
            if retry:
                if not inflight:  # a lost night runs alone: if it kills a worker again, it is the culprit
                    job = retry.popleft()
                    inflight[self.pool.submit(_local_night, job)] = job
            else:
                while todo and len(inflight) < IN_FLIGHT_PER_WORKER * self.workers:
                    job = todo.popleft()
                    inflight[self.pool.submit(_local_night, job)] = job
            done, _ = wait(inflight, timeout=_wake_in_s(inflight.values(), started), return_when=FIRST_COMPLETED)
            self._hear_starts(started)
            timed_out |= self._kill_overdue(inflight.values(), started)
            if not done:
                continue
            if any(isinstance(f.exception(), BrokenProcessPool) for f in done):
                wait(inflight)  # the whole pool is gone: every night in flight ends now
                done = set(inflight)
                self._discard_pool()
                if not timed_out:       # a worker we killed is no sign that workers die by themselves
                    breaks_in_a_row += 1
            if any(f.exception() is None for f in done):
                breaks_in_a_row = 0
            killed_here = bool(timed_out)
            for fut in done:
                job = inflight.pop(fut)
                started.pop(job.night.name, None)
                exc = fut.exception()
                if exc is None:
                    yield fut.result()
                elif job.night.name in timed_out:
                    yield _failed_row(job, timed_out_error(job.timeout_s))
                elif not isinstance(exc, BrokenProcessPool):  # e.g. a job that cannot reach the worker
                    yield _failed_row(job, f"{exc.__class__.__name__}: {exc}")
                elif killed_here:       # lost with the worker of a night that timed out: not its fault
                    todo.appendleft(job)
                elif lost.setdefault(job.night.name, 0) == 0:
                    lost[job.night.name] = 1
                    log.warning("%s: a worker died while it was in flight; scoring it again", job.night.recording)
                    retry.append(job)
                else:
                    yield _failed_row(job, WORKER_DIED)
            if self._pool is None:
                timed_out = set()

    def _hear_starts(self, started: dict[str, tuple[int, float]]) -> None:
        """Take the start reports the workers sent since the last look."""
        q = self._started
        while q is not None and not q.empty():
            name, pid, t = q.get()
            started[name] = (pid, t)

    def _kill_overdue(self, inflight, started: dict[str, tuple[int, float]]) -> set[str]:
        """Kill the worker of every night in flight past its limit; returns those nights."""
        now, killed = time.time(), set()
        for job in inflight:
            hit = started.get(job.night.name)
            if hit is None or now - hit[1] < job.timeout_s:
                continue
            pid = hit[0]
            log.warning("%s: still running after %g s in worker %d: killing the worker", job.night.recording,
                        job.timeout_s, pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            started.pop(job.night.name)
            killed.add(job.night.name)
        return killed

    def _discard_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            self._started = None

    def close(self) -> None:
        """End the workers now (nights in flight are abandoned; their files are not
        marked finished, so the next run scores them)."""
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in set(multiprocessing.active_children()) - self._children_before:
            proc.terminate()
        pool.shutdown(wait=True)


class DaskRunner:
    """Nights on a Dask cluster (see the module docstring).

    Parameters
    ----------
    client : distributed.Client
        A client of the cluster. Its workers must import this package and see the
        recordings and the output folder at the same paths.
    pause_profiler : bool
        Pause the workers' statistical profiler while a run lasts (module docstring).
    """

    def __init__(self, client, pause_profiler: bool = True) -> None:
        self.client = client
        self.pause_profiler = pause_profiler
        self._restarts: list[threading.Thread] = []

    def __repr__(self) -> str:
        return f"<DaskRunner {self.client.scheduler.address}>"

    @classmethod
    def connect(cls, scheduler: str, timeout_s: float = 20.0) -> DaskRunner:
        """Connect to the Dask scheduler at the address ``scheduler`` (e.g. ``tls://10.0.0.5:8786``).

        The connection's security is Dask's own configuration (``distributed.comm.tls.*``
        and ``distributed.comm.require-encryption``, from Dask's YAML files or
        ``DASK_DISTRIBUTED__COMM__TLS__...`` environment variables), as for any Dask client.

        Parameters
        ----------
        scheduler : str
            The scheduler's address.
        timeout_s : float
            How long to try to reach it, s.

        Returns
        -------
        DaskRunner
            A runner on the cluster's client.

        Raises
        ------
        SleepstreamError
            dask.distributed missing, a ``tls://`` address without Dask's TLS settings, or
            no scheduler reached within ``timeout_s``.
        """
        try:
            import dask
            from distributed import Client
        except ImportError:
            raise SleepstreamError(f"{parameter('scheduler')}={scheduler}: needs dask.distributed: "
                                   "pip install 'sleepstream[archive]'") from None
        if scheduler.startswith("tls://") and not dask.config.get("distributed.comm.tls.ca-file", None):
            raise SleepstreamError(f"{parameter('scheduler')}={scheduler}: a tls:// scheduler needs Dask's TLS "
                                   "settings: distributed.comm.tls.ca-file, .client.cert and .client.key (e.g. the "
                                   "environment variables DASK_DISTRIBUTED__COMM__TLS__CA_FILE, ..._CLIENT__CERT, "
                                   "..._CLIENT__KEY)")
        try:
            client = Client(scheduler, timeout=timeout_s)
        except (OSError, TimeoutError, ValueError) as exc:
            raise SleepstreamError(f"{parameter('scheduler')}={scheduler}: cannot reach a Dask scheduler "
                                   f"({exc.__class__.__name__}: {exc})".splitlines()[0]) from None
        return cls(client)

    def __enter__(self) -> DaskRunner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def warm(self, weights_dir: str | None = None) -> None:
        """Load and warm the model on every worker now (otherwise each does it with its first night).

        Parameters
        ----------
        weights_dir : str or None, optional
            The weights folder (None: the default model), as the workers see it.
        """
        self.client.run(warm_model, weights_dir)

    def run(self, jobs: Sequence[NightJob]) -> Iterator[NightRow]:
        """Score ``jobs`` on the cluster; yields each night's row as it finishes.

        Parameters
        ----------
        jobs : sequence of NightJob
            The nights to score, all submitted to the cluster at once (each with
            ``retries=1``); the scheduler decides their order.

        Yields
        ------
        NightRow
            One per job: scored, or failed with its one-line error (timed out,
            ``KilledWorker``, a job the cluster could not run).
        """
        from distributed import as_completed

        run_id = uuid.uuid4().hex[:8]
        topic = f"sleepstream-night-start-{run_id}"
        heard: queue.SimpleQueue = queue.SimpleQueue()
        futs: dict = {}
        paused = self._profiler(_pause_profiler) if self.pause_profiler and jobs else False
        try:
            self.client.subscribe_topic(topic, lambda event: heard.put((event[1], time.monotonic())))
            futs = {self.client.submit(_dask_night, job, topic, key=f"sleepstream-night-{job.night.name}-{run_id}",
                                       pure=False, retries=1): job for job in jobs}
            by_name = {job.night.name: fut for fut, job in futs.items()}
            limits = {job.night.name: job.timeout_s for job in jobs}
            started: dict[str, tuple[str, float]] = {}   # night -> (worker address, monotonic start)
            finished: set = set()
            ac = as_completed(futs)
            while len(finished) < len(futs):
                with ac.thread_condition:      # checked under the lock: no completion is missed
                    if not ac.has_ready():
                        ac.thread_condition.wait(timeout=_dask_wake_in_s(limits, started))
                batch = [f for f in ac.next_batch(block=False) if f not in finished]
                while not heard.empty():
                    msg, t = heard.get()
                    if msg.get("night") in by_name and by_name[msg["night"]] not in finished:
                        started[msg["night"]] = (msg.get("worker", ""), t)
                for fut in batch:
                    finished.add(fut)
                    job = futs[fut]
                    started.pop(job.night.name, None)
                    try:
                        yield fut.result()
                    except Exception as exc:  # KilledWorker, or a job the cluster could not run
                        yield _failed_row(job, f"{exc.__class__.__name__}: {exc}".splitlines()[0])
                now = time.monotonic()
                for name, (worker, t) in list(started.items()):
                    fut = by_name[name]
                    if fut.done() or now - t < limits[name]:
                        continue
                    finished.add(fut)
                    del started[name]
                    self.client.cancel([fut])
                    self._restart_hung(worker, futs[fut])
                    yield _failed_row(futs[fut], timed_out_error(futs[fut].timeout_s))
        finally:
            try:
                self.client.unsubscribe_topic(topic)
            except ValueError:        # never subscribed (the run failed before)
                pass
            unfinished = [f for f in futs if not f.done()]
            if unfinished:
                self.client.cancel(unfinished)
            if paused:
                self._profiler(_resume_profiler)

    def _profiler(self, action) -> bool:
        """Run ``action`` (pause or resume) on every worker; False when it could not."""
        try:
            self.client.run(action)
        except Exception as exc:   # a worker leaving as it runs, an old Dask: the run goes on
            log.debug("Dask workers' profiler: %s failed (%s: %s)", action.__name__, exc.__class__.__name__, exc)
            return False
        return True

    def _restart_hung(self, worker: str, job: NightJob) -> None:
        """Restart, through its nanny and in the background, the worker still running a
        night past its limit (module docstring)."""
        log.warning("%s: still running after %g s on Dask worker %s: restarting that worker",
                    job.night.recording, job.timeout_s, worker)

        def restart() -> None:
            try:
                status = self.client.restart_workers([worker], raise_for_error=False)
            except Exception as exc:   # the client closing, the scheduler gone
                status = {worker: f"{exc.__class__.__name__}: {exc}"}
            if status.get(worker) != "OK":
                log.warning("Dask worker %s was not restarted (%s): without a nanny it keeps the hung night's "
                            "thread busy until that night's function returns", worker, status.get(worker))

        thread = threading.Thread(target=restart, name=f"restart-{worker}", daemon=True)
        thread.start()
        self._restarts.append(thread)

    def close(self) -> None:
        """Wait (at most :data:`RESTART_WAIT_S`) for the restarts of hung workers to finish,
        then close the client."""
        deadline = time.monotonic() + RESTART_WAIT_S
        for thread in self._restarts:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.client.close()


def _dask_night(job: NightJob, topic: str) -> NightRow:
    """A Dask task's night: warm the worker once (:func:`warm_model`, outside the night's
    limit), log the night's start as a Dask event (night, worker address), then score it."""
    prepare_worker_process()
    limit_torch_threads(job.torch_threads)
    try:
        warm_model(job.model.weights_dir)
    except SleepstreamError:
        pass                          # the night itself reports the model's error
    try:
        from distributed import get_worker

        worker = get_worker()
        worker.log_event(topic, {"night": job.night.name, "worker": worker.address})
    except (ImportError, ValueError):   # not on a Dask worker: no limit can be kept, score anyway
        pass
    return score_night(job)


def _dask_wake_in_s(limits: dict[str, float], started: dict[str, tuple[str, float]]) -> float:
    """Seconds until the next look: the nearest limit of a started night, at most POLL_S."""
    now = time.monotonic()
    return max(0.01, min([POLL_S, *(t + limits[name] - now for name, (_w, t) in started.items())]))


def _pause_profiler(dask_worker) -> bool:
    """On a Dask worker (``Client.run``): pause its statistical profiler; pauses nest, the
    last :func:`_resume_profiler` starts it again. Returns whether it is paused now."""
    pauses = getattr(dask_worker, "_sleepstream_profile_pauses", 0)
    if pauses == 0:
        stopped = []
        for name in _PROFILE_CALLBACKS:
            pc = dask_worker.periodic_callbacks.get(name)
            if pc is not None and pc.is_running():
                pc.stop()
                stopped.append(name)
        dask_worker._sleepstream_profile_stopped = stopped
    dask_worker._sleepstream_profile_pauses = pauses + 1
    return True


def _resume_profiler(dask_worker) -> bool:
    """On a Dask worker (``Client.run``): undo one :func:`_pause_profiler`; the last one
    starts the callbacks it stopped again. Returns whether the profiler runs now."""
    pauses = getattr(dask_worker, "_sleepstream_profile_pauses", 0)
    if pauses <= 1:
        for name in getattr(dask_worker, "_sleepstream_profile_stopped", []):
            dask_worker.periodic_callbacks[name].start()
        dask_worker._sleepstream_profile_stopped = []
    dask_worker._sleepstream_profile_pauses = max(0, pauses - 1)
    return dask_worker._sleepstream_profile_pauses == 0
