"""Where labelled nights come from for training and evaluation.

* ``sleep-edf``: Sleep-EDF Expanded (sleep cassette) downloaded through
  ``mne.datasets.sleep_physionet.age.fetch_data`` where there is internet.
* a folder of EDF recordings with their hypnograms (Sleep-EDF naming
  ``SC4001E0-PSG.edf`` + ``SC4001EC-Hypnogram.edf``, or ``NAME.edf`` + ``NAME.tsv`` /
  ``NAME-hypnogram.*``).
* ``simulated``: nights from :mod:`sleepnet.sim`, one simulated subject each.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputFileError, SleepstreamError, parameter
from ..io.hypnograms import read_hypnogram
from ..io.recordings import DEFAULT_CHANNEL, Recording, read_recording, with_labels

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NightSource:
    """A labelled recording and the subject it belongs to (for subject-wise splits)."""

    recording: Recording
    subject: str
    name: str


def parse_subjects(subjects: str) -> list[int]:
    """Subject numbers from a text of numbers and ranges.

    Parameters
    ----------
    subjects : str
        ``'0-19'``, ``'0,3,5-7'``: numbers and inclusive ranges, separated by commas.

    Returns
    -------
    list of int
        The subjects, sorted, each once (``'0,3,5-7'`` -> ``[0, 3, 5, 6, 7]``).

    Raises
    ------
    SleepstreamError
        A part that is neither a number nor a range.
    """
    out: list[int] = []
    for part in subjects.split(","):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            out.extend(range(min(a, b), max(a, b) + 1))
        elif part.isdigit():
            out.append(int(part))
        else:
            raise SleepstreamError(f"{parameter('subjects')}={subjects!r}: expected numbers and ranges like 0-19 "
                                   "or 0,3,5-7")
    return sorted(set(out))


def sleep_edf_nights(subjects: list[int], recordings: tuple[int, ...] = (1, 2),
                     channel: str = DEFAULT_CHANNEL, path: str | None = None) -> list[NightSource]:
    """Download (once) and read Sleep-EDF cassette nights through MNE."""
    from mne.datasets.sleep_physionet.age import fetch_data

    try:
        pairs = fetch_data(subjects=subjects, recording=list(recordings), path=path, on_missing="warn")
    except Exception as exc:  # no internet, PhysioNet down...
        raise SleepstreamError(f"Sleep-EDF download through MNE failed ({exc.__class__.__name__}: {exc})") from None
    nights = []
    for psg, hyp in pairs:
        rec = read_recording(psg, channel)
        rec = with_labels(rec, read_hypnogram(hyp, rec.n_epochs))
        name = Path(psg).name[:8]
        nights.append(NightSource(rec, subject=name[3:5], name=name))
    return nights


def folder_nights(folder: str | Path, channel: str = DEFAULT_CHANNEL) -> list[NightSource]:
    """EDF/BDF recordings in ``folder`` paired with their hypnograms."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileError(f"{folder}: no such folder")
    files = sorted(p for p in folder.iterdir() if p.is_file())
    hyps = [p for p in files if "hypnogram" in p.name.lower() or p.suffix.lower() in (".tsv", ".csv", ".txt")]
    nights = []
    for rec_path in files:
        if rec_path in hyps or rec_path.suffix.lower() not in (".edf", ".bdf"):
            continue
        stem = rec_path.stem.replace("-PSG", "")
        match = [h for h in hyps if h.name.startswith(stem)] or [h for h in hyps if h.name[:6] == rec_path.name[:6]]
        if not match:
            log.warning("%s: no hypnogram beside it; skipped", rec_path)
            continue
        rec = read_recording(rec_path, channel)
        rec = with_labels(rec, read_hypnogram(match[0], rec.n_epochs))
        subject = rec_path.name[3:5] if re.match(r"S[CT]\d{4}", rec_path.name) else stem
        nights.append(NightSource(rec, subject=subject, name=stem))
    if not nights:
        raise InputFileError(f"{folder}: no EDF/BDF recording with a matching hypnogram")
    return nights


def simulated_nights(subjects: list[int], hours: float = 8.0, seed: int = 0) -> list[NightSource]:
    """One simulated night per subject number; subject k is always the same person."""
    from ..sim.night import simulate_night
    from ..sim.parameters import random_subject

    nights = []
    for k in subjects:
        subject = random_subject(seed * 100_003 + k)
        night = simulate_night(hours, seed=seed * 100_003 + 50_000 + k, subject=subject)
        rec = Recording(eeg_uv=night.eeg_uv, sfreq=night.sfreq, channel="Fpz-Cz",
                        source=f"simulated:seed{seed}:subject{k}", labels=np.asarray(night.labels, dtype=np.int8))
        nights.append(NightSource(rec, subject=f"sim{k:03d}", name=f"sim-s{seed}-{k:03d}"))
    return nights
