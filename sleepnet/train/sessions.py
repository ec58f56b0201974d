"""Evaluating any model's stager on real feature nights, for sessions that start at
lights-off and for sessions that do not.

Every figure here comes from the stager the scorer itself uses (``model.new_stager()``,
fed :class:`sleepnet.preprocess.Epoch` objects that carry the night's features), so what
is measured is what live and batch scoring do. The cases (all on nights trimmed to 30 min
of wake either side of sleep, :func:`sleepnet.train.training.trim_range`):

* ``lights-off``: the protocol's session, started 5-60 min before sleep onset
  (:func:`sleepnet.train.feature_training.eval_start`), to the end of the trimmed night;
* ``2h`` / ``4h``: a session started 2 h / 4 h after that start, to the end;
* ``rem-onsets``: a 30-min session around each REM onset (15 min before it to 15 min
  after; an onset is a REM epoch after at least 10 min without REM), each a fresh
  stager; REM recall and F1 are the figures that matter there;
* ``isolated``: every trimmed, scored epoch staged alone by a fresh stager.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..doc_sections import filled
from ..io.feature_nights import FeatureNight
from ..metrics import Agreement, agreement
from ..preprocess import Epoch
from .feature_training import eval_start
from .training import trim_range

EPOCHS_PER_HOUR = 120
CASES = ("lights-off", "2h", "4h", "rem-onsets")
REM_WINDOW_EPOCHS = 60            # 30 min
REM_FREE_BEFORE_EPOCHS = 20       # an onset follows at least 10 min without REM
REM = 4
_EMPTY = np.zeros(0, dtype=np.float32)

#: Parameter and return texts that the scoring functions below share (:func:`sleepnet.doc_sections.filled`).
_fill = filled(
    feature_model="""
        model : StagingModel
            A model that stages from features (:func:`scores_from_features`): a feature
            stager, a GRU or an ensemble of them.""",
    session_start="""
        session_start : str, optional
            ``lights-off`` or ``unknown``, given to each fresh stager; None: the model's
            ``default_session_start``.""",
    codes="""
        true : numpy.ndarray
            (n,) int64 true stage codes (0-4) of the epochs that count, in order.
        predicted : numpy.ndarray
            (n,) int64 predicted codes of the same epochs.""",
    key_case="""
        key : str
            The model, as :meth:`add` keyed it (``name`` or ``name@session_start``).
        case : str
            One of :data:`CASES`, or ``isolated``.""",
)


@dataclass(frozen=True)
class Cut:
    """A session over epochs [start, stop) of a night, scored over [score_from, stop).

    Parameters
    ----------
    start : int
        The session's first epoch (the stager starts here).
    stop : int
        One past its last epoch.
    score_from : int
        The first epoch that counts in the figures (the trimmed night's start, or later).
    """

    start: int
    stop: int
    score_from: int


def scores_from_features(model) -> bool:
    """Whether a model stages from each epoch's features alone, so feature nights (which
    hold no signal) can be scored: a model with night-context settings, or an ensemble
    of such models.

    Parameters
    ----------
    model : StagingModel
        Any loaded model.

    Returns
    -------
    bool
        True for a feature stager, a GRU, or an ensemble of them.
    """
    members = getattr(model, "members", None)
    if members is not None:
        return all(scores_from_features(m) for m in members)
    return getattr(model, "context", None) is not None


def feature_epochs(night: FeatureNight, start: int, stop: int) -> list[Epoch]:
    """Epochs [start, stop) of a night as the stager takes them (features, scorable; no signal).

    Parameters
    ----------
    night : FeatureNight
        The night.
    start, stop : int
        The epochs, ``stop`` excluded.

    Returns
    -------
    list of Epoch
        One per epoch, with its features and whether it is scorable.
    """
    return [Epoch(index=i, data=_EMPTY, scorable=bool(night.scorable[i]), features=night.features[i])
            for i in range(start, stop)]


def rem_onsets(labels: np.ndarray) -> list[int]:
    """Epochs that open a REM period: REM after at least 10 min without REM.

    Parameters
    ----------
    labels : numpy.ndarray
        The night's stage codes (4 = REM; negative: unscored).

    Returns
    -------
    list of int
        The onsets' epoch indices, in order.
    """
    y = np.asarray(labels)
    return [t for t in np.flatnonzero(y == REM)
            if t >= REM_FREE_BEFORE_EPOCHS and not np.any(y[t - REM_FREE_BEFORE_EPOCHS:t] == REM)]


def cuts(night: FeatureNight, case: str, seed: int = 0) -> list[Cut]:
    """The sessions of one case in a night.

    Parameters
    ----------
    night : FeatureNight
        The night.
    case : str
        One of :data:`CASES`.
    seed : int
        Seeds the protocol's session start (:func:`sleepnet.train.feature_training.eval_start`).

    Returns
    -------
    list of Cut
        The sessions (none where the night is too short for the case).

    Raises
    ------
    ValueError
        An unknown ``case``.
    """
    a, b = trim_range(night.labels)
    lo = eval_start(night, seed)
    if case == "lights-off":
        return [Cut(lo, b, max(a, lo))]
    if case in ("2h", "4h"):
        s = lo + EPOCHS_PER_HOUR * int(case[0])
        return [Cut(s, b, max(a, s))] if s < b - 20 else []
    if case == "rem-onsets":
        half = REM_WINDOW_EPOCHS // 2
        return [Cut(t - half, t + half, t - half) for t in rem_onsets(night.labels) if a <= t - half and t + half <= b]
    raise ValueError(f"case={case!r}: use one of {', '.join(CASES)}")


@_fill
def session_probabilities(model, night: FeatureNight, cut: Cut, session_start: str | None = None
                          ) -> tuple[np.ndarray, np.ndarray]:
    """True codes and predicted probabilities of the scored epochs of one session, by a
    fresh stager.

    Parameters
    ----------
    {feature_model}
    night : FeatureNight
        The night.
    cut : Cut
        The session.
    {session_start}

    Returns
    -------
    codes : numpy.ndarray
        (n,) true codes of the epochs that count.
    probabilities : numpy.ndarray
        (n, 5) their predicted probabilities.
    """
    stager = model.new_stager(session_start=session_start)
    preds = stager.score(feature_epochs(night, cut.start, cut.stop))
    idx = np.arange(cut.start, cut.stop)
    keep = (idx >= cut.score_from) & (night.labels[idx] >= 0) & night.scorable[idx]
    probs = np.array([p.probabilities for p in preds], dtype=np.float64).reshape(-1, 5)
    return night.labels[idx][keep], probs[keep]


@_fill
def case_codes(model, nights: Sequence[FeatureNight], case: str, session_start: str | None = None,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """True and predicted codes of every session of one case in some nights, stacked (each
    session staged by a fresh stager: :func:`session_probabilities`, its most probable
    stage).

    Parameters
    ----------
    {feature_model}
    nights : sequence of FeatureNight
        The nights.
    case : str
        One of :data:`CASES`.
    {session_start}
    seed : int
        Seeds the protocol's session start.

    Returns
    -------
    {codes}
    """
    yt, yp = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    for n in nights:
        for c in cuts(n, case, seed):
            t, p = session_probabilities(model, n, c, session_start)
            yt.append(t)
            yp.append(p.argmax(axis=1).astype(np.int64) if len(p) else np.zeros(0, dtype=np.int64))
    return np.concatenate(yt), np.concatenate(yp)


@_fill
def isolated_codes(model, nights: Sequence[FeatureNight], session_start: str | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """True and predicted codes of every trimmed, scored epoch of some nights, each staged
    by a fresh stager that has seen nothing before it.

    Parameters
    ----------
    {feature_model}
    nights : sequence of FeatureNight
        The nights.
    {session_start}

    Returns
    -------
    {codes}
    """
    yt, yp = [], []
    for n in nights:
        a, b = trim_range(n.labels)
        for i in range(a, b):
            if n.labels[i] < 0 or not n.scorable[i]:
                continue
            p = model.new_stager(session_start=session_start).score(feature_epochs(n, i, i + 1))[0]
            yt.append(int(n.labels[i]))
            yp.append(p.stage_code)
    return np.array(yt, dtype=np.int64), np.array(yp, dtype=np.int64)


def summarise(a: Agreement) -> dict:
    """The figures of one case that the benchmark tables show.

    Parameters
    ----------
    a : Agreement
        The case's agreement (:func:`sleepnet.metrics.agreement` of its codes, or
        :meth:`LosoCodes.pooled`).

    Returns
    -------
    dict
        ``n_epochs``, ``accuracy``, ``macro_f1``, ``kappa``, ``n1_f1``, ``rem_recall``, ``rem_f1``.
    """
    return {"n_epochs": a.n_epochs, "accuracy": a.accuracy, "macro_f1": a.macro_f1, "kappa": a.kappa,
            "n1_f1": a.f1["N1"], "rem_recall": a.recall["REM"], "rem_f1": a.f1["REM"]}


@dataclass
class LosoCodes:
    """Per model (and session start), per case, per held-out subject: true and predicted codes.

    Parameters
    ----------
    codes : dict
        key -> case -> subject -> (true codes, predicted codes); keys are ``name`` or
        ``name@session_start``.
    """

    codes: dict

    def add(self, key: str, case: str, subject: str, t: np.ndarray, p: np.ndarray) -> None:
        """Keep one held-out subject's codes.

        Parameters
        ----------
        key : str
            The model (``name`` or ``name@session_start``).
        case : str
            The case (:data:`CASES`, or ``isolated``).
        subject : str
            The held-out subject.
        t, p : numpy.ndarray
            True and predicted codes.
        """
        self.codes.setdefault(key, {}).setdefault(case, {})[subject] = (t, p)

    @_fill
    def stacked(self, key: str, case: str) -> tuple[np.ndarray, np.ndarray]:
        """The codes of every held-out subject of a model and case, stacked in the order
        the subjects were added.

        Parameters
        ----------
        {key_case}

        Returns
        -------
        {codes}
        """
        parts = self.codes[key][case].values()
        return np.concatenate([t for t, _ in parts]), np.concatenate([p for _, p in parts])

    @_fill
    def pooled(self, key: str, case: str) -> Agreement:
        """Agreement over every held-out epoch of a model and case (:meth:`stacked`).

        Parameters
        ----------
        {key_case}

        Returns
        -------
        Agreement
            Pooled over the subjects.
        """
        return agreement(*self.stacked(key, case))

    @_fill
    def per_subject(self, key: str, case: str) -> dict[str, Agreement]:
        """Agreement per held-out subject of a model and case.

        Parameters
        ----------
        {key_case}

        Returns
        -------
        dict of str to Agreement
            Subject -> its agreement, in subject order.
        """
        return {s: agreement(t, p) for s, (t, p) in sorted(self.codes[key][case].items())}


def leave_one_subject_out(nights: Sequence[FeatureNight],
                          build: Callable[[Sequence[FeatureNight], str], dict],
                          evaluations: Sequence[tuple[str, str, str | None]],
                          on_fold: Callable[[int, int], None] | None = None, seed: int = 0) -> LosoCodes:
    """Leave one subject out: train without each subject, score its nights.

    Parameters
    ----------
    nights : sequence of FeatureNight
        Every night.
    build : callable
        ``build(training nights, held-out subject)`` returns {name: model}, trained
        without that subject.
    evaluations : sequence of (str, str, str or None)
        (name, case, session_start): each scored on the held-out subject's nights (case
        ``isolated`` included; session_start None: the model's default).
    on_fold : callable, optional
        Called with (folds done, folds) after each subject.
    seed : int
        Seeds the protocol's session starts.

    Returns
    -------
    LosoCodes
        The codes, keyed ``name`` or ``name@session_start``.
    """
    subjects = sorted({n.subject for n in nights})
    out = LosoCodes({})
    for k, s in enumerate(subjects):
        models = build([n for n in nights if n.subject != s], s)
        test = [n for n in nights if n.subject == s]
        for name, case, start in evaluations:
            key = name if start is None else f"{name}@{start}"
            if case == "isolated":
                t, p = isolated_codes(models[name], test, start)
            else:
                t, p = case_codes(models[name], test, case, start, seed)
            out.add(key, case, s, t, p)
        if on_fold:
            on_fold(k + 1, len(subjects))
    return out
