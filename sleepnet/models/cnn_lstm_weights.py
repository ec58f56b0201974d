"""Loading and saving a CNN–LSTM weights folder (model kind ``cnn-lstm``): it holds
``model_weights.pth`` (a state dict), ``config.json`` (architecture + preprocessing),
``label_map.json`` and ``MODEL_CARD.md``. Loading checks the files against this code and
fails with one clear line on any mismatch or corrupt file. Imports torch: only loaded
when a CNN–LSTM is (see :func:`sleepnet.weights.load_model`).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, fields
from pathlib import Path

import torch

from ..errors import WeightsError
from ..preprocess import PreprocessConfig
from ..stages import STAGES
from ..weights import (CONFIG_FILE, FORMAT_VERSION, LABEL_MAP_FILE, SEQ_LEN, WEIGHTS_FILE, label_map, read_json,
                      resolve_weights_dir)
from .cnn_lstm import CausalSleepNet, ModelConfig

log = logging.getLogger(__name__)

KIND = "cnn-lstm"


@dataclass(frozen=True)
class LoadedModel:
    """A CNN–LSTM in eval mode with the configuration it was trained with.

    Parameters
    ----------
    net : CausalSleepNet
        The network, eval mode.
    model_config : ModelConfig
        Its architecture.
    preprocess : PreprocessConfig
        The preprocessing it was trained with.
    model_id : str
        Its name in ``config.json``.
    source : Path
        The folder it was loaded from.
    summary : str
        One line for people: what it is, what it was trained on, its real figures.
    """

    net: CausalSleepNet
    model_config: ModelConfig
    preprocess: PreprocessConfig
    model_id: str
    source: Path
    summary: str = "CNN–LSTM"
    kind: str = KIND

    def new_stager(self, session_start: str | None = None):
        """A fresh :class:`sleepnet.models.cnn_sequence.SequenceScorer` for one night
        (``session_start`` is taken and ignored: the CNN–LSTM keeps no clock)."""
        from .cnn_sequence import SequenceScorer

        return SequenceScorer(self)


def load_model(weights_dir: str | Path | None = None) -> LoadedModel:
    """Load and check a CNN–LSTM weights folder; raises :class:`WeightsError` with one
    clear line. Prefer :func:`sleepnet.weights.load_model`, which loads any kind."""
    d = resolve_weights_dir(weights_dir)
    cfg = read_json(d / CONFIG_FILE)
    return load_cnn_folder(d, cfg)


def load_cnn_folder(d: Path, cfg: dict) -> LoadedModel:
    """The CNN–LSTM of folder ``d`` whose ``config.json`` is ``cfg`` (already checked
    for its format version and label map)."""
    try:
        known = {f.name for f in fields(ModelConfig)}
        unknown = set(cfg["model"]) - known
        if unknown:
            raise WeightsError(f"{d / CONFIG_FILE}: unknown model settings {sorted(unknown)}")
        mcfg = ModelConfig(**cfg["model"])
        pcfg = PreprocessConfig.from_dict(cfg["preprocess"])
    except WeightsError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"{d / CONFIG_FILE}: incomplete or invalid config ({exc.__class__.__name__}: {exc})") from None
    if mcfg.seq_len != SEQ_LEN:
        raise WeightsError(f"{d / CONFIG_FILE}: sequence length {mcfg.seq_len}, this code scores windows of {SEQ_LEN}")
    if mcfg.n_classes != len(STAGES):
        raise WeightsError(f"{d / CONFIG_FILE}: {mcfg.n_classes} classes, expected {len(STAGES)}")
    if (mcfg.sfreq_hz, mcfg.epoch_s) != (pcfg.sfreq_hz, pcfg.epoch_s):
        raise WeightsError(f"{d / CONFIG_FILE}: model expects {mcfg.sfreq_hz} Hz x {mcfg.epoch_s} s but preprocessing gives {pcfg.sfreq_hz} Hz x {pcfg.epoch_s} s")
    wpath = d / WEIGHTS_FILE
    if not wpath.exists():
        raise WeightsError(f"{wpath}: missing")
    try:
        state = torch.load(wpath, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"{wpath}: corrupt or unreadable state dict ({exc.__class__.__name__})") from None
    net = CausalSleepNet(mcfg)
    try:
        net.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise WeightsError(f"{wpath}: weights do not fit the architecture in {CONFIG_FILE} ({first})") from None
    net.eval()
    return LoadedModel(net=net, model_config=mcfg, preprocess=pcfg,
                       model_id=str(cfg.get("model_id", d.name)), source=d,
                       summary=str(cfg.get("summary", f"CNN–LSTM {cfg.get('model_id', d.name)}")))


def save_model(out_dir: str | Path, net: CausalSleepNet, preprocess: PreprocessConfig,
               model_id: str, extra: dict | None = None) -> Path:
    """Write the weights folder layout (state dict, config, label map)."""
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), d / WEIGHTS_FILE)
    cfg = {"format_version": FORMAT_VERSION, "kind": KIND, "model_id": model_id,
           "model": net.cfg.as_dict(), "preprocess": preprocess.as_dict(),
           "label_map": LABEL_MAP_FILE, "scoring": {"sequence_length": SEQ_LEN, "labels": "last epoch of the window"}}
    if extra:
        cfg.update(extra)
    (d / CONFIG_FILE).write_text(json.dumps(cfg, indent=2) + "\n")
    (d / LABEL_MAP_FILE).write_text(json.dumps(label_map(), indent=2) + "\n")
    return d
