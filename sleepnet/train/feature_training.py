"""Training and evaluating the feature stager on real labelled nights.

Nights come as per-epoch features: the shared Sleep-EDF feature files (npz with ``X``
(n, 72) whose first nine columns are the Fpz-Cz base features, and ``y`` 0-4), or raw
EDF nights whose features our own preprocessing computes (:func:`nights_from_sources`).

Protocol (the figures in the model cards and ``benchmarks.real_nights``):

* subject-wise: a subject's nights are never on both sides of a split;
* nights trimmed to 30 min of wake before the first and after the last sleep epoch
  (:func:`sleepnet.train.training.trim_range`), the usual Sleep-EDF protocol;
* the session starts 5-60 min before sleep onset, drawn at random (label-blind: nothing
  may lean on knowing when sleep begins); night context runs from there; epochs before
  it do not exist for the scorer and are not scored;
* training: each night with ``draws`` session starts, plus a share of its epochs seen
  alone (no lags, no night yet) so isolated epochs are staged on their own evidence;
  optionally (``unknown_clock``, ``anywhere_draws``) the same sessions again without a
  clock and sessions that start anywhere in the night without one, so that a model
  holds when a session does not start at lights-off (:mod:`sleepnet.train.sessions`).

LightGBM (``pip install lightgbm``) is needed to train only; scoring reads its text model.
"""
from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..doc_sections import filled
from ..errors import InputFileError, SleepstreamError
from ..features import feature_transform
from ..io.feature_nights import FeatureNight
from ..metrics import Agreement, agreement
from ..night_context import HOURS_COLUMN, ContextConfig, NightContext
from .recipe import Recipe
from .training import trim_range

SESSION_START_MIN = (5.0, 60.0)       # session start, minutes before sleep onset
EPOCHS_PER_MIN = 2

#: The parameters of the functions that score nights with a feature model's trees directly
#: (no stager), for :func:`sleepnet.doc_sections.filled`.
_fill_trees = filled(trees_and_nights="""
    model : FeatureGbmModel
        A loaded feature model: its ``trees`` score night-context rows built with its
        ``context``.
    nights : sequence of FeatureNight
        The labelled nights.""")
HELD_OUT_SUBJECT = "00"               # subject 0 (SC4001E0/SC4002E0) never trains a shipped model


@dataclass(frozen=True)
class FeatureTrainConfig(Recipe):
    """Learner and protocol settings.

    Parameters
    ----------
    shrink_epochs : float
        k of the night baseline (see :class:`sleepnet.night_context.ContextConfig`).
    draws : int
        Session starts drawn per training night.
    isolated_fraction : float
        Share of each training night's epochs added again as isolated epochs.
    rounds, learning_rate, num_leaves, min_data_in_leaf : int, float, int, int
        LightGBM settings (boosting rounds, learning rate, leaves per tree, data per leaf).
    threads : int
        LightGBM threads.
    seed : int
        Seeds the session starts and LightGBM.
    unknown_clock : bool
        Each drawn session again with no clock (``hours`` NaN), and isolated epochs
        without one: the model learns to stage with the session start unknown.
    anywhere_draws : int
        Sessions per night that start anywhere in the trimmed night, without a clock.
    feature_set : str
        ``base`` (the default model's absolute band powers, variance and mobility) or
        ``scale-free`` (band shares and ratios only: :func:`sleepnet.features.scale_free_features`).
    """

    shrink_epochs: float = 100.0
    draws: int = 3
    isolated_fraction: float = 0.25
    rounds: int = 150
    learning_rate: float = 0.1
    num_leaves: int = 31
    min_data_in_leaf: int = 50
    threads: int = 2
    seed: int = 0
    unknown_clock: bool = False
    anywhere_draws: int = 0
    feature_set: str = "base"

    @property
    def default_session_start(self) -> str:
        """``lights-off`` for a model trained with a clock only, ``unknown`` for one
        trained for both (written into its config)."""
        return "unknown" if self.unknown_clock else "lights-off"

    def lgb_params(self) -> dict:
        """LightGBM's parameters for these settings (multiclass over the five stages, deterministic).

        Returns
        -------
        dict
            The parameters ``lightgbm.train`` takes.
        """
        return {"objective": "multiclass", "num_class": 5, "learning_rate": self.learning_rate,
                "num_leaves": self.num_leaves, "min_data_in_leaf": self.min_data_in_leaf,
                "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0,
                "num_threads": self.threads, "verbose": -1, "seed": self.seed, "deterministic": True}


def nights_from_sources(sources: Sequence, on_night: Callable[[int, int], None] | None = None) -> list[FeatureNight]:
    """Raw labelled nights (:class:`sleepnet.train.datasets.NightSource`) through the one
    preprocessing path: the same epochs and features batch and live scoring make.

    Parameters
    ----------
    sources : sequence of NightSource
        The labelled raw nights.
    on_night : callable, optional
        ``on_night(done, total)`` after each night.

    Returns
    -------
    list of FeatureNight
        One per source, with its scorable flags; labels beyond the recording's are -1.

    Raises
    ------
    InputFileError
        A night shorter than one 30-s epoch, or with no scored epoch with a scorable signal.
    """
    from ..preprocess import Preprocessor

    out = []
    for i, src in enumerate(sources):
        rec = src.recording
        epochs = Preprocessor(rec.sfreq).push(rec.eeg_uv)
        if not epochs:
            raise InputFileError(f"{src.name}: shorter than one 30-s epoch")
        F = np.stack([e.features for e in epochs])
        ok = np.array([e.scorable for e in epochs])
        y = np.full(len(epochs), -1, dtype=np.int64)
        lab = np.asarray(rec.labels, dtype=np.int64)[:len(epochs)]
        y[:len(lab)] = lab
        if not np.any((y >= 0) & ok):
            raise InputFileError(f"{src.name}: no scored epoch with a scorable signal")
        out.append(FeatureNight(src.name, str(src.subject), F, y, ok))
        if on_night:
            on_night(i + 1, len(sources))
    return out


def population_mean(nights: Sequence[FeatureNight], feature_set: str = "base") -> tuple[float, ...]:
    """Mean features of ``feature_set`` over the trimmed, scored, scorable epochs of ``nights``.

    Parameters
    ----------
    nights : sequence of FeatureNight
        The labelled nights.
    feature_set : str
        ``base`` or ``scale-free`` (:data:`sleepnet.features.FEATURE_SETS`).

    Returns
    -------
    tuple of float
        One mean per feature of the set (the night context's ``pop_mean``).
    """
    parts = []
    for n in nights:
        a, b = trim_range(n.labels)
        keep = (n.labels[a:b] >= 0) & n.scorable[a:b]
        parts.append(feature_transform(feature_set, n.features[a:b][keep]))
    return tuple(float(v) for v in np.concatenate(parts).mean(axis=0))


def draw_session_start(labels: np.ndarray, rng: np.random.Generator) -> int:
    """Session start: 5-60 min before the first sleep epoch, at random (epoch index >= 0).

    Parameters
    ----------
    labels : numpy.ndarray
        (n_epochs,) stage codes of the night: the first code > 0 (not wake, not
        unscored) is sleep onset; a night without one counts from epoch 0.
    rng : numpy.random.Generator
        Draws the lead before onset, uniformly over the 30-s epochs from 5 to 60 min
        (:data:`SESSION_START_MIN`, both ends included).

    Returns
    -------
    int
        The session start's epoch index: onset minus the lead, 0 where onset comes sooner.
    """
    sleep = np.flatnonzero(labels > 0)
    onset = int(sleep[0]) if len(sleep) else 0
    lo, hi = (int(m * EPOCHS_PER_MIN) for m in SESSION_START_MIN)
    return max(0, onset - int(rng.integers(lo, hi + 1)))


def draw_anywhere_start(labels: np.ndarray, rng: np.random.Generator, min_epochs: int = 20) -> int:
    """A session start anywhere in the trimmed night (at least ``min_epochs`` before its end).

    Parameters
    ----------
    labels : numpy.ndarray
        (n_epochs,) stage codes of the night, trimmed to 30 min of wake either side of
        sleep (:func:`~sleepnet.train.training.trim_range`) before the draw.
    rng : numpy.random.Generator
        Draws the start uniformly over the trimmed night's epochs that leave room.
    min_epochs : int
        Epochs (30 s each) the session lasts at least, where the trim allows.

    Returns
    -------
    int
        The session start's epoch index, from the trimmed night's first epoch up to
        ``min_epochs`` before its end (its first epoch where the night is shorter).
    """
    a, b = trim_range(labels)
    return int(rng.integers(a, max(a + 1, b - min_epochs)))


def night_rows(night: FeatureNight, context: ContextConfig, start: int, clock_known: bool = True
               ) -> tuple[np.ndarray, np.ndarray]:
    """Rows and labels of the epochs of ``night`` that the protocol scores, for a session
    that starts at epoch ``start``: the trimmed night from the session start on, scored
    epochs with a scorable signal only (``clock_known``: see
    :class:`sleepnet.night_context.NightContext`).

    Parameters
    ----------
    night : FeatureNight
        The labelled night.
    context : ContextConfig
        The night-context settings.
    start : int
        The epoch index of the session start.
    clock_known : bool
        True: ``hours`` counts from the session start; False: NaN.

    Returns
    -------
    tuple of numpy.ndarray
        (rows (n, n_inputs), labels (n,)) of the scored, scorable epochs.
    """
    a, b = trim_range(night.labels)
    ctx = NightContext(context, clock_known=clock_known)
    rows = ctx.rows_for_night(night.features[start:b], night.scorable[start:b])
    lo = max(a, start)
    R, y = rows[lo - start:], night.labels[lo:b]
    keep = (y >= 0) & night.scorable[lo:b]
    return R[keep], y[keep]


def training_rows(nights: Sequence[FeatureNight], context: ContextConfig, cfg: FeatureTrainConfig
                  ) -> tuple[np.ndarray, np.ndarray]:
    """All training rows: each night with ``cfg.draws`` session starts, plus isolated
    epochs (and, as ``cfg`` asks, the sessions again without a clock and sessions that
    start anywhere).

    Parameters
    ----------
    nights : sequence of FeatureNight
        The labelled nights.
    context : ContextConfig
        The night-context settings.
    cfg : FeatureTrainConfig
        The draws, isolated share, clock and seed.

    Returns
    -------
    tuple of numpy.ndarray
        (rows (n, n_inputs), labels (n,)) of all nights.
    """
    rng = np.random.default_rng(cfg.seed)
    R, Y = [], []
    for n in nights:
        for _ in range(cfg.draws):
            r, y = night_rows(n, context, draw_session_start(n.labels, rng))
            R.append(r)
            Y.append(y)
            if cfg.unknown_clock:
                r = r.copy()
                r[:, HOURS_COLUMN] = np.nan
                R.append(r)
                Y.append(y)
        if cfg.isolated_fraction > 0:
            a, b = trim_range(n.labels)
            idx = np.arange(a, b)
            idx = idx[(n.labels[idx] >= 0) & n.scorable[idx] & (rng.random(len(idx)) < cfg.isolated_fraction)]
            R.append(NightContext(context, clock_known=not cfg.unknown_clock).isolated_rows(n.features[idx]))
            Y.append(n.labels[idx])
        for _ in range(cfg.anywhere_draws):
            r, y = night_rows(n, context, draw_anywhere_start(n.labels, rng), clock_known=False)
            R.append(r)
            Y.append(y)
    return np.concatenate(R), np.concatenate(Y)


def eval_start(night: FeatureNight, seed: int = 0) -> int:
    """The evaluation session start of a night: drawn as in training, seeded by its name.

    Parameters
    ----------
    night : FeatureNight
        The labelled night.
    seed : int
        Added to the seed of the night's name (another draw).

    Returns
    -------
    int
        The epoch index of the session start.
    """
    return draw_session_start(night.labels, np.random.default_rng(zlib.crc32(night.name.encode()) + seed))


def fit_trees(nights: Sequence[FeatureNight], cfg: FeatureTrainConfig) -> tuple[str, ContextConfig]:
    """Train on ``nights``; returns (LightGBM text model, night-context settings).

    Parameters
    ----------
    nights : sequence of FeatureNight
        The labelled nights.
    cfg : FeatureTrainConfig
        Learner and protocol settings.

    Returns
    -------
    tuple
        (LightGBM's text model as str, its :class:`~sleepnet.night_context.ContextConfig`).

    Raises
    ------
    SleepstreamError
        LightGBM is not installed, or the nights do not hold all five stages.
    """
    try:
        import lightgbm as lgb
    except ImportError:
        raise SleepstreamError("training the feature stager needs LightGBM: pip install lightgbm") from None
    context = ContextConfig(pop_mean=population_mean(nights, cfg.feature_set), shrink_epochs=cfg.shrink_epochs,
                            feature_set=cfg.feature_set)
    X, y = training_rows(nights, context, cfg)
    if len(np.unique(y)) < 5:
        raise SleepstreamError(f"the training nights hold {len(np.unique(y))} of the 5 stages; need all five")
    booster = lgb.train(cfg.lgb_params(), lgb.Dataset(X, y), cfg.rounds)
    return booster.model_to_string(), context


@_fill_trees
def evaluate_nights(model, nights: Sequence[FeatureNight], seed: int = 0) -> tuple[Agreement, dict[str, Agreement], np.ndarray, np.ndarray]:
    """Score each night as a session would (fresh stager from the protocol's session start)
    with a loaded feature model's trees; pooled and per-night agreement, plus the stacked
    true and predicted codes.

    Parameters
    ----------
    {trees_and_nights}
    seed : int
        Moves each night's session start (:func:`eval_start`).

    Returns
    -------
    tuple
        (pooled Agreement, dict of Agreement by night name, true codes, predicted codes).
    """
    yt, yp, per = [], [], {}
    for n in nights:
        r, y = night_rows(n, model.context, eval_start(n, seed))
        p = model.trees.predict_proba(r).argmax(axis=1) if len(r) else np.zeros(0, dtype=np.int64)
        per[n.name] = agreement(y, p)
        yt.append(y)
        yp.append(p)
    t, p = np.concatenate(yt), np.concatenate(yp)
    return agreement(t, p), per, t, p


@_fill_trees
def isolated_codes(model, nights: Sequence[FeatureNight]) -> tuple[np.ndarray, np.ndarray]:
    """True and predicted codes of every trimmed, scored epoch of ``nights`` staged alone
    (as a fresh stager would: no lags, no night).

    Parameters
    ----------
    {trees_and_nights}

    Returns
    -------
    tuple of numpy.ndarray
        (true codes, predicted codes).
    """
    yt, yp = [], []
    for n in nights:
        a, b = trim_range(n.labels)
        idx = np.arange(a, b)
        idx = idx[(n.labels[idx] >= 0) & n.scorable[idx]]
        yp.append(model.trees.predict_proba(NightContext(model.context).isolated_rows(n.features[idx])).argmax(axis=1))
        yt.append(n.labels[idx])
    return np.concatenate(yt), np.concatenate(yp)


@_fill_trees
def isolated_agreement(model, nights: Sequence[FeatureNight]) -> Agreement:
    """Agreement of :func:`isolated_codes`.

    Parameters
    ----------
    {trees_and_nights}

    Returns
    -------
    Agreement
        Over every trimmed, scored epoch staged alone.
    """
    return agreement(*isolated_codes(model, nights))


def in_memory_model(text: str, context: ContextConfig, model_id: str = "in-memory",
                    default_session_start: str = "lights-off"):
    """A :class:`sleepnet.models.feature_gbm.FeatureGbmModel` from a text model, without a folder.

    Parameters
    ----------
    text : str
        LightGBM's text model (:func:`fit_trees`).
    context : ContextConfig
        Its night-context settings.
    model_id : str
        The model's identifier.
    default_session_start : str
        ``lights-off`` or ``unknown``: the session start its stagers assume.

    Returns
    -------
    object
        The feature model (source folder ``.``).
    """
    from ..models.feature_gbm import FeatureGbmModel
    from ..models.gbm_trees import TreeEnsemble
    from ..preprocess import PreprocessConfig

    return FeatureGbmModel(TreeEnsemble.from_lightgbm_text(text), context=context, default_session_start=default_session_start,
                           preprocess=PreprocessConfig(), model_id=model_id, source=Path("."))


def leave_one_subject_out(nights: Sequence[FeatureNight], cfg: FeatureTrainConfig,
                          on_fold: Callable[[int, int], None] | None = None) -> dict:
    """LOSO over the subjects of ``nights``: pooled agreement of every held-out epoch,
    per subject, and of isolated epochs (each staged alone).

    Parameters
    ----------
    nights : sequence of FeatureNight
        The labelled nights.
    cfg : FeatureTrainConfig
        Learner and protocol settings of every fold.
    on_fold : callable, optional
        ``on_fold(done, total)`` after each fold.

    Returns
    -------
    dict
        ``pooled`` and ``isolated`` Agreement, and ``per_subject`` (Agreement by subject).

    Raises
    ------
    SleepstreamError
        The nights hold fewer than two subjects.
    """
    subjects = sorted({n.subject for n in nights})
    if len(subjects) < 2:
        raise SleepstreamError("leave-one-subject-out needs nights of at least two subjects")
    yt, yp, it, ip, per = [], [], [], [], {}
    for k, s in enumerate(subjects):
        train = [n for n in nights if n.subject != s]
        test = [n for n in nights if n.subject == s]
        text, context = fit_trees(train, cfg)
        model = in_memory_model(text, context)
        pooled, _, t, p = evaluate_nights(model, test)
        per[s] = pooled
        yt.append(t)
        yp.append(p)
        t, p = isolated_codes(model, test)
        it.append(t)
        ip.append(p)
        if on_fold:
            on_fold(k + 1, len(subjects))
    return {"pooled": agreement(np.concatenate(yt), np.concatenate(yp)),
            "isolated": agreement(np.concatenate(it), np.concatenate(ip)),
            "per_subject": per}

