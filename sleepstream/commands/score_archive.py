"""`sleepstream score` over many recordings: the archive path of the score command.

The work is in :mod:`sleepnet.archive`; this module chooses the runner (local processes,
or a Dask cluster with ``--scheduler``), draws the progress bar over nights and prints
the summary. Exit codes: 0 all nights scored (or reused), 1 some nights failed (each with
its one-line error here and in ``cohort.csv``), 2 a user error before any night ran, 130
interrupted (what finished is kept: its files and its rows in ``cohort.csv``). An output
that is one of the inputs is refused before anything is written, and a ``cohort.csv`` that
cannot be written (a full disk) is one line and exit 2, the previous table left in place.
"""
from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

from sleepnet.errors import SleepstreamError

EXIT_SOME_FAILED = 1
EXIT_INTERRUPTED = 130
MAX_ERRORS_LISTED = 20
#: Nights scale over worker processes, one core each (torch threads in one process would
#: compete with the other workers for the same cores).
TORCH_THREADS_PER_WORKER = 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The score command's options for many recordings.

    Parameters
    ----------
    p : argparse.ArgumentParser
        The score command's parser: gets the group ``--jobs``, ``--scheduler``, ``--force``
        and ``--night-timeout``.
    """
    g = p.add_argument_group("many recordings (an archive)")
    g.add_argument("--jobs", type=int, metavar="N", help="local worker processes (default: the machine's cores)")
    g.add_argument("--scheduler", metavar="ADDRESS",
                   help="score on an existing Dask cluster (needs sleepstream[archive]), e.g. tls://10.0.0.5:8786 "
                        "with Dask's TLS settings, or tcp://127.0.0.1:8786 through an SSH tunnel: a scheduler runs "
                        "any code sent to it, never leave a plain tcp:// one open on a shared network "
                        "(docs/tutorials/archives.md, Security)")
    g.add_argument("--force", action="store_true",
                   help="score again nights already scored with the same model, weights, --channel and --normalized")
    g.add_argument("--night-timeout", type=float, metavar="S",
                   help="fail a night still running S seconds after a worker started it (its worker is killed, "
                        "locally, or restarted through its Dask nanny; the other nights go on); 0: no limit "
                        "(default: 20x the measured time for the night's file size, at least 120 s)")


def wanted(args: argparse.Namespace) -> bool:
    """Whether the score command's inputs and options ask for the archive path.

    Parameters
    ----------
    args : argparse.Namespace
        The score command's options (``recording``, ``out``, ``scheduler``).

    Returns
    -------
    bool
        True for several recordings, a folder, a glob or an @list, ``--out`` an existing
        folder, or ``--scheduler``.
    """
    from sleepnet.archive import is_many

    return (len(args.recording) > 1 or any(is_many(r) for r in args.recording)
            or bool(args.out and Path(args.out).is_dir()) or bool(args.scheduler))


def _out_dir(out: str | None) -> Path:
    if not out:
        raise SleepstreamError("scoring an archive (several recordings, a folder, a glob or an @list) needs --out DIR, "
                               "the folder for the nights' files and cohort.csv")
    d = Path(out)
    if d.exists() and not d.is_dir():
        raise SleepstreamError(f"--out {d}: is a file; with several recordings --out names a folder")
    try:
        d.mkdir(parents=True, exist_ok=True)
        probe = d / ".sleepstream-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise SleepstreamError(f"--out {d}: cannot write there ({exc.strerror or exc})") from None
    return d


def _refuse_inputs_as_outputs(nights, out: str | None, inputs: list[str]) -> None:
    """Refuse (one line, nothing written) an output of the run that is one of its inputs:
    a recording, a hypnogram or an @list that the cohort table or a night's files would
    overwrite."""
    from sleepnet.archive.cohort import COHORT_CSV, COHORT_PARQUET, POOLED_JSON
    from sleepnet.archive.night import NIGHT_FILE_SUFFIX, STAGES_SUFFIX
    from sleepnet.io.exports import metrics_paths, refuse_overwriting_inputs

    if not out:
        return
    d = Path(out)
    outputs = [(f"--out {d} (its {name})", d / name) for name in (COHORT_CSV, COHORT_PARQUET, POOLED_JSON)]
    for n in nights:
        stages = d / f"{n.name}{STAGES_SUFFIX}"
        for p in (stages, *metrics_paths(stages.with_suffix("")), d / f"{n.name}{NIGHT_FILE_SUFFIX}"):
            outputs.append((f"--out {d} (night {n.name}'s {p.name})", p))
    ins = [("the recording", n.recording) for n in nights] + [("the hypnogram", n.hypnogram) for n in nights]
    ins += [("the list", Path(spec[1:])) for spec in inputs if spec.startswith("@")]
    refuse_overwriting_inputs(outputs, ins)


def run(args: argparse.Namespace) -> int:
    """Score many recordings (locally or on a Dask cluster) and write ``cohort.csv``.

    Parameters
    ----------
    args : argparse.Namespace
        The score command's options, with those of :func:`add_arguments`.

    Returns
    -------
    int
        0 when all nights were scored (or reused), 1 (``EXIT_SOME_FAILED``) when some
        failed, 130 (``EXIT_INTERRUPTED``) on Ctrl-C (what finished is kept).

    Raises
    ------
    SleepstreamError
        A user error before any night ran (``--out`` missing, a file or one of the inputs,
        ``--jobs`` or ``--night-timeout`` out of range, inputs that cannot be found), or a
        ``cohort.csv`` that cannot be written (:class:`sleepnet.errors.OutputWriteError`).
    """
    from sleepnet.archive import (
        DaskRunner,
        LocalRunner,
        find_nights,
        model_identity,
        plan_jobs,
        write_cohort,
        write_pooled,
    )
    from sleepnet.archive.cohort import pooled_agreement
    from sleepnet.archive.night import finished_row
    from sleepnet.errors import OutputWriteError

    if args.night_timeout is not None and not args.night_timeout >= 0:
        raise SleepstreamError(f"--night-timeout must be 0 (no limit) or a positive number of seconds, "
                               f"got {args.night_timeout:g}")
    if args.jobs is not None and args.jobs < 1:     # before anything is made on disk
        raise SleepstreamError(f"--jobs must be at least 1, got {args.jobs}")
    nights = find_nights(args.recording, args.hypnogram)
    _refuse_inputs_as_outputs(nights, args.out, args.recording)
    out = _out_dir(args.out)
    jobs = args.jobs or os.cpu_count() or 1
    model = model_identity(args.weights)
    todo, reused = plan_jobs(nights, out, args.channel, model, torch_threads=TORCH_THREADS_PER_WORKER,
                             force=args.force, night_timeout_s=args.night_timeout,
                             normalized=True if args.normalized else None)
    if args.scheduler:
        runner = DaskRunner.connect(args.scheduler)
    else:
        runner = LocalRunner(max(1, min(jobs, len(todo))), model.weights_dir, torch_threads=TORCH_THREADS_PER_WORKER)
    order = {n.name: i for i, n in enumerate(nights)}
    rows = list(reused)
    interrupted = False
    try:
        with runner, _NightProgress(len(nights), len(reused), args.quiet) as progress:
            finishing = runner.run(todo)
            try:
                for row in finishing:
                    rows.append(row)
                    progress.night_done(row.ok)
            finally:
                finishing.close()  # cancels what a cluster has not finished, before the runner closes
    except KeyboardInterrupt:
        interrupted = True
        got = {r.night for r in rows}
        # A night may have finished in its worker (its files complete) as Ctrl-C came.
        rows += [replace(r, status="scored") for r in map(finished_row, (j for j in todo if j.night.name not in got))
                 if r is not None]
    rows.sort(key=lambda r: order.get(r.night, len(order)))
    try:
        written = write_cohort(out, rows)
        pooled_path = write_pooled(out, rows)
    except OutputWriteError as exc:
        raise OutputWriteError(f"{exc}; each finished night's own files are kept in {out}: run the same command "
                               "again to write the table") from None
    failed = [r for r in rows if not r.ok]
    n_scored = sum(r.status == "scored" for r in rows)
    from rich.console import Console

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    if not args.quiet:
        con = Console(highlight=False, soft_wrap=True)
        where = ("" if not todo else f" on the Dask cluster at {args.scheduler}" if args.scheduler
                 else f" on {runner.workers} local worker{'s' if runner.workers > 1 else ''}")
        reused_txt = f", {len(reused)} reused (already scored with {model.model_id})" if reused else ""
        not_started = f", {len(nights) - len(rows)} not started" if interrupted else ""
        con.print(f"{len(nights)} nights{where}: {n_scored} scored{reused_txt}, {len(failed)} failed{not_started}"
                  f" -> {written[0]}{' (+ parquet)' if len(written) > 1 else ''}")
        a, n_pooled = pooled_agreement(rows)
        if a is not None:
            from sleepstream.console import agreement_tables

            con.print(agreement_tables(a, title=f"Pooled agreement over {n_pooled} labelled nights")[0])
            con.print(f"pooled agreement: {pooled_path}")
    for r in failed[:MAX_ERRORS_LISTED]:
        err.print(f"failed: {r.error}", markup=False)
    if len(failed) > MAX_ERRORS_LISTED:
        err.print(f"... and {len(failed) - MAX_ERRORS_LISTED} more failed nights: see {written[0]}", markup=False)
    if interrupted:
        err.print(f"interrupted: {len(rows)} finished nights kept in {written[0]}; run the same command "
                  "again to score the rest", markup=False)
        return EXIT_INTERRUPTED
    return EXIT_SOME_FAILED if failed else 0


class _NightProgress:
    """A Rich progress bar over nights: done of total, failed, nights per minute, time left."""

    def __init__(self, total: int, already: int, quiet: bool) -> None:
        self.total, self.done, self.failed, self.quiet = total, already, 0, quiet
        self.already = already
        self._t0 = time.perf_counter()
        self._progress = None

    def __enter__(self) -> _NightProgress:
        if self.quiet:
            return self
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from sleepstream.console import stderr_console

        self._progress = Progress(TextColumn("nights"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("[red]{task.fields[failed]} failed[/]"),
                                  TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[left]}"),
                                  TimeElapsedColumn(), console=stderr_console(), transient=True)
        self._progress.__enter__()
        self._task = self._progress.add_task("nights", total=self.total, completed=self.done,
                                             failed=0, rate="", left="")
        return self

    def night_done(self, ok: bool) -> None:
        self.done += 1
        self.failed += not ok
        if self._progress is None:
            return
        ran = self.done - self.already
        per_min = ran / max(time.perf_counter() - self._t0, 1e-9) * 60.0
        left_s = (self.total - self.done) / per_min * 60.0 if per_min > 0 else float("nan")
        self._progress.update(self._task, completed=self.done, failed=self.failed,
                              rate=f"{per_min:.1f} nights/min",
                              left=f"~{_fmt_s(left_s)} left" if self.done < self.total else "")

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)


def _fmt_s(s: float) -> str:
    if s != s:
        return "?"
    m, sec = divmod(int(round(s)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"
