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

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..doc_sections import sections_of
from ..errors import WeightsError
from ..night_context import LIGHTS_OFF, ContextConfig, check_session_start
from ..predictions import StagePrediction, predictions_from
from ..preprocess import Epoch, PreprocessConfig
from ..stages import N_STAGES
from . import base
from .gbm_trees import TreeEnsemble, TreeModelError

KIND = "feature-gbm"
TREES_FILE = "model.txt"


@sections_of(base.NightContextStager, """Stateful scorer of the feature model; batch and live feed it the same epochs.

        An unscored epoch gets stage ``UNS`` and never feeds the night baseline; the epochs
        after it have no lags from before it and are flagged ``warmup`` until four scorable
        epochs have come (as with the CNN–LSTM's window).""")
class FeatureGbmStager(base.NightContextStager):
    kind = KIND
    state_start_default = LIGHTS_OFF    # a state written before session starts were told: scored so

    @sections_of(base.Stager.score, """The boosted trees' stages of ``epochs``, scored together as one matrix of
        night-context rows; an epoch is flagged ``warmup`` while the night context holds fewer
        than four epochs.""")
    def score(self, epochs: Sequence[Epoch]) -> list[StagePrediction]:
        rows: list[np.ndarray] = []
        slots: list[tuple[Epoch, bool]] = []
        for e, warm, row in self._rows(epochs):
            slots.append((e, warm))
            if row is not None:
                rows.append(row)
        probs = self.model.trees.predict_proba(np.stack(rows)) if rows else np.zeros((0, N_STAGES))
        return predictions_from(slots, probs)


@dataclass(frozen=True, repr=False)
class FeatureGbmModel(base.NightContextModel, kind=KIND, what="feature stager", stager=FeatureGbmStager):
    """A loaded feature stager.

    Parameters
    ----------
    trees : TreeEnsemble
        The boosted trees (rows of ``context.n_inputs`` inputs -> 5 stages).
    {identity}
    {night_context_inputs}
    """

    trees: TreeEnsemble

    def _contents(self) -> str:
        return f"{self.trees.n_trees} trees"


@sections_of(base.FolderLoader.__call__, """The feature model of a weights folder: its trees with their night-context settings
    and preprocessing; a config that names no ``default_session_start`` means ``lights-off`` (the
    first feature models were trained on sessions started at lights-off only). Refused with one
    line naming the file: an incomplete config, missing or unusable trees, trees of the wrong
    shape, an unknown ``default_session_start``.""")
def load_folder(d: Path, cfg: dict) -> FeatureGbmModel:
    with base.config_entries(d):
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
        raise WeightsError(f"{d / base.CONFIG_FILE}: default_session_start: {exc}") from None
    return FeatureGbmModel(trees=trees, context=ccfg, preprocess=pcfg, default_session_start=start,
                           **base.folder_identity(d, cfg, "feature stager"))


@base.fill_doc
def save_feature_model(out_dir: str | Path, model_text: str, context: ContextConfig, model_id: str,
                       summary: str, extra: dict | None = None) -> Path:
    """Write a ``feature-gbm`` folder: config, label map, the LightGBM text model.

    Parameters
    ----------
    {out_dir}
    model_text : str
        The trees in LightGBM's text format.
    context : ContextConfig
        The night-context settings the trees were trained with.
    {config_tail}
    """
    d = base.write_folder_config(out_dir, KIND, model_id, {
        "summary": summary, "preprocess": PreprocessConfig().as_dict(), "context": context.as_dict(),
        "trees": TREES_FILE},
        {"inputs": "current epoch, the 4 before it, causal night context", "labels": "current epoch"}, extra)
    (d / TREES_FILE).write_text(model_text)
    return d
