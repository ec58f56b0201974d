"""The stage vocabulary: W, N1, N2, N3, REM, plus UNS for epochs that are not scored.

Integer codes follow ``weights/label_map.json``: 0=W, 1=N1, 2=N2, 3=N3, 4=REM; -1 is
unscored (Sleep-EDF ``?``, movement time, gaps, flat signal).
"""
from __future__ import annotations

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
    """Integer code for a stage spelling, or None when the text is not a stage."""
    return _ALIASES.get(" ".join(str(text).strip().upper().split()))


def stage_name(code: int) -> str:
    """'W'..'REM' for 0..4, 'UNS' for anything else."""
    return STAGES[code] if 0 <= int(code) < N_STAGES else UNSCORED_NAME


def names(codes: np.ndarray) -> list[str]:
    return [stage_name(int(c)) for c in codes]
