"""Run many :class:`~sleepnet.archive.night.NightJob` at once: local worker processes, or
a Dask cluster. Both yield one :class:`~sleepnet.archive.night.NightRow` per night as the
nights finish, and load the model once per worker.

:class:`LocalRunner` (``concurrent.futures.ProcessPoolExecutor``, ``spawn`` start)
    keeps at most two nights per worker in flight (one running, one waiting). A worker
    that dies (killed, out of memory) breaks the pool and loses the nights in flight: the
    pool is rebuilt and each lost night is retried once, alone, so the night that kills a
    worker twice is the one that fails ("worker died") and the others are scored. After
    5 broken pools with no night finished in between, the nights left fail unscored.
    Workers ignore SIGINT; on Ctrl-C the caller stops iterating and
    :meth:`LocalRunner.close` ends the workers. As with any ``spawn`` pool, a script that
    uses it needs the ``if __name__ == "__main__":`` guard.
:class:`DaskRunner` (``dask.distributed``)
    submits every night to the cluster (``retries=1``); when a worker dies the
    scheduler gives its night to another worker (up to its
    ``distributed.scheduler.allowed-failures`` deaths, then the night fails with
    ``KilledWorker``). Closing the iteration early cancels the nights not yet finished.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import uuid
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Iterator, Sequence

from ..errors import SleepstreamError
from .night import NightJob, NightRow, limit_torch_threads, score_night, worker_model

log = logging.getLogger(__name__)

#: Nights handed to the pool per worker: one running and one waiting, so no worker idles
#: between two nights; at most this many per worker are lost (and retried) when one dies.
IN_FLIGHT_PER_WORKER = 2
WARM_UP_SFREQ_HZ = 100.0
WARM_UP_SAMPLES = int(180 * WARM_UP_SFREQ_HZ)   # 3 min of noise
MAX_BREAKS_IN_A_ROW = 5
WORKER_DIED = "worker died twice while scoring it (killed, or out of memory)"


def _failed_row(job: NightJob, error: str) -> NightRow:
    n = job.night
    return NightRow(night=n.name, recording=str(n.recording), hypnogram=str(n.hypnogram) if n.hypnogram else "",
                    model_id=job.model.model_id, weights_sha256=job.model.weights_sha256,
                    error=f"{n.recording}: {error}")


def _init_worker(weights_dir: str | None, torch_threads: int | None, log_level: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    logging.basicConfig(level=log_level, format="%(levelname)s: %(message)s")  # a spawned process has none
    worker_model(weights_dir)
    limit_torch_threads(torch_threads)
    warm_model(weights_dir)


def warm_model(weights_dir: str | None = None) -> str:
    """Load the model in this process and score 3 min of noise with it, so the first night
    does not pay for the first forward passes; returns the model id."""
    import numpy as np

    from ..batch import score_recording
    from ..io.recordings import Recording

    model = worker_model(weights_dir)
    noise = np.random.default_rng(0).normal(0, 30, WARM_UP_SAMPLES).astype(np.float32)
    score_recording(Recording(eeg_uv=noise, sfreq=WARM_UP_SFREQ_HZ, channel="warm-up", source="warm-up"), model)
    return model.model_id


def _worker_pid() -> int:
    return os.getpid()


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
            raise SleepstreamError(f"--jobs must be at least 1, got {workers}")
        self.workers = workers
        self.weights_dir = weights_dir
        self.torch_threads = torch_threads
        self._pool: ProcessPoolExecutor | None = None
        self._children_before: set = set()

    def __repr__(self) -> str:
        return f"<LocalRunner {self.workers} worker processes>"

    def __enter__(self) -> "LocalRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _new_pool(self) -> ProcessPoolExecutor:
        self._children_before = set(multiprocessing.active_children())
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(self.weights_dir, self.torch_threads, logging.getLogger().getEffectiveLevel()))

    @property
    def pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = self._new_pool()
        return self._pool

    def warm(self) -> list[int]:
        """Start every worker and warm its model (:func:`warm_model`); returns the workers' pids."""
        return sorted({f.result() for f in [self.pool.submit(_worker_pid) for _ in range(self.workers)]})

    def run(self, jobs: Sequence[NightJob]) -> Iterator[NightRow]:
        """Score ``jobs``; yields each night's row as it finishes (in finishing order)."""
        todo: deque[NightJob] = deque(jobs)
        retry: deque[NightJob] = deque()
        lost: dict[str, int] = {}
        inflight: dict[Future, NightJob] = {}
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
                    inflight[self.pool.submit(score_night, job)] = job
            else:
                while todo and len(inflight) < IN_FLIGHT_PER_WORKER * self.workers:
                    job = todo.popleft()
                    inflight[self.pool.submit(score_night, job)] = job
            done, _ = wait(inflight, return_when=FIRST_COMPLETED)
            if any(isinstance(f.exception(), BrokenProcessPool) for f in done):
                wait(inflight)  # the whole pool is gone: every night in flight ends now
                done = set(inflight)
                self._discard_pool()
                breaks_in_a_row += 1
            if any(f.exception() is None for f in done):
                breaks_in_a_row = 0
            for fut in done:
                job = inflight.pop(fut)
                exc = fut.exception()
                if exc is None:
                    yield fut.result()
                elif not isinstance(exc, BrokenProcessPool):  # e.g. a job that cannot reach the worker
                    yield _failed_row(job, f"{exc.__class__.__name__}: {exc}")
                elif lost.setdefault(job.night.name, 0) == 0:
                    lost[job.night.name] = 1
                    log.warning("%s: a worker died while it was in flight; scoring it again", job.night.recording)
                    retry.append(job)
                else:
                    yield _failed_row(job, WORKER_DIED)

    def _discard_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

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
    """

    def __init__(self, client) -> None:
        self.client = client

    def __repr__(self) -> str:
        return f"<DaskRunner {self.client.scheduler.address}>"

    @classmethod
    def connect(cls, address: str, timeout_s: float = 20.0) -> "DaskRunner":
        """Connect to the scheduler at ``address`` (e.g. ``tcp://10.0.0.5:8786``)."""
        try:
            from distributed import Client
        except ImportError:
            raise SleepstreamError("--scheduler needs dask.distributed: pip install 'sleepstream[archive]'") from None
        try:
            client = Client(address, timeout=timeout_s)
        except (OSError, TimeoutError, ValueError) as exc:
            raise SleepstreamError(f"--scheduler {address}: cannot reach a Dask scheduler "
                                   f"({exc.__class__.__name__}: {exc})".splitlines()[0]) from None
        return cls(client)

    def __enter__(self) -> "DaskRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def warm(self, weights_dir: str | None = None) -> None:
        """Load and warm the model on every worker now (otherwise each does it with its first night)."""
        self.client.run(warm_model, weights_dir)

    def run(self, jobs: Sequence[NightJob]) -> Iterator[NightRow]:
        """Score ``jobs`` on the cluster; yields each night's row as it finishes."""
        from distributed import as_completed

        run_id = uuid.uuid4().hex[:8]
        futs = {self.client.submit(score_night, job, key=f"sleepstream-night-{job.night.name}-{run_id}",
                                   pure=False, retries=1): job for job in jobs}
        try:
            for fut in as_completed(futs):
                job = futs[fut]
                try:
                    yield fut.result()
                except Exception as exc:  # KilledWorker, or a job the cluster could not run
                    yield _failed_row(job, f"{exc.__class__.__name__}: {exc}".splitlines()[0])
        finally:
            unfinished = [f for f in futs if not f.done()]
            if unfinished:
                self.client.cancel(unfinished)

    def close(self) -> None:
        self.client.close()
