"""Shipped models and loading any of them: the one entry point is :func:`load_model`.

``weights/`` (beside the packages) holds one folder per shipped model, each with
``config.json`` (its ``kind``, preprocessing and settings), ``label_map.json``,
``MODEL_CARD.md`` and the figures measured for it. ``weights/__init__.py`` names the
default model (``DEFAULT_MODEL``), in that one place.

Kinds: ``feature-gbm`` (:mod:`sleepnet.models.feature_gbm`, numpy only), ``gru``
(:mod:`sleepnet.models.gru`, numpy only), ``ensemble`` (:mod:`sleepnet.models.ensemble`: member
folders of other kinds, probabilities averaged) and ``cnn-lstm``
(:mod:`sleepnet.models.cnn_lstm_weights`, imports torch only when such a model is loaded). A model
of any kind makes stagers through ``model.new_stager()``; nobody else asks its kind.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import WeightsError
from .stages import STAGES

if TYPE_CHECKING:
    from .predictions import StagingModel

FORMAT_VERSION = 1
WEIGHTS_FILE = "model_weights.pth"     # the CNN–LSTM's state dict
CONFIG_FILE = "config.json"
LABEL_MAP_FILE = "label_map.json"
SEQ_LEN = 5
KINDS = ("feature-gbm", "gru", "ensemble", "cnn-lstm")


def weights_root() -> Path:
    """The repository's ``weights/`` folder (next to the packages)."""
    return Path(__file__).resolve().parent.parent / "weights"


def default_model_name() -> str:
    """The default model's folder name, from ``weights/__init__.py`` (DEFAULT_MODEL)."""
    import weights

    return str(weights.DEFAULT_MODEL)


def shipped_models() -> list[str]:
    """Names of the model folders shipped in ``weights/``."""
    root = weights_root()
    return sorted(p.name for p in root.iterdir() if (p / CONFIG_FILE).is_file()) if root.is_dir() else []


def default_weights_dir() -> Path:
    """The default model's folder, ``weights/<DEFAULT_MODEL>``."""
    return weights_root() / default_model_name()


def resolve_weights_dir(weights_dir: str | Path | None) -> Path:
    """None -> the default model; a folder path -> that folder; a shipped model's name
    (``weights/<name>``) -> its folder. Raises :class:`WeightsError` when none exists."""
    if weights_dir is None:
        return default_weights_dir()
    d = Path(weights_dir)
    if d.is_dir():
        return d
    named = weights_root() / str(weights_dir)
    if d.name == str(weights_dir) and named.is_dir():
        return named
    raise WeightsError(f"{d}: no such weights folder (shipped models: {', '.join(shipped_models()) or 'none'})")


def describe_model(model_id: str) -> str:
    """One line for people about a model named in a hypnogram file: the summary in its
    shipped folder's ``config.json`` when a shipped model has that ``model_id``, else the id."""
    for name in shipped_models():
        try:
            cfg = json.loads((weights_root() / name / CONFIG_FILE).read_text())
        except (OSError, ValueError):
            continue
        if cfg.get("model_id") == model_id and cfg.get("summary"):
            return str(cfg["summary"])
    return model_id


def default_model_summary() -> str:
    """The default model's one-line summary (from its ``config.json``, nothing loaded)."""
    try:
        cfg = json.loads((default_weights_dir() / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return default_model_name()
    return str(cfg.get("summary") or default_model_name())


def label_map() -> dict[str, str]:
    return {str(i): s for i, s in enumerate(STAGES)}


def read_json(path: Path) -> dict:
    """A JSON file of a weights folder; one-line :class:`WeightsError` when missing or corrupt."""
    if not path.exists():
        raise WeightsError(f"{path}: missing (a weights folder needs {CONFIG_FILE}, {LABEL_MAP_FILE} "
                           "and the model file its config names)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WeightsError(f"{path}: corrupt JSON ({exc})") from None
    if not isinstance(data, dict):
        raise WeightsError(f"{path}: expected a JSON object")
    return data


def load_model(weights_dir: str | Path | None = None) -> "StagingModel":
    """Load and check a model folder of any kind.

    Parameters
    ----------
    weights_dir : str or Path, optional
        A folder, or the name of a model shipped in ``weights/``; None loads the default.

    Returns
    -------
    StagingModel
        With ``preprocess``, ``model_id``, ``kind``, ``summary`` and ``new_stager()``.

    Raises
    ------
    WeightsError
        One clear line: missing folder or file, corrupt file, unknown kind, mismatch.
    """
    d = resolve_weights_dir(weights_dir)
    if not d.is_dir():
        raise WeightsError(f"{d}: no such weights folder")
    cfg = read_json(d / CONFIG_FILE)
    lm = read_json(d / LABEL_MAP_FILE)
    if lm != label_map():
        raise WeightsError(f"{d / LABEL_MAP_FILE}: label map {lm} does not match this code's {label_map()}")
    if cfg.get("format_version") != FORMAT_VERSION:
        raise WeightsError(f"{d / CONFIG_FILE}: format_version {cfg.get('format_version')!r}, this code reads {FORMAT_VERSION}")
    kind = cfg.get("kind", "cnn-lstm")
    if kind == "feature-gbm":
        from .models.feature_gbm import load_feature_folder

        return load_feature_folder(d, cfg)
    if kind == "gru":
        from .models.gru import load_gru_folder

        return load_gru_folder(d, cfg)
    if kind == "ensemble":
        from .models.ensemble import load_ensemble_folder

        return load_ensemble_folder(d, cfg, load_model)
    if kind == "cnn-lstm":
        from .models.cnn_lstm_weights import load_cnn_folder

        return load_cnn_folder(d, cfg)
    raise WeightsError(f"{d / CONFIG_FILE}: unknown model kind {kind!r} (this code runs {', '.join(KINDS)})")


def __getattr__(name: str) -> Any:
    """``LoadedModel`` and ``save_model`` (the CNN–LSTM's) stay importable from here;
    they pull in torch, so only on demand."""
    if name in ("LoadedModel", "save_model"):
        from .models import cnn_lstm_weights as cnn_weights

        return getattr(cnn_weights, name)
    raise AttributeError(name)
