"""Shipped models and loading any of them: the one entry point is :func:`load_model`.

``weights/`` (beside the packages) holds one folder per shipped model, each with
``config.json`` (its ``kind``, preprocessing and settings), ``label_map.json``,
``MODEL_CARD.md`` and the figures measured for it. ``weights/__init__.py`` names the
default model (``DEFAULT_MODEL``), in that one place.

Kinds (the table :data:`sleepnet.models.base.KINDS`): ``feature-gbm``
(:mod:`sleepnet.models.feature_gbm`, numpy only), ``gru`` (:mod:`sleepnet.models.gru`, numpy
only), ``ensemble`` (:mod:`sleepnet.models.ensemble`: member folders of other kinds,
probabilities averaged) and ``cnn-lstm`` (:mod:`sleepnet.models.cnn_lstm_stager`, imports torch
only when such a model is loaded). The weights-folder format (config, label map, format
version) is :mod:`sleepnet.models.base`'s. A model of any kind makes stagers through
``model.new_stager()``; nobody else asks its kind.
"""
from __future__ import annotations

import json
from pathlib import Path

from .errors import WeightsError
from .models.base import CONFIG_FILE, StagingModel, load_folder_of_any_kind

__all__ = ["default_model_name", "default_model_summary", "default_weights_dir", "describe_model", "load_model",
           "resolve_weights_dir", "shipped_models", "weights_root"]


def weights_root() -> Path:
    """The repository's ``weights/`` folder (next to the packages).

    Returns
    -------
    Path
        The folder of the shipped models.
    """
    return Path(__file__).resolve().parent.parent / "weights"


def default_model_name() -> str:
    """The default model's folder name, from ``weights/__init__.py`` (``DEFAULT_MODEL``).

    Returns
    -------
    str
        The name of its folder in ``weights/``.
    """
    import weights

    return str(weights.DEFAULT_MODEL)


def shipped_models() -> list[str]:
    """Names of the model folders shipped in ``weights/``.

    Returns
    -------
    list of str
        The folders holding a ``config.json``, sorted (empty without a ``weights/``).
    """
    root = weights_root()
    return sorted(p.name for p in root.iterdir() if (p / CONFIG_FILE).is_file()) if root.is_dir() else []


def default_weights_dir() -> Path:
    """The default model's folder, ``weights/<DEFAULT_MODEL>``.

    Returns
    -------
    Path
        The folder.
    """
    return weights_root() / default_model_name()


def resolve_weights_dir(weights_dir: str | Path | None) -> Path:
    """The folder of a model named by path or by name.

    Parameters
    ----------
    weights_dir : str or Path or None
        None: the default model; a folder path: that folder; a shipped model's name
        (``weights/<name>``): its folder.

    Returns
    -------
    Path
        The folder (not yet checked to be a weights folder).

    Raises
    ------
    sleepnet.errors.WeightsError
        No such folder and no shipped model of that name (the message lists those there are).
    """
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
    """One line for people about a model named in a hypnogram file.

    Parameters
    ----------
    model_id : str
        The ``model_id`` the file names.

    Returns
    -------
    str
        The summary in its shipped folder's ``config.json`` when a shipped model has that
        ``model_id``, else the id itself.
    """
    for name in shipped_models():
        try:
            cfg = json.loads((weights_root() / name / CONFIG_FILE).read_text())
        except (OSError, ValueError):
            continue
        if cfg.get("model_id") == model_id and cfg.get("summary"):
            return str(cfg["summary"])
    return model_id


def default_model_summary() -> str:
    """The default model's one-line summary (from its ``config.json``, nothing loaded).

    Returns
    -------
    str
        The summary, or the model's name where its config has none or cannot be read.
    """
    try:
        cfg = json.loads((default_weights_dir() / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return default_model_name()
    return str(cfg.get("summary") or default_model_name())


def load_model(name_or_path: str | Path | None = None) -> StagingModel:
    """Load a shipped model by name, or a weights folder of any kind by path.

    The one loader (``sleepstream.load_model`` is this function): it finds the folder,
    reads and checks its ``config.json`` and label map
    (:func:`sleepnet.models.base.read_folder_config`) and hands it to its kind's loader
    (:data:`sleepnet.models.base.KINDS`).

    Parameters
    ----------
    name_or_path : str or path-like, optional
        ``None`` for the default shipped model (``weights.DEFAULT_MODEL``); a weights
        folder (``config.json`` with its ``kind``, ``label_map.json``, the model file); or
        the name of a shipped model (its folder name in ``weights/``).

    Returns
    -------
    sleepnet.models.base.StagingModel
        The checked model: ``kind``, ``model_id``, ``source``, ``preprocess``, ``summary``
        and ``new_stager()``.

    Raises
    ------
    sleepnet.errors.WeightsError
        One clear line: a missing folder or file, a corrupt file, an unknown kind, a folder
        that does not fit this code, or no shipped model of that name (the message lists
        the names there are).
    """
    return load_folder_of_any_kind(resolve_weights_dir(name_or_path))
