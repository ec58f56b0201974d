"""Files the batch commands write: per-epoch stage CSV, metrics JSON, confusion CSV.

Each is written whole or not at all (:func:`sleepnet.io.atomic.atomic_write`: a full disk
leaves the previous file in place and is one :class:`~sleepnet.errors.OutputWriteError`),
and the text cells of the CSV files are made safe for spreadsheets
(:func:`spreadsheet_safe`).
"""
from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import SleepstreamError
from ..metrics import Agreement
from ..stages import EPOCH_S, STAGES
from .atomic import atomic_write, write_text_atomic

if TYPE_CHECKING:  # torch only where scoring happens: checking --out must stay light
    from ..predictions import StagePrediction

STAGE_CSV_COLUMNS = ("epoch", "onset_s", "stage", *(f"p_{s}" for s in STAGES), "confidence", "flags")
FLAG_SEPARATOR = "|"


#: A text cell starting with one of these is a formula to a spreadsheet (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _fmt(v: float) -> str:
    return "" if v != v else f"{v:.6f}"  # NaN -> empty cell


def spreadsheet_safe(text: str) -> str:
    """A text cell a spreadsheet shows as text: one starting with ``= + - @``, a tab or a
    carriage return (after any apostrophes) gets a leading apostrophe, OWASP's advice
    against CSV injection; :func:`spreadsheet_unescape` undoes it exactly. Only for text:
    numbers are written as numbers (a negative number stays one).

    Parameters
    ----------
    text : str
        The cell's text.

    Returns
    -------
    str
        ``text``, with a leading apostrophe where a spreadsheet would read a formula.
    """
    return "'" + text if text.lstrip("'").startswith(FORMULA_STARTS) else text


def spreadsheet_unescape(cell: str) -> str:
    """The text :func:`spreadsheet_safe` was given for ``cell``.

    Parameters
    ----------
    cell : str
        A text cell as written.

    Returns
    -------
    str
        The cell without the apostrophe :func:`spreadsheet_safe` added, if it added one.
    """
    return cell[1:] if cell.startswith("'") and cell.lstrip("'").startswith(FORMULA_STARTS) else cell


def metrics_paths(stem: Path) -> tuple[Path, Path]:
    """``<stem>_metrics.json`` and ``<stem>_confusion.csv``: where :func:`write_metrics` writes.

    Parameters
    ----------
    stem : Path
        The output path without the suffixes.

    Returns
    -------
    metrics : Path
        ``<stem>_metrics.json``.
    confusion : Path
        ``<stem>_confusion.csv``.
    """
    return stem.with_name(stem.name + "_metrics.json"), stem.with_name(stem.name + "_confusion.csv")


def check_writable(path: Path) -> None:
    """Fail early, with one line, when ``path`` cannot be written (its folder is missing or
    unwritable, or it is a folder); creates nothing that stays.

    Parameters
    ----------
    path : Path
        The file that will be written.

    Raises
    ------
    SleepstreamError
        One line: the folder is missing, ``path`` is a folder, or a probe file cannot be
        created there.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise SleepstreamError(f"{path}: folder {parent} does not exist")
    if path.is_dir():
        raise SleepstreamError(f"{path}: is a folder, not a file")
    probe = parent / f".{path.name}.{os.getpid()}.write-test"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        os.unlink(probe)
    except OSError as exc:
        raise SleepstreamError(f"{path}: cannot write ({exc.strerror or exc})") from None


def refuse_overwriting_inputs(outputs: Iterable[tuple[str, Path]], inputs: Iterable[tuple[str, Path | None]]) -> None:
    """Refuse outputs that are inputs: the same path once resolved (symbolic links
    followed), or the same file under another name (a hard link: same device and inode).

    Parameters
    ----------
    outputs : iterable of (str, Path)
        What will be written, each with how to name it in the message (e.g. ``"--out x.csv"``).
    inputs : iterable of (str, Path or None)
        What is read, each with its role (``"the recording"``); None is skipped.

    Raises
    ------
    SleepstreamError
        An output is one of the inputs (nothing has been written).
    """
    by_path: dict[Path, tuple[str, Path]] = {}
    by_inode: dict[tuple[int, int], tuple[str, Path]] = {}
    for role, path in inputs:
        if path is None:
            continue
        by_path.setdefault(Path(path).resolve(), (role, Path(path)))
        try:
            st = os.stat(path)
        except OSError:
            continue
        by_inode.setdefault((st.st_dev, st.st_ino), (role, Path(path)))
    for label, out in outputs:
        hit = by_path.get(Path(out).resolve())
        if hit is None:
            try:
                st = os.stat(out)
            except OSError:
                continue
            hit = by_inode.get((st.st_dev, st.st_ino))
        if hit is not None:
            role, path = hit
            raise SleepstreamError(f"{label}: is {role} {path} (the same file); writing it would overwrite an input: "
                                   "choose another output")


def write_stage_csv(path: Path, preds: Sequence[StagePrediction], epoch_s: float = EPOCH_S) -> None:
    """The per-epoch stage CSV (:data:`STAGE_CSV_COLUMNS`), written whole or not at all.

    Probabilities and confidence with 6 decimals (empty where NaN), onsets in s with one;
    text cells made safe for spreadsheets (:func:`spreadsheet_safe`).

    Parameters
    ----------
    path : Path
        The CSV to write.
    preds : sequence of StagePrediction
        One prediction per epoch.
    epoch_s : float, default EPOCH_S
        Epoch length, s (``onset_s`` is ``epoch * epoch_s``).

    Raises
    ------
    OutputWriteError
        It could not be written (the previous file, if any, is unchanged).
    """
    with atomic_write(path, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(STAGE_CSV_COLUMNS)
        for p in preds:
            w.writerow([p.epoch, f"{p.epoch * epoch_s:.1f}", spreadsheet_safe(p.stage),
                        *(_fmt(v) for v in p.probabilities), _fmt(p.confidence),
                        spreadsheet_safe(FLAG_SEPARATOR.join(p.flags))])


def write_metrics(stem: Path, agreement: Agreement, extra: dict | None = None) -> tuple[Path, Path]:
    """``<stem>_metrics.json`` and ``<stem>_confusion.csv`` (:func:`metrics_paths`), each
    written whole or not at all.

    Parameters
    ----------
    stem : Path
        The output path without the suffixes.
    agreement : Agreement
        The agreement with the reference hypnogram (its ``as_dict()`` goes into the JSON,
        its confusion matrix into the CSV).
    extra : dict, optional
        More JSON fields, written first (the agreement's fields win on a clash).

    Returns
    -------
    metrics : Path
        The JSON written.
    confusion : Path
        The confusion CSV written (rows true stages, columns predicted).

    Raises
    ------
    OutputWriteError
        One could not be written (its previous file, if any, is unchanged).
    """
    mpath, cpath = metrics_paths(stem)
    body = {**(extra or {}), **agreement.as_dict()}
    write_text_atomic(mpath, json.dumps(body, indent=2) + "\n")
    with atomic_write(cpath, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["true\\pred", *STAGES])
        for s, row in zip(STAGES, agreement.confusion):
            w.writerow([spreadsheet_safe(s), *row])
    return mpath, cpath
