"""What every model kind gives back: one :class:`StagePrediction` per epoch.

A stager (:class:`sleepnet.models.base.Stager`, made by a loaded
:class:`sleepnet.models.base.StagingModel`) turns epochs into these records;
:func:`predictions_from` builds them from a kind's probabilities.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .stages import N_STAGES, STAGES, UNSCORED_NAME

if TYPE_CHECKING:
    import numpy as np

    from .preprocess import Epoch


@dataclass(frozen=True)
class StagePrediction:
    """The model's verdict on one epoch.

    Parameters
    ----------
    epoch : int
        Epoch index (30-s epochs from the start of the signal).
    stage : str
        ``W``, ``N1``, ``N2``, ``N3``, ``REM`` or ``UNS`` (unscored).
    probabilities : tuple of float
        Five probabilities in label-map order (NaN when unscored).
    confidence : float
        The largest probability (NaN when unscored).
    flags : tuple of str
        Quality flags, plus ``warmup`` for an epoch scored with less context than the
        model asks for.
    """

    epoch: int
    stage: str
    probabilities: tuple[float, ...]
    confidence: float
    flags: tuple[str, ...]

    @property
    def scored(self) -> bool:
        """Whether the epoch was given a stage (not ``UNS``)."""
        return self.stage != UNSCORED_NAME

    @property
    def stage_code(self) -> int:
        """The stage as a code: 0=W, 1=N1, 2=N2, 3=N3, 4=REM, -1 unscored."""
        return STAGES.index(self.stage) if self.scored else -1


def predictions_from(slots: Sequence[tuple[Epoch, bool]], probs: np.ndarray | None) -> list[StagePrediction]:
    """One prediction per epoch of ``slots``, in order.

    The scorable epochs take the next row of ``probs``; the others are ``UNS`` with NaN
    probabilities and their quality flags.

    Parameters
    ----------
    slots : sequence of (Epoch, bool)
        Each epoch, and whether it was scored with less context than the model asks for
        (flagged ``warmup``).
    probs : numpy.ndarray or None
        (n_scorable, 5) probabilities in label-map order, one row per scorable epoch of
        ``slots`` (None when there is none).

    Returns
    -------
    list of StagePrediction
        One per slot, in order.
    """
    from .preprocess import FLAG_WARMUP

    out: list[StagePrediction] = []
    nan = (float("nan"),) * N_STAGES
    k = 0
    for e, warm in slots:
        if not e.scorable:
            out.append(StagePrediction(e.index, UNSCORED_NAME, nan, float("nan"), e.flags))
            continue
        p = probs[k]
        k += 1
        best = int(p.argmax())
        flags = ((FLAG_WARMUP,) if warm else ()) + e.flags
        out.append(StagePrediction(e.index, STAGES[best], tuple(float(v) for v in p), float(p[best]), flags))
    return out
