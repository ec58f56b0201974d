"""Loading and saving the frozen model: ``weights/`` holds ``model_weights.pth`` (a state
dict), ``config.json`` (architecture + preprocessing), ``label_map.json`` and
``MODEL_CARD.md``. Loading checks the files against this code and fails with one clear
line on any mismatch or corrupt file.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, fields
from pathlib import Path

import torch

from .errors import WeightsError
from .model import CausalSleepNet, ModelConfig
from .preprocess import PreprocessConfig
from .stages import STAGES

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
WEIGHTS_FILE = "model_weights.pth"
CONFIG_FILE = "config.json"
LABEL_MAP_FILE = "label_map.json"
SEQ_LEN = 5


def default_weights_dir() -> Path:
    """The repository's ``weights/`` folder (next to the packages)."""
    return Path(__file__).resolve().parent.parent / "weights"


def label_map() -> dict[str, str]:
    return {str(i): s for i, s in enumerate(STAGES)}


@dataclass(frozen=True)
class LoadedModel:
    """A model in eval mode with the configuration it was trained with."""

    net: CausalSleepNet
    model_config: ModelConfig
    preprocess: PreprocessConfig
    model_id: str
    source: Path


def _read_json(path: Path) -> dict:
    if not path.exists():
        raise WeightsError(f"{path}: missing (a weights folder needs {WEIGHTS_FILE}, {CONFIG_FILE}, {LABEL_MAP_FILE})")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WeightsError(f"{path}: corrupt JSON ({exc})") from None


def load_model(weights_dir: str | Path | None = None) -> LoadedModel:
    """Load and check a weights folder; raises :class:`WeightsError` with one clear line."""
    d = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    if not d.is_dir():
        raise WeightsError(f"{d}: no such weights folder")
    cfg = _read_json(d / CONFIG_FILE)
    lm = _read_json(d / LABEL_MAP_FILE)
    if lm != label_map():
        raise WeightsError(f"{d / LABEL_MAP_FILE}: label map {lm} does not match this code's {label_map()}")
    if cfg.get("format_version") != FORMAT_VERSION:
        raise WeightsError(f"{d / CONFIG_FILE}: format_version {cfg.get('format_version')!r}, this code reads {FORMAT_VERSION}")
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
                       model_id=str(cfg.get("model_id", d.name)), source=d)


def save_model(out_dir: str | Path, net: CausalSleepNet, preprocess: PreprocessConfig,
               model_id: str, extra: dict | None = None) -> Path:
    """Write the weights folder layout (state dict, config, label map)."""
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), d / WEIGHTS_FILE)
    cfg = {"format_version": FORMAT_VERSION, "model_id": model_id,
           "model": net.cfg.as_dict(), "preprocess": preprocess.as_dict(),
           "label_map": LABEL_MAP_FILE, "scoring": {"sequence_length": SEQ_LEN, "labels": "last epoch of the window"}}
    if extra:
        cfg.update(extra)
    (d / CONFIG_FILE).write_text(json.dumps(cfg, indent=2) + "\n")
    (d / LABEL_MAP_FILE).write_text(json.dumps(label_map(), indent=2) + "\n")
    return d
