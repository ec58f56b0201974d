"""The stage vocabulary: W, N1, N2, N3, REM, plus UNS for epochs that are not scored.

Integer codes follow ``weights/label_map.json``: 0=W, 1=N1, 2=N2, 3=N3, 4=REM; -1 is
unscored (Sleep-EDF ``?``, movement time, gaps, flat signal).

Also the one definition of what every part says about stages: the spellings read from
hypnogram files, the EDF+ annotation texts written (:data:`EDF_STAGE_TEXTS`), the colours
and row order of hypnograms drawn on screen and in the report (:data:`STAGE_COLOURS`,
:data:`HYPNOGRAM_ROWS`), the name of the stream that carries a replay's true stages
(:data:`TRUTH_SUFFIX`), the run-length encoding of a hypnogram (:func:`stage_runs`) and
the samples in one epoch (:func:`epoch_samples`).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

STAGES: tuple[str, ...] = ("W", "N1", "N2", "N3", "REM")
UNSCORED = -1
UNSCORED_NAME = "UNS"
N_STAGES = len(STAGES)
EPOCH_S = 30.0

# Every spelling we accept in hypnogram files, upper-cased and stripped.
_ALIASES: dict[str, int] = {
    "W": 0, "WAKE": 0, "0": 0, "SLEEP STAGE W": 0,
    "N1": 1, "1": 1, "S1": 1, "SLEEP STAGE 1": 1, "SLEEP STAGE N1": 1,
    "N2": 2, "2": 2, "S2": 2, "SLEEP STAGE 2": 2, "SLEEP STAGE N2": 2,
    "N3": 3, "3": 3, "S3": 3, "S4": 3, "4": 3, "N4": 3,
    "SLEEP STAGE 3": 3, "SLEEP STAGE 4": 3, "SLEEP STAGE N3": 3, "SLEEP STAGE N4": 3,
    "R": 4, "REM": 4, "5": 4, "SLEEP STAGE R": 4, "SLEEP STAGE REM": 4,
    "?": UNSCORED, "-1": UNSCORED, "UNS": UNSCORED, "UNSCORED": UNSCORED, "ART": UNSCORED,
    "SLEEP STAGE ?": UNSCORED, "MOVEMENT TIME": UNSCORED, "M": UNSCORED, "MT": UNSCORED,
    "MOVEMENT": UNSCORED, "ARTEFACT": UNSCORED, "ARTIFACT": UNSCORED,
}


def stage_code(text: str) -> int | None:
    """Integer code for a stage spelling, or None when the text is not a stage.

    Parameters
    ----------
    text : str
        A stage as hypnogram files spell it (``W``, ``N2``, ``Sleep stage 4``, ``R``,
        ``?``...); case and repeated spaces are ignored.

    Returns
    -------
    int or None
        0..4, -1 for unscored spellings, None for anything else.
    """
    return _ALIASES.get(" ".join(str(text).strip().upper().split()))


def epoch_samples(sfreq: float, epoch_s: float = EPOCH_S) -> int:
    """Samples in one epoch: ``epoch_s`` at ``sfreq``, rounded to the nearest sample.

    Parameters
    ----------
    sfreq : float
        Sampling rate, Hz (100.0 gives 3000 samples per 30-s epoch; 256.0 gives 7680).
    epoch_s : float, default EPOCH_S
        Epoch length, s.

    Returns
    -------
    int
        ``round(sfreq * epoch_s)``.
    """
    return int(round(sfreq * epoch_s))


def stage_name(code: int) -> str:
    """'W'..'REM' for 0..4, 'UNS' for anything else.

    Parameters
    ----------
    code : int
        A stage code: 0 W, 1 N1, 2 N2, 3 N3, 4 REM; -1 (unscored) or any other int
        gives ``'UNS'``.

    Returns
    -------
    str
        The stage's name.
    """
    return STAGES[code] if 0 <= int(code) < N_STAGES else UNSCORED_NAME


def names(codes: np.ndarray) -> list[str]:
    """The names of stage codes (:func:`stage_name` of each).

    Parameters
    ----------
    codes : numpy.ndarray
        Stage codes.

    Returns
    -------
    list of str
        One name per code.
    """
    return [stage_name(int(c)) for c in codes]


#: EDF+ annotation text per stage code, written by the report, the API and the simulator:
#: the AASM texts of the HMC hypnograms (N3 is ``Sleep stage N3``, not R&K's ``3``/``4``);
#: Sleep-EDF's R&K texts are read too (see :func:`stage_code`).
EDF_STAGE_TEXTS: dict[int, str] = {0: "Sleep stage W", 1: "Sleep stage N1", 2: "Sleep stage N2",
                                   3: "Sleep stage N3", 4: "Sleep stage R", UNSCORED: "Sleep stage ?"}

#: Stage colours (hex) of the report's figure and the live screen.
STAGE_COLOURS: dict[str, str] = {
    "W": "#e6b800", "N1": "#4fc3d9", "N2": "#1e7fe0", "N3": "#6a4fc9", "REM": "#e0413a", UNSCORED_NAME: "#9e9e9e",
}

#: Hypnogram rows from the top, as clinical hypnograms are drawn.
HYPNOGRAM_ROWS: tuple[str, ...] = ("W", "REM", "N1", "N2", "N3")

#: The true stages of a replayed recording travel beside its EEG stream on a Markers stream
#: named, and with a source_id, the EEG stream's plus this suffix (``sleepstream-replay-truth``):
#: one stage name per 30-s epoch, written by :mod:`replay.player`, read by :mod:`streamer.truth`.
TRUTH_SUFFIX = "-truth"


class StageRuns(NamedTuple):
    """Runs of equal stage codes: ``codes[i]`` repeated ``lengths[i]`` epochs from ``starts[i]``.

    Parameters
    ----------
    codes : numpy.ndarray
        The value of each run.
    starts : numpy.ndarray
        Its first epoch, int64.
    lengths : numpy.ndarray
        Its number of epochs, int64.
    """

    codes: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray


def stage_runs(codes) -> StageRuns:
    """Run-length encoding of a hypnogram.

    Parameters
    ----------
    codes : array_like, shape (n_epochs,)
        One stage code (or any value) per epoch.

    Returns
    -------
    StageRuns
        ``codes`` (the value of each run, the input's dtype), ``starts`` (its first epoch)
        and ``lengths`` (its number of epochs), int64; all empty for an empty input.
    """
    c = np.asarray(codes)
    if len(c) == 0:
        return StageRuns(c[:0], np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    starts = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])
    lengths = np.diff(np.r_[starts, len(c)])
    return StageRuns(c[starts], starts, lengths)


def edf_stage_annotations(codes, epoch_s: float = EPOCH_S) -> list[tuple[float, float, str]]:
    """(onset s, duration s, :data:`EDF_STAGE_TEXTS` text) per run of equal stages; any
    code that is not a stage is written as unscored (``Sleep stage ?``).

    Parameters
    ----------
    codes : array_like of int
        Stage codes per epoch.
    epoch_s : float, default EPOCH_S
        Epoch length, s.

    Returns
    -------
    list of tuple of (float, float, str)
        Onset (s), duration (s) and text of each run.
    """
    runs = stage_runs(np.asarray(codes, dtype=np.int64))
    return [(float(s * epoch_s), float(n * epoch_s), EDF_STAGE_TEXTS.get(int(c), EDF_STAGE_TEXTS[UNSCORED]))
            for c, s, n in zip(*runs)]
