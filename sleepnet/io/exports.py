"""Files the batch commands write: per-epoch stage CSV, metrics JSON, confusion CSV."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ..errors import SleepstreamError
from ..metrics import Agreement
from ..stages import EPOCH_S, STAGES

if TYPE_CHECKING:  # torch only where scoring happens: checking --out must stay light
    from ..predictions import StagePrediction

STAGE_CSV_COLUMNS = ("epoch", "onset_s", "stage", *(f"p_{s}" for s in STAGES), "confidence", "flags")
FLAG_SEPARATOR = "|"


def _fmt(v: float) -> str:
    return "" if v != v else f"{v:.6f}"  # NaN -> empty cell


def check_writable(path: Path) -> None:
    """Fail early, with one line, when ``path`` cannot be written."""
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise SleepstreamError(f"{path}: folder {parent} does not exist")
    try:
        with open(path, "a"):
            pass
    except OSError as exc:
        raise SleepstreamError(f"{path}: cannot write ({exc.strerror})") from None


def write_stage_csv(path: Path, preds: Sequence[StagePrediction], epoch_s: float = EPOCH_S) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(STAGE_CSV_COLUMNS)
        for p in preds:
            w.writerow([p.epoch, f"{p.epoch * epoch_s:.1f}", p.stage, *(_fmt(v) for v in p.probabilities),
                        _fmt(p.confidence), FLAG_SEPARATOR.join(p.flags)])


def write_metrics(stem: Path, agreement: Agreement, extra: dict | None = None) -> tuple[Path, Path]:
    """``<stem>_metrics.json`` and ``<stem>_confusion.csv``."""
    mpath = stem.with_name(stem.name + "_metrics.json")
    cpath = stem.with_name(stem.name + "_confusion.csv")
    body = {**(extra or {}), **agreement.as_dict()}
    mpath.write_text(json.dumps(body, indent=2) + "\n")
    with open(cpath, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["true\\pred", *STAGES])
        for s, row in zip(STAGES, agreement.confusion):
            w.writerow([s, *row])
    return mpath, cpath
