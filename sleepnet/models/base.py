"""The model layer's common ground: the two protocols, the weights-folder format and the kinds.

A *staging model* (:class:`StagingModel`) is a loaded model of any kind: it names its
preprocessing and makes *stagers*. A *stager* (:class:`Stager`) is the stateful part: fed
epochs in order (one at a time live, all at once in batch), it says each one's stage from
that epoch and those before it, never a later one. Nothing outside ``sleepnet`` asks which
kind a model is.

A weights folder holds ``config.json`` (:data:`CONFIG_FILE`: its ``kind``, format version,
preprocessing and settings), ``label_map.json`` (:data:`LABEL_MAP_FILE`: stage code -> name)
and the model file its kind names. :func:`read_folder_config` makes the checks every folder
gets (both files readable, the label map this code's, the format version
:data:`FORMAT_VERSION`); the kind's own loader checks the rest.

The kinds (:data:`KINDS`) are an immutable table naming, per kind, the module that runs it
and that module's folder loader, ``load_folder(d, cfg)``. The module is imported only when a
model of its kind is loaded: loading the default model never imports torch, which only the
``cnn-lstm`` kind needs. :func:`load_folder_of_any_kind` loads a checked folder of any kind
(the ensemble loads its members with it); :func:`sleepnet.weights.load_model` adds finding a
shipped model by name.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

from ..errors import WeightsError
from ..stages import STAGES

if TYPE_CHECKING:
    from ..predictions import StagePrediction
    from ..preprocess import Epoch, PreprocessConfig

__all__ = ["CONFIG_FILE", "FORMAT_VERSION", "KINDS", "KindSpec", "LABEL_MAP_FILE", "Stager", "StagingModel",
           "folder_loader", "label_map", "load_folder_of_any_kind", "read_folder_config", "read_json"]

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
LABEL_MAP_FILE = "label_map.json"
DEFAULT_KIND = "cnn-lstm"    # the kind of a config.json that names none (the first folders had no kind)


class Stager(Protocol):
    """Stateful epochs -> stages, the same object in batch and live.

    ``session_start``: ``lights-off`` or ``unknown`` (see
    :data:`sleepnet.night_context.SESSION_STARTS`) for a stager that keeps a night clock,
    None for one that keeps none.

    Parameters
    ----------
    *args, **kwargs
        None: a protocol is a type to check models and stagers against, not a class to
        make (:class:`typing.Protocol` gives it this signature).
    """

    session_start: str | None

    def score(self, epochs: Sequence[Epoch]) -> list[StagePrediction]:
        """Stages for ``epochs`` (in order, after every epoch already fed).

        Parameters
        ----------
        epochs : sequence of Epoch
            The next epochs of the night, in order.

        Returns
        -------
        list of StagePrediction
            One per epoch, in order (``UNS`` where unscorable).
        """

    def reset(self) -> None:
        """Forget everything: a new night."""

    def skip(self, n_epochs: int) -> None:
        """Epochs passed unseen (the scorer was down): time moves on, the context breaks.

        Parameters
        ----------
        n_epochs : int
            How many 30-s epochs went by unseen.
        """

    def state(self) -> dict:
        """Night-level state to carry over a restart.

        Returns
        -------
        dict
            JSON-able values that :meth:`restore` takes back.
        """

    def restore(self, state: dict) -> None:
        """Carry on from :meth:`state`.

        Parameters
        ----------
        state : dict
            What :meth:`state` gave.

        Raises
        ------
        ValueError
            A state this model cannot use.
        """


class StagingModel(Protocol):
    """A loaded model of any kind, as :func:`sleepnet.weights.load_model` returns it.

    It has ``kind`` (its kind's name), ``model_id`` (its name in ``config.json``),
    ``source`` (the folder it was loaded from), ``preprocess`` (the
    :class:`~sleepnet.preprocess.PreprocessConfig` it was trained with) and ``summary`` (one
    line for people), and makes stagers.

    Parameters
    ----------
    *args, **kwargs
        None: a protocol is a type to check models and stagers against, not a class to
        make (:class:`typing.Protocol` gives it this signature).
    """

    kind: str
    model_id: str
    source: Path
    preprocess: PreprocessConfig
    summary: str

    def new_stager(self, session_start: str | None = None) -> Stager:
        """A fresh stager for one night.

        Parameters
        ----------
        session_start : str, optional
            ``lights-off`` or ``unknown``: whether the time since the session start is the
            night's clock; None: the model's own default.

        Returns
        -------
        Stager
            A stager at the start of a night.
        """


@dataclass(frozen=True)
class KindSpec:
    """Where a model kind lives.

    Parameters
    ----------
    kind : str
        The kind's name, as ``config.json`` writes it.
    module : str
        The module that runs it (imported only when such a model is loaded).
    loader : str
        The name of that module's folder loader, ``loader(d: Path, cfg: dict) -> model``.
    """

    kind: str
    module: str
    loader: str = "load_folder"


#: The kinds this code runs, by name (read-only).
KINDS: Mapping[str, KindSpec] = MappingProxyType({spec.kind: spec for spec in (
    KindSpec("feature-gbm", "sleepnet.models.feature_gbm"),
    KindSpec("gru", "sleepnet.models.gru"),
    KindSpec("ensemble", "sleepnet.models.ensemble"),
    KindSpec("cnn-lstm", "sleepnet.models.cnn_lstm_stager"),
)})


def label_map() -> dict[str, str]:
    """The label map this code scores with.

    Returns
    -------
    dict of str to str
        Stage code (as a string, ``"0"``..``"4"``) -> stage name (``W`` .. ``REM``).
    """
    return {str(i): s for i, s in enumerate(STAGES)}


def read_json(path: Path) -> dict:
    """A JSON file of a weights folder.

    Parameters
    ----------
    path : Path
        The file.

    Returns
    -------
    dict
        Its object.

    Raises
    ------
    sleepnet.errors.WeightsError
        One line naming the file when it is missing, corrupt or not a JSON object.
    """
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


def read_folder_config(d: Path) -> dict:
    """The ``config.json`` of weights folder ``d``, after the checks every folder gets.

    Parameters
    ----------
    d : Path
        The weights folder.

    Returns
    -------
    dict
        Its ``config.json``, whose label map and format version fit this code.

    Raises
    ------
    sleepnet.errors.WeightsError
        One line naming the file: no such folder, a missing or corrupt file, a label map
        other than :func:`label_map`, a format version other than :data:`FORMAT_VERSION`.
    """
    if not d.is_dir():
        raise WeightsError(f"{d}: no such weights folder")
    cfg = read_json(d / CONFIG_FILE)
    lm = read_json(d / LABEL_MAP_FILE)
    if lm != label_map():
        raise WeightsError(f"{d / LABEL_MAP_FILE}: label map {lm} does not match this code's {label_map()}")
    if cfg.get("format_version") != FORMAT_VERSION:
        raise WeightsError(f"{d / CONFIG_FILE}: format_version {cfg.get('format_version')!r}, "
                           f"this code reads {FORMAT_VERSION}")
    return cfg


def folder_loader(kind: str, config_path: Path) -> Callable[[Path, dict], StagingModel]:
    """The folder loader of a model kind (importing its module now).

    Parameters
    ----------
    kind : str
        The kind, as ``config.json`` names it.
    config_path : Path
        The ``config.json`` that names it (for the error message).

    Returns
    -------
    callable
        ``loader(d, cfg)``: the model of folder ``d`` whose checked ``config.json`` is ``cfg``.

    Raises
    ------
    sleepnet.errors.WeightsError
        ``kind`` is none of :data:`KINDS`.
    """
    spec = KINDS.get(kind)
    if spec is None:
        raise WeightsError(f"{config_path}: unknown model kind {kind!r} (this code runs {', '.join(KINDS)})")
    # __import__ (the import statement's own machinery, unlike importlib.import_module) so that
    # ``python -X importtime`` lists the kind's module like any other import
    return getattr(__import__(spec.module, fromlist=[spec.loader]), spec.loader)


def load_folder_of_any_kind(d: Path) -> StagingModel:
    """Load and check the weights folder ``d``, of whatever kind its ``config.json`` names.

    Parameters
    ----------
    d : Path
        The weights folder (a path; :func:`sleepnet.weights.load_model` also takes a
        shipped model's name).

    Returns
    -------
    StagingModel
        The loaded model, ready to make stagers.

    Raises
    ------
    sleepnet.errors.WeightsError
        One clear line: missing folder or file, corrupt file, unknown kind, a folder that
        does not fit this code.
    """
    cfg = read_folder_config(d)
    return folder_loader(cfg.get("kind", DEFAULT_KIND), d / CONFIG_FILE)(d, cfg)
