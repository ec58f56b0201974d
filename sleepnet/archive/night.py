"""One night of an archive: score it as ``sleepstream score`` does and return its cohort row.

:func:`score_night` runs in a worker process (local or on a Dask cluster). It reads only
the channel it needs, scores with :func:`sleepnet.batch.score_recording`, writes the same
files as ``sleepstream score --out <out_dir>/<name>_stages.csv`` (stage CSV, and metrics and
confusion when labelled) and, last, ``<name>_night.json``: the night's cohort row. That
file is the mark of a finished night: a later run with the same model id and weights hash
and an unchanged recording reuses the row instead of scoring again (:func:`finished_row`).

Any error of the night (unreadable, truncated, too short, a hypnogram that does not fit,
a file it cannot write) becomes the row's one-line ``error``; nothing is raised, so one bad
file never stops the others. Every file is written whole or not at all
(:func:`sleepnet.io.atomic.atomic_write`).

In a worker process, :func:`worker_model` loads the model once (the row's ``model_loads``
counts this process's loads) and :func:`prepare_worker_process` sets glibc's allocation
thresholds once.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import logging
import math
import os
import platform
import signal
import socket
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import SleepstreamError
from ..io.atomic import write_text_atomic
from .discover import NightInput

log = logging.getLogger(__name__)

NIGHT_FILE_SUFFIX = "_night.json"
STAGES_SUFFIX = "_stages.csv"
STATUS_SCORED, STATUS_REUSED, STATUS_FAILED = "scored", "reused", "failed"
#: Test hook, for the worker-death tests only: "<recording file name>:<marker path>" makes the
#: job of that recording kill its own worker process once (when the marker does not exist
#: yet; it writes the pid there); "<recording file name>:" kills it every time.
TEST_KILL_WORKER_ONCE_ENV = "SLEEPSTREAM_TEST_KILL_WORKER_ONCE"
#: Default per-night time limit (``--night-timeout``): TIMEOUT_FACTOR times the time a night
#: takes at the measured rate, never under TIMEOUT_FLOOR_S. Rate: 0.73 s of CPU for an 8-h
#: 100-Hz EDF+ night of 6.8 MB (benchmarks.archive, docs/benchmarks.md), i.e. 0.11 s per MB of
#: recording file; the file's size stands for the night's length x channels x rate, known
#: without opening the file (a file with more channels than the one read gets more time).
TIMEOUT_S_PER_MB = 0.11
TIMEOUT_FACTOR = 20.0
TIMEOUT_FLOOR_S = 120.0
#: glibc allocation thresholds a worker sets for itself (:func:`set_malloc_thresholds`):
#: the largest values glibc's own dynamic rule reaches (mmap threshold 32 MiB on 64-bit,
#: trim threshold twice that), fixed from the start.
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 2 * MMAP_THRESHOLD_BYTES
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3    # glibc's malloc.h


@dataclass(frozen=True)
class ModelIdentity:
    """Which model scores: its weights folder (None: the default), id and weights hash.

    Parameters
    ----------
    weights_dir : str or None
        The weights folder (resolved), or None for the default model.
    model_id : str
        The model's id.
    weights_sha256 : str
        :func:`weights_sha256` of its weights folder.
    """

    weights_dir: str | None
    model_id: str
    weights_sha256: str


@dataclass(frozen=True)
class NightJob:
    """Everything a worker needs to score one night (picklable; paths absolute).

    :func:`plan_jobs` makes one per night still to score; a runner
    (:mod:`sleepnet.archive.runners`) hands it to :func:`score_night` in a worker process.

    Parameters
    ----------
    night : NightInput
        The recording, its hypnogram and output name.
    out_dir : str
        Folder for the night's files.
    channel : str
        EEG channel to score.
    model : ModelIdentity
        The model every night of the run is scored with.
    torch_threads : int or None
        Torch threads in the worker (None: leave the worker's setting).
    timeout_s : float
        Wall-clock limit for the night once a worker starts it, s (``math.inf``: none); the
        runners enforce it (:mod:`sleepnet.archive.runners`).
    normalized : bool or None
        Whether the signal is per-epoch normalised (each 30-s epoch z-scored, not µV): True
        takes it so (``--normalized``), None recognises it per night
        (:func:`sleepnet.normalised.input_normalisation`). Such a night is scored with the
        normalised quality rules by a level-free model, and refused by any other.
    """

    night: NightInput
    out_dir: str
    channel: str
    model: ModelIdentity
    torch_threads: int | None = None
    timeout_s: float = math.inf
    normalized: bool | None = None

    @property
    def stages_csv(self) -> Path:
        """The night's stage CSV: ``<out_dir>/<name>_stages.csv``."""
        return Path(self.out_dir) / f"{self.night.name}{STAGES_SUFFIX}"

    @property
    def night_file(self) -> Path:
        """The night's finished-row file: ``<out_dir>/<name>_night.json``."""
        return Path(self.out_dir) / f"{self.night.name}{NIGHT_FILE_SUFFIX}"


@dataclass(frozen=True)
class NightRow:
    """One row of the cohort table (durations in s, statistics as in the night's report:
    minutes, % and counts, see :data:`sleepnet.report.sleep_stats.STAT_UNITS`).

    Parameters
    ----------
    night : str
        The night's output name.
    recording : str
        The recording file.
    hypnogram : str, default ""
        The hypnogram file, or empty.
    status : str, default "failed"
        ``scored``, ``reused`` (from an earlier run with the same model) or ``failed``.
    channel : str, default ""
        The channel scored (its label, or the derivation's name).
    sfreq_hz : float, default nan
        Sampling rate, Hz.
    duration_s : float, default nan
        Length of the recording, s.
    epochs : int, default 0
        30-s epochs scored or left unscored.
    epochs_scored : int, default 0
        Epochs given a stage.
    epochs_unscored : int, default 0
        Epochs left unscored.
    unscored_reasons : str, default ""
        ``flag:count`` of the unscored epochs' quality flags, space separated.
    mean_confidence : float, default nan
        Mean confidence of the scored epochs.
    stats : dict of str to float, default {}
        The sleep statistics of the predicted hypnogram, by
        :data:`~sleepnet.report.sleep_stats.STAT_UNITS` key.
    epochs_compared : int, default 0
        Epochs compared with the hypnogram (0 without one).
    accuracy : float, default nan
        Agreement with the hypnogram, 0-1.
    macro_f1 : float, default nan
        Macro-averaged F1 against the hypnogram.
    kappa : float, default nan
        Cohen's kappa against the hypnogram.
    model_id : str, default ""
        The model's id.
    weights_sha256 : str, default ""
        The model's weights hash.
    seconds : float, default nan
        The night's wall time in its worker, s.
    cpu_seconds : float, default nan
        The worker process's CPU time for the night, s.
    worker : str, default ""
        ``host:pid`` of the worker.
    model_loads : int, default 0
        How many times the worker process that scored the night had loaded a model by
        then (1 when it loaded it once for all its nights).
    stages_csv : str, default ""
        The stage CSV written.
    recording_bytes : int, default -1
        Size of the recording file when it was scored (-1: unknown).
    recording_mtime_ns : int, default -1
        Its modification time, ns (-1: unknown).
    hypnogram_bytes : int, default -1
        Size of the hypnogram file (-1: none).
    hypnogram_mtime_ns : int, default -1
        Its modification time, ns (-1: none).
    channel_requested : str, default ""
        The channel the run asked for (:attr:`NightJob.channel`, e.g. an index or another
        spelling of ``channel``); a rerun asking for another scores the night again.
    normalized_requested : bool or None, default None
        The run's :attr:`NightJob.normalized`; a rerun asking otherwise scores the night again.
    error : str, default ""
        One line, failed nights only.
    confusion : list of list of int, optional
        The agreement's confusion matrix (rows true W..REM) for the pooled agreement;
        not a column of the CSV.
    """

    night: str
    recording: str
    hypnogram: str = ""
    status: str = STATUS_FAILED
    channel: str = ""
    sfreq_hz: float = math.nan
    duration_s: float = math.nan
    epochs: int = 0
    epochs_scored: int = 0
    epochs_unscored: int = 0
    unscored_reasons: str = ""
    mean_confidence: float = math.nan
    stats: dict[str, float] = field(default_factory=dict)
    epochs_compared: int = 0
    accuracy: float = math.nan
    macro_f1: float = math.nan
    kappa: float = math.nan
    model_id: str = ""
    weights_sha256: str = ""
    seconds: float = math.nan
    cpu_seconds: float = math.nan
    worker: str = ""
    model_loads: int = 0
    stages_csv: str = ""
    recording_bytes: int = -1
    recording_mtime_ns: int = -1
    hypnogram_bytes: int = -1
    hypnogram_mtime_ns: int = -1
    channel_requested: str = ""
    normalized_requested: bool | None = None
    error: str = ""
    confusion: list[list[int]] | None = None

    @property
    def ok(self) -> bool:
        """True unless the night failed (``scored`` or ``reused``)."""
        return self.status != STATUS_FAILED

    def as_dict(self) -> dict:
        """The row as a dict (what ``<name>_night.json`` holds).

        Returns
        -------
        dict
            Every field by name (``stats`` a dict, ``confusion`` lists).
        """
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> NightRow:
        """The row of :meth:`as_dict`'s form; unknown keys are ignored.

        Parameters
        ----------
        d : dict
            Fields by name, e.g. a ``<name>_night.json`` as :func:`json.load` reads it.

        Returns
        -------
        NightRow
            The row.
        """
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def weights_sha256(weights_dir: str | Path) -> str:
    """sha256 over the files of a weights folder (relative names and contents, sorted).

    Parameters
    ----------
    weights_dir : str or Path
        The weights folder; every file under it counts, sub-folders included.

    Returns
    -------
    str
        The hex digest (64 characters).
    """
    root = Path(weights_dir)
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        h.update(p.relative_to(root).as_posix().encode() + b"\0")
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()


def model_identity(weights_dir: str | Path | None = None) -> ModelIdentity:
    """Load the model once (checking it) and name it: id and weights hash.

    Parameters
    ----------
    weights_dir : str or Path, optional
        The weights folder (None: the default model).

    Returns
    -------
    ModelIdentity
        The model's identity (``weights_dir`` resolved, or None for the default).
    """
    from ..weights import load_model

    model = load_model(weights_dir)
    return ModelIdentity(weights_dir=None if weights_dir is None else str(Path(model.source).resolve()),
                         model_id=model.model_id, weights_sha256=weights_sha256(model.source))


@functools.lru_cache(maxsize=2)
def limit_torch_threads(n_threads: int | None) -> None:
    """One process's torch threads, when its model runs on torch (a CNN-LSTM imports torch
    as it loads); a model that needs no torch never imports it here.

    Parameters
    ----------
    n_threads : int or None
        Torch threads (None or 0: leave torch's setting).
    """
    if n_threads and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n_threads)


@functools.lru_cache(maxsize=2)
def worker_model(weights_dir: str | None):
    """The model, loaded once per worker process (and per weights folder): later calls
    return the same object (:func:`model_loads` counts the loads).

    Parameters
    ----------
    weights_dir : str or None
        The weights folder (None: the default model); the last two folders asked for
        stay loaded in this process.

    Returns
    -------
    StagingModel
        The loaded model (:func:`sleepnet.weights.load_model`).
    """
    from ..weights import load_model

    return load_model(weights_dir)


def model_loads() -> int:
    """How many times this process has loaded a model through :func:`worker_model`.

    Returns
    -------
    int
        The loads (cache misses of :func:`worker_model`).
    """
    return worker_model.cache_info().misses


def set_malloc_thresholds() -> bool:
    """Fix glibc's mmap and trim thresholds (:data:`MMAP_THRESHOLD_BYTES`,
    :data:`TRIM_THRESHOLD_BYTES`) in this process; False (and nothing done) off glibc.

    A night's arrays (tens of MB) then come from the heap and go back to it, instead of
    being mapped and unmapped one by one (a page fault per 4 KiB each time): what glibc's
    dynamic thresholds reach by themselves, but an environment with ``MALLOC_TRIM_THRESHOLD_``
    set (Dask's nannies set 65536) turns that rule off and keeps the 128-KiB default.

    Returns
    -------
    bool
        True when both thresholds were set.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
                    and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    except (OSError, AttributeError):
        return False


@functools.lru_cache(maxsize=1)
def prepare_worker_process() -> bool:
    """Once per worker process (local or Dask), before its first night: glibc's
    allocation thresholds (:func:`set_malloc_thresholds`).

    Returns
    -------
    bool
        Whether they were set (the first call's answer, cached).
    """
    done = set_malloc_thresholds()
    log.debug("worker %d: malloc thresholds %s", os.getpid(), "set" if done else "left (not glibc)")
    return done


def default_night_timeout_s(recording_bytes: int) -> float:
    """The default time limit of a night whose recording file has ``recording_bytes``
    bytes: :data:`TIMEOUT_FACTOR` x :data:`TIMEOUT_S_PER_MB` per MB, at least
    :data:`TIMEOUT_FLOOR_S` (s).

    Parameters
    ----------
    recording_bytes : int
        Size of the recording file, bytes (a negative size counts as 0).

    Returns
    -------
    float
        The limit, s.
    """
    return max(TIMEOUT_FLOOR_S, TIMEOUT_FACTOR * TIMEOUT_S_PER_MB * max(recording_bytes, 0) / 1e6)


@functools.lru_cache(maxsize=2)
def worker_weights_sha256(weights_dir: str | None) -> str:
    """The weights hash of :func:`worker_model`'s folder, computed once per worker process.

    Parameters
    ----------
    weights_dir : str or None
        The folder :func:`worker_model` loads (None: the default model, whose own folder
        is hashed).

    Returns
    -------
    str
        :func:`weights_sha256` of the loaded model's folder.
    """
    return weights_sha256(worker_model(weights_dir).source)


def _file_stamp(path: Path | None) -> tuple[int, int]:
    """(size in bytes, mtime in ns) of a file; (-1, -1) for none or a missing one."""
    if path is None or not path.exists():
        return -1, -1
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def finished_row(job: NightJob) -> NightRow | None:
    """The row of a night an earlier run finished with this model, if its files are all
    there and its recording and hypnogram are unchanged (same size and mtime); else None.

    Parameters
    ----------
    job : NightJob
        The night and the run's model.

    Returns
    -------
    NightRow or None
        The earlier row with status ``reused``, or None when the night must be scored
        (no or unreadable ``_night.json``, a failed row, another model or weights hash,
        another channel or ``normalized`` asked for, a changed recording or hypnogram, or a
        missing stage CSV).
    """
    try:
        row = NightRow.from_dict(json.loads(job.night_file.read_text()))
        stamp = _file_stamp(job.night.recording)
        hyp_stamp = _file_stamp(job.night.hypnogram)
    except (OSError, ValueError, TypeError):
        return None
    same = (row.status != STATUS_FAILED and row.model_id == job.model.model_id
            and row.weights_sha256 == job.model.weights_sha256
            and row.channel_requested == job.channel and row.normalized_requested == job.normalized
            and row.recording == str(job.night.recording)
            and row.hypnogram == (str(job.night.hypnogram) if job.night.hypnogram else "")
            and (row.recording_bytes, row.recording_mtime_ns) == stamp != (-1, -1)
            and (row.hypnogram_bytes, row.hypnogram_mtime_ns) == hyp_stamp
            and job.stages_csv.exists())
    return replace(row, status=STATUS_REUSED) if same else None


def _maybe_die_for_test(night: NightInput) -> None:
    spec = os.environ.get(TEST_KILL_WORKER_ONCE_ENV)
    if not spec:
        return
    name, _, marker = spec.partition(":")
    if night.recording.name != name or (marker and Path(marker).exists()):
        return
    if marker:
        Path(marker).write_text(str(os.getpid()))
    os.kill(os.getpid(), signal.SIGKILL)


def _reasons(flags: list[tuple[str, ...]]) -> str:
    c = Counter(f for fl in flags for f in (fl or ("none",)))
    return " ".join(f"{k}:{v}" for k, v in sorted(c.items()))


def score_night(job: NightJob) -> NightRow:
    """Score one night and write its files; any error of the night goes into the row.

    Parameters
    ----------
    job : NightJob
        The night, where its files go, the channel and the model.

    Returns
    -------
    NightRow
        Status ``scored`` with its figures, or ``failed`` with a one-line ``error``.
    """
    t0, c0 = time.perf_counter(), time.process_time()
    night = job.night
    base = NightRow(night=night.name, recording=str(night.recording),
                    hypnogram=str(night.hypnogram) if night.hypnogram else "",
                    model_id=job.model.model_id, weights_sha256=job.model.weights_sha256,
                    channel_requested=job.channel, normalized_requested=job.normalized,
                    worker=f"{socket.gethostname()}:{os.getpid()}")
    prepare_worker_process()
    try:
        _maybe_die_for_test(night)
        row = _score(job, base)
    except SleepstreamError as exc:
        row = replace(base, error=str(exc))
    except Exception as exc:  # a bug or a library's surprise: still one line, the rest goes on
        log.exception("%s: unexpected error", night.recording)
        row = replace(base, error=f"{night.recording}: {exc.__class__.__name__}: {exc}".splitlines()[0])
    row = replace(row, seconds=round(time.perf_counter() - t0, 4), cpu_seconds=round(time.process_time() - c0, 4),
                  model_loads=model_loads())
    if row.ok:
        try:
            write_text_atomic(job.night_file, json.dumps(row.as_dict(), indent=1, default=_json_default) + "\n")
        except SleepstreamError as exc:
            row = replace(row, status=STATUS_FAILED, error=str(exc))
    return row


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    raise TypeError(type(o))


def _score(job: NightJob, base: NightRow) -> NightRow:
    from ..batch import score_recording
    from ..io.exports import write_metrics, write_stage_csv
    from ..io.hypnograms import read_hypnogram
    from ..io.recordings import read_recording, with_labels
    from ..metrics import agreement
    from ..normalised import SCALE_FREE_MODEL, input_normalisation, is_level_free, quality_thresholds
    from ..report.sleep_stats import sleep_statistics

    night = job.night
    if night.problem:
        raise SleepstreamError(f"{night.recording}: {night.problem}")
    stamp, hyp_stamp = _file_stamp(night.recording), _file_stamp(night.hypnogram)
    rec = read_recording(night.recording, job.channel)
    if night.hypnogram is not None:
        rec = with_labels(rec, read_hypnogram(night.hypnogram, rec.n_epochs))
    if rec.n_epochs == 0:
        raise SleepstreamError(f"{rec.source}: shorter than one 30-s epoch ({rec.duration_s:.1f} s)")
    model = worker_model(job.model.weights_dir)
    limit_torch_threads(job.torch_threads)
    if worker_weights_sha256(job.model.weights_dir) != job.model.weights_sha256:
        raise SleepstreamError(f"{night.recording}: the worker's weights ({model.source}, sha256 "
                               f"{worker_weights_sha256(job.model.weights_dir)[:12]}) are not the run's "
                               f"({job.model.weights_sha256[:12]}); give every worker the same weights (a weights "
                               "folder on a path they all share)")
    normalised_by = input_normalisation(rec.eeg_uv, rec.sfreq, job.normalized, flag="normalized=True")
    if normalised_by is not None and not is_level_free(model):
        why = "every epoch's SD is 1" if normalised_by == "detected" else normalised_by
        raise SleepstreamError(f"{night.recording}: per-epoch normalised signal ({why}), which {model.model_id} "
                               f"cannot score (it reads absolute band powers); score such nights with the "
                               f"scale-free model {SCALE_FREE_MODEL}")
    preds = score_recording(rec, model, quality_thresholds(normalised_by is not None))
    write_stage_csv(job.stages_csv, preds)
    codes = np.array([p.stage_code for p in preds])
    scored = [p for p in preds if p.scored]
    row = replace(
        base, status=STATUS_SCORED, channel=rec.channel, sfreq_hz=rec.sfreq,
        duration_s=round(rec.duration_s, 3), epochs=len(preds), epochs_scored=len(scored),
        epochs_unscored=len(preds) - len(scored),
        unscored_reasons=_reasons([p.flags for p in preds if not p.scored]),
        mean_confidence=float(np.mean([p.confidence for p in scored])) if scored else math.nan,
        stats={k: float(v) for k, v in sleep_statistics(codes).as_dict().items()},
        stages_csv=str(job.stages_csv), recording_bytes=stamp[0], recording_mtime_ns=stamp[1],
        hypnogram_bytes=hyp_stamp[0], hypnogram_mtime_ns=hyp_stamp[1],
    )
    if rec.labels is not None:
        a = agreement(rec.labels[:len(preds)], codes)
        write_metrics(job.stages_csv.with_suffix(""), a,
                      {"recording": rec.source, "model_id": model.model_id,
                       "hypnogram": str(night.hypnogram) if night.hypnogram else None})
        row = replace(row, epochs_compared=a.n_epochs, accuracy=a.accuracy, macro_f1=a.macro_f1,
                      kappa=a.kappa, confusion=a.confusion)
    return row


def plan_jobs(nights: list[NightInput], out_dir: str | Path, channel: str, model: ModelIdentity,
              torch_threads: int | None = None, force: bool = False,
              night_timeout_s: float | None = None,
              normalized: bool | None = None) -> tuple[list[NightJob], list[NightRow]]:
    """Split an archive into the nights to score and the rows of nights already scored.

    Parameters
    ----------
    nights : list of NightInput
        The archive (:func:`sleepnet.archive.discover.find_nights`).
    out_dir : str or Path
        The output folder (absolute paths are kept in the jobs).
    channel : str
        EEG channel to score.
    model : ModelIdentity
        The model of this run (:func:`model_identity`).
    torch_threads : int or None
        Torch threads per worker.
    force : bool
        Score every night again, even one finished with the same model.
    night_timeout_s : float or None
        Each night's time limit once a worker starts it, s: None for the default
        (:func:`default_night_timeout_s` of its file's size), ``0`` or ``math.inf`` for none.
    normalized : bool or None
        True: every night's signal is per-epoch normalised; None: recognised per night
        (:attr:`NightJob.normalized`).

    Returns
    -------
    (list of NightJob, list of NightRow)
        Jobs to run, and the ``reused`` rows of nights an earlier run finished with the
        same model id, weights hash, channel and ``normalized`` asked for, recording and
        hypnogram (:func:`finished_row`).
    """
    out = str(Path(out_dir).resolve())
    jobs, reused = [], []
    for night in nights:
        if night_timeout_s is None:
            limit = default_night_timeout_s(_file_stamp(night.recording)[0])
        else:
            limit = night_timeout_s if night_timeout_s > 0 else math.inf
        job = NightJob(night=night, out_dir=out, channel=channel, model=model, torch_threads=torch_threads,
                       timeout_s=limit, normalized=normalized)
        row = None if force else finished_row(job)
        if row is None:
            jobs.append(job)
        else:
            reused.append(row)
    return jobs, reused
