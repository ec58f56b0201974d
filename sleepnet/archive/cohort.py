"""The cohort table: one row per night, and the agreement pooled over the labelled nights.

``cohort.csv`` columns, in order (:data:`COLUMNS`): night, recording, hypnogram, status
(``scored``, ``reused`` from an earlier run with the same model, ``failed``), channel,
sfreq_hz, duration_s, epochs, epochs_scored, epochs_unscored, unscored_reasons
(``flag:count`` of the unscored epochs), mean_confidence (of the scored epochs), the sleep
statistics of the report (:data:`sleepnet.report.sleep_stats.STAT_UNITS`: TIB ... N_awakenings,
minutes / % / counts) of the predicted hypnogram, epochs_compared, accuracy, macro_f1 and
kappa against the hypnogram (empty without one), model_id, weights_sha256, seconds (the
night's wall time in its worker), cpu_seconds (the worker process's CPU time for it), worker
(host:pid), model_loads (the model loads of that worker process so far: 1 when it loaded
the model once for all its nights), stages_csv and error (one line, failed nights only).
``cohort.parquet`` holds the same table when pyarrow is importable.

Every file here is written whole or not at all (:func:`sleepnet.io.atomic.atomic_write`):
a full disk leaves the previous table in place and is one
:class:`~sleepnet.errors.OutputWriteError`. Text cells of ``cohort.csv`` that a spreadsheet
would take for a formula (a night named ``=HYPERLINK(...)``, an error message starting with
``-``) get a leading apostrophe (:func:`sleepnet.io.exports.spreadsheet_safe`); numbers stay
numbers; :func:`read_cohort` undoes it. ``cohort.parquet`` keeps the text as it is (typed
columns, no formulas).
"""
from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import OutputWriteError
from ..io.atomic import atomic_write, write_text_atomic
from ..io.exports import spreadsheet_safe, spreadsheet_unescape
from ..metrics import Agreement, agreement
from ..report.sleep_stats import STAT_UNITS
from ..stages import N_STAGES
from .night import NightRow

log = logging.getLogger(__name__)

COHORT_CSV = "cohort.csv"
COHORT_PARQUET = "cohort.parquet"
POOLED_JSON = "cohort_agreement.json"
_HEAD = ("night", "recording", "hypnogram", "status", "channel", "sfreq_hz", "duration_s", "epochs",
         "epochs_scored", "epochs_unscored", "unscored_reasons", "mean_confidence")
_TAIL = ("epochs_compared", "accuracy", "macro_f1", "kappa", "model_id", "weights_sha256", "seconds",
         "cpu_seconds", "worker", "model_loads", "stages_csv", "error")
#: Columns of cohort.csv, in order.
COLUMNS: tuple[str, ...] = (*_HEAD, *STAT_UNITS, *_TAIL)


def _flat(row: NightRow) -> dict:
    d = row.as_dict()
    stats = d.pop("stats") or {}
    return {c: stats.get(c, math.nan) if c in STAT_UNITS else d[c] for c in COLUMNS}


def _cell(v) -> str:
    """A cohort.csv cell: numbers as numbers (NaN empty), text made spreadsheet-safe."""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return "" if v != v else f"{v:.6g}"
    if isinstance(v, int):
        return str(v)
    return spreadsheet_safe(str(v))


def write_cohort(out_dir: Path, rows: Sequence[NightRow]) -> list[Path]:
    """Write ``cohort.csv`` (and ``cohort.parquet`` when pyarrow is importable), each whole
    or not at all.

    Parameters
    ----------
    out_dir : Path
        The run's output folder (it must exist).
    rows : sequence of NightRow
        One row per night, in table order; the statistics fill their own columns
        (:data:`COLUMNS`).

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    OutputWriteError
        A file could not be written (a full disk, an unwritable folder); the previous
        file stays as it was.
    """
    out_dir = Path(out_dir)
    flat = [_flat(r) for r in rows]
    path = out_dir / COHORT_CSV
    with atomic_write(path, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for d in flat:
            w.writerow([_cell(d[c]) for c in COLUMNS])
    written = [path]
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        log.info("pyarrow is not importable: no %s", COHORT_PARQUET)
        return written
    table = pa.Table.from_pylist(flat) if flat else pa.table({c: pa.array([], pa.string()) for c in COLUMNS})
    try:
        with atomic_write(out_dir / COHORT_PARQUET, "wb") as fh:
            pq.write_table(table, fh)
    except pa.ArrowException as exc:   # pyarrow's own wrapper of a failed write
        reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise OutputWriteError(f"{out_dir / COHORT_PARQUET}: cannot write ({reason}); the previous file, if any, "
                               "is unchanged") from None
    written.append(out_dir / COHORT_PARQUET)
    return written


def read_cohort(path: Path) -> list[dict[str, str]]:
    """The rows of a ``cohort.csv`` as text (the spreadsheet escapes undone:
    :func:`sleepnet.io.exports.spreadsheet_unescape`).

    Parameters
    ----------
    path : Path
        A ``cohort.csv`` written by :func:`write_cohort`.

    Returns
    -------
    list of dict of str to str
        One dict per night, keyed by column name; numbers stay text (NaN as an empty cell).
    """
    with open(path, newline="") as fh:
        return [{k: spreadsheet_unescape(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def pooled_agreement(rows: Sequence[NightRow]) -> tuple[Agreement | None, int]:
    """Agreement over every epoch of every labelled night (their confusions summed), and
    the number of nights pooled; (None, 0) without a labelled night.

    Parameters
    ----------
    rows : sequence of NightRow
        The nights; those failed or without a confusion matrix are left out.

    Returns
    -------
    agreement : Agreement or None
        The pooled agreement, or None without a labelled night.
    n_nights : int
        The nights pooled.
    """
    cms = [np.asarray(r.confusion, dtype=np.int64) for r in rows if r.ok and r.confusion is not None]
    if not cms:
        return None, 0
    cm = sum(cms)
    true = np.repeat(np.repeat(np.arange(N_STAGES), N_STAGES), cm.reshape(-1))
    pred = np.repeat(np.tile(np.arange(N_STAGES), N_STAGES), cm.reshape(-1))
    return agreement(true, pred), len(cms)


def write_pooled(out_dir: Path, rows: Sequence[NightRow]) -> Path | None:
    """``cohort_agreement.json``: the pooled agreement and the nights it pools (None when
    no night is labelled), written whole or not at all.

    Beside the agreement, ``nights`` (how many are pooled) and ``n_excluded`` (epochs of
    those nights not compared).

    Parameters
    ----------
    out_dir : Path
        The run's output folder.
    rows : sequence of NightRow
        The nights (:func:`pooled_agreement`).

    Returns
    -------
    Path or None
        The file written, or None when no night is labelled (nothing written).

    Raises
    ------
    OutputWriteError
        It could not be written (the previous file, if any, is unchanged).
    """
    a, n = pooled_agreement(rows)
    if a is None:
        return None
    excluded = sum(r.epochs - r.epochs_compared for r in rows if r.ok and r.confusion is not None)
    body = {"nights": n, **a.as_dict(), "n_excluded": int(excluded)}
    path = Path(out_dir) / POOLED_JSON
    write_text_atomic(path, json.dumps(body, indent=2) + "\n")
    return path
