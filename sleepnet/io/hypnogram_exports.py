"""Hypnogram exports other tools read: EDF+ annotations (Sleep-EDF/HMC texts) and
BIDS-style events with their JSON sidecar.
"""
from __future__ import annotations

import csv
import json
import math
from datetime import datetime
from pathlib import Path

import numpy as np

from ..stages import EPOCH_S, STAGES, edf_stage_annotations, stage_name
from .atomic import atomic_write
from .night_file import Night

# --------------------------------------------------------------------------- exports

def write_edf_annotations(path: Path, codes: np.ndarray, start: datetime | None = None,
                          epoch_s: float = EPOCH_S) -> Path:
    """EDF+ file holding only the hypnogram as annotations (one per run of equal stages).

    Texts as the Sleep-EDF/HMC hypnograms: ``Sleep stage W``, ``N1``, ``N2``, ``N3``,
    ``R`` and ``?`` for unscored epochs.

    Parameters
    ----------
    path : Path
        The EDF+ file to write.
    codes : numpy.ndarray
        Stage codes per epoch (-1 unscored).
    start : datetime, optional
        The file's start date and time (whole seconds); default: edfio's default.
    epoch_s : float, default EPOCH_S
        Epoch length, s.

    Returns
    -------
    Path
        ``path``.
    """
    from edfio import Edf, EdfAnnotation, Recording

    anns = [EdfAnnotation(onset, duration, text) for onset, duration, text in edf_stage_annotations(codes, epoch_s)]
    kwargs = {}
    if start is not None:
        kwargs = {"recording": Recording(startdate=start.date()), "starttime": start.time().replace(microsecond=0)}
    with atomic_write(path, "wb", encoding=None) as fh:      # whole or not at all
        Edf(signals=[], annotations=anns, **kwargs).write(fh)
    return path


BIDS_EVENT_COLUMNS = ("onset", "duration", "trial_type", "stage", "epoch", "confidence", "flags")


def write_bids_events(path: Path, night: Night) -> tuple[Path, Path]:
    """BIDS-style ``_events.tsv`` (one row per 30-s epoch) and its JSON sidecar.

    Columns :data:`BIDS_EVENT_COLUMNS`; ``n/a`` where a slot has no row or no confidence.

    Parameters
    ----------
    path : Path
        The TSV to write; the sidecar is the same path with ``.json``.
    night : Night
        The scored night (:func:`~sleepnet.io.night_file.read_night`).

    Returns
    -------
    events : Path
        The TSV written.
    sidecar : Path
        The JSON sidecar written (column descriptions, units and stage levels).
    """
    with atomic_write(path, "w", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(BIDS_EVENT_COLUMNS)
        for i in range(night.n_epochs):
            name = stage_name(int(night.stages[i]))
            conf = night.confidence[i]
            w.writerow([f"{i * night.epoch_s:.1f}", f"{night.epoch_s:.1f}", name, name,
                        int(night.epoch_numbers[i]) if night.received[i] else "n/a",
                        f"{conf:.4f}" if math.isfinite(conf) else "n/a",
                        "|".join(night.flags[i]) if night.flags[i] else ("n/a" if not night.received[i] else "")])
    sidecar = path.with_suffix(".json")
    levels = {s: f"sleep stage {s} (AASM)" for s in STAGES}
    levels["UNS"] = "unscored: gap, flat or artefacted signal, or no scorer output for this epoch"
    sidecar_text = json.dumps({
        "onset": {"Description": "start of the 30-s epoch from the start of the night", "Units": "s"},
        "duration": {"Description": "epoch length", "Units": "s"},
        "trial_type": {"Description": "sleep stage scored by sleepstream", "Levels": levels},
        "stage": {"Description": "same as trial_type", "Levels": levels},
        "epoch": {"Description": "epoch number in the scored night file"},
        "confidence": {"Description": "largest of the five stage probabilities"},
        "flags": {"Description": "quality flags, '|'-separated: warmup, gap, flat, clipped, artefact"},
    }, indent=2) + "\n"
    with atomic_write(sidecar) as fh:
        fh.write(sidecar_text)
    return path, sidecar
