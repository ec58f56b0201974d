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

import logging
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import InputFileError, SleepstreamError
from ..metrics import Agreement, agreement
from ..features import feature_transform
from ..night_context import HOURS_COLUMN, N_BASE, ContextConfig, NightContext
from .training import trim_range

log = logging.getLogger(__name__)

SESSION_START_MIN = (5.0, 60.0)       # session start, minutes before sleep onset
EPOCHS_PER_MIN = 2
HELD_OUT_SUBJECT = "00"               # subject 0 (SC4001E0/SC4002E0) never trains a shipped model


@dataclass(frozen=True)
class FeatureTrainConfig:
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
        return {"objective": "multiclass", "num_class": 5, "learning_rate": self.learning_rate,
                "num_leaves": self.num_leaves, "min_data_in_leaf": self.min_data_in_leaf,
                "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0,
                "num_threads": self.threads, "verbose": -1, "seed": self.seed, "deterministic": True}

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True, repr=False)
class FeatureNight:
    """One labelled night as per-epoch base features.

    Parameters
    ----------
    name : str
        e.g. ``SC4011E0``.
    subject : str
        Subject key for subject-wise splits (``01`` for SC4011E0).
    features : numpy.ndarray
        (n_epochs, 9) base features (:data:`sleepnet.features.BASE_FEATURE_NAMES`).
    labels : numpy.ndarray
        (n_epochs,) 0-4, -1 unscored.
    scorable : numpy.ndarray
        (n_epochs,) bool: False where the signal could not be scored (gap, flat...).
    """

    name: str
    subject: str
    features: np.ndarray
    labels: np.ndarray
    scorable: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.scorable is None:
            object.__setattr__(self, "scorable", np.ones(len(self.labels), dtype=bool))

    def __repr__(self) -> str:
        return f"<FeatureNight {self.name} subject {self.subject}: {len(self.labels)} epochs>"


def subject_of(name: str) -> str:
    """Sleep-EDF subject number of a night name (``SC4011E0`` -> ``01``), else the name."""
    m = re.match(r"S[CT]\d(\d\d)\d", name)
    return m.group(1) if m else name


def read_feature_night(path: str | Path) -> FeatureNight:
    """One npz of the shared feature format; one-line :class:`InputFileError` when it does not fit."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as d:
            if "X" not in d or "y" not in d:
                raise InputFileError(f"{p}: needs arrays 'X' (n_epochs, 72) and 'y' (n_epochs,); has {sorted(d.files)}")
            X, y = np.asarray(d["X"]), np.asarray(d["y"])
    except InputFileError:
        raise
    except Exception as exc:
        raise InputFileError(f"{p}: not a readable npz ({exc.__class__.__name__})") from None
    if X.ndim != 2 or X.shape[1] < N_BASE or y.ndim != 1 or len(y) != len(X):
        raise InputFileError(f"{p}: X has shape {X.shape} and y {y.shape}; expected X (n_epochs, 72) "
                             f"(first {N_BASE} columns: Fpz-Cz base features) and y (n_epochs,)")
    if not np.issubdtype(X.dtype, np.number) or not np.isfinite(X[:, :N_BASE]).all():
        raise InputFileError(f"{p}: X holds non-numeric or non-finite feature values")
    y = y.astype(np.int64)
    if np.any((y < -1) | (y > 4)):
        raise InputFileError(f"{p}: y holds values outside 0-4 (W, N1, N2, N3, REM) and -1 (unscored)")
    if not np.any(y >= 0):
        raise InputFileError(f"{p}: no scored epoch in y")
    return FeatureNight(p.stem, subject_of(p.stem), X[:, :N_BASE].astype(np.float64), y)


def read_feature_folder(folder: str | Path) -> list[FeatureNight]:
    """Every ``*.npz`` of ``folder`` (sorted by name); one-line errors for a bad folder or file."""
    d = Path(folder)
    if not d.is_dir():
        raise InputFileError(f"{d}: no such folder of feature nights")
    paths = sorted(d.glob("*.npz"))
    if not paths:
        raise InputFileError(f"{d}: no .npz feature nights in it")
    return [read_feature_night(p) for p in paths]


def nights_from_sources(sources: Sequence, on_night: Callable[[int, int], None] | None = None) -> list[FeatureNight]:
    """Raw labelled nights (:class:`sleepnet.train.datasets.NightSource`) through the one
    preprocessing path: the same epochs and features batch and live scoring make."""
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
    """Mean features of ``feature_set`` over the trimmed, scored, scorable epochs of ``nights``."""
    parts = []
    for n in nights:
        a, b = trim_range(n.labels)
        keep = (n.labels[a:b] >= 0) & n.scorable[a:b]
        parts.append(feature_transform(feature_set, n.features[a:b][keep]))
    return tuple(float(v) for v in np.concatenate(parts).mean(axis=0))


def draw_session_start(labels: np.ndarray, rng: np.random.Generator) -> int:
    """Session start: 5-60 min before the first sleep epoch, at random (epoch index >= 0)."""
    sleep = np.flatnonzero(labels > 0)
    onset = int(sleep[0]) if len(sleep) else 0
    lo, hi = (int(m * EPOCHS_PER_MIN) for m in SESSION_START_MIN)
    return max(0, onset - int(rng.integers(lo, hi + 1)))


def draw_anywhere_start(labels: np.ndarray, rng: np.random.Generator, min_epochs: int = 20) -> int:
    """A session start anywhere in the trimmed night (at least ``min_epochs`` before its end)."""
    a, b = trim_range(labels)
    return int(rng.integers(a, max(a + 1, b - min_epochs)))


def night_rows(night: FeatureNight, context: ContextConfig, start: int, clock_known: bool = True
               ) -> tuple[np.ndarray, np.ndarray]:
    """Rows and labels of the epochs of ``night`` that the protocol scores, for a session
    that starts at epoch ``start``: the trimmed night from the session start on, scored
    epochs with a scorable signal only (``clock_known``: see
    :class:`sleepnet.night_context.NightContext`)."""
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
    start anywhere)."""
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
    """The evaluation session start of a night: drawn as in training, seeded by its name."""
    return draw_session_start(night.labels, np.random.default_rng(zlib.crc32(night.name.encode()) + seed))


def fit_trees(nights: Sequence[FeatureNight], cfg: FeatureTrainConfig) -> tuple[str, ContextConfig]:
    """Train on ``nights``; returns (LightGBM text model, night-context settings)."""
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


def evaluate_nights(model, nights: Sequence[FeatureNight], seed: int = 0) -> tuple[Agreement, dict[str, Agreement], np.ndarray, np.ndarray]:
    """Score each night as a session would (fresh stager from the protocol's session start)
    with a loaded feature model's trees; pooled and per-night agreement, plus the stacked
    true and predicted codes."""
    yt, yp, per = [], [], {}
    for n in nights:
        r, y = night_rows(n, model.context, eval_start(n, seed))
        p = model.trees.predict_proba(r).argmax(axis=1) if len(r) else np.zeros(0, dtype=np.int64)
        per[n.name] = agreement(y, p)
        yt.append(y)
        yp.append(p)
    t, p = np.concatenate(yt), np.concatenate(yp)
    return agreement(t, p), per, t, p


def isolated_codes(model, nights: Sequence[FeatureNight]) -> tuple[np.ndarray, np.ndarray]:
    """True and predicted codes of every trimmed, scored epoch of ``nights`` staged alone
    (as a fresh stager would: no lags, no night)."""
    yt, yp = [], []
    for n in nights:
        a, b = trim_range(n.labels)
        idx = np.arange(a, b)
        idx = idx[(n.labels[idx] >= 0) & n.scorable[idx]]
        yp.append(model.trees.predict_proba(NightContext(model.context).isolated_rows(n.features[idx])).argmax(axis=1))
        yt.append(n.labels[idx])
    return np.concatenate(yt), np.concatenate(yp)


def isolated_agreement(model, nights: Sequence[FeatureNight]) -> Agreement:
    """Agreement of :func:`isolated_codes`."""
    return agreement(*isolated_codes(model, nights))


def in_memory_model(text: str, context: ContextConfig, model_id: str = "in-memory",
                    default_session_start: str = "lights-off"):
    """A :class:`sleepnet.models.feature_gbm.FeatureGbmModel` from a text model, without a folder."""
    from ..models.feature_gbm import FeatureGbmModel
    from ..models.gbm_trees import TreeEnsemble
    from ..preprocess import PreprocessConfig

    return FeatureGbmModel(TreeEnsemble.from_lightgbm_text(text), context, PreprocessConfig(), model_id, Path("."),
                        default_session_start=default_session_start)


def leave_one_subject_out(nights: Sequence[FeatureNight], cfg: FeatureTrainConfig,
                          on_fold: Callable[[int, int], None] | None = None) -> dict:
    """LOSO over the subjects of ``nights``: pooled agreement of every held-out epoch,
    per subject, and of isolated epochs (each staged alone)."""
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

