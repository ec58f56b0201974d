"""Read hypnograms into one stage code per 30-s epoch, aligned to the recording start.

Accepted formats
----------------
* EDF+ annotations (Sleep-EDF ``Sleep stage W/1/2/3/4/R/?``, ``Movement time``; HMC
  ``Sleep stage N1/N2/N3``): each annotation covers ``duration / 30`` epochs from
  ``onset / 30``; stages 3 and 4 become N3, ``?`` and movement time become unscored (-1);
  annotations that are not stages (``Lights off``...) are ignored.
* Sleep-EDF cassette text: one character per epoch, separated by ``\\r`` or newlines.
* Text/CSV/TSV: one stage per line; with a header, the column named ``stage`` (or
  ``label``) is used. Letters (``W N1 N2 N3 R REM``, ``?``) may mix with R&K digits
  (``1 2 3 4``: 3 and 4 are N3); a column of integers only is read as our codes
  0=W 1=N1 2=N2 3=N3 4=REM, -1 unscored.
"""
from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

import numpy as np

from ..errors import InputFileError
from ..stages import EPOCH_S, UNSCORED, stage_code

log = logging.getLogger(__name__)


def read_hypnogram(path: str | Path, n_epochs: int | None = None) -> np.ndarray:
    """Stage codes (int8, -1 unscored) per 30-s epoch from the recording start.

    With ``n_epochs``, the result is cut or padded with -1 to that length (see
    :func:`fit_to_recording`).

    Parameters
    ----------
    path : str or Path
        An EDF+/BDF+ hypnogram or a text/CSV/TSV one (see the module docstring).
    n_epochs : int, optional
        The recording's complete 30-s epochs, to fit the result to.

    Returns
    -------
    numpy.ndarray
        int8 stage codes 0..4 per 30-s epoch, -1 unscored.

    Raises
    ------
    InputFileError
        One line: no such file, unreadable, no stage annotation, an unknown stage or
        code (with its epoch), or no scored epoch inside ``n_epochs``.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: no such file")
    if path.suffix.lower() in (".edf", ".bdf"):
        labels = _read_edf_annotations(path)
    else:
        labels = _read_text(path)
    if n_epochs is not None:
        labels = fit_to_recording(labels, n_epochs, str(path))
    return labels


def fit_to_recording(labels: np.ndarray, n_epochs: int, source: str) -> np.ndarray:
    """Cut or pad ``labels`` to ``n_epochs`` (as MNE crops annotations to the data).

    A length mismatch is logged as a warning (an excerpt scored against its whole-night
    hypnogram is normal); a hypnogram with no scored epoch inside the recording is an
    error, since it cannot belong to it.

    Parameters
    ----------
    labels : numpy.ndarray
        int8 stage codes per 30-s epoch.
    n_epochs : int
        The recording's complete 30-s epochs.
    source : str
        The hypnogram's name, for the warning and the error.

    Returns
    -------
    numpy.ndarray
        ``labels`` cut to ``n_epochs``, or padded with -1 (unscored).

    Raises
    ------
    InputFileError
        No epoch inside the recording is scored.
    """
    if len(labels) != n_epochs:
        log.warning("%s: hypnogram has %d epochs, the recording %d complete 30-s epochs; %s",
                    source, len(labels), n_epochs,
                    f"using the first {n_epochs}" if len(labels) > n_epochs
                    else f"the last {n_epochs - len(labels)} epochs are unscored")
    if len(labels) > n_epochs:
        labels = labels[:n_epochs]
    elif len(labels) < n_epochs:
        labels = np.concatenate([labels, np.full(n_epochs - len(labels), UNSCORED, dtype=np.int8)])
    if n_epochs and not np.any(labels != UNSCORED):
        raise InputFileError(f"{source}: no scored epoch inside the recording's {n_epochs} epochs; "
                             "is it the hypnogram of another recording?")
    return labels


def _read_edf_annotations(path: Path) -> np.ndarray:
    import mne

    try:
        ann = mne.read_annotations(path)
    except Exception as exc:
        raise InputFileError(f"{path}: cannot read EDF+ annotations ({exc.__class__.__name__}: {exc})") from None
    spans: list[tuple[float, float, int]] = []
    for onset, duration, text in zip(ann.onset, ann.duration, ann.description):
        code = stage_code(text)
        if code is None:
            continue
        spans.append((float(onset), float(duration), code))
    if not spans:
        raise InputFileError(
            f"{path}: no sleep-stage annotations found (texts: {', '.join(sorted(set(ann.description))[:8]) or 'none'})"
        )
    end = max(o + d for o, d, _ in spans)
    labels = np.full(int(round(end / EPOCH_S)), UNSCORED, dtype=np.int8)
    for onset, duration, code in spans:
        first = int(round(onset / EPOCH_S))
        last = int(round((onset + max(duration, EPOCH_S)) / EPOCH_S))
        labels[first:last] = code
    return labels


def _read_text(path: Path) -> np.ndarray:
    try:
        text = path.read_text(encoding="utf-8-sig", errors="strict")
    except (UnicodeDecodeError, OSError) as exc:
        raise InputFileError(f"{path}: not a text hypnogram ({exc.__class__.__name__})") from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = [ln for ln in text.split("\n") if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise InputFileError(f"{path}: empty hypnogram")
    delim = "\t" if "\t" in lines[0] else ("," if "," in lines[0] else None)
    tokens: list[str]
    if delim is None:
        tokens = [ln.strip() for ln in lines]
        if stage_code(tokens[0]) is None and tokens[0].lower() in ("stage", "label", "hypnogram"):
            tokens = tokens[1:]
    else:
        rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delim))
        header = [h.strip().lower() for h in rows[0]]
        col = next((header.index(c) for c in ("stage", "label", "labels", "sleep_stage") if c in header), None)
        if col is not None:
            rows = rows[1:]
        else:
            col = len(rows[0]) - 1
            if stage_code(rows[0][col]) is None:  # an unnamed header line
                rows = rows[1:]
        tokens = [r[col].strip() if len(r) > col else "" for r in rows]
    codes = np.empty(len(tokens), dtype=np.int8)
    if all(t.lstrip("-").isdigit() for t in tokens):
        # Integers only: our codes 0=W 1=N1 2=N2 3=N3 4=REM, -1 unscored.
        vals = np.array([int(t) for t in tokens])
        bad = (vals < UNSCORED) | (vals > 4)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputFileError(f"{path}: unknown stage code {vals[i]} on epoch {i}; integer hypnograms use 0=W 1=N1 2=N2 3=N3 4=REM -1=unscored")
        return vals.astype(np.int8)
    for i, tok in enumerate(tokens):
        code = stage_code(tok)
        if code is None:
            raise InputFileError(
                f"{path}: unknown stage '{tok}' on epoch {i}; expected W, N1, N2, N3, R/REM, 1-4, 0-4 or ?"
            )
        codes[i] = code
    return codes
