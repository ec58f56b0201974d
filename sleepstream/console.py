"""Terminal helpers for the commands: a Rich progress bar and the metrics tables.
(Library code never draws; commands do, through these.)"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sleepnet.metrics import Agreement
from sleepnet.stages import STAGES


def stderr_console() -> Console:
    return Console(stderr=True)


@contextmanager
def progress_bar(quiet: bool = False) -> Iterator["ProgressFn"]:
    """Yields ``update(description, done, total)``; draws nothing when quiet."""
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
