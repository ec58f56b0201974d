"""What every model kind gives back, and the interface the scorer, batch and live use.

A *staging model* (:class:`StagingModel`) is a loaded model of any kind: it names its
preprocessing and makes *stagers*. A *stager* (:class:`Stager`) is the stateful part:
fed epochs in order (one at a time live, all at once in batch), it says each one's
stage from that epoch and those before it, never a later one. Nothing outside
``sleepnet`` asks which kind a model is.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Sequence

from .stages import N_STAGES, STAGES, UNSCORED_NAME

if TYPE_CHECKING:
    import numpy as np

    from .preprocess import Epoch, PreprocessConfig


@dataclass(frozen=True)
class StagePrediction:
    """The model's verdict on one epoch.

    epoch: epoch index. stage: W/N1/N2/N3/REM or UNS. probabilities: five floats in
    label-map order (NaN when unscored). confidence: the largest probability (NaN when
    unscored). flags: quality flags plus ``warmup``.
    """

    epoch: int
    stage: str
    probabilities: tuple[float, ...]
    confidence: float
    flags: tuple[str, ...]

    @property
    def scored(self) -> bool:
        return self.stage != UNSCORED_NAME

    @property
    def stage_code(self) -> int:
        return STAGES.index(self.stage) if self.scored else -1


class Stager(Protocol):
    """Stateful epochs -> stages, the same object in batch and live.

    ``session_start``: ``lights-off`` or ``unknown`` (see
    :data:`sleepnet.night_context.SESSION_STARTS`) for a stager that keeps a night clock,
    None for one that keeps none."""

    session_start: str | None

    def score(self, epochs: Sequence["Epoch"]) -> list[StagePrediction]:
        """Stages for ``epochs`` (in order, after every epoch already fed)."""

    def reset(self) -> None:
        """Forget everything: a new night."""

    def skip(self, n_epochs: int) -> None:
        """``n_epochs`` passed unseen (the scorer was down): time moves on, the context breaks."""

    def state(self) -> dict:
        """Night-level state to carry over a restart, as JSON-able values."""

    def restore(self, state: dict) -> None:
        """Carry on from :meth:`state`; raises ValueError on a state this model cannot use."""


class StagingModel(Protocol):
    """A loaded model of any kind."""

    kind: str
    model_id: str
    source: Path
    preprocess: "PreprocessConfig"
    summary: str

    def new_stager(self, session_start: str | None = None) -> Stager:
        """A fresh stager for one night; ``session_start`` (``lights-off`` or
        ``unknown``; None: the model's own default) says whether the time since the
        session start is the night's clock."""


def predictions_from(slots: Sequence[tuple["Epoch", bool]], probs: "np.ndarray") -> list[StagePrediction]:
    """One prediction per epoch of ``slots`` (epoch, scored with less context than the
    model asks for), in order: the scorable ones take the next row of ``probs``
    ((n_scorable, 5) probabilities in label-map order); the others are ``UNS`` with NaN
    probabilities and their quality flags."""
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
