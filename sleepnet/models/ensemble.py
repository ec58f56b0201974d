"""An ensemble of stagers (model kind ``ensemble``): several models of any kind fed the same
epochs, their probabilities averaged with fixed weights.

A folder of this kind holds ``config.json`` (``kind``, the members and their weights),
``label_map.json``, ``MODEL_CARD.md`` and one sub-folder per member, each a complete
weights folder of its own kind (loaded as such). The members must share one
preprocessing. Averaging the probabilities of models that make different mistakes is
the oldest trick of the trade (Dietterich 2000); the weights are fixed when the ensemble
is made (chosen without the nights it is measured on).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..doc_sections import sections_of
from ..errors import WeightsError
from ..night_context import UNKNOWN_START, check_session_start
from ..predictions import StagePrediction
from ..preprocess import Epoch
from ..stages import STAGES, UNSCORED_NAME
from . import base

KIND = "ensemble"


class EnsembleStager:
    """Every member's stager fed the same epochs; each epoch's probabilities are the
    weighted mean of the members' (summed in member order, so live equals batch bit for
    bit when each member's does); flags are the union of theirs.

    Parameters
    ----------
    model : EnsembleModel
        The loaded ensemble.
    session_start : str, optional
        ``lights-off`` or ``unknown``, given to every member; None: the model's default.

    Raises
    ------
    ValueError
        An unknown ``session_start``.
    """

    def __init__(self, model: EnsembleModel, session_start: str | None = None) -> None:
        self.model = model
        self.session_start = check_session_start(session_start or model.default_session_start)
        self._stagers = [m.new_stager(session_start=self.session_start) for m in model.members]

    def __repr__(self) -> str:
        return f"<EnsembleStager {self.model.model_id}: {', '.join(repr(s) for s in self._stagers)}>"

    def reset(self) -> None:
        """Forget the night: a new session (every member)."""
        for s in self._stagers:
            s.reset()

    @sections_of(base.Stager.skip, "Epochs passed unseen (every member's clock moves on).")
    def skip(self, n_epochs: int) -> None:
        for s in self._stagers:
            s.skip(n_epochs)

    def state(self) -> dict:
        """The night so far, as JSON-ready values (for the state file).

        Returns
        -------
        dict
            ``kind``, ``model_id``, ``session_start`` and each member's state, in order.
        """
        return {"kind": KIND, "model_id": self.model.model_id, "session_start": self.session_start,
                "members": [s.state() for s in self._stagers]}

    @sections_of(base.Stager.restore, """Carry on from a saved night, every member from its own state; a state of
        another model or shape leaves this stager fresh rather than half restored.""")
    def restore(self, state: dict) -> None:
        base.check_state_owner(state, KIND, self.model.model_id)
        members = state.get("members")
        if not isinstance(members, list) or len(members) != len(self._stagers):
            raise ValueError(f"night state of {len(members) if isinstance(members, list) else 'no'} members, "
                             f"this ensemble has {len(self._stagers)}")
        start = check_session_start(state.get("session_start", ""))
        try:
            for s, m in zip(self._stagers, members):
                s.restore(m)
        except (ValueError, KeyError, TypeError):
            self.reset()
            raise
        self.session_start = start

    @sections_of(base.Stager.score, """Stage epochs in order: each epoch's probabilities are the weighted mean
        of the members', its flags the union of theirs (``UNS`` where the first member did
        not score the epoch).""")
    def score(self, epochs: Sequence[Epoch]) -> list[StagePrediction]:
        per = [s.score(epochs) for s in self._stagers]
        if not per[0]:
            return []
        w = self.model.weights
        probs = w[0] * np.array([p.probabilities for p in per[0]], dtype=np.float64)
        for k in range(1, len(per)):      # element by element: the same bits in any batch
            probs = probs + w[k] * np.array([p.probabilities for p in per[k]], dtype=np.float64)
        out: list[StagePrediction] = []
        for i, first in enumerate(per[0]):
            if not first.scored:
                out.append(first)
                continue
            p = probs[i]
            flags = list(first.flags)
            for k in range(1, len(per)):
                flags += [f for f in per[k][i].flags if f not in flags]
            best = int(p.argmax())
            stage = STAGES[best] if np.isfinite(p).all() else UNSCORED_NAME
            out.append(StagePrediction(first.epoch, stage, tuple(float(v) for v in p), float(p[best]), tuple(flags)))
        return out


@dataclass(frozen=True, repr=False)
class EnsembleModel(base.FolderModel, kind=KIND, what="ensemble", stager=EnsembleStager):
    """A loaded ensemble (its members share one preprocessing).

    Parameters
    ----------
    members : tuple of StagingModel
        Loaded models of any kind.
    weights : tuple of float
        One per member, summing to 1.
    default_session_start : str
        The session start its stagers assume unless told.
    {identity}
    """

    members: tuple[base.StagingModel, ...]
    weights: tuple[float, ...]
    default_session_start: str = UNKNOWN_START

    def _contents(self) -> str:
        return ", ".join(f"{m.model_id} x {w:g}" for m, w in zip(self.members, self.weights))


@sections_of(base.FolderLoader.__call__, """The ensemble of a weights folder, its weights scaled to sum to 1; each member is
    loaded as a folder of its own kind (:func:`sleepnet.models.base.load_folder_of_any_kind`).
    Refused with one line naming the file: a member outside the folder, weights that are
    not positive, members with different preprocessing.""")
def load_folder(d: Path, cfg: dict) -> EnsembleModel:
    with base.config_entries(d):
        spec = cfg["members"]
        folders = [str(m["folder"]) for m in spec]
        raw = [float(m["weight"]) for m in spec]
        start = check_session_start(str(cfg.get("default_session_start", UNKNOWN_START)))
    if len(folders) < 1 or any(not np.isfinite(w) or w <= 0 for w in raw):
        raise WeightsError(f"{d / base.CONFIG_FILE}: an ensemble needs members with positive weights, got {raw}")
    members = []
    for f in folders:
        sub = (d / f).resolve()
        if d.resolve() not in sub.parents:
            raise WeightsError(f"{d / base.CONFIG_FILE}: member folder {f!r} is not inside the ensemble's folder")
        members.append(base.load_folder_of_any_kind(sub))
    pre = members[0].preprocess
    for f, m in zip(folders, members):
        if m.preprocess != pre:
            raise WeightsError(f"{d / f}: its preprocessing differs from the other members'")
    total = sum(raw)
    return EnsembleModel(members=tuple(members), weights=tuple(w / total for w in raw), preprocess=pre,
                         default_session_start=start, **base.folder_identity(d, cfg, "ensemble"))


@base.fill_doc
def save_ensemble_config(out_dir: str | Path, members: Sequence[tuple[str, float]], model_id: str, summary: str,
                         extra: dict | None = None) -> Path:
    """Write an ``ensemble`` folder's config and label map; the members' folders
    (``out_dir/<folder>``) are written by their own kinds.

    Parameters
    ----------
    {out_dir}
    members : sequence of (str, float)
        Each member's sub-folder and weight.
    {config_tail}
    """
    return base.write_folder_config(out_dir, KIND, model_id, {
        "summary": summary, "members": [{"folder": f, "weight": w} for f, w in members],
        "default_session_start": UNKNOWN_START},
        {"inputs": "every member's, fed the same epochs", "labels": "current epoch",
         "combination": "weighted mean of the members' probabilities"}, extra)
