"""The cohort table: one row per night, and the agreement pooled over the labelled nights.

``cohort.csv`` columns, in order (:data:`COLUMNS`): night, recording, hypnogram, status
(``scored``, ``reused`` from an earlier run with the same model, ``failed``), channel,
sfreq_hz, duration_s, epochs, epochs_scored, epochs_unscored, unscored_reasons
(``flag:count`` of the unscored epochs), mean_confidence (of the scored epochs), the sleep
statistics of the report (:data:`sleepnet.report.sleep_stats.STAT_UNITS`: TIB ... N_awakenings,
minutes / % / counts) of the predicted hypnogram, epochs_compared, accuracy, macro_f1 and
kappa against the hypnogram (empty without one), model_id, weights_sha256, seconds (the
night's wall time in its worker), cpu_seconds (the worker process's CPU time for it), worker
(host:pid), stages_csv and error (one line, failed
nights only). ``cohort.parquet`` holds the same table when pyarrow is importable.
"""
from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path
from typing import Sequence

import numpy as np

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
         "cpu_seconds", "worker", "stages_csv", "error")
#: Columns of cohort.csv, in order.
COLUMNS: tuple[str, ...] = (*_HEAD, *STAT_UNITS, *_TAIL)


def _flat(row: NightRow) -> dict:
    d = row.as_dict()
    stats = d.pop("stats") or {}
    return {c: stats.get(c, math.nan) if c in STAT_UNITS else d[c] for c in COLUMNS}


def _cell(v) -> str:
    if isinstance(v, float):
        return "" if v != v else f"{v:.6g}"
    return str(v)


def write_cohort(out_dir: Path, rows: Sequence[NightRow]) -> list[Path]:
    """Write ``cohort.csv`` (and ``cohort.parquet`` when pyarrow is importable).

    Returns
    -------
    list of Path
        The files written.
    """
    out_dir = Path(out_dir)
    flat = [_flat(r) for r in rows]
    path = out_dir / COHORT_CSV
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for d in flat:
            w.writerow([_cell(d[c]) for c in COLUMNS])
    tmp.replace(path)
    written = [path]
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        log.info("pyarrow is not importable: no %s", COHORT_PARQUET)
        return written
    table = pa.Table.from_pylist(flat) if flat else pa.table({c: pa.array([], pa.string()) for c in COLUMNS})
    pq.write_table(table, out_dir / COHORT_PARQUET)
    written.append(out_dir / COHORT_PARQUET)
    return written


def read_cohort(path: Path) -> list[dict[str, str]]:
    """The rows of a ``cohort.csv`` as text."""
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def pooled_agreement(rows: Sequence[NightRow]) -> tuple[Agreement | None, int]:
    """Agreement over every epoch of every labelled night (their confusions summed), and
    the number of nights pooled; (None, 0) without a labelled night."""
    cms = [np.asarray(r.confusion, dtype=np.int64) for r in rows if r.ok and r.confusion is not None]
    if not cms:
        return None, 0
    cm = sum(cms)
    true = np.repeat(np.repeat(np.arange(N_STAGES), N_STAGES), cm.reshape(-1))
    pred = np.repeat(np.tile(np.arange(N_STAGES), N_STAGES), cm.reshape(-1))
    return agreement(true, pred), len(cms)


def write_pooled(out_dir: Path, rows: Sequence[NightRow]) -> Path | None:
    """``cohort_agreement.json``: the pooled agreement and the nights it pools (None when
    no night is labelled)."""
    a, n = pooled_agreement(rows)
    if a is None:
        return None
    excluded = sum(r.epochs - r.epochs_compared for r in rows if r.ok and r.confusion is not None)
    body = {"nights": n, **a.as_dict(), "n_excluded": int(excluded)}
    path = Path(out_dir) / POOLED_JSON
    path.write_text(json.dumps(body, indent=2) + "\n")
    return path
