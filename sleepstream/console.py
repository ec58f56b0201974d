"""Terminal helpers for the commands: a Rich progress bar, the metrics tables, and the end of
a live session (its summary, what its outputs lost, printed without hanging on a dead reader).
(Library code never draws; commands do, through these.)"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sleepnet.metrics import Agreement
from sleepnet.stages import STAGES

if TYPE_CHECKING:  # pragma: no cover - typing only
    from scorer.live import LiveSummary


def stderr_console() -> Console:
    """A Rich console on stderr (where progress and messages go; stdout stays for data).

    Returns
    -------
    rich.console.Console
        A new console writing to stderr.
    """
    return Console(stderr=True)


@contextmanager
def progress_bar(quiet: bool = False) -> Iterator[ProgressFn]:
    """A transient Rich progress bar on stderr, one task per description.

    Parameters
    ----------
    quiet : bool
        Draw nothing (the update function then does nothing).

    Yields
    ------
    callable
        ``update(description, done, total)``: adds the task ``description`` on its first
        call, then sets how much of ``total`` is done.
    """
    if quiet:
        yield lambda desc, done, total: None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=stderr_console(), transient=True) as prog:
        tasks: dict[str, int] = {}

        def update(desc: str, done: int, total: int) -> None:
            if desc not in tasks:
                tasks[desc] = prog.add_task(desc, total=total)
            prog.update(tasks[desc], completed=done, total=total)

        yield update


ProgressFn = "Callable[[str, int, int], None]"


def agreement_tables(a: Agreement, title: str = "Agreement") -> list[Table]:
    """The metrics tables of an agreement between true and predicted stages.

    Parameters
    ----------
    a : sleepnet.metrics.Agreement
        The agreement (unscored epochs excluded).
    title : str
        Title of the first table.

    Returns
    -------
    list of rich.table.Table
        Three tables: the summary (epochs, excluded, accuracy, macro-F1, kappa), precision,
        recall, F1 and support per stage, and the confusion matrix (rows true, columns
        predicted).
    """
    summary = Table(title=title, show_header=True)
    for col in ("epochs", "excluded (unscored)", "accuracy", "macro-F1", "kappa"):
        summary.add_column(col, justify="right")
    summary.add_row(str(a.n_epochs), str(a.n_excluded), f"{a.accuracy:.3f}", f"{a.macro_f1:.3f}", f"{a.kappa:.3f}")
    per = Table(title="Per stage", show_header=True)
    for col in ("stage", "precision", "recall", "F1", "support"):
        per.add_column(col, justify="right")
    for s in STAGES:
        per.add_row(s, f"{a.precision[s]:.3f}", f"{a.recall[s]:.3f}", f"{a.f1[s]:.3f}", str(a.support[s]))
    cm = Table(title="Confusion (rows: true, columns: predicted)", show_header=True)
    cm.add_column("true \\ pred")
    for s in STAGES:
        cm.add_column(s, justify="right")
    for s, row in zip(STAGES, a.confusion):
        cm.add_row(s, *(str(v) for v in row))
    return [summary, per, cm]


def print_bounded(console: Console, write: Callable[[Console], None], timeout_s: float = 2.0) -> None:
    """Print what ``write(c)`` prints on ``console`` without hanging on a dead reader:
    rendered to text on a console of its own (same width and colours; the real one would
    write and flush its file), then written by a thread that is given ``timeout_s``.

    Parameters
    ----------
    console : rich.console.Console
        Where it should appear.
    write : callable
        Prints on the console it is given.
    timeout_s : float
        How long a stalled reader may hold it up, s.
    """
    import io

    from scorer.bounded_output import BoundedWriter

    text = Console(file=io.StringIO(), width=console.width, color_system=console.color_system,
                   force_terminal=console.is_terminal, legacy_windows=False)
    write(text)
    out = BoundedWriter(console.file, max_queued=1, name="summary")
    out.offer(text.file.getvalue())
    out.close(timeout_s)


def output_notes(sinks: Sequence[object], log_handlers: Sequence[object] = ()) -> list[str]:
    """What a live session's outputs lost, for its summary: hypnogram rows not written,
    frames not drawn, status and log lines dropped because their reader did not keep up.

    Parameters
    ----------
    sinks : sequence of Sink
        The session's sinks (:attr:`scorer.session.LiveSession.sinks`).
    log_handlers : sequence of scorer.bounded_output.BoundedLogHandler
        The console handlers the session logged through.

    Returns
    -------
    list of str
        One line each; none when nothing was lost.
    """
    from scorer.hypnogram_file import HypnogramFile

    notes = []
    for s in sinks:
        if isinstance(s, HypnogramFile):
            st = s.recording_state()
            notes.append(f"hypnogram rows written this session: {st.rows_written}"
                         + (f", {st.rows_lost} LOST (the file could not be written)" if st.rows_lost else ""))
    dropped = {"screen frames not drawn": sum(getattr(s, "frames_dropped", 0) for s in sinks),
               "status lines dropped": sum(getattr(s, "dropped_lines", 0) for s in sinks),
               "log lines dropped": sum(getattr(h, "dropped", 0) for h in log_handlers)}
    epoch_log = [h for h in logging.getLogger("sleepstream.epochs").handlers if hasattr(h, "dropped")]
    dropped["log lines dropped"] += sum(h.dropped for h in epoch_log)
    lost = [f"{n} {what}" for what, n in dropped.items() if n]
    if lost:
        notes.append("the terminal or reader did not keep up: " + ", ".join(lost) + " (no epoch was held up)")
    return notes


def print_live_summary(console: Console, summary: LiveSummary, out: str | None,
                       notes: Sequence[str] = ()) -> None:
    """The end of a live session: epochs, gaps, losses, latency, the agreement with the truth
    stream when there was one, the hypnogram file and what the outputs lost.

    Parameters
    ----------
    console : rich.console.Console
        Where to print.
    summary : scorer.live.LiveSummary
        How the session went.
    out : str, optional
        The hypnogram file.
    notes : sequence of str
        Lines from :func:`output_notes`.
    """
    lat = summary.latency_percentiles()
    lat_text = (f", latency median {lat['median_ms']:.1f} ms, p95 {lat['p95_ms']:.1f} ms" if lat else "")
    console.print(f"{summary.epochs} epochs ({summary.scored} scored, {summary.unscored} unscored), "
                  f"{summary.gaps} gaps, signal lost {summary.stalls}x{lat_text}")
    a = summary.agreement()
    if a is not None and a.n_epochs:
        for t in agreement_tables(a, title="Agreement with the truth stream"):
            console.print(t)
    if out:
        console.print(f"hypnogram: {out}")
    for note in notes:
        console.print(note)
