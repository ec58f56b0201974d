"""How well stimulation windows fall in sleep: gate events measured against true labels.

Offline and pure (no LSL): what ``benchmarks.gate`` reports and what the tests check on
the real Sleep-EDF feature nights.

* :func:`epoch_records`: a model's predictions as the live loop's
  :class:`~scorer.records.ScoredEpoch` records (times in s from the start);
* :func:`intervals` and :func:`night_metrics`: a night's windows and its figures (window
  precision, coverage, closes on arousals and movements, false closes);
* :func:`gate_events`: the records of a night driven through a
  :class:`~scorer.gate.window.GateWindow` as the live gate sink does without samples;
* :class:`FeatureSession`, :func:`score_feature_session`, :func:`subject0_sessions`: real
  feature nights (per-epoch features, no signal) scored by a feature stager exactly as a
  live session would score them (the session start of ``sleepstream evaluate --dataset
  features``), and :func:`measure`, :func:`open_by_stage`: their windows against the
  expert labels.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: Stage codes a window is meant for (N2, N3).
STABLE = (2, 3)
STAGE_NAMES = ("W", "N1", "N2", "N3", "REM")
#: The live loop pulls about every 0.5 s: the gate's data clock moves once a chunk.
CHUNK_S = 0.5


def epoch_records(preds, sfreq: float = 100.0) -> list:
    """The live scorer's records of a model's predictions.

    Parameters
    ----------
    preds : sequence of Prediction
        A model's predictions (``epoch``, ``stage``, ``probabilities``, ``confidence``,
        ``flags``), epoch 0 at the start.
    sfreq : float
        Sampling rate (Hz): an epoch's record ends at its last sample, 1/``sfreq`` s
        before the next epoch starts.

    Returns
    -------
    list of ScoredEpoch
        One record per prediction; times in s from the start, latency 0.
    """
    from scorer.records import ScoredEpoch

    return [ScoredEpoch(epoch=p.epoch, start_time=p.epoch * 30.0, end_time=p.epoch * 30.0 + 30.0 - 1 / sfreq,
                        stage=p.stage, probabilities=tuple(p.probabilities), confidence=p.confidence,
                        flags=tuple(p.flags), latency_ms=0.0) for p in preds]


def intervals(events: Sequence, end_s: float) -> list[tuple[float, float, str]]:
    """The windows of a sequence of gate events.

    Parameters
    ----------
    events : sequence of GateEvent
        Open and close events in time order.
    end_s : float
        End of the night (s): a window still open there closes with reason ``end``.

    Returns
    -------
    list of tuple
        ``(open time, close time, close reason)`` of every window (s).
    """
    out, t_open = [], None
    for e in events:
        if e.kind == "open":
            t_open = e.time
        elif t_open is not None:
            out.append((t_open, e.time, e.reason))
            t_open = None
    if t_open is not None:
        out.append((t_open, end_s, "end"))
    return out


def _stable_epochs(labels: np.ndarray) -> np.ndarray:
    """Epochs of runs of >= 3 N2/N3 epochs, less the first two of each run (the rule needs them)."""
    n = len(labels)
    sleep = np.isin(labels, STABLE)
    stable_ep = np.zeros(n, bool)
    k = 0
    while k < n:
        if sleep[k]:
            j = k
            while j < n and sleep[j]:
                j += 1
            if j - k >= 3:
                stable_ep[k + 2:j] = True
            k = j
        else:
            k += 1
    return stable_ep


def night_metrics(labels: np.ndarray, arousals: np.ndarray, events: Sequence,
                  movements: np.ndarray | None = None) -> dict:
    """One night's window figures, on a 0.1-s grid.

    Parameters
    ----------
    labels : numpy.ndarray
        True stage codes 0-4 per 30-s epoch (-1 unscored).
    arousals : numpy.ndarray
        True arousals, ``(n, 2)`` onset and end (s); ``np.zeros((0, 2))`` for none.
    events : sequence of GateEvent
        The gate's open and close events (s from the night's start).
    movements : numpy.ndarray, optional
        True movement artefacts ``(n, 2)`` (s): closes within [onset - 1 s, end + 10 s]
        of one are counted apart (``closes_on_movement``), not as false.

    Returns
    -------
    dict
        ``open_s``, ``open_true_sleep_s`` (open time whose true label is N2/N3),
        ``open_in_arousal_s``, ``stable_s`` (stable N2/N3 time), ``stable_covered_s``
        (of it inside windows), ``stable_clear_h``, ``arousal_latency_s`` (per arousal that
        began in an open window: onset to the next close, infinite when later than its
        end + 10 s), ``arousals``, ``arousals_while_closed``, ``false_closes`` (closes in
        stable N2/N3 away from arousals, by reason), ``closes_on_movement``,
        ``movements_judged``, ``movements_closed``, ``movements_in_stable``, ``windows``.
    """
    n = len(labels)
    end_s = n * 30.0
    wins = intervals(events, end_s)
    grid = np.arange(0, end_s, 0.1)                 # 0.1-s grid for time shares
    lab = labels[np.minimum((grid // 30).astype(int), n - 1)]
    open_ = np.zeros(len(grid), bool)
    for a, b, _ in wins:
        open_[(grid >= a) & (grid < b)] = True
    stable_ep = _stable_epochs(labels)
    near = np.zeros(len(grid), bool)
    for a0, a1 in arousals:
        near |= (grid >= a0 - 1.0) & (grid <= a1 + 10.0)
    on_move = np.zeros(len(grid), bool)
    for m0, m1 in (movements if movements is not None else np.zeros((0, 2))):
        on_move |= (grid >= m0 - 1.0) & (grid <= m1 + 10.0)
    stable = stable_ep[np.minimum((grid // 30).astype(int), n - 1)]
    lat, closed_at_onset = [], 0
    closes = [e for e in events if e.kind == "close"]
    for a0, a1 in arousals:
        if not any(a <= a0 < b for a, b, _ in wins):
            closed_at_onset += 1
            continue
        nxt = next((c.time for c in closes if c.time >= a0 - 0.5), None)
        lat.append(max(0.0, nxt - a0) if nxt is not None and nxt <= a1 + 10.0 else float("inf"))
    mv_judged = mv_closed = 0
    for m0, m1 in (movements if movements is not None else np.zeros((0, 2))):
        i = min(int(max(m0, 0.0) / 0.1), len(grid) - 1)
        if stable[i] and any(a <= m0 < b for a, b, _ in wins):
            mv_judged += 1
            mv_closed += any(m0 - 0.5 <= c.time <= m1 + 1.0 for c in closes)
    false: dict[str, int] = {}
    moved: dict[str, int] = {}
    for c in closes:
        i = min(int(c.time / 0.1), len(grid) - 1)
        if stable[i] and not near[i]:
            key = c.reason.split(" ")[0] if c.reason.startswith(("stage", "confidence", "flag")) else c.reason
            into = moved if on_move[i] else false
            into[key] = into.get(key, 0) + 1
    return {"open_s": float(open_.sum() * 0.1), "open_true_sleep_s": float((open_ & np.isin(lab, STABLE)).sum() * 0.1),
            "open_in_arousal_s": float((open_ & near).sum() * 0.1),
            "stable_s": float(stable.sum() * 0.1), "stable_covered_s": float((stable & open_).sum() * 0.1),
            "stable_clear_h": float((stable & ~near).sum() * 0.1 / 3600), "arousal_latency_s": lat,
            "arousals": int(len(arousals)), "arousals_while_closed": closed_at_onset, "false_closes": false,
            "closes_on_movement": moved, "movements_judged": mv_judged, "movements_closed": mv_closed,
            "movements_in_stable": int(sum(
                bool(stable[min(int(max(m0, 0.0) / 0.1), len(grid) - 1)]) for m0, _ in
                (movements if movements is not None else np.zeros((0, 2))))),
            "windows": len(wins)}


# -- real feature nights scored as live sessions ------------------------------------------

@dataclasses.dataclass(frozen=True)
class FeatureSession:
    """One real feature night scored as a live session.

    Parameters
    ----------
    name : str
        The night (e.g. ``SC4001E0``).
    model_id : str
        The model that scored it.
    start_epoch : int
        Session start, epoch index in the night file.
    records : tuple of ScoredEpoch
        The live loop's records, epoch 0 = the session start (times in s from it).
    labels : numpy.ndarray
        True codes 0-4 (-1 unscored) of the same epochs.
    """

    name: str
    model_id: str
    start_epoch: int
    records: tuple
    labels: np.ndarray


def score_feature_session(model, night, start: int) -> FeatureSession:
    """Score a feature night with a fresh stager from ``start`` to the end of the trimmed night.

    All epochs go to the stager in one call: feeding them one at a time, as live does,
    gives the same predictions (the stager's contract, ``tests/test_live.py``).

    Parameters
    ----------
    model : FeatureGbmModel
        A feature model (``new_stager()``, ``model_id``).
    night : FeatureNight
        A night of :func:`sleepnet.io.feature_nights.read_feature_folder`.
    start : int
        Session start (epoch index in the night).

    Returns
    -------
    FeatureSession
        The records from ``start`` to 30 min of wake after the last sleep epoch.
    """
    from sleepnet.preprocess import Epoch
    from sleepnet.train.training import trim_range

    _, end = trim_range(night.labels)
    empty = np.zeros(0, dtype=np.float32)
    epochs = [Epoch(index=k, data=empty, scorable=bool(night.scorable[i]), features=night.features[i])
              for k, i in enumerate(range(start, end))]
    preds = model.new_stager().score(epochs)
    return FeatureSession(night.name, model.model_id, start, tuple(epoch_records(preds)),
                          np.asarray(night.labels[start:end]))


def gate_events(records: Sequence, rule, chunk_s: float = CHUNK_S, sfreq: float = 100.0) -> list:
    """Drive a :class:`~scorer.gate.window.GateWindow` as the live gate sink does without samples.

    Parameters
    ----------
    records : sequence of ScoredEpoch
        A session's records in order (times in s from its start).
    rule : GateRule
        The gate rule.
    chunk_s : float
        The data clock moves at each chunk's last sample of an epoch (s between chunks).
    sfreq : float
        Sampling rate (Hz) of the chunks' last samples.

    Returns
    -------
    list of GateEvent
        The open/close events (the start's ``restart`` close left out).
    """
    from scorer.gate.window import GateWindow

    window = GateWindow(rule)
    window.start(0.0)
    events: list = []
    n_chunks = int(round(30.0 / chunk_s))
    for r in records:
        for j in range(1, n_chunks + 1):
            events += window.on_time(r.start_time + j * chunk_s - 1 / sfreq)
        events += window.on_epoch(r)
    return events


def open_by_stage(labels: np.ndarray, events: Sequence) -> dict[str, float]:
    """Seconds of open-window time in each true stage.

    Parameters
    ----------
    labels : numpy.ndarray
        True codes 0-4 per 30-s epoch (-1 unscored).
    events : sequence of GateEvent
        The gate's events (s from the first epoch's start).

    Returns
    -------
    dict
        Stage name (``W`` ... ``REM``, ``UNS`` for unscored) -> seconds.
    """
    out = {s: 0.0 for s in (*STAGE_NAMES, "UNS")}
    n = len(labels)
    for a, b, _ in intervals(events, n * 30.0):
        for k in range(int(a // 30), min(n, int(np.ceil(b / 30)))):
            overlap = min(b, (k + 1) * 30.0) - max(a, k * 30.0)
            if overlap > 0:
                out[STAGE_NAMES[labels[k]] if labels[k] >= 0 else "UNS"] += overlap
    return out


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def measure(sessions: Sequence[FeatureSession], rule) -> dict:
    """Window precision, coverage, open time and open time by true stage, pooled and per night.

    Parameters
    ----------
    sessions : sequence of FeatureSession
        Scored sessions.
    rule : GateRule
        The gate rule (no arousal guard: feature nights hold no signal).

    Returns
    -------
    dict
        ``window_precision`` and ``coverage`` (None where undefined), ``open_h``,
        ``stable_h``, ``windows``, ``open_share_by_true_stage``,
        ``wrong_open_share_by_true_stage`` and ``per_night``.
    """
    no_arousals = np.zeros((0, 2))
    per, by_stage = {}, {s: 0.0 for s in (*STAGE_NAMES, "UNS")}
    tot = {"open_s": 0.0, "open_true_sleep_s": 0.0, "stable_s": 0.0, "stable_covered_s": 0.0, "windows": 0}
    for s in sessions:
        events = gate_events(s.records, rule)
        m = night_metrics(s.labels, no_arousals, events)
        stages = open_by_stage(s.labels, events)
        for k in tot:
            tot[k] += m[k]
        for k, v in stages.items():
            by_stage[k] += v
        per[s.name] = {"model_id": s.model_id, "session_start_epoch": s.start_epoch, "epochs": len(s.records),
                       "window_precision": _ratio(m["open_true_sleep_s"], m["open_s"]),
                       "coverage": _ratio(m["stable_covered_s"], m["stable_s"]),
                       "open_h": m["open_s"] / 3600, "windows": m["windows"],
                       "open_s_by_true_stage": {k: round(v, 1) for k, v in stages.items() if v > 0}}
    wrong = sum(v for k, v in by_stage.items() if k not in ("N2", "N3"))
    return {"window_precision": _ratio(tot["open_true_sleep_s"], tot["open_s"]),
            "coverage": _ratio(tot["stable_covered_s"], tot["stable_s"]),
            "open_h": tot["open_s"] / 3600, "stable_h": tot["stable_s"] / 3600, "windows": tot["windows"],
            "open_share_by_true_stage": {k: v / tot["open_s"] for k, v in by_stage.items()} if tot["open_s"] else {},
            "wrong_open_share_by_true_stage": {k: v / wrong for k, v in by_stage.items()
                                               if k not in ("N2", "N3") and v > 0} if wrong else {},
            "per_night": per}


def check_never_saw(model, subject: str) -> None:
    """Check that a model's ``metrics.json`` lists no training night of ``subject``.

    Parameters
    ----------
    model : FeatureGbmModel
        A shipped model (``source``: its folder; ``model_id``).
    subject : str
        The held-out subject (e.g. ``"0"``).

    Raises
    ------
    SleepstreamError
        When ``metrics.json`` is missing or lists a night of ``subject``.
    """
    from sleepnet.errors import SleepstreamError
    from sleepnet.io.feature_nights import subject_of

    path = Path(model.source) / "metrics.json"
    if not path.is_file():
        raise SleepstreamError(f"{path}: missing; cannot check that {model.model_id} never saw subject {subject}")
    seen = [n for n in json.loads(path.read_text()).get("train_nights", []) if subject_of(n) == subject]
    if seen:
        raise SleepstreamError(f"{model.model_id} was trained on {seen}: not a held-out test of subject {subject}")


def subject0_sessions(model, folder: Path) -> list[FeatureSession]:
    """Subject 0's two nights scored by a shipped feature model that never saw them.

    Parameters
    ----------
    model : FeatureGbmModel
        The shipped feature model.
    folder : Path
        The feature nights (``../shared/data/sleep-edf-features``).

    Returns
    -------
    list of FeatureSession
        One per night of subject 0, from the session start ``evaluate`` uses.

    Raises
    ------
    SleepstreamError
        When the model was trained on a night of subject 0 (see :func:`check_never_saw`).
    """
    from sleepnet.io.feature_nights import read_feature_folder
    from sleepnet.train.feature_training import HELD_OUT_SUBJECT, eval_start

    check_never_saw(model, HELD_OUT_SUBJECT)
    nights = [n for n in read_feature_folder(folder) if n.subject == HELD_OUT_SUBJECT]
    return [score_feature_session(model, n, eval_start(n)) for n in nights]
