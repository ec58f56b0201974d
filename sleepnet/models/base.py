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
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, ClassVar, Protocol, TypeVar

import numpy as np

from ..doc_sections import filled, sections_of
from ..errors import WeightsError
from ..night_context import LIGHTS_OFF, N_LAGS, NightContext, check_session_start
from ..stages import STAGES

if TYPE_CHECKING:
    from ..night_context import ContextConfig
    from ..predictions import StagePrediction
    from ..preprocess import Epoch, PreprocessConfig

__all__ = ["CONFIG_FILE", "DOC_FRAGMENTS", "FORMAT_VERSION", "KINDS", "FolderLoader", "FolderModel", "KindSpec", "LABEL_MAP_FILE",
           "NightContextModel", "NightContextStager", "Stager", "StagingModel", "check_state_owner", "config_entries", "fill_doc",
           "folder_identity", "folder_loader", "label_map", "load_folder_of_any_kind", "read_folder_config",
           "read_json", "write_folder_config"]

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
LABEL_MAP_FILE = "label_map.json"
DEFAULT_KIND = "cnn-lstm"    # the kind of a config.json that names none (the first folders had no kind)

#: Docstring fragments for :func:`sleepnet.doc_sections.filled`: the parameters that every
#: kind's module describes alike (a line ``{identity}`` in a docstring decorated with
#: :func:`fill_doc` stands for the preprocess, model_id, source and summary every :class:`FolderModel` has).
DOC_FRAGMENTS: Mapping[str, str] = MappingProxyType({
    "identity": """
        preprocess : PreprocessConfig
            The preprocessing it was trained with (the one preprocessing path; a feature
            model's features come from its 100-Hz signal before the band-pass).
        model_id : str
            Its name in ``config.json``.
        source : Path
            The folder it was loaded from.
        summary : str
            One line for people: what it is, what it was trained on, its real figures
            (empty: the kind's :attr:`FolderModel.what`).""",
    "night_context_inputs": """
        context : ContextConfig
            Population means and shrinkage of the night baseline.
        default_session_start : str
            The session start its stagers assume unless told (``config.json``'s
            ``default_session_start``; where the config names none, the kind's loader
            says which it takes).""",
    "out_dir": """
        out_dir : str or Path
            The folder (made if missing).""",
    "config_tail": """
        model_id : str
            The model's name in ``config.json``.
        summary : str
            One line for people.
        extra : dict, optional
            More entries for ``config.json``.

        Returns
        -------
        Path
            The folder.""",
})

_Documented = TypeVar("_Documented")


def fill_doc(obj: _Documented) -> _Documented:
    """Fill each line ``{name}`` of ``obj``'s docstring with ``DOC_FRAGMENTS[name]`` (a decorator).

    Parameters
    ----------
    obj : class or function
        A kind module's function or class whose docstring names fragments of
        :data:`DOC_FRAGMENTS` (the kinds' model classes are filled by :class:`FolderModel`).

    Returns
    -------
    class or function
        ``obj`` itself, its ``__doc__`` filled (:func:`sleepnet.doc_sections.filled`).

    Raises
    ------
    KeyError
        A name that :data:`DOC_FRAGMENTS` does not hold.
    """
    return filled(**DOC_FRAGMENTS)(obj)


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

        Raises
        ------
        ValueError
            An epoch this stager cannot stage: for the kinds that stage from features
            (``feature-gbm``, ``gru``, an ensemble of them), a scorable epoch without
            ``features``.
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


class FolderLoader(Protocol):
    """A kind's folder loader, ``load_folder(d, cfg)`` in the kind's module (see :data:`KINDS`).

    Parameters
    ----------
    *args, **kwargs
        None: a protocol is a type to check models and stagers against, not a class to
        make (:class:`typing.Protocol` gives it this signature).
    """

    def __call__(self, d: Path, cfg: dict) -> StagingModel:
        """The model of the weights folder ``d``.

        Parameters
        ----------
        d : Path
            The folder.
        cfg : dict
            Its ``config.json`` (format version and label map already checked by
            :func:`~sleepnet.models.base.read_folder_config`).

        Returns
        -------
        StagingModel
            The loaded model of the loader's kind.

        Raises
        ------
        sleepnet.errors.WeightsError
            One line naming the file, on any problem with the folder.
        """


@fill_doc
@dataclass(frozen=True, repr=False, kw_only=True)
class FolderModel:
    """What the loaded models of every kind have and do alike: who they are, how their
    input is prepared, and making stagers and showing themselves.

    The base of each kind's model class, a frozen dataclass that adds the kind's own fields
    (given first, by position or name; these are given by name). The class statement names
    the kind, what it is in words and its stager::

        class GruModel(NightContextModel, kind="gru", what="recurrent stager", stager=GruStager):

    (all three, or none for a base shared by kinds), and the class says in ``_contents()``
    what it holds (``750 trees``), so that its ``repr`` is ``<FeatureGbmModel model_id (750
    trees) from folder>``. Its docstring, and each subclass's, is filled from
    :data:`DOC_FRAGMENTS` when it is defined.

    Parameters
    ----------
    {identity}
    """

    #: The kind's name, as ``config.json`` writes it (one of :data:`KINDS`).
    kind: ClassVar[str]
    #: The kind's stager, made as ``stager_class(model, session_start)``.
    stager_class: ClassVar[Callable[..., Stager]]
    #: What a model of the kind is, in words: the summary of one made in memory with none.
    what: ClassVar[str]

    preprocess: PreprocessConfig
    model_id: str
    source: Path | None
    summary: str = ""

    def __post_init__(self) -> None:
        if not self.summary:
            object.__setattr__(self, "summary", self.what)

    def __init_subclass__(cls, *, kind: str | None = None, what: str | None = None,
                          stager: Callable[..., Stager] | None = None, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        given = (kind, what, stager)
        if any(v is not None for v in given):
            if any(v is None for v in given):
                raise TypeError(f"{cls.__name__}: a kind's model class names kind=, what= and stager= together")
            if kind not in KINDS:
                raise ValueError(f"{cls.__name__}: kind={kind!r} is not in KINDS ({', '.join(KINDS)})")
            cls.kind, cls.what, cls.stager_class = kind, what, stager
        fill_doc(cls)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.model_id} ({self._contents()}) from {self.source}>"

    def _contents(self) -> str:
        """What the model holds, in a few words, for its ``repr``."""
        raise NotImplementedError

    @sections_of(StagingModel.new_stager, "A fresh stager of the model's kind for one night.")
    def new_stager(self, session_start: str | None = None) -> Stager:
        return self.stager_class(self, session_start)


@dataclass(frozen=True, repr=False, kw_only=True)
class NightContextModel(FolderModel):
    """A model whose stagers are :class:`NightContextStager`: what they read of it beside
    what every :class:`FolderModel` has (the ``feature-gbm`` and ``gru`` kinds).

    Parameters
    ----------
    {identity}
    {night_context_inputs}
    """

    context: ContextConfig
    default_session_start: str


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
        The name of that module's folder loader (a :class:`FolderLoader`).
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
        A JSON file of a weights folder (:data:`CONFIG_FILE` or :data:`LABEL_MAP_FILE`).

    Returns
    -------
    dict
        The file's top-level JSON object.

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
        The weights folder: :data:`CONFIG_FILE`, :data:`LABEL_MAP_FILE` and the model
        file its kind names.

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


def folder_loader(kind: str, config_path: Path) -> FolderLoader:
    """The folder loader of a model kind (importing its module now).

    Parameters
    ----------
    kind : str
        The kind, as ``config.json`` names it.
    config_path : Path
        The ``config.json`` that names it (for the error message).

    Returns
    -------
    FolderLoader
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


@contextmanager
def config_entries(d: Path) -> Iterator[None]:
    """Read entries of the ``config.json`` of folder ``d`` inside this block: a missing key or a
    value of the wrong type or range becomes one line naming the file.

    Parameters
    ----------
    d : Path
        The weights folder whose config the block reads.

    Yields
    ------
    None
        The block runs; a :class:`~sleepnet.errors.WeightsError` it raises passes unchanged.

    Raises
    ------
    sleepnet.errors.WeightsError
        ``incomplete or invalid config`` with the error's class and text, for a
        KeyError, TypeError or ValueError raised in the block.
    """
    try:
        yield
    except WeightsError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"{d / CONFIG_FILE}: incomplete or invalid config ({exc.__class__.__name__}: {exc})") from None


def folder_identity(d: Path, cfg: dict, what: str) -> dict:
    """The names every loaded model takes from its folder: ``model_id``, ``source`` and ``summary``.

    Parameters
    ----------
    d : Path
        The weights folder.
    cfg : dict
        Its ``config.json``.
    what : str
        What the model is, in words (``feature stager``): the summary where the config gives
        none is this and the model's name.

    Returns
    -------
    dict
        ``model_id`` (the config's, else the folder's name), ``source`` (``d``) and
        ``summary`` (the config's, else ``what`` and the name), as keyword arguments of a
        model class.
    """
    return {"model_id": str(cfg.get("model_id", d.name)), "source": d,
            "summary": str(cfg.get("summary", f"{what} {cfg.get('model_id', d.name)}"))}


def write_folder_config(out_dir: str | Path, kind: str, model_id: str, settings: dict, scoring: dict,
                        extra: dict | None = None) -> Path:
    """Make a weights folder and write its ``config.json`` and ``label_map.json``.

    Parameters
    ----------
    out_dir : str or Path
        The folder (made if missing); the kind writes its model file there itself.
    kind : str
        The model kind, one of :data:`KINDS`.
    model_id : str
        The model's name in ``config.json``.
    settings : dict
        The kind's entries of ``config.json``, in the order they are written (after
        ``format_version``, ``kind`` and ``model_id``; before ``label_map``, the name of
        :data:`LABEL_MAP_FILE`).
    scoring : dict
        What the model scores from and which epoch its stage is of, for people
        (``{"inputs": ..., "labels": "current epoch"}``): the entry ``scoring``, written last.
    extra : dict, optional
        More entries for ``config.json`` (they replace entries of the same name).

    Returns
    -------
    Path
        The folder.
    """
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    cfg = {"format_version": FORMAT_VERSION, "kind": kind, "model_id": model_id, **settings,
           "label_map": LABEL_MAP_FILE, "scoring": scoring}
    if extra:
        cfg.update(extra)
    (d / CONFIG_FILE).write_text(json.dumps(cfg, indent=2) + "\n")
    (d / LABEL_MAP_FILE).write_text(json.dumps(label_map(), indent=2) + "\n")
    return d


def check_state_owner(state: dict, kind: str, model_id: str) -> None:
    """Check that a stager's saved night state is one that a model of this kind and name wrote.

    Parameters
    ----------
    state : dict
        The saved state (:meth:`Stager.state`).
    kind : str
        The kind of the stager that would take it.
    model_id : str
        The name of that stager's model.

    Raises
    ------
    ValueError
        A state of another kind or model, naming both models.
    """
    if state.get("kind") != kind or state.get("model_id") != model_id:
        raise ValueError(f"night state of model {state.get('model_id')!r}, not {model_id!r}")


class NightContextStager:
    """The night-clock half of a stager that builds rows with a
    :class:`~sleepnet.night_context.NightContext` (the ``feature-gbm`` and ``gru`` kinds):
    session start, context, reset, skip, state and restore; the kind adds how a row becomes
    probabilities.

    Parameters
    ----------
    model : StagingModel
        The loaded model: its ``context`` (a :class:`~sleepnet.night_context.ContextConfig`),
        ``model_id`` and ``default_session_start``.
    session_start : str, optional
        Whether the time since the session started is the night's clock (``lights-off``)
        or there is none (``unknown``); None: ``model.default_session_start``.

    Raises
    ------
    ValueError
        A session start other than those two.
    """

    kind = ""                     # the kind's name, set by each kind's stager
    state_start_default = ""      # the session start of a saved state that holds none ("": refused)

    def __init__(self, model: StagingModel, session_start: str | None = None) -> None:
        self.model = model
        self.session_start = check_session_start(session_start or model.default_session_start)
        self._ctx = NightContext(model.context, clock_known=self.session_start == LIGHTS_OFF)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.model.model_id}, session start {self.session_start}: {self._ctx!r}>"

    def reset(self) -> None:
        """Forget the night: a new session."""
        self._ctx.reset()

    @sections_of(Stager.skip, "Epochs passed unseen: the clock moves on, the lags break.")
    def skip(self, n_epochs: int) -> None:
        self._ctx.skip(n_epochs)

    def state(self) -> dict:
        """The night so far, as JSON-ready values (for the state file).

        Returns
        -------
        dict
            ``kind``, ``model_id``, ``session_start`` and the night context's state.
        """
        return {"kind": self.kind, "model_id": self.model.model_id, "session_start": self.session_start,
                "context": self._ctx.state()}

    def restore(self, state: dict) -> None:
        """Carry on from :meth:`state`, in the session start it holds.

        Parameters
        ----------
        state : dict
            A saved night of this model (one without a session start is taken as
            :attr:`state_start_default` where the kind sets one).

        Raises
        ------
        ValueError
            A state of another model, an unknown session start or a context of another shape.
        """
        self._restore_context(state, self._state_start(state))

    def _state_start(self, state: dict) -> str:
        """The session start of a saved state, after checking whose state it is."""
        check_state_owner(state, self.kind, self.model.model_id)
        return check_session_start(state.get("session_start", self.state_start_default))

    def _restore_context(self, state: dict, start: str) -> None:
        self._ctx.restore(state["context"])
        self.session_start = start
        self._ctx.clock_known = start == LIGHTS_OFF

    def _rows(self, epochs: Sequence[Epoch]) -> Iterator[tuple[Epoch, bool, np.ndarray | None]]:
        """Each epoch in order with its ``warmup`` flag and its night-context row (None for an
        unscorable epoch, which the context counts as unscored)."""
        for e in epochs:
            if not e.scorable:
                self._ctx.unscored()
                yield e, False, None
                continue
            if e.features is None:
                raise ValueError(f"epoch {e.index} carries no features (make epochs with sleepnet.preprocess)")
            warm = self._ctx.n_lags < N_LAGS
            yield e, warm, self._ctx.row(e.features)
