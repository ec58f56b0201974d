"""The real-trained feature stager (model kind ``feature-gbm``): gradient-boosted trees
over each epoch's nine base spectral features, the four epochs before it and causal night
context (:mod:`sleepnet.night_context`). Scoring needs numpy only (no torch).

A folder of this kind holds ``config.json`` (``kind``, preprocessing, night-context
settings), ``label_map.json``, ``model.txt`` (LightGBM's text model, read by
:class:`sleepnet.models.gbm_trees.TreeEnsemble`, no pickle) and ``MODEL_CARD.md``.

The approach follows classical feature-based staging (e.g. Vallat & Walker 2021, YASA's
gradient-boosted stager), made causal: only the current epoch and earlier ones are used.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import WeightsError
from ..night_context import LIGHTS_OFF, ContextConfig, check_session_start
from ..predictions import StagePrediction, predictions_from
from ..preprocess import Epoch, PreprocessConfig
from ..stages import N_STAGES
from .base import (
    CONFIG_FILE,
    LABEL_MAP_FILE,
    NightContextStager,
    config_entries,
    folder_identity,
    write_folder_config,
)
from .gbm_trees import TreeEnsemble, TreeModelError

log = logging.getLogger(__name__)

KIND = "feature-gbm"
TREES_FILE = "model.txt"


@dataclass(frozen=True, repr=False)
class FeatureGbmModel:
    """A loaded feature stager.

    Parameters
    ----------
    trees : TreeEnsemble
        The boosted trees (rows of ``context.n_inputs`` inputs -> 5 stages).
    context : ContextConfig
        Population means and shrinkage of the night baseline.
    preprocess : PreprocessConfig
        The one preprocessing path (features come from its 100-Hz signal before the band-pass).
    model_id : str
        Its name in ``config.json``.
    source : Path
        The folder it was loaded from.
    summary : str
        One line for people: what it is, what it was trained on, its real figures.
    kind : str
        The model kind, ``feature-gbm``.
    default_session_start : str
        The session start its stagers assume unless told (``config.json``'s
        ``default_session_start``; ``lights-off`` where absent: a model trained on
        sessions started at lights-off only).
    """

    trees: TreeEnsemble
    context: ContextConfig
    preprocess: PreprocessConfig
    model_id: str
    source: Path
    summary: str = "feature stager"
    kind: str = KIND
    default_session_start: str = LIGHTS_OFF

    def __repr__(self) -> str:
        return f"<FeatureGbmModel {self.model_id} ({self.trees.n_trees} trees) from {self.source}>"

    def new_stager(self, session_start: str | None = None) -> FeatureGbmStager:
        """A fresh stager for one night.

        Parameters
        ----------
        session_start : str, optional
            ``lights-off`` (hours since the session start count as the night's clock) or
            ``unknown`` (no clock); None: :attr:`default_session_start`.

        Returns
        -------
        FeatureGbmStager
            A stager at the start of a night.
        """
        return FeatureGbmStager(self, session_start)


class FeatureGbmStager(NightContextStager):
    """Stateful scorer of the feature model; batch and live feed it the same epochs.

    An unscored epoch gets stage ``UNS`` and never feeds the night baseline; the epochs
    after it have no lags from before it and are flagged ``warmup`` until four scorable
    epochs have come (as with the CNN–LSTM's window).

    Parameters
    ----------
    model : FeatureGbmModel
        The loaded model.
    session_start : str, optional
        ``lights-off`` (hours since the session start count as the night's clock) or
        ``unknown`` (no clock); None: the model's ``default_session_start``.

    Raises
    ------
    ValueError
        An unknown ``session_start``.
    """

    kind = KIND
    state_start_default = LIGHTS_OFF    # a state written before session starts were told: scored so

    def score(self, epochs: Sequence[Epoch]) -> list[StagePrediction]:
        """Stages of ``epochs`` in order (see :class:`sleepnet.models.base.Stager`).

        Parameters
        ----------
        epochs : sequence of Epoch
            The next epochs of the night, in order, each with its base features.

        Returns
        -------
        list of StagePrediction
            One per epoch (``UNS`` where unscorable).

        Raises
        ------
        ValueError
            A scorable epoch without features.
        """
        rows: list[np.ndarray] = []
        slots: list[tuple[Epoch, bool]] = []
        for e, warm, row in self._rows(epochs):
            slots.append((e, warm))
            if row is not None:
                rows.append(row)
        probs = self.model.trees.predict_proba(np.stack(rows)) if rows else np.zeros((0, N_STAGES))
        return predictions_from(slots, probs)


def load_folder(d: Path, cfg: dict) -> FeatureGbmModel:
    """The feature model of a weights folder.

    Parameters
    ----------
    d : Path
        The folder.
    cfg : dict
        Its ``config.json`` (format version and label map already checked).

    Returns
    -------
    FeatureGbmModel
        The trees with their night-context settings and preprocessing.

    Raises
    ------
    sleepnet.errors.WeightsError
        One line naming the file on any problem: an incomplete config, missing or unusable
        trees, trees of the wrong shape, an unknown ``default_session_start``.
    """
    with config_entries(d):
        pcfg = PreprocessConfig.from_dict(cfg["preprocess"])
        ccfg = ContextConfig.from_dict(cfg["context"])
    path = d / TREES_FILE
    if not path.is_file():
        raise WeightsError(f"{path}: missing (a {KIND} folder holds its trees in {TREES_FILE})")
    try:
        trees = TreeEnsemble.from_lightgbm_text(path.read_text())
    except (TreeModelError, ValueError, UnicodeDecodeError) as exc:
        raise WeightsError(f"{path}: not a usable LightGBM text model ({exc})") from None
    if trees.n_classes != N_STAGES or trees.n_features != ccfg.n_inputs:
        raise WeightsError(f"{path}: {trees.n_classes} classes x {trees.n_features} inputs, "
                           f"this code needs {N_STAGES} x {ccfg.n_inputs} ({ccfg.feature_set} features)")
    try:
        start = check_session_start(str(cfg.get("default_session_start", LIGHTS_OFF)))
    except ValueError as exc:
        raise WeightsError(f"{d / CONFIG_FILE}: default_session_start: {exc}") from None
    return FeatureGbmModel(trees=trees, context=ccfg, preprocess=pcfg, default_session_start=start,
                           **folder_identity(d, cfg, "feature stager"))


def save_feature_model(out_dir: str | Path, model_text: str, context: ContextConfig, model_id: str,
                       summary: str, extra: dict | None = None) -> Path:
    """Write a ``feature-gbm`` folder: config, label map, the LightGBM text model.

    Parameters
    ----------
    out_dir : str or Path
        The folder (made if missing).
    model_text : str
        The trees in LightGBM's text format.
    context : ContextConfig
        The night-context settings the trees were trained with.
    model_id : str
        The model's name in ``config.json``.
    summary : str
        One line for people.
    extra : dict, optional
        More entries for ``config.json``.

    Returns
    -------
    Path
        The folder.
    """
    d = write_folder_config(out_dir, KIND, model_id, {
        "summary": summary, "preprocess": PreprocessConfig().as_dict(), "context": context.as_dict(),
        "trees": TREES_FILE, "label_map": LABEL_MAP_FILE,
        "scoring": {"inputs": "current epoch, the 4 before it, causal night context", "labels": "current epoch"}},
        extra)
    (d / TREES_FILE).write_text(model_text)
    return d
