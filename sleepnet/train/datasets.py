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
    """A labelled recording and the subject it belongs to (for subject-wise splits).

    Parameters
    ----------
    recording : Recording
        The night's EEG (µV) with its per-epoch stage labels.
    subject : str
        Subject key for subject-wise splits (``01`` for SC4011E0, ``sim003`` for a simulated one).
    name : str
        The night's name (``SC4011E0``, a file stem, ``sim-s0-003``).
    """

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
    """Download (once) and read Sleep-EDF cassette nights through MNE.

    Parameters
    ----------
    subjects : list of int
        Sleep-EDF cassette subject numbers.
    recordings : tuple of int
        Which of each subject's nights (1, 2).
    channel : str
        EEG channel to read (:data:`sleepnet.io.derivations.DEFAULT_CHANNEL` by default).
    path : str, optional
        MNE's data folder; None: MNE's default.

    Returns
    -------
    list of NightSource
        One per night MNE has, labelled from its hypnogram.

    Raises
    ------
    SleepstreamError
        The download failed (no internet, PhysioNet down...), or a file could not be read.
    """
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
    """EDF/BDF recordings in ``folder`` paired with their hypnograms.

    A recording's hypnogram is the file starting with its stem (``-PSG`` dropped), else the
    one sharing its first six characters; a recording without one is skipped with a warning.

    Parameters
    ----------
    folder : str or pathlib.Path
        The folder of recordings and hypnograms.
    channel : str
        EEG channel to read (:data:`sleepnet.io.derivations.DEFAULT_CHANNEL` by default).

    Returns
    -------
    list of NightSource
        One per paired recording, by file name; Sleep-EDF names give the subject number.

    Raises
    ------
    InputFileError
        ``folder`` is not a folder or holds no recording with a matching hypnogram.
    """
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
    """One simulated night per subject number; subject k is always the same person.

    Parameters
    ----------
    subjects : list of int
        Simulated subject numbers.
    hours : float
        Length of each night in hours.
    seed : int
        Seeds the subjects and their nights.

    Returns
    -------
    list of NightSource
        One labelled Fpz-Cz night per subject (subject ``sim<k>``).
    """
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
